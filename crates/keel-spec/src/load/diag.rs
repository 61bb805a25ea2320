//! Errors collected across every stage, each placed at file:line:column.

use crate::error::{SourceMap, SpecError, SpecErrors, closest};
use toml::Spanned;

use super::Span;

/// The source being loaded and every error found in it so far. Each stage adds to it
/// and carries on, so one run reports every problem.
pub(super) struct Diagnostics<'s> {
    map: SourceMap<'s>,
    src: &'s str,
    file: &'s str,
    errors: Vec<SpecError>,
}

impl<'s> Diagnostics<'s> {
    pub(super) fn new(src: &'s str, file: &'s str) -> Self {
        Self {
            map: SourceMap::new(src),
            src,
            file,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(
        &mut self,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, column) = self.map.line_col(offset);
        self.errors.push(SpecError {
            file: self.file.to_string(),
            line,
            column,
            offset,
            message: message.into(),
            hint,
        });
    }

    pub(super) fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        section: &str,
        allowed: &[&str],
    ) {
        let name = key.get_ref().as_ref();
        let hint = match closest(name, allowed.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("{section} takes: {}", allowed.join(", ")),
        };
        self.error(
            key.span().start,
            format!("unknown key `{name}` in {section}"),
            Some(hint),
        );
    }

    /// Best-effort position of a word inside a span, for errors found after reading.
    pub(super) fn find_offset(&self, word: &str, within: Span) -> usize {
        self.src
            .get(within.clone())
            .and_then(|s| s.find(word))
            .map(|i| within.start + i)
            .unwrap_or(within.start)
    }

    /// Where byte `index` of a string's value stands in the source, for the string
    /// literal that starts (at its opening quote) at `at`: so an error inside an
    /// expression points at the right column even after an escape (`\"`, `\u00e9`)
    /// or the newline that opens a multi-line string.
    pub(super) fn offset_in_string(&self, at: usize, index: usize) -> usize {
        let rest = self.src.get(at..).unwrap_or("");
        let triple = rest.starts_with("'''") || rest.starts_with("\"\"\"");
        let literal = rest.starts_with('\'');
        let mut start = at + if triple { 3 } else { 1 };
        let mut body = self.src.get(start..).unwrap_or("");
        if triple {
            for newline in ["\r\n", "\n"] {
                if let Some(b) = body.strip_prefix(newline) {
                    start += newline.len();
                    body = b;
                    break;
                }
            }
        }
        if literal {
            return start + index;
        }
        // Walk the source, counting the bytes of value each piece produces.
        let mut produced = 0;
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if produced >= index {
                return start + i;
            }
            if c != '\\' {
                produced += c.len_utf8();
                continue;
            }
            match chars.next() {
                Some((_, u @ ('u' | 'U'))) => {
                    let digits = if u == 'u' { 4 } else { 8 };
                    let hex: String = (0..digits)
                        .filter_map(|_| chars.next())
                        .map(|(_, d)| d)
                        .collect();
                    produced += u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8);
                }
                // A line-ending backslash: it and the whitespace after it vanish.
                Some((_, w)) if w.is_whitespace() => {
                    while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
                }
                Some(_) => produced += 1,
                None => break,
            }
        }
        start + index
    }

    /// `value` when nothing was wrong, else every error in source order.
    pub(super) fn finish<T>(mut self, value: T) -> Result<T, SpecErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.errors.sort_by_key(|e| e.offset);
            Err(SpecErrors(self.errors))
        }
    }

    /// The errors so far, for a stage that cannot go on (the TOML did not parse).
    pub(super) fn fail(self) -> SpecErrors {
        SpecErrors(self.errors)
    }
}
