//! Delta compression in a topic's fan-out (Centrifugo's `delta: "fossil"`).
//!
//! A subscriber that negotiated delta (its namespace lists `fossil` in
//! `allowed_delta_types`, its subscribe asked for it) gets a publication
//! either in full (`delta: false`) or as the Fossil delta from the
//! publication it was sent just before (`delta: true`). The topic decides per
//! subscriber and guarantees that a delta is only ever sent against a base the
//! client holds:
//!
//! - the base is the channel's previous publication *as this topic fanned it
//!   out*, named by the topic's own sequence number ([`Previous`]); each delta
//!   subscriber remembers the number of the last publication it was sent
//!   ([`DeltaBase`]);
//! - a delta goes only to a subscriber whose remembered number is the
//!   previous publication's; every other one (just subscribed, a publication
//!   skipped by its tags filter, a recovery that did not end at the channel's
//!   top) gets the full payload, which becomes its new base;
//! - as in Centrifugo, a delta is made only for a publication that asked for
//!   it (`delta: true` in the server API's publish or broadcast, or the
//!   namespace's `delta_publish`), and it is sent in full where the delta is
//!   not smaller than the data (centrifuge `hub.go`, `getDeltaPub`);
//! - in the JSON protocol a delta subscriber's `data` is always a JSON string
//!   (the payload's text, or the delta's): centrifuge-js `JsonCodec.applyDeltaIfNeeded`
//!   reads it with `JSON.parse` (full) or as the UTF-8 bytes of the delta. A
//!   delta that is not valid UTF-8 (possible with binary payloads) cannot be
//!   such a string, and a base that is not UTF-8 reached the client changed:
//!   in both cases that subscriber gets the full payload.
//!
//! Each variant (plain, full for delta subscribers, delta) is encoded at most
//! once per encoding per publication and its bytes shared, like the rest of
//! the fan-out; the delta itself is computed at most once per publication.
//! Every node computes deltas from the publications its topic delivers, so a
//! cluster needs nothing more on the wire than the publication's flag.

use bytes::Bytes;
use protocol::codec;
use protocol::fossil;
use protocol::proto::{Publication, Push, Reply};
use protocol::Encoding;

/// A delta subscriber's position in the channel's chain of deltas: the
/// topic's sequence number of the last publication it was sent, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaBase {
    sent: Option<u64>,
}

impl DeltaBase {
    /// A subscriber that holds no base yet: its next publication goes in full.
    pub fn none() -> Self {
        DeltaBase::default()
    }

    pub(super) fn at(sent: u64) -> Self {
        DeltaBase { sent: Some(sent) }
    }
}

/// The last publication a topic fanned out: the base of the next delta.
#[derive(Debug, Clone)]
pub(super) struct Previous {
    /// The topic's sequence number of that publication (not the offset: a
    /// channel without history has none).
    pub seq: u64,
    pub data: Bytes,
}

/// The encodings of one publication for its fan-out, each made on first use.
pub(super) struct Encodings<'a> {
    channel: &'a str,
    publication: Publication,
    /// The data of the previous publication when this one asked for delta.
    base: Option<Bytes>,
    plain: [Option<Bytes>; 2],
    /// Full payload for delta subscribers (JSON: the data as a JSON string;
    /// Protobuf: the plain bytes).
    full: [Option<Bytes>; 2],
    /// The delta variant: `Some(None)` when it does not pay (full instead).
    delta: [Option<Option<Bytes>>; 2],
    /// The Fossil delta, computed once: `Some(None)` when it does not pay.
    fossil: Option<Option<Vec<u8>>>,
}

impl<'a> Encodings<'a> {
    pub fn new(channel: &'a str, publication: Publication, base: Option<Bytes>) -> Self {
        Encodings {
            channel,
            publication,
            base,
            plain: [None, None],
            full: [None, None],
            delta: [None, None],
            fossil: None,
        }
    }

