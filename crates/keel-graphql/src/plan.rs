//! Plans: the common read documents executed without the dynamic executor.
//!
//! Most traffic is a handful of documents sent again and again: one record by id, or
//! one page of a list, selecting plain fields. For those, async-graphql's per-field
//! execution (field collection, a boxed future and a name lookup per field) cost more
//! than the read itself. A [`Plan`] is compiled once per document — after the
//! document has run once through the executor without a request error, so it is
//! known to be valid — and then answers by calling the same core operations the
//! resolvers call ([`fetch_record`], [`fetch_page`]) and writing the response bytes
//! straight from the records.
//!
//! A plan covers exactly: one query operation without directives, one root field
//! `c_by_id` or `c` (aliases allowed), whose selections are the record's plain fields
//! (not a ref's record, not children), `<ref>_id`, `__typename`, and on a page
//! `items`, `next_cursor`, `total`; arguments literal or variables of `String`,
//! `Int`, `Boolean`. Anything else, and any request whose variables are not plainly
//! of their declared type, runs through the executor as before: the plan is an
//! optimisation with the executor's answers, never a second semantics.

use crate::operations::{fetch_page, fetch_record};
use crate::{Core, names::pascal};
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, PathSegment, Pos, Positioned, Value, Variables};
use keel_core::{ListText, Page, Principal};
use keel_spec::{Collection, FieldType, Model};
use serde_json::Value as Json;
use std::collections::HashSet;

/// A document compiled for direct execution.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The operation's name, which a request naming another must not run.
    operation: Option<String>,
    variables: Vec<Variable>,
    /// The root field's response key, as JSON (`"posts"`), and its position.
    key: String,
    raw_key: String,
    pos: Pos,
    root: Root,
}

#[derive(Debug)]
enum Root {
    ById {
        collection: String,
        id: Arg,
        fields: Vec<RecordField>,
    },
    List {
        collection: String,
        args: ListArgs,
        fields: Vec<PageField>,
    },
}

#[derive(Debug, Default)]
struct ListArgs {
    filter: Arg,
    sort: Arg,
    limit: Arg,
    cursor: Arg,
    count: Arg,
}

/// A scalar a plan's arguments and variables may be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    String,
    Int,
    Boolean,
}

/// A declared variable.
#[derive(Debug)]
struct Variable {
    name: Name,
    kind: Kind,
    nullable: bool,
    default: Option<async_graphql::Value>,
}

/// An argument as written: absent, a literal, or a variable.
#[derive(Debug, Default, Clone)]
enum Arg {
    #[default]
    Absent,
    Literal(Scalar),
    Variable(Name),
}

/// An argument's value.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    String(String),
    Int(i64),
    Boolean(bool),
}

/// One selection of a record: its response key (as JSON, with the colon) and where
/// the value comes from.
#[derive(Debug)]
struct RecordField {
    key: String,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// The record's value under this name.
    Field(String),
    /// The object type's name.
    Typename(String),
}

#[derive(Debug)]
enum PageField {
    Items(String, Vec<RecordField>),
    NextCursor(String),
    Total(String),
    Typename(String, String),
}

/// JSON of a response key followed by `:`.
fn json_key(key: &str) -> String {
    let mut s = serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into());
    s.push(':');
    s
}

