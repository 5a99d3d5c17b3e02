//! The outbox: a session's bounded queue of encoded messages, counted in bytes.
//!
//! Producers (the session actor for replies, topic actors for pushes) call
//! [`Outbox::push`], which never waits: when the message does not fit (the
//! rule is on [`Outbox`]), the outbox drops its queue, marks itself closed
//! with 3008 "slow" and wakes the writer; the producer just goes on with the
//! next subscriber. The
//! one consumer (the transport's writer) calls [`Outbox::next`], which waits for
//! work and then takes *everything* queued as one frame, so one write carries
//! many messages under load.
//!
//! A close ([`Outbox::close`]) lets queued messages out first (a shutdown
//! still delivers what was accepted), then yields the disconnect code once.
//! After a close every push is refused.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use protocol::codec::FrameBuilder;
use protocol::codes::{self, DisconnectCode};
use protocol::Encoding;
use tokio::sync::Notify;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The outbox is closed (the session is going away); nothing was queued.
    Closed,
    /// This push overflowed the outbox: it is now closed with 3008 "slow".
    Slow,
}

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Write this frame (one or more messages).
    Frame(Bytes),
    /// Everything is written: close the connection with this code.
    Close(DisconnectCode),
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    close: Option<DisconnectCode>,
    close_taken: bool,
    /// [`Outbox::hold`]: queued messages wait for [`Outbox::release_front`].
    held: bool,
}

/// A session's bounded queue of encoded messages.
///
/// **The bound.** Bytes are counted as encoded messages (`Bytes::len`; a
/// Protobuf message includes its length prefix). A push of `len` bytes onto
/// `queued` bytes is accepted when
///
/// - `queued + len <= limit` (it fits), or
/// - `queued <= limit` and `len <= headroom` (the queue is within its limit and
///   this one message may pass it).
///
/// So at most `limit + headroom` bytes are ever queued, and a client that
/// keeps up is never closed because one message is large: transports use
/// `headroom = limit` ([`Outbox::for_client`]) and the hub never accepts a
/// publication, nor sends a reply, whose encoding is larger than `limit`
/// (`crate::limits`). A client whose queue is already past `limit` when the
/// next message comes has fallen behind: 3008 "slow". [`Outbox::new`] has no
/// headroom (`queued + len <= limit` only).
///
/// Framing adds to each message at write time at most: 1 byte (`\n`) in a
/// JSON frame, nothing in a Protobuf frame (the prefix is counted), `data: `
/// and `\n\n` (8 bytes) on SSE, one `\n` on an HTTP stream.
#[derive(Debug)]
pub struct Outbox {
    encoding: Encoding,
    limit: usize,
    headroom: usize,
    state: Mutex<State>,
    notify: Notify,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes of queued messages (no headroom).
    pub fn new(encoding: Encoding, limit: usize) -> Self {
        Outbox::with_headroom(encoding, limit, 0)
    }

    /// A client's outbox: `limit` (`client_outbox_bytes`) with one message of
    /// up to `limit` bytes of headroom, so at most `2 × limit` bytes queued.
    pub fn for_client(encoding: Encoding, limit: usize) -> Self {
        Outbox::with_headroom(encoding, limit, limit)
    }

