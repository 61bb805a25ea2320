//! Delete: under the delete rule and the expected version; the event carries the
//! record as it was.

use crate::engine::{Engine, id_value};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::sql::RowScope;
use crate::write::outbox::{Change, ChangeKind};
use keel_spec::Operation;
use keel_store::Stmt;
use sea_query::{Alias, Expr, ExprTrait, Query};

impl Engine {
    /// Delete a record; `if_match` as for update.
    pub async fn delete(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        if_match: Option<&[i64]>,
    ) -> Result<(), CoreError> {
        let c = self.collection(collection)?;
        let dialect = self.dialect();
        let not_found = || CoreError::NotFound {
            collection: c.name.clone(),
            id: id.to_string(),
        };
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
        let mut tx = self.store.begin().await?;
        let scope = RowScope::new(&self.model, c, principal);
        let checks = self.write_checks(c, &scope, Operation::Delete, dialect);
        let (current, _) = self
            .lock_for_write(
                &mut tx,
                c,
                uuid,
                id,
                principal,
                Operation::Delete,
                checks,
                if_match,
            )
            .await?;
        let now = time::OffsetDateTime::now_utc();
        // Children go first, each an event of its own (cascades and set-nulls are
        // changes too); the database's own ON DELETE then finds nothing left to do.
        let mut visited = std::collections::HashSet::from([(c.name.clone(), uuid)]);
        let mut touched = self
            .cascade(&mut tx, c, uuid, principal, now, &mut visited)
            .await?;
        let delete = Query::delete()
            .from_table(Alias::new(&c.name))
            .and_where(Expr::col(Alias::new("id")).eq(id_value(uuid, dialect)))
            .to_owned();
        tx.execute(&Stmt::build(&delete, dialect))
            .await
            .map_err(|e| self.constraint_error(c, e))?;
        let change = Change {
            kind: ChangeKind::Deleted,
            record_id: uuid,
            data: None,
            previous: Some(&current),
        };
        self.append_event(&mut tx, c, change, principal, now)
            .await?;
        tx.commit().await?;
        self.after_commit();
        self.note_write(principal).await;
        touched.push(crate::write::Touched {
            collection: c.name.clone(),
            id: uuid,
            record: None,
        });
        self.cache_written(touched).await;
        Ok(())
    }
}
