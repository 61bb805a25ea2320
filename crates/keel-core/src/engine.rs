//! The operation core: list, get, create, update, delete on a collection, each as
//! validate → authorize → execute in a transaction → append to the outbox. REST (and
//! later GraphQL and realtime) call these and nothing else, so a rule or a
//! validation cannot be applied on one surface and forgotten on another.

use crate::cursor::CursorKey;
use crate::error::{CoreError, FieldError};
use crate::principal::Principal;
use crate::sql::{RowScope, col, rule_predicate};
use crate::values;
use keel_expr::{Dialect, Value};
use keel_spec::{Collection, DefaultValue, Field, FieldType, Model, Operation, Storage};
use keel_store::system::{self, OutboxEvent, StoredResponse};
use keel_store::{Stmt, Store, StoreError, Tx};
use sea_query::{Alias, Expr, ExprTrait, LockType, NullOrdering, Order, Query, SelectStatement};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Page size when a list names none, and the most it may ask for.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 200;
const MAX_SORT_KEYS: usize = 6;

/// The parameters of a list, as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub fields: Option<String>,
    pub expand: Option<String>,
    pub count: bool,
}

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub items: Vec<Json>,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// The answer to a create: the record, and whether it is a replay of an earlier
/// request with the same `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Created {
    pub record: Json,
    pub id: String,
    pub replayed: bool,
}

/// The operations over one model and one store.
pub struct Engine {
    model: Arc<Model>,
    store: Store,
    cursor: CursorKey,
    /// Compiled `pattern`s by (collection, field): compiled once, not per request.
    patterns: HashMap<(String, String), regex_lite::Regex>,
    /// Keys for `encrypted` fields; required when the model has any.
    cipher: Option<crate::crypto::FieldCipher>,
    /// Get-by-id statements already built (see `statements`).
    by_id: crate::statements::ByIdSelects,
    /// List filters already parsed and checked.
    filters: crate::statements::ParsedFilters,
}

impl Engine {
    pub fn new(model: Arc<Model>, store: Store, cursor_secret: &[u8]) -> Self {
        let mut patterns = HashMap::new();
        for c in &model.collections {
            for f in &c.fields {
                if let FieldType::Text {
                    pattern: Some(p), ..
                } = &f.ty
                    && let Ok(re) = regex_lite::Regex::new(p)
                {
                    patterns.insert((c.name.clone(), f.name.clone()), re);
                }
            }
        }
        Self {
            model,
            store,
            cursor: CursorKey::new(cursor_secret),
            patterns,
            cipher: None,
            by_id: Default::default(),
            filters: Default::default(),
        }
    }

    /// Use these keys for `encrypted` fields.
    pub fn with_cipher(mut self, cipher: crate::crypto::FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// A row as a record: column names to values, encrypted fields decrypted.
    fn record(
        &self,
        c: &Collection,
        columns: &[(String, Storage)],
        row: Vec<Json>,
    ) -> Map<String, Json> {
        columns
            .iter()
            .zip(row)
            .map(|((name, _), value)| {
                let value = match (c.field(name), &value) {
                    (Some(f), Json::String(stored)) if f.encrypted => self.decrypt(c, name, stored),
                    _ => value,
                };
                (name.clone(), value)
            })
            .collect()
    }

    fn decrypt(&self, c: &Collection, name: &str, stored: &str) -> Json {
        let column = format!("{}.{name}", c.name);
        let plain = self
            .cipher
            .as_ref()
            .ok_or_else(|| "no encryption keys are configured".to_string())
            .and_then(|k| k.decrypt(&column, stored))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
        match plain {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(column = %column, error = %e, "cannot decrypt a stored value");
                Json::Null
            }
        }
    }

