//! The response side shared by the streaming transports (SSE, HTTP-stream):
//! a body stream that drains a session's outbox.
//!
//! Each wake-up takes everything queued as one chunk (one write). When the
//! outbox closes, the stream sends a `disconnect` push with the code (so the
//! SDK knows whether to reconnect) and ends. When the body is dropped — the
//! client went away — the session is told the transport closed.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use protocol::codec::{self, FrameBuilder};
use protocol::codes::DisconnectCode;
use protocol::proto::{Push, Reply};
use protocol::Encoding;
use ractor::ActorRef;

use crate::outbox::{Next, Outbox};
use crate::session::SessionMsg;

/// How messages are laid out in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: one `data:` event per JSON message.
    EventStream,
    /// HTTP-stream, JSON: each message followed by `\n`.
    JsonLines,
    /// HTTP-stream, Protobuf: varint-delimited messages, as on WebSocket.
    Protobuf,
}

impl Framing {
    pub fn encoding(self) -> Encoding {
        match self {
            Framing::EventStream | Framing::JsonLines => Encoding::Json,
            Framing::Protobuf => Encoding::Protobuf,
        }
    }

    /// Lays out one outbox frame (messages joined per encoding) as a body chunk.
    pub fn chunk(self, frame: &[u8]) -> Bytes {
        match self {
            Framing::EventStream => {
                let mut out = BytesMut::with_capacity(frame.len() + 16);
                // JSON messages never hold a raw newline (serde_json escapes it),
                // so the lines of a JSON frame are its messages.
                for line in frame.split(|&b| b == b'\n') {
                    out.put_slice(b"data: ");
                    out.put_slice(line);
                    out.put_slice(b"\n\n");
                }
                out.freeze()
            }
            Framing::JsonLines => {
                let mut out = BytesMut::with_capacity(frame.len() + 1);
                out.put_slice(frame);
                out.put_u8(b'\n');
                out.freeze()
            }
            Framing::Protobuf => Bytes::copy_from_slice(frame),
        }
    }
}

/// Tells the session its transport is gone when the body is dropped.
pub(super) struct CloseGuard(pub(super) ActorRef<SessionMsg>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let _ = self.0.cast(SessionMsg::TransportClosed);
    }
}

struct BodyState {
    write_delay: std::time::Duration,
    outbox: Arc<Outbox>,
    builder: FrameBuilder,
    framing: Framing,
    finished: bool,
    _guard: CloseGuard,
}

/// The response body of a streaming session.
pub fn body(
    write_delay: std::time::Duration,
    outbox: Arc<Outbox>,
    session: ActorRef<SessionMsg>,
    framing: Framing,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let builder = outbox.frame_builder();
    let state = BodyState { write_delay, outbox, builder, framing, finished: false, _guard: CloseGuard(session) };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let delay = state.write_delay;
        let chunk = match state.outbox.next_after(&mut state.builder, delay).await {
            Next::Frame(frame) => state.framing.chunk(&frame),
            Next::Close(code) => {
                state.finished = true;
                state.framing.chunk(&disconnect_push(state.framing.encoding(), code))
            }
        };
        Some((Ok(chunk), state))
    })
}

pub(super) fn disconnect_push(encoding: Encoding, code: DisconnectCode) -> Bytes {
    let push = Push { disconnect: Some(code.to_proto()), ..Default::default() };
    codec::encode(encoding, &Reply { push: Some(push), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_gives_one_event_per_message() {
        assert_eq!(&Framing::EventStream.chunk(b"{}\n{\"a\":1}")[..], b"data: {}\n\ndata: {\"a\":1}\n\n");
        assert_eq!(&Framing::JsonLines.chunk(b"{}\n{}")[..], b"{}\n{}\n");
        assert_eq!(&Framing::Protobuf.chunk(&[1, 0])[..], &[1, 0]);
    }
}
