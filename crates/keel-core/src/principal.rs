//! Who is asking. Only the anonymous principal exists until the auth layer lands;
//! rules already see `auth.id`, `auth.email` and `auth.roles`.

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
