//! `keel serve`: open the database, apply safe migrations, serve until SIGINT or
//! SIGTERM, then finish in-flight requests and exit 0.

use crate::cli::ServeArgs;
use crate::config;
use keel::{App, Settings};
use keel_spec::Model;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `json_logs`: the format the log subscriber was set up with, for the access lines.
pub async fn run(args: ServeArgs, model: Model, json_logs: bool) -> ExitCode {
    let started = Instant::now();
    // One rustls crypto provider for the whole process (aws-lc-rs), before any TLS.
    keel_auth::oauth::install_crypto_provider();
    let url = config::database_url(args.database.database.as_deref(), &model, &args.spec.spec);
    let tls = config::tls_files(
        args.tls_cert.clone(),
        args.tls_key.clone(),
        &model,
        &args.spec.spec,
    );
    let mut settings = Settings::new(model, url.clone());
    settings.addr = config::addr(args.addr.as_deref(), &settings.model);
    settings.secret = args.secret.or_else(|| settings.model.server.secret.clone());
    settings.field_keys = std::env::var(keel_core::crypto::KEYS_ENV).ok();
    settings.tls = tls;
    settings.redis_url = config::redis_url(args.redis, &settings.model);
    settings.trusted_proxies = config::trusted_proxies(args.trusted_proxies, &settings.model);
    settings.cache = args.cache;
    settings.redis_prefix = args.redis_prefix;
    settings.replicas = config::replicas(args.replicas, &settings.model);
    settings.replica_max_lag = std::time::Duration::from_millis(args.replica_max_lag_ms.max(1));
    settings.request_timeout = Duration::from_secs(args.request_timeout);
    settings.max_body_bytes = args.max_body;
    settings.access_log = crate::telemetry::AccessLines::new(json_logs)
        .map(|a| Arc::new(a) as Arc<dyn keel_http::AccessLog>);
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    if app.migrated_steps > 0 {
        tracing::info!(steps = app.migrated_steps, "applied pending migrations");
    }
    let local = app.address();
    tracing::info!(
        addr = %local,
        database = %keel_store::redact(&url),
        startup_ms = started.elapsed().as_millis() as u64,
        "listening on {scheme}://{local} (docs: {scheme}://{local}/docs)",
        scheme = app.scheme()
    );
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server error");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
