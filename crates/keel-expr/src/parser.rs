//! Recursive-descent parser for Keel expressions.
//!
//! # Grammar
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := not ("&&" not)*
//! not     := "!" not | cmp
//! cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "in") sum)?
//! sum     := primary                      (no arithmetic yet; the rule is where it will go)
//! primary := literal | path | call | "(" expr ")" | "[" (expr ("," expr)*)? "]"
//! literal := "null" | "true" | "false" | number | string
//! path    := ident ("." ident)*           visibility, author.name, auth.id, input.body
//! call    := ("auth" ".")? ident "(" (expr ("," expr)*)? ")"
//!                                         has_role("admin") (also auth.has_role("admin")),
//!                                         len(tags), lower(email), now()
//! number  := "-"? digit+ ("." digit+)? ([eE] [+-]? digit+)?
//!                                         an i64 without fraction/exponent, else a finite f64
//! string  := '"' char* '"' | "'" char* "'"
//!                                         escapes: \" \' \\ \n \t
//! ident   := [A-Za-z_] [A-Za-z0-9_]*      except the keywords null, true, false, in
//! ```
//!
//! Comparisons do not chain (`a == b == c` is an error), so precedence from loosest to
//! tightest is `||`, `&&`, `!`, comparison. Whitespace is spaces, tabs and newlines.
//!
//! Untrusted input (a client's `?filter=`) goes through this parser, so every dimension
//! is bounded by [`Limits`]: source length, nesting depth, list length and string
//! length. Nesting is tracked explicitly, so a deeply nested input yields a
//! [`ParseError`] instead of overflowing the stack.

use crate::ast::{CmpOp, Expr, ExprKind, Literal};
use crate::error::{ParseError, Span};
use crate::lexer::{Tok, Token, tokenize};

/// Bounds on what the parser accepts; the defaults suit rules and query-string filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum source length in bytes.
    pub max_len: usize,
    /// Maximum nesting of parentheses, lists, calls and `!`.
    pub max_depth: usize,
    /// Maximum number of items in one list literal.
    pub max_list: usize,
    /// Maximum length of one decoded string literal in bytes.
    pub max_string: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_len: 2048,
            max_depth: 24,
            max_list: 100,
            max_string: 512,
        }
    }
}

/// Parses `src` with [`Limits::default()`].
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    parse_with(src, &Limits::default())
}

/// Parses `src`, rejecting input beyond `limits`.
pub fn parse_with(src: &str, limits: &Limits) -> Result<Expr, ParseError> {
    if src.len() > limits.max_len {
        return Err(ParseError::new(
            Span::new(limits.max_len, src.len()),
            format!(
                "expression is too long ({} bytes, limit {})",
                src.len(),
                limits.max_len
            ),
        ));
    }
    let tokens = tokenize(src, limits)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        limits,
    };
    let expr = parser.expr()?;
    let next = parser.peek();
    if next.tok != Tok::Eof {
        let message = if is_cmp(&next.tok).is_some() {
            "comparisons cannot be chained; combine them with `&&` or `||`".to_string()
        } else {
            format!("unexpected {} after the expression", next.tok.describe())
        };
        return Err(ParseError::new(next.span, message));
    }
    Ok(expr)
}

fn is_cmp(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::EqEq => CmpOp::Eq,
        Tok::NotEq => CmpOp::Ne,
        Tok::Lt => CmpOp::Lt,
        Tok::Le => CmpOp::Le,
        Tok::Gt => CmpOp::Gt,
        Tok::Ge => CmpOp::Ge,
        Tok::Tilde => CmpOp::Contains,
        Tok::In => CmpOp::In,
        _ => return None,
    })
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    limits: &'a Limits,
}

