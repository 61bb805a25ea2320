//! The consumer side of the RabbitMQ tests, with lapin: a queue bound to the
//! exchange with `#`, read back with `basic.get`.

#![allow(dead_code)] // each test binary uses part of it

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, message::Delivery};

pub async fn channel(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, Default::default())
        .await
        .expect("RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    (conn, channel)
}

/// Declare `queue` and bind it to `exchange` with `#`: durable (it outlives a broker
/// restart), or exclusive (it goes with the connection, whatever the test does).
pub async fn bind_all(channel: &Channel, exchange: &str, queue: &str, durable: bool) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable,
                exclusive: !durable,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
}

/// How many messages `queue` holds (a passive declare); `None` while the broker does
/// not serve it.
async fn message_count(channel: &Channel, queue: &str) -> Option<u32> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| q.message_count())
}

/// Wait until the broker serves `queue` (a passive declare answers) with at least
/// `messages` in it: after a restart, the durable queue and its bindings are back.
#[allow(dead_code)] // not every test binary including this module waits for a queue
pub async fn until_recovered(url: &str, queue: &str, messages: u32) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(conn) = Connection::connect(url, Default::default()).await
            && let Ok(channel) = conn.create_channel().await
            && message_count(&channel, queue).await >= Some(messages)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} not recovered with {messages} messages"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The message id of the probes [`until_routed`] publishes (readers skip them).
pub const PROBE: &str = "probe";

/// Wait until `exchange` routes to `queue` again after a restart. The queue may be
/// back (a passive declare answers) before its binding is: RabbitMQ then confirms a
/// publish it routed nowhere, and the message is gone (seen under load). So publish
/// probes (id [`PROBE`]) until one lands in the queue, which held `messages` before.
#[allow(dead_code)] // not every test binary including this module waits for routing
pub async fn until_routed(url: &str, exchange: &str, queue: &str, messages: u32) {
    use lapin::BasicProperties;
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    until_recovered(url, queue, messages).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(conn) = Connection::connect(url, Default::default()).await
            && let Ok(channel) = conn.create_channel().await
            && channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .is_ok()
            && let Ok(confirm) = channel
                .basic_publish(
                    exchange.into(),
                    "keel.probe".into(),
                    BasicPublishOptions::default(),
                    b"{}",
                    BasicProperties::default().with_message_id(PROBE.into()),
                )
                .await
            && confirm.await.is_ok()
            && message_count(&channel, queue).await > Some(messages)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{exchange} does not route to {queue}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Everything in `queue` now, in order, taken off it.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push(m.delivery);
    }
    out
}