impl Plan {
    /// The plan of `doc` against `model`, when the document is one a plan covers.
    pub(crate) fn compile(doc: &ExecutableDocument, model: &Model) -> Option<Plan> {
        if !doc.fragments.is_empty() {
            return None;
        }
        let (operation, op) = match &doc.operations {
            DocumentOperations::Single(op) => (None, op),
            DocumentOperations::Multiple(ops) if ops.len() == 1 => {
                let (name, op) = ops.iter().next()?;
                (Some(name.to_string()), op)
            }
            DocumentOperations::Multiple(_) => return None,
        };
        let op = &op.node;
        if op.ty != OperationType::Query || !op.directives.is_empty() {
            return None;
        }
        let variables = op
            .variable_definitions
            .iter()
            .map(|v| {
                let v = &v.node;
                let BaseType::Named(ty) = &v.var_type.node.base else {
                    return None;
                };
                let kind = match ty.as_str() {
                    "String" => Kind::String,
                    "Int" => Kind::Int,
                    "Boolean" => Kind::Boolean,
                    _ => return None,
                };
                v.directives.is_empty().then(|| Variable {
                    name: v.name.node.clone(),
                    kind,
                    nullable: v.var_type.node.nullable,
                    default: v.default_value.as_ref().map(|d| d.node.clone()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let [root] = &op.selection_set.node.items[..] else {
            return None;
        };
        let Selection::Field(field) = &root.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() {
            return None;
        }
        let typed =
            |a: &Positioned<async_graphql_value::Value>, kind| arg(&a.node, kind, &variables);
        let name = field.name.node.as_str();
        let root = if let Some(c) = name
            .strip_suffix("_by_id")
            .and_then(|c| model.collection(c))
        {
            let mut id = Arg::Absent;
            for (arg_name, value) in &field.arguments {
                match arg_name.node.as_str() {
                    "id" => id = typed(value, Kind::String)?,
                    _ => return None,
                }
            }
            Root::ById {
                collection: c.name.clone(),
                id,
                fields: record_fields(c, &field.selection_set.node)?,
            }
        } else if let Some(c) = model.collection(name) {
            let mut args = ListArgs::default();
            for (arg_name, value) in &field.arguments {
                let (slot, kind) = match arg_name.node.as_str() {
                    "filter" => (&mut args.filter, Kind::String),
                    "sort" => (&mut args.sort, Kind::String),
                    "cursor" => (&mut args.cursor, Kind::String),
                    "limit" => (&mut args.limit, Kind::Int),
                    "count" => (&mut args.count, Kind::Boolean),
                    _ => return None,
                };
                *slot = typed(value, kind)?;
            }
            Root::List {
                collection: c.name.clone(),
                args,
                fields: page_fields(c, &field.selection_set.node)?,
            }
        } else {
            return None;
        };
        let raw_key = field.response_key().node.to_string();
        Some(Plan {
            operation,
            variables,
            key: json_key(&raw_key),
            raw_key,
            pos: field.name.pos,
            root,
        })
    }

    /// Run the plan as `principal`. `None`: this request is not the plan's to answer
    /// (another operation named, a variable not plainly of its type): run it through
    /// the executor. `Some(Ok(bytes))`: the whole response body. `Some(Err(response))`:
    /// the operation failed (denied, not found, over a quota...), as the executor
    /// would have answered it.
    pub(crate) async fn run(
        &self,
        core: &Core,
        principal: &Principal,
        client_ip: &str,
        operation: Option<&str>,
        variables: &Variables,
    ) -> Option<Result<Vec<u8>, async_graphql::Response>> {
        if operation.is_some_and(|o| Some(o) != self.operation.as_deref()) {
            return None;
        }
        let values = self.coerce(variables)?;
        let value = |a: &Arg| -> Option<Scalar> {
            match a {
                Arg::Absent => None,
                Arg::Literal(s) => Some(s.clone()),
                Arg::Variable(name) => values
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone()),
            }
        };
        let string = |a: &Arg| match value(a) {
            Some(Scalar::String(s)) => Some(s),
            _ => None,
        };
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"data\":{");
        out.extend_from_slice(self.key.as_bytes());
        let result = match &self.root {
            Root::ById {
                collection,
                id,
                fields,
            } => {
                // Non-null in the schema: a plan never sees it missing, but if it
                // did, the executor would answer it.
                let id = string(id)?;
                fetch_record(core, principal, client_ip, collection, &id)
                    .await
                    .map(|record| write_record(&mut out, fields, &record))
            }
            Root::List {
                collection,
                args,
                fields,
            } => {
                let limit = match value(&args.limit) {
                    Some(Scalar::Int(n)) => {
                        Some(u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX }))
                    }
                    _ => None,
                };
                let text = ListText {
                    filter: string(&args.filter),
                    sort: string(&args.sort),
                    limit,
                    cursor: string(&args.cursor),
                    fields: None,
                    expand: None,
                    count: value(&args.count) == Some(Scalar::Boolean(true)),
                };
                fetch_page(core, principal, client_ip, collection, &text)
                    .await
                    .map(|page| write_page(&mut out, fields, &page))
            }
        };
        Some(match result {
            Ok(()) => {
                out.extend_from_slice(b"}}");
                Ok(out)
            }
            Err(e) => {
                let error = e
                    .into_server_error(self.pos)
                    .with_path(vec![PathSegment::Field(self.raw_key.clone())]);
                let mut data = async_graphql::indexmap::IndexMap::new();
                data.insert(Name::new(&self.raw_key), Value::Null);
                let mut response = async_graphql::Response::new(Value::Object(data));
                response.errors.push(error);
                Err(response)
            }
        })
    }

    /// Each declared variable's value (`None`: null or not given), when every one is
    /// plainly of its declared type; else `None`, for the executor to answer.
    fn coerce(&self, given: &Variables) -> Option<Vec<(Name, Option<Scalar>)>> {
        self.variables
            .iter()
            .map(|v| {
                let value = given.get(&v.name).or(v.default.as_ref());
                let scalar = match value {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(scalar(value, v.kind)?),
                };
                (scalar.is_some() || v.nullable).then(|| (v.name.clone(), scalar))
            })
            .collect()
    }
}

/// A constant as a scalar of `kind`, when it plainly is one (an `Int` within 32 bits).
fn scalar(value: &Value, kind: Kind) -> Option<Scalar> {
    match (value, kind) {
        (Value::String(s), Kind::String) => Some(Scalar::String(s.clone())),
        (Value::Number(n), Kind::Int) => n
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Scalar::Int),
        (Value::Boolean(b), Kind::Boolean) => Some(Scalar::Boolean(*b)),
        _ => None,
    }
}

