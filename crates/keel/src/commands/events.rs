//! `keel events`: see and re-drive event deliveries straight on the database (the
//! same operations as the `/v1/admin/events*` routes). Running servers pick changes
//! up on their next poll (at once on PostgreSQL, whose commits notify every relay).

use crate::cli::{EventsArgs, EventsCommand, EventsFormat};
use crate::config;
use keel_http::events::{check_destination, configured_destinations};
use keel_spec::Model;
use keel_store::Store;
use keel_store::events::ops::{self, Delivery, DestinationStatus};
use std::process::ExitCode;

pub async fn run(args: EventsArgs, model: Model) -> ExitCode {
    // Refuse a destination keel.toml does not configure before touching the database.
    let named = match &args.command {
        EventsCommand::Retry { destination } => destination.as_deref(),
        EventsCommand::Replay { destination, .. } => Some(destination.as_str()),
        EventsCommand::List { .. } => None,
    };
    if let Some(name) = named
        && let Err(e) = check_destination(&model, name)
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let since = match &args.command {
        EventsCommand::Replay { since, .. } => {
            match ops::parse_since(since, time::OffsetDateTime::now_utc()) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("error: --since: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let url = config::database_url(args.database.as_deref(), &model, &args.spec.spec);
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", keel_store::redact(&url));
            return ExitCode::FAILURE;
        }
    };
    let configured = configured_destinations(&model);
    let result = match args.command {
        EventsCommand::List {
            state,
            destination,
            limit,
            format,
        } => {
            list(
                &store,
                &configured,
                state.map(|s| s.as_str()),
                destination.as_deref(),
                limit,
                format,
            )
            .await
        }
        EventsCommand::Retry { destination } => {
            let targets = destination.map_or(configured, |d| vec![d]);
            ops::retry(&store, &targets).await.map(|changed| {
                if changed.is_empty() {
                    println!("keel.toml configures no event destination: nothing to retry");
                }
                for r in &changed {
                    println!(
                        "{}: {} dead deliver{} pending again{}",
                        r.destination,
                        r.deliveries,
                        if r.deliveries == 1 { "y" } else { "ies" },
                        if r.re_enabled {
                            "; enabled again (it was disabled)"
                        } else {
                            ""
                        }
                    );
                }
            })
        }
        EventsCommand::Replay { destination, .. } => {
            let Some(since) = since else {
                return ExitCode::FAILURE;
            };
            match ops::replay(&store, &destination, since).await {
                Ok(n) => {
                    println!(
                        "{destination}: {n} deliver{} since {} pending again (same event ids)",
                        if n == 1 { "y" } else { "ies" },
                        keel_expr::format_datetime(since)
                    );
                    // A disabled destination holds what was replayed until retried.
                    match ops::destinations(&store, std::slice::from_ref(&destination)).await {
                        Ok(all) => {
                            if let Some(d) = all.iter().find(|d| d.name == destination)
                                && d.disabled_at.is_some()
                            {
                                eprintln!(
                                    "note: {destination} is disabled ({}); `keel events retry --destination {destination}` enables it",
                                    d.disabled_reason.as_deref().unwrap_or("no reason recorded")
                                );
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list(
    store: &Store,
    configured: &[String],
    state: Option<&str>,
    destination: Option<&str>,
    limit: i64,
    format: EventsFormat,
) -> Result<(), keel_store::StoreError> {
    let items = ops::deliveries(store, state, destination, limit).await?;
    let destinations: Vec<DestinationStatus> = ops::destinations(store, configured)
        .await?
        .into_iter()
        .filter(|d| destination.is_none_or(|n| n == d.name))
        .collect();
    match format {
        EventsFormat::Json => {
            for d in &items {
                let mut line = d.to_json();
                line["kind"] = "delivery".into();
                println!("{line}");
            }
            for d in &destinations {
                let mut line = d.to_json();
                line["kind"] = "destination".into();
                println!("{line}");
            }
        }
        EventsFormat::Text => {
            if items.is_empty() {
                println!("no deliveries");
            } else {
                print!("{}", table(&items));
            }
            println!();
            print!("{}", summary(&destinations));
        }
    }
    Ok(())
}

/// Deliveries as an aligned table.
fn table(items: &[Delivery]) -> String {
    let header = [
        "DESTINATION",
        "EVENT",
        "TYPE",
        "RECORD",
        "STATE",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST STATUS/ERROR",
        "OCCURRED AT",
    ];
    let rows: Vec<[String; 9]> = items
        .iter()
        .map(|d| {
            let last = match (d.last_status, d.last_error.as_deref()) {
                (Some(s), Some(e)) => format!("{s} {}", one_line(e)),
                (Some(s), None) => s.to_string(),
                (None, Some(e)) => one_line(e),
                (None, None) => "-".into(),
            };
            let next = match (&d.next_attempt_at, d.state.as_str()) {
                (Some(t), keel_store::events::PENDING) => t.clone(),
                _ => "-".into(),
            };
            [
                d.destination.clone(),
                d.event_id.clone(),
                d.kind.clone(),
                d.record_id.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                next,
                last,
                d.occurred_at.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// An error on one line, at most 60 characters.
fn one_line(e: &str) -> String {
    let flat: String = e
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 60 {
        format!("{}…", flat.chars().take(59).collect::<String>())
    } else {
        flat
    }
}

/// Where each destination stands.
fn summary(destinations: &[DestinationStatus]) -> String {
    if destinations.is_empty() {
        return "destinations: none configured\n".into();
    }
    let width = destinations
        .iter()
        .map(|d| d.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from("destinations:\n");
    for d in destinations {
        let mut parts = vec![format!("{} pending", d.pending)];
        if let Some(t) = &d.oldest_pending_at {
            parts[0].push_str(&format!(" (oldest event {t})"));
        }
        parts.push(format!("{} dead", d.dead));
        if let Some(t) = &d.disabled_at {
            parts.push(format!(
                "DISABLED since {t}: {} (`keel events retry --destination {}` enables it)",
                d.disabled_reason.as_deref().unwrap_or("no reason recorded"),
                d.name
            ));
        }
        if !d.configured {
            parts.push("not configured in keel.toml".into());
        }
        out.push_str(&format!("  {:<width$}  {}\n", d.name, parts.join(", ")));
    }
    out
}
