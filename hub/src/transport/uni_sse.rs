//! One-way SSE (`GET /connection/uni_sse`) for clients with no SDK: a plain
//! browser `EventSource`.
//!
//! Which channels: those in the connection token's `channels` claim
//! (`?token=JWT`), plus `?channel=NAME` (repeatable) in namespaces where any
//! client may subscribe. `?cf_connect=<ConnectRequest JSON>` is accepted too.
//!
//! Events (each a `data:` line holding one JSON object):
//! - `{"connect":{"client":..,"version":..,"ping":..}}` first;
//! - `{"channel":C,"subscribe":{"recoverable":..,"epoch":..,"offset":..,"was_recovering":..,"recovered":..}}` per channel;
//! - `{"channel":C,"pub":{"data":..,"offset":N,...}}` per publication;
//! - `{"channel":C,"join"|"leave"|"unsubscribe":{..}}` (an unsubscribe with
//!   code 2000 also answers a `?channel=` that was refused: "unknown channel"
//!   or "permission denied"), and
//!   `{"disconnect":{"code":..,"reason":..,"reconnect":..}}` before the hub ends the stream;
//! - `{"error":{"code":..,"message":..}}` when the connection is refused (then the stream ends).
//!
//! A missing (where anonymous access is off), invalid or expired token is
//! answered 401 with a JSON error before any stream starts, so the browser's
//! EventSource gives up instead of retrying forever.
//!
//! Subscribe and publication events carry an `id:` with the position of every
//! channel of the stream (a JSON array `[[channel, epoch, offset], ...]`). The
//! browser's automatic reconnect sends the last one back as `Last-Event-ID`,
//! and the hub resumes each channel from history, so nothing published during
//! the gap is lost (or `recovered: false` says it could not be). `retry:` is
//! set to 1 s. Pings are SSE comments (`:`), invisible to `onmessage`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{BufMut, Bytes, BytesMut};
use protocol::codec::FrameBuilder;
use protocol::proto::{Command, ConnectRequest, Reply, SubscribeRequest};
use protocol::Encoding;

use super::client_ip;
use super::http::HttpTransportError;
use super::stream::{disconnect_push, CloseGuard};
use crate::outbox::{Next, Outbox};
use crate::session::{connection_span, SessionContext, SessionMsg, TransportKind};

/// The browser's reconnect delay we ask for, in milliseconds.
const RETRY_MS: u32 = 1000;

