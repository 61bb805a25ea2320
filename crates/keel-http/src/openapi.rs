//! OpenAPI 3.1 from the model: one schema per collection for records, create and
//! update bodies and list pages; every route with its parameters, examples and error
//! responses; `links` from create to get/update/delete so stateful tools can chain
//! calls. Derived, never written by hand, so it cannot drift from the server.

use keel_core::{DEFAULT_LIMIT, MAX_LIMIT};
use keel_spec::{Collection, Field, FieldType, Model, Operation};
use serde_json::{Map, Value, json};

mod auth;
mod events;

use auth::{auth_paths, oauth_paths};
use events::events_admin_paths;

/// A JSON Schema pattern for text without U+0000.
const NO_NUL: &str = "^[^\\u0000]*$";

/// `posts` → `Posts`, `order_items` → `OrderItems`.
pub fn type_name(collection: &str) -> String {
    collection
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn field_schema(f: &Field) -> Value {
    let mut s = match &f.ty {
        FieldType::Text {
            min_length,
            max_length,
            pattern,
        } => {
            let mut s = json!({"type": "string"});
            if let Some(n) = min_length {
                s["minLength"] = json!(n);
            }
            if let Some(n) = max_length {
                s["maxLength"] = json!(n);
            }
            // Text never holds U+0000 (PostgreSQL cannot store it), so say so.
            s["pattern"] = json!(pattern.clone().unwrap_or_else(|| NO_NUL.to_string()));
            s
        }
        FieldType::Int { min, max } => {
            let mut s = json!({"type": "integer", "format": "int64"});
            s["minimum"] = json!(min.unwrap_or(i64::MIN));
            s["maximum"] = json!(max.unwrap_or(i64::MAX));
            s
        }
        FieldType::Float { min, max } => {
            let mut s = json!({"type": "number", "format": "double"});
            if let Some(n) = min {
                s["minimum"] = json!(n);
            }
            if let Some(n) = max {
                s["maximum"] = json!(n);
            }
            s
        }
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Uuid => json!({"type": "string", "format": "uuid"}),
        FieldType::Ref { to, .. } => {
            json!({"type": "string", "format": "uuid", "description": format!("Id of a `{to}` record.")})
        }
        FieldType::Email => json!({"type": "string", "format": "email", "maxLength": 254}),
        FieldType::Url => {
            json!({"type": "string", "format": "uri", "pattern": "^https?://[^\\s/?#]+[^\\s]*$", "maxLength": 2048})
        }
        FieldType::Enum { values } => json!({"type": "string", "enum": values}),
        FieldType::Json => {
            json!({"description": "Any JSON value; strings in it must not contain U+0000."})
        }
    };
    if let Some(d) = &f.description
        && s.get("description").is_none()
    {
        s["description"] = json!(d);
    }
    s
}

/// Allow `null` in a schema (OpenAPI 3.1 is JSON Schema: a type array).
fn nullable(mut s: Value) -> Value {
    match s.get("type").cloned() {
        Some(Value::String(t)) => {
            s["type"] = json!([t, "null"]);
            if let Some(Value::Array(vals)) = s.get_mut("enum") {
                vals.push(Value::Null);
            }
            s
        }
        _ => s,
    }
}

/// An example value for a field that passes its own constraints (pattern, lengths,
/// bounds); refs get a well-formed id.
fn example_value(f: &Field) -> Value {
    keel_spec::example::example(&f.name, &f.ty, 1)
        .unwrap_or_else(|| json!("0193b1c4-7f2e-7a3b-9c4d-5e6f7a8b9c0d"))
}

fn record_schema(c: &Collection) -> Value {
    let mut props = Map::new();
    for f in c.visible() {
        let s = field_schema(f);
        props.insert(f.name.clone(), if f.required { s } else { nullable(s) });
    }
    let refs: Vec<&Field> = c
        .visible()
        .filter(|f| matches!(f.ty, FieldType::Ref { .. }))
        .collect();
    if !refs.is_empty() {
        let mut ex = Map::new();
        for f in refs {
            if let FieldType::Ref { to, .. } = &f.ty {
                ex.insert(
                    f.name.clone(),
                    json!({"oneOf": [{"$ref": format!("#/components/schemas/{}", type_name(to))}, {"type": "null"}]}),
                );
            }
        }
        props.insert(
            "expand".into(),
            json!({"type": "object", "description": "The records named in `expand`, each under its own read rule (null when missing or not readable).", "properties": ex}),
        );
    }
    // Every field is present unless `fields=` asked for fewer, so none is `required`.
    json!({
        "type": "object",
        "description": c.description.clone().unwrap_or_else(|| format!("A `{}` record. Every field is present unless `fields` selects some.", c.name)),
        "properties": props,
        "additionalProperties": false,
    })
}

fn body_schema(c: &Collection, op: Operation) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    let fields: Vec<&Field> = match op {
        Operation::Create => c.creatable().collect(),
        _ => c.updatable().collect(),
    };
    let mut example = Map::new();
    for f in fields {
        let s = field_schema(f);
        props.insert(f.name.clone(), if f.required { s } else { nullable(s) });
        if op == Operation::Create && f.required && f.default.is_none() {
            required.push(f.name.clone());
        }
        if f.required && f.default.is_none() {
            example.insert(f.name.clone(), example_value(f));
        }
    }
    let mut s = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    if !example.is_empty() {
        s["examples"] = json!([Value::Object(example)]);
    }
    s
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn responses(extra: &[(&str, Value)], errors: &[&str]) -> Value {
    let mut r = Map::new();
    for (code, v) in extra {
        r.insert((*code).to_string(), v.clone());
    }
    for code in errors {
        r.insert(
            (*code).to_string(),
            json!({"$ref": format!("#/components/responses/{code}")}),
        );
    }
    Value::Object(r)
}

const COMMON_ERRORS: &[&str] = &["400", "401", "403", "404", "408", "429", "500"];

/// The OpenAPI 3.1 document for a model.
pub fn document(model: &Model) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), json!({
        "type": "object",
        "description": "RFC 9457 problem details; `type` is one of the rows of /docs/errors.",
        "properties": {
            "type": {"type": "string", "examples": ["/docs/errors#validation"]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "position": {"type": "integer", "description": "Byte offset of the error in a filter."},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}
        },
        "required": ["type", "title", "status", "detail"]
    }));
    schemas.insert("FieldError".into(), json!({
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "code": {"type": "string", "examples": ["required", "too_long", "invalid_enum", "unique"]},
            "message": {"type": "string"}
        },
        "required": ["field", "code", "message"]
    }));

    for c in &model.collections {
        let t = type_name(&c.name);
        schemas.insert(t.clone(), record_schema(c));
        schemas.insert(format!("{t}Create"), body_schema(c, Operation::Create));
        schemas.insert(format!("{t}Update"), body_schema(c, Operation::Update));
        schemas.insert(format!("{t}Page"), json!({
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{t}")}},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page."},
                "total": {"type": "integer", "description": "Present when `count=true`."}
            },
            "required": ["items", "next_cursor"],
            "additionalProperties": false
        }));
        let visible: Vec<String> = c.visible().map(|f| f.name.clone()).collect();
        let refs: Vec<String> = c
            .visible()
            .filter(|f| matches!(f.ty, FieldType::Ref { .. }))
            .map(|f| f.name.clone())
            .collect();
        let record_ref = json!({"$ref": format!("#/components/schemas/{t}")});
        let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}, "description": format!("Id of the `{}` record.", c.name)});
        let names = visible.join("|");
        let sortable: Vec<String> = c
            .visible()
            .filter(|f| f.ty != FieldType::Json)
            .map(|f| f.name.clone())
            .collect();
        let sortable = sortable.join("|");
        let fields_param = json!({"name": "fields", "in": "query", "required": false,
            "schema": {"type": "string", "pattern": format!("^(({names})(,({names}))*)?$")},
            "description": format!("Comma-separated fields to return, of: {}.", visible.join(", "))});
        let expand_param = (!refs.is_empty()).then(|| {
            let r = refs.join("|");
            json!({"name": "expand", "in": "query", "required": false,
                "schema": {"type": "string", "pattern": format!("^(({r})(,({r}))*)?$")},
                "description": format!("Comma-separated ref fields to embed, of: {}.", refs.join(", "))})
        });
        let etag_header = json!({"ETag": {"description": "The record's version, for If-Match.", "schema": {"type": "string"}}});

        let mut list_params = vec![
            json!({"name": "filter", "in": "query", "required": false, "schema": {"type": "string", "format": "keel-filter", "maxLength": 2048}, "description": "An expression over the fields, e.g. `title ~ \"rust\" && created_at > \"2026-01-01T00:00:00Z\"`; see the README's expression language."}),
            json!({"name": "sort", "in": "query", "required": false, "schema": {"type": "string", "pattern": format!("^(-?({sortable})(,-?({sortable})){{0,5}})?$")}, "description": format!("Comma-separated fields, `-` for descending; default `{}`.", c.default_sort.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(","))}),
            json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}}),
            json!({"name": "cursor", "in": "query", "required": false, "schema": {"type": "string", "format": "keel-cursor"}, "description": "`next_cursor` of the previous page (opaque, signed)."}),
            fields_param.clone(),
        ];
        list_params.extend(expand_param.clone());
        list_params.push(json!({"name": "count", "in": "query", "required": false, "schema": {"type": "boolean"}, "description": "Also return `total`, the number of matching records."}));
        let mut get_params = vec![id_param.clone(), fields_param];
        get_params.extend(expand_param);
        let list = json!({
            "operationId": format!("list{t}"),
            "tags": [c.name],
            "summary": format!("List {}", c.name),
            "description": format!("A page of the `{}` records the caller may read. Read rule: `{}`.", c.name, rule_text(c, Operation::Read)),
            "parameters": list_params,
            "responses": responses(&[("200", json!({"description": "A page of records.", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{t}Page")}}}}))], COMMON_ERRORS)
        });
        let create = json!({
            "operationId": format!("create{t}"),
            "tags": [c.name],
            "summary": format!("Create a {} record", c.name),
            "description": format!("Create rule: `{}`. Send `Idempotency-Key` to make retries safe.", rule_text(c, Operation::Create)),
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "format": "keel-idempotency-key", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}, "description": "A unique key per logical request (a UUID is a good choice); a retry with the same key and body replays the first answer."}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{t}Create")}}}},
            "responses": responses(&[("201", json!({
                "description": "Created.",
                "headers": {
                    "Location": {"description": "URL of the new record.", "schema": {"type": "string"}},
                    "ETag": etag_header["ETag"].clone()
                },
                "content": {"application/json": {"schema": record_ref.clone()}},
                "links": {
                    format!("Get{t}"): {"operationId": format!("get{t}"), "parameters": {"id": "$response.body#/id"}},
                    format!("Update{t}"): {"operationId": format!("update{t}"), "parameters": {"id": "$response.body#/id"}},
                    format!("Delete{t}"): {"operationId": format!("delete{t}"), "parameters": {"id": "$response.body#/id"}}
                }
            }))], &["400", "401", "403", "408", "409", "413", "415", "422", "429", "500"])
        });
        paths.insert(
            format!("/v1/{}", c.name),
            json!({"get": list, "post": create}),
        );

        let get = json!({
            "operationId": format!("get{t}"),
            "tags": [c.name],
            "summary": format!("Get a {} record", c.name),
            "parameters": get_params,
            "responses": responses(&[("200", json!({"description": "The record.", "headers": etag_header.clone(), "content": {"application/json": {"schema": record_ref.clone()}}}))], COMMON_ERRORS)
        });
        let if_match = json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string", "format": "keel-etag", "pattern": "^(\\*|(W/)?\"?[0-9]{1,18}\"?)$"}, "description": "The ETag last seen; a stale one answers 412."});
        let update = json!({
            "operationId": format!("update{t}"),
            "tags": [c.name],
            "summary": format!("Update a {} record", c.name),
            "description": format!("Update rule: `{}`.", rule_text(c, Operation::Update)),
            "parameters": [id_param.clone(), if_match.clone()],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{t}Update")}}}},
            "responses": responses(&[("200", json!({"description": "The updated record.", "headers": etag_header, "content": {"application/json": {"schema": record_ref}}}))], &["400", "401", "403", "404", "408", "409", "412", "413", "415", "422", "429", "500"])
        });
        let delete = json!({
            "operationId": format!("delete{t}"),
            "tags": [c.name],
            "summary": format!("Delete a {} record", c.name),
            "description": format!("Delete rule: `{}`.", rule_text(c, Operation::Delete)),
            "parameters": [id_param, if_match],
            "responses": responses(&[("204", json!({"description": "Deleted."}))], &["400", "401", "403", "404", "408", "409", "412", "429", "500"])
        });
        paths.insert(
            format!("/v1/{}/{{id}}", c.name),
            json!({"get": get, "patch": update, "delete": delete}),
        );
    }
    if let Some(users) = model.collection("users") {
        auth_paths(model, users, &mut paths, &mut schemas);
        events_admin_paths(model, &mut paths, &mut schemas);
    }
    if !model.auth.oauth.is_empty() {
        oauth_paths(model, &mut paths);
    }
    paths.insert("/healthz".into(), json!({"get": {
        "operationId": "healthz", "tags": ["operations"], "summary": "Liveness",
        "responses": {"200": {"description": "The process is up.", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}}}}}
    }}));
    paths.insert("/metrics".into(), json!({"get": {
        "operationId": "metrics", "tags": ["operations"], "summary": "Prometheus metrics",
        "responses": {"200": {"description": "Request counts and latency histograms, in the Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}
    }}));
    paths.insert("/readyz".into(), json!({"get": {
        "operationId": "readyz", "tags": ["operations"], "summary": "Readiness: database reachable, migrations applied",
        "responses": {
            "200": {"description": "Ready.", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}, "database": {"type": "string"}, "migrations": {"type": "string"}}, "required": ["status"]}}}},
            "503": {"$ref": "#/components/responses/503"}
        }
    }}));

    let mut error_responses = Map::new();
    for t in crate::problem::problem_types() {
        let code = t.status.to_string();
        if error_responses.contains_key(&code) {
            continue;
        }
        let mut r = problem_response(t.title);
        if t.status == 429 {
            r["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}}});
        }
        if t.status == 405 {
            r["headers"] = json!({"Allow": {"schema": {"type": "string"}}});
        }
        error_responses.insert(code, r);
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": model.app.name,
            "version": "1",
            "description": model.app.description.clone().unwrap_or_else(|| format!("The `{}` API, served by Keel from keel.toml.", model.app.name)),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from /v1/auth/login, /signup or /refresh (EdDSA; keys at /.well-known/jwks.json)."}
            },
        },
        // Every route works anonymously or with a token; the rules decide.
        "security": [{}, {"bearerAuth": []}],
        "tags": model.collections.iter().map(|c| json!({"name": c.name, "description": c.description.clone().unwrap_or_default()})).collect::<Vec<_>>(),
    })
}

fn rule_text(c: &Collection, op: Operation) -> String {
    c.access.get(op).map_or_else(
        || "none: denied to everyone".to_string(),
        |r| r.source.clone(),
    )
}
