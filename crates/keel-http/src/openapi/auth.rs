//! The identity routes: sign-up, login, refresh, logout, me, roles, and OAuth.

use super::*;

pub(super) fn auth_paths(
    model: &Model,
    users: &Collection,
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
) {
    let session = json!({
        "type": "object",
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "Seconds until the access token expires."},
            "refresh_token": {"type": "string", "description": "Opaque; rotated on every use."},
            "user": {"$ref": "#/components/schemas/Users"}
        },
        "required": ["access_token", "token_type", "expires_in", "refresh_token", "user"],
        "additionalProperties": false
    });
    schemas.insert("Session".into(), session);
    let mut signup = body_schema(users, Operation::Create);
    signup["properties"]["password"] =
        json!({"type": "string", "minLength": 8, "maxLength": 256, "pattern": NO_NUL});
    let mut required: Vec<Value> = signup["required"].as_array().cloned().unwrap_or_default();
    required.push(json!("password"));
    signup["required"] = Value::Array(required);
    signup["examples"] =
        json!([{"email": "ada@example.com", "password": "correct horse battery staple"}]);
    schemas.insert("Signup".into(), signup);
    schemas.insert("Login".into(), json!({
        "type": "object",
        "properties": {"email": {"type": "string", "maxLength": 254}, "password": {"type": "string", "maxLength": 1024}},
        "required": ["email", "password"],
        "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
    }));
    schemas.insert(
        "RefreshToken".into(),
        json!({
            "type": "object",
            "properties": {"refresh_token": {"type": "string", "maxLength": 512}},
            "required": ["refresh_token"]
        }),
    );
    let body = |name: &str| json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
    let session_response = |code: &str, what: &str| {
        (
            code.to_string(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}}),
        )
    };
    let r = |ok: (String, Value), errors: &[&str]| {
        let mut m = Map::new();
        m.insert(ok.0, ok.1);
        for e in errors {
            m.insert(
                (*e).to_string(),
                json!({"$ref": format!("#/components/responses/{e}")}),
            );
        }
        Value::Object(m)
    };
    let tag = json!(["auth"]);
    let password = model.auth.password;
    if password {
        paths.insert("/v1/auth/signup".into(), json!({"post": {
            "operationId": "signup", "tags": tag, "summary": "Create an account with a password and sign in",
            "requestBody": body("Signup"),
            "responses": r(session_response("201", "Signed up."), &["400", "408", "409", "413", "415", "422", "429", "500"])
        }}));
        paths.insert("/v1/auth/login".into(), json!({"post": {
            "operationId": "login", "tags": tag, "summary": "Sign in with email and password",
            "description": "An unknown email and a wrong password get the same 401.",
            "requestBody": body("Login"),
            "responses": r(session_response("200", "Signed in."), &["400", "401", "408", "413", "415", "422", "429", "500"])
        }}));
    }
    paths.insert("/v1/auth/refresh".into(), json!({"post": {
        "operationId": "refresh", "tags": tag, "summary": "Exchange a refresh token for new tokens",
        "description": "The token is rotated; presenting a used one again revokes its whole family.",
        "requestBody": body("RefreshToken"),
        "responses": r(session_response("200", "New tokens."), &["400", "401", "408", "413", "415", "422", "429", "500"])
    }}));
    paths.insert("/v1/auth/logout".into(), json!({"post": {
        "operationId": "logout", "tags": tag, "summary": "End the session of a refresh token",
        "requestBody": body("RefreshToken"),
        "responses": r(("204".into(), json!({"description": "Signed out."})), &["400", "408", "413", "415", "422", "429", "500"])
    }}));
    paths.insert("/v1/auth/logout-all".into(), json!({"post": {
        "operationId": "logoutAll", "tags": tag, "summary": "End every session of the signed-in user",
        "security": [{"bearerAuth": []}],
        "responses": r(("204".into(), json!({"description": "Signed out everywhere."})), &["401", "408", "429", "500"])
    }}));
    paths.insert("/v1/auth/me".into(), json!({"get": {
        "operationId": "me", "tags": tag, "summary": "The signed-in user",
        "security": [{"bearerAuth": []}],
        "responses": r(("200".into(), json!({"description": "The user.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Users"}}}})), &["401", "408", "429", "500"])
    }}));
    paths.insert("/.well-known/jwks.json".into(), json!({"get": {
        "operationId": "jwks", "tags": tag, "summary": "Public keys that verify access tokens (RFC 7517)",
        "responses": {"200": {"description": "The key set.", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"keys": {"type": "array", "items": {"type": "object"}}}, "required": ["keys"]}}}}}
    }}));
    let mut roles: Vec<String> = model.roles.keys().cloned().collect();
    roles.push("admin".into());
    roles.sort();
    paths.insert("/v1/admin/users/{id}/roles".into(), json!({"post": {
        "operationId": "grantRole", "tags": ["admin"], "summary": "Grant a role (admins only)",
        "security": [{"bearerAuth": []}],
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"role": {"type": "string", "enum": roles}}, "required": ["role"]}}}},
        "responses": r(("200".into(), json!({"description": "The user with the role.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Users"}}}})), &["400", "401", "403", "404", "408", "413", "415", "422", "429", "500"])
    }}));
    paths.insert("/v1/admin/users/{id}/roles/{role}".into(), json!({"delete": {
        "operationId": "revokeRole", "tags": ["admin"], "summary": "Revoke a role (admins only)",
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}},
            {"name": "role", "in": "path", "required": true, "schema": {"type": "string", "enum": roles}}
        ],
        "responses": r(("200".into(), json!({"description": "The user without the role.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Users"}}}})), &["400", "401", "403", "404", "408", "422", "429", "500"])
    }}));
}

