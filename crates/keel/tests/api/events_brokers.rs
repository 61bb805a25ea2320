//! Events through the app to the machine's NATS JetStream and RabbitMQ: what a
//! consumer of each reads back (subjects, routing keys, message ids, envelopes).

use crate::events::spawn_events;
use crate::helpers::Backend;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

fn spec(prefix: &str, stream: &str, exchange: &str) -> String {
    format!(
        r#"
[app]
name = "brokers"
[collections.posts]
fields.title = {{ type = "text" }}
access.read = "true"
access.create = "true"
access.update = "true"
[events.nats]
url = "nats://127.0.0.1:4222"
subject_prefix = "{prefix}"
stream = "{stream}"
[events.rabbitmq]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
exchange = "{exchange}"
"#
    )
}

async fn events_reach_nats_and_rabbitmq(b: Backend) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("keeltest.{tag}");
    let stream = format!("KEELTEST_{tag}");
    let exchange = format!("keeltest-{tag}");
    // A RabbitMQ queue bound before anything is published.
    let amqp = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672");
    let channel = amqp.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "#".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "test".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();

    let app = spawn_events(b, &spec(&prefix, &stream, &exchange)).await;
    let post = app.create("posts", json!({"title": "one"})).await;
    let path = format!("/v1/posts/{}", post["id"].as_str().unwrap());
    assert_eq!(
        app.patch(&path, json!({"title": "two"})).await.status(),
        200
    );

    // RabbitMQ: two persistent messages, routing key <collection>.<op>, message_id = event id.
    let mut got = Vec::new();
    while got.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("RabbitMQ delivery within 20 s")
            .unwrap()
            .unwrap();
        let body: Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(
            d.properties.message_id().as_ref().unwrap().as_str(),
            body["id"].as_str().unwrap()
        );
        assert_eq!(*d.properties.delivery_mode(), Some(2));
        got.push((d.routing_key.as_str().to_string(), body));
    }
    assert_eq!(got[0].0, "posts.created");
    assert_eq!(got[1].0, "posts.updated");
    assert_eq!(got[1].1["data"]["title"], "two");

    // NATS JetStream: the stream was created; two messages with Nats-Msg-Id = event id.
    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let messages = loop {
        if let Ok(s) = js.get_stream(&stream).await {
            let consumer = s
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut batch = consumer
                .fetch()
                .max_messages(10)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            let mut out = Vec::new();
            while let Some(m) = batch.next().await {
                out.push(m.unwrap());
            }
            if out.len() >= 2 {
                break out;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no JetStream messages in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let subjects: Vec<String> = messages.iter().map(|m| m.subject.to_string()).collect();
    assert_eq!(
        subjects,
        [
            format!("{prefix}.posts.created"),
            format!("{prefix}.posts.updated")
        ]
    );
    for m in &messages {
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        let id = m
            .headers
            .as_ref()
            .unwrap()
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str();
        assert_eq!(id, body["id"].as_str().unwrap());
    }
    let _ = js.delete_stream(&stream).await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}

crate::backend_tests!(events_reach_nats_and_rabbitmq);