    /// The value to store for a field: ciphertext for encrypted fields.
    fn stored_value(&self, c: &Collection, f: &Field, v: &Value) -> Result<Value, CoreError> {
        if !f.encrypted || matches!(v, Value::Null) {
            return Ok(v.clone());
        }
        let plain = match v {
            Value::Json(j) => j.to_string(),
            Value::Text(t) => Json::String(t.clone()).to_string(),
            other => format!("{other:?}"),
        };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            CoreError::Store(StoreError::Other(format!(
                "`{}.{}` is encrypted but {} is not set",
                c.name,
                f.name,
                crate::crypto::KEYS_ENV
            )))
        })?;
        cipher
            .encrypt(&format!("{}.{}", c.name, f.name), plain.as_bytes())
            .map(Value::Text)
            .map_err(|e| CoreError::Store(StoreError::Other(e)))
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    fn collection(&self, name: &str) -> Result<&Collection, CoreError> {
        self.model
            .collection(name)
            .ok_or_else(|| CoreError::UnknownCollection(name.to_string()))
    }

    fn denied(&self, principal: &Principal, op: Operation, c: &Collection) -> CoreError {
        CoreError::Denied {
            anonymous: principal.is_anonymous(),
            message: if principal.is_anonymous() {
                format!("sign in to {} `{}`", op.as_str(), c.name)
            } else {
                format!("you may not {} this `{}` record", op.as_str(), c.name)
            },
        }
    }

    // ---- reads ----

    /// A page of the records the principal may read, filtered and sorted.
    pub async fn list(
        &self,
        principal: &Principal,
        collection: &str,
        params: ListParams,
    ) -> Result<Page, CoreError> {
        let c = self.collection(collection)?;
        let dialect = self.dialect();
        if c.access.read.is_none() && !principal.system {
            return Err(self.denied(principal, Operation::Read, c));
        }
        let limit = match params.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(CoreError::BadParam {
                    param: "limit",
                    message: format!("{n} is out of range: use 1 to {MAX_LIMIT}"),
                    position: None,
                });
            }
        };
        let sort = self.sort_keys(c, params.sort.as_deref())?;
        let sort_key = sort
            .iter()
            .map(|(f, d)| if *d { format!("-{f}") } else { f.clone() })
            .collect::<Vec<_>>()
            .join(",");
        let fields = self.field_list(c, params.fields.as_deref())?;
        let expand = self.expand_list(c, params.expand.as_deref())?;

        let scope = RowScope::new(&self.model, c, principal);
        let filter = match params.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(self.filter_typed(c, f)?),
            None => None,
        };
        let mut conditions = vec![rule_predicate(c.access.read.as_ref(), &scope, dialect)];
        if let Some(typed) = &filter {
            conditions.push(keel_expr::to_sql(typed, &scope, dialect));
        }
        let rule = c.access.read.as_ref().filter(|_| !principal.system);
        let arms = index_arms(
            c,
            rule.map(|r| &r.typed),
            filter.as_deref(),
            &scope,
            dialect,
        );
        let total = if params.count {
            let mut q = Query::select();
            q.expr(Expr::cust("COUNT(*)")).from(Alias::new(&c.name));
            for cond in &conditions {
                q.and_where(cond.clone());
            }
            let rows = self
                .store
                .query(&Stmt::build(&q, dialect), &[Storage::Int])
                .await?;
            rows.first().and_then(|r| r.first()).and_then(Json::as_i64)
        } else {
            None
        };
        let mut keyset = None;
        if let Some(cursor) = params.cursor.as_deref().filter(|c| !c.is_empty()) {
            let values =
                self.cursor
                    .decode(cursor, &sort_key)
                    .map_err(|m| CoreError::BadParam {
                        param: "cursor",
                        message: m.to_string(),
                        position: None,
                    })?;
            keyset = Some(self.keyset(c, &sort, &values, dialect)?);
        }

        let (mut q, columns) = self.select(c);
        let order = |q: &mut SelectStatement| {
            for (field, desc) in &sort {
                let (order, nulls) = if *desc {
                    (Order::Desc, NullOrdering::Last)
                } else {
                    (Order::Asc, NullOrdering::First)
                };
                let column = (Alias::new(&c.name), Alias::new(field));
                // A column that cannot hold NULL is ordered without a NULLS clause:
                // PostgreSQL's indexes sort NULLs the other way round (first when
                // descending), and an explicit clause kept it from walking them.
                if not_null(c, field) {
                    q.order_by(column, order);
                } else {
                    q.order_by_with_nulls(column, order, nulls);
                }
            }
            q.limit(u64::from(limit) + 1);
        };
        match arms {
            // One page per `||` operand, each from its own index, then the page of
            // their union (an id may come from several operands: `IN` counts it once).
            Some(arms) => {
                let mut union: Option<SelectStatement> = None;
                for (i, arm) in arms.into_iter().enumerate() {
                    let mut inner = Query::select();
                    inner
                        .expr(col(&c.name, "id"))
                        .from(Alias::new(&c.name))
                        .and_where(arm);
                    if let Some(k) = &keyset {
                        inner.and_where(k.clone());
                    }
                    order(&mut inner);
                    let alias = format!("_arm{i}");
                    let mut page = Query::select();
                    page.column(Alias::new("id"))
                        .from_subquery(inner, Alias::new(&alias));
                    union = Some(match union {
                        None => page,
                        Some(mut u) => {
                            u.union(sea_query::UnionType::All, page);
                            u
                        }
                    });
                }
                if let Some(union) = union {
                    q.and_where(col(&c.name, "id").in_subquery(union));
                }
            }
            None => {
                for cond in conditions.into_iter().chain(keyset) {
                    q.and_where(cond);
                }
            }
        }
        order(&mut q);
        let rows = self
            .store
            .query(&Stmt::build(&q, dialect), &storages(&columns))
            .await?;
        let has_more = rows.len() > limit as usize;
        let mut records: Vec<Map<String, Json>> = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| self.record(c, &columns, r))
            .collect();
        let next_cursor = if has_more {
            records.last().map(|last| {
                let values: Vec<Json> = sort
                    .iter()
                    .map(|(f, _)| last.get(f).cloned().unwrap_or(Json::Null))
                    .collect();
                self.cursor.encode(&sort_key, &values)
            })
        } else {
            None
        };
        self.expand(principal, c, &expand, &mut records).await?;
        let items = records
            .into_iter()
            .map(|r| Json::Object(project(r, fields.as_deref())))
            .collect();
        Ok(Page {
            items,
            next_cursor,
            total,
        })
    }

    /// One record, if it exists and the principal may read it (404 otherwise: a
    /// record one may not read is one that does not exist, as far as they know).
    pub async fn get(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        fields: Option<&str>,
        expand: Option<&str>,
    ) -> Result<Json, CoreError> {
        let c = self.collection(collection)?;
        let not_found = || CoreError::NotFound {
            collection: c.name.clone(),
            id: id.to_string(),
        };
        let fields = self.field_list(c, fields)?;
        let expand = self.expand_list(c, expand)?;
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
        if c.access.read.is_none() && !principal.system {
            return Err(self.denied(principal, Operation::Read, c));
        }
        let select = self.select_by_id(c, principal, uuid);
        let rows = self
            .store
            .query(&select.stmt, &storages(&select.columns))
            .await?;
        let row = rows.into_iter().next().ok_or_else(not_found)?;
        let mut records = vec![self.record(c, &select.columns, row)];
        self.expand(principal, c, &expand, &mut records).await?;
        let record = records.pop().unwrap_or_default();
        Ok(Json::Object(project(record, fields.as_deref())))
    }

    /// `SELECT <visible columns> FROM <collection> WHERE id = ? AND <read rule>` for
    /// this principal, built once per collection and principal unless the rule reads
    /// the clock.
    fn select_by_id(&self, c: &Collection, principal: &Principal, id: uuid::Uuid) -> ByIdStmt {
        let dialect = self.dialect();
        let id = id_value(id, dialect);
        let reusable = c
            .access
            .read
            .as_ref()
            .is_none_or(|r| !r.typed.reads_clock());
        if reusable && let Some(built) = self.by_id.get(&c.name, principal) {
            let mut stmt = built.stmt.clone();
            stmt.values[0] = id;
            return ByIdStmt {
                stmt,
                columns: built.columns.clone(),
            };
        }
        let scope = RowScope::new(&self.model, c, principal);
        let (mut q, columns) = self.select(c);
        q.and_where(col(&c.name, "id").eq(id.clone()));
        q.and_where(rule_predicate(c.access.read.as_ref(), &scope, dialect));
        let stmt = Stmt::build(&q, dialect);
        let columns: Arc<[(String, Storage)]> = columns.into();
        if reusable && stmt.values.first() == Some(&id) {
            let built = crate::statements::ByIdSelect {
                stmt: stmt.clone(),
                columns: columns.clone(),
            };
            self.by_id.insert(&c.name, principal, Arc::new(built));
        }
        ByIdStmt { stmt, columns }
    }

    /// `SELECT <visible columns> FROM <collection>`, and those columns.
    fn select(&self, c: &Collection) -> (SelectStatement, Vec<(String, Storage)>) {
        let columns: Vec<(String, Storage)> =
            c.visible().map(|f| (f.name.clone(), f.storage())).collect();
        let mut q = Query::select();
        for (name, _) in &columns {
            q.expr(col(&c.name, name));
        }
        q.from(Alias::new(&c.name));
        (q, columns)
    }

    fn sort_keys(
        &self,
        c: &Collection,
        sort: Option<&str>,
    ) -> Result<Vec<(String, bool)>, CoreError> {
        let bad = |message: String| CoreError::BadParam {
            param: "sort",
            message,
            position: None,
        };
        let mut keys: Vec<(String, bool)> = match sort.filter(|s| !s.is_empty()) {
            None => c
                .default_sort
                .iter()
                .map(|k| (k.field.clone(), k.descending))
                .collect(),
            Some(s) => {
                let parts: Vec<&str> = s.split(',').collect();
                if parts.len() > MAX_SORT_KEYS {
                    return Err(bad(format!("at most {MAX_SORT_KEYS} sort keys")));
                }
                let mut keys = Vec::new();
                for part in parts {
                    let (name, desc) = match part.strip_prefix('-') {
                        Some(n) => (n, true),
                        None => (part, false),
                    };
                    let field = self.visible_field(c, name).map_err(bad)?;
                    if field.ty == FieldType::Json || field.encrypted {
                        return Err(bad(format!(
                            "`{name}` is a json or encrypted field and cannot be sorted on"
                        )));
                    }
                    // A repeated key adds nothing to the order: the first one counts.
                    if !keys.iter().any(|(k, _)| k == name) {
                        keys.push((name.to_string(), desc));
                    }
                }
                keys
            }
        };
        // `id` breaks ties, so the order (and every cursor) is total.
        if !keys.iter().any(|(k, _)| k == "id") {
            keys.push(("id".into(), false));
        }
        Ok(keys)
    }

    fn visible_field<'c>(&self, c: &'c Collection, name: &str) -> Result<&'c Field, String> {
        match c.field(name) {
            Some(f) if !f.hidden => Ok(f),
            _ => {
                let names: Vec<&str> = c.visible().map(|f| f.name.as_str()).collect();
                Err(format!(
                    "`{}` has no field `{name}`; fields: {}",
                    c.name,
                    names.join(", ")
                ))
            }
        }
    }

    fn field_list(
        &self,
        c: &Collection,
        fields: Option<&str>,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let Some(fields) = fields.filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for name in fields.split(',') {
            self.visible_field(c, name)
                .map_err(|m| CoreError::BadParam {
                    param: "fields",
                    message: m,
                    position: None,
                })?;
            out.push(name.to_string());
        }
        Ok(Some(out))
    }

    fn expand_list(&self, c: &Collection, expand: Option<&str>) -> Result<Vec<String>, CoreError> {
        let Some(expand) = expand.filter(|f| !f.is_empty()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for name in expand.split(',') {
            let f = self
                .visible_field(c, name)
                .map_err(|m| CoreError::BadParam {
                    param: "expand",
                    message: m,
                    position: None,
                })?;
            if !matches!(f.ty, FieldType::Ref { .. }) {
                return Err(CoreError::BadParam {
                    param: "expand",
                    message: format!("`{name}` is not a ref field"),
                    position: None,
                });
            }
            if !out.contains(&f.name) {
                out.push(f.name.clone());
            }
        }
        Ok(out)
    }

    /// A list filter parsed and type-checked, from the cache when it was seen before
    /// (only filters that pass are kept).
    fn filter_typed(
        &self,
        c: &Collection,
        filter: &str,
    ) -> Result<Arc<keel_expr::Typed>, CoreError> {
        if let Some(typed) = self.filters.get(&c.name, filter) {
            return Ok(typed);
        }
        let typed = Arc::new(self.parse_filter(c, filter)?);
        self.filters.insert(&c.name, filter, typed.clone());
        Ok(typed)
    }

    fn parse_filter(&self, c: &Collection, filter: &str) -> Result<keel_expr::Typed, CoreError> {
        if let Some(at) = filter.find('\0') {
            return Err(CoreError::BadParam {
                param: "filter",
                message: format!("the NUL character is not allowed (at position {at})"),
                position: Some(at),
            });
        }
        let expr = keel_expr::parse(filter).map_err(|e| CoreError::BadParam {
            param: "filter",
            message: format!("{} (at position {})", e.message, e.span.start),
            position: Some(e.span.start),
        })?;
        let typed = keel_expr::check(
            &expr,
            &keel_spec::CollectionScope::new(&self.model, c, keel_spec::ScopeKind::Filter),
        )
        .map_err(|errs| {
            let position = errs.first().map(|e| e.span.start);
            let message = errs
                .iter()
                .map(|e| match &e.hint {
                    Some(h) => format!("{} at position {} ({h})", e.message, e.span.start),
                    None => format!("{} at position {}", e.message, e.span.start),
                })
                .collect::<Vec<_>>()
                .join("; ");
            CoreError::BadParam {
                param: "filter",
                message,
                position,
            }
        })?;
        Ok(typed)
    }

    /// Rows strictly after the cursor's row in the sort order. NULLs sort first
    /// ascending and last descending, on both databases.
    fn keyset(
        &self,
        c: &Collection,
        sort: &[(String, bool)],
        values: &[Json],
        dialect: Dialect,
    ) -> Result<Expr, CoreError> {
        if values.len() != sort.len() {
            return Err(CoreError::BadParam {
                param: "cursor",
                message: "malformed cursor".into(),
                position: None,
            });
        }
        let mut any: Option<Expr> = None;
        for i in 0..sort.len() {
            let mut all: Option<Expr> = None;
            for j in 0..=i {
                let (name, desc) = &sort[j];
                let field = c.field(name).ok_or_else(|| CoreError::BadParam {
                    param: "cursor",
                    message: "malformed cursor".into(),
                    position: None,
                })?;
                let v = values::from_json(&field.ty, &values[j]);
                let column = col(&c.name, name);
                let is_null = matches!(v, Value::Null);
                let bound = || values::to_sql(&v, field.ty.storage(), dialect);
                let part = if j < i {
                    if is_null {
                        column.is_null()
                    } else {
                        column.eq(bound())
                    }
                } else {
                    match (desc, is_null) {
                        (false, true) => column.is_not_null(),
                        (false, false) => column.gt(bound()),
                        (true, true) => Expr::cust("1 = 0"),
                        (true, false) if not_null(c, name) => column.lt(bound()),
                        (true, false) => column.clone().lt(bound()).or(column.is_null()),
                    }
                };
                all = Some(match all {
                    None => part,
                    Some(a) => a.and(part),
                });
            }
            if let Some(all) = all {
                any = Some(match any {
                    None => all,
                    Some(a) => a.or(all),
                });
            }
        }
        Ok(any.unwrap_or_else(|| Expr::cust("1 = 1")))
    }

    /// Embed the records that ref fields point at, each under its own read rule.
    async fn expand(
        &self,
        principal: &Principal,
        c: &Collection,
        fields: &[String],
        records: &mut [Map<String, Json>],
    ) -> Result<(), CoreError> {
        let dialect = self.dialect();
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
            let mut found: HashMap<String, Json> = HashMap::new();
            if !ids.is_empty() && target.access.read.is_some() {
                let scope = RowScope::new(&self.model, target, principal);
                let (mut q, columns) = self.select(target);
                q.and_where(
                    col(&target.name, "id").is_in(ids.iter().map(|u| id_value(*u, dialect))),
                );
                q.and_where(rule_predicate(target.access.read.as_ref(), &scope, dialect));
                for row in self
                    .store
                    .query(&Stmt::build(&q, dialect), &storages(&columns))
                    .await?
                {
                    let rec = self.record(target, &columns, row);
                    if let Some(id) = rec.get("id").and_then(Json::as_str) {
                        found.insert(id.to_string(), Json::Object(rec.clone()));
                    }
                }
            }
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

    // ---- writes ----

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
        if c.access.create.is_none() && !principal.system {
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
        let scope_key = idempotency_scope(principal, c);
        let request_hash = hash_body(body);
        if let Some(key) = idempotency_key
            && let Some(replay) = self
                .idempotent_replay(&mut tx, &scope_key, key, &request_hash)
                .await?
        {
            return Ok(replay);
        }
        self.check_refs(&mut tx, c, &input).await?;

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
        let record = Json::Object(record);
        self.append_event(&mut tx, c, "created", id, &record, now)
            .await?;
        if let Some(key) = idempotency_key {
            tx.execute(&system::idempotency_insert(
                dialect,
                &scope_key,
                key,
                &StoredResponse {
                    request_hash,
                    status: 201,
                    location: Some(format!("/v1/{}/{}", c.name, id)),
                    body: record.to_string(),
                },
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(Created {
            record,
            id: id.hyphenated().to_string(),
            replayed: false,
        })
    }

    async fn idempotent_replay(
        &self,
        tx: &mut Tx<'_>,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Created>, CoreError> {
        if tx.dialect() == Dialect::Postgres {
            // Two concurrent requests with one key: the second waits for the first.
            tx.execute(&Stmt::new(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                vec![format!("{scope}\u{1f}{key}").into()],
            ))
            .await?;
        }
        let rows = tx
            .query(
                &system::idempotency_select(tx.dialect(), scope, key),
                &[Storage::Text, Storage::Int, Storage::Text, Storage::Text],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        if row[0].as_str() != Some(request_hash) {
            return Err(CoreError::IdempotencyMismatch);
        }
        let record: Json = row[3]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Json::Null);
        let id = record
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Some(Created {
            record,
            id,
            replayed: true,
        }))
    }

    /// Partially update a record; `if_match` is the version the client last saw.
    pub async fn update(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        body: &Json,
        if_match: Option<i64>,
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
        if_match: Option<i64>,
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
        let (_, version) = self
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
        self.check_refs(&mut tx, c, &input).await?;
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
        let record = Json::Object(record);
        self.append_event(&mut tx, c, "updated", uuid, &record, now)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Delete a record; `if_match` as for update.
    pub async fn delete(
        &self,
        principal: &Principal,
        collection: &str,
        id: &str,
        if_match: Option<i64>,
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
        self.append_event(&mut tx, c, "deleted", uuid, &Json::Object(current), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The read rule and the operation's rule as SQL, for [`Engine::lock_for_write`]
    /// (built before any await: the scope is not shareable across threads).
    fn write_checks(
        &self,
        c: &Collection,
        scope: &RowScope<'_>,
        op: Operation,
        dialect: Dialect,
    ) -> [Expr; 2] {
        [
            rule_predicate(c.access.read.as_ref(), scope, dialect),
            rule_predicate(c.access.get(op), scope, dialect),
        ]
    }

    /// Read the record to change inside the write's transaction (PostgreSQL locks the
    /// row) and decide: missing or unreadable → 404, rule false → 401/403, stale
    /// `If-Match` → 412. Returns the record and its version.
    #[allow(clippy::too_many_arguments)]
    async fn lock_for_write(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        uuid: uuid::Uuid,
        id: &str,
        principal: &Principal,
        op: Operation,
        checks: [Expr; 2],
        if_match: Option<i64>,
    ) -> Result<(Map<String, Json>, i64), CoreError> {
        let not_found = || CoreError::NotFound {
            collection: c.name.clone(),
            id: id.to_string(),
        };
        let current = self.read_in_tx(tx, c, uuid, &checks).await?;
        let Some((current, checks)) = current else {
            return Err(not_found());
        };
        if !checks[0] {
            return Err(not_found());
        }
        if !checks[1] {
            return Err(self.denied(principal, op, c));
        }
        let version = current.get("version").and_then(Json::as_i64).unwrap_or(0);
        if if_match.is_some_and(|v| v != version) {
            return Err(CoreError::StaleVersion { current: version });
        }
        Ok((current, version))
    }

    /// The record's visible fields and the value of each predicate, inside the
    /// transaction (PostgreSQL locks the row until commit).
    async fn read_in_tx(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        id: uuid::Uuid,
        predicates: &[Expr],
    ) -> Result<Option<(Map<String, Json>, Vec<bool>)>, CoreError> {
        let dialect = tx.dialect();
        let (mut q, columns) = self.select(c);
        let mut storages = storages(&columns);
        for p in predicates {
            q.expr(Expr::case(p.clone(), Expr::cust("TRUE")).finally(Expr::cust("FALSE")));
            storages.push(Storage::Bool);
        }
        q.and_where(col(&c.name, "id").eq(id_value(id, dialect)));
        if dialect == Dialect::Postgres {
            q.lock_with_tables(LockType::Update, [Alias::new(&c.name)]);
        }
        let rows = tx.query(&Stmt::build(&q, dialect), &storages).await?;
        let Some(mut row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let checks: Vec<bool> = row
            .split_off(columns.len())
            .into_iter()
            .map(|v| v.as_bool().unwrap_or(false))
            .collect();
        Ok(Some((self.record(c, &columns, row), checks)))
    }

    /// A ref must point at an existing record: a 422 naming the field, not a
    /// foreign-key error from the database.
    async fn check_refs(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        input: &BTreeMap<String, Value>,
    ) -> Result<(), CoreError> {
        let dialect = tx.dialect();
        let mut errors = Vec::new();
        for (name, v) in input {
            let (Some(FieldType::Ref { to, .. }), Value::Uuid(id)) =
                (c.field(name).map(|f| &f.ty), v)
            else {
                continue;
            };
            let q = Query::select()
                .expr(Expr::cust("1"))
                .from(Alias::new(to))
                .and_where(Expr::col(Alias::new("id")).eq(id_value(*id, dialect)))
                .to_owned();
            if tx
                .query(&Stmt::build(&q, dialect), &[Storage::Int])
                .await?
                .is_empty()
            {
                errors.push(FieldError::new(
                    name,
                    "not_found",
                    format!("no `{to}` record has id {id}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            // As PostgREST answers a foreign-key violation: the body is well-formed,
            // but conflicts with what is stored.
            Err(CoreError::Conflict {
                message: errors
                    .iter()
                    .map(|e| format!("`{}`: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            })
        }
    }

    async fn append_event(
        &self,
        tx: &mut Tx<'_>,
        c: &Collection,
        kind: &str,
        id: uuid::Uuid,
        record: &Json,
        now: time::OffsetDateTime,
    ) -> Result<(), CoreError> {
        let event = OutboxEvent {
            event_id: uuid::Uuid::now_v7(),
            topic: format!("{}.{kind}", c.name),
            collection: c.name.clone(),
            record_id: id,
            payload: record.clone(),
            created_at: now,
        };
        tx.execute(&system::outbox_insert(tx.dialect(), &event))
            .await?;
        Ok(())
    }

    /// Trusted values for server-set fields, checked against their types all the same.
    fn server_values(
        &self,
        c: &Collection,
        server: &Map<String, Json>,
        input: &mut BTreeMap<String, Value>,
        errors: &mut Vec<FieldError>,
    ) {
        for (name, v) in server {
            match c.field(name).filter(|f| !f.system) {
                Some(f) => match self.check_field(c, f, v) {
                    Ok(v) => {
                        input.insert(name.clone(), v);
                    }
                    Err(e) => errors.push(e),
                },
                None => errors.push(FieldError::new(name, "unknown_field", "no such field")),
            }
        }
    }

    fn check_field(&self, c: &Collection, f: &Field, v: &Json) -> Result<Value, FieldError> {
        if v.is_null() {
            return if f.required {
                Err(FieldError::new(
                    &f.name,
                    "required",
                    "is required and cannot be null",
                ))
            } else {
                Ok(Value::Null)
            };
        }
        let pattern = self.patterns.get(&(c.name.clone(), f.name.clone()));
        keel_spec::validate::check_value_with(&f.ty, v, pattern)
            .map_err(|e| FieldError::new(&f.name, e.code, e.message))?;
        // Emails are compared case-insensitively, so they are stored in lowercase.
        if let (FieldType::Email, Json::String(s)) = (&f.ty, v) {
            return Ok(Value::Text(s.to_lowercase()));
        }
        Ok(values::from_json(&f.ty, v))
    }

    fn constraint_error(&self, c: &Collection, e: StoreError) -> CoreError {
        match e {
            StoreError::Unique {
                columns,
                constraint,
            } => {
                let fields = if !columns.is_empty() {
                    columns
                } else {
                    let table = keel_store::schema::table(c);
                    table
                        .indexes
                        .iter()
                        .find(|ix| Some(&ix.name) == constraint.as_ref())
                        .map(|ix| ix.columns.iter().map(|(n, _)| n.clone()).collect())
                        .unwrap_or_default()
                };
                CoreError::Conflict {
                    message: format!(
                        "a `{}` record with the same {} already exists",
                        c.name,
                        if fields.is_empty() {
                            "key".to_string()
                        } else {
                            fields.join(", ")
                        }
                    ),
                    errors: fields
                        .iter()
                        .map(|f| FieldError::new(f, "unique", "is already taken"))
                        .collect(),
                }
            }
            StoreError::ForeignKey => CoreError::Conflict {
                message: format!(
                    "this `{}` record is still referenced by other records",
                    c.name
                ),
                errors: Vec::new(),
            },
            other => CoreError::Store(other),
        }
    }
}

fn body_object(body: &Json) -> Result<&Map<String, Json>, CoreError> {
    body.as_object().ok_or_else(|| {
        CoreError::Validation(vec![FieldError::new(
            "",
            "type",
            "the body must be a JSON object",
        )])
    })
}

fn reject_unknown(
    c: &Collection,
    obj: &Map<String, Json>,
    update: bool,
    errors: &mut Vec<FieldError>,
) {
    for key in obj.keys() {
        match c.field(key) {
            None => errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("`{}` has no field `{key}`", c.name),
            )),
            Some(f) if f.hidden && f.readonly => errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("`{}` has no field `{key}`", c.name),
            )),
            Some(f) if f.system || f.readonly => {
                errors.push(FieldError::new(key, "readonly", "is set by the server"))
            }
            Some(f) if update && f.immutable => errors.push(FieldError::new(
                key,
                "immutable",
                "cannot change after create",
            )),
            Some(_) => {}
        }
    }
}

/// Whether the column of `field` is `NOT NULL`.
fn not_null(c: &Collection, field: &str) -> bool {
    c.field(field).is_some_and(Field::not_null)
}

fn storages(columns: &[(String, Storage)]) -> Vec<Storage> {
    columns.iter().map(|(_, s)| *s).collect()
}

fn project(mut record: Map<String, Json>, fields: Option<&[String]>) -> Map<String, Json> {
    match fields {
        None => record,
        Some(fields) => {
            let expand = record.remove("expand");
            let mut out: Map<String, Json> = fields
                .iter()
                .filter_map(|f| record.remove(f).map(|v| (f.clone(), v)))
                .collect();
            if let Some(e) = expand {
                out.insert("expand".into(), e);
            }
            out
        }
    }
}

/// A get-by-id statement and its columns (shared with the cache entry it came from).
struct ByIdStmt {
    stmt: Stmt,
    columns: Arc<[(String, Storage)]>,
}

fn id_value(id: uuid::Uuid, dialect: Dialect) -> sea_query::Value {
    values::to_sql(&Value::Uuid(id), Storage::Uuid, dialect)
}

fn idempotency_scope(p: &Principal, c: &Collection) -> String {
    format!(
        "{}:{}",
        c.name,
        p.id.map_or_else(|| "anonymous".to_string(), |id| id.to_string())
    )
}

fn hash_body(body: &Json) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fields an index can find rows by: the first key of each index, unique or not, and
/// the id.
fn index_leads(c: &Collection) -> Vec<&str> {
    let mut leads = vec!["id"];
    leads.extend(
        c.indexes
            .iter()
            .filter_map(|i| i.keys.first())
            .map(|k| k.field.as_str()),
    );
    leads.extend(
        c.uniques
            .iter()
            .filter_map(|u| u.fields.first())
            .map(String::as_str),
    );
    leads.extend(
        c.fields
            .iter()
            .filter(|f| f.unique)
            .map(|f| f.name.as_str()),
    );
    leads
}

/// When the list's condition is `(a || b || …) && rest` and each operand can be looked
/// up by an index while `rest` cannot, the condition of each per-operand page (`a &&
/// rest`, `b && rest`, …); `None` keeps one query. SQLite would otherwise answer the
/// `||` by merging both indexes and sorting every match (measured: 138 ms against
/// 0.1 ms per page on 100k rows); PostgreSQL does much the same with a BitmapOr.
fn index_arms(
    c: &Collection,
    rule: Option<&keel_expr::Typed>,
    filter: Option<&keel_expr::Typed>,
    scope: &RowScope<'_>,
    dialect: Dialect,
) -> Option<Vec<Expr>> {
    const MAX_ARMS: usize = 4;
    let leads = index_leads(c);
    let indexed = |t: &keel_expr::Typed| {
        t.equality_fields()
            .iter()
            .any(|f| leads.contains(&f.as_str()))
    };
    let parts: Vec<&keel_expr::Typed> = rule.into_iter().chain(filter).collect();
    let split = parts
        .iter()
        .position(|t| (2..=MAX_ARMS).contains(&t.disjuncts().len()))?;
    let rest: Vec<&keel_expr::Typed> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != split)
        .map(|(_, t)| *t)
        .collect();
    if rest.iter().any(|t| indexed(t)) {
        return None; // the rest already narrows by an index
    }
    let disjuncts = parts[split].disjuncts();
    if !disjuncts.iter().all(indexed) {
        return None;
    }
    Some(
        disjuncts
            .iter()
            .map(|d| {
                rest.iter()
                    .fold(keel_expr::to_sql(d, scope, dialect), |acc, t| {
                        acc.and(keel_expr::to_sql(t, scope, dialect))
                    })
            })
            .collect(),
    )
}
