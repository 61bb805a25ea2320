//! Update: a partial change under the update rule and the expected version.

use crate::engine::{Engine, id_value};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::sql::RowScope;
use crate::values;
use crate::write::input::{body_object, reject_unknown};
use crate::write::outbox::{Change, ChangeKind};
use keel_expr::Value;
use keel_spec::{Operation, Storage};
use keel_store::Stmt;
use sea_query::{Alias, Expr, ExprTrait, Query};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

impl Engine {
    /// Partially update a record. `if_match`: the versions the client accepts (the one
    /// it last saw); `Some(&[])` never matches, `None` is unconditional.
    pub async fn update(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        body: &Json,
        if_match: Option<&[i64]>,
    ) -> Result<Json, CoreError> {
        self.update_with(principal, collection, id, body, if_match, &Map::new())
            .await
    }

    /// [`Engine::update`] plus trusted values for server-set fields (role grants, a
    /// new password hash).
    pub async fn update_with(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        body: &Json,
        if_match: Option<&[i64]>,
        server: &Map<String, Json>,
    ) -> Result<Json, CoreError> {
        let c = self.collection(collection)?;
        let dialect = self.dialect();
        let not_found = || CoreError::NotFound {
            collection: c.name.clone(),
            id: id.to_string(),
        };
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        reject_unknown(c, obj, true, &mut errors);
        let mut input: BTreeMap<String, Value> = BTreeMap::new();
        for f in c.updatable() {
            if let Some(v) = obj.get(&f.name) {
                match self.check_field(c, f, v) {
                    Ok(v) => {
                        input.insert(f.name.clone(), v);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        self.server_values(c, server, &mut input, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let mut tx = self.store.begin().await?;
        let scope = RowScope::new(&self.model, c, principal).with_input(&input);
        let checks = self.write_checks(c, &scope, Operation::Update, dialect);
        let (previous, version) = self
            .lock_for_write(
                &mut tx,
                c,
                uuid,
                id,
                principal,
                Operation::Update,
                checks,
                if_match,
            )
            .await?;
        self.check_refs(&mut tx, c, principal, &input).await?;
        let now = time::OffsetDateTime::now_utc();
        let mut update = Query::update();
        update.table(Alias::new(&c.name));
        for (name, v) in &input {
            let Some(f) = c.field(name) else { continue };
            let stored = self.stored_value(c, f, v)?;
            update.value(
                Alias::new(name),
                Expr::val(values::to_sql(&stored, f.storage(), dialect)),
            );
        }
        update.value(
            Alias::new("updated_at"),
            Expr::val(values::to_sql(
                &Value::Datetime(now),
                Storage::Datetime,
                dialect,
            )),
        );
        update.value(
            Alias::new("version"),
            Expr::col(Alias::new("version")).add(1),
        );
        update.and_where(Expr::col(Alias::new("id")).eq(id_value(uuid, dialect)));
        update.and_where(Expr::col(Alias::new("version")).eq(version));
        let changed = tx
            .execute(&Stmt::build(&update, dialect))
            .await
            .map_err(|e| self.constraint_error(c, e))?;
        if changed == 0 {
            return Err(CoreError::StaleVersion {
                current: version + 1,
            });
        }
        let Some((record, _)) = self.read_in_tx(&mut tx, c, uuid, &[]).await? else {
            return Err(not_found());
        };
        let change = Change {
            kind: ChangeKind::Updated,
            record_id: uuid,
            data: Some(&record),
            previous: Some(&previous),
        };
        self.append_event(&mut tx, c, change, principal, now)
            .await?;
        tx.commit().await?;
        self.after_commit();
        self.note_write(principal).await;
        self.cache_written(vec![crate::write::Touched {
            collection: c.name.clone(),
            id: uuid,
            record: Some(record.clone()),
        }])
        .await;
        Ok(Json::Object(self.open(c, record)))
    }
}