pub async fn handler(
    req: HttpRequest,
    ctx: web::Data<Arc<SessionContext>>,
) -> Result<HttpResponse, HttpTransportError> {
    let ctx = ctx.get_ref().clone();
    if ctx.is_shutting_down() {
        return Err(HttpTransportError::Unavailable);
    }
    let mut connect = ConnectRequest::default();
    let mut channels = Vec::new();
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match &*key {
            "cf_connect" => {
                connect = serde_json::from_str(&value)
                    .map_err(|e| HttpTransportError::BadRequest(format!("cf_connect: {e}")))?
            }
            "token" => connect.token = value.into_owned(),
            "channel" => channels.push(value.into_owned()),
            _ => {}
        }
    }
    for channel in channels {
        connect.subs.entry(channel).or_default();
    }
    // Positions to resume from. The header is read as UTF-8 bytes: browsers
    // send the id back as they got it, and ids issued before they were made
    // ASCII-only may hold any channel name. A channel whose position cannot be
    // used (the id is not one the hub issued, or not for that channel) starts
    // fresh and says `recovered: false`.
    let mut requested = BTreeMap::new();
    let mut whole_id_usable = true;
    if let Some(value) = req.headers().get("Last-Event-ID").filter(|v| !v.is_empty()) {
        let (positions, all_usable) = parse_last_event_id(value.as_bytes());
        whole_id_usable = all_usable;
        for (channel, epoch, offset) in positions {
            requested.insert(channel.clone(), (epoch.clone(), offset));
            connect.subs.insert(channel, SubscribeRequest { recover: true, epoch, offset, ..Default::default() });
        }
    }
    // Refuse bad credentials with a status, so the browser's EventSource stops
    // instead of reconnecting forever.
    let token_channels = if connect.token.is_empty() {
        if !ctx.config.allow_anonymous {
            return Err(HttpTransportError::Unauthorized("a connection token is required".into()));
        }
        Vec::new()
    } else {
        match ctx.verifier.verify_connect(&connect.token).await {
            Ok(claims) => claims.channels,
            Err(error) if error.is_temporary() => return Err(HttpTransportError::KeysUnavailable(error.to_string())),
            Err(error) => return Err(HttpTransportError::Unauthorized(error.to_string())),
        }
    };
    // The same per-client limit as a bidirectional client's subscriptions.
    let limit = ctx.config.max_channels_per_client;
    let wanted = connect.subs.len() + token_channels.iter().filter(|c| !connect.subs.contains_key(*c)).count();
    if wanted > limit {
        ctx.metrics.limit_refused(crate::quota::Refusal::Channels);
        return Err(HttpTransportError::LimitExceeded(format!(
            "{wanted} channels requested, at most {limit} per client (max_channels_per_client)"
        )));
    }
    let unrecovered: BTreeSet<String> = if whole_id_usable {
        BTreeSet::new()
    } else {
        connect.subs.keys().chain(token_channels.iter()).filter(|c| !requested.contains_key(*c)).cloned().collect()
    };
    let outbox = Arc::new(Outbox::for_client(Encoding::Json, ctx.config.client_outbox_bytes));
    let session = ctx
        .spawn(
            outbox.clone(),
            TransportKind::UniSse,
            None,
            connection_span(TransportKind::UniSse),
            client_ip(&ctx, &req),
            super::forwarded_headers(&ctx, req.headers()),
        )
        .await
        .map_err(|_| HttpTransportError::Unavailable)?;
    let command = Command { id: 1, connect: Some(connect), ..Default::default() };
    let _ = session.cast(SessionMsg::Commands(vec![command], None));
    let state = UniState {
        write_delay: ctx.config.write_delay,
        builder: outbox.frame_builder(),
        outbox,
        positions: BTreeMap::new(),
        requested,
        unrecovered,
        started: false,
        finished: false,
        _guard: CloseGuard(session),
    };
    let body = futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let mut out = BytesMut::new();
        if !state.started {
            state.started = true;
            out.put_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
        }
        let delay = state.write_delay;
        match state.outbox.next_after(&mut state.builder, delay).await {
            Next::Frame(frame) => state.events(&frame, &mut out),
            Next::Close(code) => {
                state.finished = true;
                state.events(&disconnect_push(Encoding::Json, code), &mut out);
            }
        }
        Some((Ok::<Bytes, actix_web::Error>(out.freeze()), state))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

struct UniState {
    write_delay: std::time::Duration,
    outbox: Arc<Outbox>,
    builder: FrameBuilder,
    /// channel → (epoch, offset) of the last event of that channel.
    positions: BTreeMap<String, (String, u64)>,
    /// channel → (epoch, offset) the client resumes from (Last-Event-ID).
    requested: BTreeMap<String, (String, u64)>,
    /// Channels the client came back for with a Last-Event-ID that held no
    /// usable position for them: their subscribe event says `recovered: false`.
    unrecovered: BTreeSet<String>,
    started: bool,
    finished: bool,
    _guard: CloseGuard,
}

