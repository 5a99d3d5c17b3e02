//! A server API body, after two selector bytes: the form (`/api/<method>`,
//! `/api/batch`, legacy `POST /api`) and, for the first, the method. The
//! decoders must never panic and never refuse with a server error.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let [form, selector, body @ ..] = data {
        hub::fuzzing::api_request(*form, *selector, body);
    }
});
