//! GraphQL over the operation core. The schema is generated from the model at start
//! (async-graphql's dynamic schema); every resolver calls the same `Engine`
//! operation as REST, so rules, validation and events cannot differ between the two.
//!
//! Per collection `c` (object type `C`, the name in PascalCase):
//! - Query `c(filter, sort, limit, cursor, count) -> CList {items, next_cursor, total}`
//!   and `c_by_id(id) -> C`;
//! - Mutation `create_c(input, idempotency_key)`, `update_c(id, input, if_version)`,
//!   `delete_c(id, if_version)`;
//! - Subscription `c_events(filter, since) -> CEvent` (when the app runs a realtime
//!   hub): the realtime feed of the collection, see [`subscription`];
//! - a ref field `f` is the referenced record (loaded through a per-request DataLoader
//!   that is built for one caller and dropped with the request), `f_id` its raw id.
//!
//! Errors carry `extensions.code` (the slug of the shared [`ErrorCode`] table) and,
//! for validation and conflicts, `extensions.errors` with the failing fields.

mod documents;
mod names;
mod operations;
mod order;
mod plan;
mod refs;
mod schema;
mod subscription;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensions, ServerError, Value};
use documents::Known;
use keel_core::ratelimit::{LimitTarget, OpKind, RateLimits, Verdict};
use keel_core::{CoreError, Engine, ErrorCode, Principal};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use async_graphql;
pub use async_graphql::dynamic::SchemaError;

/// The abuse limits of the GraphQL surface. A request past any of them is answered
/// with an error (a GraphQL request error), never a 5xx.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve `__schema` / `__type`.
    pub introspection: bool,
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Most fields a query may select (async-graphql's complexity, 1 per field).
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            introspection: true,
            max_depth: 10,
            max_complexity: 1000,
            max_aliases: 30,
            max_query_bytes: 32 * 1024,
        }
    }
}

/// What the resolvers share: the core and the quotas.
pub(crate) struct Core {
    pub engine: Arc<Engine>,
    pub limits: Arc<RateLimits>,
    /// Batches the ref loaders ran (each one `list` per collection and 200 ids).
    pub ref_batches: AtomicU64,
    /// Requests a plan answered (see [`plan`]).
    pub plan_runs: AtomicU64,
}

/// One request's caller, and the ref loader that reads as them (never shared).
pub(crate) struct Caller {
    pub principal: Principal,
    pub client_ip: String,
    pub loader: async_graphql::dataloader::DataLoader<
        refs::RefLoader,
        async_graphql::dataloader::HashMapCache,
    >,
}

/// The GraphQL surface of one model.
pub struct GraphQl {
    schema: async_graphql::dynamic::Schema,
    options: Options,
    core: Arc<Core>,
    documents: documents::DocumentCache,
}

/// The answer to one GraphQL request.
pub struct Outcome {
    pub response: async_graphql::Response,
    /// The whole response body, already written (a planned document answered it):
    /// `response` is then empty.
    pub prepared: Option<Vec<u8>>,
    /// A request error (unparsable, invalid, over a limit): nothing was executed.
    pub request_error: bool,
    /// A mutation was asked where only queries are allowed (GET): nothing executed.
    pub mutation_refused: bool,
}

impl GraphQl {
    /// Generate the schema of the engine's model; with a realtime `hub`, with
    /// subscriptions.
    pub fn new(
        engine: Arc<Engine>,
        limits: Arc<RateLimits>,
        hub: Option<Arc<keel_realtime::Hub>>,
        options: Options,
    ) -> Result<Self, SchemaError> {
        let core = Arc::new(Core {
            engine,
            limits,
            ref_batches: AtomicU64::new(0),
            plan_runs: AtomicU64::new(0),
        });
        let schema = schema::build(&core, hub.as_ref(), &options)?;
        Ok(Self {
            schema,
            options,
            core,
            documents: documents::DocumentCache::default(),
        })
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }

    /// How many batched ref loads have run so far (for tests: no N+1).
    pub fn ref_batches(&self) -> u64 {
        self.core.ref_batches.load(Ordering::Relaxed)
    }

