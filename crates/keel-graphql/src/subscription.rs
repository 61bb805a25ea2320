//! Subscriptions: `<c>_events(filter, since)` is the realtime feed of one collection
//! (the same hub, read rules, filters and cursors as `GET /v1/realtime`), one
//! `<C>Event` per change the caller may read:
//!
//! ```graphql
//! type PostsEvent {
//!   cursor: String!      # resume with `since: cursor` after a disconnect
//!   type: String!        # posts.created | posts.updated | posts.deleted | reset
//!   id: ID               # the event id (UUIDv7), as webhooks and brokers see it
//!   record_id: ID
//!   occurred_at: String
//!   actor: ID
//!   data: Posts          # the record after the change; null on delete
//!   previous: Posts      # the record before it; null on create
//! }
//! ```
//!
//! `type: "reset"` (every other member null but `cursor`) says events were missed —
//! the cursor was past the retention window, or the subscriber fell behind: refetch,
//! then continue; the stream then ends after a fall-behind, as on the other surfaces.
//! A ref of `data`/`previous` resolves as the subscriber reads it now.

use crate::refs::RefKey;
use crate::schema::{arg_string, record};
use crate::{Caller, Core, core_error};
use async_graphql::ErrorExtensions;
use async_graphql::Value;
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, SubscriptionField, SubscriptionFieldFuture,
    TypeRef,
};
use keel_core::{CoreError, ErrorCode};
use keel_realtime::{Hub, HubError, Message, SubscriptionRequest};
use keel_spec::Collection;
use keel_store::events::Position;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The name of a collection's event type.
pub(crate) fn event_type_name(tn: &str) -> String {
    format!("{tn}Event")
}

/// The name of a collection's subscription field.
pub(crate) fn field_name(c: &Collection) -> String {
    format!("{}_events", c.name)
}

/// A scalar member of the event object.
fn member(name: &'static str, ty: TypeRef) -> Field {
    Field::new(name, ty, move |ctx| {
        let v = ctx
            .parent_value
            .downcast_ref::<Json>()
            .and_then(|e| e.get(name))
            .filter(|v| !v.is_null())
            .and_then(|v| Value::from_json(v.clone()).ok());
        FieldFuture::from_value(v)
    })
}

/// A record member (`data`, `previous`) of the event object.
fn record_member(name: &'static str, tn: &str) -> Field {
    Field::new(name, TypeRef::named(tn), move |ctx| {
        let v = ctx
            .parent_value
            .downcast_ref::<Json>()
            .and_then(|e| e.get(name))
            .filter(|v| v.is_object())
            .map(|v| record(v.clone()));
        FieldFuture::new(async move { Ok(v) })
    })
}

/// `<C>Event`: one change of a `<C>` record, or a `reset`.
pub(crate) fn event_type(c: &Collection, tn: &str) -> Object {
    Object::new(event_type_name(tn))
        .description(format!(
            "A committed change of a `{}` record the subscriber may read (or `reset`: \
             events were missed; refetch, then continue).",
            c.name
        ))
        .field(
            member("cursor", TypeRef::named_nn(TypeRef::STRING))
                .description("Where this event is in the feed: pass it as `since` to resume."),
        )
        .field(
            member("type", TypeRef::named_nn(TypeRef::STRING)).description(format!(
                "`{0}.created`, `{0}.updated`, `{0}.deleted`, or `reset`.",
                c.name
            )),
        )
        .field(
            member("id", TypeRef::named(TypeRef::ID))
                .description("The event id (UUIDv7), the same on every destination."),
        )
        .field(member("record_id", TypeRef::named(TypeRef::ID)))
        .field(member("occurred_at", TypeRef::named(TypeRef::STRING)))
        .field(
            member("actor", TypeRef::named(TypeRef::ID))
                .description("The user who made the change; null for anonymous or system."),
        )
        .field(
            record_member("data", tn).description("The record after the change; null on delete."),
        )
        .field(
            record_member("previous", tn)
                .description("The record before the change; null on create."),
        )
}

/// A hub refusal as a GraphQL error.
fn hub_error(e: HubError) -> async_graphql::Error {
    match e {
        HubError::TooMany(_) => {
            let message = e.to_string();
            async_graphql::Error::new(message)
                .extend_with(|_, ext| ext.set("code", ErrorCode::RateLimited.slug()))
        }
        HubError::Store(e) => core_error(CoreError::Store(e)),
    }
}

/// The event object of one feed message.
fn event_value(message: Message, live_cursor: impl FnOnce() -> String) -> Json {
    match message {
        Message::Event(e) => {
            let env = &e.envelope;
            let mut v = Map::new();
            v.insert("cursor".into(), json!(e.position.to_cursor()));
            v.insert("type".into(), json!(env.kind));
            v.insert("id".into(), json!(env.id));
            v.insert("record_id".into(), json!(env.record_id));
            v.insert("occurred_at".into(), json!(env.occurred_at));
            v.insert("actor".into(), json!(env.actor));
            v.insert("data".into(), json!(env.data));
            v.insert("previous".into(), json!(env.previous));
            Json::Object(v)
        }
        Message::Reset => json!({"cursor": live_cursor(), "type": "reset"}),
    }
}

/// `<c>_events(filter, since)`.
pub(crate) fn events_field(
    core: &Arc<Core>,
    hub: &Arc<Hub>,
    c: &Collection,
    tn: &str,
) -> SubscriptionField {
    let core = core.clone();
    let hub = hub.clone();
    let coll = c.name.clone();
    SubscriptionField::new(
        field_name(c),
        TypeRef::named_nn(event_type_name(tn)),
        move |ctx| {
            let core = core.clone();
            let hub = hub.clone();
            let coll = coll.clone();
            SubscriptionFieldFuture::new(async move {
                let caller = ctx.data::<Caller>()?;
                let filter = arg_string(&ctx, "filter")?;
                let since = match arg_string(&ctx, "since")? {
                    None => None,
                    Some(text) => Some(Position::from_cursor(text.trim()).ok_or_else(|| {
                        core_error(CoreError::BadParam {
                            param: "since",
                            message: format!("`{text}` is not a cursor of this feed"),
                            position: None,
                        })
                    })?),
                };
                let filter = keel_realtime::access::subscription_filter(
                    &core.engine,
                    &caller.principal,
                    &coll,
                    filter.as_deref(),
                )
                .map_err(core_error)?;
                let subscription = hub
                    .subscribe(SubscriptionRequest {
                        principal: caller.principal.clone(),
                        client_ip: caller.client_ip.clone(),
                        collections: HashMap::from([(coll, filter)]),
                        since,
                    })
                    .await
                    .map_err(hub_error)?;
                Ok(futures_util::stream::unfold(
                    subscription,
                    move |mut subscription| async move {
                        let message = subscription.next().await?;
                        // Refs resolve as the subscriber reads them now, not as the
                        // first event of this stream found them.
                        caller.loader.clear::<RefKey>();
                        let event = event_value(message, || subscription.live_cursor());
                        Some((
                            Ok::<_, async_graphql::Error>(FieldValue::owned_any(event)),
                            subscription,
                        ))
                    },
                ))
            })
        },
    )
    .description(format!(
        "Every committed change of `{0}` the caller may read, as `GET /v1/realtime?collections={0}` \
         streams it; `filter` narrows it (the list filter language), `since` resumes after a cursor.",
        c.name
    ))
    .argument(InputValue::new("filter", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("since", TypeRef::named(TypeRef::STRING)))
}
