//! Values from the query builder → driver parameters, and driver rows → JSON.
//! One small conversion per driver instead of a binder crate per driver.

use keel_spec::Storage;
use sea_query::Value;
use serde_json::Value as Json;

/// A sea-query value as a rusqlite parameter.
pub struct SqliteParam<'a>(pub &'a Value);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        Ok(match self.0 {
            Value::Bool(b) => b.map_or(ToSqlOutput::Owned(V::Null), |b| {
                ToSqlOutput::Owned(V::Integer(i64::from(b)))
            }),
            Value::TinyInt(v) => opt(v.map(i64::from)),
            Value::SmallInt(v) => opt(v.map(i64::from)),
            Value::Int(v) => opt(v.map(i64::from)),
            Value::BigInt(v) => opt(*v),
            Value::TinyUnsigned(v) => opt(v.map(i64::from)),
            Value::SmallUnsigned(v) => opt(v.map(i64::from)),
            Value::Unsigned(v) => opt(v.map(i64::from)),
            Value::BigUnsigned(v) => opt(v.and_then(|v| i64::try_from(v).ok())),
            Value::Float(v) => v.map_or(ToSqlOutput::Owned(V::Null), |f| {
                ToSqlOutput::Owned(V::Real(f64::from(f)))
            }),
            Value::Double(v) => v.map_or(ToSqlOutput::Owned(V::Null), |f| {
                ToSqlOutput::Owned(V::Real(f))
            }),
            Value::String(s) => match s {
                Some(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
                None => ToSqlOutput::Owned(V::Null),
            },
            Value::Char(c) => c.map_or(ToSqlOutput::Owned(V::Null), |c| {
                ToSqlOutput::Owned(V::Text(c.to_string()))
            }),
            Value::Bytes(b) => match b {
                Some(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
                None => ToSqlOutput::Owned(V::Null),
            },
            Value::Json(j) => j.as_ref().map_or(ToSqlOutput::Owned(V::Null), |j| {
                ToSqlOutput::Owned(V::Text(j.to_string()))
            }),
            Value::Uuid(u) => u.map_or(ToSqlOutput::Owned(V::Null), |u| {
                ToSqlOutput::Owned(V::Text(u.hyphenated().to_string()))
            }),
            Value::TimeDateTimeWithTimeZone(t) => t.map_or(ToSqlOutput::Owned(V::Null), |t| {
                ToSqlOutput::Owned(V::Text(keel_expr::format_datetime(t)))
            }),
            Value::TimeDate(d) => d.map_or(ToSqlOutput::Owned(V::Null), |d| {
                ToSqlOutput::Owned(V::Text(format_date(d)))
            }),
            other => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("unsupported value {other:?}").into(),
                ));
            }
        })
    }
}

fn opt(v: Option<i64>) -> rusqlite::types::ToSqlOutput<'static> {
    use rusqlite::types::{ToSqlOutput, Value as V};
    ToSqlOutput::Owned(v.map_or(V::Null, V::Integer))
}

/// `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A sea-query value as a tokio-postgres parameter; it adapts to the parameter type
/// PostgreSQL inferred, so `int` columns take a `BigInt` and nulls fit anything.
#[derive(Debug)]
pub struct PgParam<'a>(pub &'a Value);

