//! Rows as records: stored values to JSON, encrypted fields opened or sealed, and
//! `fields` projections.

use crate::engine::Engine;
use crate::error::CoreError;
use keel_expr::Value;
use keel_spec::{Collection, Field, Storage};
use keel_store::StoreError;
use serde_json::{Map, Value as Json};

/// A record as the JSON text of an answer, with its version (a strong validator
/// where the answer is the record alone).
#[derive(Debug)]
pub struct RecordText {
    /// JSON text (UTF-8).
    pub json: Vec<u8>,
    pub version: Option<i64>,
}

impl RecordText {
    pub(crate) fn of(record: &Json) -> Result<Self, CoreError> {
        let json = serde_json::to_vec(record)
            .map_err(|e| CoreError::Store(StoreError::Other(e.to_string())))?;
        Ok(Self {
            json,
            version: record.get("version").and_then(Json::as_i64),
        })
    }
}

impl Engine {
    /// The JSON object keys of `c`'s visible columns (see [`Engine::select`]).
    pub(crate) fn shape(&self, c: &Collection) -> Result<&keel_store::ObjectShape, CoreError> {
        self.shapes.get(&c.name).ok_or_else(|| {
            CoreError::Store(StoreError::Other(format!("no shape for `{}`", c.name)))
        })
    }

    /// A row as a record: column names to values, encrypted fields decrypted.
    pub(crate) fn record(
        &self,
        c: &Collection,
        columns: &[(String, Storage)],
        row: Vec<Json>,
    ) -> Map<String, Json> {
        self.open(c, sealed(columns, row))
    }

    /// A record in its stored form (encrypted fields as ciphertext) made readable.
    /// Only answers to callers are opened: events and idempotency outcomes keep the
    /// stored form, so no table ever holds an encrypted field's plaintext.
    pub(crate) fn open(&self, c: &Collection, mut record: Map<String, Json>) -> Map<String, Json> {
        if !c.fields.iter().any(|f| f.encrypted) {
            return record;
        }
        for (name, value) in record.iter_mut() {
            if let (Some(f), Json::String(stored)) = (c.field(name), &*value)
                && f.encrypted
            {
                *value = self.decrypt(c, name, stored);
            }
        }
        record
    }

    pub(crate) fn decrypt(&self, c: &Collection, name: &str, stored: &str) -> Json {
        let column = format!("{}.{name}", c.name);
        let plain = self
            .cipher
            .as_ref()
            .ok_or_else(|| "no encryption keys are configured".to_string())
            .and_then(|k| k.decrypt(&column, stored))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
        match plain {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(column = %column, error = %e, "cannot decrypt a stored value");
                Json::Null
            }
        }
    }

    /// The value to store for a field: ciphertext for encrypted fields.
    pub(crate) fn stored_value(
        &self,
        c: &Collection,
        f: &Field,
        v: &Value,
    ) -> Result<Value, CoreError> {
        if !f.encrypted || matches!(v, Value::Null) {
            return Ok(v.clone());
        }
        let plain = match v {
            Value::Json(j) => j.to_string(),
            Value::Text(t) => Json::String(t.clone()).to_string(),
            other => format!("{other:?}"),
        };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            CoreError::Store(StoreError::Other(format!(
                "`{}.{}` is encrypted but {} is not set",
                c.name,
                f.name,
                crate::crypto::KEYS_ENV
            )))
        })?;
        cipher
            .encrypt(&format!("{}.{}", c.name, f.name), plain.as_bytes())
            .map(Value::Text)
            .map_err(|e| CoreError::Store(StoreError::Other(e)))
    }
}

/// A row as a record in its stored form: encrypted fields stay ciphertext.
pub(crate) fn sealed(columns: &[(String, Storage)], row: Vec<Json>) -> Map<String, Json> {
    columns
        .iter()
        .zip(row)
        .map(|((name, _), value)| (name.clone(), value))
        .collect()
}

pub(crate) fn project(
    mut record: Map<String, Json>,
    fields: Option<&[String]>,
) -> Map<String, Json> {
    match fields {
        None => record,
        Some(fields) => {
            let expand = record.remove("expand");
            let mut out: Map<String, Json> = fields
                .iter()
                .filter_map(|f| record.remove(f).map(|v| (f.clone(), v)))
                .collect();
            if let Some(e) = expand {
                out.insert("expand".into(), e);
            }
            out
        }
    }
}
