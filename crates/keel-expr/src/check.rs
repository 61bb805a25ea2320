//! The type checker: resolves every path against a [`Scope`], checks operand types,
//! turns string literals into the Datetime/Date/Uuid/Enum values they are compared
//! with, and produces a [`Typed`] tree that the evaluator and the SQL compiler share.

use std::collections::HashSet;

use crate::ast::{CmpOp, Expr, ExprKind, Literal};
use crate::error::{Span, TypeError};
use crate::eval;
use crate::types::{Type, Value, normalize, parse_date, parse_datetime, to_utc_micros};

mod coerce;
use coerce::{coerce, coerce_pair, eq_compatible, list_element_type, literal};

/// What the paths of an expression mean, supplied by whoever owns the data model.
pub trait Scope {
    /// Type of a path (`["visibility"]`, `["author","name"]`, `["auth","id"]`,
    /// `["input","body"]`); `Err(message)` when unknown, ideally with a hint such as
    /// "did you mean `author`?".
    fn resolve(&self, path: &[String]) -> Result<Type, String>;
}

/// The functions the language knows, for error hints.
const FUNCTIONS: &str = "has_role(\"role\"), len(x), lower(x), upper(x), now()";

/// A type-checked expression, ready to evaluate or compile to SQL any number of times.
///
/// Built once when the spec loads and kept for the life of the process: it owns all its
/// data, so it is cheap to clone and safe to share between threads.
#[derive(Debug, Clone)]
pub struct Typed {
    pub(crate) root: Node,
}

/// A node of the typed tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) ty: Type,
    pub(crate) span: Span,
}

/// An ordering or equality comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// A literal, already converted to the type it is compared with.
    Lit(Value),
    Path(Vec<String>),
    /// A list literal.
    List(Vec<Node>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// Comparison of two non-null operands; false when either is NULL at run time.
    Cmp(Rel, Box<Node>, Box<Node>),
    /// `x == null` (`negated: false`) or `x != null` (`negated: true`).
    IsNull(Box<Node>, bool),
    /// `a ~ b`.
    Contains(Box<Node>, Box<Node>),
    /// `x in list`: the right side is a list literal, a List path or a Json path.
    In(Box<Node>, Box<Node>),
    HasRole(String),
    Len(Box<Node>),
    Lower(Box<Node>),
    Upper(Box<Node>),
    Now,
}

impl Typed {
    /// Whether the expression reads the clock (`now()`): its SQL then changes with
    /// every request, so it cannot be built once and reused.
    pub fn reads_clock(&self) -> bool {
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            if matches!(node.kind, NodeKind::Now) {
                return true;
            }
            stack.extend(node.children());
        }
        false
    }

    /// Every distinct path the expression reads, in order of first appearance; used for
    /// lints (e.g. "filtering on an unindexed field") and to know what to load.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            if let NodeKind::Path(p) = &node.kind
                && seen.insert(p.clone())
            {
                out.push(p.clone());
            }
            // Push children in reverse so they pop in source order.
            let children = node.children();
            stack.extend(children.into_iter().rev());
        }
        out
    }

    /// The operands of a top-level `||`, each as an expression of its own; empty when
    /// the root is not an `||`. A list can then run one indexed query per operand,
    /// where a single `a || b` makes SQLite merge both indexes and sort every match.
    pub fn disjuncts(&self) -> Vec<Typed> {
        match &self.root.kind {
            NodeKind::Or(items) => items.iter().map(|n| Typed { root: n.clone() }).collect(),
            _ => Vec::new(),
        }
    }

    /// Fields of the record (one-segment paths) compared with `==` to something the
    /// record does not hold (a literal, `auth.*`, `input.*`), at the root or under a
    /// root `&&`: the fields an index can look the matching rows up by.
    pub fn equality_fields(&self) -> Vec<String> {
        let conjuncts: Vec<&Node> = match &self.root.kind {
            NodeKind::And(items) => items.iter().collect(),
            _ => vec![&self.root],
        };
        let outside = |n: &Node| match &n.kind {
            NodeKind::Lit(_) => true,
            NodeKind::Path(p) => p.len() > 1 && matches!(p[0].as_str(), "auth" | "input"),
            _ => false,
        };
        let mut out = Vec::new();
        for n in conjuncts {
            if let NodeKind::Cmp(Rel::Eq, a, b) = &n.kind {
                for (field, other) in [(a, b), (b, a)] {
                    if let NodeKind::Path(p) = &field.kind
                        && p.len() == 1
                        && outside(other)
                    {
                        out.push(p[0].clone());
                    }
                }
            }
        }
        out
    }

    /// `Some(result)` when the expression does not depend on the record, the caller or
    /// the clock (e.g. `true`, `1 < 2`), so rules like `read = "true"` can skip work.
    pub fn is_constant(&self) -> Option<bool> {
        eval::const_truth(&self.root)
    }
}