impl UniState {
    /// Turns the replies of one outbox frame into SSE events.
    fn events(&mut self, frame: &[u8], out: &mut BytesMut) {
        for line in frame.split(|&b| b == b'\n') {
            let Ok(reply) = serde_json::from_slice::<Reply>(line) else { continue };
            if let Some(connect) = reply.connect {
                data_event(out, None, &serde_json::json!({ "connect": connect }));
            } else if let Some(error) = reply.error {
                // The connection was refused: say why and end the stream.
                data_event(out, None, &serde_json::json!({ "error": error }));
                self.finished = true;
                self.outbox.close(protocol::codes::CONNECTION_CLOSED);
            } else if let Some(mut push) = reply.push {
                let mut id = None;
                if let Some(subscribe) = push.subscribe.as_mut() {
                    if self.unrecovered.remove(&push.channel) && !subscribe.was_recovering {
                        subscribe.was_recovering = true;
                        subscribe.recovered = false;
                    }
                }
                if let Some(publication) = &push.r#pub {
                    if let Some(position) = self.positions.get_mut(&push.channel) {
                        position.1 = publication.offset;
                    }
                    id = Some(self.event_id());
                } else if let Some(subscribe) = &push.subscribe {
                    if subscribe.recoverable {
                        // Resuming in the same epoch: the replayed publications follow
                        // this event, so the position stays where the client was until
                        // they advance it (a drop right here loses nothing).
                        // (An empty epoch asks for the stream's current one.)
                        let position = match self.requested.get(&push.channel) {
                            Some((epoch, offset))
                                if *epoch == subscribe.epoch || (epoch.is_empty() && subscribe.recovered) =>
                            {
                                (subscribe.epoch.clone(), *offset)
                            }
                            _ => (subscribe.epoch.clone(), subscribe.offset),
                        };
                        self.positions.insert(push.channel.clone(), position);
                    }
                    id = Some(self.event_id());
                } else if push.unsubscribe.is_some() {
                    self.positions.remove(&push.channel);
                }
                if push.disconnect.is_some() {
                    self.finished = true;
                }
                let text = serde_json::to_string(&push).unwrap_or_default();
                write_event(out, id.as_deref(), &text);
            } else {
                // An empty reply is a ping: a comment keeps proxies from timing out.
                out.put_slice(b":\n\n");
            }
        }
    }

    /// The `id:` of an event: every channel's position as a JSON array, in
    /// ASCII only (other characters as `\uXXXX` escapes), so that it comes
    /// back byte for byte through browsers and proxies whatever the channel
    /// names hold.
    fn event_id(&self) -> String {
        let positions: Vec<(&str, &str, u64)> =
            self.positions.iter().map(|(c, (e, o))| (c.as_str(), e.as_str(), *o)).collect();
        ascii_json(&serde_json::to_string(&positions).unwrap_or_default())
    }
}

/// JSON text with every non-ASCII character written as `\uXXXX` (UTF-16
/// surrogate pairs beyond the BMP), which any JSON parser reads back as the
/// same string. Non-ASCII characters only occur inside strings in serde_json's
/// output, where such an escape is valid.
pub(crate) fn ascii_json(json: &str) -> String {
    if json.is_ascii() {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The positions of a `Last-Event-ID` (`[[channel, epoch, offset], ...]`)
/// and whether all of it could be read: bytes that are not UTF-8 or not such
/// an array give none, and entries of another shape are skipped.
pub(crate) fn parse_last_event_id(value: &[u8]) -> (Vec<(String, String, u64)>, bool) {
    let Some(entries) =
        std::str::from_utf8(value).ok().and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).ok())
    else {
        return (Vec::new(), false);
    };
    let total = entries.len();
    let positions: Vec<(String, String, u64)> =
        entries.into_iter().filter_map(|entry| serde_json::from_value(entry).ok()).collect();
    let all = positions.len() == total;
    (positions, all)
}

fn data_event(out: &mut BytesMut, id: Option<&str>, value: &serde_json::Value) {
    write_event(out, id, &value.to_string());
}

fn write_event(out: &mut BytesMut, id: Option<&str>, data: &str) {
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    out.put_slice(data.as_bytes());
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ascii_and_read_back_as_the_same_positions() {
        let id = ascii_json(r#"[["café","e",1],["日本","e",2],["🎉","e",3]]"#);
        assert_eq!(id, r#"[["caf\u00e9","e",1],["\u65e5\u672c","e",2],["\ud83c\udf89","e",3]]"#);
        let (positions, all) = parse_last_event_id(id.as_bytes());
        assert!(all);
        assert_eq!(
            positions,
            vec![("café".into(), "e".into(), 1), ("日本".into(), "e".into(), 2), ("🎉".into(), "e".into(), 3)]
        );
    }

    #[test]
    fn unusable_ids_say_so() {
        assert_eq!(parse_last_event_id(b"nope"), (vec![], false));
        assert_eq!(parse_last_event_id(&[b'[', 0xFF, b']']), (vec![], false));
        assert_eq!(parse_last_event_id(br#"[["a","e",1],["b",2]]"#), (vec![("a".into(), "e".into(), 1)], false));
        assert_eq!(parse_last_event_id(b"[]"), (vec![], true));
    }
}
