//! Type checker: what is accepted, what is rejected, and where errors point.

use crate::common::{TestScope, type_errors, typed};
use keel_expr::{Scope, Span, Type, check, parse};

fn accepts(src: &str) {
    let _ = typed(src);
}

/// The single error of `src`: (span text, message, hint).
fn one_error(src: &str) -> (String, String, Option<String>) {
    let errors = type_errors(src);
    assert_eq!(errors.len(), 1, "`{src}`: {errors:?}");
    let e = &errors[0];
    (
        src[e.span.start..e.span.end].to_string(),
        e.message.clone(),
        e.hint.clone(),
    )
}

#[test]
fn accepts_well_typed_rules_and_filters() {
    for src in [
        r#"visibility == "public" || author == auth.id"#,
        r#"visibility in ["public", "followers"]"#,
        r#""public" in [visibility]"#,
        r#"created_at > "2024-01-01T00:00:00Z""#,
        r#"created_at <= now()"#,
        r#"created_at in ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00+02:00"]"#,
        r#"day == "2024-02-29" || day < "2023-01-01""#,
        r#"author == "67e55044-10b1-426f-9247-bb680e5fe0c8""#,
        r#"author in [auth.id, "67e55044-10b1-426f-9247-bb680e5fe0c8"]"#,
        "views > 1.5 && score >= 2 && views == score",
        "views in [1, 2.5, null]",
        "tags == null || tags != null",
        "auth.id == null",
        "null == null",
        "len(tags) > 2 && len(title) < 10 && len(auth.roles) == 0 && len([1, 2]) == 2",
        r#"lower(title) ~ "rust" && upper(author.name) == "ANN""#,
        r#"visibility ~ "pub" && title ~ visibility"#,
        r#"has_role("admin") || !published"#,
        "published == true && published != (views > 1)",
        r#""rust" in tags && views in tags && author in tags && published in tags"#,
        r#""admin" in auth.roles && title in auth.roles"#,
        "title < author.name && title >= 'a'",
        "views in []",
    ] {
        accepts(src);
    }
}