impl Node {
    fn new(kind: NodeKind, ty: Type, span: Span) -> Self {
        Self { kind, ty, span }
    }

    fn children(&self) -> Vec<&Node> {
        match &self.kind {
            NodeKind::Lit(_) | NodeKind::Path(_) | NodeKind::HasRole(_) | NodeKind::Now => {
                Vec::new()
            }
            NodeKind::List(items) | NodeKind::And(items) | NodeKind::Or(items) => {
                items.iter().collect()
            }
            NodeKind::Not(x)
            | NodeKind::IsNull(x, _)
            | NodeKind::Len(x)
            | NodeKind::Lower(x)
            | NodeKind::Upper(x) => vec![x],
            NodeKind::Cmp(_, a, b) | NodeKind::Contains(a, b) | NodeKind::In(a, b) => {
                vec![a, b]
            }
        }
    }

    /// An untouched string literal, which may still become a Datetime, Date, Uuid or
    /// enum value depending on what it is compared with.
    fn is_text_literal(&self) -> bool {
        matches!(self.kind, NodeKind::Lit(Value::Text(_))) && self.ty == Type::Text
    }

    fn is_null_literal(&self) -> bool {
        matches!(self.kind, NodeKind::Lit(Value::Null))
    }
}

/// Type-checks `expr` against `scope`. The result must be a boolean. All errors found
/// are reported, not just the first.
pub fn check(expr: &Expr, scope: &dyn Scope) -> Result<Typed, Vec<TypeError>> {
    let mut checker = Checker {
        scope,
        errors: Vec::new(),
    };
    let root = checker.node(expr);
    if let Some(root) = &root
        && root.ty != Type::Bool
    {
        checker.errors.push(
            TypeError::new(
                expr.span,
                format!(
                    "the expression must be true or false, but it is {}",
                    root.ty
                ),
            )
            .with_hint("compare it with something, e.g. `x == 1` or `x != null`"),
        );
    }
    match root {
        Some(root) if checker.errors.is_empty() => Ok(Typed { root }),
        _ => Err(checker.errors),
    }
}

struct Checker<'a> {
    scope: &'a dyn Scope,
    errors: Vec<TypeError>,
}

