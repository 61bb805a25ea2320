//! Parser: shapes, precedence, literals, error positions, limits, and no panics.

use keel_expr::{CmpOp, Expr, ExprKind, Limits, Literal, ParseError, Span, parse, parse_with};
use proptest::prelude::*;

/// A compact rendering of the tree, to assert on structure without spans.
fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Literal(Literal::Null) => "null".into(),
        ExprKind::Literal(Literal::Bool(b)) => b.to_string(),
        ExprKind::Literal(Literal::Int(i)) => i.to_string(),
        ExprKind::Literal(Literal::Float(f)) => format!("{f:?}"),
        ExprKind::Literal(Literal::Text(s)) => format!("{s:?}"),
        ExprKind::Path(p) => p.join("."),
        ExprKind::Call { name, args } => {
            format!(
                "{name}({})",
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::List(items) => {
            format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Not(x) => format!("!{}", show(x)),
        ExprKind::And(items) => {
            format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(" && ")
            )
        }
        ExprKind::Or(items) => {
            format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(" || ")
            )
        }
        ExprKind::Compare { op, lhs, rhs } => {
            format!("({} {} {})", show(lhs), op.symbol(), show(rhs))
        }
    }
}

fn ok(src: &str) -> String {
    show(&parse(src).unwrap_or_else(|e| panic!("`{src}`: {e}")))
}

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(e) => panic!("`{src}` parsed as {}", show(&e)),
        Err(e) => e,
    }
}

#[test]
fn precedence_or_and_not_cmp() {
    assert_eq!(ok("a || b && !c == d"), "(a || (b && !(c == d)))");
    assert_eq!(ok("a && b || c && d"), "((a && b) || (c && d))");
    assert_eq!(ok("(a || b) && c"), "((a || b) && c)");
    assert_eq!(ok("!!a"), "!!a");
    assert_eq!(ok("!(a == b)"), "!(a == b)");
    assert_eq!(ok("a || b || c"), "(a || b || c)", "chains are flat");
}

#[test]
fn operators_and_operands() {
    for (src, op) in [
        ("a == 1", CmpOp::Eq),
        ("a != 1", CmpOp::Ne),
        ("a < 1", CmpOp::Lt),
        ("a <= 1", CmpOp::Le),
        ("a > 1", CmpOp::Gt),
        ("a >= 1", CmpOp::Ge),
        ("a ~ 'x'", CmpOp::Contains),
        ("a in [1]", CmpOp::In),
    ] {
        let parsed = parse(src).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(parsed.kind, ExprKind::Compare { op: got, .. } if got == op),
            "{src}"
        );
    }
    assert_eq!(ok("author.name == auth.id"), "(author.name == auth.id)");
    assert_eq!(ok("has_role(\"admin\")"), "has_role(\"admin\")");
    assert_eq!(ok("now() > created_at"), "(now() > created_at)");
    assert_eq!(ok("len(tags) >= 2"), "(len(tags) >= 2)");
    assert_eq!(ok("x in []"), "(x in [])");
    assert_eq!(ok("x in [1, -2, 3.5]"), "(x in [1, -2, 3.5])");
    assert_eq!(
        ok("a==b&&c!=d"),
        "((a == b) && (c != d))",
        "no spaces needed"
    );
    assert_eq!(ok("a\n==\tnull"), "(a == null)");
    assert_eq!(
        ok("in_stock == true"),
        "(in_stock == true)",
        "keyword prefix"
    );
}

#[test]
fn numbers() {
    assert_eq!(ok("a == -1"), "(a == -1)");
    assert_eq!(ok("a == 1.25"), "(a == 1.25)");
    assert_eq!(ok("a == -2.5e3"), "(a == -2500.0)");
    assert_eq!(ok("a == 1E2"), "(a == 100.0)");
    assert_eq!(
        ok("a == -9223372036854775808"),
        "(a == -9223372036854775808)"
    );
    let e = err("a == 9223372036854775808");
    assert_eq!(e.span, Span::new(5, 24));
    assert!(e.message.contains("out of range"), "{e}");
    let e = err("a == 1e999");
    assert!(e.message.contains("out of range"), "{e}");
    assert_eq!(err("a == 12abc").span.start, 5);
    assert_eq!(err("a == 1.").span.start, 6, "a dot needs digits after it");
    assert_eq!(
        err("a == - 1").span.start,
        5,
        "the sign is part of the number"
    );
}

