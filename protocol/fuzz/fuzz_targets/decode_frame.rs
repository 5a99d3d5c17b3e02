//! Feeds arbitrary bytes to `decode_frame` as `Command` and as `Reply`, in both
//! encodings, with a size limit. The decoder must never panic; whatever decodes
//! must re-encode in both encodings to a frame that decodes to as many messages,
//! and decoding must be a fixed point within one encoding.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode_frame, encode, encode_frame, DecodeError, Encoding, WireMessage};
use protocol::{Command, Reply};

/// Smaller than the hub's frame limits, larger than libFuzzer's default
/// `-max_len` (4096), so `TooLarge` is reached only with a larger `-max_len`.
const LIMIT: usize = 64 * 1024;

fn check<M: WireMessage + PartialEq + Debug>(encoding: Encoding, data: &[u8]) {
    let messages = match decode_frame::<M>(encoding, data, LIMIT) {
        Ok(messages) => messages,
        Err(DecodeError::TooLarge { size, limit }) => {
            assert_eq!((size, limit), (data.len(), LIMIT));
            assert!(data.len() > LIMIT);
            return;
        }
        Err(error) => {
            assert!(data.len() <= LIMIT);
            let _ = error.to_string();
            return;
        }
    };
    assert!(!messages.is_empty());
    for reencoding in Encoding::ALL {
        for message in &messages {
            let one = encode(reencoding, message);
            if reencoding == Encoding::Json {
                assert!(!one.contains(&b'\n'), "JSON message with a raw newline: {one:?}");
            }
        }
        let frame = encode_frame(reencoding, &messages);
        let again = decode_frame::<M>(reencoding, &frame, usize::MAX)
            .unwrap_or_else(|e| panic!("re-encoded {reencoding:?} frame does not decode: {e}\n{frame:?}"));
        assert_eq!(again.len(), messages.len());
        // Across encodings, `bytes` that are not JSON become JSON strings, so
        // only the count is kept; within one encoding nothing may change.
        if reencoding == encoding {
            assert_eq!(again, messages);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for encoding in Encoding::ALL {
        check::<Command>(encoding, data);
        check::<Reply>(encoding, data);
    }
});
