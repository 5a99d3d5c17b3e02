//! Property tests of the wire codec: every `Command` and `Reply`, with arbitrary
//! nested contents, survives encode → decode unchanged in both encodings, frames
//! of several messages split back into the same messages, and no input makes
//! the decoder panic.
//!
//! JSON mapping notes that shape the generators:
//! - `bytes` fields (`data`, `conn_info`, `chan_info`) carry raw JSON embedded
//!   byte for byte, so they are generated as compact JSON texts (what
//!   `serde_json` writes), a top-level `null` included (kept as its text);
//!   empty bytes mean "absent".
//! - Defaults are omitted on output and filled in on input, so any value of any
//!   field round-trips.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use protocol::codec::{decode_frame, encode, encode_frame, DecodeError, Encoding, FrameBuilder};
use protocol::proto::*;
use serde_json::Value;

/// No limit that matters for generated frames.
const NO_LIMIT: usize = usize::MAX;
/// Probability that an optional sub-message is present.
const SOME: f64 = 0.25;

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Json), Just(Encoding::Protobuf)]
}

// ---------------------------------------------------------------------------
// Leaves
// ---------------------------------------------------------------------------

/// Strings: mostly channel-like ASCII, sometimes arbitrary Unicode, sometimes
/// the characters JSON has to escape (quotes, backslashes, control characters
/// including `\n`, which would break JSON framing if written raw).
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-z0-9:._-]{0,10}",
        2 => any::<String>().prop_map(|s| s.chars().take(8).collect()),
        1 => "[\"\\\\/\\x00-\\x1f\\x7f\u{2028}\u{2029}é€😀 ]{0,6}",
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite floats: the text is embedded as written, never re-serialized.
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A `bytes` field of the JSON mapping: absent, or a compact JSON text.
fn raw_json() -> BoxedStrategy<Bytes> {
    prop_oneof![
        1 => Just(Bytes::new()),
        3 => json_value().prop_map(|v| Bytes::from(serde_json::to_vec(&v).unwrap())),
    ]
    .boxed()
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..3)
}

// ---------------------------------------------------------------------------
// Shared messages
// ---------------------------------------------------------------------------

prop_compose! {
    fn gen_client_info()(user in text(), client in text(), conn_info in raw_json(), chan_info in raw_json()) -> ClientInfo {
        ClientInfo { user, client, conn_info, chan_info }
    }
}

prop_compose! {
    fn gen_publication()(
        data in raw_json(),
        info in weighted(0.5, client_info()),
        offset in any::<u64>(),
        tags in string_map(),
        delta in any::<bool>(),
        time in any::<i64>(),
        channel in text(),
    ) -> Publication {
        Publication { data, info, offset, tags, delta, time, channel }
    }
}

prop_compose! {
    fn gen_subscribe_result()(
        (expires, ttl, recoverable, epoch) in (any::<bool>(), any::<u32>(), any::<bool>(), text()),
        publications in vec(publication(), 0..3),
        (recovered, offset, positioned, data, was_recovering) in
            (any::<bool>(), any::<u64>(), any::<bool>(), raw_json(), any::<bool>()),
        delta in any::<bool>(),
    ) -> SubscribeResult {
        SubscribeResult {
            expires, ttl, recoverable, epoch, publications, recovered, offset, positioned, data, was_recovering, delta,
        }
    }
}

/// A tags filter: a leaf, or and/or/not over up to three levels of children.
fn filter_node() -> impl Strategy<Value = FilterNode> {
    let leaf = (text(), text(), text(), vec(text(), 0..3)).prop_map(|(key, cmp, val, vals)| FilterNode {
        key,
        cmp,
        val,
        vals,
        ..Default::default()
    });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (text(), vec(inner, 0..3)).prop_map(|(op, nodes)| FilterNode { op, nodes, ..Default::default() })
    })
}

