//! Errors and source positions shared by the parser and the type checker.

/// A byte range in the expression source, so errors can point at the offending text
/// (the spec loader adds the expression's own offset inside keel.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// A range from `start` to `end` (byte offsets).
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// The source could not be parsed: a lexical or syntax error, or a limit was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {}", span.start)]
pub struct ParseError {
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, for a human.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }
}

/// The expression parsed but does not make sense against the data model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {}", span.start)]
pub struct TypeError {
    /// The node the error is about.
    pub span: Span,
    /// What is wrong, for a human.
    pub message: String,
    /// How to fix it, when there is an obvious suggestion.
    pub hint: Option<String>,
}

impl TypeError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
