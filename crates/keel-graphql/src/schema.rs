//! The dynamic schema, generated from the model, and the per-request ref loader.

use crate::names::{enum_value_name, pascal};
use crate::operations::{
    by_id_field, create_field, delete_field, list_arguments, list_field, list_page, update_field,
};
use crate::refs::RefKey;
use crate::{Caller, Core, Options, subscription};
use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Scalar,
    Schema, SchemaError, TypeRef,
};
use async_graphql::{Name, Value};
use keel_core::Page;
use keel_realtime::Hub;
use keel_spec::{Collection, Field as SpecField, FieldType};
use serde_json::Value as Json;
use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

const JSON_SCALAR: &str = "JSON";

/// The GraphQL type of a field's value (refs: the id, as input takes it).
pub(crate) fn scalar_type(collection_type: &str, f: &SpecField) -> String {
    match &f.ty {
        FieldType::Int { .. } => TypeRef::INT.into(),
        FieldType::Float { .. } => TypeRef::FLOAT.into(),
        FieldType::Bool => TypeRef::BOOLEAN.into(),
        FieldType::Json => JSON_SCALAR.into(),
        FieldType::Enum { values } if values.iter().all(|v| enum_value_name(v)) => {
            enum_type(collection_type, f)
        }
        _ => TypeRef::STRING.into(),
    }
}

pub(crate) fn enum_type(collection_type: &str, f: &SpecField) -> String {
    format!("{collection_type}{}", pascal(&f.name))
}

pub(crate) fn is_enum(f: &SpecField) -> bool {
    matches!(&f.ty, FieldType::Enum { values } if values.iter().all(|v| enum_value_name(v)))
}

/// A record's value as GraphQL answers it.
pub(crate) fn to_value(v: &Json, as_enum: bool) -> Option<Value> {
    match v {
        Json::Null => None,
        Json::String(s) if as_enum => Some(Value::Enum(Name::new(s))),
        other => Value::from_json(other.clone()).ok(),
    }
}

/// An optional argument, null and absent alike.
pub(crate) fn arg<'a>(
    ctx: &'a ResolverContext<'_>,
    name: &str,
) -> Option<async_graphql::dynamic::ValueAccessor<'a>> {
    ctx.args.get(name).filter(|v| !v.is_null())
}

pub(crate) fn arg_string(
    ctx: &ResolverContext<'_>,
    name: &str,
) -> async_graphql::Result<Option<String>> {
    arg(ctx, name)
        .map(|v| v.string().map(str::to_string))
        .transpose()
}

pub(crate) fn arg_int(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<i64>> {
    arg(ctx, name).map(|v| v.i64()).transpose()
}

pub(crate) fn input_json(ctx: &ResolverContext<'_>) -> async_graphql::Result<Json> {
    Ok(ctx.args.try_get("input")?.as_value().clone().into_json()?)
}

/// A resolver's failure recorded with its path and position; the field is null.
/// (async-graphql's dynamic schema would drop the field and the path otherwise.)
pub(crate) fn recover<'a>(
    ctx: &async_graphql::Context<'_>,
    result: async_graphql::Result<Option<FieldValue<'a>>>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            ctx.add_error(ctx.set_error_path(e.into_server_error(ctx.item.pos)));
            Ok(None)
        }
    }
}

pub(crate) fn record(v: Json) -> FieldValue<'static> {
    FieldValue::owned_any(v)
}

/// The object type of one collection: its visible fields; a ref is the referenced
/// record, `<ref>_id` its id; each collection that refers to this one is a paged
/// list of the children (see [`children_fields`]).
fn object_type(core: &Arc<Core>, model: &keel_spec::Model, c: &Collection, tn: &str) -> Object {
    let mut obj = Object::new(tn);
    if let Some(d) = &c.description {
        obj = obj.description(d);
    }
    let names: Vec<&str> = c.visible().map(|f| f.name.as_str()).collect();
    for f in c.visible() {
        let key = f.name.clone();
        if let FieldType::Ref { to, .. } = &f.ty {
            let to = to.clone();
            let k = key.clone();
            obj = obj.field(Field::new(
                &f.name,
                TypeRef::named(pascal(&to)),
                move |ctx| {
                    let key = k.clone();
                    let to = to.clone();
                    FieldFuture::new(async move {
                        let result: async_graphql::Result<Option<FieldValue>> = async {
                            let parent = ctx.parent_value;
                            let Some(id) = parent
                                .downcast_ref::<Json>()
                                .and_then(|r| r.get(&key))
                                .and_then(Json::as_str)
                            else {
                                return Ok(None::<FieldValue>);
                            };
                            let caller = ctx.data::<Caller>()?;
                            let found = caller
                                .loader
                                .load_one(RefKey {
                                    collection: to,
                                    id: id.to_string(),
                                })
                                .await?;
                            Ok(found.map(record))
                        }
                        .await;
                        recover(ctx.ctx, result)
                    })
                },
            ));
            let id_name = format!("{}_id", f.name);
            if !names.contains(&id_name.as_str()) {
                obj = obj.field(plain_field(
                    &id_name,
                    key,
                    TypeRef::named(TypeRef::STRING),
                    false,
                ));
            }
            continue;
        }
        let ty = if f.name == "id" {
            TypeRef::named_nn(TypeRef::STRING)
        } else {
            TypeRef::named(scalar_type(tn, f))
        };
        let mut field = plain_field(&f.name, key, ty, is_enum(f));
        if let Some(d) = &f.description {
            field = field.description(d);
        }
        obj = obj.field(field);
    }
    let mut taken: HashSet<String> = c.visible().map(|f| f.name.clone()).collect();
    taken.extend(
        c.visible()
            .filter(|f| matches!(f.ty, FieldType::Ref { .. }))
            .map(|f| format!("{}_id", f.name)),
    );
    for field in children_fields(core, model, c, &mut taken) {
        obj = obj.field(field);
    }
    obj
}

