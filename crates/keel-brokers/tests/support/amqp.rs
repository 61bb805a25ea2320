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
