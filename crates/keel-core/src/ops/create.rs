//! Create: validate the body, insert, check the create rule against the stored
//! row, append the event, remember the outcome for an `Idempotency-Key`.

use crate::engine::{Created, Engine};
use crate::error::{CoreError, FieldError};
use crate::principal::Principal;
use crate::sql::{RowScope, rule_predicate};
use crate::values;
use crate::write::idempotency::IdempotencyKey;
use crate::write::input::{body_object, reject_unknown};
use crate::write::outbox::{Change, ChangeKind};
use keel_expr::Value;
use keel_spec::{DefaultValue, FieldType, Operation, Storage};
use keel_store::{Stmt, StoreError};
use sea_query::{Alias, Expr, Query};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

impl Engine {
    /// Create a record. With an idempotency key, a retry of the same request gets
    /// the first answer again; a different request with the same key is refused.
    pub async fn create(
        &self,
        principal: &Principal,
        collection: &str,
        body: &Json,
        idempotency_key: Option<&str>,
    ) -> Result<Created, CoreError> {
        self.create_with(principal, collection, body, idempotency_key, &Map::new())
            .await
    }

    /// [`Engine::create`] plus values for server-set (readonly) fields, such as the
    /// password hash written at sign-up. `server` is trusted: never from a request body.
    pub async fn create_with(
        &self,
        principal: &Principal,
        collection: &str,
        body: &Json,
        idempotency_key: Option<&str>,
        server: &Map<String, Json>,
    ) -> Result<Created, CoreError> {
        let c = self.collection(collection)?;
        let dialect = self.dialect();
        // Refused before anything is read when the caller alone decides the rule, so
        // a denied caller learns nothing from validation, refs or conflicts.
        if !principal.system
            && c.access
                .create
                .as_ref()
                .is_none_or(|r| keel_expr::decide_for_caller(&r.typed, principal) == Some(false))
        {
            return Err(self.denied(principal, Operation::Create, c));
        }
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        reject_unknown(c, obj, false, &mut errors);
        let now = time::OffsetDateTime::now_utc();
        let mut input: BTreeMap<String, Value> = BTreeMap::new();
        for f in c.creatable() {
            let value = match obj.get(&f.name) {
                Some(v) => match self.check_field(c, f, v) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => match &f.default {
                    Some(DefaultValue::Value(v)) => values::from_json(&f.ty, v),
                    Some(DefaultValue::AuthId) => match principal.id {
                        Some(id) => Value::Uuid(id),
                        None if f.required => {
                            return Err(self.denied(principal, Operation::Create, c));
                        }
                        None => Value::Null,
                    },
                    Some(DefaultValue::Now) => match f.ty {
                        FieldType::Date => Value::Date(now.date()),
                        _ => Value::Datetime(now),
                    },
                    None if f.required => {
                        errors.push(FieldError::new(&f.name, "required", "is required"));
                        continue;
                    }
                    None => Value::Null,
                },
            };
            input.insert(f.name.clone(), value);
        }
        self.server_values(c, server, &mut input, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }

        let id = uuid::Uuid::now_v7();
        let mut tx = self.store.begin().await?;
        let idempotency = idempotency_key.map(|k| IdempotencyKey::new(k, principal, c, body));
        if let Some(key) = &idempotency
            && let Some(replay) = self.idempotent_replay(&mut tx, c, key).await?
        {
            return Ok(replay);
        }
        self.check_refs(&mut tx, c, principal, &input).await?;

        let mut row: Vec<(String, Storage, Value)> = vec![
            ("id".into(), Storage::Uuid, Value::Uuid(id)),
            ("created_at".into(), Storage::Datetime, Value::Datetime(now)),
            ("updated_at".into(), Storage::Datetime, Value::Datetime(now)),
            ("version".into(), Storage::Int, Value::Int(1)),
        ];
        for f in c.creatable() {
            if let Some(v) = input.get(&f.name) {
                row.push((f.name.clone(), f.storage(), self.stored_value(c, f, v)?));
            }
        }
        // Server-set fields that are not client-writable still get their defaults.
        for f in c.fields.iter().filter(|f| !f.system && f.readonly) {
            if let Some(v) = input.get(&f.name) {
                row.push((f.name.clone(), f.storage(), self.stored_value(c, f, v)?));
                continue;
            }
            let v = match &f.default {
                Some(DefaultValue::Value(v)) => values::from_json(&f.ty, v),
                Some(DefaultValue::AuthId) => principal.id.map_or(Value::Null, Value::Uuid),
                Some(DefaultValue::Now) => Value::Datetime(now),
                None => Value::Null,
            };
            row.push((f.name.clone(), f.storage(), self.stored_value(c, f, &v)?));
        }
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(&c.name))
            .columns(row.iter().map(|(n, _, _)| Alias::new(n)));
        insert
            .values(
                row.iter()
                    .map(|(_, s, v)| Expr::val(values::to_sql(v, *s, dialect))),
            )
            .map_err(|e| CoreError::Store(StoreError::Other(e.to_string())))?;
        tx.execute(&Stmt::build(&insert, dialect))
            .await
            .map_err(|e| self.constraint_error(c, e))?;

        // The create rule sees the record as stored (defaults applied) and `input`.
        let scope = RowScope::new(&self.model, c, principal).with_input(&input);
        let record = self
            .read_in_tx(
                &mut tx,
                c,
                id,
                &[rule_predicate(c.access.create.as_ref(), &scope, dialect)],
            )
            .await?;
        let Some((record, checks)) = record else {
            return Err(CoreError::Store(StoreError::Other(
                "the new record vanished".into(),
            )));
        };
        if !checks[0] {
            tx.rollback().await?;
            return Err(self.denied(principal, Operation::Create, c));
        }
        let change = Change {
            kind: ChangeKind::Created,
            record_id: id,
            data: Some(&record),
            previous: None,
        };
        self.append_event(&mut tx, c, change, principal, now)
            .await?;
        if let Some(key) = &idempotency {
            self.remember_created(&mut tx, key, id, &record).await?;
        }
        tx.commit().await?;
        self.after_commit();
        self.note_write(principal).await;
        // Nothing is cached for a new id (nor can an older version be: there is
        // none), so a create writes nothing through; a read fills it when wanted.
        Ok(Created {
            record: Json::Object(self.open(c, record)),
            id: id.hyphenated().to_string(),
            replayed: false,
        })
    }
}
