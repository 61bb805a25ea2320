//! `expand`: the records that ref fields point at, embedded, each under its own
//! read rule (one query per ref field, not one per record).

use crate::engine::{Engine, id_value, storages};
use crate::error::CoreError;
use crate::principal::Principal;
use crate::sql::{RowScope, col, rule_predicate};
use keel_spec::{Collection, FieldType};
use keel_store::Stmt;
use sea_query::ExprTrait;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

impl Engine {
    /// The records of `collection` with these ids that `principal` may read, in no
    /// particular order: one query by primary key under the read rule (none at all
    /// when the collection has no read rule). What `expand` and GraphQL's refs load.
    pub async fn read_by_ids(
        &self,
        principal: &Principal,
        collection: &str,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<Map<String, Json>>, CoreError> {
        let target = self.collection(collection)?;
        self.readable_by_ids(principal, target, ids).await
    }

    async fn readable_by_ids(
        &self,
        principal: &Principal,
        target: &Collection,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<Map<String, Json>>, CoreError> {
        if ids.is_empty() || target.access.read.is_none() {
            return Ok(Vec::new());
        }
        let dialect = self.dialect();
        let scope = RowScope::new(&self.model, target, principal);
        let (mut q, columns) = self.select(target);
        q.and_where(col(&target.name, "id").is_in(ids.iter().map(|u| id_value(*u, dialect))));
        q.and_where(rule_predicate(target.access.read.as_ref(), &scope, dialect));
        Ok(self
            .read_rows(principal, &Stmt::build(&q, dialect), &storages(&columns))
            .await?
            .into_iter()
            .map(|row| self.record(target, &columns, row))
            .collect())
    }

    /// Embed the records that ref fields point at, each under its own read rule.
    pub(crate) async fn expand(
        &self,
        principal: &Principal,
        c: &Collection,
        fields: &[String],
        records: &mut [Map<String, Json>],
    ) -> Result<(), CoreError> {
        for name in fields {
            let Some(FieldType::Ref { to, .. }) = c.field(name).map(|f| &f.ty) else {
                continue;
            };
            let target = self.collection(to)?;
            let ids: Vec<uuid::Uuid> = records
                .iter()
                .filter_map(|r| r.get(name).and_then(Json::as_str))
                .filter_map(|s| uuid::Uuid::parse_str(s).ok())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let found: HashMap<String, Json> = self
                .readable_by_ids(principal, target, &ids)
                .await?
                .into_iter()
                .filter_map(|rec| {
                    let id = rec.get("id").and_then(Json::as_str)?.to_string();
                    Some((id, Json::Object(rec)))
                })
                .collect();
            for r in records.iter_mut() {
                let value = r
                    .get(name)
                    .and_then(Json::as_str)
                    .and_then(|id| found.get(id).cloned())
                    .unwrap_or(Json::Null);
                let entry = r
                    .entry("expand")
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(m) = entry {
                    m.insert(name.clone(), value);
                }
            }
        }
        Ok(())
    }
}
