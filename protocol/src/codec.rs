//! Framing and encoding of protocol messages. No I/O.
//!
//! A transport frame (a WebSocket message, an HTTP-stream chunk, an emulation
//! body) carries one or more messages:
//! - JSON: messages separated by `\n` (empty lines are skipped on input);
//! - Protobuf: each message prefixed by its length as a varint.
//!
//! [`encode`] gives one message ready to be joined into a frame: a Protobuf
//! message carries its own length prefix, so a frame is the plain concatenation
//! of encoded messages, while JSON messages get a `\n` between them
//! ([`FrameBuilder`]). Decoding checks the size limit before it parses, and
//! every error is a [`DecodeError`] value: no input panics the decoder.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The encoding of a connection, chosen once at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// Both encodings, in index order (see [`Encoding::index`]).
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::Protobuf];

    /// A dense index (0 = JSON, 1 = Protobuf) for per-encoding caches.
    pub fn index(self) -> usize {
        match self {
            Encoding::Json => 0,
            Encoding::Protobuf => 1,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("frame holds no message")]
    Empty,
    #[error("message {index}: invalid JSON: {reason}")]
    Json { index: usize, reason: String },
    #[error("message {index}: invalid length prefix")]
    Length { index: usize },
    #[error("message {index}: length {length} runs past the end of the frame")]
    Truncated { index: usize, length: u64 },
    #[error("message {index}: invalid Protobuf: {reason}")]
    Protobuf { index: usize, reason: String },
}

/// A protocol message that can travel in both encodings.
pub trait WireMessage: Message + Default + Serialize + DeserializeOwned {}
impl<T: Message + Default + Serialize + DeserializeOwned> WireMessage for T {}

/// Encodes one message for inclusion in a frame (Protobuf: with its length prefix).
pub fn encode<M: WireMessage>(encoding: Encoding, message: &M) -> Bytes {
    match encoding {
        Encoding::Json => {
            // Serializing a generated message cannot fail: every field is a
            // string, number, bool, map with string keys, or raw JSON bytes that
            // the `raw` module always writes as valid JSON.
            let text = serde_json::to_vec(message).expect("protocol messages always serialize to JSON");
            Bytes::from(text)
        }
        Encoding::Protobuf => Bytes::from(message.encode_length_delimited_to_vec()),
    }
}

/// Decodes every message of a frame, refusing frames larger than `limit` bytes.
pub fn decode_frame<M: WireMessage>(encoding: Encoding, frame: &[u8], limit: usize) -> Result<Vec<M>, DecodeError> {
    if frame.len() > limit {
        return Err(DecodeError::TooLarge { size: frame.len(), limit });
    }
    let messages = match encoding {
        Encoding::Json => decode_json(frame)?,
        Encoding::Protobuf => decode_protobuf(frame)?,
    };
    if messages.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(messages)
}

fn decode_json<M: WireMessage>(frame: &[u8]) -> Result<Vec<M>, DecodeError> {
    let mut messages = Vec::new();
    for line in frame.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let index = messages.len();
        let message = serde_json::from_slice(line).map_err(|e| DecodeError::Json { index, reason: e.to_string() })?;
        messages.push(message);
    }
    Ok(messages)
}

fn decode_protobuf<M: WireMessage>(mut frame: &[u8]) -> Result<Vec<M>, DecodeError> {
    let mut messages = Vec::new();
    while !frame.is_empty() {
        let index = messages.len();
        let length = prost::encoding::decode_varint(&mut frame).map_err(|_| DecodeError::Length { index })?;
        if length > frame.len() as u64 {
            return Err(DecodeError::Truncated { index, length });
        }
        // Fits in usize: it is at most frame.len().
        let (body, rest) = frame.split_at(length as usize);
        let message = M::decode(body).map_err(|e| DecodeError::Protobuf { index, reason: e.to_string() })?;
        messages.push(message);
        frame = rest;
    }
    Ok(messages)
}

/// Joins encoded messages (from [`encode`]) into one transport frame.
#[derive(Debug)]
pub struct FrameBuilder {
    encoding: Encoding,
    buf: BytesMut,
    count: usize,
}

impl FrameBuilder {
    pub fn new(encoding: Encoding) -> Self {
        FrameBuilder { encoding, buf: BytesMut::new(), count: 0 }
    }

    pub fn with_capacity(encoding: Encoding, capacity: usize) -> Self {
        FrameBuilder { encoding, buf: BytesMut::with_capacity(capacity), count: 0 }
    }

    /// Appends one encoded message.
    pub fn push(&mut self, message: &[u8]) {
        if self.encoding == Encoding::Json && self.count > 0 {
            self.buf.put_u8(b'\n');
        }
        self.buf.put_slice(message);
        self.count += 1;
    }

    /// Messages appended so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes appended so far (with separators).
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The frame; the builder is left empty for reuse.
    pub fn take(&mut self) -> Bytes {
        self.count = 0;
        self.buf.split().freeze()
    }
}

