//! Reading one field: its type and the options that type takes, its flags, and its
//! default (checked against the type).

use super::values::{At, Reader};
use super::{Item, RawCollection, RawRef};
use crate::error::closest;
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;
use toml::de::DeValue;

/// Names no field may take beyond the system fields: expression roots and literals.
const RESERVED_FIELDS: &[&str] = &["auth", "input", "null", "true", "false"];

const FIELD_KEYS: &[&str] = &[
    "type",
    "encrypted",
    "required",
    "default",
    "unique",
    "immutable",
    "readonly",
    "hidden",
    "description",
    "min_length",
    "max_length",
    "pattern",
    "min",
    "max",
    "values",
    "to",
    "on_delete",
];

/// Every field type keel.toml knows.
pub const TYPES: &[&str] = &[
    "text", "int", "float", "bool", "datetime", "date", "uuid", "email", "url", "enum", "json",
    "ref",
];

/// The options of a field that depend on its type, by key.
type Options<'a, 'i> = BTreeMap<String, &'a Item<'i>>;

impl Reader<'_, '_> {
    pub(super) fn read_field(
        &mut self,
        raw: &mut RawCollection,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        item: &Item<'_>,
    ) {
        let c = &raw.collection;
        let n = name.get_ref().to_string();
        let at = name.span().start;
        if !self.check_name(&n, at, "field") {
            return;
        }
        if let Some(existing) = c.fields.iter().find(|f| f.name == n) {
            if existing.system {
                self.error(
                    at,
                    format!("`{n}` is a system field"),
                    Some("every record already has id, created_at, updated_at and version".into()),
                );
            } else if c.builtin {
                self.error(
                    at,
                    format!("`{n}` is a built-in field of `{}`", c.name),
                    Some("extend users with new fields only".into()),
                );
            } else {
                self.error(at, format!("field `{n}` is declared twice"), None);
            }
            return;
        }
        if RESERVED_FIELDS.contains(&n.as_str()) {
            self.error(
                at,
                format!("`{n}` is a reserved name"),
                Some("choose another field name".into()),
            );
            return;
        }
        let Some(t) = self.table(item, "a field") else {
            return;
        };
        let mut field = Field {
            name: n.clone(),
            ty: FieldType::Bool,
            required: false,
            default: None,
            unique: false,
            immutable: false,
            readonly: false,
            hidden: false,
            encrypted: false,
            system: false,
            description: None,
            span: name.span().start..item.span().end,
        };
        let mut ty_name: Option<At<String>> = None;
        let mut opts: Options<'_, '_> = BTreeMap::new();
        let mut default_item = None;
        let mut encrypted_at = None;
        for (k, v) in t.iter() {
            let key = k.get_ref().as_ref();
            match key {
                "type" => ty_name = self.raw_string(v, "type"),
                "required" => field.required = self.bool(v, "required").unwrap_or(false),
                "unique" => field.unique = self.bool(v, "unique").unwrap_or(false),
                "immutable" => field.immutable = self.bool(v, "immutable").unwrap_or(false),
                "readonly" => field.readonly = self.bool(v, "readonly").unwrap_or(false),
                "hidden" => field.hidden = self.bool(v, "hidden").unwrap_or(false),
                "encrypted" => {
                    field.encrypted = self.bool(v, "encrypted").unwrap_or(false);
                    encrypted_at = Some(v.span().start);
                }
                "description" => field.description = self.string(v, "description").map(|s| s.value),
                "default" => default_item = Some(v),
                "min_length" | "max_length" | "pattern" | "min" | "max" | "values" | "to"
                | "on_delete" => {
                    opts.insert(key.to_string(), v);
                }
                _ => self.unknown_key(k, &format!("field `{n}`"), FIELD_KEYS),
            }
        }
        let Some(ty_name) = ty_name else {
            self.error(
                item.span().start,
                format!("field `{n}` needs a `type`"),
                Some(format!("one of: {}", TYPES.join(", "))),
            );
            return;
        };
        let Some((ty, to)) = self.field_type(&n, &ty_name, &opts, item) else {
            return;
        };
        field.ty = ty;
        if let Some(to) = to {
            raw.refs.push(RawRef {
                field: n.clone(),
                to: to.value,
                at: to.span.start,
            });
        }
        if let FieldType::Ref {
            on_delete: OnDelete::SetNull,
            ..
        } = field.ty
            && field.required
        {
            self.error(
                item.span().start,
                format!("field `{n}` is required, so on_delete = \"set_null\" could never apply"),
                Some("use \"cascade\" or \"restrict\", or drop `required`".into()),
            );
        }
        if let Some(d) = default_item {
            field.default = self.read_default(&field, d);
        }
        if field.encrypted {
            let at = encrypted_at.unwrap_or(item.span().start);
            if !matches!(field.ty, FieldType::Text { .. } | FieldType::Json) {
                self.error(
                    at,
                    format!("field `{n}`: only text and json fields can be encrypted"),
                    None,
                );
            }
            if field.unique {
                self.error(
                    at,
                    format!("field `{n}`: an encrypted field cannot be unique"),
                    Some("each write uses a fresh nonce, so equal values never look equal".into()),
                );
            }
        }
        raw.collection.fields.push(field);
    }

