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

    /// How many quote characters open the string at `at` (3 for `'''` and `"""`).
    pub(super) fn quote_len(&self, at: usize) -> usize {
        let rest = self.src.get(at..).unwrap_or("");
        if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            3
        } else {
            1
        }
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
