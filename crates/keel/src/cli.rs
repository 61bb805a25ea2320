//! The command line: one struct per command, each flag with its `KEEL_*` variable.
//! Kept to DESIGN.md's CLI contract.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Keel: a backend architect in one binary. Describe your backend in keel.toml;
/// Keel checks it, migrates the database and serves it.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format: pretty for people, json for log pipelines.
    #[arg(long, global = true, env = "KEEL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// Log filter (tracing syntax), e.g. `info`, `keel=debug`.
    #[arg(long, global = true, env = "KEEL_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter keel.toml.
    Init(InitArgs),
    /// Validate keel.toml and report every problem with file:line:column (exit 1 on errors).
    Check(CheckArgs),
    /// Bring the database schema in line with keel.toml (or show the plan).
    Migrate(MigrateArgs),
    /// Serve the REST API, OpenAPI document and docs for keel.toml.
    Serve(ServeArgs),
    /// Print the JSON Schema of keel.toml (for editor completion).
    Schema,
    /// Administer users and keys: bootstrap an admin, grant roles, rotate signing keys.
    Admin(AdminArgs),
    /// Write the architecture document and its artifacts (OpenAPI, SQL, Docker, Kubernetes).
    Design(crate::commands::design::DesignArgs),
    /// See and re-drive event deliveries: list them, retry dead ones, replay retained events.
    Events(EventsArgs),
}

/// The templates `keel init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Users, posts, comments, likes and follows, with per-author rules.
    Social,
    /// A public catalogue, carts, orders and payments moving through a state machine.
    Shop,
    /// Organisations, memberships, projects and tasks, isolated per tenant.
    Saas,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Social => "social",
            Template::Shop => "shop",
            Template::Saas => "saas",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Starting point for keel.toml.
    #[arg(long, value_enum, default_value_t = Template::Social)]
    pub template: Template,
    /// Directory to write keel.toml into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite an existing keel.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpecArg {
    /// The spec file.
    #[arg(env = "KEEL_SPEC", default_value = "keel.toml")]
    pub spec: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// Output format: text for people, json for scripts, sarif for code scanning.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

#[derive(Debug, clap::Args)]
pub struct DatabaseArg {
    /// Database URL: sqlite://FILE (default: keel.db beside the spec) or postgres://…
    #[arg(long, env = "KEEL_DATABASE_URL")]
    pub database: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Print the SQL the migration would run, and change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Allow steps that lose data (dropping tables or columns, changing types).
    #[arg(long)]
    pub allow_destructive: bool,
}

/// `Debug` by hand: the secret never prints.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Address to listen on.
    #[arg(long, env = "KEEL_ADDR")]
    pub addr: Option<String>,
    /// Key that signs list cursors (at least 32 characters); by default one is
    /// generated and kept in the database, so every node sharing it agrees.
    #[arg(long, env = "KEEL_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KEEL_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body: usize,
    /// Longest a request may take, in seconds.
    #[arg(long, env = "KEEL_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// PEM certificate chain: with --tls-key, serve HTTPS (and send HSTS).
    #[arg(long, env = "KEEL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEEL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// redis://[:PASSWORD@]HOST[:PORT][/DB]: rate limits and login throttles shared
    /// by every node using it (else `[server] redis`).
    // Checked when the server is built, so that no error repeats the password.
    #[arg(long, env = "KEEL_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,
    /// What every Redis key of this deployment starts with: give deployments that
    /// share one Redis a prefix each.
    #[arg(long, env = "KEEL_REDIS_PREFIX", default_value = "keel:")]
    pub redis_prefix: String,
    /// Proxies (addresses or networks, comma-separated) whose X-Forwarded-For /
    /// Forwarded headers name the client (else `[server] trusted_proxies`).
    #[arg(long, env = "KEEL_TRUSTED_PROXIES", value_delimiter = ',', value_parser = cidr)]
    pub trusted_proxies: Vec<keel_spec::Cidr>,
    /// Where records read by id are cached: `auto` is in Redis when --redis is set,
    /// else nowhere (other nodes could not be told of a write, and one node on
    /// SQLite reads in process already); `local` caches about 24 MB of records in
    /// this process (only when it is the one node); `off` reads the database every
    /// time.
    #[arg(long, env = "KEEL_CACHE", value_enum, default_value_t = keel::CacheMode::Auto)]
    pub cache: keel::CacheMode,
    /// Read replicas of the PostgreSQL database (postgres://…, comma-separated):
    /// reads go to them, writes and a caller's reads right after its own writes to
    /// the primary (else `[server] replicas`).
    #[arg(
        long,
        env = "KEEL_DATABASE_REPLICAS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub replicas: Vec<String>,
    /// How far (milliseconds of the primary's WAL) a replica may lag and still serve
    /// reads; one further behind is taken out until it catches up.
    #[arg(long, env = "KEEL_REPLICA_MAX_LAG_MS", default_value_t = 2000)]
    pub replica_max_lag_ms: u64,
}

