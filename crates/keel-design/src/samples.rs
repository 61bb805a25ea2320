//! Real API samples: every operation of the spec run against a scratch in-memory
//! instance (SQLite `:memory:`, migrated, the real [`Engine`]), its answers turned into
//! what the HTTP layer would send, then made deterministic: ids, timestamps and
//! cursors are rewritten to fixed placeholders in order of appearance.
//!
//! The samples run as one signed-in user holding every role (created through a setup
//! engine, since sign-up is not a collection operation); the 401 samples run as the
//! anonymous caller.

use keel_core::{CoreError, Engine, ListText, Principal};
use keel_expr::Scope;
use keel_http::Problem;
use keel_spec::{Collection, DefaultValue, FieldType, Model, Operation, Rule};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One request and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub method: String,
    /// The concrete path with its query, e.g. `/v1/posts?limit=2`.
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request: Option<Json>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response: Option<Json>,
    /// What this exchange shows (e.g. "a body that misses required fields").
    pub note: String,
}

/// One endpoint: its route template, the success exchange and the key errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub collection: String,
    pub operation: &'static str,
    pub method: &'static str,
    /// `/v1/posts/{id}`.
    pub route: String,
    pub summary: String,
    pub success: Exchange,
    pub errors: Vec<Exchange>,
}

/// Every endpoint of the model, with real samples.
pub async fn collect(model: &Model) -> Result<Vec<Endpoint>, String> {
    let store = keel_store::Store::open("sqlite::memory:")
        .await
        .map_err(|e| format!("scratch store: {e}"))?;
    let mut setup_model = model.clone();
    if let Some(users) = setup_model.collections.iter_mut().find(|c| c.builtin) {
        users.access.create = Some(rule_true()?);
    }
    store
        .migrate(model, true)
        .await
        .map_err(|e| format!("scratch migration: {e}"))?;
    let secret = [7u8; 32];
    let setup = Engine::new(Arc::new(setup_model), store.clone(), &secret);
    let engine = Arc::new(Engine::new(Arc::new(model.clone()), store, &secret));
    let auth = if model.auth.password {
        Some(
            keel_auth::AuthService::new(
                engine.clone(),
                keel_auth::PasswordPolicy::from_model(model),
            )
            .await
            .map_err(|e| format!("scratch identity: {e}"))?,
        )
    } else {
        None
    };

    let roles: Vec<String> = model.roles.keys().cloned().collect();
    let mut run = Runner {
        engine: &engine,
        bearer: None,
        ids: BTreeMap::new(),
        user: Principal::default(),
    };
    // The signed-in user the samples run as.
    let users = model
        .collections
        .iter()
        .find(|c| c.builtin)
        .ok_or("the model has no users collection")?;
    let body = run.body(users, 0);
    let mut auth_endpoints = Vec::new();
    let created_id = match &auth {
        Some(auth) => {
            let (id, token, eps) = auth_samples(auth, &body).await?;
            run.bearer = Some(token);
            auth_endpoints = eps;
            id
        }
        None => {
            setup
                .create(&Principal::anonymous(), &users.name, &body, None)
                .await
                .map_err(|e| format!("scratch user: {e}"))?
                .id
        }
    };
    let principal = Principal {
        id: uuid::Uuid::parse_str(&created_id).ok(),
        email: body["email"].as_str().map(str::to_string),
        roles,
        ..Principal::default()
    };
    run.user = principal;
    run.ids.insert(users.name.clone(), created_id.clone());

    let order: Vec<String> = keel_store::schema::tables(model)
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut endpoints = Vec::new();
    for name in &order {
        let Some(c) = model.collection(name) else {
            continue;
        };
        endpoints.extend(run.collection(c).await);
    }
    // Deletes last, children before parents, so restrict refs do not get in the way.
    let mut deletes = Vec::new();
    for name in order.iter().rev() {
        let Some(c) = model.collection(name) else {
            continue;
        };
        deletes.push(run.delete(c).await);
    }
    deletes.reverse();
    // Keep each collection's endpoints together: list, create, get, update, delete.
    let mut out = Vec::new();
    for name in &order {
        out.extend(endpoints.iter().filter(|e| &e.collection == name).cloned());
        out.extend(deletes.iter().filter(|e| &e.collection == name).cloned());
    }
    // Document order: sign-in first, then the spec's collection order.
    let mut sorted = auth_endpoints;
    for c in &model.collections {
        sorted.extend(out.iter().filter(|e| e.collection == c.name).cloned());
    }
    Ok(Redactor::default().endpoints(sorted))
}