/// The token list always ends with `Eof`; reading past it keeps returning `Eof`.
static EOF: Token = Token {
    tok: Tok::Eof,
    span: Span { start: 0, end: 0 },
};

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, ParseError> {
        let next = self.peek();
        if next.tok == want {
            Ok(self.bump())
        } else {
            Err(ParseError::new(
                next.span,
                format!("expected {what}, found {}", next.tok.describe()),
            ))
        }
    }

    /// Enters one level of nesting, failing once the depth limit is passed.
    fn enter(&mut self, at: Span) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(ParseError::new(
                at,
                format!(
                    "expression is nested too deeply (limit {})",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.chain(Tok::OrOr)
    }

    /// `or` and `and`: a flat chain of operands separated by `op`.
    fn chain(&mut self, op: Tok) -> Result<Expr, ParseError> {
        let mut items = vec![self.chain_operand(&op)?];
        while self.peek().tok == op {
            self.bump();
            items.push(self.chain_operand(&op)?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let span = match (items.first(), items.last()) {
            (Some(first), Some(last)) => first.span.to(last.span),
            _ => Span::default(),
        };
        let kind = if op == Tok::OrOr {
            ExprKind::Or(items)
        } else {
            ExprKind::And(items)
        };
        Ok(Expr { kind, span })
    }

    fn chain_operand(&mut self, op: &Tok) -> Result<Expr, ParseError> {
        if *op == Tok::OrOr {
            self.chain(Tok::AndAnd)
        } else {
            self.not()
        }
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek().tok != Tok::Bang {
            return self.cmp();
        }
        let bang = self.bump();
        self.enter(bang.span)?;
        let inner = self.not()?;
        self.leave();
        let span = bang.span.to(inner.span);
        Ok(Expr {
            kind: ExprKind::Not(Box::new(inner)),
            span,
        })
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let lhs = self.sum()?;
        let Some(op) = is_cmp(&self.peek().tok) else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.sum()?;
        let span = lhs.span.to(rhs.span);
        Ok(Expr {
            kind: ExprKind::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        })
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.bump();
        let literal = |lit| {
            Ok(Expr {
                kind: ExprKind::Literal(lit),
                span: token.span,
            })
        };
        match &token.tok {
            Tok::Null => literal(Literal::Null),
            Tok::True => literal(Literal::Bool(true)),
            Tok::False => literal(Literal::Bool(false)),
            Tok::Int(i) => literal(Literal::Int(*i)),
            Tok::Float(f) => literal(Literal::Float(*f)),
            Tok::Str(s) => literal(Literal::Text(s.clone())),
            Tok::Ident(name) => self.path_or_call(name.clone(), token.span),
            Tok::LParen => {
                self.enter(token.span)?;
                let inner = self.expr()?;
                let close = self.expect(Tok::RParen, "`)`")?;
                self.leave();
                Ok(Expr {
                    kind: inner.kind,
                    span: token.span.to(close.span),
                })
            }
            Tok::LBracket => {
                self.enter(token.span)?;
                let items = self.items(Tok::RBracket, "list")?;
                let close = self.expect(Tok::RBracket, "`,` or `]`")?;
                self.leave();
                Ok(Expr {
                    kind: ExprKind::List(items),
                    span: token.span.to(close.span),
                })
            }
            other => Err(ParseError::new(
                token.span,
                format!(
                    "expected a value, a field or `(`, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// Comma-separated expressions up to (not including) `close`.
    fn items(&mut self, close: Tok, what: &str) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.peek().tok == close {
            return Ok(items);
        }
        loop {
            let item = self.expr()?;
            if items.len() >= self.limits.max_list {
                return Err(ParseError::new(
                    item.span,
                    format!("{what} has too many items (limit {})", self.limits.max_list),
                ));
            }
            items.push(item);
            if self.peek().tok != Tok::Comma {
                return Ok(items);
            }
            self.bump();
        }
    }

    fn path_or_call(&mut self, first: String, start: Span) -> Result<Expr, ParseError> {
        if self.peek().tok == Tok::LParen {
            let open = self.bump();
            self.enter(open.span)?;
            let args = self.items(Tok::RParen, "argument list")?;
            let close = self.expect(Tok::RParen, "`,` or `)`")?;
            self.leave();
            return Ok(Expr {
                kind: ExprKind::Call { name: first, args },
                span: start.to(close.span),
            });
        }
        let mut segments = vec![first];
        let mut span = start;
        while self.peek().tok == Tok::Dot {
            self.bump();
            let next = self.bump();
            match next.tok {
                Tok::Ident(name) => {
                    segments.push(name);
                    span = span.to(next.span);
                }
                other => {
                    return Err(ParseError::new(
                        next.span,
                        format!(
                            "expected a field name after `.`, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
        }
        if self.peek().tok == Tok::LParen {
            // `auth.has_role("x")` reads as a question to the caller; it is the same
            // call as `has_role("x")`.
            if segments.len() == 2 && segments[0] == "auth" {
                let name = segments.pop().unwrap_or_default();
                return self.path_or_call(name, start);
            }
            return Err(ParseError::new(
                self.peek().span,
                format!("`{}` is not a function name", segments.join(".")),
            ));
        }
        Ok(Expr {
            kind: ExprKind::Path(segments),
            span,
        })
    }
}
