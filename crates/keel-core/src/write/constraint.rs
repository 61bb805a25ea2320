//! Database constraint failures as the conflicts a client can act on.

use crate::engine::Engine;
use crate::error::{CoreError, FieldError};
use keel_spec::Collection;
use keel_store::StoreError;

impl Engine {
    pub(crate) fn constraint_error(&self, c: &Collection, e: StoreError) -> CoreError {
        match e {
            StoreError::Unique {
                columns,
                constraint,
            } => {
                let fields = if !columns.is_empty() {
                    columns
                } else {
                    let table = keel_store::schema::table(c);
                    table
                        .indexes
                        .iter()
                        .find(|ix| Some(&ix.name) == constraint.as_ref())
                        .map(|ix| ix.columns.iter().map(|(n, _)| n.clone()).collect())
                        .unwrap_or_default()
                };
                CoreError::Conflict {
                    message: format!(
                        "a `{}` record with the same {} already exists",
                        c.name,
                        if fields.is_empty() {
                            "key".to_string()
                        } else {
                            fields.join(", ")
                        }
                    ),
                    errors: fields
                        .iter()
                        .map(|f| FieldError::new(f, "unique", "is already taken"))
                        .collect(),
                }
            }
            StoreError::ForeignKey => CoreError::Conflict {
                message: format!(
                    "this `{}` record is still referenced by other records",
                    c.name
                ),
                errors: Vec::new(),
            },
            other => CoreError::Store(other),
        }
    }
}