/// The sample password (long enough for any `password_min_length` up to 28).
const PASSWORD: &str = "correct horse battery staple";

fn ok(mut x: Exchange, status: u16, body: Option<Json>) -> Exchange {
    x.status = status;
    if body.is_some() {
        x.response_headers = vec![("content-type".into(), "application/json".into())];
    }
    x.response = body;
    x
}

fn auth_endpoint(
    operation: &'static str,
    method: &'static str,
    route: &str,
    summary: &str,
    success: Exchange,
    errors: Vec<Exchange>,
) -> Endpoint {
    Endpoint {
        collection: "auth".into(),
        operation,
        method,
        route: route.into(),
        summary: summary.into(),
        success,
        errors,
    }
}

/// Sign-up, login, refresh, me and logout through the real identity service; returns
/// the new user's id, its access token and the endpoints.
async fn auth_samples(
    auth: &keel_auth::AuthService,
    user: &Json,
) -> Result<(String, String, Vec<Endpoint>), String> {
    let mut eps = Vec::new();
    let mut signup = user.clone();
    signup["password"] = json!(PASSWORD);
    let route = "/v1/auth/signup";
    let session = auth
        .signup(&signup)
        .await
        .map_err(|e| format!("scratch sign-up: {e}"))?;
    let id = session.user["id"].as_str().unwrap_or_default().to_string();
    let success = ok(
        exchange("POST", route, Some(signup.clone()), ""),
        201,
        serde_json::to_value(&session).ok(),
    );
    let mut errors = Vec::new();
    let x = exchange(
        "POST",
        route,
        Some(signup.clone()),
        "an email that is already registered",
    );
    if let Err(e) = auth.signup(&signup).await {
        errors.push(failed_with(x, Problem::from(e)));
    }
    let mut weak = signup.clone();
    weak["email"] = json!("grace@example.com");
    weak["password"] = json!("short");
    let x = exchange(
        "POST",
        route,
        Some(weak.clone()),
        "a password that is too short",
    );
    if let Err(e) = auth.signup(&weak).await {
        errors.push(failed_with(x, Problem::from(e)));
    }
    eps.push(auth_endpoint(
        "signup",
        "POST",
        route,
        "Create an account and sign in",
        success,
        errors,
    ));

    let route = "/v1/auth/login";
    let email = user["email"].as_str().unwrap_or_default();
    let body = json!({"email": email, "password": PASSWORD});
    let x = exchange("POST", route, Some(body), "");
    let login = auth.login(email, PASSWORD).await;
    let (success, refresh_token) = match login {
        Ok(s) => {
            let t = s.refresh_token.clone();
            (ok(x, 200, serde_json::to_value(&s).ok()), Some(t))
        }
        Err(e) => (failed_with(x, Problem::from(e)), None),
    };
    let mut errors = Vec::new();
    let body = json!({"email": email, "password": "not the password"});
    let x = exchange(
        "POST",
        route,
        Some(body),
        "a wrong password (the same answer as an unknown email)",
    );
    if let Err(e) = auth.login(email, "not the password").await {
        errors.push(failed_with(x, Problem::from(e)));
    }
    eps.push(auth_endpoint(
        "login",
        "POST",
        route,
        "Sign in with email and password",
        success,
        errors,
    ));

    if let Some(token) = refresh_token {
        let route = "/v1/auth/refresh";
        let body = json!({"refresh_token": token});
        let x = exchange("POST", route, Some(body.clone()), "");
        let success = match auth.refresh(&token).await {
            Ok(s) => ok(x, 200, serde_json::to_value(&s).ok()),
            Err(e) => failed_with(x, Problem::from(e)),
        };
        let mut errors = Vec::new();
        let x = exchange(
            "POST",
            route,
            Some(body),
            "a refresh token used twice (the whole family is revoked)",
        );
        if let Err(e) = auth.refresh(&token).await {
            errors.push(failed_with(x, Problem::from(e)));
        }
        eps.push(auth_endpoint(
            "refresh",
            "POST",
            route,
            "Trade a refresh token for new tokens (rotation)",
            success,
            errors,
        ));
    }

    let route = "/v1/auth/me";
    let mut x = exchange("GET", route, None, "");
    x.request_headers.push((
        "authorization".into(),
        format!("Bearer {}", session.access_token),
    ));
    let me = match auth.authenticate(&session.access_token).await {
        Ok(p) => auth.me(&p).await.map_err(Problem::from),
        Err(_) => Err(keel_http::identity::invalid_token(
            "the access token is invalid",
        )),
    };
    let success = match me {
        Ok(u) => ok(x, 200, Some(u)),
        Err(p) => failed_with(x, p),
    };
    let errors = vec![failed_with(
        exchange("GET", route, None, "no access token"),
        keel_http::identity::invalid_token("sign in first"),
    )];
    eps.push(auth_endpoint(
        "me",
        "GET",
        route,
        "The signed-in user",
        success,
        errors,
    ));

    let route = "/v1/auth/logout";
    let body = json!({"refresh_token": session.refresh_token});
    let x = exchange("POST", route, Some(body), "");
    let success = match auth.logout(&session.refresh_token).await {
        Ok(()) => ok(x, 204, None),
        Err(e) => failed_with(x, Problem::from(e)),
    };
    eps.push(auth_endpoint(
        "logout",
        "POST",
        route,
        "Revoke a refresh token (sign out)",
        success,
        Vec::new(),
    ));
    Ok((id, session.access_token, eps))
}