    /// The publication as every subscriber without delta gets it.
    pub fn plain(&mut self, encoding: Encoding) -> Bytes {
        let (channel, publication) = (self.channel, &self.publication);
        self.plain[encoding.index()].get_or_insert_with(|| encode(encoding, channel, publication.clone())).clone()
    }

    /// The publication for a delta subscriber: the delta when `has_base` (it
    /// was sent the previous publication) and the delta pays, else in full.
    pub fn for_delta_subscriber(&mut self, encoding: Encoding, has_base: bool) -> Bytes {
        if has_base && self.base.is_some() {
            if let Some(bytes) = self.delta(encoding) {
                return bytes;
            }
        }
        self.full(encoding)
    }

    pub fn publication(&self) -> &Publication {
        &self.publication
    }

    pub fn into_publication(self) -> Publication {
        self.publication
    }

    fn full(&mut self, encoding: Encoding) -> Bytes {
        if encoding == Encoding::Protobuf {
            return self.plain(encoding);
        }
        let (channel, publication) = (self.channel, &self.publication);
        self.full[encoding.index()]
            .get_or_insert_with(|| {
                let mut full = publication.clone();
                full.data = json_string(&String::from_utf8_lossy(&publication.data));
                encode(encoding, channel, full)
            })
            .clone()
    }

    fn delta(&mut self, encoding: Encoding) -> Option<Bytes> {
        if let Some(made) = &self.delta[encoding.index()] {
            return made.clone();
        }
        let (base, data) = (self.base.as_deref().unwrap_or_default(), &self.publication.data);
        let fossil = self
            .fossil
            .get_or_insert_with(|| {
                let patch = fossil::delta(base, data);
                // As Centrifugo: a delta that is not smaller than the data is not sent.
                (patch.len() < data.len()).then_some(patch)
            })
            .as_deref();
        let made = fossil.and_then(|patch| {
            let data = match encoding {
                Encoding::Protobuf => Bytes::copy_from_slice(patch),
                // A JSON client holds the base as the text it was sent: a base
                // that is not UTF-8 reached it changed (lossy), so no delta.
                Encoding::Json if std::str::from_utf8(base).is_err() => return None,
                Encoding::Json => json_string(std::str::from_utf8(patch).ok()?),
            };
            let publication = Publication { data, delta: true, ..self.publication.clone() };
            Some(encode(encoding, self.channel, publication))
        });
        self.delta[encoding.index()] = Some(made.clone());
        made
    }
}

/// A publication's data for a delta subscriber of the JSON protocol: its
/// text as a JSON string (which the JSON codec embeds as it is).
pub(super) fn json_string(text: &str) -> Bytes {
    // Serializing a `str` to JSON cannot fail (no map keys, no I/O).
    Bytes::from(serde_json::to_vec(text).unwrap_or_default())
}

/// A recovered publication as a delta subscriber gets it in its subscribe
/// result: in full (Centrifugo chains deltas among recovered ones; the hub
/// sends them whole, which any client applies), with JSON data as a string.
pub(super) fn recovered_for_delta(encoding: Encoding, mut publication: Publication) -> Publication {
    if encoding == Encoding::Json {
        publication.data = json_string(&String::from_utf8_lossy(&publication.data));
    }
    publication.delta = false;
    publication
}

