//! Turns source text into tokens. Every token carries its byte span; every error points
//! at the character that could not be understood.

use crate::error::{ParseError, Span};
use crate::parser::Limits;

/// One lexical unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Null,
    True,
    False,
    In,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Tilde,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Null => "`null`".into(),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::In => "`in`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::NotEq => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Tilde => "`~`".into(),
            Tok::Bang => "`!`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str, limits: &Limits) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
        limits,
    };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let eof = token.tok == Tok::Eof;
        out.push(token);
        if eof {
            return Ok(out);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl Lexer<'_> {
    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        while let Some(b) = self.peek_at(0) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(b) = self.peek_at(0) else {
            return Ok(self.token(Tok::Eof, start));
        };
        let next = self.peek_at(1);
        let (tok, len) = match (b, next) {
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'!', Some(b'=')) => (Tok::NotEq, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'&', Some(b'&')) => (Tok::AndAnd, 2),
            (b'|', Some(b'|')) => (Tok::OrOr, 2),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'!', _) => (Tok::Bang, 1),
            (b'~', _) => (Tok::Tilde, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'.', _) => (Tok::Dot, 1),
            (b'"' | b'\'', _) => return self.string(b),
            (b'0'..=b'9', _) => return self.number(),
            (b'-', Some(b'0'..=b'9')) => return self.number(),
            (b'a'..=b'z' | b'A'..=b'Z' | b'_', _) => return Ok(self.ident()),
            (b'=', _) => return Err(self.error(start, 1, "unexpected `=`; use `==` to compare")),
            (b'&', _) => return Err(self.error(start, 1, "unexpected `&`; use `&&` for \"and\"")),
            (b'|', _) => return Err(self.error(start, 1, "unexpected `|`; use `||` for \"or\"")),
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                return Err(self.error(
                    start,
                    ch.len_utf8(),
                    format!("unexpected character `{}`", ch.escape_debug()),
                ));
            }
        };
        self.pos += len;
        Ok(self.token(tok, start))
    }

    fn token(&self, tok: Tok, start: usize) -> Token {
        Token {
            tok,
            span: Span::new(start, self.pos),
        }
    }

    fn error(&self, start: usize, len: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(Span::new(start, start + len), message)
    }

    fn ident(&mut self) -> Token {
        let start = self.pos;
        while let Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') = self.peek_at(0) {
            self.pos += 1;
        }
        let tok = match &self.src[start..self.pos] {
            "null" => Tok::Null,
            "true" => Tok::True,
            "false" => Tok::False,
            "in" => Tok::In,
            name => Tok::Ident(name.to_string()),
        };
        self.token(tok, start)
    }

    fn eat_digits(&mut self) -> usize {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.peek_at(0) {
            self.pos += 1;
        }
        self.pos - from
    }

    /// `-? digits ("." digits)? ([eE] [+-]? digits)?`
    fn number(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        if self.peek_at(0) == Some(b'-') {
            self.pos += 1;
        }
        self.eat_digits();
        let mut is_float = false;
        if self.peek_at(0) == Some(b'.') && matches!(self.peek_at(1), Some(b'0'..=b'9')) {
            self.pos += 1;
            self.eat_digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek_at(0) {
            let save = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek_at(0) {
                self.pos += 1;
            }
            if self.eat_digits() == 0 {
                self.pos = save;
            } else {
                is_float = true;
            }
        }
        if let Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'0'..=b'9') = self.peek_at(0) {
            return Err(self.error(start, self.pos + 1 - start, "malformed number"));
        }
        let text = &self.src[start..self.pos];
        let span = Span::new(start, self.pos);
        let tok = if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Tok::Float(f),
                _ => return Err(ParseError::new(span, "number is out of range")),
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => Tok::Int(i),
                Err(_) => {
                    return Err(ParseError::new(
                        span,
                        "integer is out of range (must fit in 64 bits)",
                    ));
                }
            }
        };
        Ok(Token { tok, span })
    }

    fn string(&mut self, quote: u8) -> Result<Token, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(b) = self.peek_at(0) else {
                return Err(ParseError::new(
                    Span::new(start, self.pos),
                    "unterminated string",
                ));
            };
            if b == quote {
                self.pos += 1;
                break;
            }
            if b == b'\\' {
                let decoded = match self.peek_at(1) {
                    Some(b'"') => '"',
                    Some(b'\'') => '\'',
                    Some(b'\\') => '\\',
                    Some(b'n') => '\n',
                    Some(b't') => '\t',
                    None => {
                        return Err(ParseError::new(
                            Span::new(start, self.pos + 1),
                            "unterminated string",
                        ));
                    }
                    Some(_) => {
                        let ch = self.src[self.pos + 1..].chars().next().unwrap_or('?');
                        return Err(self.error(
                            self.pos,
                            1 + ch.len_utf8(),
                            format!(
                                "unknown escape `\\{}`; use \\\" \\' \\\\ \\n or \\t",
                                ch.escape_debug()
                            ),
                        ));
                    }
                };
                out.push(decoded);
                self.pos += 2;
            } else {
                // Copy one whole UTF-8 character.
                let ch = self.src[self.pos..].chars().next().unwrap_or('\u{FFFD}');
                out.push(ch);
                self.pos += ch.len_utf8();
            }
            if out.len() > self.limits.max_string {
                return Err(ParseError::new(
                    Span::new(start, self.pos),
                    format!(
                        "string literal is too long (limit {} bytes)",
                        self.limits.max_string
                    ),
                ));
            }
        }
        Ok(self.token(Tok::Str(out), start))
    }
}
