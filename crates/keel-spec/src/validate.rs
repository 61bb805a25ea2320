//! Whether a JSON value fits a field's type and constraints. Pure, shared by the
//! loader (defaults) and the operation core (request bodies).

use crate::model::FieldType;
use serde_json::Value;

/// Why a value does not fit; `code` is the stable machine-readable part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub code: &'static str,
    pub message: String,
}

impl ValueError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Check a non-null value, compiling the text pattern on the fly (use
/// [`check_value_with`] with a pre-compiled one on hot paths).
pub fn check_value(ty: &FieldType, v: &Value) -> Result<(), ValueError> {
    let pattern = match ty {
        FieldType::Text {
            pattern: Some(p), ..
        } => regex_lite::Regex::new(p).ok(),
        _ => None,
    };
    check_value_with(ty, v, pattern.as_ref())
}

/// Check a non-null value against a type and its constraints.
pub fn check_value_with(
    ty: &FieldType,
    v: &Value,
    pattern: Option<&regex_lite::Regex>,
) -> Result<(), ValueError> {
    let expect = |what: &str| ValueError::new("type", format!("must be {what}"));
    // PostgreSQL cannot store NUL in text or jsonb; refuse it on every backend alike.
    if contains_nul(v) {
        return Err(ValueError::new(
            "invalid_character",
            "must not contain the NUL character (U+0000)",
        ));
    }
    match ty {
        FieldType::Text {
            min_length,
            max_length,
            ..
        } => {
            let s = v.as_str().ok_or_else(|| expect("a string"))?;
            let n = s.chars().count();
            if let Some(min) = min_length
                && n < *min as usize
            {
                return Err(ValueError::new(
                    "too_short",
                    format!("must be at least {min} characters"),
                ));
            }
            if let Some(max) = max_length
                && n > *max as usize
            {
                return Err(ValueError::new(
                    "too_long",
                    format!("must be at most {max} characters"),
                ));
            }
            if let Some(re) = pattern
                && !re.is_match(s)
            {
                return Err(ValueError::new(
                    "pattern",
                    format!("must match the pattern {}", re.as_str()),
                ));
            }
            Ok(())
        }
        FieldType::Int { min, max } => {
            let n = json_integer(v).ok_or_else(|| expect("an integer"))?;
            if min.is_some_and(|m| n < m) {
                return Err(ValueError::new(
                    "too_small",
                    format!("must be at least {}", min.unwrap_or_default()),
                ));
            }
            if max.is_some_and(|m| n > m) {
                return Err(ValueError::new(
                    "too_large",
                    format!("must be at most {}", max.unwrap_or_default()),
                ));
            }
            Ok(())
        }
        FieldType::Float { min, max } => {
            let n = v.as_f64().ok_or_else(|| expect("a number"))?;
            if min.is_some_and(|m| n < m) {
                return Err(ValueError::new(
                    "too_small",
                    format!("must be at least {}", min.unwrap_or_default()),
                ));
            }
            if max.is_some_and(|m| n > m) {
                return Err(ValueError::new(
                    "too_large",
                    format!("must be at most {}", max.unwrap_or_default()),
                ));
            }
            Ok(())
        }
        FieldType::Bool => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| expect("true or false")),
        FieldType::Datetime => {
            let s = v
                .as_str()
                .ok_or_else(|| expect("an RFC 3339 date-time string"))?;
            keel_expr::parse_datetime(s).map(|_| ()).ok_or_else(|| {
                ValueError::new(
                    "invalid_datetime",
                    "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z",
                )
            })
        }
        FieldType::Date => {
            let s = v.as_str().ok_or_else(|| expect("a date string"))?;
            parse_date(s)
                .map(|_| ())
                .ok_or_else(|| ValueError::new("invalid_date", "must be a date such as 2026-01-31"))
        }
        FieldType::Uuid | FieldType::Ref { .. } => {
            let s = v.as_str().ok_or_else(|| expect("a UUID string"))?;
            uuid::Uuid::parse_str(s)
                .map(|_| ())
                .map_err(|_| ValueError::new("invalid_uuid", "must be a UUID"))
        }
        FieldType::Email => {
            let s = v.as_str().ok_or_else(|| expect("an email address"))?;
            if is_email(s) {
                Ok(())
            } else {
                Err(ValueError::new(
                    "invalid_email",
                    "must be an email address such as ada@example.com",
                ))
            }
        }
        FieldType::Url => {
            let s = v.as_str().ok_or_else(|| expect("a URL"))?;
            if is_url(s) {
                Ok(())
            } else {
                Err(ValueError::new(
                    "invalid_url",
                    "must be an http or https URL",
                ))
            }
        }
        FieldType::Enum { values } => {
            let s = v.as_str().ok_or_else(|| expect("a string"))?;
            if values.iter().any(|x| x == s) {
                Ok(())
            } else {
                Err(ValueError::new(
                    "invalid_enum",
                    format!("must be one of: {}", values.join(", ")),
                ))
            }
        }
        FieldType::Json => Ok(()),
    }
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).ok()
}

fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && s.len() <= 2048
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// A JSON number that is a whole number, as JSON Schema's `integer` counts it: `58`
/// and `58.0` both are (clients and generators in languages without an integer type
/// send the latter), `58.5` and anything beyond `i64` are not.
pub fn json_integer(v: &serde_json::Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // i64::MAX is not representable; 2^63 is the first float beyond the range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_lengths_count_characters() {
        let ty = FieldType::Text {
            min_length: Some(2),
            max_length: Some(3),
            pattern: None,
        };
        assert_eq!(
            check_value(&ty, &json!("a")).map_err(|e| e.code),
            Err("too_short")
        );
        assert!(check_value(&ty, &json!("éé")).is_ok());
        assert_eq!(
            check_value(&ty, &json!("abcd")).map_err(|e| e.code),
            Err("too_long")
        );
        assert_eq!(check_value(&ty, &json!(3)).map_err(|e| e.code), Err("type"));
    }

    #[test]
    fn nul_is_refused_everywhere() {
        let text = FieldType::Text {
            min_length: None,
            max_length: None,
            pattern: None,
        };
        assert_eq!(
            check_value(&text, &json!("a\u{0}b")).map_err(|e| e.code),
            Err("invalid_character")
        );
        assert_eq!(
            check_value(&FieldType::Json, &json!({"k": ["\u{0}"]})).map_err(|e| e.code),
            Err("invalid_character")
        );
        assert!(check_value(&FieldType::Json, &json!({"k": ["ok"]})).is_ok());
    }

    #[test]
    fn emails_and_urls() {
        assert!(is_email("ada@example.com"));
        assert!(!is_email("ada@example"));
        assert!(!is_email("ada example.com"));
        assert!(!is_email("@example.com"));
        assert!(is_url("https://example.com/x?y"));
        assert!(!is_url("ftp://example.com"));
        assert!(!is_url("https://"));
    }

    #[test]
    fn ints_are_bounded_and_floats_are_not_ints() {
        let ty = FieldType::Int {
            min: Some(0),
            max: Some(10),
        };
        assert!(check_value(&ty, &json!(10)).is_ok());
        assert_eq!(
            check_value(&ty, &json!(11)).map_err(|e| e.code),
            Err("too_large")
        );
        assert_eq!(
            check_value(&ty, &json!(1.5)).map_err(|e| e.code),
            Err("type")
        );
        // JSON Schema's `integer`: a whole number written as a float is one.
        assert!(check_value(&ty, &json!(7.0)).is_ok());
        assert_eq!(
            check_value(&ty, &json!(11.0)).map_err(|e| e.code),
            Err("too_large")
        );
        assert_eq!(json_integer(&json!(-3.0)), Some(-3));
        assert_eq!(json_integer(&json!(9.3e18)), None);
        assert_eq!(
            json_integer(&json!(-9.223_372_036_854_776e18)),
            Some(i64::MIN)
        );
    }
}