#[test]
fn rejects_mismatched_comparisons_with_the_comparison_span() {
    let (at, msg, _) = one_error(r#"views > "high""#);
    assert_eq!(at, r#"views > "high""#);
    assert!(msg.contains("Int") && msg.contains("Text"), "{msg}");

    let (at, msg, hint) = one_error("tags == tags");
    assert_eq!(at, "tags == tags");
    assert!(msg.contains("Json"), "{msg}");
    assert!(hint.is_some_and(|h| h.contains("null")));

    let (_, msg, _) = one_error("published == 1");
    assert!(msg.contains("Bool") && msg.contains("Int"), "{msg}");
    let (_, msg, _) = one_error("author == title");
    assert!(msg.contains("Uuid"), "{msg}");
    let (_, msg, _) = one_error("created_at == day");
    assert!(msg.contains("Datetime") && msg.contains("Date"), "{msg}");
}

#[test]
fn literals_become_the_type_they_are_compared_with() {
    let (at, msg, hint) = one_error(r#"visibility == "secret""#);
    assert_eq!(at, r#""secret""#);
    assert!(msg.contains("secret"), "{msg}");
    assert_eq!(hint.as_deref(), Some("expected one of: public, followers"));

    let (at, _, hint) = one_error(r#"created_at > "yesterday""#);
    assert_eq!(at, r#""yesterday""#);
    assert!(hint.is_some_and(|h| h.contains("RFC 3339")));
    let (at, _, _) = one_error(r#""2024-13-01T00:00:00Z" < created_at"#);
    assert_eq!(at, r#""2024-13-01T00:00:00Z""#, "either side");
    let (at, _, _) = one_error(r#"day != "2023-02-29""#);
    assert_eq!(at, r#""2023-02-29""#);
    let (at, msg, _) = one_error(r#"author == "not-a-uuid""#);
    assert_eq!(at, r#""not-a-uuid""#);
    assert!(msg.contains("UUID"), "{msg}");
    let (at, _, _) = one_error(r#"visibility in ["public", "secret"]"#);
    assert_eq!(at, r#""secret""#);
    let (at, _, _) = one_error(r#"created_at in ["2024-01-01T00:00:00Z", "soon"]"#);
    assert_eq!(at, r#""soon""#);
    let (at, _, _) = one_error(r#""nope" in [visibility]"#);
    assert_eq!(at, r#""nope""#);

    // `~` is a substring test, so any text goes.
    accepts(r#"visibility ~ "secret""#);
}

#[test]
fn ordering_rules() {
    let (at, msg, hint) = one_error(r#"visibility < "public""#);
    assert_eq!(at, r#"visibility < "public""#);
    assert!(msg.contains("enum"), "{msg}");
    assert!(hint.is_some_and(|h| h.contains("in [")));
    let (_, msg, _) = one_error("author > auth.id");
    assert!(msg.contains("Uuid"), "{msg}");
    let (_, msg, _) = one_error("published > false");
    assert!(msg.contains("Bool"), "{msg}");
    let (at, msg, hint) = one_error("views > null");
    assert_eq!(at, "null");
    assert!(msg.contains("null"), "{msg}");
    assert!(hint.is_some_and(|h| h.contains("== null")));
    let (_, msg, _) = one_error(r#"title < 3"#);
    assert!(msg.contains("Text") && msg.contains("Int"), "{msg}");
}

#[test]
fn contains_and_in_rules() {
    let (at, msg, _) = one_error(r#"views ~ "1""#);
    assert_eq!(at, "views");
    assert!(msg.contains('~'), "{msg}");
    assert_eq!(type_errors("views ~ score").len(), 2, "both sides reported");
    assert_eq!(one_error(r#"title ~ null"#).0, "null");

    let (at, msg, _) = one_error("views in title");
    assert_eq!(at, "title");
    assert!(msg.contains("list"), "{msg}");
    let (at, _, hint) = one_error("null in [1]");
    assert_eq!(at, "null");
    assert!(hint.is_some_and(|h| h.contains("== null")));
    let src = "title in [1, 2]";
    let at: Vec<&str> = type_errors(src)
        .iter()
        .map(|e| &src[e.span.start..e.span.end])
        .collect();
    assert_eq!(at, ["1", "2"], "every bad item");
    let (_, msg, _) = one_error("views in auth.roles");
    assert!(msg.contains("Int") && msg.contains("Text"), "{msg}");
    let (at, _, _) = one_error("tags in tags");
    assert_eq!(at, "tags");
    let (at, _, _) = one_error(r#"[1, "a"] == null"#);
    assert_eq!(at, r#""a""#, "list items must agree");
    let (at, msg, _) = one_error("title in [tags]");
    assert_eq!(at, "tags");
    assert!(msg.contains("cannot hold Json"), "{msg}");
}

#[test]
fn functions() {
    let (at, msg, hint) = one_error("frobnicate(title)");
    assert_eq!(at, "frobnicate(title)");
    assert!(msg.contains("frobnicate"), "{msg}");
    let hint = hint.unwrap_or_default();
    for f in ["has_role", "len", "lower", "upper", "now"] {
        assert!(hint.contains(f), "{hint}");
    }
    assert_eq!(
        type_errors("frobnicate(titel) && true").len(),
        2,
        "arguments too"
    );

    let (at, _, hint) = one_error("has_role(title)");
    assert_eq!(at, "has_role(title)");
    assert!(hint.is_some_and(|h| h.contains("has_role(\"admin\")")));
    assert_eq!(type_errors(r#"has_role("a", "b")"#).len(), 1);
    let (at, msg, _) = one_error("len(views) > 1");
    assert_eq!(at, "views");
    assert!(msg.contains("len"), "{msg}");
    let (_, msg, _) = one_error("len(title, title) > 1");
    assert!(msg.contains("1 argument"), "{msg}");
    let (_, msg, _) = one_error("now(1) > created_at");
    assert!(msg.contains("0 arguments"), "{msg}");
    let (at, _, _) = one_error("lower(score) == 'x'");
    assert_eq!(at, "score");
}

#[test]
fn booleans_and_the_result_type() {
    let (at, msg, _) = one_error("views");
    assert_eq!(at, "views");
    assert!(msg.contains("true or false"), "{msg}");
    let (at, _, _) = one_error("!views");
    assert_eq!(at, "views");
    let (at, msg, _) = one_error("published && title");
    assert_eq!(at, "title");
    assert!(msg.contains("&&"), "{msg}");
    let (at, _, _) = one_error("title || published");
    assert_eq!(at, "title");
    assert_eq!(one_error("lower(title)").0, "lower(title)");
    accepts("published");
    accepts("true");
}

#[test]
fn unknown_paths_carry_the_scope_message() {
    let (at, msg, _) = one_error(r#"titel == "x""#);
    assert_eq!(at, "titel");
    assert!(msg.contains("did you mean `title`?"), "{msg}");
}

#[test]
fn reports_every_error() {
    let errors = type_errors(r#"titel == "x" && views > "y" || visibility == "z" || nope"#);
    let spans: Vec<Span> = errors.iter().map(|e| e.span).collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        spans.windows(2).all(|w| w[0].start < w[1].start),
        "in source order"
    );
}

#[test]
fn reads_clock_finds_now_anywhere() {
    assert!(typed("now() > '2024-01-01T00:00:00Z'").reads_clock());
    assert!(typed(r#"author == auth.id || !(created_at < now())"#).reads_clock());
    assert!(!typed(r#"author == auth.id || visibility == "public""#).reads_clock());
    assert!(!typed("has_role('admin') && len(tags) > 1").reads_clock());
}

#[test]
fn paths_and_constants() {
    let t = typed(
        r#"author == auth.id || (visibility == "public" && author == auth.id) || len(tags) > 1"#,
    );
    let paths: Vec<String> = t.paths().iter().map(|p| p.join(".")).collect();
    assert_eq!(paths, ["author", "auth.id", "visibility", "tags"]);

    assert_eq!(typed("true").is_constant(), Some(true));
    assert_eq!(typed("1 < 2.5 && 'a' < 'b'").is_constant(), Some(true));
    assert_eq!(typed("null != null").is_constant(), Some(false));
    assert_eq!(typed("false && title == 'x'").is_constant(), Some(false));
    assert_eq!(typed("title == 'x' || true").is_constant(), Some(true));
    assert_eq!(typed("title == 'x'").is_constant(), None);
    assert_eq!(typed("has_role('admin')").is_constant(), None);
    assert_eq!(typed("now() > '2024-01-01T00:00:00Z'").is_constant(), None);
    assert_eq!(typed("len([title, title]) == 2").is_constant(), Some(true));
    assert_eq!(typed("'x' in [title, 'x']").is_constant(), Some(true));
    assert_eq!(typed("[title] != null").is_constant(), Some(true));
}

#[test]
fn typed_is_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_send_sync::<keel_expr::Typed>();
    let scope: &dyn Scope = &TestScope;
    assert_eq!(scope.resolve(&["tags".into()]), Ok(Type::Json));
    let expr = parse("published").unwrap_or_else(|e| panic!("{e}"));
    assert!(check(&expr, scope).is_ok());
}
