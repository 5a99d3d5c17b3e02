//! Admission limits: how many connections this node, one user and one client
//! address may hold, and how fast one client may send commands.
//!
//! This module owns the rules, not the counts: the session registry counts
//! connections (atomically with registering them, so N concurrent connects
//! against a limit of N-1 let exactly N-1 in) and each session holds its own
//! [`TokenBucket`]. It guarantees:
//!
//! - every refusal is one [`Refusal`] with one wire code: connection limits
//!   close with disconnect 3504 "connection limit" (Centrifugo's code, no
//!   reconnect); a command over the client's rate is answered with error 111
//!   "too many requests" (temporary), and a client that goes on sending while
//!   refused is closed with disconnect 3013 "too many requests" (Centrifugo's
//!   code; the SDK reconnects after its backoff, with a fresh bucket);
//! - a limit of 0 is off;
//! - the client address is the socket's peer, unless `client_ip_header` names
//!   a header set by a trusted proxy: then it is the last address in that
//!   header (the one the proxy itself appended), and a request without a
//!   usable value falls back to the peer. The header is read only when
//!   configured: a client cannot choose its own address otherwise.
//!
//! No input makes this module panic; it does no I/O and holds no lock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use protocol::codes::{self, DisconnectCode};

/// A limit a connection or a command ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `client_connection_limit`: this node holds as many clients as allowed.
    NodeConnections,
    /// `client_user_connection_limit`: the user holds as many clients on this node as allowed.
    UserConnections,
    /// `client_ip_connection_limit`: the client address holds as many clients on this node as allowed.
    IpConnections,
    /// `client_command_rate`: the client's bucket is empty (error 111).
    CommandRate,
    /// `client_command_rate_disconnect_after`: refused commands in a row past it (3013).
    CommandRateDisconnect,
    /// `max_channels_per_client`: a subscription (or a `uni_sse` request) over it.
    Channels,
}

impl Refusal {
    /// Every refusal, in the order of [`Refusal::label`]s listed in metrics.
    pub const ALL: [Refusal; 6] = [
        Refusal::NodeConnections,
        Refusal::UserConnections,
        Refusal::IpConnections,
        Refusal::CommandRate,
        Refusal::CommandRateDisconnect,
        Refusal::Channels,
    ];

    /// How a connection is closed for this refusal (none for a refused command
    /// or subscription, which are answered with an error).
    pub fn disconnect(self) -> Option<DisconnectCode> {
        match self {
            Refusal::NodeConnections | Refusal::UserConnections | Refusal::IpConnections => {
                Some(codes::CONNECTION_LIMIT)
            }
            Refusal::CommandRateDisconnect => Some(codes::TOO_MANY_REQUESTS_DISCONNECT),
            Refusal::CommandRate | Refusal::Channels => None,
        }
    }

    /// The `limit` label of `hub_limit_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NodeConnections => "node_connections",
            Refusal::UserConnections => "user_connections",
            Refusal::IpConnections => "ip_connections",
            Refusal::CommandRate => "command_rate",
            Refusal::CommandRateDisconnect => "command_rate_disconnect",
            Refusal::Channels => "channels",
        }
    }
}

/// The connection limits of a node (0 = off), read from the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub node: usize,
    pub user: usize,
    pub ip: usize,
}

/// The address a client connects from: the last address of the trusted
/// proxy's `header` when one is configured and present, else the socket's
/// `peer`. `None` when neither is known (a test socket, a Unix socket).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, header: Option<&str>) -> Option<IpAddr> {
    let from_header = header.and_then(|name| {
        // Of several header lines, the last one is the proxy's own.
        let value = headers.get_all(name).last()?.to_str().ok()?;
        parse_forwarded_ip(value.rsplit(',').next()?)
    });
    from_header.or(peer.map(|peer| peer.ip()))
}

/// One address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`
/// or `[2001:db8::1]:5678`.
fn parse_forwarded_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>().ok().or_else(|| text.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// A token bucket: `burst` commands at once, refilled at `rate` per second.
/// Time is passed in, so the rule is tested without a clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    /// A full bucket; `None` when `rate` is 0 (no limit). A `burst` of 0
    /// holds one second's worth (`rate`).
    pub fn new(rate: u32, burst: u32, now: tokio::time::Instant) -> Option<TokenBucket> {
        if rate == 0 {
            return None;
        }
        let burst = f64::from(if burst == 0 { rate } else { burst });
        Some(TokenBucket { rate: f64::from(rate), burst, tokens: burst, last: now })
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: tokio::time::Instant) -> bool {
        let elapsed: Duration = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn the_header_is_read_only_when_configured_and_its_last_address_counts() {
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 4000)));
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4")]);
        assert_eq!(client_ip(&forwarded, peer, None), Some(IpAddr::from([10, 0, 0, 1])), "not configured");
        assert_eq!(client_ip(&forwarded, peer, Some("X-Forwarded-For")), Some(IpAddr::from([1, 2, 3, 4])));
        let two_lines = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(client_ip(&two_lines, peer, Some("x-forwarded-for")), Some(IpAddr::from([5, 5, 5, 5])));
        let real = headers(&[("x-real-ip", "[2001:db8::1]:443")]);
        assert_eq!(client_ip(&real, peer, Some("X-Real-IP")), "2001:db8::1".parse().ok());
        for garbage in ["", "not an address", "1.2.3.4, ", "999.1.1.1"] {
            let bad = headers(&[("x-real-ip", garbage)]);
            assert_eq!(client_ip(&bad, peer, Some("x-real-ip")), Some(IpAddr::from([10, 0, 0, 1])), "{garbage:?}");
        }
        assert_eq!(client_ip(&HeaderMap::new(), None, Some("x-real-ip")), None);
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let start = tokio::time::Instant::now();
        assert!(TokenBucket::new(0, 10, start).is_none(), "rate 0 is off");
        let mut bucket = TokenBucket::new(10, 3, start).expect("a bucket");
        assert_eq!((0..5).filter(|_| bucket.take(start)).count(), 3, "the burst");
        assert!(!bucket.take(start + Duration::from_millis(50)), "half a token");
        assert!(bucket.take(start + Duration::from_millis(100)), "one token after 1/rate");
        assert!(!bucket.take(start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| bucket.take(later)).count(), 3, "never more than the burst");
        let mut default_burst = TokenBucket::new(4, 0, start).expect("a bucket");
        assert_eq!((0..10).filter(|_| default_burst.take(start)).count(), 4, "burst 0 = rate");
    }
}