struct NoPaths;
impl Scope for NoPaths {
    fn resolve(&self, _: &[String]) -> Result<keel_expr::Type, String> {
        Err("no paths here".into())
    }
}

fn rule_true() -> Result<Rule, String> {
    let e = keel_expr::parse("true").map_err(|e| e.to_string())?;
    let typed = keel_expr::check(&e, &NoPaths).map_err(|_| "rule `true`".to_string())?;
    Ok(Rule {
        source: "true".into(),
        typed,
        span: 0..0,
    })
}

struct Runner<'a> {
    /// The sample user's access token, shown on signed-in requests.
    bearer: Option<String>,
    engine: &'a Engine,
    /// The sample record of each collection.
    ids: BTreeMap<String, String>,
    user: Principal,
}

/// A problem+json body as the HTTP layer sends it.
fn problem_body(p: Problem, path: &str) -> (u16, Json, Vec<(String, String)>) {
    let headers = p
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = serde_json::to_value(&*p).unwrap_or(Json::Null);
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "instance".into(),
            json!(path.split('?').next().unwrap_or(path)),
        );
        o.insert("request_id".into(), json!(uuid::Uuid::now_v7().to_string()));
    }
    (p.status, body, headers)
}

fn exchange(method: &str, path: &str, request: Option<Json>, note: &str) -> Exchange {
    Exchange {
        method: method.into(),
        path: path.into(),
        request_headers: if request.is_some() {
            vec![("content-type".into(), "application/json".into())]
        } else {
            Vec::new()
        },
        request,
        status: 0,
        response_headers: Vec::new(),
        response: None,
        note: note.into(),
    }
}

fn failed(x: Exchange, e: CoreError) -> Exchange {
    failed_with(x, Problem::from(e))
}

fn failed_with(mut x: Exchange, p: Problem) -> Exchange {
    let (status, body, headers) = problem_body(p, &x.path);
    x.status = status;
    x.response = Some(body);
    x.response_headers = headers;
    x.response_headers.insert(
        0,
        ("content-type".into(), "application/problem+json".into()),
    );
    x
}

