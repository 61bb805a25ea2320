//! A field's JSON value ↔ the expression language's typed [`Value`] ↔ a bound SQL
//! value. JSON is what clients send and receive; `Value` is what rules compare and
//! what the store binds.

use keel_expr::{Dialect, Value};
use keel_spec::{FieldType, Storage};
use serde_json::Value as Json;

/// A JSON value already validated against `ty` → typed value.
pub fn from_json(ty: &FieldType, v: &Json) -> Value {
    match (v, ty.storage()) {
        (Json::Null, _) => Value::Null,
        (_, Storage::Json) => Value::Json(v.clone()),
        (Json::Bool(b), _) => Value::Bool(*b),
        (Json::Number(_), Storage::Int) => {
            keel_spec::validate::json_integer(v).map_or(Value::Null, Value::Int)
        }
        (Json::Number(n), _) => n.as_f64().map_or(Value::Null, Value::Float),
        (Json::String(s), Storage::Datetime) => {
            keel_expr::parse_datetime(s).map_or(Value::Null, Value::Datetime)
        }
        (Json::String(s), Storage::Date) => {
            keel_spec::validate::parse_date(s).map_or(Value::Null, Value::Date)
        }
        (Json::String(s), Storage::Uuid) => {
            uuid::Uuid::parse_str(s).map_or(Value::Null, Value::Uuid)
        }
        (Json::String(s), _) => Value::Text(s.clone()),
        (other, _) => Value::Json(other.clone()),
    }
}

/// A typed value as the store binds it.
pub fn to_sql(v: &Value, storage: Storage, dialect: Dialect) -> sea_query::Value {
    if matches!(v, Value::Null) {
        // Typed nulls, so PostgreSQL binds them against any parameter type.
        return match storage {
            Storage::Int => sea_query::Value::BigInt(None),
            Storage::Float => sea_query::Value::Double(None),
            Storage::Bool => sea_query::Value::Bool(None),
            _ => sea_query::Value::String(None),
        };
    }
    keel_expr::value_to_sea(v, dialect)
}

/// A record's value for output: datetimes in the canonical form (so a value a client
/// sent comes back the way the database stores it).
pub fn canonical_json(ty: &FieldType, v: &Json) -> Json {
    match (ty.storage(), v) {
        (Storage::Datetime, Json::String(s)) => keel_expr::parse_datetime(s).map_or_else(
            || v.clone(),
            |t| Json::String(keel_expr::format_datetime(t)),
        ),
        (Storage::Uuid, Json::String(s)) => uuid::Uuid::parse_str(s)
            .map_or_else(|_| v.clone(), |u| Json::String(u.hyphenated().to_string())),
        (Storage::Float, Json::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| v.clone(), Json::Number),
        _ => v.clone(),
    }
}
