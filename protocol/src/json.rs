//! Helpers for the JSON mapping of the protocol (used by generated code).
//!
//! In the JSON protocol a `bytes` field (`data`, `conn_info`, `chan_info`) holds
//! a JSON value embedded as it is, never base64. Bytes that are not valid JSON
//! (possible when a Protobuf client publishes binary data that a JSON client
//! then receives) are written as a JSON string of their lossy UTF-8 text, so a
//! JSON frame is always well-formed. 0 bytes are left out of the message (as
//! Centrifugo does: the field is absent, `undefined` in the JavaScript SDK); a
//! JSON `null` is kept as the 4 bytes `null`, like any other JSON value.

/// `skip_serializing_if` helper: true when the value equals its default.
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Serde `with` module for `bytes::Bytes` fields holding raw JSON.
pub mod raw {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        let text = String::from_utf8_lossy(bytes);
        match serde_json::from_str::<&RawValue>(&text) {
            Ok(raw) if !raw.get().contains(['\n', '\r']) => raw.serialize(serializer),
            // JSON frames are split on `\n` (and SSE on `\r` too), so a raw
            // line break must not reach the output. In valid JSON a raw line
            // break can only be whitespace between tokens (inside a string it
            // is escaped), so a space in its place keeps the same value.
            Ok(raw) => {
                let one_line = raw.get().replace(['\n', '\r'], " ");
                RawValue::from_string(one_line).map_err(serde::ser::Error::custom)?.serialize(serializer)
            }
            Err(_) => serializer.serialize_str(&text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        // `null` is a JSON value like any other: kept as its text.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        // A raw `\r` (a frame is split on `\n` only, so `\r` can arrive) is
        // whitespace between tokens: made a space here, as `serialize` would,
        // so that what was decoded is what is sent on (the same JSON value,
        // and the same bytes whichever way it goes next).
        if text.contains(['\n', '\r']) {
            return Ok(Bytes::from(text.replace(['\n', '\r'], " ")));
        }
        Ok(Bytes::copy_from_slice(text.as_bytes()))
    }
}
