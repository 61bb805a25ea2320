//! How a query's rows are taken from the driver: as one JSON value per column
//! ([`Values`], what most callers want), or written straight into JSON object text
//! ([`Objects`]) for answers that are records as stored: no map per row, no key
//! string per value, nothing serialized twice.

use crate::Row;
use crate::bind::{pg_json, sqlite_json};
use keel_spec::Storage;

/// Takes each row of a query as the driver yields it.
pub trait RowSink: Send {
    fn sqlite(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()>;
    fn postgres(&mut self, row: &tokio_postgres::Row) -> Result<(), tokio_postgres::Error>;
    /// Forget the rows taken so far (a replica failed; the primary answers instead).
    fn clear(&mut self);
}

/// Rows as JSON values, one per column, by the storage class of each.
pub(crate) struct Values<'a> {
    pub columns: &'a [Storage],
    pub rows: Vec<Row>,
}

impl<'a> Values<'a> {
    pub fn new(columns: &'a [Storage]) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }
}

impl RowSink for Values<'_> {
    fn sqlite(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (i, storage) in self.columns.iter().enumerate() {
            values.push(sqlite_json(row, i, *storage)?);
        }
        self.rows.push(values);
        Ok(())
    }

    fn postgres(&mut self, row: &tokio_postgres::Row) -> Result<(), tokio_postgres::Error> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (i, storage) in self.columns.iter().enumerate() {
            values.push(pg_json(row, i, *storage)?);
        }
        self.rows.push(values);
        Ok(())
    }

    fn clear(&mut self) {
        self.rows.clear();
    }
}

/// The columns of a record as JSON object keys, written once (per collection) rather
/// than per row; which of them is the record's `version`.
#[derive(Debug, Clone)]
pub struct ObjectShape {
    /// `{"name":` for the first column, `,"name":` for the others.
    keys: Vec<(String, Storage)>,
    version: Option<usize>,
}

impl ObjectShape {
    /// The shape of rows selecting `columns` in this order.
    pub fn new(columns: &[(String, Storage)]) -> Self {
        let keys = columns
            .iter()
            .enumerate()
            .map(|(i, (name, storage))| {
                let quoted = serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into());
                let lead = if i == 0 { "{" } else { "," };
                (format!("{lead}{quoted}:"), *storage)
            })
            .collect();
        let version = columns
            .iter()
            .position(|(name, storage)| name == "version" && *storage == Storage::Int);
        Self { keys, version }
    }

    pub fn columns(&self) -> usize {
        self.keys.len()
    }

    /// A guess at a row's size: its keys and a short value each.
    fn bytes_per_row(&self) -> usize {
        self.keys.iter().map(|(k, _)| k.len() + 24).sum::<usize>() + 2
    }
}

/// Rows written as JSON objects into one buffer, the text of a JSON array of them:
/// the same text serializing each row's values as an object (keys in column order)
/// would give. It is JSON by construction, so it is handed on as text, not checked
/// again by parsing (as `RawValue` would).
pub struct Objects<'a> {
    shape: &'a ObjectShape,
    /// `[` and the objects so far, comma-separated.
    text: Vec<u8>,
    /// Where each object ends in `text`.
    ends: Vec<usize>,
    versions: Vec<Option<i64>>,
}

impl<'a> Objects<'a> {
    /// Room for `rows` rows is made at once (an answer's buffer grown a few bytes
    /// at a time showed in the profile).
    pub fn new(shape: &'a ObjectShape, rows: usize) -> Self {
        let mut text = Vec::with_capacity(1 + rows * shape.bytes_per_row());
        text.push(b'[');
        Self {
            shape,
            text,
            ends: Vec::new(),
            versions: Vec::new(),
        }
    }

    /// How many rows were taken.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `version` column of row `i`, where the shape has one.
    pub fn version(&self, i: usize) -> Option<i64> {
        self.versions.get(i).copied().flatten()
    }

    /// The JSON text of row `i`.
    pub fn object(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 1,
            _ => self.ends[i - 1] + 1,
        };
        std::str::from_utf8(&self.text[start..end]).ok()
    }

    /// Row `i` alone as JSON text (UTF-8: every value written was).
    pub fn into_object(mut self, i: usize) -> Option<Vec<u8>> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 1,
            _ => self.ends[i - 1] + 1,
        };
        self.text.truncate(end);
        self.text.drain(..start);
        Some(self.text)
    }

    /// The first `n` rows as the text of a JSON array (UTF-8: every value written
    /// was, so it is not checked again).
    pub fn into_array(mut self, n: usize) -> Vec<u8> {
        let end = match n.min(self.ends.len()) {
            0 => 1,
            n => self.ends[n - 1],
        };
        self.text.truncate(end);
        self.text.push(b']');
        self.text
    }

    fn begin_row(&mut self) {
        if !self.ends.is_empty() {
            self.text.push(b',');
        }
    }

    fn end_row(&mut self, version: Option<i64>) {
        self.text.push(b'}');
        self.ends.push(self.text.len());
        self.versions.push(version);
    }

    fn empty_row(&mut self) {
        if self.shape.keys.is_empty() {
            self.text.push(b'{');
        }
    }
}

