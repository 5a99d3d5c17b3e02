//! One id and one `tracing` span per HTTP request.
//!
//! [`middleware`] (outermost in the App) takes the id from the request's
//! `X-Request-ID` header when it is sane ([`is_sane`]: 1 to
//! [`MAX_LEN`] bytes of visible ASCII), or else generates one (a UUID v4). It
//! handles the request inside `info_span!("request", id, method, path)` and
//! answers with the id in the response's `X-Request-ID` header: on every
//! answer, refusals and streaming responses (SSE, HTTP-stream) included.
//! The path is logged without its query, which may hold a token.
//!
//! With OpenTelemetry on ([`crate::telemetry`]), a W3C `traceparent` header
//! (and `tracestate`) makes the request span a child of the caller's span;
//! without one the request starts a new trace.
//!
//! Not covered: the WebSocket handshake, which never reaches the App
//! (`transport::ws`); its connection has a span of its own.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::telemetry::TraceContext;

/// The header that carries the request id, both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a request, in bytes.
pub const MAX_LEN: usize = 128;

/// Whether an incoming request id is used as is: 1 to [`MAX_LEN`] bytes, each
/// visible ASCII (`!` to `~`: no spaces, no control characters).
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// The request's own id when sane, else a new UUID v4.
fn request_id(request: &ServiceRequest) -> HeaderValue {
    match request.headers().get(&X_REQUEST_ID) {
        Some(id) if is_sane(id.as_bytes()) => id.clone(),
        _ => {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a hyphenated UUID is a valid header value")
        }
    }
}

/// The middleware (`App::wrap(from_fn(request_id::middleware))`, outermost).
pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(&request);
    // Sane or generated: visible ASCII either way.
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        path = request.path(),
    );
    let header = |name: &str| Some(request.headers().get(name)?.to_str().ok()?.to_owned());
    TraceContext::from_headers(header).adopt(&span);
    match next.call(request).instrument(span).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            response.headers_mut().insert(X_REQUEST_ID, id);
            Ok(response)
        }
        // An error the inner services did not turn into an answer: actix-web
        // answers it with its own response, which gets the id too.
        Err(error) => {
            let mut answer = error.error_response();
            answer.headers_mut().insert(X_REQUEST_ID, id);
            Err(actix_web::error::InternalError::from_response(error, answer).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_short_visible_ascii() {
        assert!(is_sane(b"abc-123_DEF.~"));
        assert!(is_sane(&[b'a'; MAX_LEN]));
        assert!(!is_sane(b""));
        assert!(!is_sane(&[b'a'; MAX_LEN + 1]));
        assert!(!is_sane(b"with space"));
        assert!(!is_sane(b"tab\there"));
        assert!(!is_sane("caf\u{e9}".as_bytes()));
    }
}
