//! A `Last-Event-ID` header value of `uni_sse`, as raw bytes: read without a
//! panic, and what it yields survives being issued again as an event id.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub::fuzzing::last_event_id(data));
