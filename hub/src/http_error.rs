//! One shape for every HTTP refusal of the hub: a status and the body
//! `{"error":{"code":N,"message":"..."}}`, where `code` is a client-protocol
//! error code (README, "Client protocol: codes").
//!
//! Handlers that refuse for a reason of their own (the server API, the HTTP
//! transports, CORS, the WebSocket handshake) build their answers through
//! [`response`] or [`head`]; [`middleware`] gives the same shape to what
//! actix-web answers by itself (no route, an extractor's limit or parse
//! error), with the code [`code_for`] picks from the status. It also answers
//! every request 503 with `Connection: close` once the node shuts down, so a
//! keep-alive client cannot hold the process open.
//!
//! A request head actix-http cannot parse at all (a request line over 64 KiB,
//! a head over 128 KiB, a malformed request line) is refused by actix-http
//! itself before any of the hub's code sees it; [`crate::conn`] gives those
//! answers the same JSON shape as they are written.

use std::fmt::Display;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use protocol::codes::{self, ErrorCode};

use tokio_util::sync::CancellationToken;

/// What the middleware needs to know, read from the App's data
/// (`web::Data<RefusalPolicy>`).
#[derive(Debug, Clone)]
pub struct RefusalPolicy {
    /// Cancelled once the node stops: every request is answered 503 from then on.
    pub stopping: CancellationToken,
    /// The transports' body limit (`Config::transport_body_limit`), named in 413 answers.
    pub transport_body_limit: usize,
}

/// The protocol error code of a refusal with `status`, where the refusing
/// code names none of its own: 401 → 101, 403 → 103, 404/405 → 104,
/// 413/414/431 → 106, 429 → 111, 503 → 108, other 5xx → 100, other 4xx → 107.
pub fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => codes::UNAUTHORIZED,
        403 => codes::PERMISSION_DENIED,
        404 | 405 => codes::METHOD_NOT_FOUND,
        413 | 414 | 431 => codes::LIMIT_EXCEEDED,
        429 => codes::TOO_MANY_REQUESTS,
        503 => codes::NOT_AVAILABLE,
        500..=599 => codes::INTERNAL,
        _ => codes::BAD_REQUEST,
    }
}

/// The JSON body of a refusal.
pub fn body(code: u32, message: impl Display) -> String {
    serde_json::json!({"error": {"code": code, "message": message.to_string()}}).to_string()
}

/// A refusal: `status` with the JSON body.
pub fn response(status: StatusCode, code: u32, message: impl Display) -> HttpResponse {
    HttpResponse::build(status).content_type(header::ContentType::json()).body(body(code, message))
}

/// A whole HTTP/1.1 refusal as bytes to write on a socket the hub owns (the
/// WebSocket handshake): status line, `extra_headers` (each ending in
/// `\r\n`), `Connection: close` and the JSON body with the code of [`code_for`].
pub fn head(status: StatusCode, message: impl Display, extra_headers: &str) -> String {
    let body = body(code_for(status).code, message);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
}

/// The middleware (`App::wrap(from_fn(http_error::middleware))`, outermost
/// but for [`crate::request_id::middleware`]):
/// 503 "shutting down" with `Connection: close` while the node stops, and
/// the JSON shape for any error answer that is not JSON yet.
pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let shutting_down =
        request.app_data::<web::Data<RefusalPolicy>>().is_some_and(|policy| policy.stopping.is_cancelled());
    if shutting_down {
        let (http, _) = request.into_parts();
        let mut answer = response(StatusCode::SERVICE_UNAVAILABLE, codes::NOT_AVAILABLE.code, "shutting down");
        answer.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(ServiceResponse::new(http, answer));
    }
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response);
    }
    // actix-web's own refusal: its error says why; otherwise the status does.
    // The only bodies actix-web bounds itself are the transports' POSTs.
    let body_limit =
        response.request().app_data::<web::Data<RefusalPolicy>>().map(|policy| policy.transport_body_limit);
    let message = match (status, body_limit, response.response().error()) {
        (StatusCode::PAYLOAD_TOO_LARGE, Some(limit), _) => {
            format!("limit exceeded: request body larger than {limit} bytes")
        }
        (_, _, Some(error)) => error.to_string(),
        _ => status.canonical_reason().unwrap_or("refused").to_lowercase(),
    };
    Ok(response.map_body(|head, _| {
        head.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        head.headers_mut().remove(header::CONTENT_LENGTH);
        BoxBody::new(body(code_for(status).code, message))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_status() {
        let code = |status: u16| code_for(StatusCode::from_u16(status).expect("a valid status")).code;
        assert_eq!(
            [400, 401, 403, 404, 405, 408, 413, 414, 426, 429, 431, 500, 503].map(code),
            [107, 101, 103, 104, 104, 107, 106, 106, 107, 111, 106, 100, 108]
        );
    }

    #[test]
    fn a_refusal_head_is_a_complete_response() {
        let text = head(StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version", "sec-websocket-version: 13\r\n");
        let body = r#"{"error":{"code":107,"message":"unsupported WebSocket version"}}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 sec-websocket-version: 13\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }
}
