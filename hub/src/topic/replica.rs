//! The replica state machine (cluster mode): this node's copy of a channel
//! whose stream is sequenced by its owner on another node (or this one).
//!
//! A pure type: inputs in (a subscribe, a sync result, a delivery), an
//! [`Action`] out for the topic actor to carry out. No actor, no I/O, no
//! clock: the caller passes the stream and `now`. The replica owns the
//! decisions about the stream: it replaces it with the owner's at a sync and
//! appends deliveries with [`Stream::append_at`].
//!
//! | phase | input | action | next phase |
//! | --- | --- | --- | --- |
//! | Unsynced | subscribe | `StartSync` | Syncing (it waits) |
//! | Unsynced | delivery | `Ignore` (no subscriber relies on the copy) | Unsynced |
//! | Syncing | subscribe | `Wait` | Syncing |
//! | Syncing | delivery | `Ignore` (buffered); buffer full: `StartSync` again | Syncing |
//! | Syncing | sync Ok | `Fanout` of the buffered ones after the top, `AnswerPending`; a gap among them: `StartSync` again | Synced (Syncing) |
//! | Syncing | sync Err | `FailPending` | Unsynced |
//! | Synced | subscribe | `Subscribe` | Synced |
//! | Synced | delivery at top + 1 | `Fanout` (appended) | Synced |
//! | Synced | delivery at or below the top | `Ignore` (a repeat) | Synced |
//! | Synced | delivery past top + 1, or of a new epoch | `DropSubscribers` (a new epoch: the old one is remembered) | Unsynced |
//!
//! Guarantees:
//! - One sync at a time: a subscribe while syncing waits for the sync in
//!   flight; the result of a sync that was restarted is ignored ([`SyncId`]).
//! - Only a synced replica has subscribers: the topic adds them only when told
//!   to ([`Action::Subscribe`], [`Action::AnswerPending`]), and every way out of
//!   `Synced` drops them ([`Action::DropSubscribers`]).
//! - While synced, the stream is the owner's without a gap: a publication is
//!   fanned out only after it was appended at the next offset; a repeat is
//!   dropped silently; a gap or a new epoch drops the subscribers (unsubscribe
//!   2500: they resubscribe and recover) and unsyncs.
//! - Bounded: at most [`MAX_SYNC_BUFFER`] deliveries are kept while syncing
//!   (past it the sync restarts) and [`MAX_PREDECESSORS`] replaced epochs.

use std::collections::VecDeque;
use std::time::Instant;

use protocol::codes::ErrorCode;
use protocol::proto::Publication;

use super::history::Stream;
use super::OwnerStream;

/// Predecessor epochs remembered per replica.
pub const MAX_PREDECESSORS: usize = 4;
/// Deliveries kept while a sync is under way; past this the sync restarts.
pub const MAX_SYNC_BUFFER: usize = 10_000;

/// Names one sync: its result is applied only while it is the sync in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncId(u64);

/// What the topic carries out for an input. `P` is a subscribe waiting for its
/// answer (for the topic: the subscribe's arguments and reply port).
#[derive(Debug, PartialEq)]
pub enum Action<P> {
    /// Nothing to do: a delivery kept for the sync in flight, or one no
    /// subscriber relies on, or a repeat already applied.
    Ignore,
    /// The subscribe is kept until the sync in flight ends.
    Wait,
    /// Ask the owner for its stream; hand the result to [`Replica::synced`]
    /// with this id.
    StartSync(SyncId),
    /// Subscribe now: the copy is synced.
    Subscribe(P),
    /// Fan this publication out (it is in the stream already).
    Fanout(Publication),
    /// Subscribe these now, in order: they waited for the sync that just ended.
    AnswerPending(Vec<P>),
    /// Answer these with the error of the sync they waited for.
    FailPending(Vec<P>, ErrorCode),
    /// Remove every subscriber and tell each it lost the channel (2500): the
    /// copy lost continuity with the owner's stream.
    DropSubscribers,
}

enum Phase<P> {
    /// No subscriber relies on the copy; deliveries are ignored.
    Unsynced,
    /// A sync is in flight: deliveries are buffered (epoch, publication), subscribes wait.
    Syncing { sync: SyncId, buffer: Vec<(String, Publication)>, pending: Vec<P> },
    /// The stream mirrors the owner's (same epoch, no gap since the sync).
    Synced,
}

/// A channel's replica state; see the module documentation.
pub struct Replica<P> {
    phase: Phase<P>,
    /// Epochs this copy saw replaced by a new owner's (oldest first). A
    /// subscriber dropped at that change resubscribes from its predecessor
    /// epoch: it gets `recovered: false` and the new stream from its start.
    predecessors: VecDeque<String>,
    next_sync: u64,
}