    /// The field's type from `type` and the options that type takes; for a ref, also
    /// the collection it names. `None` when the field cannot be kept.
    fn field_type(
        &mut self,
        n: &str,
        ty_name: &At<String>,
        opts: &Options<'_, '_>,
        item: &Item<'_>,
    ) -> Option<(FieldType, Option<At<String>>)> {
        let allowed: &[&str] = match ty_name.value.as_str() {
            "text" => &["min_length", "max_length", "pattern"],
            "int" | "float" => &["min", "max"],
            "enum" => &["values"],
            "ref" => &["to", "on_delete"],
            _ => &[],
        };
        for (key, v) in opts {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    v.span().start,
                    format!("`{key}` does not apply to a {} field", ty_name.value),
                    None,
                );
            }
        }
        let opt = |k: &str| opts.get(k).copied();
        let ty = match ty_name.value.as_str() {
            "text" => {
                let min_length = opt("min_length")
                    .and_then(|v| self.count(v, "min_length"))
                    .map(|v| v.min(u32::MAX as u64) as u32);
                let max_length = opt("max_length")
                    .and_then(|v| self.count(v, "max_length"))
                    .map(|v| v.min(u32::MAX as u64) as u32);
                self.impossible_bounds(
                    item.span().start,
                    n,
                    ("min_length", min_length),
                    ("max_length", max_length),
                );
                let pattern = opt("pattern").and_then(|v| self.raw_string(v, "pattern"));
                if let Some(p) = &pattern
                    && let Err(e) = regex_lite::Regex::new(&p.value)
                {
                    self.error(p.span.start, format!("invalid pattern: {e}"), None);
                }
                FieldType::Text {
                    min_length,
                    max_length,
                    pattern: pattern.map(|p| p.value),
                }
            }
            "int" => {
                let min = opt("min").and_then(|v| self.int(v, "min"));
                let max = opt("max").and_then(|v| self.int(v, "max"));
                self.impossible_bounds(item.span().start, n, ("min", min), ("max", max));
                FieldType::Int { min, max }
            }
            "float" => {
                let min = opt("min").and_then(|v| self.number(v, "min"));
                let max = opt("max").and_then(|v| self.number(v, "max"));
                self.impossible_bounds(item.span().start, n, ("min", min), ("max", max));
                FieldType::Float { min, max }
            }
            "bool" => FieldType::Bool,
            "datetime" => FieldType::Datetime,
            "date" => FieldType::Date,
            "uuid" => FieldType::Uuid,
            "email" => FieldType::Email,
            "url" => FieldType::Url,
            "json" => FieldType::Json,
            "enum" => {
                let values: Vec<String> = opt("values")
                    .and_then(|v| self.string_list(v, "values"))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.value)
                    .collect();
                if values.is_empty() {
                    self.error(
                        item.span().start,
                        format!("enum field `{n}` needs `values`"),
                        Some("values = [\"draft\", \"published\"]".into()),
                    );
                }
                let distinct: BTreeSet<&String> = values.iter().collect();
                if distinct.len() != values.len() {
                    self.error(
                        item.span().start,
                        format!("enum field `{n}` repeats a value"),
                        None,
                    );
                }
                FieldType::Enum { values }
            }
            "ref" => {
                let to = opt("to").and_then(|v| self.raw_string(v, "to"));
                let on_delete_s = opt("on_delete").and_then(|v| self.raw_string(v, "on_delete"));
                let on_delete = match on_delete_s.as_ref().map(|s| s.value.as_str()) {
                    None | Some("restrict") => OnDelete::Restrict,
                    Some("cascade") => OnDelete::Cascade,
                    Some("set_null") => OnDelete::SetNull,
                    Some(other) => {
                        let at = on_delete_s.as_ref().map(|s| s.span.start).unwrap_or(0);
                        self.error(
                            at,
                            format!("unknown on_delete `{other}`"),
                            Some("use \"cascade\", \"restrict\" or \"set_null\"".into()),
                        );
                        OnDelete::Restrict
                    }
                };
                let Some(to) = to else {
                    self.error(
                        item.span().start,
                        format!("ref field `{n}` needs `to`"),
                        Some("to = \"users\"".into()),
                    );
                    return None;
                };
                let ty = FieldType::Ref {
                    to: to.value.clone(),
                    on_delete,
                    on_delete_explicit: on_delete_s.is_some(),
                };
                return Some((ty, Some(to)));
            }
            other => {
                let hint = closest(other, TYPES.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("one of: {}", TYPES.join(", ")));
                self.error(
                    ty_name.span.start,
                    format!("unknown field type `{other}`"),
                    Some(hint),
                );
                return None;
            }
        };
        Some((ty, None))
    }

    /// A lower bound above the upper one: no value could ever be valid.
    fn impossible_bounds<T: PartialOrd + std::fmt::Display>(
        &mut self,
        at: usize,
        field: &str,
        (lo_name, lo): (&str, Option<T>),
        (hi_name, hi): (&str, Option<T>),
    ) {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            self.error(
                at,
                format!("field `{field}`: {lo_name} {lo} is greater than {hi_name} {hi}"),
                Some("no value could ever be valid".into()),
            );
        }
    }

    fn read_default(&mut self, field: &Field, item: &Item<'_>) -> Option<DefaultValue> {
        let at = item.span().start;
        let bad = |cx: &mut Self, why: String| {
            cx.error(at, format!("default of `{}`: {why}", field.name), None);
            None
        };
        match (item.get_ref(), &field.ty) {
            (DeValue::String(s), FieldType::Ref { .. } | FieldType::Uuid)
                if s.as_ref() == "auth.id" =>
            {
                Some(DefaultValue::AuthId)
            }
            (DeValue::String(s), FieldType::Datetime | FieldType::Date)
                if s.as_ref() == "now()" =>
            {
                Some(DefaultValue::Now)
            }
            (DeValue::String(s), ty) => {
                let s = s.to_string();
                let v = serde_json::Value::String(s.clone());
                match crate::validate::check_value(ty, &v) {
                    Ok(()) => Some(DefaultValue::Value(v)),
                    Err(e) => bad(self, format!("\"{s}\" {}", e.message())),
                }
            }
            (DeValue::Integer(_), FieldType::Int { .. }) => self
                .int(item, "default")
                .map(|i| DefaultValue::Value(i.into())),
            (DeValue::Integer(_) | DeValue::Float(_), FieldType::Float { .. }) => {
                self.number(item, "default").and_then(|f| {
                    serde_json::Number::from_f64(f)
                        .map(|n| DefaultValue::Value(serde_json::Value::Number(n)))
                })
            }
            (DeValue::Boolean(b), FieldType::Bool) => Some(DefaultValue::Value((*b).into())),
            (DeValue::Array(_) | DeValue::Table(_), FieldType::Json) => {
                Some(DefaultValue::Value(to_json(item.get_ref())))
            }
            (other, ty) => bad(
                self,
                format!("a {} cannot default to a {}", ty.name(), other.type_str()),
            ),
        }
    }
}

fn to_json(v: &DeValue<'_>) -> serde_json::Value {
    match v {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(i) => i
            .as_str()
            .replace('_', "")
            .parse::<i64>()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Boolean(b) => (*b).into(),
        DeValue::Datetime(d) => serde_json::Value::String(d.to_string()),
        DeValue::Array(a) => {
            serde_json::Value::Array(a.iter().map(|x| to_json(x.get_ref())).collect())
        }
        DeValue::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_json(x.get_ref())))
                .collect(),
        ),
    }
}
