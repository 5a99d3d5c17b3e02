//! Cross-origin policy for every endpoint: an `allowed_origins` list of exact
//! origins (`https://app.example.com`) or `*`.
//!
//! - A request without `Origin` (servers, CLI tools) passes.
//! - A same-origin request (Origin's host equals the Host header) passes.
//! - An allowed cross-origin request gets `Access-Control-Allow-Origin` echoing
//!   its origin (with credentials allowed and `Vary: Origin`).
//! - A preflight `OPTIONS` from an allowed origin is answered 204 with the
//!   allowed methods and headers; from any other origin, 403.
//! - Any other request from an origin not allowed is refused with 403 and a
//!   JSON error — including the WebSocket handshake.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

/// Methods the hub serves cross-origin.
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Headers allowed when a preflight does not name any.
const DEFAULT_ALLOW_HEADERS: &str = "Content-Type, Authorization, X-API-Key, Last-Event-ID";
/// How long browsers may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// The configured `allowed_origins`, as the middleware reads it from the
/// App's data (`web::Data<AllowedOrigins>`); absent, every cross-origin
/// request is refused.
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

fn forbidden() -> HttpResponse {
    crate::http_error::response(
        actix_web::http::StatusCode::FORBIDDEN,
        protocol::codes::PERMISSION_DENIED.code,
        "origin not allowed",
    )
}

/// The middleware (`App::wrap(from_fn(cors::middleware))`).
pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    };
    let allowed = match request.app_data::<web::Data<AllowedOrigins>>() {
        Some(origins) => {
            let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
            origin.to_str().is_ok_and(|o| origin_allowed(&origins.0, o, host))
        }
        None => false,
    };
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !allowed {
        let (http, _) = request.into_parts();
        return Ok(ServiceResponse::new(http, forbidden()));
    }
    if preflight {
        let allow_headers = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static(DEFAULT_ALLOW_HEADERS));
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .insert_header((header::VARY, "Origin"))
            .finish();
        let (http, _) = request.into_parts();
        return Ok(ServiceResponse::new(http, response));
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
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
