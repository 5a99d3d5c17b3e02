//! The server API's one error type, and how it reaches the caller.
//!
//! Every way a call can end without a result is an [`ApiError`]; each maps to an
//! HTTP status and the JSON body `{"error":{"code":N,"message":"..."}}`:
//!
//! | variant | status | code |
//! | --- | --- | --- |
//! | [`ApiError::Unauthorized`] | 401 | 101 |
//! | [`ApiError::BadRequest`] | 400 | 107 |
//! | [`ApiError::MethodNotFound`] | 404 | 104 |
//! | [`ApiError::PayloadTooLarge`] | 413 | 106 |
//! | [`ApiError::Operation`] | 200 | the operation's code (102 unknown channel, 108 not available, ...) |
//!
//! An operation error answers HTTP 200, as Centrifugo does, so its client
//! libraries read the `error` object instead of failing on the status. Inside a
//! batch (or a broadcast) every error becomes that item's `error` object.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use protocol::codes::{self, ErrorCode};
use serde::Serialize;

/// Why a server API call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No API key is configured, or the request's key is missing or wrong.
    #[error("unauthorized")]
    Unauthorized,
    /// The body is not JSON, has a field of the wrong type, misses a required
    /// field, or asks for something this hub does not support.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The URL names no server API method.
    #[error("method not found")]
    MethodNotFound,
    /// The body is larger than [`super::MAX_BODY_BYTES`].
    #[error("limit exceeded: request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The operation ran and failed (unknown channel, not available, ...).
    #[error("{}", .0.message)]
    Operation(ErrorCode),
}

impl ApiError {
    pub fn bad_request(reason: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(reason.to_string())
    }

    /// The protocol error code carried in the body.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::Unauthorized => codes::UNAUTHORIZED.code,
            ApiError::BadRequest(_) => codes::BAD_REQUEST.code,
            ApiError::MethodNotFound => codes::METHOD_NOT_FOUND.code,
            ApiError::PayloadTooLarge { .. } => codes::LIMIT_EXCEEDED.code,
            ApiError::Operation(code) => code.code,
        }
    }

    /// The `error` object of a reply.
    pub fn body(&self) -> ErrorBody {
        let temporary = matches!(self, ApiError::Operation(code) if code.temporary);
        ErrorBody { code: self.code(), message: self.to_string(), temporary }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::Operation(code)
    }
}

/// The `error` object: `{"code":102,"message":"unknown channel"}`; `temporary`
/// appears only when true (the caller may retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub temporary: bool,
}

/// `{"error": {...}}`: the body of every refusal and of a failed operation.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorReply)]
pub(super) struct Envelope<'a> {
    error: &'a ErrorBody,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Operation(_) => StatusCode::OK,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(Envelope { error: &self.body() })
    }
}