prop_compose! {
    fn gen_subscribe_request()(
        (channel, token, recover, epoch, offset) in (text(), text(), any::<bool>(), text(), any::<u64>()),
        (data, positioned, recoverable, join_leave, flag) in
            (raw_json(), any::<bool>(), any::<bool>(), any::<bool>(), any::<i64>()),
        tf in weighted(0.3, filter_node()),
        delta in text(),
    ) -> SubscribeRequest {
        SubscribeRequest {
            channel, token, recover, epoch, offset, data, positioned, recoverable, join_leave, tf, flag, delta,
        }
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

prop_compose! {
    fn gen_connect_request()(
        token in text(),
        data in raw_json(),
        subs in btree_map(text(), subscribe_request(), 0..3),
        name in text(),
        version in text(),
        headers in string_map(),
    ) -> ConnectRequest {
        ConnectRequest { token, data, subs, name, version, headers }
    }
}

prop_compose! {
    fn gen_history_request()(
        channel in text(),
        limit in any::<i32>(),
        since in weighted(0.5, (any::<u64>(), text()).prop_map(|(offset, epoch)| StreamPosition { offset, epoch })),
        reverse in any::<bool>(),
    ) -> HistoryRequest {
        HistoryRequest { channel, limit, since, reverse }
    }
}

prop_compose! {
    fn gen_command()(
        id in any::<u32>(),
        (connect, subscribe, unsubscribe, publish, presence, presence_stats) in (
            weighted(SOME, connect_request()),
            weighted(SOME, subscribe_request()),
            weighted(SOME, text().prop_map(|channel| UnsubscribeRequest { channel })),
            weighted(SOME, (text(), raw_json()).prop_map(|(channel, data)| PublishRequest { channel, data })),
            weighted(SOME, text().prop_map(|channel| PresenceRequest { channel })),
            weighted(SOME, text().prop_map(|channel| PresenceStatsRequest { channel })),
        ),
        (history, ping, send, rpc, refresh, sub_refresh) in (
            weighted(SOME, history_request()),
            weighted(SOME, Just(PingRequest {})),
            weighted(SOME, raw_json().prop_map(|data| SendRequest { data })),
            weighted(SOME, (raw_json(), text()).prop_map(|(data, method)| RpcRequest { data, method })),
            weighted(SOME, text().prop_map(|token| RefreshRequest { token })),
            weighted(SOME, (text(), text()).prop_map(|(channel, token)| SubRefreshRequest { channel, token })),
        ),
    ) -> Command {
        Command {
            id, connect, subscribe, unsubscribe, publish, presence, presence_stats,
            history, ping, send, rpc, refresh, sub_refresh,
        }
    }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

prop_compose! {
    fn gen_connect_result()(
        (client, version, expires, ttl, data) in (text(), text(), any::<bool>(), any::<u32>(), raw_json()),
        subs in btree_map(text(), subscribe_result(), 0..3),
        (ping, pong, session, node) in (any::<u32>(), any::<bool>(), text(), text()),
    ) -> ConnectResult {
        ConnectResult { client, version, expires, ttl, data, subs, ping, pong, session, node }
    }
}

prop_compose! {
    fn gen_connect_push()(
        (client, version, data) in (text(), text(), raw_json()),
        subs in btree_map(text(), subscribe_result(), 0..3),
        (expires, ttl, ping, pong, session, node) in
            (any::<bool>(), any::<u32>(), any::<u32>(), any::<bool>(), text(), text()),
    ) -> Connect {
        Connect { client, version, data, subs, expires, ttl, ping, pong, session, node }
    }
}

prop_compose! {
    fn gen_push()(
        channel in text(),
        (r#pub, join, leave, unsubscribe, message) in (
            weighted(SOME, publication()),
            weighted(SOME, weighted(0.8, client_info()).prop_map(|info| Join { info })),
            weighted(SOME, weighted(0.8, client_info()).prop_map(|info| Leave { info })),
            weighted(SOME, (any::<u32>(), text()).prop_map(|(code, reason)| Unsubscribe { code, reason })),
            weighted(SOME, raw_json().prop_map(|data| Message { data })),
        ),
        (subscribe, connect, disconnect, refresh) in (
            weighted(SOME, (any::<bool>(), text(), any::<u64>(), any::<bool>(), raw_json(), any::<(bool, bool)>()).prop_map(
                |(recoverable, epoch, offset, positioned, data, (was_recovering, recovered))| Subscribe {
                    recoverable, epoch, offset, positioned, data, was_recovering, recovered,
                },
            )),
            weighted(SOME, connect_push()),
            weighted(SOME, (any::<u32>(), text(), any::<bool>()).prop_map(
                |(code, reason, reconnect)| Disconnect { code, reason, reconnect },
            )),
            weighted(SOME, (any::<bool>(), any::<u32>()).prop_map(|(expires, ttl)| Refresh { expires, ttl })),
        ),
    ) -> Push {
        Push { channel, r#pub, join, leave, unsubscribe, message, subscribe, connect, disconnect, refresh }
    }
}

prop_compose! {
    fn gen_history_result()(publications in vec(publication(), 0..4), epoch in text(), offset in any::<u64>()) -> HistoryResult {
        HistoryResult { publications, epoch, offset }
    }
}

prop_compose! {
    fn gen_reply()(
        id in any::<u32>(),
        (error, push, connect, subscribe, unsubscribe) in (
            weighted(SOME, (any::<u32>(), text(), any::<bool>()).prop_map(
                |(code, message, temporary)| Error { code, message, temporary },
            )),
            weighted(0.4, push()),
            weighted(SOME, connect_result()),
            weighted(SOME, subscribe_result()),
            weighted(SOME, Just(UnsubscribeResult {})),
        ),
        (publish, presence, presence_stats, history, ping) in (
            weighted(SOME, Just(PublishResult {})),
            weighted(SOME, btree_map(text(), client_info(), 0..3).prop_map(|presence| PresenceResult { presence })),
            weighted(SOME, (any::<u32>(), any::<u32>()).prop_map(
                |(num_clients, num_users)| PresenceStatsResult { num_clients, num_users },
            )),
            weighted(SOME, history_result()),
            weighted(SOME, Just(PingResult {})),
        ),
        (rpc, refresh, sub_refresh) in (
            weighted(SOME, raw_json().prop_map(|data| RpcResult { data })),
            weighted(SOME, (text(), text(), any::<bool>(), any::<u32>()).prop_map(
                |(client, version, expires, ttl)| RefreshResult { client, version, expires, ttl },
            )),
            weighted(SOME, (any::<bool>(), any::<u32>()).prop_map(|(expires, ttl)| SubRefreshResult { expires, ttl })),
        ),
    ) -> Reply {
        Reply {
            id, error, push, connect, subscribe, unsubscribe, publish, presence, presence_stats,
            history, ping, rpc, refresh, sub_refresh,
        }
    }
}

// Message strategies are boxed: the value trees of the nested tuples are large
// enough in debug builds to overflow a test thread's stack when kept inline.
fn client_info() -> BoxedStrategy<ClientInfo> {
    gen_client_info().boxed()
}
fn publication() -> BoxedStrategy<Publication> {
    gen_publication().boxed()
}
fn subscribe_result() -> BoxedStrategy<SubscribeResult> {
    gen_subscribe_result().boxed()
}
fn subscribe_request() -> BoxedStrategy<SubscribeRequest> {
    gen_subscribe_request().boxed()
}
fn connect_request() -> BoxedStrategy<ConnectRequest> {
    gen_connect_request().boxed()
}
fn history_request() -> BoxedStrategy<HistoryRequest> {
    gen_history_request().boxed()
}
fn command() -> BoxedStrategy<Command> {
    gen_command().boxed()
}
fn connect_result() -> BoxedStrategy<ConnectResult> {
    gen_connect_result().boxed()
}
fn connect_push() -> BoxedStrategy<Connect> {
    gen_connect_push().boxed()
}
fn push() -> BoxedStrategy<Push> {
    gen_push().boxed()
}
fn history_result() -> BoxedStrategy<HistoryResult> {
    gen_history_result().boxed()
}
fn reply() -> BoxedStrategy<Reply> {
    gen_reply().boxed()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Checks the framing invariants of one encoded message.
fn check_single_encoding(encoding: Encoding, encoded: &[u8]) -> Result<(), TestCaseError> {
    match encoding {
        Encoding::Json => {
            prop_assert!(
                !encoded.contains(&b'\n'),
                "JSON message holds a raw newline: {:?}",
                String::from_utf8_lossy(encoded)
            );
            prop_assert!(serde_json::from_slice::<Value>(encoded).map(|v| v.is_object()).unwrap_or(false));
        }
        Encoding::Protobuf => {
            let mut rest = encoded;
            let length = prost::encoding::decode_varint(&mut rest).expect("length prefix");
            prop_assert_eq!(length, rest.len() as u64);
        }
    }
    Ok(())
}

fn frame_of_encoded(encoding: Encoding, encoded: &[Bytes]) -> Bytes {
    let mut builder = FrameBuilder::new(encoding);
    for message in encoded {
        builder.push(message);
    }
    assert_eq!(builder.len(), encoded.len());
    assert_eq!(builder.is_empty(), encoded.is_empty());
    builder.take()
}

/// Bytes that look like frames: valid frames with a few bytes overwritten,
/// inserted or cut, so the decoder gets past the first byte most of the time.
fn mutated_frame(encoding: Encoding) -> impl Strategy<Value = Vec<u8>> {
    (vec(reply(), 1..3), vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)).prop_map(
        move |(replies, edits)| {
            let mut bytes = encode_frame(encoding, &replies).to_vec();
            for (index, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = index.index(bytes.len());
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
            }
            bytes
        },
    )
}

/// Decodes arbitrary bytes in one encoding as `M`; whatever decodes must
/// re-encode, in both encodings, to frames that decode again.
fn check_arbitrary_decode<M>(encoding: Encoding, bytes: &[u8], limit: usize) -> Result<(), TestCaseError>
where
    M: protocol::codec::WireMessage + PartialEq + std::fmt::Debug,
{
    match decode_frame::<M>(encoding, bytes, limit) {
        Ok(messages) => {
            prop_assert!(bytes.len() <= limit);
            prop_assert!(!messages.is_empty());
            for reencoding in Encoding::ALL {
                let frame = encode_frame(reencoding, &messages);
                let again = decode_frame::<M>(reencoding, &frame, NO_LIMIT);
                prop_assert!(again.is_ok(), "re-encoded {reencoding:?} frame fails: {again:?}\nframe: {frame:?}");
                let again = again.unwrap();
                prop_assert_eq!(again.len(), messages.len());
                // Same encoding: decoding is a fixed point. (Across encodings
                // non-JSON bytes become JSON strings, so only the count holds.)
                if reencoding == encoding {
                    prop_assert_eq!(&again, &messages);
                }
            }
        }
        Err(DecodeError::TooLarge { size, limit: l }) => {
            prop_assert_eq!((size, l), (bytes.len(), limit));
            prop_assert!(bytes.len() > limit);
        }
        Err(DecodeError::Empty) => prop_assert!(bytes.len() <= limit),
        Err(other) => {
            prop_assert!(bytes.len() <= limit);
            // Every error renders as text (the hub logs it).
            prop_assert!(!other.to_string().is_empty());
        }
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2048,
        // Failures are saved beside this file, in roundtrip.proptest-regressions
        // (kept in git: those cases run first every time).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn commands_roundtrip_in_frames(encoding in encoding(), commands in vec(command(), 1..4)) {
        let frame = encode_frame(encoding, &commands);
        let decoded: Vec<Command> = decode_frame(encoding, &frame, frame.len()).unwrap();
        prop_assert_eq!(decoded, commands);
    }

    #[test]
    fn replies_roundtrip_in_frames(encoding in encoding(), replies in vec(reply(), 1..4)) {
        let frame = encode_frame(encoding, &replies);
        let decoded: Vec<Reply> = decode_frame(encoding, &frame, frame.len()).unwrap();
        prop_assert_eq!(decoded, replies);
    }

    #[test]
    fn single_command_roundtrips(command in command()) {
        for encoding in Encoding::ALL {
            let encoded = encode(encoding, &command);
            check_single_encoding(encoding, &encoded)?;
            let decoded: Vec<Command> = decode_frame(encoding, &encoded, NO_LIMIT).unwrap();
            prop_assert_eq!(decoded, vec![command.clone()]);
        }
    }

    #[test]
    fn single_reply_roundtrips(reply in reply()) {
        for encoding in Encoding::ALL {
            let encoded = encode(encoding, &reply);
            check_single_encoding(encoding, &encoded)?;
            let decoded: Vec<Reply> = decode_frame(encoding, &encoded, NO_LIMIT).unwrap();
            prop_assert_eq!(decoded, vec![reply.clone()]);
        }
    }

    /// Messages from `encode`, joined by a `FrameBuilder` (as the hub batches
    /// pushes), form the same frame as `encode_frame` and decode in order.
    #[test]
    fn frame_builder_joins_encoded_messages(encoding in encoding(), replies in vec(reply(), 0..4)) {
        let encoded: Vec<Bytes> = replies.iter().map(|r| encode(encoding, r)).collect();
        let frame = frame_of_encoded(encoding, &encoded);
        prop_assert_eq!(&frame, &encode_frame(encoding, &replies));
        let separators = if encoding == Encoding::Json { replies.len().saturating_sub(1) } else { 0 };
        prop_assert_eq!(frame.len(), encoded.iter().map(Bytes::len).sum::<usize>() + separators);
        if replies.is_empty() {
            prop_assert_eq!(decode_frame::<Reply>(encoding, &frame, NO_LIMIT), Err(DecodeError::Empty));
        } else {
            prop_assert_eq!(decode_frame::<Reply>(encoding, &frame, NO_LIMIT).unwrap(), replies);
        }
    }

    /// A JSON frame may hold blank lines and `\r\n` line ends (hand-written
    /// frames, some SDKs); they do not change what decodes.
    #[test]
    fn json_frames_tolerate_blank_lines_and_crlf(commands in vec(command(), 1..4), blank in vec(0usize..3, 5), crlf in any::<bool>()) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut frame = Vec::new();
        frame.extend(std::iter::repeat_n(eol, blank[0]).flatten());
        for (i, command) in commands.iter().enumerate() {
            frame.extend_from_slice(&encode(Encoding::Json, command));
            frame.extend_from_slice(eol);
            frame.extend(std::iter::repeat_n(eol, blank[(i + 1) % blank.len()]).flatten());
        }
        let decoded: Vec<Command> = decode_frame(Encoding::Json, &frame, NO_LIMIT).unwrap();
        prop_assert_eq!(decoded, commands);
    }

    /// A message received over Protobuf and forwarded to a JSON client
    /// survives: the JSON decodes to the same message as long as its `bytes`
    /// fields were compact JSON (the generators' promise).
    #[test]
    fn protobuf_to_json_forwarding(replies in vec(reply(), 1..3)) {
        let proto_frame = encode_frame(Encoding::Protobuf, &replies);
        let from_proto: Vec<Reply> = decode_frame(Encoding::Protobuf, &proto_frame, NO_LIMIT).unwrap();
        let json_frame = encode_frame(Encoding::Json, &from_proto);
        let from_json: Vec<Reply> = decode_frame(Encoding::Json, &json_frame, NO_LIMIT).unwrap();
        prop_assert_eq!(from_json, replies);
    }
}

// ---------------------------------------------------------------------------
// Raw JSON `bytes` fields that are not compact JSON
// ---------------------------------------------------------------------------

/// Bytes a Protobuf client may publish: arbitrary bytes, or JSON in any
/// layout (pretty-printed, with `\n`, `\r`, tabs between tokens).
fn any_data() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        json_value().prop_map(|v| Bytes::from(serde_json::to_vec_pretty(&v).unwrap())),
        (json_value(), "[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}").prop_map(|(v, before, after)| {
            Bytes::from(format!("{before}{}{after}", serde_json::to_string_pretty(&v).unwrap()))
        }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever a `bytes` field holds, its JSON encoding is one line that
    /// decodes as one message, and the field decodes to the same JSON value
    /// (valid JSON) or to a JSON string (anything else).
    #[test]
    fn json_encoding_of_any_data_is_one_message(data in any_data(), id in any::<u32>()) {
        let reply = Reply {
            id,
            push: Some(Push {
                channel: "c".into(),
                r#pub: Some(Publication { data: data.clone(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let encoded = encode(Encoding::Json, &reply);
        check_single_encoding(Encoding::Json, &encoded)?;
        // Two in a frame: the newline framing must still split them right.
        let frame = encode_frame(Encoding::Json, &[reply.clone(), reply.clone()]);
        let decoded: Vec<Reply> = decode_frame(Encoding::Json, &frame, NO_LIMIT).unwrap();
        prop_assert_eq!(decoded.len(), 2);
        prop_assert_eq!(&decoded[0], &decoded[1]);
        prop_assert_eq!(decoded[0].id, id);
        let got = decoded[0].push.as_ref().unwrap().r#pub.as_ref().unwrap().data.clone();
        let text = String::from_utf8_lossy(&data);
        match serde_json::from_str::<Value>(&text) {
            // `null` is kept like any other JSON value (the next arm).
            Ok(value) if !data.is_empty() => {
                prop_assert_eq!(serde_json::from_slice::<Value>(&got).unwrap(), value);
            }
            _ => {
                if data.is_empty() {
                    prop_assert!(got.is_empty());
                } else {
                    prop_assert_eq!(serde_json::from_slice::<Value>(&got).unwrap(), Value::String(text.into_owned()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile input and limits
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256), limit in prop_oneof![Just(NO_LIMIT), 0usize..300]) {
        for encoding in Encoding::ALL {
            check_arbitrary_decode::<Command>(encoding, &bytes, limit)?;
            check_arbitrary_decode::<Reply>(encoding, &bytes, limit)?;
        }
    }

    #[test]
    fn decode_never_panics_on_json_like_text(
        text in "[{}\\[\\]\":,0-9a-z_ \n\\\\-]{0,128}",
    ) {
        for encoding in Encoding::ALL {
            check_arbitrary_decode::<Command>(encoding, text.as_bytes(), 1 << 16)?;
            check_arbitrary_decode::<Reply>(encoding, text.as_bytes(), 1 << 16)?;
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decode_never_panics_on_mutated_frames(
        (encoding, bytes) in encoding().prop_flat_map(|e| (Just(e), mutated_frame(e))),
    ) {
        check_arbitrary_decode::<Command>(encoding, &bytes, 1 << 16)?;
        check_arbitrary_decode::<Reply>(encoding, &bytes, 1 << 16)?;
    }

    /// A valid frame one byte over the limit is refused before parsing, with
    /// its size and the limit; at the limit it decodes.
    #[test]
    fn frames_over_the_limit_are_too_large(encoding in encoding(), replies in vec(reply(), 1..3), under in 1usize..64) {
        let frame = encode_frame(encoding, &replies);
        let limit = frame.len().saturating_sub(under);
        prop_assert_eq!(
            decode_frame::<Reply>(encoding, &frame, limit),
            Err(DecodeError::TooLarge { size: frame.len(), limit })
        );
        prop_assert_eq!(decode_frame::<Reply>(encoding, &frame, frame.len()).unwrap(), replies);
    }

    #[test]
    fn arbitrary_frames_over_the_limit_are_too_large(encoding in encoding(), bytes in vec(any::<u8>(), 1..128), under in 1usize..128) {
        let limit = bytes.len().saturating_sub(under);
        prop_assert_eq!(
            decode_frame::<Command>(encoding, &bytes, limit),
            Err(DecodeError::TooLarge { size: bytes.len(), limit })
        );
    }
}

// ---------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------

#[test]
fn blank_frames_are_empty() {
    for frame in [&b""[..], b"\n", b" \r\n\t\n"] {
        assert_eq!(decode_frame::<Command>(Encoding::Json, frame, 100), Err(DecodeError::Empty));
    }
    assert_eq!(decode_frame::<Command>(Encoding::Protobuf, b"", 100), Err(DecodeError::Empty));
}

#[test]
fn empty_protobuf_messages_are_one_byte_each() {
    let decoded: Vec<Command> = decode_frame(Encoding::Protobuf, &[0, 0, 0], 3).unwrap();
    assert_eq!(decoded, vec![Command::default(); 3]);
}

/// Regression: pretty-printed JSON data published over Protobuf (or through
/// any path that keeps the client's bytes) must not break the newline framing
/// of JSON frames.
#[test]
fn json_data_with_newlines_stays_on_one_line() {
    let reply = Reply {
        push: Some(Push {
            r#pub: Some(Publication { data: Bytes::from_static(b"{\n  \"a\": [1,\r\n2]\n}"), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let proto = encode(Encoding::Protobuf, &reply);
    let received: Vec<Reply> = decode_frame(Encoding::Protobuf, &proto, 1 << 10).unwrap();
    let frame = encode_frame(Encoding::Json, &[received[0].clone(), Reply { id: 1, ..Default::default() }]);
    let decoded: Vec<Reply> = decode_frame(Encoding::Json, &frame, 1 << 10).expect("JSON frame decodes");
    assert_eq!(decoded.len(), 2);
    let data = &decoded[0].push.as_ref().unwrap().r#pub.as_ref().unwrap().data;
    assert_eq!(serde_json::from_slice::<Value>(data).unwrap(), serde_json::json!({"a": [1, 2]}));
    assert_eq!(decoded[1].id, 1);
}

/// Raw JSON nested far deeper than any recursion limit is carried, not parsed
/// recursively: no stack overflow on the way in (JSON) or out (Protobuf → JSON).
#[test]
fn deeply_nested_data_does_not_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let line = format!(r#"{{"id":1,"publish":{{"channel":"c","data":{nested}}}}}"#);
    let commands: Vec<Command> = decode_frame(Encoding::Json, line.as_bytes(), 1 << 20).unwrap();
    assert_eq!(commands[0].publish.as_ref().unwrap().data.len(), nested.len());

    let reply = Reply { rpc: Some(RpcResult { data: Bytes::from(nested.clone()) }), ..Default::default() };
    let json = encode(Encoding::Json, &reply);
    let decoded: Vec<Reply> = decode_frame(Encoding::Json, &json, 1 << 20).unwrap();
    assert_eq!(decoded, vec![reply]);
}

/// The fuzz target's seed inputs (protocol/fuzz/seeds) stay valid frames.
#[test]
fn fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode_frame");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let encoding = if name.starts_with("json") { Encoding::Json } else { Encoding::Protobuf };
        let count = if name.ends_with("commands") {
            decode_frame::<Command>(encoding, &bytes, 1 << 16).map(|m| m.len())
        } else {
            decode_frame::<Reply>(encoding, &bytes, 1 << 16).map(|m| m.len())
        };
        assert!(count.unwrap_or_else(|e| panic!("{name}: {e}")) >= 4, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// Found by the `json_command` and `decode_frame` fuzz targets: raw `\r`
/// whitespace inside a command's JSON data (a frame is split on `\n` only, so
/// it arrives) was kept by the decoder but made a space by the encoder, so a
/// decoded command did not re-encode to the same bytes. Decoding now makes it
/// a space too: same JSON value, and a fixed point.
#[test]
fn raw_carriage_returns_in_json_data_decode_as_spaces() {
    let frame = b"{\"id\":3,\"publish\":{\"channel\":\"c\",\"data\":{\r\r\r\"input\":\"hello\\r\"}}}";
    let commands: Vec<Command> = decode_frame(Encoding::Json, frame, 1024).unwrap();
    let data = &commands[0].publish.as_ref().unwrap().data;
    assert_eq!(data.as_ref(), b"{   \"input\":\"hello\\r\"}".as_slice(), "{:?}", String::from_utf8_lossy(data));
    let again: Vec<Command> = decode_frame(Encoding::Json, &encode_frame(Encoding::Json, &commands), 1024).unwrap();
    assert_eq!(again, commands);
}
