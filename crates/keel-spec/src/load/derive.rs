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
    // NATS names follow from the app's name when the spec gives none.
    let app = model.app.name.clone();
    if let Some(nats) = &mut model.events.nats {
        if nats.subject_prefix.is_empty() {
            nats.subject_prefix = default_subject_prefix(&app);
        }
        if nats.stream.is_empty() {
            nats.stream = default_stream(&app);
        }
    }
    model
}

/// `keel.<app name>`, the name made one NATS token (anything but letters, digits,
/// `-` and `_` becomes `_`).
fn default_subject_prefix(app: &str) -> String {
    let token: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("keel.{token}")
}

/// `KEEL_<APP NAME>`: upper case, anything but letters and digits as `_`.
fn default_stream(app: &str) -> String {
    let name: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("KEEL_{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_names_follow_from_the_app_name() {
        assert_eq!(default_subject_prefix("social"), "keel.social");
        assert_eq!(default_subject_prefix("my shop.eu"), "keel.my_shop_eu");
        assert_eq!(default_subject_prefix("my-app"), "keel.my-app");
        assert_eq!(default_stream("my-app.v2"), "KEEL_MY_APP_V2");
    }
}