impl Runner<'_> {
    /// An exchange made as the signed-in sample user.
    fn signed(&self, method: &str, path: &str, request: Option<Json>, note: &str) -> Exchange {
        let mut x = exchange(method, path, request, note);
        if let Some(t) = &self.bearer {
            x.request_headers
                .insert(0, ("authorization".into(), format!("Bearer {t}")));
        }
        x
    }

    /// A valid create body; `n` varies unique values.
    fn body(&self, c: &Collection, n: usize) -> Json {
        let mut out = serde_json::Map::new();
        for f in c.creatable() {
            if matches!(f.default, Some(DefaultValue::AuthId)) {
                continue;
            }
            let v = match &f.ty {
                FieldType::Ref { to, .. } => match self.ids.get(to) {
                    Some(id) => json!(id),
                    None => continue,
                },
                ty => match example(&f.name, ty, n) {
                    Some(v) => v,
                    None => continue,
                },
            };
            out.insert(f.name.clone(), v);
        }
        Json::Object(out)
    }

    async fn collection(&mut self, c: &Collection) -> Vec<Endpoint> {
        let base = format!("/v1/{}", c.name);
        let mut out = Vec::new();
        let anon = Principal::anonymous();

        // create (the builtin users already has its sample: sign-up made it)
        let body = self.body(c, 1);
        let mut success = self.signed("POST", &base, Some(body.clone()), "");
        success.request_headers.push((
            "idempotency-key".into(),
            format!("sample-create-{}", c.name),
        ));
        let created = self
            .engine
            .create(
                &self.user,
                &c.name,
                &body,
                Some(&format!("sample-create-{}", c.name)),
            )
            .await;
        let success = match created {
            Ok(created) => {
                if !c.builtin {
                    self.ids.insert(c.name.clone(), created.id.clone());
                }
                success.status = 201;
                success.response_headers = vec![
                    ("content-type".into(), "application/json".into()),
                    ("location".into(), format!("{base}/{}", created.id)),
                    ("etag".into(), "\"1\"".into()),
                ];
                success.response = Some(created.record);
                success
            }
            Err(e) => failed(success, e),
        };
        let mut errors = Vec::new();
        let bad = if c.creatable().any(|f| f.required && f.default.is_none()) {
            (json!({}), "a body that misses required fields")
        } else {
            (
                json!({"unknown_field": 1}),
                "a body with a field the collection does not have",
            )
        };
        let x = self.signed("POST", &base, Some(bad.0.clone()), bad.1);
        if let Err(e) = self.engine.create(&self.user, &c.name, &bad.0, None).await {
            errors.push(failed(x, e));
        }
        let x = exchange("POST", &base, Some(self.body(c, 2)), "an anonymous caller");
        if analysis_denies_anonymous(c, Operation::Create)
            && let Err(e) = self
                .engine
                .create(&anon, &c.name, &self.body(c, 2), None)
                .await
        {
            errors.push(failed(x, e));
        }
        out.push(Endpoint {
            collection: c.name.clone(),
            operation: "create",
            method: "POST",
            route: base.clone(),
            summary: format!("Create a record in `{}`", c.name),
            success,
            errors,
        });

        let id = self.ids.get(&c.name).cloned().unwrap_or_default();
        let one = format!("{base}/{id}");

        // list
        let path = format!("{base}?limit=2");
        let x = self.signed("GET", &path, None, "");
        let params = ListText {
            limit: Some(2),
            ..ListText::default()
        };
        let success = match list_text(&self.engine, &self.user, &c.name, &params).await {
            Ok(page) => Exchange {
                status: 200,
                response_headers: vec![("content-type".into(), "application/json".into())],
                response: serde_json::to_value(&page).ok(),
                ..x
            },
            Err(e) => failed(x, e),
        };
        let mut errors = Vec::new();
        let path = format!("{base}?filter=no_such_field%20%3D%3D%201");
        let x = self.signed(
            "GET",
            &path,
            None,
            "a filter on a field that does not exist",
        );
        let params = ListText {
            filter: Some("no_such_field == 1".into()),
            ..ListText::default()
        };
        if let Err(e) = list_text(&self.engine, &self.user, &c.name, &params).await {
            errors.push(failed(x, e));
        }
        if analysis_denies_anonymous(c, Operation::Read) {
            let x = exchange("GET", &base, None, "an anonymous caller");
            match list_text(&self.engine, &anon, &c.name, &ListText::default()).await
            {
                Err(e) => errors.push(failed(x, e)),
                Ok(page) if page.items.is_empty() => errors.push(Exchange {
                    status: 200,
                    response_headers: vec![("content-type".into(), "application/json".into())],
                    response: serde_json::to_value(&page).ok(),
                    note: "an anonymous caller: the rule hides every row, so the page is empty"
                        .into(),
                    ..x
                }),
                Ok(_) => {}
            }
        }
        out.insert(
            0,
            Endpoint {
                collection: c.name.clone(),
                operation: "list",
                method: "GET",
                route: base.clone(),
                summary: format!("List `{}` (filter, sort, cursor)", c.name),
                success,
                errors,
            },
        );

        // get
        let x = self.signed("GET", &one, None, "");
        let success = match self.engine.get(&self.user, &c.name, &id, &Default::default()).await {
            Ok(record) => Exchange {
                status: 200,
                response_headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("etag".into(), format!("\"{}\"", record["version"])),
                ],
                response: Some(record),
                ..x
            },
            Err(e) => failed(x, e),
        };
        let missing = uuid::Uuid::now_v7().to_string();
        let path = format!("{base}/{missing}");
        let x = self.signed(
            "GET",
            &path,
            None,
            "a record that does not exist (or may not be read)",
        );
        let mut errors = Vec::new();
        if let Err(e) = self
            .engine
            .get(&self.user, &c.name, &missing, &Default::default())
            .await
        {
            errors.push(failed(x, e));
        }
        out.push(Endpoint {
            collection: c.name.clone(),
            operation: "get",
            method: "GET",
            route: format!("{base}/{{id}}"),
            summary: format!("Get one record of `{}`", c.name),
            success,
            errors,
        });

        // update
        let patch = self.patch(c);
        let mut x = self.signed("PATCH", &one, Some(patch.clone()), "");
        x.request_headers.push(("if-match".into(), "\"1\"".into()));
        let success = match self
            .engine
            .update(&self.user, &c.name, &id, &patch, Some(&[1]))
            .await
        {
            Ok(record) => Exchange {
                status: 200,
                response_headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("etag".into(), format!("\"{}\"", record["version"])),
                ],
                response: Some(record),
                ..x
            },
            Err(e) => failed(x, e),
        };
        let mut errors = Vec::new();
        let mut x = self.signed(
            "PATCH",
            &one,
            Some(patch.clone()),
            "a stale If-Match (someone else updated first)",
        );
        x.request_headers.push(("if-match".into(), "\"1\"".into()));
        if let Err(e) = self
            .engine
            .update(&self.user, &c.name, &id, &patch, Some(&[1]))
            .await
        {
            errors.push(failed(x, e));
        }
        let bad = self.bad_patch(c);
        let x = self.signed(
            "PATCH",
            &one,
            Some(bad.clone()),
            "a value of the wrong type",
        );
        if let Err(e) = self
            .engine
            .update(&self.user, &c.name, &id, &bad, None)
            .await
        {
            errors.push(failed(x, e));
        }
        out.push(Endpoint {
            collection: c.name.clone(),
            operation: "update",
            method: "PATCH",
            route: format!("{base}/{{id}}"),
            summary: format!(
                "Update a record of `{}` (partial, optimistic locking)",
                c.name
            ),
            success,
            errors,
        });
        out
    }

    async fn delete(&mut self, c: &Collection) -> Endpoint {
        let base = format!("/v1/{}", c.name);
        let id = self.ids.get(&c.name).cloned().unwrap_or_default();
        let one = format!("{base}/{id}");
        let x = self.signed("DELETE", &one, None, "");
        let success = match self.engine.delete(&self.user, &c.name, &id, None).await {
            Ok(()) => Exchange { status: 204, ..x },
            Err(e) => failed(x, e),
        };
        let mut errors = Vec::new();
        let x = self.signed("DELETE", &one, None, "a record that is already gone");
        if let Err(e) = self.engine.delete(&self.user, &c.name, &id, None).await {
            errors.push(failed(x, e));
        }
        Endpoint {
            collection: c.name.clone(),
            operation: "delete",
            method: "DELETE",
            route: format!("{base}/{{id}}"),
            summary: format!("Delete a record of `{}`", c.name),
            success,
            errors,
        }
    }

    /// A small, valid change: the first updatable text-like field.
    fn patch(&self, c: &Collection) -> Json {
        for f in c.updatable() {
            if matches!(
                f.ty,
                FieldType::Text { .. } | FieldType::Enum { .. } | FieldType::Int { .. }
            ) && let Some(v) = example(&f.name, &f.ty, 3)
            {
                return json!({ f.name.clone(): v });
            }
        }
        json!({})
    }

    fn bad_patch(&self, c: &Collection) -> Json {
        for f in c.updatable() {
            match f.ty {
                FieldType::Json => continue,
                FieldType::Text { .. }
                | FieldType::Email
                | FieldType::Url
                | FieldType::Enum { .. } => {
                    return json!({ f.name.clone(): 42 });
                }
                _ => return json!({ f.name.clone(): "not a value of this type" }),
            }
        }
        json!({"version": 7})
    }
}