impl Checker<'_> {
    fn fail<T>(&mut self, error: TypeError) -> Option<T> {
        self.errors.push(error);
        None
    }

    /// Checks every node in `exprs`, reporting errors for all of them.
    fn all(&mut self, exprs: &[Expr]) -> Option<Vec<Node>> {
        let nodes: Vec<Option<Node>> = exprs.iter().map(|e| self.node(e)).collect();
        nodes.into_iter().collect()
    }

    fn node(&mut self, expr: &Expr) -> Option<Node> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Literal(lit) => Some(literal(lit, span)),
            ExprKind::Path(path) => match self.scope.resolve(path) {
                Ok(ty) => Some(Node::new(NodeKind::Path(path.clone()), ty, span)),
                Err(message) => self.fail(TypeError::new(span, message)),
            },
            ExprKind::Call { name, args } => self.call(name, args, span),
            ExprKind::List(items) => {
                let items = self.all(items)?;
                self.list(items, span)
            }
            ExprKind::Not(inner) => {
                let inner = self.node(inner)?;
                let inner = self.boolean(inner, "`!`")?;
                Some(Node::new(NodeKind::Not(Box::new(inner)), Type::Bool, span))
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let is_and = matches!(expr.kind, ExprKind::And(_));
                let what = if is_and { "`&&`" } else { "`||`" };
                let nodes: Vec<Option<Node>> = items
                    .iter()
                    .map(|e| self.node(e).and_then(|n| self.boolean(n, what)))
                    .collect();
                let nodes: Vec<Node> = nodes.into_iter().collect::<Option<_>>()?;
                let kind = if is_and {
                    NodeKind::And(nodes)
                } else {
                    NodeKind::Or(nodes)
                };
                Some(Node::new(kind, Type::Bool, span))
            }
            ExprKind::Compare { op, lhs, rhs } => {
                let lhs = self.node(lhs);
                let rhs = self.node(rhs);
                self.compare(*op, lhs?, rhs?, span)
            }
        }
    }

    fn boolean(&mut self, node: Node, what: &str) -> Option<Node> {
        if node.ty == Type::Bool {
            Some(node)
        } else {
            self.fail(TypeError::new(
                node.span,
                format!("{what} needs true/false operands, but this is {}", node.ty),
            ))
        }
    }

    /// A list literal: all items must be comparable with each other; string literals
    /// take the type of the first item that is not a string or null literal.
    fn list(&mut self, items: Vec<Node>, span: Span) -> Option<Node> {
        let anchor = items
            .iter()
            .find(|n| !n.is_text_literal() && !n.is_null_literal())
            .or_else(|| items.iter().find(|n| !n.is_null_literal()))
            .map(|n| n.ty.clone())
            .unwrap_or(Type::Null);
        let items = self.items_as(items, &anchor)?;
        let elem = list_element_type(&items, anchor);
        Some(Node::new(
            NodeKind::List(items),
            Type::List(Box::new(elem)),
            span,
        ))
    }

    /// Converts string literals among `items` to `target` and checks each item can be
    /// compared with a `target` value.
    fn items_as(&mut self, items: Vec<Node>, target: &Type) -> Option<Vec<Node>> {
        let items: Vec<Option<Node>> = items
            .into_iter()
            .map(|item| {
                let item = match coerce(item, target) {
                    Ok(item) => item,
                    Err(e) => return self.fail(e),
                };
                if matches!(item.ty, Type::Json | Type::List(_)) {
                    let message = format!("a list cannot hold {} values", item.ty);
                    self.fail(TypeError::new(item.span, message))
                } else if eq_compatible(&item.ty, target) {
                    Some(item)
                } else {
                    let message =
                        format!("list items must all be {target}, but this is {}", item.ty);
                    self.fail(TypeError::new(item.span, message))
                }
            })
            .collect();
        items.into_iter().collect()
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Node> {
        if name == "has_role" {
            return match args {
                [
                    Expr {
                        kind: ExprKind::Literal(Literal::Text(role)),
                        ..
                    },
                ] => Some(Node::new(NodeKind::HasRole(role.clone()), Type::Bool, span)),
                _ => self.fail(
                    TypeError::new(span, "`has_role` takes one quoted role name")
                        .with_hint("e.g. has_role(\"admin\")"),
                ),
            };
        }
        let arity = match name {
            "len" | "lower" | "upper" => 1,
            "now" => 0,
            _ => {
                // Still check the arguments, so their own errors are reported too.
                let _ = self.all(args);
                return self.fail(
                    TypeError::new(span, format!("unknown function `{name}`"))
                        .with_hint(format!("known functions: {FUNCTIONS}")),
                );
            }
        };
        let args = self.all(args)?;
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            return self.fail(TypeError::new(
                span,
                format!(
                    "`{name}` takes {arity} argument{plural}, got {}",
                    args.len()
                ),
            ));
        }
        let mut args = args.into_iter();
        let Some(arg) = args.next() else {
            return Some(Node::new(NodeKind::Now, Type::Datetime, span));
        };
        let arg_ty = arg.ty.clone();
        let arg_span = arg.span;
        match name {
            "len" if arg_ty.is_textual() || matches!(arg_ty, Type::Json | Type::List(_)) => {
                Some(Node::new(NodeKind::Len(Box::new(arg)), Type::Int, span))
            }
            "lower" if arg_ty.is_textual() => {
                Some(Node::new(NodeKind::Lower(Box::new(arg)), Type::Text, span))
            }
            "upper" if arg_ty.is_textual() => {
                Some(Node::new(NodeKind::Upper(Box::new(arg)), Type::Text, span))
            }
            _ => {
                let wants = if name == "len" {
                    "Text, Json or a list"
                } else {
                    "Text"
                };
                self.fail(TypeError::new(
                    arg_span,
                    format!("`{name}` needs {wants}, but this is {arg_ty}"),
                ))
            }
        }
    }

    fn compare(&mut self, op: CmpOp, lhs: Node, rhs: Node, span: Span) -> Option<Node> {
        match op {
            CmpOp::Eq | CmpOp::Ne => self.equality(op == CmpOp::Ne, lhs, rhs, span),
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => self.ordering(op, lhs, rhs, span),
            CmpOp::Contains => self.contains(lhs, rhs, span),
            CmpOp::In => self.membership(lhs, rhs, span),
        }
    }

    fn equality(&mut self, negated: bool, lhs: Node, rhs: Node, span: Span) -> Option<Node> {
        if rhs.is_null_literal() || lhs.is_null_literal() {
            let operand = if rhs.is_null_literal() { lhs } else { rhs };
            return Some(Node::new(
                NodeKind::IsNull(Box::new(operand), negated),
                Type::Bool,
                span,
            ));
        }
        let (lhs, rhs) = match coerce_pair(lhs, rhs) {
            Ok(pair) => pair,
            Err(e) => return self.fail(e),
        };
        if !eq_compatible(&lhs.ty, &rhs.ty) {
            let mut error =
                TypeError::new(span, format!("cannot compare {} with {}", lhs.ty, rhs.ty));
            if matches!(lhs.ty, Type::Json | Type::List(_))
                || matches!(rhs.ty, Type::Json | Type::List(_))
            {
                error = error.with_hint("Json values and lists can only be compared with null");
            }
            return self.fail(error);
        }
        let rel = if negated { Rel::Ne } else { Rel::Eq };
        Some(Node::new(
            NodeKind::Cmp(rel, Box::new(lhs), Box::new(rhs)),
            Type::Bool,
            span,
        ))
    }

    fn ordering(&mut self, op: CmpOp, lhs: Node, rhs: Node, span: Span) -> Option<Node> {
        if let Some(null) = [&lhs, &rhs].into_iter().find(|n| n.is_null_literal()) {
            let error = TypeError::new(
                null.span,
                format!("`{}` with null is never true", op.symbol()),
            )
            .with_hint("use `== null` or `!= null` to test for a missing value");
            return self.fail(error);
        }
        let (lhs, rhs) = match coerce_pair(lhs, rhs) {
            Ok(pair) => pair,
            Err(e) => return self.fail(e),
        };
        let orderable = (lhs.ty.is_numeric() && rhs.ty.is_numeric())
            || (lhs.ty == Type::Text && rhs.ty == Type::Text)
            || (lhs.ty == Type::Datetime && rhs.ty == Type::Datetime)
            || (lhs.ty == Type::Date && rhs.ty == Type::Date);
        if !orderable {
            let sym = op.symbol();
            let error = if matches!(lhs.ty, Type::Enum(_)) || matches!(rhs.ty, Type::Enum(_)) {
                TypeError::new(
                    span,
                    format!("enum values have no order, so `{sym}` cannot compare them"),
                )
                .with_hint("compare with `==`, or list the accepted values with `in [...]`")
            } else if eq_compatible(&lhs.ty, &rhs.ty) {
                TypeError::new(span, format!("`{sym}` cannot order {} values", lhs.ty))
                    .with_hint("ordering works on Int, Float, Text, Datetime and Date")
            } else {
                TypeError::new(span, format!("cannot compare {} with {}", lhs.ty, rhs.ty))
            };
            return self.fail(error);
        }
        let rel = match op {
            CmpOp::Lt => Rel::Lt,
            CmpOp::Le => Rel::Le,
            CmpOp::Gt => Rel::Gt,
            _ => Rel::Ge,
        };
        Some(Node::new(
            NodeKind::Cmp(rel, Box::new(lhs), Box::new(rhs)),
            Type::Bool,
            span,
        ))
    }

    fn contains(&mut self, lhs: Node, rhs: Node, span: Span) -> Option<Node> {
        let bad: Vec<&Node> = [&lhs, &rhs]
            .into_iter()
            .filter(|n| !n.ty.is_textual())
            .collect();
        if !bad.is_empty() {
            let errors: Vec<TypeError> = bad
                .into_iter()
                .map(|n| {
                    TypeError::new(
                        n.span,
                        format!("`~` needs Text on both sides, but this is {}", n.ty),
                    )
                })
                .collect();
            self.errors.extend(errors);
            return None;
        }
        Some(Node::new(
            NodeKind::Contains(Box::new(lhs), Box::new(rhs)),
            Type::Bool,
            span,
        ))
    }

    fn membership(&mut self, lhs: Node, rhs: Node, span: Span) -> Option<Node> {
        if lhs.is_null_literal() {
            return self.fail(
                TypeError::new(lhs.span, "null is never in a list")
                    .with_hint("use `== null` to test for a missing value"),
            );
        }
        if matches!(lhs.ty, Type::Json | Type::List(_)) {
            return self.fail(TypeError::new(
                lhs.span,
                format!("`in` tests a single value, but this is {}", lhs.ty),
            ));
        }
        let (lhs, rhs) = match (rhs.kind, rhs.ty) {
            (NodeKind::List(items), Type::List(elem)) => {
                let target = if lhs.is_text_literal() {
                    *elem
                } else {
                    lhs.ty.clone()
                };
                let lhs = match coerce(lhs, &target) {
                    Ok(lhs) => lhs,
                    Err(e) => return self.fail(e),
                };
                let items = self.items_as(items, &lhs.ty)?;
                let elem = list_element_type(&items, lhs.ty.clone());
                let list = Node::new(NodeKind::List(items), Type::List(Box::new(elem)), rhs.span);
                (lhs, list)
            }
            (kind, Type::List(elem)) => {
                let lhs = match coerce(lhs, &elem) {
                    Ok(lhs) => lhs,
                    Err(e) => return self.fail(e),
                };
                if !eq_compatible(&lhs.ty, &elem) || *elem == Type::Null {
                    return self.fail(TypeError::new(
                        span,
                        format!("cannot look for {} in a list of {elem}", lhs.ty),
                    ));
                }
                (lhs, Node::new(kind, Type::List(elem), rhs.span))
            }
            (kind, Type::Json) => (lhs, Node::new(kind, Type::Json, rhs.span)),
            (_, other) => {
                return self.fail(
                    TypeError::new(rhs.span, format!("`in` needs a list, but this is {other}"))
                        .with_hint(
                            "write the accepted values as a list, e.g. `x in [\"a\", \"b\"]`",
                        ),
                );
            }
        };
        Some(Node::new(
            NodeKind::In(Box::new(lhs), Box::new(rhs)),
            Type::Bool,
            span,
        ))
    }
}
