//! The server API: `POST /api/<method>` with a JSON body, shaped like
//! Centrifugo v5's HTTP server API so its client libraries (PyPI `cent`, npm
//! `cent.js`) work unchanged.
//!
//! Owns authentication of API calls, reading their bodies, and turning each
//! into a [`Node`] operation ([`methods`]). Guarantees:
//! - The key is checked before the body is read: `X-API-Key: <key>` or
//!   `Authorization: apikey <key>`, compared in constant time. Without a
//!   configured `api_key` every call is refused (401).
//! - A body is at most [`MAX_BODY_BYTES`] (after decompression); a larger one
//!   is refused with 413 before it is all read.
//! - Every failure is an [`ApiError`] with a JSON body
//!   `{"error":{"code":N,"message":"..."}}`: 401 (101), 400 (107, with serde's
//!   reason), 404 for an unknown method (104), 413 (106). A failed operation
//!   (unknown channel 102, not available 108, ...) answers 200 with the error,
//!   as Centrifugo does. No input makes a handler panic.
//! - Success is `{"result":{...}}`; `batch` answers `{"replies":[...]}`.
//!
//! `POST /api` serves the older single-endpoint format ([`legacy`]).
//! `GET /api/openapi.json` serves the OpenAPI 3.1 description ([`openapi`]),
//! without a key.

mod base64;
mod batch;
mod error;
mod legacy;
mod methods;
mod openapi;
mod pattern;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use subtle::{Choice, ConstantTimeEq};

pub use error::ApiError;
pub use methods::Method;
use methods::{Call, Outcome};

use crate::config::Config;
use crate::node::Node;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The server API's routes: `POST /api/<method>`, the older `POST /api`, and
/// `GET /api/openapi.json`.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/openapi.json", web::get().to(openapi_json))
        .route("/api/{method}", web::post().to(handler))
        .route("/api", web::post().to(handler_batch_root));
}

/// The names of every method `POST /api/<method>` serves, `batch` included.
pub fn method_names() -> Vec<&'static str> {
    Method::ALL.into_iter().map(Method::name).chain(["batch"]).collect()
}

/// `GET /api/openapi.json`: the OpenAPI 3.1 description; needs no key.
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type(header::ContentType::json()).body(openapi::document_json())
}

/// `POST /api/{method}`: one call, or `batch`.
pub async fn handler(
    request: HttpRequest,
    path: web::Path<String>,
    node: web::Data<Arc<Node>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &node.config)?;
    let started = Instant::now();
    let name = path.into_inner();
    tracing::debug!(method = %name, "server API call");
    let method = Method::from_name(&name);
    let label = if name == "batch" { Some("batch") } else { method.map(Method::name) };
    let answer = match method {
        _ if name == "batch" => run_batch(&request, &node, payload).await,
        Some(method) => run_call(&request, &node, method, payload).await,
        None => Err(ApiError::MethodNotFound),
    };
    if let Some(label) = label {
        node.metrics.observe_api_request(label, started.elapsed());
    }
    answer
}

async fn run_batch(request: &HttpRequest, node: &Node, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_body(request, payload).await?;
    let batch: batch::BatchRequest = methods::parse(&body)?;
    json(&batch::run(node, batch).await)
}

async fn run_call(
    request: &HttpRequest,
    node: &Node,
    method: Method,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(request, payload).await?;
    let call = Call::decode(method, &body)?;
    let result = call.execute(node).await?;
    json(&Outcome::Result(result))
}

/// `POST /api`: the single-endpoint format, newline-separated commands.
pub async fn handler_batch_root(
    request: HttpRequest,
    node: web::Data<Arc<Node>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &node.config)?;
    let started = Instant::now();
    let answer = async {
        let body = read_body(&request, payload).await?;
        let replies = legacy::run(&node, &body).await?;
        Ok(HttpResponse::Ok().content_type(header::ContentType::json()).body(replies))
    }
    .await;
    node.metrics.observe_api_request("legacy", started.elapsed());
    answer
}

fn json<T: Serialize>(value: &T) -> Result<HttpResponse, ApiError> {
    match serde_json::to_vec(value) {
        Ok(body) => Ok(HttpResponse::Ok().content_type(header::ContentType::json()).body(body)),
        Err(error) => {
            tracing::error!(%error, "cannot encode a server API reply");
            Err(ApiError::Operation(protocol::codes::INTERNAL))
        }
    }
}

/// Checks the request's API key against the configured one.
fn authorize(request: &HttpRequest, config: &Config) -> Result<(), ApiError> {
    let expected = config.api_key.as_deref().filter(|key| !key.is_empty()).ok_or(ApiError::Unauthorized)?;
    let headers = request.headers();
    let from_header = headers.get("x-api-key").and_then(|value| value.to_str().ok()).map(str::trim);
    let from_authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, key)| key.trim());
    let presented = [from_header, from_authorization];
    // Both are compared (no early exit), each in constant time.
    let accepted =
        presented.iter().flatten().fold(false, |ok, key| ok | keys_equal(key.as_bytes(), expected.as_bytes()));
    if accepted {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares a presented key with the expected one in time that depends only on
/// the expected key's length: every byte of `expected` is compared (a shorter
/// key is compared as if padded with zeros), with `subtle`'s constant-time
/// comparisons, and a difference in length only clears the result. (`subtle`'s
/// own slice comparison returns at once on a length difference, which would
/// tell the key's length.)
fn keys_equal(presented: &[u8], expected: &[u8]) -> bool {
    // A usize always fits in a u64 on the targets the hub builds for.
    let same_length = (presented.len() as u64).ct_eq(&(expected.len() as u64));
    let same_bytes = expected
        .iter()
        .enumerate()
        .fold(Choice::from(1), |same, (i, byte)| same & presented.get(i).copied().unwrap_or(0).ct_eq(byte));
    (same_length & same_bytes).into()
}

/// Reads the whole body, refusing it once it passes [`MAX_BODY_BYTES`].
async fn read_body(request: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Decodes a server API body as the hub would, without running it (the
/// `api_request` fuzz target, feature `fuzzing`): `form` 0 is `POST
/// /api/<method>` for method `selector` of [`Method::ALL`], 1 is
/// `/api/batch`, 2 is the legacy `POST /api`. Returns how many calls decoded;
/// every refusal is an [`ApiError`] whose answer is a 4xx, or a 200 carrying
/// an error (never a 5xx).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_only(form: u8, selector: u8, body: &[u8]) -> Result<usize, ApiError> {
    match form % 3 {
        0 => {
            let method = Method::ALL[usize::from(selector) % Method::ALL.len()];
            Call::decode(method, body).map(|_| 1)
        }
        1 => {
            let request: batch::BatchRequest = methods::parse(body)?;
            Ok(request.commands.iter().filter(|command| batch::decode_command(command).is_ok()).count())
        }
        _ => {
            let commands = serde_json::Deserializer::from_slice(body)
                .into_iter::<legacy::Command>()
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::bad_request)?;
            Ok(commands.iter().filter(|command| command.decode().is_ok()).count())
        }
    }
}
