//! Entry points of the hub's fuzz targets (`hub/fuzz`), compiled only with
//! the `fuzzing` feature: the decoders of untrusted input that live inside
//! the hub rather than in the `protocol` crate. Each function panics when an
//! invariant breaks, which is what the fuzzer looks for.

use actix_web::ResponseError;

/// A server API body in one of its three forms (see `api::decode_only`):
/// decoding never panics, and a refusal is never a server error.
pub fn api_request(form: u8, selector: u8, body: &[u8]) {
    if let Err(error) = crate::api::decode_only(form, selector, body) {
        let status = error.status_code();
        assert!(!status.is_server_error(), "{error:?} answers {status}");
        let _ = error.to_string();
    }
}

/// A `Last-Event-ID` header value of `uni_sse`: reading it never panics;
/// bytes that are not UTF-8 give no position; and the positions read, issued
/// again as an event id (ASCII only), read back as the same positions.
pub fn last_event_id(value: &[u8]) {
    use crate::transport::uni_sse::{ascii_json, parse_last_event_id};
    let (positions, all) = parse_last_event_id(value);
    if std::str::from_utf8(value).is_err() {
        assert!(positions.is_empty() && !all, "positions from bytes that are not UTF-8");
    }
    let id = match serde_json::to_string(&positions) {
        Ok(json) => ascii_json(&json),
        Err(error) => panic!("positions that do not encode: {error}"),
    };
    assert!(id.is_ascii(), "an event id that is not ASCII: {id:?}");
    let (again, again_all) = parse_last_event_id(id.as_bytes());
    assert!(again_all, "an issued id read back only in part: {id:?}");
    assert_eq!(again, positions, "an issued id read back as other positions");
}