    /// An outbox with `limit` bytes plus one message of up to `headroom` bytes
    /// past it (the rule is on [`Outbox`]).
    pub fn with_headroom(encoding: Encoding, limit: usize, headroom: usize) -> Self {
        Outbox {
            encoding,
            limit,
            headroom,
            state: Mutex::new(State { queue: VecDeque::new(), bytes: 0, close: None, close_taken: false, held: false }),
            notify: Notify::new(),
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The largest single message this outbox can ever accept (bytes):
    /// `max(limit, headroom)`.
    pub fn max_message(&self) -> usize {
        self.limit.max(self.headroom)
    }

    fn fits(&self, queued: usize, len: usize) -> bool {
        queued.saturating_add(len) <= self.limit || (queued <= self.limit && len <= self.headroom)
    }

    /// Queues one encoded message without waiting. A message that does not
    /// fit (see [`Outbox`]) closes the outbox with 3008 "slow".
    pub fn push(&self, message: Bytes) -> Result<(), PushError> {
        self.push_all(std::slice::from_ref(&message))
    }

    /// Queues several messages as one unit (their total size is checked as
    /// one message's): all of them, or none and the outbox closes with 3008.
    pub fn push_all(&self, messages: &[Bytes]) -> Result<(), PushError> {
        let len: usize = messages.iter().map(Bytes::len).sum();
        let mut state = self.state.lock();
        self.admit(&mut state, len)?;
        let wake = state.queue.is_empty();
        state.bytes += len;
        state.queue.extend(messages.iter().cloned());
        drop(state);
        if wake {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Whether `len` more bytes may be queued (the rule is on [`Outbox`]):
    /// refused on a closed outbox; one that does not fit drops the queue,
    /// closes with 3008 "slow" and wakes the writer.
    fn admit(&self, state: &mut State, len: usize) -> Result<(), PushError> {
        if state.close.is_some() {
            return Err(PushError::Closed);
        }
        if !self.fits(state.bytes, len) {
            state.queue.clear();
            state.bytes = 0;
            state.close = Some(codes::SLOW);
            self.notify.notify_one();
            return Err(PushError::Slow);
        }
        Ok(())
    }

    /// Holds what is queued from now on: the writer takes nothing (pushes are
    /// still accepted and bounded as usual) until [`Outbox::release_front`]
    /// puts one message ahead of them. The session holds its outbox while it
    /// subscribes a connecting client server-side, so that the connect reply,
    /// which carries those subscriptions, comes before their publications. A
    /// close ends the hold: the queue goes out, then the code.
    pub fn hold(&self) {
        self.state.lock().held = true;
    }

    /// Ends a [`Outbox::hold`]: queues `message` ahead of what was queued
    /// meanwhile (bounded like a push: it closes the outbox with 3008 when it
    /// does not fit) and wakes the writer.
    pub fn release_front(&self, message: Bytes) -> Result<(), PushError> {
        let mut state = self.state.lock();
        state.held = false;
        self.admit(&mut state, message.len())?;
        state.bytes += message.len();
        state.queue.push_front(message);
        drop(state);
        self.notify.notify_one();
        Ok(())
    }

    /// Closes the outbox: queued messages still go out, then `code`. The first
    /// close wins; later ones are ignored.
    pub fn close(&self, code: DisconnectCode) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(code);
            drop(state);
            self.notify.notify_one();
        }
    }

    /// The close code, once the outbox is closed.
    pub fn closed(&self) -> Option<DisconnectCode> {
        self.state.lock().close
    }

    /// Queued bytes (for tests and metrics).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Waits for work: everything queued as one frame, or the close code once
    /// the queue is empty. After the close was returned it waits forever, so a
    /// writer must stop calling it then. Cancel-safe: nothing is taken from the
    /// queue until the future completes.
    pub async fn next(&self, builder: &mut FrameBuilder) -> Next {
        loop {
            if let Some(next) = self.try_next(builder) {
                return next;
            }
            self.notify.notified().await;
        }
    }

    /// Like [`Outbox::next`], but once something is queued waits `delay` more
    /// before taking it, so that messages arriving meanwhile share the frame.
    /// A close is not delayed. Cancel-safe like `next`.
    pub async fn next_after(&self, builder: &mut FrameBuilder, delay: std::time::Duration) -> Next {
        if delay.is_zero() {
            return self.next(builder).await;
        }
        loop {
            let notified = self.notify.notified();
            let (queued, closing) = {
                let state = self.state.lock();
                (!state.queue.is_empty() && !state.held, state.close.is_some())
            };
            if closing || queued {
                if queued && !closing {
                    tokio::time::sleep(delay).await;
                }
                if let Some(next) = self.try_next(builder) {
                    return next;
                }
            }
            notified.await;
        }
    }

    /// Like [`Outbox::next`] without waiting.
    pub fn try_next(&self, builder: &mut FrameBuilder) -> Option<Next> {
        let mut state = self.state.lock();
        if state.held && state.close.is_none() {
            return None;
        }
        if state.queue.len() == 1 {
            // One message is a frame by itself: send the shared bytes, no copy.
            state.bytes = 0;
            return state.queue.pop_front().map(Next::Frame);
        }
        if !state.queue.is_empty() {
            for message in state.queue.drain(..) {
                builder.push(&message);
            }
            state.bytes = 0;
            drop(state);
            return Some(Next::Frame(builder.take()));
        }
        match state.close {
            Some(code) if !state.close_taken => {
                state.close_taken = true;
                Some(Next::Close(code))
            }
            _ => None,
        }
    }

    /// The frame encoding builder matching this outbox.
    pub fn frame_builder(&self) -> FrameBuilder {
        FrameBuilder::new(self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(next: Option<Next>) -> Bytes {
        match next {
            Some(Next::Frame(bytes)) => bytes,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn drains_everything_queued_into_one_frame() {
        let outbox = Outbox::new(Encoding::Json, 1024);
        let mut builder = outbox.frame_builder();
        outbox.push(Bytes::from_static(b"{\"a\":1}")).unwrap();
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{\"a\":1}\n{}");
        assert_eq!(outbox.try_next(&mut builder), None);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn a_hold_keeps_the_queue_until_the_release_puts_its_message_first() {
        let outbox = Outbox::new(Encoding::Json, 1024);
        let mut builder = outbox.frame_builder();
        outbox.hold();
        outbox.push(Bytes::from_static(b"{\"pub\":1}")).unwrap();
        outbox.push(Bytes::from_static(b"{\"pub\":2}")).unwrap();
        assert_eq!(outbox.try_next(&mut builder), None, "held");
        outbox.release_front(Bytes::from_static(b"{\"connect\":{}}")).unwrap();
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{\"connect\":{}}\n{\"pub\":1}\n{\"pub\":2}");
        // Released for good.
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{}");
    }

    #[test]
    fn a_held_outbox_is_bounded_and_a_close_ends_the_hold() {
        let outbox = Outbox::new(Encoding::Json, 10);
        let mut builder = outbox.frame_builder();
        outbox.hold();
        outbox.push(Bytes::from_static(b"123456")).unwrap();
        // The release's message counts against the bound like a push.
        assert_eq!(outbox.release_front(Bytes::from_static(b"123456")), Err(PushError::Slow));
        assert_eq!(outbox.try_next(&mut builder), Some(Next::Close(codes::SLOW)));

        let outbox = Outbox::new(Encoding::Json, 1024);
        outbox.hold();
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        outbox.close(codes::SHUTDOWN);
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{}");
        assert_eq!(outbox.try_next(&mut builder), Some(Next::Close(codes::SHUTDOWN)));
        assert_eq!(outbox.release_front(Bytes::from_static(b"{}")), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn next_after_waits_for_the_release() {
        let outbox = std::sync::Arc::new(Outbox::new(Encoding::Json, 1024));
        outbox.hold();
        outbox.push(Bytes::from_static(b"{\"pub\":1}")).unwrap();
        let writer = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut builder = outbox.frame_builder();
                outbox.next_after(&mut builder, std::time::Duration::from_millis(1)).await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the writer waits while the outbox is held");
        outbox.release_front(Bytes::from_static(b"{\"connect\":{}}")).unwrap();
        let next = writer.await.expect("the writer task");
        assert_eq!(next, Next::Frame(Bytes::from_static(b"{\"connect\":{}}\n{\"pub\":1}")));
    }

    #[test]
    fn overflow_closes_with_slow_and_drops_the_queue() {
        let outbox = Outbox::new(Encoding::Json, 10);
        let mut builder = outbox.frame_builder();
        outbox.push(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(outbox.push(Bytes::from_static(b"123456")), Err(PushError::Slow));
        assert_eq!(outbox.push(Bytes::from_static(b"1")), Err(PushError::Closed));
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(outbox.try_next(&mut builder), Some(Next::Close(codes::SLOW)));
        assert_eq!(outbox.try_next(&mut builder), None);
    }

    #[test]
    fn headroom_lets_one_message_pass_the_limit_while_the_queue_is_within_it() {
        let outbox = Outbox::with_headroom(Encoding::Json, 10, 20);
        let mut builder = outbox.frame_builder();
        assert_eq!(outbox.max_message(), 20);
        // 6 + 20 > 10, but 6 <= 10 and 20 <= headroom: accepted (26 queued).
        outbox.push(Bytes::from_static(b"123456")).unwrap();
        outbox.push(Bytes::from(vec![b'x'; 20])).unwrap();
        assert_eq!(outbox.queued_bytes(), 26);
        // Now past the limit: the next message, however small, is "slow".
        assert_eq!(outbox.push(Bytes::from_static(b"1")), Err(PushError::Slow));
        assert_eq!(outbox.try_next(&mut builder), Some(Next::Close(codes::SLOW)));
    }

    #[test]
    fn headroom_never_admits_a_message_larger_than_itself() {
        let outbox = Outbox::with_headroom(Encoding::Json, 10, 20);
        assert_eq!(outbox.push(Bytes::from(vec![b'x'; 21])), Err(PushError::Slow));
        let client = Outbox::for_client(Encoding::Json, 10);
        assert_eq!(client.max_message(), 10);
        client.push(Bytes::from(vec![b'x'; 10])).unwrap();
        client.push(Bytes::from(vec![b'x'; 10])).unwrap();
        assert_eq!(client.queued_bytes(), 20, "the bound is limit + one message of up to limit bytes");
        assert_eq!(client.push(Bytes::from_static(b"1")), Err(PushError::Slow));
    }

    #[test]
    fn push_all_queues_a_group_as_one_message_or_nothing() {
        let outbox = Outbox::with_headroom(Encoding::Json, 10, 20);
        let mut builder = outbox.frame_builder();
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        let group = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{\"b\":2}")];
        outbox.push_all(&group).unwrap();
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{}\n{\"a\":1}\n{\"b\":2}");
        let too_big = [Bytes::from(vec![b'x'; 12]), Bytes::from(vec![b'x'; 12])];
        assert_eq!(outbox.push_all(&too_big), Err(PushError::Slow));
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn close_flushes_queued_messages_first_and_first_close_wins() {
        let outbox = Outbox::new(Encoding::Json, 100);
        let mut builder = outbox.frame_builder();
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        outbox.close(codes::SHUTDOWN);
        outbox.close(codes::NO_PONG);
        assert_eq!(&frame(outbox.try_next(&mut builder))[..], b"{}");
        assert_eq!(outbox.try_next(&mut builder), Some(Next::Close(codes::SHUTDOWN)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_delay_gathers_what_arrives_meanwhile_into_one_frame() {
        let outbox = std::sync::Arc::new(Outbox::new(Encoding::Json, 100));
        let writer = outbox.clone();
        let task = tokio::spawn(async move {
            let mut builder = FrameBuilder::new(Encoding::Json);
            writer.next_after(&mut builder, std::time::Duration::from_millis(20)).await
        });
        outbox.push(Bytes::from_static(b"{\"a\":1}")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        outbox.push(Bytes::from_static(b"{\"a\":2}")).unwrap();
        assert_eq!(task.await.unwrap(), Next::Frame(Bytes::from_static(b"{\"a\":1}\n{\"a\":2}")));
        // A close is not delayed.
        outbox.close(codes::SHUTDOWN);
        let mut builder = FrameBuilder::new(Encoding::Json);
        assert_eq!(
            outbox.next_after(&mut builder, std::time::Duration::from_secs(60)).await,
            Next::Close(codes::SHUTDOWN)
        );
    }

    #[tokio::test]
    async fn next_wakes_on_push_from_another_task() {
        let outbox = std::sync::Arc::new(Outbox::new(Encoding::Protobuf, 100));
        let producer = outbox.clone();
        let task = tokio::spawn(async move {
            let mut builder = FrameBuilder::new(Encoding::Protobuf);
            producer.next(&mut builder).await
        });
        tokio::task::yield_now().await;
        outbox.push(Bytes::from_static(&[1, 8])).unwrap();
        assert_eq!(task.await.unwrap(), Next::Frame(Bytes::from_static(&[1, 8])));
    }
}
