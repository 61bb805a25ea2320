//! A request body made into typed field values: unknown, readonly and immutable
//! fields refused, each value checked against its field.

use crate::engine::Engine;
use crate::error::{CoreError, FieldError};
use crate::values;
use keel_expr::Value;
use keel_spec::{Collection, Field, FieldType};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

impl Engine {
    /// Trusted values for server-set fields, checked against their types all the same.
    pub(crate) fn server_values(
        &self,
        c: &Collection,
        server: &Map<String, Json>,
        input: &mut BTreeMap<String, Value>,
        errors: &mut Vec<FieldError>,
    ) {
        for (name, v) in server {
            match c.field(name).filter(|f| !f.system) {
                Some(f) => match self.check_field(c, f, v) {
                    Ok(v) => {
                        input.insert(name.clone(), v);
                    }
                    Err(e) => errors.push(e),
                },
                None => errors.push(FieldError::new(name, "unknown_field", "no such field")),
            }
        }
    }

    pub(crate) fn check_field(
        &self,
        c: &Collection,
        f: &Field,
        v: &Json,
    ) -> Result<Value, FieldError> {
        if v.is_null() {
            return if f.required {
                Err(FieldError::new(
                    &f.name,
                    "required",
                    "is required and cannot be null",
                ))
            } else {
                Ok(Value::Null)
            };
        }
        let pattern = self.patterns.get(&(c.name.clone(), f.name.clone()));
        keel_spec::validate::check_value_with(&f.ty, v, pattern)
            .map_err(|e| FieldError::new(&f.name, e.code, e.message))?;
        // Emails are compared case-insensitively, so they are stored in lowercase.
        if let (FieldType::Email, Json::String(s)) = (&f.ty, v) {
            return Ok(Value::Text(s.to_lowercase()));
        }
        Ok(values::from_json(&f.ty, v))
    }
}

pub(crate) fn body_object(body: &Json) -> Result<&Map<String, Json>, CoreError> {
    body.as_object().ok_or_else(|| {
        CoreError::Validation(vec![FieldError::new(
            "",
            "type",
            "the body must be a JSON object",
        )])
    })
}

pub(crate) fn reject_unknown(
    c: &Collection,
    obj: &Map<String, Json>,
    update: bool,
    errors: &mut Vec<FieldError>,
) {
    for key in obj.keys() {
        match c.field(key) {
            None => errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("`{}` has no field `{key}`", c.name),
            )),
            Some(f) if f.hidden && f.readonly => errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("`{}` has no field `{key}`", c.name),
            )),
            Some(f) if f.system || f.readonly => {
                errors.push(FieldError::new(key, "readonly", "is set by the server"))
            }
            Some(f) if update && f.immutable => errors.push(FieldError::new(
                key,
                "immutable",
                "cannot change after create",
            )),
            Some(_) => {}
        }
    }
}
