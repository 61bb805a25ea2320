//! Stage 5, derive: [`Typed`] → [`Model`]. Fills in what the spec leaves unsaid and
//! follows from the rest.

use super::rules::Typed;
use crate::model::*;

pub(super) fn derive(typed: Typed) -> Model {
    let mut model = typed.model;
    for c in &mut model.collections {
        // Newest first when a list names no sort.
        if c.default_sort.is_empty() {
            c.default_sort = vec![SortKey {
                field: "created_at".into(),
                descending: true,
            }];
        }
    }
    model
}
