//! The identity samples: sign-up, login, refresh, me and logout through `/v1/auth/*`,
//! in the order a client makes them. They end with the sample user signed in and
//! holding every role of the model (granted between sign-up and login, as an admin
//! would), so the collection samples show what the rules let a signed-in user do.

use super::exchange::{Recorder, request};
use crate::App;
use keel_core::Principal;
use keel_design::samples::{Endpoint, Exchange};
use keel_spec::Collection;
use serde_json::{Value as Json, json};

/// The sample password (long enough for any `password_min_length` up to 28).
const PASSWORD: &str = "correct horse battery staple";

/// Who the collection samples run as.
pub struct SampleUser {
    pub id: String,
    pub access_token: String,
}

fn endpoint(
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

/// A string member of a JSON answer, or why the flow cannot go on without it.
fn member(x: &Exchange, path: &[&str]) -> Result<String, String> {
    let mut v = x.response.as_ref().unwrap_or(&Json::Null);
    for p in path {
        v = &v[*p];
    }
    v.as_str().map(str::to_string).ok_or_else(|| {
        format!(
            "the scratch app answered {} {} with {}: {}",
            x.method,
            x.path,
            x.status,
            x.response.as_ref().map(Json::to_string).unwrap_or_default()
        )
    })
}

/// Sign up `user` (a valid `users` body), grant it `roles`, sign it in, and record
/// every identity endpoint on the way.
pub async fn record(
    app: &App,
    rec: &Recorder,
    user: &Json,
    roles: &[String],
) -> Result<(SampleUser, Vec<Endpoint>), String> {
    let (signup, id, first_refresh) = signup(rec, user).await?;
    for role in roles {
        app.auth()
            .set_role("keel design", &id, role, true)
            .await
            .map_err(|e| format!("granting `{role}` to the sample user: {e}"))?;
    }
    let email = user["email"].as_str().unwrap_or_default();
    let (login, access_token, refresh_token) = login(rec, email).await?;
    let eps = vec![
        signup,
        login,
        refresh(rec, &refresh_token).await?,
        me(rec, &access_token).await?,
        logout(rec, &first_refresh).await?,
    ];
    Ok((SampleUser { id, access_token }, eps))
}

/// Sign-up; returns the new user's id and refresh token.
async fn signup(rec: &Recorder, user: &Json) -> Result<(Endpoint, String, String), String> {
    let route = "/v1/auth/signup";
    let mut body = user.clone();
    body["password"] = json!(PASSWORD);
    let success = rec
        .send(request("POST", route, Some(body.clone()), ""))
        .await?;
    let id = member(&success, &["user", "id"])?;
    let refresh_token = member(&success, &["refresh_token"])?;
    let mut errors = Vec::new();
    let note = "an email that is already registered";
    let x = request("POST", route, Some(body.clone()), note);
    rec.refusal(x, &mut errors).await?;
    let mut weak = body;
    weak["email"] = json!("grace@example.com");
    weak["password"] = json!("short");
    let x = request("POST", route, Some(weak), "a password that is too short");
    rec.refusal(x, &mut errors).await?;
    let summary = "Create an account and sign in";
    let ep = endpoint("signup", "POST", route, summary, success, errors);
    Ok((ep, id, refresh_token))
}

/// Login; returns the access and refresh tokens.
async fn login(rec: &Recorder, email: &str) -> Result<(Endpoint, String, String), String> {
    let route = "/v1/auth/login";
    let body = json!({"email": email, "password": PASSWORD});
    let success = rec.send(request("POST", route, Some(body), "")).await?;
    let access_token = member(&success, &["access_token"])?;
    let refresh_token = member(&success, &["refresh_token"])?;
    let mut errors = Vec::new();
    let body = json!({"email": email, "password": "not the password"});
    let note = "a wrong password (the same answer as an unknown email)";
    let x = request("POST", route, Some(body), note);
    rec.refusal(x, &mut errors).await?;
    let summary = "Sign in with email and password";
    let ep = endpoint("login", "POST", route, summary, success, errors);
    Ok((ep, access_token, refresh_token))
}

/// Refresh with `token`, then again with the same one.
async fn refresh(rec: &Recorder, token: &str) -> Result<Endpoint, String> {
    let route = "/v1/auth/refresh";
    let body = json!({"refresh_token": token});
    let success = rec
        .send(request("POST", route, Some(body.clone()), ""))
        .await?;
    let mut errors = Vec::new();
    let note = "a refresh token used twice (the whole family is revoked)";
    let x = request("POST", route, Some(body), note);
    rec.refusal(x, &mut errors).await?;
    let summary = "Trade a refresh token for new tokens (rotation)";
    Ok(endpoint("refresh", "POST", route, summary, success, errors))
}

async fn me(rec: &Recorder, access_token: &str) -> Result<Endpoint, String> {
    let route = "/v1/auth/me";
    let mut x = request("GET", route, None, "");
    x.request_headers
        .push(("authorization".into(), format!("Bearer {access_token}")));
    let success = rec.send(x).await?;
    let mut errors = Vec::new();
    let x = request("GET", route, None, "no access token");
    rec.refusal(x, &mut errors).await?;
    Ok(endpoint(
        "me",
        "GET",
        route,
        "The signed-in user",
        success,
        errors,
    ))
}

async fn logout(rec: &Recorder, refresh_token: &str) -> Result<Endpoint, String> {
    let route = "/v1/auth/logout";
    let body = json!({"refresh_token": refresh_token});
    let success = rec.send(request("POST", route, Some(body), "")).await?;
    let summary = "Revoke a refresh token (sign out)";
    Ok(endpoint(
        "logout",
        "POST",
        route,
        summary,
        success,
        Vec::new(),
    ))
}

/// Without password sign-in there are no identity samples: the sample user is made
/// as an admin would (straight through the core, holding `roles`) and signed in as a
/// verified login does.
pub async fn provision(
    app: &App,
    users: &Collection,
    user: &Json,
    roles: &[String],
) -> Result<SampleUser, String> {
    let mut server = serde_json::Map::new();
    server.insert("roles".into(), json!(roles));
    let created = app
        .engine()
        .create_with(&Principal::system(), &users.name, user, None, &server)
        .await
        .map_err(|e| format!("the sample user: {e}"))?;
    let email = user["email"].as_str().unwrap_or_default();
    let (session, _) = app
        .auth()
        .sign_in_verified("keel-design", email, None)
        .await
        .map_err(|e| format!("signing in the sample user: {e}"))?;
    Ok(SampleUser {
        id: created.id,
        access_token: session.access_token,
    })
}
