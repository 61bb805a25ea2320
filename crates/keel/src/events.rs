//! The event relay the app runs: one sink per destination the model configures (each
//! webhook; NATS JetStream and RabbitMQ when set), under the names the core writes
//! deliveries for, and the relay's metrics on `/metrics`.

use keel_core::Engine;
use keel_events::{Relay, RelaySettings, Sink, WebhookSink};
use std::sync::Arc;
use std::time::Duration;

/// Why the relay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Webhook(#[from] keel_events::webhook::WebhookError),
    #[error(transparent)]
    Broker(#[from] keel_brokers::BrokerError),
    #[error("cannot open the relay's connections: {0}")]
    Store(String),
}

/// The relay's own PostgreSQL connections (leases, outcomes, statistics).
const RELAY_CONNECTIONS: usize = 3;

/// The relay over the engine's store, woken by its commits. A broker that cannot be
/// reached yet is not an error (its deliveries wait); a broker configured wrongly
/// (a bad URL, refused credentials, a conflicting stream or exchange) is.
pub async fn relay(engine: &Engine, settings: RelaySettings) -> Result<Arc<Relay>, EventsError> {
    let model = engine.model();
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    for hook in &model.webhooks {
        let name = keel_core::webhook_destination(&hook.name);
        sinks.push(Arc::new(WebhookSink::new(hook, name)?));
    }
    if let Some(nats) = &model.events.nats {
        sinks.push(Arc::new(keel_brokers::NatsSink::connect(nats).await?));
    }
    if let Some(rabbitmq) = &model.events.rabbitmq {
        sinks.push(Arc::new(
            keel_brokers::RabbitMqSink::connect(rabbitmq).await?,
        ));
    }
    let settings = RelaySettings {
        retention: Duration::from_secs(model.events.retention_secs),
        ..settings
    };
    Ok(Arc::new(
        Relay::new(
            model,
            // Its own connections: leases and outcomes do not queue behind requests.
            engine
                .store()
                .with_own_pool(RELAY_CONNECTIONS)
                .map_err(|e| EventsError::Store(e.to_string()))?,
            sinks,
            settings,
            engine.committed(),
        )
        .with_interests(engine.interests())
        .with_deliveries_made(engine.deliveries_made_flag()),
    ))
}

/// The relay's metrics, as `/metrics` renders them.
pub struct RelayMetricsSource(pub Arc<keel_events::metrics::RelayMetrics>);

impl keel_http::metrics::MetricsSource for RelayMetricsSource {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

/// Run `relay` until `stop` on a thread of its own (with a single-threaded runtime):
/// its deliveries — HTTP clients, signatures, envelopes, dozens in flight — then
/// never queue among the requests on the runtime's workers, and its work runs beside
/// theirs. Measured (SQLite, 64 connections creating on 2 cores): ~25 times more
/// events delivered during the run than when it shared the workers, at the same cost
/// to creates. The receiver resolves when the relay has finished.
pub fn spawn_relay(
    relay: Arc<Relay>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("keel-relay".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(relay.run(stop)),
                Err(e) => tracing::error!(error = %e, "events: cannot start the relay's runtime"),
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "events: cannot start the relay's thread");
    }
    finished
}