    /// How many requests a compiled plan has answered so far (for tests: which
    /// documents skip the dynamic executor).
    pub fn plan_runs(&self) -> u64 {
        self.core.plan_runs.load(Ordering::Relaxed)
    }

    /// Run one request as `principal` (counted against the quotas of
    /// `client_ip` when anonymous). `queries_only`: refuse mutations (GET).
    pub async fn execute(
        &self,
        principal: Principal,
        client_ip: String,
        request: async_graphql::Request,
        queries_only: bool,
    ) -> Outcome {
        if let Some(refused) = self.too_long(&request) {
            return refused;
        }
        let known = self.documents.get(&request.query);
        if let Some(Known::Planned(plan)) = &known
            && let Some(answer) = plan
                .run(
                    &self.core,
                    &principal,
                    &client_ip,
                    request.operation_name.as_deref(),
                    &request.variables,
                )
                .await
        {
            self.core.plan_runs.fetch_add(1, Ordering::Relaxed);
            return match answer {
                Ok(body) => Outcome {
                    response: async_graphql::Response::new(Value::Null),
                    prepared: Some(body),
                    request_error: false,
                    mutation_refused: false,
                },
                Err(mut response) => {
                    settle_codes(&mut response);
                    Outcome {
                        response,
                        prepared: None,
                        request_error: false,
                        mutation_refused: false,
                    }
                }
            };
        }
        // A document not decided yet is planned after a run without a request error:
        // it is valid against the schema then.
        let undecided = match &known {
            None | Some(Known::Parsed { decided: false, .. }) => Some(request.query.clone()),
            _ => None,
        };
        let operation = request.operation_name.clone();
        let (request, reorder) =
            match self.prepare(principal, client_ip, request, queries_only, known) {
                Ok(r) => r,
                Err(refused) => return *refused,
            };
        let mut response = self.schema.execute(request).await;
        if let Some(doc) = &reorder {
            order::in_query_order(doc, operation.as_deref(), &mut response.data);
        }
        let request_error = settle_codes(&mut response);
        if let Some(query) = undecided
            && !request_error
            && let Some(Known::Parsed { doc, .. }) = self.documents.get(&query)
        {
            let plan = plan::Plan::compile(&doc, self.core.engine.model());
            self.documents.decide(&query, plan);
        }
        Outcome {
            response,
            prepared: None,
            request_error,
            mutation_refused: false,
        }
    }

    /// A query text over the size limit, refused.
    fn too_long(&self, request: &async_graphql::Request) -> Option<Outcome> {
        (request.query.len() > self.options.max_query_bytes).then(|| Outcome {
            response: async_graphql::Response::from_errors(vec![server_error(
                format!(
                    "the query is longer than {} bytes",
                    self.options.max_query_bytes
                ),
                ErrorCode::PayloadTooLarge,
            )]),
            request_error: true,
            mutation_refused: false,
            prepared: None,
        })
    }

    /// Run one operation of a WebSocket as `principal`: the responses of a
    /// subscription (one per event, until the feed ends), or the one response of a
    /// query or mutation. `Err`: a request error, nothing runs. A stream whose first
    /// response is a request error (invalid against the schema) is the transport's to
    /// tell apart ([`is_request_error`]).
    pub fn execute_stream(
        &self,
        principal: Principal,
        client_ip: String,
        request: async_graphql::Request,
    ) -> Result<futures_util::stream::BoxStream<'static, async_graphql::Response>, Box<Outcome>>
    {
        use futures_util::StreamExt;
        if let Some(refused) = self.too_long(&request) {
            return Err(Box::new(refused));
        }
        let known = self.documents.get(&request.query);
        let operation = request.operation_name.clone();
        let (request, reorder) = self.prepare(principal, client_ip, request, false, known)?;
        Ok(self
            .schema
            .execute_stream(request)
            .map(move |mut response| {
                if let Some(doc) = &reorder {
                    order::in_query_order(doc, operation.as_deref(), &mut response.data);
                }
                settle_codes(&mut response);
                response
            })
            .boxed())
    }

