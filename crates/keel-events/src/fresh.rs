//! Fresh deliveries (SQLite): first attempts made straight from the outbox.
//!
//! On SQLite one process is the only relay, so a delivery need not be written before
//! its first attempt. The relay walks the events past each destination's head and
//! sends what it may at once; the delivery's row is written once, when that attempt
//! settles — in the usual case one row, delivered, never updated (a row made pending
//! first and updated after costs the one writer four times the B-tree work). What
//! cannot go at once becomes a pending row, leased as on PostgreSQL: everything for a
//! destination that is disabled or whose breaker is not closed, and an event whose
//! record has an earlier delivery still pending or in flight there (per-record order).
//!
//! The stored position (`_keel_relay_position`) passes an event only once every
//! destination's delivery of it is written (or made a pending row): after a crash
//! what was in flight is sent again, under the same event id — at least once.

use keel_store::Stmt;
use keel_store::events;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The relay's heads; a panic elsewhere while holding them leaves plain numbers.
pub(crate) fn lock(heads: &Mutex<Heads>) -> MutexGuard<'_, Heads> {
    heads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A first attempt's outcome on its way to the store.
#[derive(Debug, Clone)]
pub(crate) struct FreshOutcome {
    pub destination: String,
    pub seq: i64,
    /// It leaves a pending row (to retry): the record's later events queue behind it.
    pub pending: bool,
}

/// Where each destination's first attempts stand, and the position last stored.
#[derive(Debug)]
pub(crate) struct Heads {
    destinations: HashMap<String, Head>,
    /// The position in the store.
    written: i64,
}

#[derive(Debug, Default)]
struct Head {
    /// Every event up to here is handed to this destination: sent, made a pending
    /// row, or not wanted by it.
    seq: i64,
    /// Sent and their rows not yet committed: seq → record id.
    unsettled: BTreeMap<i64, uuid::Uuid>,
    /// This destination may have pending rows: a new event first asks the store
    /// whether its record has one there.
    rows: bool,
    /// Bumped whenever `rows` is set, so a check that found none left can tell
    /// whether rows were made meanwhile.
    rows_epoch: u64,
    /// Events up to here may already have a row for this destination (made before
    /// a restart, past the position then stored): the walk skips those that do.
    rows_until: i64,
}