/// Encodes several messages as one frame.
pub fn encode_frame<M: WireMessage>(encoding: Encoding, messages: &[M]) -> Bytes {
    let mut builder = FrameBuilder::new(encoding);
    for message in messages {
        builder.push(&encode(encoding, message));
    }
    builder.take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::*;

    fn publication_reply() -> Reply {
        Reply {
            push: Some(Push {
                channel: "news".into(),
                r#pub: Some(Publication {
                    data: Bytes::from_static(br#"{"text":"hi"}"#),
                    offset: 7,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn json_embeds_data_raw_and_omits_defaults() {
        let bytes = encode(Encoding::Json, &publication_reply());
        assert_eq!(&bytes[..], br#"{"push":{"channel":"news","pub":{"data":{"text":"hi"},"offset":7}}}"#);
    }

    #[test]
    fn fields_the_sdks_read_without_defaults_are_always_written() {
        let stats = Reply { id: 1, presence_stats: Some(PresenceStatsResult::default()), ..Default::default() };
        assert_eq!(
            &encode(Encoding::Json, &stats)[..],
            br#"{"id":1,"presence_stats":{"num_clients":0,"num_users":0}}"#
        );
        let info = ClientInfo { client: "c".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&info).unwrap(), r#"{"user":"","client":"c"}"#);
        let history = HistoryResult::default();
        assert_eq!(serde_json::to_string(&history).unwrap(), r#"{"publications":[],"epoch":"","offset":0}"#);
    }

    #[test]
    fn empty_reply_is_an_empty_object() {
        assert_eq!(&encode(Encoding::Json, &Reply::default())[..], b"{}");
        assert_eq!(&encode(Encoding::Protobuf, &Reply::default())[..], &[0u8]);
    }

    #[test]
    fn json_command_decodes_sdk_shapes() {
        let frame = br#"{"id":1,"connect":{"token":"t","name":"js"}}
{"id":2,"subscribe":{"channel":"chat:index","recover":true,"offset":5,"epoch":"ab","flag":1}}
{}
{"id":3,"publish":{"channel":"chat:index","data":{"input":"hello"}}}"#;
        let commands: Vec<Command> = decode_frame(Encoding::Json, frame, 1 << 16).unwrap();
        assert_eq!(commands.len(), 4);
        assert_eq!(commands[0].connect.as_ref().unwrap().token, "t");
        let sub = commands[1].subscribe.as_ref().unwrap();
        assert!(sub.recover);
        assert_eq!((sub.offset, sub.epoch.as_str()), (5, "ab"));
        assert_eq!(commands[2], Command::default());
        assert_eq!(&commands[3].publish.as_ref().unwrap().data[..], br#"{"input":"hello"}"#);
    }

    #[test]
    fn non_json_bytes_become_a_json_string() {
        let reply = Reply {
            push: Some(Push {
                r#pub: Some(Publication { data: Bytes::from_static(b"\x00binary"), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = encode(Encoding::Json, &reply);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["push"]["pub"]["data"], "\u{0}binary");
    }

    #[test]
    fn null_data_is_kept_and_empty_data_is_left_out() {
        let frame = br#"{"id":1,"publish":{"channel":"news","data":null}}"#;
        let commands: Vec<Command> = decode_frame(Encoding::Json, frame, 1 << 16).unwrap();
        assert_eq!(&commands[0].publish.as_ref().unwrap().data[..], b"null");
        let reply = |data: &'static [u8]| Reply {
            push: Some(Push {
                channel: "news".into(),
                r#pub: Some(Publication { data: Bytes::from_static(data), offset: 1, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            &encode(Encoding::Json, &reply(b"null"))[..],
            br#"{"push":{"channel":"news","pub":{"data":null,"offset":1}}}"#
        );
        // 0 bytes: no `data` key, as Centrifugo writes it.
        assert_eq!(&encode(Encoding::Json, &reply(b""))[..], br#"{"push":{"channel":"news","pub":{"offset":1}}}"#);
    }

    #[test]
    fn frames_hold_several_messages_both_ways() {
        for encoding in Encoding::ALL {
            let replies = vec![publication_reply(), Reply::default(), Reply { id: 9, ..Default::default() }];
            let frame = encode_frame(encoding, &replies);
            let decoded: Vec<Reply> = decode_frame(encoding, &frame, 1 << 16).unwrap();
            assert_eq!(decoded, replies, "{encoding:?}");
        }
    }

    #[test]
    fn limits_and_errors_are_typed() {
        let frame = encode_frame(Encoding::Json, &[publication_reply()]);
        assert_eq!(
            decode_frame::<Reply>(Encoding::Json, &frame, 10),
            Err(DecodeError::TooLarge { size: frame.len(), limit: 10 })
        );
        assert_eq!(decode_frame::<Command>(Encoding::Json, b"\n\n", 100), Err(DecodeError::Empty));
        assert!(matches!(
            decode_frame::<Command>(Encoding::Json, b"{}\n{oops", 100),
            Err(DecodeError::Json { index: 1, .. })
        ));
        assert_eq!(
            decode_frame::<Command>(Encoding::Protobuf, &[0x05, 0x08], 100),
            Err(DecodeError::Truncated { index: 0, length: 5 })
        );
        assert_eq!(
            decode_frame::<Command>(Encoding::Protobuf, &[0xff; 11], 100),
            Err(DecodeError::Length { index: 0 })
        );
    }
}