/// An argument as written in the document: a literal of `kind`, null, or a declared
/// variable of the same kind.
fn arg(value: &async_graphql_value::Value, kind: Kind, variables: &[Variable]) -> Option<Arg> {
    use async_graphql_value::Value as Written;
    match value {
        Written::Variable(name) => variables
            .iter()
            .any(|v| &v.name == name && v.kind == kind)
            .then(|| Arg::Variable(name.clone())),
        Written::Null => Some(Arg::Literal(Scalar::Null)),
        other => {
            let constant = other.clone().into_const()?;
            scalar(&constant, kind).map(Arg::Literal)
        }
    }
}

/// The fields of a selection set a plan can answer: fields only (no fragments), no
/// directives or arguments, each response key once; with their keys.
fn plain_selections(set: &SelectionSet) -> Option<Vec<(&str, &Field)>> {
    let mut keys = HashSet::new();
    let mut out = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let Selection::Field(f) = &item.node else {
            return None;
        };
        let f = &f.node;
        if !f.directives.is_empty() || !f.arguments.is_empty() {
            return None;
        }
        let key = f.response_key().node.as_str();
        if !keys.insert(key) {
            return None;
        }
        out.push((key, f));
    }
    Some(out)
}

/// The selections of a record: plain fields, `<ref>_id`, `__typename`; each response
/// key once.
fn record_fields(c: &Collection, set: &SelectionSet) -> Option<Vec<RecordField>> {
    let type_name = pascal(&c.name);
    let mut fields = Vec::new();
    for (key, f) in plain_selections(set)? {
        let name = f.name.node.as_str();
        let source = if name == "__typename" {
            Source::Typename(type_name.clone())
        } else {
            match c.visible().find(|field| field.name == name) {
                // A ref is the referenced record: not a plain field.
                Some(field) if matches!(field.ty, FieldType::Ref { .. }) => return None,
                // An enum is written as its name: the same JSON as the stored string.
                Some(field) => Source::Field(field.name.clone()),
                None => {
                    let r = name.strip_suffix("_id")?;
                    c.visible().find(|field| {
                        field.name == r && matches!(field.ty, FieldType::Ref { .. })
                    })?;
                    Source::Field(r.to_string())
                }
            }
        };
        if !f.selection_set.node.items.is_empty() {
            return None;
        }
        fields.push(RecordField {
            key: json_key(key),
            source,
        });
    }
    Some(fields)
}

/// The selections of a page: `items { record fields }`, `next_cursor`, `total`,
/// `__typename`; each response key once.
fn page_fields(c: &Collection, set: &SelectionSet) -> Option<Vec<PageField>> {
    let mut fields = Vec::new();
    for (key, f) in plain_selections(set)? {
        let json = json_key(key);
        let leaf = f.selection_set.node.items.is_empty();
        fields.push(match f.name.node.as_str() {
            "items" => PageField::Items(json, record_fields(c, &f.selection_set.node)?),
            "next_cursor" if leaf => PageField::NextCursor(json),
            "total" if leaf => PageField::Total(json),
            "__typename" if leaf => PageField::Typename(json, format!("{}List", pascal(&c.name))),
            _ => return None,
        });
    }
    Some(fields)
}

fn write_json(out: &mut Vec<u8>, value: &Json) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_record(out: &mut Vec<u8>, fields: &[RecordField], record: &Json) {
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(f.key.as_bytes());
        match &f.source {
            Source::Field(name) => match record.get(name) {
                Some(v) => write_json(out, v),
                None => out.extend_from_slice(b"null"),
            },
            Source::Typename(t) => write_str(out, t),
        }
    }
    out.push(b'}');
}

fn write_page(out: &mut Vec<u8>, fields: &[PageField], page: &Page) {
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match f {
            PageField::Items(key, record) => {
                out.extend_from_slice(key.as_bytes());
                out.push(b'[');
                for (j, item) in page.items.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_record(out, record, item);
                }
                out.push(b']');
            }
            PageField::NextCursor(key) => {
                out.extend_from_slice(key.as_bytes());
                match &page.next_cursor {
                    Some(c) => write_str(out, c),
                    None => out.extend_from_slice(b"null"),
                }
            }
            PageField::Total(key) => {
                out.extend_from_slice(key.as_bytes());
                match page.total {
                    Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                    None => out.extend_from_slice(b"null"),
                }
            }
            PageField::Typename(key, name) => {
                out.extend_from_slice(key.as_bytes());
                write_str(out, name);
            }
        }
    }
    out.push(b'}');
}
