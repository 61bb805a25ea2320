//! Reading one TOML value as what the spec expects there (a table, a string with
//! `${VAR}` replaced, a bool, a number, a URL, a duration, a name), reporting a
//! mismatch where it stands.

use super::super::diag::Diagnostics;
use super::super::{Environment, Span};
use super::Item;
use toml::de::{DeTable, DeValue};

const MAX_NAME: usize = 63;

/// A value read from the spec with its place.
pub(in crate::load) struct At<T> {
    pub(in crate::load) value: T,
    pub(in crate::load) span: Span,
}

/// The read stage's working state: where errors go and where `${VAR}` comes from.
pub(in crate::load) struct Reader<'a, 's> {
    pub(in crate::load) diag: &'a mut Diagnostics<'s>,
    env: &'a dyn Environment,
}

impl<'a, 's> Reader<'a, 's> {
    pub(super) fn new(diag: &'a mut Diagnostics<'s>, env: &'a dyn Environment) -> Self {
        Self { diag, env }
    }

    pub(super) fn error(
        &mut self,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diag.error(offset, message, hint);
    }

    pub(super) fn unknown_key(
        &mut self,
        key: &toml::Spanned<std::borrow::Cow<'_, str>>,
        section: &str,
        allowed: &[&str],
    ) {
        self.diag.unknown_key(key, section, allowed);
    }

    pub(super) fn table<'t, 'i>(
        &mut self,
        item: &'t Item<'i>,
        what: &str,
    ) -> Option<&'t DeTable<'i>> {
        match item.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a table, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    /// A string, with `${VAR}` replaced from the environment.
    pub(super) fn string(&mut self, item: &Item<'_>, what: &str) -> Option<At<String>> {
        let raw = self.raw_string(item, what)?;
        let value = self.interpolate(&raw.value, raw.span.start)?;
        Some(At {
            value,
            span: raw.span,
        })
    }

    /// A string taken literally (rules and filters are never interpolated).
    pub(super) fn raw_string(&mut self, item: &Item<'_>, what: &str) -> Option<At<String>> {
        match item.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: item.span(),
            }),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a string, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn interpolate(&mut self, s: &str, at: usize) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    at,
                    "unterminated `${` in string",
                    Some("write `${NAME}`".into()),
                );
                return None;
            };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error(
                    at,
                    format!("`${{{name}}}` is not a valid variable name"),
                    None,
                );
                ok = false;
            } else {
                match self.env.var(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        self.error(
                            at,
                            format!("environment variable `{name}` is not set"),
                            Some(format!("export {name}=… before running keel")),
                        );
                        ok = false;
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    pub(super) fn bool(&mut self, item: &Item<'_>, what: &str) -> Option<bool> {
        match item.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be true or false, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn int(&mut self, item: &Item<'_>, what: &str) -> Option<i64> {
        match item.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                match i64::from_str_radix(digits.trim_start_matches('+'), i.radix()) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        self.error(item.span().start, format!("{what} is out of range"), None);
                        None
                    }
                }
            }
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be an integer, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, item: &Item<'_>, what: &str) -> Option<f64> {
        match item.get_ref() {
            DeValue::Float(f) => {
                let s: String = f.as_str().chars().filter(|c| *c != '_').collect();
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Some(v),
                    _ => {
                        self.error(
                            item.span().start,
                            format!("{what} must be a finite number"),
                            None,
                        );
                        None
                    }
                }
            }
            DeValue::Integer(_) => self.int(item, what).map(|v| v as f64),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a number, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn count(&mut self, item: &Item<'_>, what: &str) -> Option<u64> {
        let v = self.int(item, what)?;
        if v < 0 {
            self.error(
                item.span().start,
                format!("{what} cannot be negative"),
                None,
            );
            return None;
        }
        Some(v as u64)
    }

    pub(super) fn string_list(&mut self, item: &Item<'_>, what: &str) -> Option<Vec<At<String>>> {
        match item.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for v in a.iter() {
                    out.push(self.raw_string(v, what)?);
                }
                Some(out)
            }
            other => {
                self.error(
                    item.span().start,
                    format!(
                        "{what} must be an array of strings, found {}",
                        other.type_str()
                    ),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn check_name(&mut self, name: &str, at: usize, what: &str) -> bool {
        let valid = name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            self.error(
                at,
                format!("`{name}` is not a valid {what} name"),
                Some(format!(
                    "use lowercase letters, digits and `_`, starting with a letter, at most {MAX_NAME} characters"
                )),
            );
        }
        valid
    }

    /// An absolute `http(s)://` URL (after `${VAR}`), or an error.
    pub(super) fn url(&mut self, item: &Item<'_>, what: &str) -> Option<String> {
        let s = self.string(item, what)?;
        self.check_url(&s.value, s.span.start, what)
            .then_some(s.value)
    }

    pub(super) fn check_url(&mut self, url: &str, at: usize, what: &str) -> bool {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        let ok = matches!(host, Some(h) if !h.is_empty() && !h.contains(['@', ' ', '\\']))
            && !url.chars().any(char::is_whitespace);
        if !ok {
            self.error(
                at,
                format!("`{what}` must be an absolute http:// or https:// URL, found `{url}`"),
                Some("for example \"https://app.example.com/auth/done\"".into()),
            );
        }
        ok
    }

    /// `"15m"`, `"30d"`, `"1h"`, `"90s"`.
    pub(super) fn duration(&mut self, item: &Item<'_>, what: &str) -> Option<u64> {
        let s = self.string(item, what)?;
        match parse_duration(&s.value) {
            Some(d) if d > 0 => Some(d),
            _ => {
                self.error(
                    s.span.start,
                    format!("`{}` is not a duration", s.value),
                    Some("write a number and a unit: \"90s\", \"15m\", \"1h\", \"30d\"".into()),
                );
                None
            }
        }
    }
}

/// `"15m"` → 900.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `"60/min"` → (60, 60).
pub fn parse_rate(s: &str) -> Option<(u32, u64)> {
    let (n, per) = s.trim().split_once('/')?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        other => parse_duration(other)?,
    };
    Some((n, per))
}
