//! What a client can be sent: the size rules that keep everything the hub
//! accepts deliverable.
//!
//! A client's outbox takes any single message of up to `client_outbox_bytes`
//! (L) bytes while the client keeps up (the rule is on
//! [`crate::outbox::Outbox`]: at most `2 × L` queued). From that:
//!
//! - **Publications.** A publication is accepted only when its push (`Reply`
//!   with `push.pub`), encoded in the larger of the two encodings and with the
//!   largest possible offset, is at most L bytes ([`check_publication`]). JSON
//!   embeds JSON data raw, but bytes that are not JSON go out as a JSON string
//!   (a control byte becomes `\u00XX`, six bytes; an invalid UTF-8 byte becomes
//!   U+FFFD, three); Protobuf adds field tags and lengths. Refused with
//!   [`PUBLICATION_TOO_LARGE`] (106) on every path: server API publish,
//!   broadcast, batch and `POST /api`, client publish, and AMQP ingest at the
//!   channel's owner.
//! - **Recovery.** A subscribe reply carries recovered publications only when
//!   there are at most `client_recovery_max_publication_limit` of them and the
//!   whole reply is at most L bytes; otherwise it says `recovered: false`
//!   without publications, at the stream's top (Centrifugo's behaviour past its
//!   limit). The client subscribes and can page through `history` itself.
//! - **History replies** to clients hold as many of the asked publications,
//!   in order, as fit in L bytes: fewer than `limit` means "ask again `since`
//!   the last offset".
//! - **Any other reply** (presence, ...) larger than L is answered with
//!   [`REPLY_TOO_LARGE`] (106) instead.
//!
//! Transport framing adds a small constant per message (see the `Outbox`
//! docs), not counted in the bound.

use std::io;

use protocol::codes::ErrorCode;
use protocol::prost::Message;
use protocol::proto::{Publication, Push, Reply};

/// A publication whose encoding is larger than `client_outbox_bytes`.
pub const PUBLICATION_TOO_LARGE: ErrorCode = ErrorCode {
    code: 106,
    message: "limit exceeded: publication larger than client_outbox_bytes once encoded",
    temporary: false,
};

/// A reply (presence, ...) whose encoding is larger than `client_outbox_bytes`.
pub const REPLY_TOO_LARGE: ErrorCode =
    ErrorCode { code: 106, message: "limit exceeded: reply larger than client_outbox_bytes", temporary: false };

/// Worst JSON expansion of one input byte (a control byte as `\u00XX`).
const JSON_EXPANSION: usize = 6;
/// More than the fixed JSON and Protobuf structure of a publication push
/// (keys, braces, tags, lengths, a 20-digit offset) without its strings.
const STRUCTURE: usize = 512;
/// More than the structure each tag or info string adds.
const PER_STRING: usize = 16;

/// Encoded length of `reply` in `encoding` (Protobuf: with its length prefix).
pub fn encoded_len(encoding: protocol::Encoding, reply: &Reply) -> usize {
    match encoding {
        protocol::Encoding::Protobuf => {
            let len = reply.encoded_len();
            protocol::prost::length_delimiter_len(len) + len
        }
        protocol::Encoding::Json => {
            let mut counter = Counter(0);
            // The generated types always serialize (see `protocol::codec::encode`);
            // the counter never fails a write.
            match serde_json::to_writer(&mut counter, reply) {
                Ok(()) => counter.0,
                Err(_) => usize::MAX,
            }
        }
    }
}

/// Refuses a publication to `channel` whose push could not be delivered to a
/// client whose outbox holds `limit` bytes (see the module docs).
pub fn check_publication(channel: &str, publication: &Publication, limit: usize) -> Result<(), ErrorCode> {
    let info_len = publication.info.as_ref().map_or(0, |info| {
        info.user.len() + info.client.len() + info.conn_info.len() + info.chan_info.len() + 4 * PER_STRING
    });
    let tags_len: usize = publication.tags.iter().map(|(k, v)| k.len() + v.len() + 2 * PER_STRING).sum();
    let strings = publication.data.len() + channel.len() + info_len + tags_len;
    // Fast path: even at the worst expansion it fits.
    if strings.saturating_mul(JSON_EXPANSION).saturating_add(STRUCTURE) <= limit {
        return Ok(());
    }
    let mut worst = publication.clone();
    worst.offset = u64::MAX;
    let reply = Reply {
        push: Some(Push { channel: channel.to_string(), r#pub: Some(worst), ..Default::default() }),
        ..Default::default()
    };
    let largest = protocol::Encoding::ALL.into_iter().map(|encoding| encoded_len(encoding, &reply)).max().unwrap_or(0);
    if largest > limit {
        return Err(PUBLICATION_TOO_LARGE);
    }
    Ok(())
}

struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use protocol::codec;
    use protocol::Encoding;

    fn push_len(encoding: Encoding, channel: &str, data: Bytes) -> usize {
        let publication = Publication { data, offset: u64::MAX, ..Default::default() };
        let reply = Reply {
            push: Some(Push { channel: channel.into(), r#pub: Some(publication), ..Default::default() }),
            ..Default::default()
        };
        codec::encode(encoding, &reply).len()
    }

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        for data in [Bytes::from_static(br#"{"a":[1,2]}"#), Bytes::from_static(b"\x00\x01bin\xff"), Bytes::new()] {
            let publication = Publication { data: data.clone(), offset: 7, ..Default::default() };
            let reply = Reply {
                push: Some(Push { channel: "news".into(), r#pub: Some(publication), ..Default::default() }),
                ..Default::default()
            };
            for encoding in Encoding::ALL {
                assert_eq!(
                    encoded_len(encoding, &reply),
                    codec::encode(encoding, &reply).len(),
                    "{encoding:?} {data:?}"
                );
            }
        }
    }

    #[test]
    fn json_data_is_refused_exactly_when_its_push_passes_the_limit() {
        let limit = 4096;
        // JSON data: embedded raw, JSON is the larger encoding by a few bytes.
        let overhead = push_len(Encoding::Json, "news", Bytes::from_static(b"\"\""));
        let fits = Bytes::from(format!("\"{}\"", "x".repeat(limit - overhead)));
        assert_eq!(push_len(Encoding::Json, "news", fits.clone()), limit);
        let publication = |data: Bytes| Publication { data, ..Default::default() };
        assert_eq!(check_publication("news", &publication(fits), limit), Ok(()));
        let over = Bytes::from(format!("\"{}\"", "x".repeat(limit - overhead + 1)));
        assert_eq!(check_publication("news", &publication(over), limit), Err(PUBLICATION_TOO_LARGE));
    }

    #[test]
    fn binary_data_counts_its_json_escapes() {
        let limit = 4096;
        // 1,000 control bytes: 1,000 bytes in Protobuf, 6,000 in a JSON string.
        let binary = Bytes::from(vec![1u8; 1000]);
        assert!(push_len(Encoding::Protobuf, "news", binary.clone()) < limit);
        assert!(push_len(Encoding::Json, "news", binary.clone()) > limit);
        let publication = Publication { data: binary, ..Default::default() };
        assert_eq!(check_publication("news", &publication, limit), Err(PUBLICATION_TOO_LARGE));
        // Protobuf adds tags and lengths: 0 bytes of data still fit, and so
        // does a publication whose JSON and Protobuf are both under the limit.
        let empty = Publication::default();
        assert_eq!(check_publication("news", &empty, 128), Ok(()));
    }
}