fn analysis_denies_anonymous(c: &Collection, op: Operation) -> bool {
    crate::analysis::audience(c, op) != crate::analysis::Audience::Anyone
}

/// A value of `ty` that passes its constraints; `n` varies it for unique fields.
pub fn example(name: &str, ty: &FieldType, n: usize) -> Option<Json> {
    Some(match ty {
        FieldType::Text {
            min_length,
            max_length,
            pattern,
        } => {
            let words = name.replace('_', " ");
            let mut candidates = vec![
                if n <= 1 {
                    format!("Sample {words}")
                } else {
                    format!("Sample {words} {n}")
                },
                format!("sample-{n}"),
                format!("SAMPLE{n}"),
                format!("{n}"),
                format!("s{n}"),
                format!("sample_{n}"),
            ];
            if let Some(p) = pattern {
                let re = regex_lite::Regex::new(p).ok()?;
                candidates.retain(|c| re.is_match(c));
            }
            let min = min_length.unwrap_or(0) as usize;
            let max = max_length.map_or(usize::MAX, |m| m as usize);
            let pick = candidates.into_iter().find(|c| {
                let len = c.chars().count();
                len <= max && (len >= min || pattern.is_none())
            })?;
            let len = pick.chars().count();
            if len < min {
                json!(format!("{pick}{}", ".".repeat(min - len)))
            } else {
                json!(pick)
            }
        }
        FieldType::Int { min, max } => {
            let base = min.unwrap_or(1).max(1);
            let v = base.saturating_add(n as i64 - 1);
            json!(max.map_or(v, |m| v.min(m)))
        }
        FieldType::Float { min, max } => {
            let v = min.unwrap_or(0.0).max(9.5) + n as f64;
            json!(max.map_or(v, |m| v.min(m)))
        }
        FieldType::Bool => json!(true),
        FieldType::Datetime => json!("2026-03-01T09:30:00Z"),
        FieldType::Date => json!("2026-03-01"),
        FieldType::Uuid => json!(format!("00000000-0000-4000-8000-{:012}", n)),
        FieldType::Email => json!(if n == 0 {
            "ada@example.com".to_string()
        } else {
            format!("ada{n}@example.com")
        }),
        FieldType::Url => json!(format!("https://example.com/{}", name.replace('_', "-"))),
        FieldType::Enum { values } => {
            let i = if n >= 3 {
                1.min(values.len().saturating_sub(1))
            } else {
                0
            };
            json!(values.get(i)?)
        }
        FieldType::Json => json!(["sample", name]),
        FieldType::Ref { .. } => return None,
    })
}

