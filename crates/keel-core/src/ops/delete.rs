//! Delete: under the delete rule and the expected version; the event carries the
//! record as it was.

use crate::engine::{Engine, id_value};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::sql::RowScope;
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
        let delete = Query::delete()
            .from_table(Alias::new(&c.name))
            .and_where(Expr::col(Alias::new("id")).eq(id_value(uuid, dialect)))
            .to_owned();
        tx.execute(&Stmt::build(&delete, dialect))
            .await
            .map_err(|e| self.constraint_error(c, e))?;
        let now = time::OffsetDateTime::now_utc();
        self.append_event(&mut tx, c, "deleted", uuid, &current, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
