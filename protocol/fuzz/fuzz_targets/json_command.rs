//! The JSON command decoder alone (what a browser's WebSocket, SSE or
//! HTTP-stream connection sends): `decode_frame::<Command>` on JSON text with
//! the hub's default frame limit. No panic; what decodes re-encodes as JSON
//! lines without a raw newline and decodes back to the same commands; a
//! refusal names its reason. Narrower than `decode_frame`, so the fuzzer's
//! time goes to the JSON paths (with `decode_frame.dict`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode_frame, encode, encode_frame, Encoding};
use protocol::Command;

/// The hub's default `max_frame_bytes`.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let commands = match decode_frame::<Command>(Encoding::Json, data, LIMIT) {
        Ok(commands) => commands,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    for command in &commands {
        let line = encode(Encoding::Json, command);
        assert!(!line.contains(&b'\n'), "a JSON command with a raw newline: {line:?}");
    }
    let frame = encode_frame(Encoding::Json, &commands);
    let again = decode_frame::<Command>(Encoding::Json, &frame, usize::MAX)
        .unwrap_or_else(|e| panic!("a re-encoded JSON frame does not decode: {e}\n{frame:?}"));
    assert_eq!(again, commands);
});
