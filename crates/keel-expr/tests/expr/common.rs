//! A small data model shared by the tests: a `posts` table `t` and a `users` table.

use keel_expr::{Env, PathSql, Scope, SqlScope, Type, Value};
use sea_query::{Alias, Expr};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

pub const U1: Uuid = uuid::uuid!("00000000-0000-4000-8000-0000000000a1");
pub const U2: Uuid = uuid::uuid!("00000000-0000-4000-8000-0000000000b2");
pub const U3: Uuid = uuid::uuid!("00000000-0000-4000-8000-0000000000c3");
pub const NOW: OffsetDateTime = datetime!(2024-03-01 00:00:00 UTC);

/// Users the `author.name` path can reach; U3 has no user row.
pub const USERS: &[(Uuid, Option<&str>)] = &[(U1, Some("Ann")), (U2, Some("bob%_\\"))];

pub fn visibility() -> Type {
    Type::Enum(vec!["public".into(), "followers".into()])
}

/// Paths of the posts table, plus `auth.*` and `author.name` through the ref.
pub struct TestScope;

impl Scope for TestScope {
    fn resolve(&self, path: &[String]) -> Result<Type, String> {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        Ok(match path.as_slice() {
            ["title"] => Type::Text,
            ["views"] => Type::Int,
            ["score"] => Type::Float,
            ["published"] => Type::Bool,
            ["created_at"] => Type::Datetime,
            ["day"] => Type::Date,
            ["author"] => Type::Uuid,
            ["visibility"] => visibility(),
            ["tags"] => Type::Json,
            ["author", "name"] => Type::Text,
            ["auth", "id"] => Type::Uuid,
            ["auth", "roles"] => Type::List(Box::new(Type::Text)),
            ["titel"] => return Err("`posts` has no field `titel`; did you mean `title`?".into()),
            other => return Err(format!("`posts` has no field `{}`", other.join("."))),
        })
    }
}

/// One row of `t`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub id: i64,
    pub title: Option<String>,
    pub views: Option<i64>,
    pub score: Option<f64>,
    pub published: Option<bool>,
    pub created_at: Option<OffsetDateTime>,
    pub day: Option<time::Date>,
    pub author: Option<Uuid>,
    pub visibility: Option<String>,
    pub tags: Option<serde_json::Value>,
}

/// The caller and the clock.
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth_id: Option<Uuid>,
    pub roles: Vec<String>,
}

impl Row {
    /// The row's columns in table order, as values.
    pub fn columns(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("id", Value::Int(self.id)),
            ("title", opt(self.title.clone(), Value::Text)),
            ("views", opt(self.views, Value::Int)),
            ("score", opt(self.score, Value::Float)),
            ("published", opt(self.published, Value::Bool)),
            ("created_at", opt(self.created_at, Value::Datetime)),
            ("day", opt(self.day, Value::Date)),
            ("author", opt(self.author, Value::Uuid)),
            ("visibility", opt(self.visibility.clone(), Value::Text)),
            ("tags", opt(self.tags.clone(), Value::Json)),
        ]
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map(f).unwrap_or(Value::Null)
}

/// Evaluates against one row.
pub struct RowEnv<'a> {
    pub row: &'a Row,
    pub caller: &'a Caller,
}

impl Env for RowEnv<'_> {
    fn lookup(&self, path: &[String]) -> Value {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match path.as_slice() {
            ["auth", "id"] => opt(self.caller.auth_id, Value::Uuid),
            ["auth", "roles"] => Value::List(
                self.caller
                    .roles
                    .iter()
                    .map(|r| Value::Text(r.clone()))
                    .collect(),
            ),
            ["author", "name"] => self
                .row
                .author
                .and_then(|a| USERS.iter().find(|(id, _)| *id == a))
                .and_then(|(_, name)| name.map(|n| Value::Text(n.into())))
                .unwrap_or(Value::Null),
            [column] => self
                .row
                .columns()
                .into_iter()
                .find(|(name, _)| name == column)
                .map(|(_, v)| v)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn has_role(&self, role: &str) -> bool {
        self.caller.roles.iter().any(|r| r == role)
    }

    fn now(&self) -> OffsetDateTime {
        NOW
    }
}

/// Compiles against the `t` table.
pub struct TableScope<'a> {
    pub caller: &'a Caller,
}

impl SqlScope for TableScope<'_> {
    fn path(&self, path: &[String]) -> PathSql {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match path.as_slice() {
            ["auth", "id"] => PathSql::Value(opt(self.caller.auth_id, Value::Uuid)),
            ["auth", "roles"] => PathSql::Value(Value::List(
                self.caller
                    .roles
                    .iter()
                    .map(|r| Value::Text(r.clone()))
                    .collect(),
            )),
            ["author", "name"] => PathSql::Expr(Expr::cust(
                r#"(SELECT "users"."name" FROM "users" WHERE "users"."id" = "t"."author")"#,
            )),
            [column] => PathSql::Expr(Expr::col((Alias::new("t"), Alias::new(*column)))),
            _ => PathSql::Value(Value::Null),
        }
    }

    fn has_role(&self, role: &str) -> bool {
        self.caller.roles.iter().any(|r| r == role)
    }

    fn now(&self) -> OffsetDateTime {
        NOW
    }
}

/// Parses and checks, panicking with the errors (tests only).
pub fn typed(src: &str) -> keel_expr::Typed {
    let expr = keel_expr::parse(src).unwrap_or_else(|e| panic!("parse `{src}`: {e}"));
    keel_expr::check(&expr, &TestScope).unwrap_or_else(|e| panic!("check `{src}`: {e:?}"))
}

/// Type-check errors of `src`, which must parse.
pub fn type_errors(src: &str) -> Vec<keel_expr::TypeError> {
    let expr = keel_expr::parse(src).unwrap_or_else(|e| panic!("parse `{src}`: {e}"));
    match keel_expr::check(&expr, &TestScope) {
        Ok(_) => panic!("`{src}` unexpectedly type-checks"),
        Err(errors) => errors,
    }
}