impl tokio_postgres::types::ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::{IsNull, Type};
        macro_rules! int {
            ($v:expr) => {{
                let v: i64 = $v;
                match *ty {
                    Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                    Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                    Type::FLOAT8 => (v as f64).to_sql(ty, out),
                    Type::FLOAT4 => (v as f32).to_sql(ty, out),
                    Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                    _ => v.to_sql(ty, out),
                }
            }};
        }
        match self.0 {
            Value::Bool(Some(b)) => match *ty {
                Type::TEXT | Type::VARCHAR => b.to_string().to_sql(ty, out),
                _ => b.to_sql(ty, out),
            },
            Value::TinyInt(Some(v)) => int!(i64::from(*v)),
            Value::SmallInt(Some(v)) => int!(i64::from(*v)),
            Value::Int(Some(v)) => int!(i64::from(*v)),
            Value::BigInt(Some(v)) => int!(*v),
            Value::TinyUnsigned(Some(v)) => int!(i64::from(*v)),
            Value::SmallUnsigned(Some(v)) => int!(i64::from(*v)),
            Value::Unsigned(Some(v)) => int!(i64::from(*v)),
            Value::BigUnsigned(Some(v)) => int!(i64::try_from(*v)?),
            Value::Float(Some(f)) => match *ty {
                Type::FLOAT4 => f.to_sql(ty, out),
                _ => f64::from(*f).to_sql(ty, out),
            },
            Value::Double(Some(f)) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::String(Some(s)) => s.as_str().to_sql(ty, out),
            Value::Char(Some(c)) => c.to_string().to_sql(ty, out),
            Value::Bytes(Some(b)) => b.as_slice().to_sql(ty, out),
            Value::Json(Some(j)) => match *ty {
                Type::TEXT | Type::VARCHAR => j.to_string().to_sql(ty, out),
                _ => j.as_ref().to_sql(ty, out),
            },
            Value::Uuid(Some(u)) => match *ty {
                Type::TEXT | Type::VARCHAR => u.hyphenated().to_string().to_sql(ty, out),
                _ => u.to_sql(ty, out),
            },
            Value::TimeDateTimeWithTimeZone(Some(t)) => t.to_sql(ty, out),
            Value::TimeDate(Some(d)) => d.to_sql(ty, out),
            _ if is_null(self.0) => Ok(IsNull::Yes),
            other => Err(format!("unsupported value {other:?}").into()),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn is_null(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(None)
            | Value::TinyInt(None)
            | Value::SmallInt(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::TinyUnsigned(None)
            | Value::SmallUnsigned(None)
            | Value::Unsigned(None)
            | Value::BigUnsigned(None)
            | Value::Float(None)
            | Value::Double(None)
            | Value::String(None)
            | Value::Char(None)
            | Value::Bytes(None)
            | Value::Json(None)
            | Value::Uuid(None)
            | Value::TimeDateTimeWithTimeZone(None)
            | Value::TimeDate(None)
    )
}

/// Read column `i` of a SQLite row as JSON, by the storage class the model gave it.
pub fn sqlite_json(row: &rusqlite::Row<'_>, i: usize, storage: Storage) -> rusqlite::Result<Json> {
    use rusqlite::types::ValueRef;
    let v = row.get_ref(i)?;
    Ok(match (v, storage) {
        (ValueRef::Null, _) => Json::Null,
        (ValueRef::Integer(n), Storage::Bool) => Json::Bool(n != 0),
        (ValueRef::Integer(n), Storage::Float) => serde_json::Number::from_f64(n as f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        (ValueRef::Integer(n), _) => Json::from(n),
        (ValueRef::Real(f), _) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        (ValueRef::Text(t), Storage::Json) => serde_json::from_slice(t).unwrap_or(Json::Null),
        // SQLite text is UTF-8 as Keel wrote it: checked on the fast path, lossy only
        // if something else wrote bytes that are not.
        (ValueRef::Text(t), _) => Json::String(match std::str::from_utf8(t) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        (ValueRef::Blob(_), _) => Json::Null,
    })
}

/// Read column `i` of a PostgreSQL row as JSON.
pub fn pg_json(
    row: &tokio_postgres::Row,
    i: usize,
    storage: Storage,
) -> Result<Json, tokio_postgres::Error> {
    Ok(match storage {
        Storage::Text => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Json::Null, Json::String),
        Storage::Int => match *row.columns()[i].type_() {
            tokio_postgres::types::Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map_or(Json::Null, Json::from),
            tokio_postgres::types::Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map_or(Json::Null, Json::from),
            _ => row
                .try_get::<_, Option<i64>>(i)?
                .map_or(Json::Null, Json::from),
        },
        Storage::Float => row
            .try_get::<_, Option<f64>>(i)?
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Storage::Bool => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Json::Null, Json::Bool),
        Storage::Datetime => row
            .try_get::<_, Option<time::OffsetDateTime>>(i)?
            .map_or(Json::Null, |t| Json::String(keel_expr::format_datetime(t))),
        Storage::Date => row
            .try_get::<_, Option<time::Date>>(i)?
            .map_or(Json::Null, |d| Json::String(format_date(d))),
        Storage::Uuid => row
            .try_get::<_, Option<uuid::Uuid>>(i)?
            .map_or(Json::Null, |u| Json::String(u.hyphenated().to_string())),
        Storage::Json => row.try_get::<_, Option<Json>>(i)?.unwrap_or(Json::Null),
    })
}