#[test]
fn strings_quotes_and_escapes() {
    assert_eq!(ok(r#"a == "x""#), r#"(a == "x")"#);
    assert_eq!(ok("a == 'x'"), r#"(a == "x")"#);
    assert_eq!(ok(r#"a == "it's""#), r#"(a == "it's")"#);
    assert_eq!(ok(r#"a == 'say "hi"'"#), r#"(a == "say \"hi\"")"#);
    assert_eq!(ok(r#"a == 'it\'s'"#), r#"(a == "it's")"#);
    assert_eq!(ok(r#"a == "\"\\\n\t""#), r#"(a == "\"\\\n\t")"#);
    assert_eq!(ok(r#"a == "héllo ✓""#), r#"(a == "héllo ✓")"#);
    assert_eq!(ok(r#"a == """#), r#"(a == "")"#);

    let e = err(r#"a == "bad \x escape""#);
    assert_eq!(e.span, Span::new(10, 12));
    assert!(e.message.contains("escape"), "{e}");
}

#[test]
fn error_positions() {
    let e = err("a == ");
    assert_eq!(e.span.start, 5, "at the end: {e}");
    assert_eq!(e.to_string(), format!("{} at position 5", e.message));

    let e = err("a === b");
    assert_eq!(e.span.start, 4, "{e}");
    assert!(e.message.contains("=="), "suggests ==: {e}");

    let e = err(r#"title == "abc"#);
    assert_eq!(e.span.start, 9, "at the opening quote: {e}");
    assert!(e.message.contains("unterminated"), "{e}");
    assert_eq!(err(r#"title == "abc\"#).span.start, 9);

    assert_eq!(err("a == b == c").span.start, 7, "comparisons do not chain");
    assert_eq!(err("(a == b").span.start, 7);
    assert_eq!(err("a == b)").span.start, 6);
    assert_eq!(err("").span.start, 0);
    assert_eq!(err("a &&").span.start, 4);
    assert_eq!(err("a & b").span.start, 2);
    assert_eq!(err("a | b").span.start, 2);
    assert_eq!(err("a = b").span.start, 2);
    assert_eq!(err("a == #").span.start, 5);
    assert_eq!(err("a == é").span, Span::new(5, 7), "a whole character");
    assert_eq!(err("a.").span.start, 2);
    assert_eq!(err(".a").span.start, 0);
    assert_eq!(err("a.1 == b").span.start, 2);
    assert_eq!(
        err("author.name(1)").span.start,
        11,
        "only plain names are called"
    );
    assert_eq!(err("len(a,)").span.start, 6);
    assert_eq!(err("[1, 2").span.start, 5);
    assert_eq!(err("in == 1").span.start, 0, "keywords are not names");
    assert_eq!(err("a == null.x").span.start, 9);
}

#[test]
fn spans_cover_the_source() {
    let e = parse(r#"  title ~ "x"  "#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.span, Span::new(2, 13));
    let ExprKind::Compare { lhs, rhs, .. } = &e.kind else {
        panic!("not a comparison")
    };
    assert_eq!(lhs.span, Span::new(2, 7));
    assert_eq!(rhs.span, Span::new(10, 13));
    let e = parse("(a)").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.span, Span::new(0, 3), "parentheses are part of the span");
    let e = parse("f(a, b) && x.y").unwrap_or_else(|e| panic!("{e}"));
    let ExprKind::And(items) = &e.kind else {
        panic!("not an and")
    };
    assert_eq!(items[0].span, Span::new(0, 7));
    assert_eq!(items[1].span, Span::new(11, 14));
}

#[test]
fn limits_nesting() {
    // 1000 levels fit in 2048 bytes, so it is the depth limit that trips, not the length.
    let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
    let e = err(&deep);
    assert!(e.message.contains("nested too deeply"), "{e}");
    assert_eq!(e.span.start, 24, "the 25th parenthesis");

    let bangs = format!("{}a", "!".repeat(1000));
    assert!(err(&bangs).message.contains("nested too deeply"));
    let lists = format!("a in {}1{}", "[".repeat(500), "]".repeat(500));
    assert!(err(&lists).message.contains("nested too deeply"));
    let calls = format!("{}a{}", "len(".repeat(300), ")".repeat(300));
    assert!(err(&calls).message.contains("nested too deeply"));

    // Even with generous limits a deep input is an error, not a stack overflow.
    let limits = Limits {
        max_len: 1 << 20,
        max_depth: 64,
        ..Limits::default()
    };
    let deeper = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_with(&deeper, &limits).is_err());

    let ok_depth = format!("{}a{}", "(".repeat(23), ")".repeat(23));
    assert!(parse(&ok_depth).is_ok(), "23 levels are fine");
}

#[test]
fn limits_length_lists_strings() {
    let long = vec!["a == 1"; 1500].join(" || ");
    assert!(long.len() > 10_000);
    let e = err(&long);
    assert!(e.message.contains("too long"), "{e}");
    assert_eq!(e.span.start, 2048);
    let roomy = Limits {
        max_len: 20_000,
        ..Limits::default()
    };
    let parsed = parse_with(&long, &roomy).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&parsed.kind, ExprKind::Or(items) if items.len() == 1500));

    let items = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    assert!(parse(&format!("a in [{}]", items(100))).is_ok());
    let e = err(&format!("a in [{}]", items(200)));
    assert!(e.message.contains("too many items"), "{e}");
    assert!(
        err(&format!("f({})", items(101)))
            .message
            .contains("too many")
    );

    let big_number = format!("a == {}", "9".repeat(500));
    assert!(err(&big_number).message.contains("out of range"));
    let big_float = format!("a == 1.{}", "9".repeat(500));
    assert!(parse(&big_float).is_ok(), "long fractions round");

    assert!(parse(&format!("a == \"{}\"", "x".repeat(512))).is_ok());
    let e = err(&format!("a == \"{}\"", "x".repeat(513)));
    assert!(e.message.contains("string literal is too long"), "{e}");
    assert_eq!(e.span.start, 5);
}

/// Tokens of the grammar, valid and not, for random soups.
const TOKENS: &[&str] = &[
    "a", "b.c", "auth.id", "null", "true", "false", "in", "1", "-2", "3.5", "1e3", "\"s\"", "'t'",
    "\"", "'", "\\", "==", "!=", "<", "<=", ">", ">=", "~", "!", "&&", "||", "(", ")", "[", "]",
    ",", ".", "len", "has_role", "now", "=", "&", "|", "-", "é", " ", "\n",
];

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(src in "\\PC{0,200}") {
        let _ = parse(&src);
    }

    #[test]
    fn parse_never_panics_on_bytes_as_text(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = parse(&src);
    }

    #[test]
    fn parse_never_panics_on_token_soup(
        tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..60),
        glue in proptest::sample::select(&["", " "][..]),
    ) {
        let src = tokens.join(glue);
        match parse(&src) {
            Ok(expr) => {
                prop_assert!(expr.span.end <= src.len());
            }
            Err(e) => {
                prop_assert!(e.span.start <= src.len(), "{} in {:?}", e, src);
            }
        }
    }
}
