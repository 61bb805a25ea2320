//! Who is asking: rules see it as `auth.id`, `auth.email` and `auth.roles`.

use keel_expr::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Principal {
    pub id: Option<Uuid>,
    pub email: Option<String>,
    /// Effective roles, inheritance already expanded.
    pub roles: Vec<String>,
    /// Keel itself (sign-up, admin grants): rules do not apply. Never built from a request.
    pub system: bool,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self::default()
    }
    pub fn is_anonymous(&self) -> bool {
        self.id.is_none() && !self.system
    }

    /// Keel acting on its own behalf; bypasses access rules.
    pub fn system() -> Self {
        Self {
            system: true,
            ..Self::default()
        }
    }
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl Principal {
    /// The value of `auth.<name>` in a rule: `auth.id`, `auth.email`, `auth.roles`.
    pub fn auth_value(&self, path: &[String]) -> Value {
        match path.get(1).map(String::as_str) {
            Some("id") => self.id.map_or(Value::Null, Value::Uuid),
            Some("email") => self.email.clone().map_or(Value::Null, Value::Text),
            Some("roles") => Value::List(self.roles.iter().cloned().map(Value::Text).collect()),
            _ => Value::Null,
        }
    }
}

impl keel_expr::CallerEnv for Principal {
    fn auth(&self, path: &[String]) -> Value {
        self.auth_value(path)
    }
    fn has_role(&self, role: &str) -> bool {
        Principal::has_role(self, role)
    }
}
