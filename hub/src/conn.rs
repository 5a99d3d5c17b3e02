//! An accepted TCP connection as actix-http's HTTP/1 dispatcher sees it: the
//! socket, with one correction on the way out.
//!
//! The dispatcher answers what it cannot parse by itself, before any of the
//! hub's code runs, with an empty body: 400 for a malformed request line or
//! one over 64 KiB (the `http` crate's URI limit), 431 for a head over
//! 128 KiB, 408 for a head that does not arrive within the client request
//! timeout. Such an answer is recognised as it is written — one whole
//! response whose status line says 400, 408 or 431 and whose head says
//! `content-length: 0`, which none of the hub's own answers is (they all carry
//! the JSON error body, see [`crate::http_error`]) — and replaced by the same
//! status with the JSON body `{"error":{"code","message"}}` and
//! `Connection: close`. Everything else passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_http::StatusCode;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The accepted socket.
pub struct Conn {
    io: TcpStream,
    /// A replacement answer being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn { io, pending: None }
    }

    /// The socket itself (a WebSocket connection takes it over after the
    /// handshake; no replacement is ever pending then: the dispatcher has not
    /// refused anything on this connection).
    pub fn into_inner(self) -> TcpStream {
        self.io
    }

    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.pending.as_mut() {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// The dispatcher's refusals are a status line and three or four short
/// headers; anything longer is not one.
const MAX_REFUSAL: usize = 512;

/// The JSON answer that replaces `buf` when `buf` is one of the dispatcher's
/// empty refusals (see the module docs).
fn replacement_for(buf: &[u8]) -> Option<Vec<u8>> {
    // Cheap checks first: this runs on every write of every HTTP response.
    if buf.len() > MAX_REFUSAL || !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != buf.len() {
        return None;
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    if !head.contains("\r\ncontent-length: 0\r\n") && !head.ends_with("\r\ncontent-length: 0") {
        return None;
    }
    let message = match status {
        400 => "bad request: the request line or head cannot be parsed (a URL over 64 KiB is refused here)",
        408 => "request timeout: no complete request head in time",
        431 => "limit exceeded: request head larger than 128 KiB",
        _ => return None,
    };
    let status = StatusCode::from_u16(status).ok()?;
    Some(crate::http_error::head(status, message, "").into_bytes())
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(replacement) = replacement_for(buf) {
            // The dispatcher's bytes count as written; ours go out instead
            // (now, or on the next write, flush or shutdown).
            this.pending = Some((replacement, 0));
            if let Poll::Ready(Err(error)) = this.poll_pending(cx) {
                return Poll::Ready(Err(error));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatchers_empty_refusals_are_replaced_with_json() {
        let refusal = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Sun, 29 Nov 2026 08:22:39 GMT\r\n\r\n";
        let text = String::from_utf8(replacement_for(refusal).expect("replaced")).expect("UTF-8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"), "{text}");
        assert!(text.ends_with(r#"{"error":{"code":107,"message":"bad request: the request line or head cannot be parsed (a URL over 64 KiB is refused here)"}}"#));
        let too_large = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(replacement_for(too_large).expect("replaced"))
            .expect("UTF-8")
            .contains("\"code\":106"));
        let timeout = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(replacement_for(timeout).is_some());
    }

    #[test]
    fn everything_else_passes() {
        let json = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":{}}";
        assert_eq!(replacement_for(json), None, "a body: one of the hub's own answers");
        assert_eq!(replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n"), None);
        assert_eq!(replacement_for(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"), None, "not a whole head");
        assert_eq!(replacement_for(b"data: {}\n\n"), None);
        assert_eq!(replacement_for(b"\x81\x02{}"), None);
    }
}
