//! Stage 1, parse: TOML text → a syntax tree whose every key and value keeps its span.

use super::diag::Diagnostics;
use toml::Spanned;
use toml::de::DeTable;

/// The spec as a TOML tree, not yet given any meaning.
pub(super) struct Syntax<'s> {
    pub(super) root: Spanned<DeTable<'s>>,
}

/// `None` when the text is not TOML; the error is in `diag`.
pub(super) fn parse<'s>(src: &'s str, diag: &mut Diagnostics<'_>) -> Option<Syntax<'s>> {
    match DeTable::parse(src) {
        Ok(root) => Some(Syntax { root }),
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            diag.error(at, format!("invalid TOML: {}", e.message().trim()), None);
            None
        }
    }
}