/// `GET /v1/auth/oauth/{provider}` and its callback, when providers are configured.
pub(super) fn oauth_paths(model: &Model, paths: &mut Map<String, Value>) {
    let providers: Vec<&String> = model.auth.oauth.keys().collect();
    let provider = json!({"name": "provider", "in": "path", "required": true,
        "schema": {"type": "string", "enum": providers}, "description": "A provider of `[auth.oauth.*]`."});
    let err = |codes: &[&str]| -> Map<String, Value> {
        codes
            .iter()
            .map(|c| {
                (
                    (*c).to_string(),
                    json!({"$ref": format!("#/components/responses/{c}")}),
                )
            })
            .collect()
    };
    let mut start = err(&["400", "404", "408", "429", "500", "502"]);
    start.insert("302".into(), json!({
        "description": "To the provider's authorization endpoint (code flow with PKCE S256, `state`, and `nonce` for OpenID Connect). Sets the `keel_oauth` cookie that binds the login to this browser.",
        "headers": {
            "Location": {"schema": {"type": "string"}},
            "Set-Cookie": {"schema": {"type": "string"}}
        }
    }));
    paths.insert("/v1/auth/oauth/{provider}".into(), json!({"get": {
        "operationId": "oauthStart", "tags": ["auth"], "summary": "Start an OAuth2 / OpenID Connect login",
        "description": "Open in the browser. The login must finish within 10 minutes, in the same browser.",
        "parameters": [provider.clone(),
            {"name": "redirect_to", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 2048},
             "description": "Where to send the browser at the end, with the tokens in the URL fragment; must be allowed by `[auth] redirect_urls`. Without it the callback answers JSON."}],
        "responses": start
    }}));
    let mut done = err(&["400", "401", "404", "408", "422", "429", "500", "502"]);
    done.insert("200".into(), json!({"description": "Signed in (no `redirect_to`): the same tokens as login. The user is the one with the provider's verified email, created if new.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}}));
    done.insert("302".into(), json!({"description": "Signed in: to `redirect_to#access_token=…&token_type=Bearer&expires_in=…&refresh_token=…&provider=…`.",
        "headers": {"Location": {"schema": {"type": "string"}}}}));
    let q = |name: &str, what: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string", "maxLength": 2048}, "description": what});
    paths.insert("/v1/auth/oauth/{provider}/callback".into(), json!({"get": {
        "operationId": "oauthCallback", "tags": ["auth"], "summary": "Finish an OAuth2 / OpenID Connect login (the provider redirects here)",
        "description": "Register this URL with the provider. The state is single use; an unknown, reused or expired state, another browser, a provider error, an invalid ID token or an unverified email answer 401.",
        "parameters": [provider, q("code", "The authorization code."), q("state", "The state Keel sent."),
            q("error", "The provider's error, if it refused."), q("error_description", "Its description."), q("iss", "The issuer of the response (RFC 9207).")],
        "responses": done
    }}));
}