fn cidr(s: &str) -> Result<keel_spec::Cidr, String> {
    s.parse()
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("spec", &self.spec)
            .field("database", &self.database)
            .field("addr", &self.addr)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("max_body", &self.max_body)
            .field("request_timeout", &self.request_timeout)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("redis", &self.redis.as_deref().map(keel_store::redact))
            .field("redis_prefix", &self.redis_prefix)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cache", &self.cache)
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(|r| keel_store::redact(r))
                    .collect::<Vec<_>>(),
            )
            .field("replica_max_lag_ms", &self.replica_max_lag_ms)
            .finish()
    }
}

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    #[command(flatten)]
    pub database: DatabaseArg,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user with the `admin` role (the first admin of a deployment).
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The password; read from KEEL_ADMIN_PASSWORD so it stays out of shell history.
        #[arg(long, env = "KEEL_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Grant a role of keel.toml (or `admin`) to the user with this email.
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Revoke a role from the user with this email.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Add a new token-signing key; tokens signed with older keys stay valid.
    RotateKey,
}

/// `keel events [SPEC] [--database URL] list|retry|replay`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Destinations are named as keel.toml configures them: `webhook:<name>` for each
[events.webhooks.<name>], `nats` for [events.nats], `rabbitmq` for [events.rabbitmq].
Changes are picked up by every running `keel serve` within a second (at once on
PostgreSQL).

Examples:
  keel events list --state dead
  keel events list --destination webhook:moderation --format json
  keel events retry --destination webhook:moderation
  keel events replay --destination nats --since 2h")]
pub struct EventsArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// Database URL: sqlite://FILE (default: keel.db beside the spec) or postgres://…
    #[arg(long, env = "KEEL_DATABASE_URL", global = true)]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryState {
    /// Waiting for its first attempt or a retry (or for a disabled destination).
    Pending,
    /// Accepted by the destination.
    Delivered,
    /// Failed every attempt of the retry schedule: kept until retried or pruned.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// A table for people.
    Text,
    /// One JSON object per line for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Show deliveries, newest first, and where each destination stands (pending and
    /// dead deliveries, disabled after a 410).
    #[command(
        override_usage = "keel events [SPEC] list [--state STATE] [--destination NAME] [--limit N] [--format text|json] [--database URL]"
    )]
    List {
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        state: Option<DeliveryState>,
        /// Only deliveries to this destination (`webhook:<name>`, `nats`, `rabbitmq`).
        #[arg(long)]
        destination: Option<String>,
        /// Show at most this many deliveries.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// Output format: text (a table and a summary) or json (one object per line:
        /// deliveries with "kind": "delivery", then destinations with "kind": "destination").
        #[arg(long, value_enum, default_value = "text")]
        format: EventsFormat,
    },
    /// Make dead deliveries pending again (due now) and enable destinations a 410
    /// disabled; every configured destination unless --destination names one.
    #[command(override_usage = "keel events [SPEC] retry [--destination NAME] [--database URL]")]
    Retry {
        /// Only this destination (`webhook:<name>`, `nats`, `rabbitmq`).
        #[arg(long)]
        destination: Option<String>,
    },
    /// Deliver retained events again: every settled (delivered or dead) delivery to the
    /// destination of an event since --since becomes pending again, under its unchanged
    /// event id (consumers deduplicate on it).
    #[command(
        override_usage = "keel events [SPEC] replay --destination NAME --since TIME|DURATION [--database URL]"
    )]
    Replay {
        /// The destination (`webhook:<name>`, `nats`, `rabbitmq`), as keel.toml configures it.
        #[arg(long)]
        destination: String,
        /// From when: an RFC 3339 time (2026-05-01T12:00:00Z) or a duration back from
        /// now (90s, 15m, 1h, 7d, 1w). Events older than `[events] retention` are gone.
        #[arg(long)]
        since: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serve_secret_never_prints() {
        let cli = Cli::try_parse_from([
            "keel",
            "serve",
            "--secret",
            "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
        ])
        .expect("parses");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
