//! RabbitMqSink against a private RabbitMQ node this test starts, kills and restarts
//! with the same ports and data: deliveries while it is down answer `Retry` within
//! the timeout, the sink reconnects by itself, and nothing confirmed before the crash
//! is lost (persistent messages in a durable queue).

#[path = "support/amqp.rs"]
mod amqp;
#[path = "support/events.rs"]
mod events;
#[path = "support/rabbitmq_server.rs"]
mod rabbitmq_server;

use keel_brokers::RabbitMqSink;
use keel_events::{Envelope, Outcome, Sink};
use keel_spec::model::RabbitMqConfig;
use rabbitmq_server::RabbitMqServer;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(2);
const EXCHANGE: &str = "keel.outage";
const QUEUE: &str = "keel.outage.all";

/// Deliver, and check the answer came within the sink's bound (2 × timeout).
async fn deliver_timed(sink: &RabbitMqSink, e: &Envelope) -> Outcome {
    let start = Instant::now();
    let outcome = sink.deliver(e, &e.to_json_bytes()).await;
    let took = start.elapsed();
    assert!(
        took <= TIMEOUT * 2 + Duration::from_millis(500),
        "took {took:?}"
    );
    outcome
}

/// Redeliver as a relay would until the sink answers `Delivered` (at most 60 s).
async fn deliver_eventually(sink: &RabbitMqSink, e: &Envelope) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match deliver_timed(sink, e).await {
            Outcome::Delivered { .. } => return,
            Outcome::Retry { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "not delivered after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_crashed_broker_loses_nothing_confirmed_and_the_sink_reconnects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = RabbitMqServer::new(dir.path());
    server.start().await;
    let config = RabbitMqConfig {
        url: server.url(),
        exchange: EXCHANGE.into(),
        span: 0..0,
    };
    let sink = RabbitMqSink::connect(&config)
        .await
        .expect("connect")
        .with_timeout(TIMEOUT);
    {
        let (_conn, channel) = amqp::channel(&server.url()).await;
        amqp::bind_all(&channel, EXCHANGE, QUEUE, true).await;
    }

    let before = events::three();
    for e in &before {
        assert_eq!(
            deliver_timed(&sink, e).await,
            Outcome::Delivered { status: None }
        );
    }

    server.stop();
    let during = events::event("posts", "updated");
    for _ in 0..3 {
        match deliver_timed(&sink, &during).await {
            Outcome::Retry { error, .. } => assert!(!error.is_empty()),
            other => panic!("delivered while the broker is down: {other:?}"),
        }
    }
    assert!(!sink.is_connected().await);

    server.start().await;
    // RabbitMQ acks a message no queue is bound for (the sink publishes without
    // `mandatory`): wait for the durable queue *and its binding* to be back before
    // redelivering, as the broker accepts connections while it is still recovering
    // (seen twice under load: once before the queue was back, once before the binding).
    amqp::until_routed(&server.url(), EXCHANGE, QUEUE, 3).await;
    deliver_eventually(&sink, &during).await;
    assert!(sink.is_connected().await);
    let after = events::event("comments", "created");
    assert_eq!(
        deliver_timed(&sink, &after).await,
        Outcome::Delivered { status: None }
    );

    let (_conn, channel) = amqp::channel(&server.url()).await;
    let mut ids: HashMap<String, usize> = HashMap::new();
    for d in amqp::drain(&channel, QUEUE).await {
        let id = d.properties.message_id().as_ref().expect("message_id");
        if id.as_str() == amqp::PROBE {
            continue;
        }
        assert_eq!(d.properties.delivery_mode(), &Some(2));
        *ids.entry(id.as_str().to_owned()).or_insert(0) += 1;
    }
    for e in &before {
        assert_eq!(ids.get(&e.id.to_string()), Some(&1), "{} kept once", e.kind);
    }
    for e in [&during, &after] {
        assert!(ids.contains_key(&e.id.to_string()), "{} delivered", e.kind);
    }
}
