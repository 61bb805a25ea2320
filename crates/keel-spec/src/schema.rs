//! The JSON Schema of keel.toml, so editors (Taplo, Even Better TOML) complete and
//! check it. Written by hand beside the loader; a test keeps the two in step.

use serde_json::{Value, json};

/// JSON Schema (draft 2020-12) for keel.toml.
pub fn json_schema() -> Value {
    let rule = json!({"type": "string", "description": "An expression, e.g. 'author == auth.id || visibility == \"public\"'"});
    let key_list = json!({"type": "array", "items": {
    "oneOf": [
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        {"type": "string"}
    ]}});
    let field = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type"],
        "properties": {
            "type": {"enum": crate::load::TYPES},
            "required": {"type": "boolean"},
            "default": {"description": "A constant of the field's type, \"auth.id\" for refs/uuids, or \"now()\" for datetimes/dates"},
            "unique": {"type": "boolean"},
            "immutable": {"type": "boolean", "description": "Set on create, never changed by an update"},
            "readonly": {"type": "boolean", "description": "Set by the server only"},
            "hidden": {"type": "boolean", "description": "Never returned to clients"},
            "encrypted": {"type": "boolean", "description": "Stored encrypted with a key from KEEL_ENCRYPTION_KEYS (text and json fields)"},
            "description": {"type": "string"},
            "min_length": {"type": "integer", "minimum": 0},
            "max_length": {"type": "integer", "minimum": 0},
            "pattern": {"type": "string", "format": "regex"},
            "min": {"type": "number"},
            "max": {"type": "number"},
            "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "to": {"type": "string", "description": "The collection a ref points to"},
            "on_delete": {"enum": ["cascade", "restrict", "set_null"]}
        }
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://keel.dev/schema/keel.toml.json",
        "title": "keel.toml",
        "description": "A Keel backend: collections, fields, rules, limits, events and scale.",
        "type": "object",
        "additionalProperties": false,
        "required": ["app"],
        "properties": {
            "app": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                "name": {"type": "string"}, "description": {"type": "string"}}},
            "server": {"type": "object", "additionalProperties": false, "properties": {
                "addr": {"type": "string", "description": "HOST:PORT to listen on (KEEL_ADDR)"},
                "database": {"type": "string", "description": "sqlite://FILE or postgres://… (KEEL_DATABASE_URL)"},
                "secret": {"type": "string", "minLength": 32, "description": "Signs cursors; use ${VAR}"},
                "log_format": {"enum": ["pretty", "json"]},
                "cors_origins": {"type": "array", "items": {"type": "string"}, "description": "Origins allowed by CORS, e.g. https://app.example.com, or *"},
                "tls_cert": {"type": "string", "description": "PEM certificate chain; with tls_key, serve HTTPS"},
                "tls_key": {"type": "string", "description": "PEM private key"},
                "redis": {"type": "string", "description": "redis://… shared by every node for rate limits, login throttles, the record cache and read-your-writes; use ${KEEL_REDIS_URL}"},
                "trusted_proxies": {"type": "array", "items": {"type": "string"},
                    "description": "Addresses or networks (10.0.0.0/8) of proxies whose X-Forwarded-For / Forwarded name the client (KEEL_TRUSTED_PROXIES)"},
                "replicas": {"type": "array", "items": {"type": "string"},
                    "description": "postgres://… read replicas of the database: reads go to them, writes and a caller's reads right after its writes to the primary (KEEL_DATABASE_REPLICAS)"}}},
            "auth": {"type": "object", "additionalProperties": false, "properties": {
                "password": {"type": "boolean"},
                "password_min_length": {"type": "integer", "minimum": 8, "maximum": 128},
                "access_ttl": {"type": "string", "pattern": "^[0-9]+(s|m|min|h|d|w)$"},
                "refresh_ttl": {"type": "string", "pattern": "^[0-9]+(s|m|min|h|d|w)$"},
                "redirect_urls": {"type": "array", "items": {"type": "string", "pattern": "^https?://"},
                    "description": "Where an OAuth login may return to (`redirect_to`): exact URLs, or prefixes ending in `/*`"},
                "oauth": {"type": "object", "description": "OAuth2 / OpenID Connect providers: google, github, or any name with an `issuer`",
                    "additionalProperties": {"type": "object", "additionalProperties": false,
                    "required": ["client_id", "client_secret"],
                    "properties": {
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "description": "Use ${VAR}"},
                        "issuer": {"type": "string", "pattern": "^https?://", "description": "OpenID Connect issuer; endpoints come from its /.well-known/openid-configuration"},
                        "authorize_url": {"type": "string", "pattern": "^https?://"},
                        "token_url": {"type": "string", "pattern": "^https?://"},
                        "userinfo_url": {"type": "string", "pattern": "^https?://"},
                        "emails_url": {"type": "string", "pattern": "^https?://", "description": "GitHub only: the /user/emails endpoint"},
                        "jwks_url": {"type": "string", "pattern": "^https?://"},
                        "scopes": {"type": "array", "items": {"type": "string"}},
                        "redirect_url": {"type": "string", "pattern": "^https?://", "description": "The callback URL registered with the provider: https://HOST/v1/auth/oauth/NAME/callback"}}}}}},
            "roles": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": false,
                "properties": {"inherits": {"type": "array", "items": {"type": "string"}}}}},
            "collections": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": false, "properties": {
                "description": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": field},
                "indexes": key_list.clone(),
                "unique": key_list,
                "default_sort": {"type": "string", "description": "e.g. \"-created_at\""},
                "access": {"type": "object", "additionalProperties": false, "properties": {
                    "read": rule.clone(), "create": rule.clone(), "update": rule.clone(), "delete": rule}}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9]+/[a-z0-9]+$"},
                "description": "anonymous, authenticated, or \"METHOD /path\" = \"N/period\""},
            "events": {"type": "object", "additionalProperties": false,
                "description": "Every committed change is an event, relayed at least once to each webhook and broker that wants it",
                "properties": {
                "retention": {"type": "string", "pattern": "^[0-9]+(s|m|min|h|d|w)$", "default": "7d",
                    "description": "Delivered events are pruned this long after they occurred, e.g. \"7d\""},
                "webhooks": {"type": "object", "description": "Signed HTTP deliveries (Standard Webhooks), one table per endpoint",
                    "additionalProperties": {"type": "object", "additionalProperties": false,
                    "required": ["url", "on"],
                    "properties": {
                        "url": {"type": "string", "pattern": "^https?://", "description": "Where events are POSTed; use https://"},
                        "on": {"type": "array", "minItems": 1,
                            "items": {"type": "string", "pattern": "^(\\*|[a-z][a-z0-9_]*\\.(created|updated|deleted|\\*))$"},
                            "description": "Events received: \"posts.created\", \"posts.updated\", \"posts.deleted\", \"posts.*\" (every event of a collection) or \"*\" (every event)"},
                        "filter": {"type": "string", "description": "Optional expression over the record's own fields (`data`; `previous` for a delete), e.g. 'visibility == \"public\"'; no auth.*, input.* or paths through refs"},
                        "secret": {"type": "string", "description": "Signing secret whsec_<base64> (Standard Webhooks), several space-separated while rotating; use ${VAR}. Generate one with `openssl rand -base64 32` and prefix it with whsec_"},
                        "allow_private": {"type": "boolean", "default": false, "description": "May reach private and loopback addresses (refused by default)"}}}},
                "nats": {"type": "object", "additionalProperties": false, "required": ["url"],
                    "description": "Publish every event to NATS JetStream, subject <subject_prefix>.<collection>.<created|updated|deleted>",
                    "properties": {
                        "url": {"type": "string", "pattern": "^(nats|tls|ws|wss)://", "description": "nats://HOST:4222 (several comma-separated); use ${VAR}"},
                        "subject_prefix": {"type": "string", "description": "Default keel.<app name>"},
                        "stream": {"type": "string", "description": "JetStream stream, created if missing; default KEEL_<APP NAME>"}}},
                "rabbitmq": {"type": "object", "additionalProperties": false, "required": ["url"],
                    "description": "Publish every event to a RabbitMQ topic exchange, routing key <collection>.<created|updated|deleted>",
                    "properties": {
                        "url": {"type": "string", "pattern": "^amqps?://", "description": "amqp://… or amqps://…; use ${VAR}"},
                        "exchange": {"type": "string", "default": "keel", "description": "The topic exchange events are published to"}}}}},
            "flags": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": false,
                "properties": {"rollout": {"type": "integer", "minimum": 0, "maximum": 100}}}},
            "scale": {"type": "object", "additionalProperties": false, "properties": {
                "users": {"type": "integer", "minimum": 0},
                "peak_rps": {"type": "integer", "minimum": 0},
                "read_write_ratio": {"type": "integer", "minimum": 0},
                "records_per_user": {"type": "integer", "minimum": 0},
                "nodes": {"type": "integer", "minimum": 0}}}
        }
    })
}