    /// The checks before executing (syntax, depth, aliases, method), then the request
    /// with its caller: principal, address and a ref loader of their own. `known`:
    /// what the document cache had for the text.
    fn prepare(
        &self,
        principal: Principal,
        client_ip: String,
        mut request: async_graphql::Request,
        queries_only: bool,
        known: Option<Known>,
    ) -> Result<(async_graphql::Request, Option<ExecutableDocument>), Box<Outcome>> {
        let refuse = |message: String, code: ErrorCode| Outcome {
            response: async_graphql::Response::from_errors(vec![server_error(message, code)]),
            request_error: true,
            mutation_refused: false,
            prepared: None,
        };
        let operation_name = request.operation_name.clone();
        match known {
            Some(Known::Parsed { doc, .. }) => request.set_parsed_query(doc),
            Some(Known::Planned(_)) => {}
            None => {
                if let Ok(doc) = request.parsed_query() {
                    let doc = doc.clone();
                    self.documents.insert(&request.query, doc);
                }
            }
        }
        let doc = match request.parsed_query() {
            Ok(doc) => doc,
            Err(mut e) => {
                set_code(&mut e, ErrorCode::MalformedRequest);
                return Err(Box::new(Outcome {
                    response: async_graphql::Response::from_errors(vec![e]),
                    request_error: true,
                    mutation_refused: false,
                    prepared: None,
                }));
            }
        };
        let (depth, data_depth) = depths(doc);
        if data_depth > self.options.max_depth
            || depth > self.options.max_depth + INTROSPECTION_DEPTH
        {
            return Err(Box::new(refuse(
                format!(
                    "the query is nested too deep: at most {} levels (introspection: {})",
                    self.options.max_depth,
                    self.options.max_depth + INTROSPECTION_DEPTH
                ),
                ErrorCode::MalformedRequest,
            )));
        }
        // Kept for putting the answer back in query order, when it may need it.
        let reorder = order::may_come_out_of_order(doc).then(|| doc.clone());
        let aliases = count_aliases(doc);
        if aliases > self.options.max_aliases {
            return Err(Box::new(refuse(
                format!(
                    "the query has {aliases} aliases; at most {} are allowed",
                    self.options.max_aliases
                ),
                ErrorCode::InvalidParameter,
            )));
        }
        if queries_only {
            let ty = operation_type(doc, operation_name.as_deref());
            if ty == Some(OperationType::Mutation) || ty == Some(OperationType::Subscription) {
                return Err(Box::new(Outcome {
                    response: async_graphql::Response::from_errors(vec![server_error(
                        "only queries are allowed over GET; send mutations over POST and \
                         subscriptions over a WebSocket"
                            .into(),
                        ErrorCode::MethodNotAllowed,
                    )]),
                    request_error: true,
                    mutation_refused: true,
                    prepared: None,
                }));
            }
        }
        let loader = async_graphql::dataloader::DataLoader::with_cache(
            refs::RefLoader {
                core: self.core.clone(),
                principal: principal.clone(),
            },
            tokio::spawn,
            async_graphql::dataloader::HashMapCache::default(),
        )
        .max_batch_size(keel_core::MAX_LIMIT as usize);
        Ok((
            request.data(Caller {
                principal,
                client_ip,
                loader,
            }),
            reorder,
        ))
    }
}

/// Whether a response is a request error (nothing executed: no `data`).
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == Value::Null && !response.errors.is_empty()
}

/// Give every error without a code one (a request error: `malformed-request`; a
/// field error: `invalid-parameter`); whether the response is a request error.
fn settle_codes(response: &mut async_graphql::Response) -> bool {
    let request_error = is_request_error(response);
    let fallback = if request_error {
        ErrorCode::MalformedRequest
    } else {
        ErrorCode::InvalidParameter
    };
    for e in &mut response.errors {
        if e.extensions.as_ref().and_then(|x| x.get("code")).is_none() {
            set_code(e, fallback);
        }
    }
    request_error
}

fn server_error(message: String, code: ErrorCode) -> ServerError {
    let mut e = ServerError::new(message, None);
    set_code(&mut e, code);
    e
}

