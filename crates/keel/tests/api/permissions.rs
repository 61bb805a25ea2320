//! The permission matrix of the example spec: every principal (anonymous, owner, another
//! user, member, moderator, admin) × every collection × every operation, served over
//! HTTP, checked against what the rules say — evaluated independently, in memory, by
//! the expression language's evaluator on the same records.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app};
use keel_expr::{Env, Value};
use keel_spec::{FieldType, Model, Operation};
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::HashMap;

struct Who {
    name: &'static str,
    id: Option<String>,
    token: Option<String>,
    roles: Vec<String>,
}

/// A rule's environment: one record, the records it refers to, one principal.
struct RecordEnv<'a> {
    model: &'a Model,
    collection: &'a str,
    record: &'a Json,
    all: &'a HashMap<String, Json>,
    who: &'a Who,
}

impl Env for RecordEnv<'_> {
    fn lookup(&self, path: &[String]) -> Value {
        if path.first().map(String::as_str) == Some("auth") {
            return match path.get(1).map(String::as_str) {
                Some("id") => self
                    .who
                    .id
                    .as_deref()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())
                    .map_or(Value::Null, Value::Uuid),
                Some("roles") => {
                    Value::List(self.who.roles.iter().cloned().map(Value::Text).collect())
                }
                _ => Value::Null,
            };
        }
        let mut coll = self.model.collection(self.collection).unwrap();
        let mut rec = self.record.clone();
        for (i, seg) in path.iter().enumerate() {
            let field = coll.field(seg).unwrap();
            let v = rec.get(seg).cloned().unwrap_or(Json::Null);
            if i + 1 == path.len() {
                return keel_core::values::from_json(&field.ty, &v);
            }
            let FieldType::Ref { to, .. } = &field.ty else {
                return Value::Null;
            };
            coll = self.model.collection(to).unwrap();
            rec = match v.as_str().and_then(|id| self.all.get(id)) {
                Some(r) => r.clone(),
                None => return Value::Null,
            };
        }
        Value::Null
    }
    fn has_role(&self, role: &str) -> bool {
        self.who.roles.iter().any(|r| r == role)
    }
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

fn allowed(
    model: &Model,
    collection: &str,
    op: Operation,
    record: &Json,
    all: &HashMap<String, Json>,
    who: &Who,
) -> bool {
    let c = model.collection(collection).unwrap();
    match c.access.get(op) {
        None => false,
        Some(rule) => keel_expr::eval(
            &rule.typed,
            &RecordEnv {
                model,
                collection,
                record,
                all,
                who,
            },
        ),
    }
}

async fn call(
    app: &TestApp,
    who: &Who,
    method: Method,
    path: &str,
    body: Option<Json>,
) -> (u16, Json) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = &who.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Json::Null))
}

fn denied(who: &Who) -> u16 {
    if who.token.is_some() { 403 } else { 401 }
}

