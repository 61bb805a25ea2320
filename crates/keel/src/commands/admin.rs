//! `keel admin`: the first admin, role grants and key rotation, straight on the database.

use crate::cli::{AdminArgs, AdminCommand};
use crate::config;
use keel_auth::{AuthService, PasswordPolicy};
use keel_core::Engine;
use keel_spec::Model;
use keel_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(args: AdminArgs, model: Model) -> ExitCode {
    let url = config::database_url(args.database.database.as_deref(), &model, &args.spec.spec);
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", keel_store::redact(&url));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = store.migrate(&model, false).await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let mut engine = Engine::new(Arc::new(model), store, b"admin-cli-does-not-list-records");
    if let Ok(keys) = std::env::var(keel_core::crypto::KEYS_ENV) {
        match keel_core::crypto::FieldCipher::parse(&keys) {
            Ok(cipher) => engine = engine.with_cipher(cipher),
            Err(e) => {
                eprintln!("error: {}: {e}", keel_core::crypto::KEYS_ENV);
                return ExitCode::FAILURE;
            }
        }
    }
    let engine = Arc::new(engine);
    let auth =
        match AuthService::new(engine.clone(), PasswordPolicy::from_model(engine.model())).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = match args.command {
        AdminCommand::Create { email, password } => {
            auth.create_admin(&email, &password).await.map(|u| {
                format!(
                    "created admin {} ({})",
                    email,
                    u["id"].as_str().unwrap_or_default()
                )
            })
        }
        AdminCommand::Grant { email, role } => set(&auth, &email, &role, true).await,
        AdminCommand::Revoke { email, role } => set(&auth, &email, &role, false).await,
        AdminCommand::RotateKey => auth
            .keys()
            .rotate()
            .await
            .map(|kid| format!("new signing key {kid}; older keys keep verifying"))
            .map_err(Into::into),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let keel_auth::AuthError::Validation(errors) = &e {
                for f in errors {
                    eprintln!("  {}: {}", f.field, f.message);
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn set(
    auth: &AuthService,
    email: &str,
    role: &str,
    granted: bool,
) -> Result<String, keel_auth::AuthError> {
    let id = auth
        .user_id_by_email(email)
        .await?
        .ok_or_else(|| keel_auth::AuthError::Internal(format!("no user with email {email}")))?;
    auth.set_role("cli", &id, role, granted).await?;
    Ok(format!(
        "{} role `{role}` {} {email}",
        if granted { "granted" } else { "revoked" },
        if granted { "to" } else { "from" }
    ))
}