/// Rewrites UUIDs, timestamps and cursors to fixed placeholders, in order of first
/// appearance, so the same spec always gives the same samples.
#[derive(Default)]
pub struct Redactor {
    ids: Vec<String>,
    times: Vec<String>,
    tokens: Vec<String>,
}

const UUID_RE: &str = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const TIME_RE: &str = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z";

impl Redactor {
    fn endpoints(mut self, eps: Vec<Endpoint>) -> Vec<Endpoint> {
        eps.into_iter()
            .map(|mut e| {
                e.success = self.exchange(e.success);
                e.errors = e.errors.into_iter().map(|x| self.exchange(x)).collect();
                e
            })
            .collect()
    }

    fn exchange(&mut self, mut x: Exchange) -> Exchange {
        x.path = self.text(&x.path);
        x.request_headers = x
            .request_headers
            .into_iter()
            .map(|(k, v)| {
                let v = match v.strip_prefix("Bearer ") {
                    Some(t) if k == "authorization" => format!("Bearer {}", self.token(t, true)),
                    _ => self.text(&v),
                };
                (k, v)
            })
            .collect();
        x.request = x.request.map(|j| self.json(j, ""));
        x.response_headers = x
            .response_headers
            .into_iter()
            .map(|(k, v)| {
                let v = self.text(&v);
                (k, v)
            })
            .collect();
        x.response = x.response.map(|j| self.json(j, ""));
        x
    }

