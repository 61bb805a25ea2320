//! What every model has without being asked: system fields and the `users` collection.

use crate::model::*;
use keel_expr::{Scope, Type};

fn system_field(name: &str, ty: FieldType) -> Field {
    Field {
        name: name.into(),
        ty,
        required: true,
        default: None,
        unique: name == "id",
        immutable: true,
        readonly: true,
        hidden: false,
        encrypted: false,
        system: true,
        description: Some(
            match name {
                "id" => "Unique id (UUIDv7, sortable by creation time).",
                "created_at" => "When the record was created (UTC).",
                "updated_at" => "When the record last changed (UTC).",
                _ => "Incremented on every update; send it in If-Match for optimistic locking.",
            }
            .into(),
        ),
        span: 0..0,
    }
}

/// A collection with only its system fields.
pub fn empty_collection(name: &str, span: SourceSpan) -> Collection {
    Collection {
        name: name.into(),
        description: None,
        fields: vec![
            system_field("id", FieldType::Uuid),
            system_field("created_at", FieldType::Datetime),
            system_field("updated_at", FieldType::Datetime),
            system_field(
                "version",
                FieldType::Int {
                    min: None,
                    max: None,
                },
            ),
        ],
        indexes: Vec::new(),
        uniques: Vec::new(),
        access: Access::default(),
        default_sort: Vec::new(),
        builtin: false,
        span,
    }
}

/// The built-in `users` collection; keel.toml may add fields and rules to it.
pub fn users() -> Collection {
    let mut c = empty_collection("users", 0..0);
    c.builtin = true;
    c.description = Some("People who use the app; built in, extensible in keel.toml.".into());
    c.fields.push(Field {
        name: "email".into(),
        ty: FieldType::Email,
        required: true,
        default: None,
        unique: true,
        immutable: false,
        readonly: false,
        hidden: false,
        encrypted: false,
        system: false,
        description: Some("Login email, unique.".into()),
        span: 0..0,
    });
    c.fields.push(Field {
        name: "name".into(),
        ty: FieldType::Text {
            min_length: None,
            max_length: Some(200),
            pattern: None,
        },
        required: false,
        default: None,
        unique: false,
        immutable: false,
        readonly: false,
        hidden: false,
        encrypted: false,
        system: false,
        description: Some("Display name.".into()),
        span: 0..0,
    });
    c.fields.push(Field {
        name: "roles".into(),
        ty: FieldType::Json,
        required: false,
        default: None,
        unique: false,
        immutable: false,
        readonly: true,
        hidden: false,
        encrypted: false,
        system: false,
        description: Some("Roles granted to the user (by an admin).".into()),
        span: 0..0,
    });
    c.fields.push(Field {
        name: "password_hash".into(),
        ty: FieldType::Text {
            min_length: None,
            max_length: None,
            pattern: None,
        },
        required: false,
        default: None,
        unique: false,
        immutable: false,
        readonly: true,
        hidden: true,
        encrypted: false,
        system: false,
        description: Some("argon2id hash; never leaves the server.".into()),
        span: 0..0,
    });
    // A user sees and edits only themself unless keel.toml says otherwise.
    c.access.read = Some(builtin_rule("id == auth.id"));
    c.access.update = Some(builtin_rule("id == auth.id"));
    c
}

struct UsersScope;

impl Scope for UsersScope {
    fn resolve(&self, path: &[String]) -> Result<Type, String> {
        match path
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["id"] | ["auth", "id"] => Ok(Type::Uuid),
            _ => Err("unknown".into()),
        }
    }
}

fn builtin_rule(src: &str) -> Rule {
    // Built-in rules are constants of this crate; a failure here is a bug caught by the tests.
    let typed = keel_expr::parse(src)
        .ok()
        .and_then(|e| keel_expr::check(&e, &UsersScope).ok());
    match typed {
        Some(typed) => Rule {
            source: src.into(),
            typed,
            span: 0..0,
        },
        None => unreachable!("built-in rule `{src}` does not type-check"),
    }
}
