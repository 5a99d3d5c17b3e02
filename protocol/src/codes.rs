//! Error, disconnect and unsubscribe codes of the protocol.
//!
//! - An [`ErrorCode`] travels inside a reply (`Reply.error`): the command
//!   failed, the connection stays open.
//! - A [`DisconnectCode`] closes the connection (as the WebSocket close code and
//!   reason, or a `disconnect` push on streaming transports). 3000-3499 tell the
//!   client to reconnect; 3500-3999 tell it not to.
//! - An [`UnsubscribeCode`] ends one subscription (`unsubscribe` push).
//!   2000-2499: the subscription is over; 2500-2999: the client resubscribes
//!   (and recovers from history when it can).

use crate::proto;

/// An error inside a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u32,
    pub message: &'static str,
    pub temporary: bool,
}

impl ErrorCode {
    const fn new(code: u32, message: &'static str) -> Self {
        ErrorCode { code, message, temporary: false }
    }

    /// The same code marked temporary: the client may retry.
    pub const fn temporary(self) -> Self {
        ErrorCode { temporary: true, ..self }
    }

    pub fn to_proto(self) -> proto::Error {
        proto::Error { code: self.code, message: self.message.to_string(), temporary: self.temporary }
    }
}

/// Something failed inside the server.
pub const INTERNAL: ErrorCode = ErrorCode::new(100, "internal server error");
/// The keys to verify a token could not be had now (the JWKS endpoint is
/// unreachable or slow): code 100, temporary, so the client retries.
pub const KEYS_UNAVAILABLE: ErrorCode =
    ErrorCode { code: 100, message: "internal server error: token keys unavailable", temporary: true };
/// The connection is not authenticated (or not connected yet).
pub const UNAUTHORIZED: ErrorCode = ErrorCode::new(101, "unauthorized");
/// The channel's namespace does not exist, or the name is invalid.
pub const UNKNOWN_CHANNEL: ErrorCode = ErrorCode::new(102, "unknown channel");
/// The client may not do this on this channel.
pub const PERMISSION_DENIED: ErrorCode = ErrorCode::new(103, "permission denied");
/// The command is not supported by this server.
pub const METHOD_NOT_FOUND: ErrorCode = ErrorCode::new(104, "method not found");
/// The client is already subscribed to the channel.
pub const ALREADY_SUBSCRIBED: ErrorCode = ErrorCode::new(105, "already subscribed");
/// A limit (channels per connection, message size) was reached.
pub const LIMIT_EXCEEDED: ErrorCode = ErrorCode::new(106, "limit exceeded");
/// The command is malformed.
pub const BAD_REQUEST: ErrorCode = ErrorCode::new(107, "bad request");
/// The feature is off for this channel (history, presence).
pub const NOT_AVAILABLE: ErrorCode = ErrorCode::new(108, "not available");
/// The token has expired: the client gets a new one and retries.
pub const TOKEN_EXPIRED: ErrorCode = ErrorCode::new(109, "token expired");
/// The connection or subscription has expired.
pub const EXPIRED: ErrorCode = ErrorCode::new(110, "expired");
/// Too many requests.
pub const TOO_MANY_REQUESTS: ErrorCode = ErrorCode::new(111, "too many requests");
/// The requested stream position is no longer in history.
pub const UNRECOVERABLE_POSITION: ErrorCode = ErrorCode::new(112, "unrecoverable position");

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectCode {
    pub code: u16,
    pub reason: &'static str,
}

impl DisconnectCode {
    const fn new(code: u16, reason: &'static str) -> Self {
        DisconnectCode { code, reason }
    }

    /// Whether the client should reconnect: not for 3500-3999 and 4500-4999
    /// (the SDKs' rule; 4000-4499 are application codes that reconnect).
    pub const fn reconnect(self) -> bool {
        !((self.code >= 3500 && self.code < 4000) || (self.code >= 4500 && self.code < 5000))
    }

    pub fn to_proto(self) -> proto::Disconnect {
        proto::Disconnect { code: self.code as u32, reason: self.reason.to_string(), reconnect: self.reconnect() }
    }
}

