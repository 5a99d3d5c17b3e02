//! The hub's delta compression seen from a subscriber (`--delta`): a
//! subscription with `delta: "fossil"` gets each publication's `data` as a
//! JSON string, either the payload's text or the Fossil delta from the
//! payload before; [`DeltaDecoder`] turns a frame back into the payloads, as
//! the SDK would, so the scanner measures them like any other.

use serde::Deserialize;

#[derive(Deserialize)]
struct Message {
    push: Option<PushMessage>,
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(rename = "pub")]
    publication: Option<PublicationMessage>,
}

#[derive(Deserialize)]
struct PublicationMessage {
    data: String,
    #[serde(default)]
    delta: bool,
}

/// One subscription's chain of payloads.
#[derive(Default)]
pub struct DeltaDecoder {
    last: Vec<u8>,
    out: Vec<u8>,
    /// Publications that came as deltas / in full.
    pub deltas: u64,
    pub full: u64,
}

impl DeltaDecoder {
    /// The payloads of the publications in `frame` (JSON protocol), one per
    /// line; what is not a publication is left out. A delta that does not
    /// apply is an error (the hub sent a delta against a base it did not send).
    pub fn decode(&mut self, frame: &[u8]) -> Result<&[u8], String> {
        self.out.clear();
        for line in frame.split(|&b| b == b'\n') {
            let Ok(message) = serde_json::from_slice::<Message>(line) else { continue };
            let Some(publication) = message.push.and_then(|p| p.publication) else { continue };
            let payload = if publication.delta {
                self.deltas += 1;
                protocol::fossil::apply(&self.last, publication.data.as_bytes()).map_err(|e| e.to_string())?
            } else {
                self.full += 1;
                publication.data.into_bytes()
            };
            self.out.extend_from_slice(&payload);
            self.out.push(b'\n');
            self.last = payload;
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_then_deltas() {
        let first = crate::payload::make(1, 0, 100);
        let second = crate::payload::make(2, 0, 100);
        let patch = protocol::fossil::delta(first.as_bytes(), second.as_bytes());
        let frame = format!(
            "{{}}\n{{\"push\":{{\"channel\":\"bench0\",\"pub\":{{\"data\":{}}}}}}}\n{{\"push\":{{\"channel\":\"bench0\",\"pub\":{{\"data\":{},\"delta\":true}}}}}}",
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(std::str::from_utf8(&patch).unwrap()).unwrap(),
        );
        let mut decoder = DeltaDecoder::default();
        let out = decoder.decode(frame.as_bytes()).unwrap().to_vec();
        assert_eq!(out, format!("{first}\n{second}\n").into_bytes());
        assert_eq!((decoder.full, decoder.deltas), (1, 1));
    }
}
