//! Section 3, the service definitions: identity and access, each collection with its
//! rules, events and webhooks, and the operations surface.

use super::{Inputs, SECTIONS, rule_text};
use keel_spec::Operation;
use std::fmt::Write;

pub(super) fn services(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let _ = writeln!(d, "## {}\n", SECTIONS[2]);
    let _ = writeln!(
        d,
        "Keel is one binary; these are its bounded contexts. Each collection is served by the same operation core (validate → authorize → transaction → outbox), so a rule cannot be enforced on one surface and forgotten on another.\n"
    );
    let _ = writeln!(d, "### Identity and access\n");
    let auth = &m.auth;
    let mut lines = Vec::new();
    if auth.password {
        lines.push("email + password sign-up and login (argon2id)".to_string());
    }
    if auth.access_ttl_secs > 0 {
        lines.push(format!(
            "access tokens valid {} min, refresh tokens rotated and valid {} days",
            auth.access_ttl_secs / 60,
            auth.refresh_ttl_secs / 86_400
        ));
    }
    for name in auth.oauth.keys() {
        lines.push(format!("sign-in with `{name}` (OAuth2 / OIDC, PKCE)"));
    }
    if !m.roles.is_empty() {
        let roles: Vec<String> = m
            .roles
            .iter()
            .map(|(n, r)| {
                if r.inherits.is_empty() {
                    format!("`{n}`")
                } else {
                    format!("`{n}` (inherits {})", r.inherits.join(", "))
                }
            })
            .collect();
        lines.push(format!("roles: {}", roles.join(", ")));
    }
    if lines.is_empty() {
        lines.push("no sign-in configured: every caller is anonymous".into());
    }
    for l in lines {
        let _ = writeln!(d, "- {l}");
    }
    let _ = writeln!(
        d,
        "- responsibilities: turn a bearer token into a principal (`auth.id`, `auth.email`, `auth.roles`), which every rule below sees; rate limits per caller from `[limits]`\n"
    );
    let _ = writeln!(d, "### Collections\n");
    let _ = writeln!(
        d,
        "| collection | responsibility | read | create | update | delete |\n|---|---|---|---|---|---|"
    );
    for c in &m.collections {
        let desc = c.description.clone().unwrap_or_else(|| {
            let fields: Vec<&str> = c
                .fields
                .iter()
                .filter(|f| !f.system)
                .map(|f| f.name.as_str())
                .collect();
            format!("holds {}", fields.join(", "))
        });
        let _ = writeln!(
            d,
            "| `{}` | {} | {} | {} | {} | {} |",
            c.name,
            desc.replace('|', "\\|"),
            rule_text(c, Operation::Read),
            rule_text(c, Operation::Create),
            rule_text(c, Operation::Update),
            rule_text(c, Operation::Delete)
        );
    }
    d.push('\n');
    let _ = writeln!(d, "### Events\n");
    let brokers: Vec<&str> = [
        m.events.nats.as_ref().map(|_| "NATS JetStream"),
        m.events.rabbitmq.as_ref().map(|_| "RabbitMQ"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let _ = writeln!(
        d,
        "Every create, update and delete — and every record a delete cascades to or sets to null — appends one event (`<collection>.created|updated|deleted`) to the outbox in the same transaction, with a delivery row for each destination that wants it, so an event exists exactly when the change committed. The relay in every node leases due deliveries (`FOR UPDATE SKIP LOCKED` with a lease, woken by each commit and by PostgreSQL `NOTIFY`) and delivers them at least once, one record's events in commit order; a destination that is down never blocks a write. Events are kept for {} after they occur.",
        duration_text(m.events.retention_secs)
    );
    d.push('\n');
    if brokers.is_empty() {
        let _ = writeln!(
            d,
            "No broker is configured{}.\n",
            if i.plan.multi_node {
                ": add `[events.nats]` to give other consumers a durable, replayable stream"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(
            d,
            "Every event is also published to {} (message id = event id, counted delivered only on the broker's acknowledgement).\n",
            brokers.join(" and ")
        );
    }
    if m.webhooks.is_empty() {
        let _ = writeln!(d, "No webhooks are declared.\n");
    } else {
        d.push('\n');
        let _ = writeln!(
            d,
            "| webhook | url | events | filter | signed | private addresses |\n|---|---|---|---|---|---|"
        );
        for w in &m.webhooks {
            let _ = writeln!(
                d,
                "| `{}` | {} | {} | {} | {} | {} |",
                w.name,
                w.url,
                w.on.join(", "),
                w.filter.as_ref().map_or_else(
                    || "—".to_string(),
                    |f| format!("`{}`", f.source.replace('|', "\\|"))
                ),
                if w.secret.is_some() {
                    "yes (Standard Webhooks)"
                } else {
                    "no"
                },
                if w.allow_private {
                    "allowed"
                } else {
                    "refused"
                }
            );
        }
        d.push('\n');
        let _ = writeln!(
            d,
            "Deliveries are retried with exponential backoff and jitter (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h, 24 h; `Retry-After` honoured), then dead-lettered; a 410 disables the endpoint; a circuit breaker per endpoint stops after 5 consecutive failures.\n"
        );
    }
    let _ = writeln!(d, "### Operations surface\n");
    let _ = writeln!(
        d,
        "`GET /healthz` (liveness), `GET /readyz` (database reachable, no migration pending), `GET /v1/openapi.json`, `GET /docs`, `GET /docs/errors`.\n"
    );
}

/// Seconds as the spec would write them: `7d`, `12h`, `30m`, `45s`.
fn duration_text(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
