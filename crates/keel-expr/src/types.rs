//! Static types, run-time values, and the canonical text forms shared by the evaluator,
//! the SQL compiler and the store.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// The static type of an expression or a path, as the type checker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// Only the `null` literal has this type.
    Null,
    /// `true` / `false`.
    Bool,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// UTF-8 text.
    Text,
    /// Text restricted to the listed values.
    Enum(Vec<String>),
    /// An instant, kept at microsecond precision.
    Datetime,
    /// A calendar date.
    Date,
    /// A UUID.
    Uuid,
    /// Arbitrary JSON.
    Json,
    /// A list of values of one type.
    List(Box<Type>),
}

impl Type {
    /// Int or Float: the two compare with each other numerically.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }

    /// Text or Enum: both are text at run time.
    pub fn is_textual(&self) -> bool {
        matches!(self, Type::Text | Type::Enum(_))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("Bool"),
            Type::Int => f.write_str("Int"),
            Type::Float => f.write_str("Float"),
            Type::Text => f.write_str("Text"),
            Type::Enum(values) => write!(f, "Enum({})", values.join(", ")),
            Type::Datetime => f.write_str("Datetime"),
            Type::Date => f.write_str("Date"),
            Type::Uuid => f.write_str("Uuid"),
            Type::Json => f.write_str("Json"),
            Type::List(inner) => write!(f, "List({inner})"),
        }
    }
}

/// A run-time value: what an [`crate::Env`] returns for a path and what literals hold.
/// Enum values are plain `Text`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent or SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text (also enum values).
    Text(String),
    /// An instant.
    Datetime(OffsetDateTime),
    /// A calendar date.
    Date(Date),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// A JSON document.
    Json(serde_json::Value),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// The canonical text form of an instant: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, in UTC with
/// exactly six fractional digits, so that comparing the text compares the time. SQLite
/// stores datetimes this way.
pub fn format_datetime(t: OffsetDateTime) -> String {
    let t = to_utc_micros(t);
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}Z",
        format_date(t.date()),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses an RFC 3339 timestamp (`2024-01-31T12:00:00Z`, `…+02:00`, with or without a
/// fraction), returning it in UTC. `None` when malformed.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    t.checked_to_offset(UtcOffset::UTC)
}

/// The canonical text form of a date: `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses a `YYYY-MM-DD` date. `None` when malformed or not a real date.
pub fn parse_date(s: &str) -> Option<Date> {
    let bytes = s.as_bytes();
    if bytes.len() != 10
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
    {
        return None;
    }
    let year: i32 = s.get(0..4)?.parse().ok()?;
    let month: u8 = s.get(5..7)?.parse().ok()?;
    let day: u8 = s.get(8..10)?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// The lowercase hyphenated form every UUID is compared and stored in.
pub(crate) fn format_uuid(u: uuid::Uuid) -> String {
    u.hyphenated().to_string()
}

/// An instant in UTC truncated to whole microseconds: the precision both databases keep,
/// so the evaluator never sees a difference the database cannot.
pub(crate) fn to_utc_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Brings a run-time value into the form its static type promises, identically for the
/// evaluator and for values bound into SQL: text given for a Datetime/Date/Uuid path
/// is parsed (NULL when malformed), instants are truncated to microseconds in UTC, an
/// integer for a Float path becomes a float, and NaN becomes NULL (as SQLite stores it).
pub(crate) fn normalize(v: Value, ty: &Type) -> Value {
    match (v, ty) {
        (Value::Text(s), Type::Datetime) => parse_datetime(&s)
            .map(|t| Value::Datetime(to_utc_micros(t)))
            .unwrap_or(Value::Null),
        (Value::Text(s), Type::Date) => parse_date(&s).map(Value::Date).unwrap_or(Value::Null),
        (Value::Text(s), Type::Uuid) => uuid::Uuid::parse_str(&s)
            .map(Value::Uuid)
            .unwrap_or(Value::Null),
        (Value::Datetime(t), _) => Value::Datetime(to_utc_micros(t)),
        (Value::Float(f), _) if f.is_nan() => Value::Null,
        // A Float path holding an integer is bound as a float, like the column.
        #[allow(clippy::cast_precision_loss)]
        (Value::Int(i), Type::Float) => Value::Float(i as f64),
        (Value::List(items), Type::List(inner)) => {
            Value::List(items.into_iter().map(|v| normalize(v, inner)).collect())
        }
        (v, _) => v,
    }
}

/// The JSON rendering of a value, using the canonical text forms for instants, dates
/// and UUIDs (how such values appear inside JSON columns).
pub(crate) fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Text(s) => J::String(s.clone()),
        Value::Datetime(t) => J::String(format_datetime(*t)),
        Value::Date(d) => J::String(format_date(*d)),
        Value::Uuid(u) => J::String(format_uuid(*u)),
        Value::Json(j) => j.clone(),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
    }
}

