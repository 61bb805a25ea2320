//! Where settings come from, strongest first: flags, `KEEL_*` variables (clap reads
//! both), the `[server]` table of keel.toml, then defaults.

use keel_spec::Model;
use std::path::Path;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// `--database`, else `[server] database`, else `sqlite://keel.db` beside the spec.
/// A relative SQLite path is taken relative to the spec's directory.
pub fn database_url(flag: Option<&str>, model: &Model, spec: &Path) -> String {
    let dir = spec
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let url = flag
        .map(str::to_string)
        .or_else(|| model.server.database.clone())
        .unwrap_or_else(|| "sqlite://keel.db".to_string());
    if let Some(path) = url.strip_prefix("sqlite://")
        && path != ":memory:"
        && !Path::new(path).is_absolute()
        && flag.is_none()
    {
        return format!("sqlite://{}", dir.join(path).display());
    }
    url
}

pub fn addr(flag: Option<&str>, model: &Model) -> String {
    flag.map(str::to_string)
        .or_else(|| model.server.addr.clone())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string())
}

/// TLS files from flags, else `[server] tls_cert` / `tls_key` (relative to the spec).
pub fn tls_files(
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
    model: &Model,
    spec: &Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Some((c, k));
    }
    let dir = spec
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (&model.server.tls_cert, &model.server.tls_key) {
        (Some(c), Some(k)) => Some((dir.join(c), dir.join(k))),
        _ => None,
    }
}

/// `--redis` / `KEEL_REDIS_URL`, else `[server] redis`.
pub fn redis_url(flag: Option<String>, model: &Model) -> Option<String> {
    flag.filter(|u| !u.is_empty())
        .or_else(|| model.server.redis.clone())
}

/// `--replicas` / `KEEL_DATABASE_REPLICAS`, else `[server] replicas`.
pub fn replicas(flag: Vec<String>, model: &Model) -> Vec<String> {
    let flag: Vec<String> = flag
        .into_iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if flag.is_empty() {
        model.server.replicas.clone()
    } else {
        flag
    }
}

/// `--trusted-proxies` / `KEEL_TRUSTED_PROXIES`, else `[server] trusted_proxies`.
pub fn trusted_proxies(flag: Vec<keel_spec::Cidr>, model: &Model) -> Vec<keel_spec::Cidr> {
    if flag.is_empty() {
        model.server.trusted_proxies.clone()
    } else {
        flag
    }
}