impl RowSink for Objects<'_> {
    fn sqlite(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        use rusqlite::types::ValueRef;
        self.begin_row();
        self.empty_row();
        let mut version = None;
        for (i, (key, storage)) in self.shape.keys.iter().enumerate() {
            self.text.extend_from_slice(key.as_bytes());
            let out = &mut self.text;
            match (row.get_ref(i)?, *storage) {
                (ValueRef::Null, _) | (ValueRef::Blob(_), _) => out.extend_from_slice(b"null"),
                (ValueRef::Integer(n), Storage::Bool) => {
                    out.extend_from_slice(if n != 0 { b"true" } else { b"false" })
                }
                (ValueRef::Integer(n), Storage::Float) => write_float(out, n as f64),
                (ValueRef::Integer(n), _) => {
                    if Some(i) == self.shape.version {
                        version = Some(n);
                    }
                    write_value(out, &n);
                }
                (ValueRef::Real(f), _) => write_float(out, f),
                (ValueRef::Text(t), Storage::Json) => {
                    let value = serde_json::from_slice::<serde_json::Value>(t)
                        .unwrap_or(serde_json::Value::Null);
                    write_value(out, &value);
                }
                (ValueRef::Text(t), _) => match std::str::from_utf8(t) {
                    Ok(s) => write_str(out, s),
                    Err(_) => write_str(out, &String::from_utf8_lossy(t)),
                },
            }
        }
        self.end_row(version);
        Ok(())
    }

    fn postgres(&mut self, row: &tokio_postgres::Row) -> Result<(), tokio_postgres::Error> {
        self.begin_row();
        self.empty_row();
        let mut version = None;
        for (i, (key, storage)) in self.shape.keys.iter().enumerate() {
            self.text.extend_from_slice(key.as_bytes());
            let value = pg_json(row, i, *storage)?;
            if Some(i) == self.shape.version {
                version = value.as_i64();
            }
            write_value(&mut self.text, &value);
        }
        self.end_row(version);
        Ok(())
    }

    fn clear(&mut self) {
        self.text.truncate(1);
        self.ends.clear();
        self.versions.clear();
    }
}

/// A float as serde_json writes one (non-finite ones as `null`, as the JSON value
/// made of them would be).
fn write_float(out: &mut Vec<u8>, f: f64) {
    match serde_json::Number::from_f64(f) {
        Some(n) => write_value(out, &n),
        None => out.extend_from_slice(b"null"),
    }
}

/// Writing into a `Vec` fails only for values serde cannot write, which these are not.
fn write_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` is below 0x20, a `"` or a `\`: the bytes a
/// JSON string escapes. Exact (no byte is missed); a word without them is copied
/// as it is.
fn needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGHS != 0
}

/// `s` as a JSON string literal, escaped exactly as serde_json escapes (`\"`, `\\`,
/// the short forms of `\b\f\n\r\t`, `\u00xx` for other control characters);
/// runs that need no escape are found eight bytes at a time and copied whole (the
/// byte-at-a-time escape was most of writing a record).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        let short = match b {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            _ => None,
        };
        if short.is_some() || b < 0x20 {
            out.extend_from_slice(&bytes[start..i]);
            match short {
                Some(c) => out.extend_from_slice(&[b'\\', c]),
                None => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every ASCII byte, at every offset within a word and next to long clean runs.
        for b in 0u8..0x80 {
            for pad in 0..10 {
                let s = format!(
                    "{}{}{}",
                    "x".repeat(pad),
                    b as char,
                    "é✓ plain text ".repeat(2)
                );
                assert_eq!(
                    escaped(&s),
                    serde_json::to_string(&s).unwrap(),
                    "{b:#x} at {pad}"
                );
            }
        }
        for s in [
            "",
            "\"",
            "a\"b\\c\nd\u{1}\u{1f}\u{7f}",
            "01234567\"",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn the_word_test_misses_no_escaped_byte() {
        for b in 0u8..=255 {
            for at in 0..8 {
                let mut w = *b"abcdefgh";
                w[at] = b;
                let needs = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(w)), needs, "{b:#x} at {at}");
            }
        }
    }
}
