//! NatsSink against a private nats-server this test starts, kills and restarts on the
//! same port and store: deliveries while it is down answer `Retry` within the timeout,
//! the sink comes back by itself, and nothing acknowledged before the outage is lost.

#[path = "support/events.rs"]
mod events;
#[path = "support/nats_server.rs"]
mod nats_server;

use keel_brokers::NatsSink;
use keel_events::{Envelope, Outcome, Sink};
use keel_spec::model::NatsConfig;
use nats_server::NatsServer;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(2);

fn config(url: String) -> NatsConfig {
    NatsConfig {
        url,
        subject_prefix: "keel.outage".into(),
        stream: "KEEL_OUTAGE".into(),
        span: 0..0,
    }
}

/// Deliver, and check the answer came within the sink's bound (2 × timeout).
async fn deliver_timed(sink: &NatsSink, e: &Envelope) -> Outcome {
    let start = Instant::now();
    let outcome = sink.deliver(e, &e.to_json_bytes()).await;
    let took = start.elapsed();
    assert!(
        took <= TIMEOUT * 2 + Duration::from_millis(500),
        "took {took:?}"
    );
    outcome
}

/// Redeliver as a relay would until the sink answers `Delivered` (at most 30 s).
async fn deliver_eventually(sink: &NatsSink, e: &Envelope) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut retries = 0;
    loop {
        match deliver_timed(sink, e).await {
            Outcome::Delivered { .. } => return retries,
            Outcome::Retry { .. } => retries += 1,
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "not delivered after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Event id → how many copies the stream holds.
async fn stored_ids(url: &str, stream: &str) -> HashMap<String, usize> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await.expect("stream");
    let last = stream.cached_info().state.last_sequence;
    let mut ids = HashMap::new();
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .expect("id")
            .as_str()
            .to_owned();
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

#[tokio::test]
async fn a_restarted_server_loses_nothing_and_the_sink_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = NatsServer::new(dir.path());
    server.start().await;
    let sink = NatsSink::connect(&config(server.url()))
        .await
        .expect("connect")
        .with_timeout(TIMEOUT);

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
            other => panic!("delivered while the server is down: {other:?}"),
        }
    }

    server.start().await;
    deliver_eventually(&sink, &during).await;
    let after = events::event("comments", "created");
    assert_eq!(
        deliver_timed(&sink, &after).await,
        Outcome::Delivered { status: None }
    );

    let ids = stored_ids(&server.url(), "KEEL_OUTAGE").await;
    for e in before.iter().chain([&during, &after]) {
        assert_eq!(
            ids.get(&e.id.to_string()),
            Some(&1),
            "{} stored once",
            e.kind
        );
    }
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn a_sink_created_while_the_server_is_down_comes_up_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = NatsServer::new(dir.path());

    let start = Instant::now();
    let sink = NatsSink::connect(&config(server.url()))
        .await
        .expect("an unreachable server is not an error")
        .with_timeout(TIMEOUT);
    assert!(
        start.elapsed() < TIMEOUT,
        "connect waited {:?}",
        start.elapsed()
    );
    assert!(!sink.is_connected());

    let e = events::event("posts", "created");
    match deliver_timed(&sink, &e).await {
        Outcome::Retry { error, .. } => assert!(error.contains("not connected"), "{error}"),
        other => panic!("{other:?}"),
    }

    server.start().await;
    deliver_eventually(&sink, &e).await;
    assert!(sink.is_connected());
    let ids = stored_ids(&server.url(), "KEEL_OUTAGE").await;
    assert_eq!(ids.get(&e.id.to_string()), Some(&1));
}
