//! `Typed::never_true` / `Typed::always_true` held to the evaluator: a proof is never
//! wrong (random expressions, random rows and callers), and over one Int column
//! compared with constants, where the procedure is complete, it finds every proof.

use crate::common::{Caller, RowEnv, U1};
use crate::common::{Row, typed};
use crate::generate::{caller, checked, expression, row};
use keel_expr::{Nullability, Typed, eval};
use proptest::prelude::*;

fn anything_null(_: &[String]) -> bool {
    true
}

/// `views` is a required column; everything else may be NULL.
fn views_required(p: &[String]) -> bool {
    !(p.len() == 1 && p[0] == "views")
}

fn accepts(t: &Typed, row: &Row, caller: &Caller) -> bool {
    eval(t, &RowEnv { row, caller })
}

/// Checks both proofs of `t` against one row and caller.
fn consistent(
    src: &str,
    t: &Typed,
    nulls: &dyn Nullability,
    row: &Row,
    caller: &Caller,
) -> Result<(), TestCaseError> {
    let result = accepts(t, row, caller);
    if let Some(p) = t.never_true(nulls) {
        prop_assert!(
            !result,
            "`{src}` proved never true ({p:?}) but accepts {row:?} / {caller:?}"
        );
    }
    if let Some(p) = t.always_true(nulls) {
        prop_assert!(
            result,
            "`{src}` proved always true ({p:?}) but refuses {row:?} / {caller:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::generate::config())]

    #[test]
    fn proofs_hold_for_every_row(
        src in expression(),
        rows in proptest::collection::vec(row(), 1..8),
        callers in proptest::collection::vec(caller(), 1..3),
    ) {
        let t = checked(&src)?;
        for row in &rows {
            for caller in &callers {
                consistent(&src, &t, &anything_null, row, caller)?;
                // The same with `views` required, on rows that hold one.
                let row = Row { views: Some(row.views.unwrap_or(2)), ..row.clone() };
                consistent(&src, &t, &views_required, &row, caller)?;
            }
        }
    }

    #[test]
    fn proofs_hold_for_comparisons_of_one_column(
        src in focused(),
        views in proptest::option::of(prop_oneof![(-2_i64..6), Just(i64::MIN), Just(i64::MAX)]),
        title in proptest::option::of(proptest::sample::select(&["", "a", "b", "c"][..])),
    ) {
        let t = checked(&src)?;
        let row = Row { views, title: title.map(str::to_string), ..Row::default() };
        let caller = Caller { auth_id: Some(U1), roles: Vec::new() };
        consistent(&src, &t, &anything_null, &row, &caller)?;
        if views.is_some() {
            consistent(&src, &t, &views_required, &row, &caller)?;
        }
    }
}

/// Expressions over `views` and `title` and few constants, so that contradictions and
/// tautologies come up often.
fn focused() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            proptest::sample::select(&["==", "!=", "<", "<=", ">", ">="][..]),
            proptest::sample::select(&["0", "1", "2", "3", "1.5"][..]),
        )
            .prop_map(|(op, c)| format!("views {op} {c}")),
        (
            proptest::sample::select(&["==", "!=", "<", ">="][..]),
            proptest::sample::select(&["\"\"", "\"a\"", "\"b\""][..]),
        )
            .prop_map(|(op, c)| format!("title {op} {c}")),
        proptest::sample::select(
            &[
                "views == null",
                "views != null",
                "title == null",
                "title != null",
                "views in [1, 2]",
                "views in []",
                "title in [\"a\", null]",
                "views == views",
                "views != views",
                "views < len(title)",
                "len(title) <= views",
                "len(title) == 1",
            ][..]
        )
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("!({e})")),
            proptest::collection::vec(inner.clone(), 2..4)
                .prop_map(|items| format!("({})", items.join(" && "))),
            proptest::collection::vec(inner, 2..4)
                .prop_map(|items| format!("({})", items.join(" || "))),
        ]
    })
}

/// Literals over `views` alone, each with its negation.
const LITERALS: &[&str] = &[
    "views == 1",
    "views != 2",
    "views < 2",
    "views <= 1",
    "views > 2",
    "views >= 3",
    "views in [1, 3]",
    "views == null",
    "views != null",
];

/// Values on every side of the constants above, and the extremes.
const VIEWS: &[i64] = &[i64::MIN, -1, 0, 1, 2, 3, 4, i64::MAX];

/// Over one Int column compared with constants the procedure is complete: a
/// conjunction of up to three literals (or a disjunction of two) is proved never true
/// exactly when no value makes it true, and always true exactly when every value does.
#[test]
fn one_column_proofs_are_complete() {
    let mut literals: Vec<String> = Vec::new();
    for l in LITERALS {
        literals.push((*l).to_string());
        literals.push(format!("!({l})"));
    }
    let mut sources: Vec<String> = Vec::new();
    for (i, a) in literals.iter().enumerate() {
        for (j, b) in literals.iter().enumerate().skip(i + 1) {
            sources.push(format!("{a} || {b}"));
            sources.push(format!("{a} && {b}"));
            for c in literals.iter().skip(j + 1) {
                sources.push(format!("{a} && {b} && {c}"));
            }
        }
    }
    let caller = Caller {
        auth_id: None,
        roles: Vec::new(),
    };
    let mut proved = 0;
    for src in &sources {
        let t = typed(src);
        for (nulls, values) in [
            (
                &anything_null as &dyn Nullability,
                VIEWS
                    .iter()
                    .map(|v| Some(*v))
                    .chain([None])
                    .collect::<Vec<_>>(),
            ),
            (
                &views_required as &dyn Nullability,
                VIEWS.iter().map(|v| Some(*v)).collect(),
            ),
        ] {
            let results: Vec<bool> = values
                .iter()
                .map(|views| {
                    let row = Row {
                        views: *views,
                        ..Row::default()
                    };
                    accepts(&t, &row, &caller)
                })
                .collect();
            let never = t.never_true(nulls).is_some();
            let always = t.always_true(nulls).is_some();
            assert_eq!(never, !results.contains(&true), "never true: `{src}`");
            assert_eq!(always, !results.contains(&false), "always true: `{src}`");
            proved += usize::from(never) + usize::from(always);
        }
    }
    assert!(
        proved > 100,
        "only {proved} proofs: the test lost its teeth"
    );
}
