//! Helpers shared by the store's integration tests.
#![allow(clippy::unwrap_used, dead_code)]

/// A PostgreSQL database of its own, dropped at the end.
pub struct PgDb {
    name: String,
    admin: String,
}

impl PgDb {
    /// A fresh database named `prefix_<uuid>` and its URL.
    pub async fn new(prefix: &str) -> (Self, String) {
        let admin = std::env::var("KEEL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running at {admin}: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        (Self { name, admin }, url)
    }

    pub async fn drop_it(self) {
        let (client, conn) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}
