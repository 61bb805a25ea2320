//! The untyped syntax tree produced by [`crate::parse`].
//!
//! It mirrors the grammar closely and carries a [`Span`] on every node so the type
//! checker can point at the exact text. `&&` and `||` chains are stored flat
//! (`And(vec![a, b, c])`) rather than as nested pairs, so a long chain does not turn into
//! a deep tree that every later pass would have to recurse through.

use crate::error::Span;

/// A parsed expression: what it is and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The node itself.
    pub kind: ExprKind,
    /// The source text it was parsed from.
    pub span: Span,
}

/// The shapes an expression can take.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `null`, `true`, `42`, `-1.5`, `"text"`.
    Literal(Literal),
    /// A dotted name such as `visibility`, `author.name` or `auth.id`.
    Path(Vec<String>),
    /// A function call such as `len(tags)`.
    Call {
        /// The function name.
        name: String,
        /// The arguments in order.
        args: Vec<Expr>,
    },
    /// A list literal `[a, b, c]` (possibly empty).
    List(Vec<Expr>),
    /// `!operand`.
    Not(Box<Expr>),
    /// `a && b && …`, two or more operands.
    And(Vec<Expr>),
    /// `a || b || …`, two or more operands.
    Or(Vec<Expr>),
    /// A binary comparison `lhs op rhs`.
    Compare {
        /// Which comparison.
        op: CmpOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
}

/// A constant written in the source.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// A finite floating point number.
    Float(f64),
    /// A quoted string with escapes already decoded.
    Text(String),
}

/// The comparison operators of the `cmp` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `~`: case-insensitive substring test.
    Contains,
    /// `in`: list membership.
    In,
}

impl CmpOp {
    /// The operator as written in the source.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Contains => "~",
            CmpOp::In => "in",
        }
    }
}
