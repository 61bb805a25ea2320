//! `[events]`: retention, webhooks (with their `filter` typed per collection), NATS and
//! RabbitMQ; what loads with its defaults, and every mistake at its line:column.
#![allow(clippy::unwrap_used)]

use keel_spec::{DEFAULT_EVENT_RETENTION_SECS, Model, SpecError, load_str};
use std::collections::BTreeMap;

/// 32 bytes, as `openssl rand -base64 32` gives.
const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The Standard Webhooks test vector's secret (24 bytes).
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const COLLECTIONS: &str = r#"[app]
name = "my-social.app"

[collections.posts]
fields.title = { type = "text", max_length = 200 }
fields.priority = { type = "int" }
fields.visibility = { type = "enum", values = ["public", "private"] }
fields.author = { type = "ref", to = "users", default = "auth.id", on_delete = "cascade" }
fields.token = { type = "text", hidden = true }
fields.notes = { type = "text", encrypted = true }

[collections.comments]
fields.post = { type = "ref", to = "posts", on_delete = "cascade" }
fields.visibility = { type = "enum", values = ["public", "private"] }

"#;

fn env() -> BTreeMap<String, String> {
    [
        ("MOD_SECRET", SECRET.to_string()),
        ("ROTATING", format!("{SECRET} {OLD_SECRET}")),
        ("KEEL_NATS_URL", "nats://keel:pw@nats.internal:4222".into()),
        ("NOT_WHSEC", "hunter2-hunter2-hunter2-hunter2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn load(events: &str) -> Model {
    let src = format!("{COLLECTIONS}{events}");
    load_str(&src, "keel.toml", &env()).unwrap_or_else(|e| panic!("{e}"))
}

/// The errors of `COLLECTIONS` + `events`; `events` starts on line 16.
fn errors(events: &str) -> Vec<SpecError> {
    let src = format!("{COLLECTIONS}{events}");
    load_str(&src, "keel.toml", &env())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

fn at(errors: &[SpecError], line: usize, column: usize, needle: &str) -> SpecError {
    errors
        .iter()
        .find(|e| e.line == line && e.column == column && e.message.contains(needle))
        .cloned()
        .unwrap_or_else(|| {
            panic!("no error at {line}:{column} containing `{needle}` in:\n{errors:#?}")
        })
}

#[test]
fn a_full_events_section_loads_with_every_value_and_default() {
    let m = load(
        r#"
[events]
retention = "3d"

[events.webhooks.moderation]
url = "https://mod.example.com/hook"
on = ["posts.created", "posts.updated"]
filter = 'visibility == "public" && priority > 2 && author != null'
secret = "${MOD_SECRET}"
allow_private = false

[events.webhooks.audit]
url = "http://127.0.0.1:9000/audit"
on = ["*"]
secret = "${ROTATING}"
allow_private = true

[events.webhooks.public]
url = "https://public.example.com/hook"
on = ["posts.*", "comments.created"]
filter = "visibility == \"public\""

[events.nats]
url = "${KEEL_NATS_URL}"

[events.rabbitmq]
url = "amqps://keel:pw@mq.example.com/%2f"
"#,
    );
    assert_eq!(m.events.retention_secs, 3 * 86_400);
    let nats = m.events.nats.as_ref().unwrap();
    assert_eq!(nats.url, "nats://keel:pw@nats.internal:4222");
    assert_eq!(nats.subject_prefix, "keel.my-social_app");
    assert_eq!(nats.stream, "KEEL_MY_SOCIAL_APP");
    let mq = m.events.rabbitmq.as_ref().unwrap();
    assert_eq!(mq.url, "amqps://keel:pw@mq.example.com/%2f");
    assert_eq!(mq.exchange, "keel");

    let names: Vec<&str> = m.webhooks.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        ["moderation", "audit", "public"],
        "declaration order"
    );
    let hook = |name: &str| m.webhooks.iter().find(|w| w.name == name).unwrap();

    let moderation = hook("moderation");
    assert_eq!(moderation.url, "https://mod.example.com/hook");
    assert_eq!(moderation.on, ["posts.created", "posts.updated"]);
    assert_eq!(moderation.secret.as_deref(), Some(SECRET));
    assert!(!moderation.allow_private);
    assert!(moderation.wants("posts", "created") && !moderation.wants("posts", "deleted"));
    let filter = moderation.filter.as_ref().unwrap();
    assert_eq!(
        filter.source,
        r#"visibility == "public" && priority > 2 && author != null"#
    );
    assert_eq!(filter.typed.keys().collect::<Vec<_>>(), ["posts"]);

    let audit = hook("audit");
    assert!(audit.allow_private && audit.filter.is_none());
    assert_eq!(audit.secrets(), [SECRET, OLD_SECRET]);
    assert_eq!(audit.host(), Some("127.0.0.1"));
    assert!(audit.wants("users", "deleted") && audit.wants("comments", "updated"));
    assert_eq!(audit.collections(&m).len(), 3);

    // One filter, typed for each collection the webhook hears.
    let public = hook("public");
    let typed = &public.filter.as_ref().unwrap().typed;
    assert_eq!(typed.keys().collect::<Vec<_>>(), ["comments", "posts"]);
    assert!(public.wants("comments", "created") && !public.wants("comments", "deleted"));
    assert!(public.secret.is_none());
}

#[test]
fn defaults_when_the_section_says_little() {
    let m = load("");
    assert_eq!(m.events.retention_secs, DEFAULT_EVENT_RETENTION_SECS);
    assert!(m.events.nats.is_none() && m.events.rabbitmq.is_none());
    assert!(m.webhooks.is_empty());

    let m = load(
        r#"
[events.nats]
url = "nats://a:4222, tls://b:4222"
subject_prefix = "acme.prod"
stream = "ACME-EVENTS"
[events.rabbitmq]
url = "amqp://localhost"
exchange = "acme.events"
"#,
    );
    assert_eq!(m.events.retention_secs, DEFAULT_EVENT_RETENTION_SECS);
    let nats = m.events.nats.unwrap();
    assert_eq!(
        (nats.subject_prefix.as_str(), nats.stream.as_str()),
        ("acme.prod", "ACME-EVENTS")
    );
    assert_eq!(m.events.rabbitmq.unwrap().exchange, "acme.events");
}

#[test]
fn a_bad_retention_is_not_a_duration() {
    let e = errors("[events]\nretention = \"a week\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = at(&e, 17, 13, "`a week` is not a duration");
    assert!(e.hint.unwrap().contains("\"30d\""));
    at(
        &errors("[events]\nretention = 7\n"),
        17,
        13,
        "events.retention must be a string",
    );
}

#[test]
fn secrets_must_be_standard_webhooks_secrets() {
    let hook = |secret: &str| {
        format!(
            "[events.webhooks.h]\nurl = \"https://h.example.com\"\non = [\"*\"]\nsecret = \"{secret}\"\n"
        )
    };
    // A literal, and one from the environment.
    for secret in ["not-a-whsec-secret", "${NOT_WHSEC}"] {
        let e = errors(&hook(secret));
        assert_eq!(e.len(), 1, "{e:#?}");
        let e = at(&e, 19, 10, "does not start with `whsec_`");
        assert!(e.message.contains("webhook `h`"), "{e:?}");
        assert_eq!(
            e.hint.as_deref(),
            Some("generate one with `openssl rand -base64 32` and prefix it with whsec_")
        );
        assert!(!e.message.contains("hunter2"), "the secret is never echoed");
    }
    at(
        &errors(&hook("whsec_c2VjcmV0cw==")),
        19,
        10,
        "holds only 7 bytes",
    );
    at(&errors(&hook("whsec_not base64!")), 19, 10, "secret 1 of 2");
    at(
        &errors(&hook(&format!("{SECRET} whsec_%%%%"))),
        19,
        10,
        "secret 2 of 2 is not padded base64",
    );
    assert!(errors(&hook(&format!("{SECRET} {OLD_SECRET}"))).is_empty());
}

#[test]
fn unknown_keys_are_named_with_suggestions() {
    let e = errors(
        r#"[events]
retension = "7d"
[events.webhooks.h]
url = "https://h.example.com"
on = ["*"]
allow_privat = true
[events.nats]
url = "nats://n:4222"
subject = "x"
[events.rabbitmq]
url = "amqp://r"
exchage = "x"
"#,
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    let k = at(&e, 17, 1, "unknown key `retension` in [events]");
    assert_eq!(k.hint.as_deref(), Some("did you mean `retention`?"));
    let k = at(&e, 21, 1, "unknown key `allow_privat` in a webhook");
    assert_eq!(k.hint.as_deref(), Some("did you mean `allow_private`?"));
    at(&e, 24, 1, "unknown key `subject` in [events.nats]");
    let k = at(&e, 27, 1, "unknown key `exchage` in [events.rabbitmq]");
    assert_eq!(k.hint.as_deref(), Some("did you mean `exchange`?"));
}

/// A webhook on `on` with `filter`, the filter on line 19 from column 11.
fn filtered(on: &str, filter: &str) -> Vec<SpecError> {
    errors(&format!(
        "[events.webhooks.h]\nurl = \"https://h.example.com\"\non = {on}\nfilter = '{filter}'\n"
    ))
}

#[test]
fn a_filter_on_an_unknown_field_is_found_per_collection() {
    let e = filtered(r#"["posts.created"]"#, "priorty > 2");
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = at(
        &e,
        19,
        11,
        "filter of webhook `h`: `posts` has no field `priorty`",
    );
    assert!(e.message.contains("did you mean `priority`?"), "{e:?}");

    // `*` hears every collection, and `users` has no `priority`.
    let e = filtered(r#"["*"]"#, "visibility == \"public\" && priority > 2");
    assert_eq!(e.len(), 3, "{e:#?}");
    at(
        &e,
        19,
        11,
        "(for `users` events): `users` has no field `visibility`",
    );
    at(
        &e,
        19,
        37,
        "(for `users` events): `users` has no field `priority`",
    );
    at(
        &e,
        19,
        37,
        "(for `comments` events): `comments` has no field `priority`",
    );
}

#[test]
fn a_filter_cannot_use_auth_input_or_has_role() {
    let e = filtered(r#"["posts.*"]"#, "author == auth.id");
    assert_eq!(e.len(), 1, "{e:#?}");
    at(&e, 19, 21, "`auth` is not available in a webhook filter");
    let e = filtered(r#"["posts.*"]"#, "input.priority > 1");
    at(&e, 19, 11, "`input` is not available in a webhook filter");
    let e = filtered(r#"["posts.*"]"#, "priority > 1 || has_role(\"admin\")");
    assert_eq!(e.len(), 1, "{e:#?}");
    at(
        &e,
        19,
        27,
        "`has_role` is not available in a webhook filter",
    );
    // With several collections, the same mistake is reported once, for all of them.
    let e = filtered(r#"["*"]"#, "auth.id != null");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(!e[0].message.contains("(for "), "{e:#?}");
}

#[test]
fn a_filter_cannot_follow_a_ref_or_read_hidden_fields() {
    let e = filtered(r#"["posts.created"]"#, "author.email == \"a@b.c\"");
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = at(&e, 19, 11, "`author.email` follows a ref");
    assert!(e.message.contains("only its own fields"), "{e:?}");
    let e = filtered(r#"["comments.created"]"#, "post.visibility == \"public\"");
    at(&e, 19, 11, "`post.visibility` follows a ref");
    // Comparing the ref's own id is fine.
    assert!(filtered(r#"["comments.*"]"#, "post != null").is_empty());

    let e = filtered(r#"["posts.created"]"#, "token == \"x\"");
    at(
        &e,
        19,
        11,
        "field `token` is hidden: it never appears in an event",
    );
    let e = filtered(r#"["posts.created"]"#, "notes == \"x\"");
    at(&e, 19, 11, "field `notes` is encrypted");
}

#[test]
fn a_filter_is_type_checked() {
    let e = filtered(r#"["posts.updated"]"#, "priority > \"high\"");
    assert_eq!(e.len(), 1, "{e:#?}");
    at(
        &e,
        19,
        11,
        "filter of webhook `h`: cannot compare Int with Text",
    );
    let e = filtered(r#"["posts.updated"]"#, "visibility == \"secret\"");
    assert_eq!(e.len(), 1, "{e:#?}");
    at(&e, 19, 25, "filter of webhook `h`");
    let e = filtered(r#"["posts.updated"]"#, "priority >");
    at(&e, 19, 21, "filter of webhook `h`: expected a value");
    assert!(filtered(r#"["posts.updated"]"#, "created_at < now()").is_empty());
}

#[test]
fn filter_positions_count_escapes() {
    // In a basic string `\"` is two characters of source for one of the value.
    let e = errors(
        "[events.webhooks.h]\nurl = \"https://h.example.com\"\non = [\"posts.*\"]\nfilter = \"visibility == \\\"public\\\" && priorty > 1\"\n",
    );
    at(&e, 19, 39, "has no field `priorty`");
}

#[test]
fn brokers_need_urls_of_their_scheme() {
    let e = errors("[events.nats]\nsubject_prefix = \"a.b\"\n");
    let e = at(&e, 16, 1, "[events.nats] needs a `url`");
    assert!(e.hint.unwrap().contains("${KEEL_NATS_URL}"));

    let e = errors("[events.rabbitmq]\nurl = \"http://guest:guest@mq.example.com\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = at(
        &e,
        17,
        7,
        "`url` of [events.rabbitmq] needs amqp:// or amqps://, found a `http://` URL",
    );
    assert!(!e.message.contains("guest"), "the URL is never echoed");
    at(
        &errors("[events.rabbitmq]\nexchange = \"x\"\n"),
        16,
        1,
        "[events.rabbitmq] needs a `url`",
    );
    at(
        &errors("[events.nats]\nurl = \"localhost:4222\"\n"),
        17,
        7,
        "found no scheme",
    );
    at(
        &errors("[events.nats]\nurl = \"nats://a:4222,https://b\"\n"),
        17,
        7,
        "found a `https://` URL",
    );
}

#[test]
fn broker_names_are_checked() {
    let e = errors(
        "[events.nats]\nurl = \"nats://n\"\nsubject_prefix = \"keel.*\"\nstream = \"KEEL.X\"\n[events.rabbitmq]\nurl = \"amqp://r\"\nexchange = \"amq.topic\"\n",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    at(&e, 18, 18, "`keel.*` is not a NATS subject prefix");
    at(&e, 19, 10, "`KEEL.X` is not a JetStream stream name");
    at(&e, 22, 12, "`amq.topic` is not a RabbitMQ exchange name");
}

#[test]
fn webhooks_need_a_url_and_events() {
    let e = errors("[events.webhooks.h]\nsecret = \"${MOD_SECRET}\"\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    at(&e, 16, 1, "webhook `h` needs an http(s) `url`");
    at(&e, 16, 1, "webhook `h` needs `on`");
    let e = errors("[events.webhooks.h]\nurl = \"ftp://h\"\non = []\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    at(&e, 17, 7, "needs an http(s) `url`: found a `ftp://` URL");
    at(&e, 18, 6, "webhook `h` listens to no event");
}

#[test]
fn webhooks_listen_to_known_events() {
    let e = errors(
        "[events.webhooks.h]\nurl = \"https://h\"\non = [\"posts.created\", \"post.created\", \"posts.archived\", \"*\", \"*.deleted\"]\n",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    let u = at(&e, 18, 64, "unknown event `*.deleted`");
    assert!(u.hint.unwrap().contains("`*` for every event"));
    let u = at(
        &e,
        18,
        25,
        "unknown event `post.created`: there is no collection `post`",
    );
    assert_eq!(u.hint.as_deref(), Some("did you mean `posts`?"));
    let u = at(&e, 18, 41, "unknown event `posts.archived`");
    assert!(u.hint.unwrap().contains("`posts.deleted`"));
}

#[test]
fn the_json_schema_knows_the_events_keys() {
    let schema = keel_spec::schema::json_schema();
    let events = &schema["properties"]["events"]["properties"];
    for key in ["retention", "webhooks", "nats", "rabbitmq"] {
        assert!(events[key]["description"].is_string(), "{key}");
    }
    let hook = &events["webhooks"]["additionalProperties"]["properties"];
    for key in ["url", "on", "filter", "secret", "allow_private"] {
        assert!(hook[key]["description"].is_string(), "webhook {key}");
    }
    for key in ["url", "subject_prefix", "stream"] {
        assert!(
            events["nats"]["properties"][key]["description"].is_string(),
            "nats {key}"
        );
    }
    for key in ["url", "exchange"] {
        assert!(
            events["rabbitmq"]["properties"][key]["description"].is_string(),
            "rabbitmq {key}"
        );
    }
}
