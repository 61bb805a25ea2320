//! A subscriber that never reads is cut off, never buffered without bound: over a
//! real SQLite file store, more than `QUEUE` real events are read from the outbox
//! and published; the idle subscriber gets at most `QUEUE` events (a gap-free prefix),
//! then `Reset`, then the end, and leaves the hub, while a subscriber that keeps up
//! gets every event in order. After the reset the client resumes from its last
//! cursor with no gap and no duplicate.
#![allow(clippy::unwrap_used)]

use keel_core::{Engine, Principal};
use keel_realtime::hub::QUEUE;
use keel_realtime::{FeedEvent, Hub, Message, Subscription, SubscriptionRequest, feed};
use keel_store::Store;
use keel_store::events::Position;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const SPEC: &str = r#"
[app]
name = "slow"
[collections.notes]
fields.text = { type = "text" }
access.read = "true"
access.create = "true"
"#;

async fn engine(dir: &tempfile::TempDir) -> Arc<Engine> {
    let model = keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("feed.db").display());
    let store = Store::open(&url).await.unwrap();
    store.migrate(&model, false).await.unwrap();
    Arc::new(Engine::new(
        Arc::new(model),
        store,
        b"test-secret-test-secret-test-secret",
    ))
}

async fn subscribe(hub: &Arc<Hub>, ip: &str, since: Option<Position>) -> Subscription {
    hub.subscribe(SubscriptionRequest {
        principal: Principal::anonymous(),
        client_ip: ip.into(),
        collections: HashMap::from([("notes".to_string(), None)]),
        since,
    })
    .await
    .unwrap()
}

/// The next message, within 5 s (`None`: the stream ended).
async fn next(sub: &mut Subscription) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message or the end within 5 s")
}

fn position(m: Option<Message>) -> Position {
    match m {
        Some(Message::Event(e)) => e.position,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Every event of the outbox after `after`, as the node's feed reader reads it.
async fn read_all(engine: &Engine, mut after: Position) -> Vec<FeedEvent> {
    let mut all = Vec::new();
    loop {
        let page = feed::read_after(engine, after, 100).await.unwrap();
        let Some(last) = page.last() else {
            return all;
        };
        after = last.position;
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscriber_is_cut_off_with_reset() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let hub = Arc::new(Hub::new(engine.clone()));
    let mut idle = subscribe(&hub, "10.0.0.1", None).await;
    let mut fast = subscribe(&hub, "10.0.0.2", None).await;
    assert_eq!(hub.len(), 2);

    let total = QUEUE + 300;
    for i in 0..total {
        engine
            .create(
                &Principal::anonymous(),
                "notes",
                &serde_json::json!({"text": format!("n{i}")}),
                None,
            )
            .await
            .unwrap();
    }
    let events = read_all(&engine, Position::default()).await;
    assert_eq!(events.len(), total);
    let positions: Vec<Position> = events.iter().map(|e| e.position).collect();

    // Publish page by page, as the reader does; the fast subscriber reads each page.
    let mut seen = Vec::new();
    for page in events.chunks(100) {
        hub.publish(page.to_vec()).await;
        for _ in page {
            seen.push(position(next(&mut fast).await));
        }
    }
    assert_eq!(
        seen, positions,
        "the subscriber that keeps up gets everything"
    );
    assert_eq!(hub.len(), 1, "the idle subscriber left the hub");

    // The idle one: what its queue held (a prefix, in order, at most QUEUE), then
    // Reset, then the end.
    let mut got = Vec::new();
    loop {
        match next(&mut idle).await {
            Some(Message::Event(e)) => got.push(e.position),
            Some(Message::Reset) => break,
            None => panic!("the stream ended without Reset after {} events", got.len()),
        }
    }
    assert!(got.len() <= QUEUE, "{} events buffered", got.len());
    assert_eq!(got, positions[..got.len()], "a gap-free prefix");
    assert!(
        next(&mut idle).await.is_none(),
        "the stream ends after Reset"
    );

    // Later events never reach it; the hub keeps no queue for it.
    let more = engine
        .create(
            &Principal::anonymous(),
            "notes",
            &serde_json::json!({"text": "later"}),
            None,
        )
        .await
        .unwrap();
    drop(more);
    let later = read_all(&engine, *positions.last().unwrap()).await;
    assert_eq!(later.len(), 1);
    hub.publish(later.clone()).await;
    assert_eq!(position(next(&mut fast).await), later[0].position);
    assert!(next(&mut idle).await.is_none());

    // "Refetch, then continue": resuming from the last cursor it got replays the rest
    // (more than one replay page) with no gap and no duplicate, then follows live.
    let resume_from = *got.last().unwrap();
    let mut again = subscribe(&hub, "10.0.0.1", Some(resume_from)).await;
    let mut replayed = Vec::new();
    let want: Vec<Position> = positions[got.len()..]
        .iter()
        .copied()
        .chain([later[0].position])
        .collect();
    while replayed.len() < want.len() {
        replayed.push(position(next(&mut again).await));
    }
    assert_eq!(replayed, want);

    // Shutdown ends the remaining streams.
    hub.close();
    assert!(next(&mut fast).await.is_none());
    assert!(next(&mut again).await.is_none());
    assert_eq!(hub.len(), 0);
}

/// Publishing never waits on a full queue: a batch much larger than `QUEUE` to one
/// idle subscriber is fanned out at once, and the subscriber holds at most `QUEUE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_never_waits_for_an_idle_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let hub = Arc::new(Hub::new(engine.clone()));
    let mut idle = subscribe(&hub, "10.0.0.1", None).await;
    for i in 0..(QUEUE + 10) {
        engine
            .create(
                &Principal::anonymous(),
                "notes",
                &serde_json::json!({"text": format!("n{i}")}),
                None,
            )
            .await
            .unwrap();
    }
    let events = read_all(&engine, Position::default()).await;
    tokio::time::timeout(Duration::from_secs(5), hub.publish(events))
        .await
        .expect("publish does not wait for the idle subscriber");
    assert!(hub.is_empty());
    let mut n = 0;
    let end = loop {
        match next(&mut idle).await {
            Some(Message::Event(_)) => n += 1,
            other => break other,
        }
    };
    assert!(matches!(end, Some(Message::Reset)), "{end:?}");
    assert_eq!(n, QUEUE);
}