async fn permission_matrix_matches_the_rules(b: Backend) {
    let spec = include_str!("../../../../examples/social/keel.toml")
        .replace("anonymous = \"60/min\"", "anonymous = \"100000/min\"")
        .replace("authenticated = \"600/min\"", "authenticated = \"100000/min\"")
        .replace("\"POST /v1/posts\" = \"10/min\"", "\"POST /v1/posts\" = \"100000/min\"\n\"POST /v1/auth/signup\" = \"100000/min\"\n\"POST /v1/auth/login\" = \"100000/min\"");
    let app = spawn_app(b, &spec).await;
    let model =
        keel_spec::load_str(&spec, "keel.toml", &std::collections::BTreeMap::new()).unwrap();
    // Principals.
    let mut people = vec![Who {
        name: "anonymous",
        id: None,
        token: None,
        roles: vec![],
    }];
    app.auth
        .create_admin("admin@example.com", "admin password 1")
        .await
        .unwrap();
    for (name, role) in [
        ("owner", None),
        ("other", None),
        ("member", Some("member")),
        ("moderator", Some("moderator")),
        ("admin", None),
    ] {
        let email = format!("{name}@example.com");
        if name != "admin" {
            app.post(
                "/v1/auth/signup",
                json!({"email": email, "password": "a long password"}),
            )
            .await;
        }
        if let Some(role) = role {
            let id = app.auth.user_id_by_email(&email).await.unwrap().unwrap();
            app.auth.set_role("test", &id, role, true).await.unwrap();
        }
        let password = if name == "admin" {
            "admin password 1"
        } else {
            "a long password"
        };
        let s: Json = app
            .post(
                "/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await
            .json()
            .await
            .unwrap();
        let granted: Vec<String> = s["user"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        people.push(Who {
            name,
            id: Some(s["user"]["id"].as_str().unwrap().to_string()),
            token: Some(s["access_token"].as_str().unwrap().to_string()),
            roles: keel_auth::expand_roles(&model, &granted),
        });
    }
    let other_id = people[2].id.clone().unwrap();
    // The owner's records, in every shape the rules distinguish.
    let mut all: HashMap<String, Json> = HashMap::new();
    let mut records: Vec<(&str, Json)> = Vec::new();
    let owner = &people[1];
    for vis in ["public", "followers"] {
        let (_, p) = call(
            &app,
            owner,
            Method::POST,
            "/v1/posts",
            Some(json!({"title": vis, "body": "b", "visibility": vis})),
        )
        .await;
        all.insert(p["id"].as_str().unwrap().into(), p.clone());
        records.push(("posts", p.clone()));
        let (_, c) = call(
            &app,
            owner,
            Method::POST,
            "/v1/comments",
            Some(json!({"post": p["id"], "body": "c"})),
        )
        .await;
        all.insert(c["id"].as_str().unwrap().into(), c.clone());
        records.push(("comments", c));
        let (_, l) = call(
            &app,
            owner,
            Method::POST,
            "/v1/likes",
            Some(json!({"post": p["id"]})),
        )
        .await;
        all.insert(l["id"].as_str().unwrap().into(), l.clone());
        records.push(("likes", l));
    }
    let (_, f) = call(
        &app,
        owner,
        Method::POST,
        "/v1/follows",
        Some(json!({"followee": other_id})),
    )
    .await;
    all.insert(f["id"].as_str().unwrap().into(), f.clone());
    records.push(("follows", f));
    let (_, me) = call(&app, owner, Method::GET, "/v1/auth/me", None).await;
    all.insert(me["id"].as_str().unwrap().into(), me.clone());
    records.push(("users", me));
    assert_eq!(records.len(), 8, "{records:?}");
    // A public post nobody has liked yet, for the create checks.
    let (_, fresh) = call(
        &app,
        &people[2],
        Method::POST,
        "/v1/posts",
        Some(json!({"title": "fresh", "body": "b"})),
    )
    .await;
    all.insert(fresh["id"].as_str().unwrap().into(), fresh.clone());
    let public_post = fresh["id"].clone();
    let member_id = people[3].id.clone().unwrap();
    let moderator_id = people[4].id.clone().unwrap();
    let mut checked = 0;
    for who in &people {
        for (coll, rec) in &records {
            let path = format!("/v1/{coll}/{}", rec["id"].as_str().unwrap());
            // read: get and list agree with the rule
            let can_read = allowed(&model, coll, Operation::Read, rec, &all, who);
            let (status, _) = call(&app, who, Method::GET, &path, None).await;
            assert_eq!(
                status,
                if can_read { 200 } else { 404 },
                "{} read {coll} {rec}",
                who.name
            );
            let (status, page) = call(
                &app,
                who,
                Method::GET,
                &format!(
                    "/v1/{coll}?limit=200&filter=id%20%3D%3D%20%22{}%22",
                    rec["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
            if model.collection(coll).unwrap().access.read.is_some() {
                assert_eq!(status, 200);
                assert_eq!(
                    page["items"].as_array().unwrap().len(),
                    usize::from(can_read),
                    "{} list {coll}",
                    who.name
                );
            }
            // update: a body that changes nothing the rules look at
            let body = match *coll {
                "posts" => json!({"body": "edited"}),
                "comments" => json!({"body": "edited"}),
                "likes" => json!({"post": rec["post"]}),
                "follows" => json!({"followee": rec["followee"]}),
                _ => json!({"name": "edited"}),
            };
            let can_update = allowed(&model, coll, Operation::Update, rec, &all, who);
            let (status, _) = call(&app, who, Method::PATCH, &path, Some(body)).await;
            let expected = if !can_read {
                404
            } else if can_update {
                200
            } else {
                denied(who)
            };
            assert_eq!(status, expected, "{} update {coll} {rec}", who.name);
            checked += 3;
        }
        // create: as themself, pointing at the owner's public post / the other user
        for coll in ["posts", "comments", "likes", "follows"] {
            let body = match coll {
                "posts" => json!({"title": "t", "body": "b"}),
                "comments" => json!({"post": public_post, "body": "c"}),
                "likes" => json!({"post": public_post}),
                _ => {
                    json!({"followee": if who.name == "moderator" { member_id.clone() } else { moderator_id.clone() }})
                }
            };
            let mut as_stored = body.clone();
            let author_field = match coll {
                "likes" => "user",
                "follows" => "follower",
                _ => "author",
            };
            as_stored[author_field] = who.id.clone().map_or(Json::Null, Json::String);
            let can = allowed(&model, coll, Operation::Create, &as_stored, &all, who);
            let (status, created) =
                call(&app, who, Method::POST, &format!("/v1/{coll}"), Some(body)).await;
            assert_eq!(
                status,
                if can { 201 } else { denied(who) },
                "{} create {coll}: {created}",
                who.name
            );
            checked += 1;
            // delete what was just created (or the owner's equivalent) under the delete rule
            if can {
                let can_delete = allowed(&model, coll, Operation::Delete, &created, &all, who);
                let (status, _) = call(
                    &app,
                    who,
                    Method::DELETE,
                    &format!("/v1/{coll}/{}", created["id"].as_str().unwrap()),
                    None,
                )
                .await;
                assert_eq!(
                    status,
                    if can_delete { 204 } else { denied(who) },
                    "{} delete own {coll}",
                    who.name
                );
                checked += 1;
            }
        }
    }
    // Deleting the owner's records, last (it removes them).
    for who in people.iter().rev() {
        for (coll, rec) in records.iter().rev() {
            if !all.contains_key(rec["id"].as_str().unwrap()) {
                continue;
            }
            let can_read = allowed(&model, coll, Operation::Read, rec, &all, who);
            let can_delete = allowed(&model, coll, Operation::Delete, rec, &all, who);
            let (status, _) = call(
                &app,
                who,
                Method::DELETE,
                &format!("/v1/{coll}/{}", rec["id"].as_str().unwrap()),
                None,
            )
            .await;
            let expected = if !can_read {
                404
            } else if can_delete {
                204
            } else {
                denied(who)
            };
            assert!(
                status == expected || (status == 409 && expected == 204),
                "{} delete {coll} {rec}: {status} vs {expected}",
                who.name
            );
            if status == 204 {
                // Every ref of the example cascades: dependents go with the record.
                let mut gone = vec![rec["id"].as_str().unwrap().to_string()];
                while let Some(id) = gone.pop() {
                    all.remove(&id);
                    let dependents: Vec<String> = all
                        .iter()
                        .filter(|(_, r)| {
                            r.as_object()
                                .unwrap()
                                .values()
                                .any(|v| v.as_str() == Some(id.as_str()))
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    gone.extend(dependents);
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}

backend_tests!(permission_matrix_matches_the_rules);
