//! NatsSink against the machine's NATS server (127.0.0.1:4222, JetStream), one stream
//! and subject prefix per test: what a JetStream consumer reads back, deduplication on
//! `Nats-Msg-Id`, and what happens to a stream that already exists.

#[path = "support/events.rs"]
mod events;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::Config as StreamConfig;
use futures_util::StreamExt;
use keel_brokers::{BrokerError, NatsSink};
use keel_events::{Outcome, Sink};
use keel_spec::model::NatsConfig;
use std::time::Duration;

const URL: &str = "nats://127.0.0.1:4222";

fn config(tag: &str) -> NatsConfig {
    NatsConfig {
        url: URL.into(),
        subject_prefix: format!("keeltest.{tag}"),
        stream: format!("KEELTEST_{tag}"),
        span: 0..0,
    }
}

async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(URL)
        .await
        .expect("NATS on 127.0.0.1:4222");
    async_nats::jetstream::new(client)
}

/// Create a stream for a test, again when nats-server 2.9 fails to create its store
/// (a 5xx) because another test is deleting the account's last stream: a server race.
async fn create_stream(js: &async_nats::jetstream::Context, config: StreamConfig) {
    for attempt in 0.. {
        match js.create_stream(config.clone()).await {
            Ok(_) => return,
            Err(e)
                if attempt < 5
                    && matches!(e.kind(), CreateStreamErrorKind::JetStream(err) if err.code() >= 500) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("creating {}: {e}", config.name),
        }
    }
}

/// Every message in `stream`, read by an ephemeral pull consumer from the start.
async fn read_all(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<async_nats::jetstream::Message> {
    let stream = js.get_stream(stream).await.expect("stream exists");
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        out.push(message.expect("message"));
    }
    out
}

#[tokio::test]
async fn events_are_stored_with_their_subject_body_and_id_and_deduplicated() {
    let tag = events::unique();
    let config = config(&tag);
    let sink = NatsSink::connect(&config).await.expect("connect");
    assert_eq!(sink.name(), "nats");
    assert!(sink.is_connected());

    let events = events::three();
    for e in &events {
        let outcome = sink.deliver(e, &e.to_json_bytes()).await;
        assert_eq!(outcome, Outcome::Delivered { status: None });
    }
    // The same event again (a retry after a lost ack): one stored message.
    let again = sink.deliver(&events[0], &events[0].to_json_bytes()).await;
    assert_eq!(again, Outcome::Delivered { status: None });

    let js = jetstream().await;
    let mut stream = js.get_stream(&config.stream).await.expect("created");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.subjects, vec![format!("keeltest.{tag}.>")]);
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(info.state.messages, 3, "the duplicate was dropped");

    let messages = read_all(&js, &config.stream).await;
    assert_eq!(messages.len(), 3);
    let subjects = ["posts.created", "posts.updated", "comments.deleted"];
    for ((m, e), subject) in messages.iter().zip(&events).zip(subjects) {
        assert_eq!(m.subject.as_str(), format!("keeltest.{tag}.{subject}"));
        assert_eq!(m.payload.as_ref(), e.to_json_bytes().as_slice());
        let headers = m.headers.as_ref().expect("headers");
        let id = headers.get("Nats-Msg-Id").expect("Nats-Msg-Id");
        assert_eq!(id.as_str(), e.id.to_string());
        let ct = headers.get("Content-Type").expect("Content-Type");
        assert_eq!(ct.as_str(), "application/json");
        let back: keel_events::Envelope = serde_json::from_slice(&m.payload).expect("JSON");
        assert_eq!(&back, e);
    }
    js.delete_stream(&config.stream).await.expect("cleanup");
}

#[tokio::test]
async fn an_existing_stream_keeps_its_subjects_and_gains_ours() {
    let tag = events::unique();
    let config = config(&tag);
    let js = jetstream().await;
    let theirs = format!("keeltest.{tag}other.>");
    let their_stream = StreamConfig {
        name: config.stream.clone(),
        subjects: vec![theirs.clone()],
        ..Default::default()
    };
    create_stream(&js, their_stream).await;

    let sink = NatsSink::connect(&config).await.expect("connect");
    let e = events::event("posts", "created");
    assert_eq!(
        sink.deliver(&e, &e.to_json_bytes()).await,
        Outcome::Delivered { status: None }
    );
    let mut stream = js.get_stream(&config.stream).await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(
        info.config.subjects,
        vec![theirs, format!("keeltest.{tag}.>")]
    );
    assert_eq!(info.state.messages, 1);

    // Connecting again leaves a stream that already captures us alone.
    drop(NatsSink::connect(&config).await.expect("connect again"));
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.subjects.len(), 2);
    js.delete_stream(&config.stream).await.expect("cleanup");
}

#[tokio::test]
async fn subjects_owned_by_another_stream_are_a_clear_error() {
    let tag = events::unique();
    let config = config(&tag);
    let js = jetstream().await;
    let other = format!("KEELTEST_{tag}_OTHER");
    let other_stream = StreamConfig {
        name: other.clone(),
        subjects: vec![format!("keeltest.{tag}.posts.>")],
        ..Default::default()
    };
    create_stream(&js, other_stream).await;

    let error = NatsSink::connect(&config).await.err().expect("refused");
    assert!(matches!(error, BrokerError::Stream { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&config.stream), "{text}");
    assert!(text.contains(&format!("keeltest.{tag}.>")), "{text}");
    js.delete_stream(&other).await.expect("cleanup");
}

#[tokio::test]
async fn a_stream_deleted_by_hand_is_created_again() {
    let tag = events::unique();
    let config = config(&tag);
    let sink = NatsSink::connect(&config).await.expect("connect");
    let js = jetstream().await;
    js.delete_stream(&config.stream).await.expect("deleted");

    let e = events::event("posts", "created");
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        outcomes.push(sink.deliver(&e, &e.to_json_bytes()).await);
    }
    assert!(
        matches!(&outcomes[0], Outcome::Retry { error, .. } if error.contains("no stream")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], Outcome::Delivered { status: None });
    let mut stream = js.get_stream(&config.stream).await.expect("created again");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    js.delete_stream(&config.stream).await.expect("cleanup");
}

#[tokio::test]
async fn bad_configuration_fails_at_connect() {
    let mut config = config(&events::unique());
    config.stream = "has.dots".into();
    assert!(matches!(
        NatsSink::connect(&config).await,
        Err(BrokerError::Config(_))
    ));
    let mut config = self::config(&events::unique());
    config.url = "nats://127.0.0.1:99999".into();
    assert!(matches!(
        NatsSink::connect(&config).await,
        Err(BrokerError::InvalidUrl { .. })
    ));
}