impl<P> Default for Replica<P> {
    fn default() -> Self {
        Replica { phase: Phase::Unsynced, predecessors: VecDeque::new(), next_sync: 0 }
    }
}

impl<P> Replica<P> {
    /// True when the copy mirrors the owner's stream.
    #[cfg(test)]
    pub fn is_synced(&self) -> bool {
        matches!(self.phase, Phase::Synced)
    }

    /// True when `epoch` is one this copy saw replaced by a new owner's.
    pub fn is_predecessor(&self, epoch: &str) -> bool {
        self.predecessors.iter().any(|e| e == epoch)
    }

    /// A subscribe arrives (the topic is not retiring).
    pub fn subscribe(&mut self, subscribe: P) -> Action<P> {
        match &mut self.phase {
            Phase::Synced => Action::Subscribe(subscribe),
            Phase::Syncing { pending, .. } => {
                pending.push(subscribe);
                Action::Wait
            }
            Phase::Unsynced => self.start_sync(vec![subscribe]),
        }
    }

    /// A publication sequenced by the owner, in `epoch`.
    pub fn deliver(&mut self, stream: &mut Stream, epoch: String, publication: Publication, now: Instant) -> Action<P> {
        match &mut self.phase {
            // No subscriber relies on this copy.
            Phase::Unsynced => Action::Ignore,
            Phase::Syncing { buffer, .. } if buffer.len() < MAX_SYNC_BUFFER => {
                buffer.push((epoch, publication));
                Action::Ignore
            }
            Phase::Syncing { pending, .. } => {
                let pending = std::mem::take(pending);
                self.start_sync(pending)
            }
            Phase::Synced => self.apply(stream, epoch, publication, now),
        }
    }

    /// The result of sync `sync`: the owner's stream, or why it could not be had.
    pub fn synced(
        &mut self,
        stream: &mut Stream,
        sync: SyncId,
        result: Result<OwnerStream, ErrorCode>,
        now: Instant,
    ) -> Vec<Action<P>> {
        let Phase::Syncing { sync: current, .. } = &self.phase else { return Vec::new() };
        if *current != sync {
            return Vec::new(); // a sync that was restarted
        }
        let Phase::Syncing { buffer, pending, .. } = std::mem::replace(&mut self.phase, Phase::Unsynced) else {
            unreachable!("matched Syncing just above")
        };
        let (epoch, top, publications) = match result {
            Ok(owner) => owner,
            Err(code) => return vec![Action::FailPending(pending, code)],
        };
        stream.replace(epoch.clone(), top, publications, now);
        self.phase = Phase::Synced;
        let mut actions = Vec::new();
        for (at_epoch, publication) in buffer {
            if at_epoch != epoch || publication.offset <= top {
                continue; // already in the owner's stream, or of an older one
            }
            match self.apply(stream, at_epoch, publication, now) {
                Action::DropSubscribers => {
                    // A gap in what arrived meanwhile: nobody subscribed yet, so
                    // sync again rather than answer from a copy with a hole.
                    actions.push(self.start_sync(pending));
                    return actions;
                }
                Action::Ignore => {}
                action => actions.push(action),
            }
        }
        actions.push(Action::AnswerPending(pending));
        actions
    }

    /// A delivery to the synced copy.
    fn apply(&mut self, stream: &mut Stream, epoch: String, publication: Publication, now: Instant) -> Action<P> {
        if !stream.enabled() {
            return Action::Fanout(publication);
        }
        if epoch != stream.epoch() {
            // A new owner started a new epoch: subscribers resubscribe and learn
            // that they cannot recover the old one (but get the new one whole).
            self.predecessors.push_back(stream.epoch().to_string());
            if self.predecessors.len() > MAX_PREDECESSORS {
                self.predecessors.pop_front();
            }
            self.phase = Phase::Unsynced;
            return Action::DropSubscribers;
        }
        if stream.append_at(publication.clone(), now) {
            Action::Fanout(publication)
        } else if publication.offset <= stream.top() {
            Action::Ignore // a redelivery already applied
        } else {
            self.phase = Phase::Unsynced;
            Action::DropSubscribers
        }
    }