impl Heads {
    /// Every destination at the stored `position`; `with_rows` names those with
    /// pending rows in the store, `rows_until` the highest event with a row for each.
    pub(crate) fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        position: i64,
        with_rows: &[String],
        rows_until: &HashMap<String, i64>,
    ) -> Self {
        let destinations = names
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    Head {
                        seq: position,
                        unsettled: BTreeMap::new(),
                        rows: with_rows.iter().any(|r| r == n),
                        rows_epoch: 0,
                        rows_until: rows_until.get(n).copied().unwrap_or(0),
                    },
                )
            })
            .collect();
        Self {
            destinations,
            written: position,
        }
    }

    /// The head of `destination` (`None`: not one of this relay's).
    pub(crate) fn head(&self, destination: &str) -> Option<i64> {
        self.destinations.get(destination).map(|h| h.seq)
    }

    /// Every event up to `seq` is handed to `destination`.
    pub(crate) fn advance(&mut self, destination: &str, seq: i64) {
        if let Some(h) = self.destinations.get_mut(destination) {
            h.seq = h.seq.max(seq);
        }
    }

    /// Whether event `seq` may already have a row for `destination` (see
    /// `Head::rows_until`).
    pub(crate) fn may_have_row(&self, destination: &str, seq: i64) -> bool {
        self.destinations
            .get(destination)
            .is_some_and(|h| seq <= h.rows_until)
    }

    /// The position once each destination's head is moved to the given seq and the
    /// given first attempts are on their way: stored with the rows that move them, so
    /// a restart never walks over rows already made.
    pub(crate) fn position_after(&self, heads: &[(String, i64)], sent: &[(&str, i64)]) -> i64 {
        self.destinations
            .iter()
            .map(|(name, h)| {
                let head = heads
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(h.seq, |(_, s)| h.seq.max(*s));
                let first = h
                    .unsettled
                    .keys()
                    .copied()
                    .chain(sent.iter().filter(|(n, _)| n == name).map(|(_, s)| *s))
                    .min();
                first.map_or(head, |first| head.min(first - 1))
            })
            .min()
            .unwrap_or(self.written)
    }

    /// Whether `destination` may have pending rows.
    pub(crate) fn may_have_rows(&self, destination: &str) -> bool {
        self.destinations.get(destination).is_some_and(|h| h.rows)
    }

    /// Pending rows are (about to be) made for `destination`.
    pub(crate) fn made_rows(&mut self, destination: &str) {
        if let Some(h) = self.destinations.get_mut(destination) {
            h.rows = true;
            h.rows_epoch += 1;
        }
    }

    /// For a destination that may have pending rows and has no first attempt
    /// unsettled (whose outcome could make one): the epoch to hand to
    /// [`Heads::forget_rows`] if the store then shows none pending.
    pub(crate) fn rows_epoch_if_idle(&self, destination: &str) -> Option<u64> {
        self.destinations
            .get(destination)
            .filter(|h| h.rows && h.unsettled.is_empty())
            .map(|h| h.rows_epoch)
    }

    /// The store showed no pending rows for `destination`: unless rows were made
    /// since `epoch`, stop asking per event.
    pub(crate) fn forget_rows(&mut self, destination: &str, epoch: u64) {
        if let Some(h) = self.destinations.get_mut(destination)
            && h.rows_epoch == epoch
        {
            h.rows = false;
        }
    }

    /// Whether a first attempt of `record` to `destination` is unsettled.
    pub(crate) fn sending(&self, destination: &str, record: uuid::Uuid) -> bool {
        self.destinations
            .get(destination)
            .is_some_and(|h| h.unsettled.values().any(|r| *r == record))
    }

    /// A first attempt of event `seq` (of `record`) to `destination` is on its way.
    pub(crate) fn sent(&mut self, destination: &str, seq: i64, record: uuid::Uuid) {
        if let Some(h) = self.destinations.get_mut(destination) {
            h.unsettled.insert(seq, record);
        }
    }

    /// The row of that attempt is committed.
    pub(crate) fn settled(&mut self, destination: &str, seq: i64) {
        if let Some(h) = self.destinations.get_mut(destination) {
            h.unsettled.remove(&seq);
        }
    }

    /// The highest seq up to which every destination's deliveries are written.
    pub(crate) fn position(&self) -> i64 {
        self.destinations
            .values()
            .map(|h| {
                h.unsettled
                    .keys()
                    .next()
                    .map_or(h.seq, |first| h.seq.min(first - 1))
            })
            .min()
            .unwrap_or(self.written)
    }

    /// The statement that stores the position, if it moved since last stored.
    pub(crate) fn position_update(&self) -> Option<(i64, Stmt)> {
        let position = self.position();
        (position > self.written).then(|| (position, events::set_relay_position(position)))
    }

    /// The position `seq` is committed.
    pub(crate) fn wrote(&mut self, seq: i64) {
        self.written = self.written.max(seq);
    }

    /// For the pending gauge (what has no row yet holds none to count): how many
    /// first attempts to `destination` are unsettled, the first seq not yet settled
    /// there (unsettled, or past the head), and its head.
    pub(crate) fn backlog(&self, destination: &str) -> Option<(usize, i64, i64)> {
        self.destinations.get(destination).map(|h| {
            let first = h.unsettled.keys().next().copied().unwrap_or(h.seq + 1);
            (h.unsettled.len(), first, h.seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn the_position_waits_for_the_slowest_unsettled_attempt() {
        let mut h = Heads::new(["a", "b"], 10, &[], &HashMap::new());
        assert_eq!(h.position(), 10);
        assert!(h.position_update().is_none());
        h.sent("a", 11, id(1));
        h.sent("a", 12, id(2));
        h.advance("a", 15);
        h.advance("b", 14);
        // a: 11 is unsettled, so only up to 10.
        assert_eq!(h.position(), 10);
        h.settled("a", 11);
        // a: 12 unsettled (11 written); b: up to 14.
        assert_eq!(h.position(), 11);
        // Moving b to 20 and sending a's 16: a still holds at 11.
        assert_eq!(h.position_after(&[("b".into(), 20)], &[("a", 16)]), 11);
        h.settled("a", 12);
        assert_eq!(h.position(), 14);
        let (p, _) = h.position_update().unwrap();
        assert_eq!(p, 14);
        h.wrote(14);
        assert!(h.position_update().is_none());
    }

    #[test]
    fn a_record_in_flight_is_known_per_destination() {
        let mut h = Heads::new(["a", "b"], 0, &["b".to_string()], &HashMap::new());
        assert!(!h.may_have_rows("a"));
        assert!(h.may_have_rows("b"));
        h.sent("a", 1, id(7));
        assert!(h.sending("a", id(7)));
        assert!(!h.sending("b", id(7)));
        assert!(!h.sending("a", id(8)));
        h.settled("a", 1);
        assert!(!h.sending("a", id(7)));
        assert_eq!(h.head("c"), None);
        assert_eq!(h.backlog("a"), Some((0, 1, 0)));
        h.sent("a", 3, id(9));
        h.advance("a", 5);
        assert_eq!(h.backlog("a"), Some((1, 3, 5)));
    }

    #[test]
    fn a_restart_knows_which_events_may_have_rows() {
        let until = HashMap::from([("a".to_string(), 7)]);
        let h = Heads::new(["a", "b"], 3, &[], &until);
        assert!(h.may_have_row("a", 7));
        assert!(!h.may_have_row("a", 8));
        assert!(!h.may_have_row("b", 4));
        // Nothing sent and both heads moved: the position is the lower head.
        assert_eq!(
            h.position_after(&[("a".into(), 9), ("b".into(), 6)], &[]),
            6
        );
    }

    #[test]
    fn rows_are_forgotten_only_when_none_were_made_since_the_check() {
        let mut h = Heads::new(["a"], 0, &[], &HashMap::new());
        assert_eq!(h.rows_epoch_if_idle("a"), None);
        h.made_rows("a");
        let epoch = h.rows_epoch_if_idle("a").unwrap();
        // Rows made while the store was asked: the answer is stale.
        h.made_rows("a");
        h.forget_rows("a", epoch);
        assert!(h.may_have_rows("a"));
        let epoch = h.rows_epoch_if_idle("a").unwrap();
        h.forget_rows("a", epoch);
        assert!(!h.may_have_rows("a"));
        // An attempt in flight could still leave a pending row: no check then.
        h.made_rows("a");
        h.sent("a", 1, id(1));
        assert_eq!(h.rows_epoch_if_idle("a"), None);
    }
}
