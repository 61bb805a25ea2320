//! RabbitMqSink against the machine's RabbitMQ (127.0.0.1:5672), one exchange and
//! queue per test: what a consumer bound with `#` reads back, an exchange of another
//! type, and a broker that cannot be reached.

#[path = "support/amqp.rs"]
mod amqp;
#[path = "support/events.rs"]
mod events;

use keel_brokers::{BrokerError, RabbitMqSink};
use keel_events::{Outcome, Sink};
use keel_spec::model::RabbitMqConfig;
use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::time::Duration;
use tokio::time::Instant;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn config(exchange: &str) -> RabbitMqConfig {
    RabbitMqConfig {
        url: URL.into(),
        exchange: exchange.into(),
        span: 0..0,
    }
}

#[tokio::test]
async fn events_are_confirmed_persistent_and_routed_by_collection_and_op() {
    let tag = events::unique();
    let exchange = format!("keeltest.{tag}");
    let queue = format!("keeltest.{tag}.all");
    let sink = RabbitMqSink::connect(&config(&exchange))
        .await
        .expect("connect");
    assert_eq!(sink.name(), "rabbitmq");
    assert!(sink.is_connected().await);
    let (_conn, channel) = amqp::channel(URL).await;
    amqp::bind_all(&channel, &exchange, &queue, false).await;

    let events = events::three();
    for e in &events {
        let outcome = sink.deliver(e, &e.to_json_bytes()).await;
        assert_eq!(outcome, Outcome::Delivered { status: None });
    }

    let got = amqp::drain(&channel, &queue).await;
    assert_eq!(got.len(), 3);
    let keys = ["posts.created", "posts.updated", "comments.deleted"];
    for ((d, e), key) in got.iter().zip(&events).zip(keys) {
        assert_eq!(d.exchange.as_str(), exchange);
        assert_eq!(d.routing_key.as_str(), key);
        let p = &d.properties;
        assert_eq!(p.delivery_mode(), &Some(2), "persistent");
        let id = p.message_id().as_ref().map(|s| s.as_str().to_owned());
        assert_eq!(id, Some(e.id.to_string()));
        let ct = p.content_type().as_ref().map(|s| s.as_str().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"));
        let kind = p.kind().as_ref().map(|s| s.as_str().to_owned());
        assert_eq!(kind.as_deref(), Some(key));
        assert_eq!(d.data, e.to_json_bytes());
    }

    // An event no queue is bound for is acked by the broker: delivered.
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    let e = events::event("tags", "created");
    assert_eq!(
        sink.deliver(&e, &e.to_json_bytes()).await,
        Outcome::Delivered { status: None }
    );
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn an_exchange_of_another_type_is_a_clear_error() {
    let exchange = format!("keeltest.{}", events::unique());
    let (_conn, channel) = amqp::channel(URL).await;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("fanout exchange");
    let error = RabbitMqSink::connect(&config(&exchange))
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, BrokerError::Exchange { .. }), "{error:?}");
    assert!(error.to_string().contains(&exchange), "{error}");
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn bad_credentials_and_urls_fail_at_connect() {
    let mut c = config("keeltest.never");
    c.url = "amqp://guest:wrong@127.0.0.1:5672/%2f".into();
    let error = RabbitMqSink::connect(&c).await.err().expect("refused");
    assert!(matches!(error, BrokerError::Connect { .. }), "{error:?}");
    assert!(
        !error.to_string().contains("wrong"),
        "no password in {error}"
    );
    c.url = "http://nope".into();
    assert!(matches!(
        RabbitMqSink::connect(&c).await,
        Err(BrokerError::InvalidUrl { .. })
    ));
    c.url = URL.into();
    c.exchange = String::new();
    assert!(matches!(
        RabbitMqSink::connect(&c).await,
        Err(BrokerError::Config(_))
    ));
}

#[tokio::test]
async fn an_unreachable_broker_answers_retry_at_once_and_backs_off() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut c = config("keeltest.never");
    c.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let sink = RabbitMqSink::connect(&c)
        .await
        .expect("an unreachable broker is not an error")
        .with_timeout(Duration::from_secs(2));
    assert!(!sink.is_connected().await);
    let e = events::event("posts", "created");
    for attempt in 0..3 {
        let start = Instant::now();
        match sink.deliver(&e, &e.to_json_bytes()).await {
            Outcome::Retry { error, .. } if attempt > 0 => {
                // Within the back-off: no new connection attempt, an answer at once.
                assert!(error.contains("next connection attempt"), "{error}");
                assert!(start.elapsed() < Duration::from_millis(100));
            }
            Outcome::Retry { .. } => assert!(start.elapsed() < Duration::from_secs(2)),
            other => panic!("{other:?}"),
        }
    }
}
