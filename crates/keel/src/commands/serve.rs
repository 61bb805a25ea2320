//! `keel serve`: open the database, apply safe migrations, serve until SIGINT or
//! SIGTERM, then finish in-flight requests and exit 0.

use crate::cli::ServeArgs;
use crate::config;
use keel_core::Engine;
use keel_spec::Model;
use keel_store::{Store, StoreError};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `json_logs`: the format the log subscriber was set up with, for the access lines.
pub async fn run(args: ServeArgs, model: Model, json_logs: bool) -> ExitCode {
    let started = Instant::now();
    // One rustls crypto provider for the whole process (aws-lc-rs), before any TLS.
    keel_auth::oauth::install_crypto_provider();
    let url = config::database_url(args.database.database.as_deref(), &model, &args.spec.spec);
    let addr = config::addr(args.addr.as_deref(), &model);
    let tls = config::tls_files(
        args.tls_cert.clone(),
        args.tls_key.clone(),
        &model,
        &args.spec.spec,
    );
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(database = %keel_store::redact(&url), error = %e, "cannot open the database");
            return ExitCode::FAILURE;
        }
    };
    match store.migrate(&model, false).await {
        Ok(plan) if !plan.is_empty() => {
            tracing::info!(steps = plan.steps.len(), "applied pending migrations")
        }
        Ok(_) => {}
        Err(StoreError::Destructive(plan)) => {
            for step in plan.destructive() {
                tracing::error!(step = %step.description, "destructive migration pending");
            }
            tracing::error!(
                "refusing to start: run `keel migrate --plan` to review, then `keel migrate --allow-destructive`"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            tracing::error!(error = %e, "migration failed");
            return ExitCode::FAILURE;
        }
    }
    let secret = match args.secret.or_else(|| model.server.secret.clone()) {
        Some(s) if s.len() >= 32 => s,
        Some(_) => {
            tracing::error!("KEEL_SECRET must be at least 32 characters");
            return ExitCode::FAILURE;
        }
        None => {
            let generated = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            match store.meta_get_or_init("cursor_secret", &generated).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the cursor key");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map_or(addr.clone(), |a| a.to_string());
    let has_encrypted = model
        .collections
        .iter()
        .any(|c| c.fields.iter().any(|f| f.encrypted));
    let mut engine = Engine::new(Arc::new(model), store, secret.as_bytes());
    match std::env::var(keel_core::crypto::KEYS_ENV) {
        Ok(keys) => match keel_core::crypto::FieldCipher::parse(&keys) {
            Ok(cipher) => engine = engine.with_cipher(cipher),
            Err(e) => {
                tracing::error!(error = %e, "invalid {}", keel_core::crypto::KEYS_ENV);
                return ExitCode::FAILURE;
            }
        },
        Err(_) if has_encrypted => {
            tracing::error!(
                "keel.toml has encrypted fields: set {} to `kid:base64-32-byte-key` (e.g. `k1:$(openssl rand -base64 32)`)",
                keel_core::crypto::KEYS_ENV
            );
            return ExitCode::FAILURE;
        }
        Err(_) => {}
    }
    let engine = Arc::new(engine);
    let auth = match keel_auth::AuthService::new(
        engine.clone(),
        keel_auth::PasswordPolicy::from_model(engine.model()),
    )
    .await
    {
        Ok(a) => Arc::new(a),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the token-signing keys");
            return ExitCode::FAILURE;
        }
    };
    let app = keel_http::router(
        engine,
        Some(auth),
        keel_http::Limits {
            access_log: crate::telemetry::AccessLines::new(json_logs)
                .map(|a| Arc::new(a) as Arc<dyn keel_http::AccessLog>),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            max_body_bytes: args.max_body,
            hsts: tls.is_some(),
            ..Default::default()
        },
    );
    tracing::info!(
        addr = %local,
        database = %keel_store::redact(&url),
        startup_ms = started.elapsed().as_millis() as u64,
        "listening on {scheme}://{local} (docs: {scheme}://{local}/docs)",
        scheme = if tls.is_some() { "https" } else { "http" }
    );
    let served = match &tls {
        Some((cert, key)) => {
            keel_http::serve_tls(listener, app, shutdown_signal(), cert, key).await
        }
        None => keel_http::serve(listener, app, shutdown_signal()).await,
    };
    match served {
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