/// The elements of a JSON array that a value of type `ty` can equal, as typed values.
///
/// `x in json_array` holds when x's JSON rendering equals an element at the top level:
/// text and enums match JSON strings, numbers match numbers, booleans match booleans,
/// and UUIDs, instants and dates match strings in their canonical form. Nested arrays
/// and objects never match. The SQL compiler implements exactly this rule.
pub(crate) fn json_candidates(items: &[serde_json::Value], ty: &Type) -> Vec<Value> {
    use serde_json::Value as J;
    items
        .iter()
        .filter_map(|item| match (ty, item) {
            (Type::Text | Type::Enum(_), J::String(s)) => Some(Value::Text(s.clone())),
            (Type::Int | Type::Float, J::Number(n)) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_f64().map(Value::Float)),
            (Type::Bool, J::Bool(b)) => Some(Value::Bool(*b)),
            (Type::Uuid, J::String(s)) => uuid::Uuid::parse_str(s)
                .ok()
                .filter(|u| format_uuid(*u) == *s)
                .map(Value::Uuid),
            (Type::Datetime, J::String(s)) => parse_datetime(s)
                .filter(|t| format_datetime(*t) == *s)
                .map(Value::Datetime),
            (Type::Date, J::String(s)) => parse_date(s)
                .filter(|d| format_date(*d) == *s)
                .map(Value::Date),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn datetime_text_is_canonical_and_ordered() {
        let a = datetime!(2024-01-31 12:00:00.5 +02:00);
        assert_eq!(format_datetime(a), "2024-01-31T10:00:00.500000Z");
        let b = datetime!(2024-01-31 10:00:00.000_000_999 UTC);
        assert_eq!(format_datetime(b), "2024-01-31T10:00:00.000000Z");
        assert!(format_datetime(b) < format_datetime(a));
    }

    #[test]
    fn parse_datetime_accepts_rfc3339_only() {
        let t = parse_datetime("2024-01-31T12:00:00+02:00");
        assert_eq!(t, Some(datetime!(2024-01-31 10:00:00 UTC)));
        assert_eq!(
            parse_datetime("2024-01-31T10:00:00.000000Z").map(format_datetime),
            Some("2024-01-31T10:00:00.000000Z".to_string())
        );
        assert_eq!(parse_datetime("2024-01-31"), None);
        assert_eq!(parse_datetime("2024-01-31 10:00:00"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(
            parse_date("2024-02-29").map(format_date),
            Some("2024-02-29".into())
        );
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-2-29"), None);
        assert_eq!(parse_date("+024-02-29"), None);
    }

    #[test]
    fn json_candidates_follow_the_canonical_forms() {
        let items: Vec<serde_json::Value> = serde_json::from_str(
            r#"["a", 1, 2.5, true, ["a"], "00000000-0000-0000-0000-0000000000AB",
                "00000000-0000-0000-0000-0000000000ab", "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00.000000Z"]"#,
        )
        .unwrap_or_default();
        assert_eq!(
            json_candidates(&items, &Type::Text).len(),
            5,
            "strings only, nested arrays never"
        );
        assert_eq!(
            json_candidates(&items, &Type::Int),
            vec![Value::Int(1), Value::Float(2.5)]
        );
        assert_eq!(json_candidates(&items, &Type::Uuid).len(), 1);
        assert_eq!(json_candidates(&items, &Type::Datetime).len(), 1);
    }
}
