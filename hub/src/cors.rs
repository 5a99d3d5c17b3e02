//! Cross-origin policy for every endpoint: an `allowed_origins` list of exact
//! origins (`https://app.example.com`) or `*`.
//!
//! Two layers, outermost first:
//! - [`guard`], ours: the policy. A request without `Origin` (servers, CLI
//!   tools) passes; a same-origin request (Origin's host equals the Host
//!   header) passes; an allowed origin passes; any other request with an
//!   `Origin`, preflight or not, is refused with 403 and the JSON error
//!   (code 103) before anything runs. The WebSocket handshake applies the
//!   same [`origin_allowed`] (transport/ws.rs).
//! - [`protocol`], actix-cors: the CORS protocol for the requests the guard
//!   let through: a preflight `OPTIONS` is answered (204, set by the guard) with the allowed
//!   methods, the requested headers echoed and a 600 s max age; every answer
//!   to a cross-origin request gets `Access-Control-Allow-Origin` echoing its
//!   origin, credentials allowed, and `Vary: Origin`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;

/// How long browsers may cache a preflight answer, in seconds.
const MAX_AGE: usize = 600;

/// The configured `allowed_origins`, as the guard reads it from the App's
/// data (`web::Data<AllowedOrigins>`); absent, every cross-origin request is
/// refused.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(pub Vec<String>);

/// Whether `origin` may use the hub, given the configured list and the Host.
pub fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    if allowed.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    // Same origin: scheme://HOST[:port] where HOST[:port] is the Host header.
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    host.is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// The policy (`App::wrap(from_fn(cors::guard))`, outside [`protocol`]).
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = request
            .app_data::<web::Data<AllowedOrigins>>()
            .is_some_and(|origins| origin.to_str().is_ok_and(|o| origin_allowed(&origins.0, o, host)));
        if !allowed {
            let refusal = crate::http_error::response(
                StatusCode::FORBIDDEN,
                protocol::codes::PERMISSION_DENIED.code,
                "origin not allowed",
            );
            let (http, _) = request.into_parts();
            return Ok(ServiceResponse::new(http, refusal));
        }
    }
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.call(request).await?.map_into_boxed_body();
    if preflight && response.status() == StatusCode::OK {
        // actix-cors answers an accepted preflight 200 with an empty body; the
        // hub has always said 204 No Content (what Express's cors and most
        // servers send), and clients may check it.
        *response.response_mut().status_mut() = StatusCode::NO_CONTENT;
    }
    Ok(response)
}

/// The CORS protocol (`App::wrap(cors::protocol())`, inside [`guard`]):
/// every origin that reaches it was already allowed by the guard.
pub fn protocol() -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_origin_fn(|_origin, _head| true)
        .allowed_methods(["GET", "POST"])
        .allow_any_header()
        .supports_credentials()
        .max_age(MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_same_origin() {
        let list = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed(&list, "https://app.example.com", None));
        assert!(!origin_allowed(&list, "https://evil.example.com", Some("hub.example.com")));
        assert!(origin_allowed(&list, "http://127.0.0.1:8000", Some("127.0.0.1:8000")));
        assert!(origin_allowed(&["*".to_string()], "https://any.where", None));
        assert!(!origin_allowed(&[], "https://any.where", Some("hub")));
    }
}