/// The children of a `c` record: for each visible ref field `f` of a collection `ch`
/// that points at `c`, a field `ch` (or `ch_by_f` when `ch` refers to `c` through
/// several fields) answering `ch(filter: "f == <this id> && (filter)", sort, limit,
/// cursor, count)` — REST's `GET /v1/ch?filter=f == "<id>"`, paged the same way, under
/// the caller's read rule. One list per parent record. A name that clashes with a
/// field of `c` is left out.
fn children_fields(
    core: &Arc<Core>,
    model: &keel_spec::Model,
    c: &Collection,
    taken: &mut HashSet<String>,
) -> Vec<Field> {
    let mut fields = Vec::new();
    for ch in &model.collections {
        let refs: Vec<&SpecField> = ch
            .visible()
            .filter(|f| matches!(&f.ty, FieldType::Ref { to, .. } if *to == c.name))
            .collect();
        for f in &refs {
            let name = if refs.len() == 1 {
                ch.name.clone()
            } else {
                format!("{}_by_{}", ch.name, f.name)
            };
            if !taken.insert(name.clone()) {
                continue;
            }
            let ref_field = f.name.clone();
            let child = ch.name.clone();
            let core = core.clone();
            let field = Field::new(
                &name,
                TypeRef::named(format!("{}List", pascal(&ch.name))),
                move |ctx| {
                    let core = core.clone();
                    let child = child.clone();
                    let ref_field = ref_field.clone();
                    FieldFuture::new(async move {
                        let parent_id = ctx
                            .parent_value
                            .downcast_ref::<Json>()
                            .and_then(|r| r.get("id"))
                            .and_then(Json::as_str)
                            .map(str::to_string);
                        let Some(parent_id) = parent_id else {
                            return Ok(None);
                        };
                        // Ids are UUIDs: nothing to escape in the literal.
                        let own = format!("{ref_field} == \"{}\"", parent_id.replace('"', ""));
                        let result = list_page(&core, &ctx, &child, Some(own)).await;
                        recover(ctx.ctx, result)
                    })
                },
            )
            .description(format!(
                "The `{}` records whose `{}` is this record, paged as `GET /v1/{}`.",
                ch.name, f.name, ch.name
            ));
            fields.push(list_arguments(field));
        }
    }
    fields
}

/// A field read from the parent record under `key`.
fn plain_field(name: &str, key: String, ty: TypeRef, as_enum: bool) -> Field {
    Field::new(name, ty, move |ctx| {
        let v = ctx
            .parent_value
            .downcast_ref::<Json>()
            .and_then(|r| r.get(&key))
            .and_then(|v| to_value(v, as_enum));
        FieldFuture::from_value(v)
    })
}

/// `{items, next_cursor, total}` over a [`Page`].
fn list_type(tn: &str) -> Object {
    Object::new(format!("{tn}List"))
        .field(Field::new("items", TypeRef::named_nn_list_nn(tn), |ctx| {
            FieldFuture::new(async move {
                let parent = ctx.parent_value;
                let page = parent.try_downcast_ref::<Page>()?;
                Ok(Some(FieldValue::list(page.items.iter().map(|r| {
                    FieldValue::borrowed_any(r as &(dyn Any + Send + Sync))
                }))))
            })
        }))
        .field(Field::new(
            "next_cursor",
            TypeRef::named(TypeRef::STRING),
            |ctx| {
                let v = ctx
                    .parent_value
                    .downcast_ref::<Page>()
                    .and_then(|p| p.next_cursor.clone())
                    .map(Value::from);
                FieldFuture::from_value(v)
            },
        ))
        .field(Field::new("total", TypeRef::named(TypeRef::INT), |ctx| {
            let v = ctx
                .parent_value
                .downcast_ref::<Page>()
                .and_then(|p| p.total)
                .map(Value::from);
            FieldFuture::from_value(v)
        }))
}