    fn json(&mut self, j: Json, key: &str) -> Json {
        match j {
            Json::String(s) if key == "next_cursor" => {
                let _ = s;
                Json::String("eyJzIjoiLWNyZWF0ZWRfYXQsaWQiLCJ2IjpbXX0.c2lnbmF0dXJl".into())
            }
            Json::String(s) if key == "access_token" || key == "refresh_token" => {
                Json::String(self.token(&s, key == "access_token"))
            }
            Json::String(s) => Json::String(self.text(&s)),
            Json::Array(xs) => Json::Array(xs.into_iter().map(|x| self.json(x, "")).collect()),
            Json::Object(o) => Json::Object(
                o.into_iter()
                    .map(|(k, v)| {
                        let v = self.json(v, &k);
                        (k, v)
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// A token's placeholder: JWT-shaped for access tokens, opaque for refresh tokens.
    fn token(&mut self, t: &str, access: bool) -> String {
        let i = match self.tokens.iter().position(|x| x == t) {
            Some(i) => i,
            None => {
                self.tokens.push(t.to_string());
                self.tokens.len() - 1
            }
        } + 1;
        if access {
            format!("eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.c2FtcGxlLXRva2VuLX{i}.c2lnbmF0dXJl")
        } else {
            format!("rt_sample_refresh_token_{i:04}")
        }
    }

    fn text(&mut self, s: &str) -> String {
        let (Ok(uuid), Ok(time)) = (
            regex_lite::Regex::new(UUID_RE),
            regex_lite::Regex::new(TIME_RE),
        ) else {
            return s.to_string();
        };
        let s = uuid
            .replace_all(s, |c: &regex_lite::Captures<'_>| {
                let m = c.get(0).map_or("", |m| m.as_str()).to_string();
                let i = match self.ids.iter().position(|x| *x == m) {
                    Some(i) => i,
                    None => {
                        self.ids.push(m);
                        self.ids.len() - 1
                    }
                };
                format!("01900000-0000-7000-8000-{:012}", i + 1)
            })
            .into_owned();
        time.replace_all(&s, |c: &regex_lite::Captures<'_>| {
            let m = c.get(0).map_or("", |m| m.as_str()).to_string();
            let i = match self.times.iter().position(|x| *x == m) {
                Some(i) => i,
                None => {
                    self.times.push(m);
                    self.times.len() - 1
                }
            };
            let secs = i + 1;
            format!("2026-01-15T09:{:02}:{:02}.000000Z", secs / 60, secs % 60)
        })
        .into_owned()
    }
}

/// A list from its text form, as REST runs it: typed first, then run.
async fn list_text(
    engine: &Engine,
    principal: &Principal,
    collection: &str,
    text: &ListText,
) -> Result<keel_core::Page, CoreError> {
    let query = engine.list_query(collection, text)?;
    engine.list(principal, collection, &query).await
}