    fn start_sync(&mut self, pending: Vec<P>) -> Action<P> {
        self.next_sync += 1;
        let sync = SyncId(self.next_sync);
        self.phase = Phase::Syncing { sync, buffer: Vec::new(), pending };
        Action::StartSync(sync)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::codes;

    use super::*;

    fn stream() -> Stream {
        Stream::new(100, Duration::from_secs(60))
    }

    fn publication(offset: u64) -> Publication {
        Publication { offset, data: bytes::Bytes::from(format!("{offset}")), ..Default::default() }
    }

    fn owner(epoch: &str, top: u64, first: u64) -> Result<OwnerStream, ErrorCode> {
        Ok((epoch.to_string(), top, (first..=top).map(publication).collect()))
    }

    fn offsets(actions: &[Action<&str>]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Fanout(p) => Some(p.offset),
                _ => None,
            })
            .collect()
    }

    fn sync_id(action: Action<&str>) -> SyncId {
        match action {
            Action::StartSync(sync) => sync,
            other => panic!("expected StartSync, got {other:?}"),
        }
    }

    /// A replica synced to epoch "e1" at top 3.
    fn synced(now: Instant) -> (Replica<&'static str>, Stream) {
        let (mut replica, mut stream) = (Replica::default(), stream());
        let sync = sync_id(replica.subscribe("a"));
        assert_eq!(replica.synced(&mut stream, sync, owner("e1", 3, 1), now), vec![Action::AnswerPending(vec!["a"])]);
        (replica, stream)
    }

    #[test]
    fn a_subscribe_before_the_sync_starts_one_sync_and_every_waiting_subscribe_is_answered_after_it() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), stream());
        let sync = sync_id(replica.subscribe("a"));
        assert_eq!(replica.subscribe("b"), Action::Wait, "no second sync while one is in flight");
        assert!(!replica.is_synced());
        let actions = replica.synced(&mut stream, sync, owner("e1", 5, 2), now);
        assert_eq!(actions, vec![Action::AnswerPending(vec!["a", "b"])]);
        assert!(replica.is_synced());
        assert_eq!((stream.epoch(), stream.top()), ("e1", 5));
        assert_eq!(stream.publications(now).len(), 4);
        assert_eq!(replica.subscribe("c"), Action::Subscribe("c"), "synced: answered at once");
        assert_eq!(replica.synced(&mut stream, sync, owner("e2", 9, 1), now), vec![], "a result comes once");
        assert_eq!(stream.epoch(), "e1");
    }

    #[test]
    fn deliveries_while_syncing_are_buffered_and_only_those_after_the_synced_top_of_its_epoch_apply() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), stream());
        let sync = sync_id(replica.subscribe("a"));
        for (epoch, offset) in [("e0", 7), ("e1", 2), ("e1", 3), ("e1", 4), ("e1", 4), ("e1", 5)] {
            assert_eq!(replica.deliver(&mut stream, epoch.into(), publication(offset), now), Action::Ignore);
        }
        let actions = replica.synced(&mut stream, sync, owner("e1", 3, 1), now);
        assert_eq!(
            offsets(&actions),
            vec![4, 5],
            "e0 is another stream, 2 and 3 are in the sync, the second 4 a repeat"
        );
        assert_eq!(actions.last(), Some(&Action::AnswerPending(vec!["a"])), "answered from the stream with 4 and 5");
        assert_eq!(stream.top(), 5);
        let fanout = replica.deliver(&mut stream, "e1".into(), publication(6), now);
        assert_eq!(fanout, Action::Fanout(publication(6)));
        assert_eq!(stream.top(), 6);
    }

    #[test]
    fn a_gap_in_what_arrived_while_syncing_syncs_again_and_keeps_the_subscribes_waiting() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), stream());
        let first = sync_id(replica.subscribe("a"));
        replica.deliver(&mut stream, "e1".into(), publication(4), now);
        replica.deliver(&mut stream, "e1".into(), publication(6), now);
        let actions = replica.synced(&mut stream, first, owner("e1", 3, 1), now);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(offsets(&actions), vec![4]);
        let Some(Action::StartSync(second)) = actions.into_iter().last() else { panic!("no new sync") };
        assert_ne!(second, first);
        assert!(!replica.is_synced());
        let actions = replica.synced(&mut stream, second, owner("e1", 6, 1), now);
        assert_eq!(actions, vec![Action::AnswerPending(vec!["a"])]);
    }

    #[test]
    fn a_full_buffer_restarts_the_sync_and_the_result_of_the_first_one_is_ignored() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), stream());
        let first = sync_id(replica.subscribe("a"));
        for offset in 1..=MAX_SYNC_BUFFER as u64 {
            assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(offset), now), Action::Ignore);
        }
        let overflow = MAX_SYNC_BUFFER as u64 + 1;
        let second = sync_id(replica.deliver(&mut stream, "e1".into(), publication(overflow), now));
        assert_ne!(second, first);
        assert_eq!(replica.subscribe("b"), Action::Wait, "the restarted sync is in flight");
        assert_eq!(replica.synced(&mut stream, first, owner("e1", 3, 1), now), vec![], "superseded");
        assert!(!replica.is_synced());
        replica.deliver(&mut stream, "e1".into(), publication(overflow + 1), now);
        let actions = replica.synced(&mut stream, second, owner("e1", overflow, overflow - 9), now);
        assert_eq!(offsets(&actions), vec![overflow + 1], "the buffer holds only what came after the restart");
        assert_eq!(actions.last(), Some(&Action::AnswerPending(vec!["a", "b"])));
    }

    #[test]
    fn a_gap_drops_the_subscribers_and_unsyncs() {
        let now = Instant::now();
        let (mut replica, mut stream) = synced(now);
        assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(5), now), Action::DropSubscribers);
        assert!(!replica.is_synced());
        assert_eq!(stream.top(), 3, "nothing applied");
        assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(6), now), Action::Ignore);
        assert!(!replica.is_predecessor("e1"), "the epoch did not change");
        assert!(matches!(replica.subscribe("b"), Action::StartSync(_)), "the next subscribe syncs again");
    }

    #[test]
    fn a_repeat_is_dropped_silently() {
        let now = Instant::now();
        let (mut replica, mut stream) = synced(now);
        for offset in [1, 3] {
            assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(offset), now), Action::Ignore);
        }
        assert!(replica.is_synced());
        assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(4), now), Action::Fanout(publication(4)));
        assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(4), now), Action::Ignore);
        assert_eq!(stream.top(), 4);
    }

    #[test]
    fn an_epoch_change_drops_the_subscribers_and_remembers_the_last_four_epochs_replaced() {
        let now = Instant::now();
        let (mut replica, mut stream) = synced(now);
        assert!(!replica.is_predecessor("e1"));
        assert_eq!(replica.deliver(&mut stream, "e2".into(), publication(1), now), Action::DropSubscribers);
        assert!(!replica.is_synced());
        assert!(replica.is_predecessor("e1"), "a subscriber recovering from e1 is recognized");
        assert!(!replica.is_predecessor("e2"));
        // Four more owners, each replacing the last.
        for n in 2..=5 {
            let sync = sync_id(replica.subscribe("a"));
            let epoch = format!("e{n}");
            let actions = replica.synced(&mut stream, sync, owner(&epoch, 1, 1), now);
            assert_eq!(actions, vec![Action::AnswerPending(vec!["a"])]);
            let next = format!("e{}", n + 1);
            assert_eq!(replica.deliver(&mut stream, next, publication(1), now), Action::DropSubscribers);
        }
        assert!(!replica.is_predecessor("e1"), "at most {MAX_PREDECESSORS} remembered");
        assert!((2..=5).all(|n| replica.is_predecessor(&format!("e{n}"))));
    }

    #[test]
    fn a_sync_error_fails_the_waiting_subscribes_with_it() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), stream());
        let sync = sync_id(replica.subscribe("a"));
        replica.subscribe("b");
        let error = codes::INTERNAL.temporary();
        assert_eq!(
            replica.synced(&mut stream, sync, Err(error), now),
            vec![Action::FailPending(vec!["a", "b"], error)]
        );
        assert!(!replica.is_synced());
        assert!(matches!(replica.subscribe("c"), Action::StartSync(_)), "the next subscribe tries again");
    }

    #[test]
    fn deliveries_before_any_sync_are_ignored() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::<&str>::default(), stream());
        let top = stream.top();
        for offset in [1, 2, 5] {
            assert_eq!(replica.deliver(&mut stream, "e1".into(), publication(offset), now), Action::Ignore);
        }
        assert_eq!(stream.top(), top);
        assert!(!replica.is_predecessor(stream.epoch()));
    }

    #[test]
    fn without_history_every_delivery_to_a_synced_copy_is_fanned_out() {
        let now = Instant::now();
        let (mut replica, mut stream) = (Replica::default(), Stream::new(0, Duration::ZERO));
        let sync = sync_id(replica.subscribe("a"));
        replica.synced(&mut stream, sync, Ok((String::new(), 0, Vec::new())), now);
        for (epoch, offset) in [("", 0), ("x", 0), ("", 0)] {
            assert_eq!(
                replica.deliver(&mut stream, epoch.into(), publication(offset), now),
                Action::Fanout(publication(offset))
            );
        }
    }
}