fn encode(encoding: Encoding, channel: &str, publication: Publication) -> Bytes {
    let push = Push { channel: channel.to_string(), r#pub: Some(publication), ..Default::default() };
    codec::encode(encoding, &Reply { push: Some(push), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::codec::decode_frame;

    fn publication(data: &str) -> Publication {
        Publication { data: Bytes::copy_from_slice(data.as_bytes()), offset: 7, ..Default::default() }
    }

    fn decoded(encoding: Encoding, bytes: &Bytes) -> Publication {
        let replies: Vec<Reply> = decode_frame(encoding, bytes, 1 << 20).unwrap();
        replies[0].push.clone().unwrap().r#pub.unwrap()
    }

    const BASE: &str = r#"{"id":1,"name":"Alice","score":100,"text":"lorem ipsum dolor sit amet"}"#;
    const NEXT: &str = r#"{"id":1,"name":"Alice","score":101,"text":"lorem ipsum dolor sit amet"}"#;

    #[test]
    fn a_delta_subscriber_with_the_base_gets_the_delta_once_encoded() {
        let mut encodings = Encodings::new("ch", publication(NEXT), Some(Bytes::from_static(BASE.as_bytes())));
        let json = encodings.for_delta_subscriber(Encoding::Json, true);
        let again = encodings.for_delta_subscriber(Encoding::Json, true);
        assert_eq!(json.as_ptr(), again.as_ptr(), "encoded once, the bytes shared");
        let pubjson = decoded(Encoding::Json, &json);
        assert!(pubjson.delta);
        let text: String = serde_json::from_slice(&pubjson.data).unwrap();
        assert_eq!(fossil::apply(BASE.as_bytes(), text.as_bytes()).unwrap(), NEXT.as_bytes());
        let pb = decoded(Encoding::Protobuf, &encodings.for_delta_subscriber(Encoding::Protobuf, true));
        assert!(pb.delta);
        assert_eq!(fossil::apply(BASE.as_bytes(), &pb.data).unwrap(), NEXT.as_bytes());
        assert_eq!(pb.offset, 7);
    }

    #[test]
    fn without_the_base_or_without_delta_asked_the_payload_is_full() {
        let mut encodings = Encodings::new("ch", publication(NEXT), Some(Bytes::from_static(BASE.as_bytes())));
        let full = decoded(Encoding::Json, &encodings.for_delta_subscriber(Encoding::Json, false));
        assert!(!full.delta);
        assert_eq!(serde_json::from_slice::<String>(&full.data).unwrap(), NEXT);
        let plain = decoded(Encoding::Json, &encodings.plain(Encoding::Json));
        assert_eq!(&plain.data[..], NEXT.as_bytes(), "plain subscribers get embedded JSON");
        let mut unasked = Encodings::new("ch", publication(NEXT), None);
        let pb = encodings_pb(&mut unasked);
        assert!(!pb.delta);
        assert_eq!(&pb.data[..], NEXT.as_bytes());
    }

    fn encodings_pb(encodings: &mut Encodings<'_>) -> Publication {
        decoded(Encoding::Protobuf, &encodings.for_delta_subscriber(Encoding::Protobuf, true))
    }

    #[test]
    fn a_delta_that_does_not_pay_is_not_sent() {
        let mut encodings =
            Encodings::new("ch", publication(r#"{"x":"zyx"}"#), Some(Bytes::from_static(BASE.as_bytes())));
        let json = decoded(Encoding::Json, &encodings.for_delta_subscriber(Encoding::Json, true));
        assert!(!json.delta);
        assert_eq!(serde_json::from_slice::<String>(&json.data).unwrap(), r#"{"x":"zyx"}"#);
        assert!(!encodings_pb(&mut encodings).delta);
    }

    #[test]
    fn a_base_that_is_not_utf8_gives_json_subscribers_full_payloads() {
        let mut binary = BASE.as_bytes().to_vec();
        binary[3] = 0xff;
        let mut encodings = Encodings::new("ch", publication(NEXT), Some(Bytes::from(binary)));
        assert!(!decoded(Encoding::Json, &encodings.for_delta_subscriber(Encoding::Json, true)).delta);
        assert!(encodings_pb(&mut encodings).delta, "Protobuf clients hold the bytes as they are");
    }

    #[test]
    fn recovered_publications_are_full_with_json_data_as_a_string() {
        let json = recovered_for_delta(Encoding::Json, publication(BASE));
        assert_eq!(serde_json::from_slice::<String>(&json.data).unwrap(), BASE);
        let pb = recovered_for_delta(Encoding::Protobuf, publication(BASE));
        assert_eq!(&pb.data[..], BASE.as_bytes());
    }
}