/// The connection was closed (by the client or the network).
pub const CONNECTION_CLOSED: DisconnectCode = DisconnectCode::new(3000, "connection closed");
/// The server is shutting down: reconnect, probably to another node.
pub const SHUTDOWN: DisconnectCode = DisconnectCode::new(3001, "shutdown");
/// An internal error on the server.
pub const SERVER_ERROR: DisconnectCode = DisconnectCode::new(3004, "internal server error");
/// The connection token expired and was not refreshed.
pub const EXPIRED_CONNECTION: DisconnectCode = DisconnectCode::new(3005, "connection expired");
/// The client did not read fast enough: its outbox overflowed.
pub const SLOW: DisconnectCode = DisconnectCode::new(3008, "slow");
/// Writing to the connection failed.
pub const WRITE_ERROR: DisconnectCode = DisconnectCode::new(3009, "write error");
/// The server lost state the connection relies on: reconnect and recover.
pub const INSUFFICIENT_STATE: DisconnectCode = DisconnectCode::new(3010, "insufficient state");
/// Disconnected by the server API, reconnect allowed.
pub const FORCE_RECONNECT: DisconnectCode = DisconnectCode::new(3011, "force reconnect");
/// No pong arrived within the pong timeout after a server ping.
pub const NO_PONG: DisconnectCode = DisconnectCode::new(3012, "no pong");
/// The client kept sending commands while over its command rate
/// (`client_command_rate`): reconnect after a backoff.
pub const TOO_MANY_REQUESTS_DISCONNECT: DisconnectCode = DisconnectCode::new(3013, "too many requests");
/// The connection token is invalid.
pub const INVALID_TOKEN: DisconnectCode = DisconnectCode::new(3500, "invalid token");
/// The client sent something that is not the protocol.
pub const BAD_REQUEST_DISCONNECT: DisconnectCode = DisconnectCode::new(3501, "bad request");
/// The connection sent no connect command in time.
pub const STALE: DisconnectCode = DisconnectCode::new(3502, "stale");
/// Disconnected by the server API, do not reconnect.
pub const FORCE_NO_RECONNECT: DisconnectCode = DisconnectCode::new(3503, "force disconnect");
/// A connection limit (per node, per user, per client address) was reached,
/// or a newer connection of the same user took this one's place (personal
/// channel with `single_connection`); do not reconnect.
pub const CONNECTION_LIMIT: DisconnectCode = DisconnectCode::new(3504, "connection limit");
/// Too many subscriptions on one connection.
pub const CHANNEL_LIMIT: DisconnectCode = DisconnectCode::new(3505, "channel limit");
/// The client is not allowed on this server.
pub const PERMISSION_DENIED_DISCONNECT: DisconnectCode = DisconnectCode::new(3507, "permission denied");

/// Why a subscription ended from the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeCode {
    pub code: u32,
    pub reason: &'static str,
}

impl UnsubscribeCode {
    /// Whether the client resubscribes (codes 2500-2999).
    pub const fn resubscribe(self) -> bool {
        self.code >= 2500
    }

    pub fn to_proto(self) -> proto::Unsubscribe {
        proto::Unsubscribe { code: self.code, reason: self.reason.to_string() }
    }
}

/// Unsubscribed by the server (API call): the subscription is over.
pub const UNSUBSCRIBE_SERVER: UnsubscribeCode = UnsubscribeCode { code: 2000, reason: "server unsubscribe" };
/// The channel lost state (its actor restarted): resubscribe and recover.
pub const UNSUBSCRIBE_INSUFFICIENT_STATE: UnsubscribeCode =
    UnsubscribeCode { code: 2500, reason: "insufficient state" };
/// The subscription token expired and was not refreshed: resubscribe with a new one.
pub const UNSUBSCRIBE_EXPIRED: UnsubscribeCode = UnsubscribeCode { code: 2501, reason: "subscription expired" };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges_decide_reconnect() {
        assert!(SHUTDOWN.reconnect() && SLOW.reconnect() && NO_PONG.reconnect());
        assert!(!INVALID_TOKEN.reconnect() && !BAD_REQUEST_DISCONNECT.reconnect());
        // A client over its command rate comes back after its backoff; one over a
        // connection limit does not (Centrifugo's 3013 and 3504).
        assert!(TOO_MANY_REQUESTS_DISCONNECT.reconnect() && !CONNECTION_LIMIT.reconnect());
        const { assert!(KEYS_UNAVAILABLE.temporary && KEYS_UNAVAILABLE.code == INTERNAL.code) };
        assert!(UNSUBSCRIBE_INSUFFICIENT_STATE.resubscribe());
        assert!(!UNSUBSCRIBE_SERVER.resubscribe());
    }
}
