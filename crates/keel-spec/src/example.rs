//! Example field values: for each field type, a value that passes its constraints
//! (lengths, pattern, bounds), varied by `n` so unique fields get distinct values.
//! The OpenAPI examples and the design document's API samples both come from here,
//! so an example never breaks the schema it illustrates.

use crate::FieldType;
use serde_json::{Value as Json, json};

/// A value of `ty` that passes its constraints; `n` varies it for unique fields.
pub fn example(name: &str, ty: &FieldType, n: usize) -> Option<Json> {
    Some(match ty {
        FieldType::Text {
            min_length,
            max_length,
            pattern,
        } => {
            let words = name.replace('_', " ");
            let mut candidates = vec![
                if n <= 1 {
                    format!("Sample {words}")
                } else {
                    format!("Sample {words} {n}")
                },
                format!("sample-{n}"),
                format!("SAMPLE{n}"),
                format!("{n}"),
                format!("s{n}"),
                format!("sample_{n}"),
            ];
            if let Some(p) = pattern {
                let re = regex_lite::Regex::new(p).ok()?;
                candidates.retain(|c| re.is_match(c));
            }
            let min = min_length.unwrap_or(0) as usize;
            let max = max_length.map_or(usize::MAX, |m| m as usize);
            let pick = candidates.into_iter().find(|c| {
                let len = c.chars().count();
                len <= max && (len >= min || pattern.is_none())
            })?;
            let len = pick.chars().count();
            if len < min {
                json!(format!("{pick}{}", ".".repeat(min - len)))
            } else {
                json!(pick)
            }
        }
        FieldType::Int { min, max } => {
            let base = min.unwrap_or(1).max(1);
            let v = base.saturating_add(n as i64 - 1);
            json!(max.map_or(v, |m| v.min(m)))
        }
        FieldType::Float { min, max } => {
            let v = min.unwrap_or(0.0).max(9.5) + n as f64;
            json!(max.map_or(v, |m| v.min(m)))
        }
        FieldType::Bool => json!(true),
        FieldType::Datetime => json!("2026-03-01T09:30:00Z"),
        FieldType::Date => json!("2026-03-01"),
        FieldType::Uuid => json!(format!("00000000-0000-4000-8000-{:012}", n)),
        FieldType::Email => json!(if n == 0 {
            "ada@example.com".to_string()
        } else {
            format!("ada{n}@example.com")
        }),
        FieldType::Url => json!(format!("https://example.com/{}", name.replace('_', "-"))),
        FieldType::Enum { values } => {
            let i = if n >= 3 {
                1.min(values.len().saturating_sub(1))
            } else {
                0
            };
            json!(values.get(i)?)
        }
        FieldType::Json => json!(["sample", name]),
        FieldType::Ref { .. } => return None,
    })
}
