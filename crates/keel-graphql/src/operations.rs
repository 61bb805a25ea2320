//! The root fields of each collection — list, by id, create, update, delete — each
//! one call of the operation core, counted against the same quotas as REST.

use crate::schema::{arg, arg_int, arg_string, input_json, record, recover};
use crate::{Caller, Core, admit, core_error};
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, ResolverContext, TypeRef,
};
use keel_core::ratelimit::OpKind;
use keel_core::{ListText, Page, Principal};
use keel_spec::Collection;
use std::sync::Arc;

/// The arguments of every paged list field.
pub(crate) fn list_arguments(field: Field) -> Field {
    field
        .argument(InputValue::new("filter", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("sort", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("cursor", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("count", TypeRef::named(TypeRef::BOOLEAN)))
}

/// One page of `coll` as the caller reads it, from the field's arguments; `own` is
/// a filter every item must also pass (a parent's children).
pub(crate) async fn list_page<'a>(
    core: &Core,
    ctx: &ResolverContext<'a>,
    coll: &str,
    own: Option<String>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let caller = ctx.data::<Caller>()?;
    let limit = arg_int(ctx, "limit")?
        .map(|n| u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX }));
    let filter = match (own, arg_string(ctx, "filter")?) {
        (Some(own), Some(asked)) if !asked.trim().is_empty() => {
            // Checked alone first: its errors point into it, and it must be one whole
            // expression (`a) || (b` would otherwise escape the parent's bound).
            let alone = ListText {
                filter: Some(asked.clone()),
                ..Default::default()
            };
            core.engine.list_query(coll, &alone).map_err(core_error)?;
            Some(format!("{own} && ({asked})"))
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let text = ListText {
        filter,
        sort: arg_string(ctx, "sort")?,
        limit,
        cursor: arg_string(ctx, "cursor")?,
        fields: None,
        expand: None,
        count: arg(ctx, "count").map(|v| v.boolean()).transpose()? == Some(true),
    };
    let page = fetch_page(core, &caller.principal, &caller.client_ip, coll, &text).await?;
    Ok(Some(FieldValue::owned_any(page)))
}

/// One page of `coll` as `principal` reads it, counted against their quotas: what a
/// list field resolves to, planned or not.
pub(crate) async fn fetch_page(
    core: &Core,
    principal: &Principal,
    client_ip: &str,
    coll: &str,
    text: &ListText,
) -> async_graphql::Result<Page> {
    admit(core, principal, client_ip, coll, OpKind::List).await?;
    let q = core.engine.list_query(coll, text).map_err(core_error)?;
    core.engine
        .list(principal, coll, &q)
        .await
        .map_err(core_error)
}

/// The record `id` of `coll` as `principal` reads it (every visible field), counted
/// against their quotas: what a by-id field resolves to, planned or not.
pub(crate) async fn fetch_record(
    core: &Core,
    principal: &Principal,
    client_ip: &str,
    coll: &str,
    id: &str,
) -> async_graphql::Result<serde_json::Value> {
    admit(core, principal, client_ip, coll, OpKind::Get).await?;
    let projection = core
        .engine
        .projection(coll, None, None)
        .map_err(core_error)?;
    core.engine
        .get(principal, coll, id, &projection)
        .await
        .map_err(core_error)
}

pub(crate) fn list_field(core: &Arc<Core>, c: &Collection, tn: &str) -> Field {
    let core = core.clone();
    let coll = c.name.clone();
    let field = Field::new(&c.name, TypeRef::named(format!("{tn}List")), move |ctx| {
        let core = core.clone();
        let coll = coll.clone();
        FieldFuture::new(async move {
            let result = list_page(&core, &ctx, &coll, None).await;
            recover(ctx.ctx, result)
        })
    })
    .description(format!(
        "A page of `{}`, as `GET /v1/{}` answers it.",
        c.name, c.name
    ));
    list_arguments(field)
}

pub(crate) fn by_id_field(core: &Arc<Core>, c: &Collection, tn: &str) -> Field {
    let core = core.clone();
    let coll = c.name.clone();
    Field::new(
        format!("{}_by_id", c.name),
        TypeRef::named(tn),
        move |ctx| {
            let core = core.clone();
            let coll = coll.clone();
            FieldFuture::new(async move {
                let result: async_graphql::Result<Option<FieldValue>> = async {
                    let caller = ctx.data::<Caller>()?;
                    let id = ctx.args.try_get("id")?.string()?.to_string();
                    let rec = fetch_record(&core, &caller.principal, &caller.client_ip, &coll, &id)
                        .await?;
                    Ok(Some(record(rec)))
                }
                .await;
                recover(ctx.ctx, result)
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::STRING)))
}

pub(crate) fn create_field(core: &Arc<Core>, c: &Collection, tn: &str, input: &str) -> Field {
    let core = core.clone();
    let coll = c.name.clone();
    Field::new(
        format!("create_{}", c.name),
        TypeRef::named(tn),
        move |ctx| {
            let core = core.clone();
            let coll = coll.clone();
            FieldFuture::new(async move {
                let result: async_graphql::Result<Option<FieldValue>> = async {
                    let caller = ctx.data::<Caller>()?;
                    let body = input_json(&ctx)?;
                    let key = arg_string(&ctx, "idempotency_key")?;
                    admit(
                        &core,
                        &caller.principal,
                        &caller.client_ip,
                        &coll,
                        OpKind::Create,
                    )
                    .await?;
                    let created = core
                        .engine
                        .create(&caller.principal, &coll, &body, key.as_deref())
                        .await
                        .map_err(core_error)?;
                    Ok(Some(record(created.record)))
                }
                .await;
                recover(ctx.ctx, result)
            })
        },
    )
    .argument(InputValue::new("input", TypeRef::named_nn(input)))
    .argument(InputValue::new(
        "idempotency_key",
        TypeRef::named(TypeRef::STRING),
    ))
}

pub(crate) fn update_field(core: &Arc<Core>, c: &Collection, tn: &str, input: &str) -> Field {
    let core = core.clone();
    let coll = c.name.clone();
    Field::new(
        format!("update_{}", c.name),
        TypeRef::named(tn),
        move |ctx| {
            let core = core.clone();
            let coll = coll.clone();
            FieldFuture::new(async move {
                let result: async_graphql::Result<Option<FieldValue>> = async {
                    let caller = ctx.data::<Caller>()?;
                    let id = ctx.args.try_get("id")?.string()?.to_string();
                    let body = input_json(&ctx)?;
                    let version = arg_int(&ctx, "if_version")?;
                    admit(
                        &core,
                        &caller.principal,
                        &caller.client_ip,
                        &coll,
                        OpKind::Update,
                    )
                    .await?;
                    let versions = version.map(|v| [v]);
                    let rec = core
                        .engine
                        .update(
                            &caller.principal,
                            &coll,
                            &id,
                            &body,
                            versions.as_ref().map(|v| &v[..]),
                        )
                        .await
                        .map_err(core_error)?;
                    Ok(Some(record(rec)))
                }
                .await;
                recover(ctx.ctx, result)
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("input", TypeRef::named_nn(input)))
    .argument(InputValue::new("if_version", TypeRef::named(TypeRef::INT)))
}

pub(crate) fn delete_field(core: &Arc<Core>, c: &Collection) -> Field {
    let core = core.clone();
    let coll = c.name.clone();
    Field::new(
        format!("delete_{}", c.name),
        TypeRef::named(TypeRef::BOOLEAN),
        move |ctx| {
            let core = core.clone();
            let coll = coll.clone();
            FieldFuture::new(async move {
                let result: async_graphql::Result<Option<FieldValue>> = async {
                    let caller = ctx.data::<Caller>()?;
                    let id = ctx.args.try_get("id")?.string()?.to_string();
                    let version = arg_int(&ctx, "if_version")?;
                    admit(
                        &core,
                        &caller.principal,
                        &caller.client_ip,
                        &coll,
                        OpKind::Delete,
                    )
                    .await?;
                    let versions = version.map(|v| [v]);
                    core.engine
                        .delete(
                            &caller.principal,
                            &coll,
                            &id,
                            versions.as_ref().map(|v| &v[..]),
                        )
                        .await
                        .map_err(core_error)?;
                    Ok(Some(FieldValue::value(true)))
                }
                .await;
                recover(ctx.ctx, result)
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("if_version", TypeRef::named(TypeRef::INT)))
}
