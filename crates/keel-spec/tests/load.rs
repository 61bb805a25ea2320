//! keel.toml → Model: every error names file:line:column, what is wrong and a hint,
//! and every error of a file is reported at once.

#![allow(clippy::unwrap_used)]

use keel_spec::{FieldType, OnDelete, SpecError, load_str};
use std::collections::BTreeMap;

fn errors(src: &str) -> Vec<SpecError> {
    load_str(src, "keel.toml", &BTreeMap::new())
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
fn the_example_loads() {
    let src = include_str!("../../../examples/social/keel.toml");
    let model = load_str(src, "keel.toml", &BTreeMap::new()).unwrap();
    let names: Vec<&str> = model.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["users", "posts", "comments", "likes", "follows"]);
    let posts = model.collection("posts").unwrap();
    assert_eq!(posts.fields[0].name, "id");
    assert!(matches!(
        posts.field("author").unwrap().ty,
        FieldType::Ref {
            on_delete: OnDelete::Cascade,
            ..
        }
    ));
    assert!(posts.access.update.is_some());
    assert!(
        model.collection("users").unwrap().field("bio").is_some(),
        "users extended"
    );
    assert_eq!(model.limits.len(), 3);
    assert_eq!(model.scale.users, Some(100_000));
}

#[test]
fn all_errors_are_reported_with_positions_and_hints() {
    let src = r#"[app]
name = "x"

[collections.posts]
fields.title = { type = "txt" }
fields.body = { type = "text", min_length = 10, max_length = 5, requird = true }
fields.author = { type = "ref", to = "usres" }
fields.id = { type = "uuid" }
indexes = [["titel"]]
unique = [["body", "nope"]]
access.read = 'bodyy == "x"'
access.update = 'body > 3'
colour = "red"

[collections.auth]
fields.x = { type = "int" }
"#;
    let errs = errors(src);
    let e = at(&errs, 5, 25, "unknown field type `txt`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `text`?"));
    at(&errs, 6, 15, "min_length 10 is greater than max_length 5");
    let e = at(&errs, 6, 65, "unknown key `requird`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `required`?"));
    let e = at(&errs, 7, 38, "unknown collection `usres`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `users`?"));
    at(&errs, 8, 8, "`id` is a system field");
    at(&errs, 9, 14, "index on unknown field `posts.titel`");
    at(
        &errs,
        10,
        21,
        "unique constraint on unknown field `posts.nope`",
    );
    // Rule errors point into the expression.
    let e = at(&errs, 11, 16, "no field `bodyy`");
    assert!(e.message.contains("did you mean `body`?"), "{e:?}");
    at(&errs, 12, 18, "cannot compare Text with Int");
    at(&errs, 13, 1, "unknown key `colour`");
    at(&errs, 15, 14, "`auth` is a reserved name");
    assert_eq!(errs.len(), 11, "{errs:#?}");
    // The rendering a person reads.
    let text = errs[0].to_string();
    assert!(text.starts_with("keel.toml:5:25: error: "), "{text}");
    assert!(text.contains("\n  hint: "), "{text}");
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let errs = errors("[app]\nname = \"x\"\n[collections.posts\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 3, "{errs:?}");
    assert!(errs[0].message.contains("invalid TOML"));
    let errs = errors("[app]\nname = \"x\"\nname = \"y\"\n");
    assert_eq!(errs[0].line, 3, "duplicate keys: {errs:?}");
}

#[test]
fn missing_app_and_bad_values() {
    let errs = errors(
        "[collections.a]\nfields.n = { type = \"enum\" }\nfields.m = { type = \"int\", min = \"1\" }\n",
    );
    assert!(errs.iter().any(|e| e.message.contains("missing [app]")));
    at(&errs, 2, 12, "enum field `n` needs `values`");
    at(&errs, 3, 34, "min must be an integer");
}

#[test]
fn env_interpolation_names_the_missing_variable() {
    let src = "[app]\nname = \"x\"\n[server]\nsecret = \"${KEEL_TEST_SECRET_NOT_SET}\"\n";
    let errs = errors(src);
    let e = at(
        &errs,
        4,
        10,
        "environment variable `KEEL_TEST_SECRET_NOT_SET` is not set",
    );
    assert!(e.hint.unwrap().contains("export KEEL_TEST_SECRET_NOT_SET"));
    let mut env = BTreeMap::new();
    env.insert(
        "S".to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
    );
    let model = load_str(
        "[app]\nname = \"x\"\n[server]\nsecret = \"${S}\"\n",
        "keel.toml",
        &env,
    )
    .unwrap();
    assert_eq!(
        model.server.secret.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
}

#[test]
fn rules_are_type_checked_against_the_model() {
    let base = |rule: &str| {
        format!(
            "[app]\nname = \"x\"\n[collections.t]\nfields.p = {{ type = \"enum\", values = [\"low\", \"high\"] }}\nfields.n = {{ type = \"int\" }}\naccess.read = '{rule}'\n"
        )
    };
    assert!(errors(&base("p == \"high\" && n > 1")).is_empty());
    assert!(errors(&base("auth.has_role(\"admin\") || has_role(\"x\")")).is_empty());
    let e = errors(&base("p == \"urgent\""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].line, e[0].column), (6, 21), "{e:?}");
    assert_eq!(errors(&base("n > \"high\"")).len(), 1);
    assert_eq!(
        errors(&base("input.n > 1")).len(),
        1,
        "input is for create/update rules"
    );
    assert_eq!(errors(&base("n +")).len(), 1);
}

#[test]
fn roles_refs_and_limits_are_resolved() {
    let src = r#"[app]
name = "x"
[roles]
a = { inherits = ["b"] }
b = { inherits = ["a"] }
c = { inherits = ["zzz"] }
[limits]
anonymous = "ten per minute"
"FETCH /x" = "1/s"
[events.webhooks.hook]
url = "ftp://x"
on = ["nope.created"]
"#;
    let errs = errors(src);
    assert!(
        errs.iter().any(|e| e.message.contains("inherits itself")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("unknown role `zzz`"))
    );
    assert!(errs.iter().any(|e| e.message.contains("is not a rate")));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("is not a limit key"))
    );
    assert!(errs.iter().any(|e| e.message.contains("http(s) `url`")));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("unknown event `nope.created`"))
    );
}

#[test]
fn json_schema_knows_every_field_type() {
    let schema = keel_spec::schema::json_schema();
    let types = &schema["properties"]["collections"]["additionalProperties"]["properties"]["fields"]
        ["additionalProperties"]["properties"]["type"]["enum"];
    assert_eq!(
        types.as_array().unwrap().len(),
        keel_spec::load::TYPES.len()
    );
}

#[test]
fn encrypted_fields_stay_out_of_indexes_rules_and_uniques() {
    let src = r#"[app]
name = "x"
[collections.p]
fields.ssn = { type = "text", encrypted = true, unique = true }
fields.n = { type = "int", encrypted = true }
fields.note = { type = "text", encrypted = true }
indexes = [["note"]]
access.read = 'note == "x"'
"#;
    let errs = errors(src);
    at(&errs, 4, 43, "cannot be unique");
    at(&errs, 5, 40, "only text and json fields can be encrypted");
    assert!(
        errs.iter()
            .any(|e| e.message.contains("encrypted and cannot be indexed")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.line == 8 && e.message.contains("is encrypted")),
        "{errs:#?}"
    );
}