fn set_code(e: &mut ServerError, code: ErrorCode) {
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", code.slug());
}

/// The type of the operation the request will run, when it can be told.
fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// Levels introspection may nest beyond `max_depth`: the standard introspection
/// query (graphql-js `getIntrospectionQuery`, what GraphiQL and code generators send)
/// unwraps `ofType` eight levels deep under `__schema { types { fields { type`.
const INTROSPECTION_DEPTH: usize = 12;

/// The deepest nesting of the document's operations: over all fields, and over the
/// fields that read data (not under `__schema` / `__type`). Fragment spreads count
/// where they are spread; one that spreads itself again is not followed.
fn depths(doc: &ExecutableDocument) -> (usize, usize) {
    fn walk<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        in_introspection: bool,
        visiting: &mut Vec<&'a str>,
    ) -> (usize, usize) {
        let mut deepest = (0, 0);
        for item in &set.items {
            let (all, data) = match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    let introspection = in_introspection || name == "__schema" || name == "__type";
                    let (all, data) =
                        walk(doc, &f.node.selection_set.node, introspection, visiting);
                    (all + 1, if introspection { 0 } else { data + 1 })
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match doc.fragments.get(&spread.node.fragment_name.node) {
                        Some(fragment) if !visiting.contains(&name) => {
                            visiting.push(name);
                            let d = walk(
                                doc,
                                &fragment.node.selection_set.node,
                                in_introspection,
                                visiting,
                            );
                            visiting.pop();
                            d
                        }
                        _ => (0, 0),
                    }
                }
                Selection::InlineFragment(i) => {
                    walk(doc, &i.node.selection_set.node, in_introspection, visiting)
                }
            };
            deepest = (deepest.0.max(all), deepest.1.max(data));
        }
        deepest
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(doc, &op.node.selection_set.node, false, &mut Vec::new()))
        .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
}

/// Aliases written anywhere in the document (operations and fragments).
fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|s| match &s.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::FragmentSpread(_) => 0,
                Selection::InlineFragment(i) => walk(&i.node.selection_set.node),
            })
            .sum()
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .sum::<usize>()
        + doc
            .fragments
            .values()
            .map(|f| walk(&f.node.selection_set.node))
            .sum::<usize>()
}

/// A core error as a GraphQL error: `extensions.code`, and the failing fields.
pub(crate) fn core_error(e: CoreError) -> async_graphql::Error {
    let code = e.code();
    let message = if code == ErrorCode::Internal {
        tracing::error!(error = %e, "graphql operation failed");
        "internal error".to_string()
    } else {
        e.to_string()
    };
    let fields = match &e {
        CoreError::Validation(errors) | CoreError::Conflict { errors, .. } => {
            serde_json::to_value(errors).ok()
        }
        _ => None,
    };
    let current = match &e {
        CoreError::StaleVersion { current } => Some(*current),
        _ => None,
    };
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code.slug());
        if let Some(f) = fields.clone().and_then(|f| Value::from_json(f).ok()) {
            ext.set("errors", f);
        }
        if let Some(v) = current {
            ext.set("current_version", v);
        }
    })
}

/// Count one operation against the quotas of `principal` (of `client_ip` when
/// anonymous), as REST counts it.
pub(crate) async fn admit(
    core: &Core,
    principal: &Principal,
    client_ip: &str,
    collection: &str,
    op: OpKind,
) -> Result<(), async_graphql::Error> {
    let target = LimitTarget::Operation {
        collection: collection.to_string(),
        op,
    };
    match core.limits.check(principal.id, client_ip, &target).await {
        Verdict::Allowed(_) => Ok(()),
        Verdict::Refused(_, d) => {
            let retry = d.reset.as_secs_f64().ceil().max(1.0) as u64;
            Err(
                async_graphql::Error::new(format!("too many requests; retry in {retry} s"))
                    .extend_with(|_, ext| {
                        ext.set("code", ErrorCode::RateLimited.slug());
                        ext.set("retry_after", retry);
                    }),
            )
        }
    }
}