fn input_type<'a>(
    name: String,
    tn: &str,
    fields: impl Iterator<Item = &'a SpecField>,
) -> Option<InputObject> {
    let mut input = InputObject::new(name);
    let mut any = false;
    for f in fields {
        let mut v = InputValue::new(&f.name, TypeRef::named(scalar_type(tn, f)));
        if let Some(d) = &f.description {
            v = v.description(d);
        }
        input = input.field(v);
        any = true;
    }
    any.then_some(input)
}

/// The whole schema of the model.
pub(crate) fn build(
    core: &Arc<Core>,
    hub: Option<&Arc<Hub>>,
    options: &Options,
) -> Result<Schema, SchemaError> {
    let model = core.engine.model();
    let mut query = Object::new("Query");
    let mut mutation = Object::new("Mutation");
    let mut subscription = async_graphql::dynamic::Subscription::new("Subscription");
    let has_subscription = hub.is_some() && !model.collections.is_empty();
    // Every collection has a delete, so there is a mutation whenever there is a collection.
    let has_mutation = !model.collections.is_empty();
    let mut objects = Vec::new();
    let mut inputs = Vec::new();
    let mut enums = Vec::new();
    // The builder keeps the last of two types with one name: refuse clashes instead.
    let mut taken: HashSet<String> = ["Query", "Mutation", "Subscription", JSON_SCALAR]
        .into_iter()
        .chain(["String", "Int", "Float", "Boolean", "ID"])
        .map(String::from)
        .collect();
    let mut roots: HashSet<String> = HashSet::new();
    let claim = |set: &mut HashSet<String>, name: String, what: &str| {
        if set.insert(name.clone()) {
            Ok(())
        } else {
            Err(SchemaError(format!(
                "the GraphQL {what} `{name}` is generated twice; rename a collection or field"
            )))
        }
    };
    for c in &model.collections {
        let tn = pascal(&c.name);
        for name in [
            tn.clone(),
            format!("{tn}List"),
            format!("{tn}CreateInput"),
            format!("{tn}UpdateInput"),
        ] {
            claim(&mut taken, name, "type")?;
        }
        for name in [
            c.name.clone(),
            format!("{}_by_id", c.name),
            format!("create_{}", c.name),
            format!("update_{}", c.name),
            format!("delete_{}", c.name),
        ] {
            claim(&mut roots, name, "field")?;
        }
        for f in &c.fields {
            if let FieldType::Enum { values } = &f.ty
                && is_enum(f)
            {
                claim(&mut taken, enum_type(&tn, f), "type")?;
                enums.push(Enum::new(enum_type(&tn, f)).items(values.iter().map(String::as_str)));
            }
        }
        objects.push(object_type(core, model, c, &tn));
        objects.push(list_type(&tn));
        if let Some(hub) = hub {
            claim(&mut taken, subscription::event_type_name(&tn), "type")?;
            claim(&mut roots, subscription::field_name(c), "field")?;
            objects.push(subscription::event_type(c, &tn));
            subscription = subscription.field(subscription::events_field(core, hub, c, &tn));
        }
        query = query.field(list_field(core, c, &tn));
        query = query.field(by_id_field(core, c, &tn));
        if let Some(input) = input_type(format!("{tn}CreateInput"), &tn, c.creatable()) {
            mutation = mutation.field(create_field(core, c, &tn, input.type_name()));
            inputs.push(input);
        }
        if let Some(input) = input_type(format!("{tn}UpdateInput"), &tn, c.updatable()) {
            mutation = mutation.field(update_field(core, c, &tn, input.type_name()));
            inputs.push(input);
        }
        mutation = mutation.field(delete_field(core, c));
    }
    let mut builder = Schema::build(
        query.type_name(),
        has_mutation.then_some(mutation.type_name()),
        has_subscription.then_some(subscription.type_name()),
    )
    .register(
        Scalar::new(JSON_SCALAR).description("Any JSON value, as the spec's `json` fields hold"),
    )
    .limit_complexity(options.max_complexity);
    if !options.introspection {
        builder = builder.disable_introspection();
    }
    for o in objects {
        builder = builder.register(o);
    }
    for i in inputs {
        builder = builder.register(i);
    }
    for e in enums {
        builder = builder.register(e);
    }
    if has_mutation {
        builder = builder.register(mutation);
    }
    if has_subscription {
        builder = builder.register(subscription);
    }
    builder.register(query).finish()
}
