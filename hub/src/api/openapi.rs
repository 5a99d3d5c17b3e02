//! The OpenAPI 3.1 description of the server API, served at
//! `GET /api/openapi.json` (no API key: it describes, it does not act).
//!
//! The schemas are derived from the request and result types themselves
//! (`utoipa::ToSchema`), so they follow what the handlers decode and encode.
//! The paths come from [`Method::ALL`] plus `batch`, each through an exhaustive
//! `match` on its request and result types: a new method cannot be added
//! without its description. Each `POST /api/<method>` documents:
//! - the request body (its JSON object; an empty body counts as `{}`, so the
//!   body is optional where the request has no required field),
//!   with what the handlers check beyond the types (a channel is not empty,
//!   `publish` and `broadcast` carry `data` or `b64data`, ...), so that every
//!   body the document allows is served and every body it forbids is refused;
//! - 200: `{"result": ...}`, or `{"error": {...}}` when the operation failed
//!   (HTTP 200, as Centrifugo does); `batch` answers `{"replies": [...]}`;
//! - 400, 401, 404, 413, 503 (shutting down): the refusals, `{"error": {...}}`;
//! - the API key, `X-API-Key: <key>` or `Authorization: apikey <key>`.

use std::sync::OnceLock;

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, RefOr, Required, ResponseBuilder};
use utoipa::OpenApi as _;

use super::batch::{BatchRequest, BatchResult};
use super::error::{Envelope, ErrorBody};
use super::methods::*;

/// The security schemes' names (either one authorizes a call).
pub const SECURITY_X_API_KEY: &str = "X-API-Key";
pub const SECURITY_AUTHORIZATION: &str = "AuthorizationApikey";

/// Every schema the paths refer to, with what they refer to in turn.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    PublishRequest,
    BroadcastRequest,
    UserChannelRequest,
    DisconnectRequest,
    RefreshRequest,
    ChannelRequest,
    HistoryRequest,
    ChannelsRequest,
    InfoRequest,
    BatchRequest,
    Empty,
    PublishResult,
    BroadcastResult,
    PresenceResult,
    PresenceStatsResult,
    HistoryResult,
    ChannelsResult,
    InfoResult,
    BatchResult,
    ErrorBody,
    Envelope,
)))]
struct Schemas;

/// Whether `method`'s body may be left out: an empty body counts as `{}`, which
/// is a whole request only when the request has no required field.
fn body_optional(method: Method) -> bool {
    match method {
        Method::Channels | Method::Info => true,
        Method::Publish
        | Method::Broadcast
        | Method::Subscribe
        | Method::Unsubscribe
        | Method::Disconnect
        | Method::Refresh
        | Method::Presence
        | Method::PresenceStats
        | Method::History
        | Method::HistoryRemove => false,
    }
}

/// The names of the request and result schemas of `method`.
fn schema_names(method: Method) -> (&'static str, &'static str) {
    match method {
        Method::Publish => ("PublishRequest", "PublishResult"),
        Method::Broadcast => ("BroadcastRequest", "BroadcastResult"),
        Method::Subscribe | Method::Unsubscribe => ("UserChannelRequest", "Empty"),
        Method::Disconnect => ("DisconnectRequest", "Empty"),
        Method::Refresh => ("RefreshRequest", "Empty"),
        Method::Presence => ("ChannelRequest", "PresenceResult"),
        Method::PresenceStats => ("ChannelRequest", "PresenceStatsResult"),
        Method::History => ("HistoryRequest", "HistoryResult"),
        Method::HistoryRemove => ("ChannelRequest", "Empty"),
        Method::Channels => ("ChannelsRequest", "ChannelsResult"),
        Method::Info => ("InfoRequest", "InfoResult"),
    }
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| String::from("{}")))
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut doc = Schemas::openapi();
    doc.info = InfoBuilder::new()
        .title("hub server API")
        .version(crate::VERSION)
        .description(Some(
            "The server HTTP API, shaped like Centrifugo v5's: `POST /api/<method>` with a JSON body. \
             An operation that fails answers HTTP 200 with `{\"error\":{...}}`, as Centrifugo does.",
        ))
        .build();
    let mut paths = PathsBuilder::new();
    for method in Method::ALL {
        let (request, result) = schema_names(method);
        let answer = OneOfBuilder::new()
            .item(ObjectBuilder::new().property("result", Ref::from_schema_name(result)).required("result"))
            .item(Ref::from_schema_name("ErrorReply"))
            .build();
        let summary = format!("`{}`", method.name());
        paths = paths.path(
            format!("/api/{}", method.name()),
            operation(method.name(), &summary, request, body_optional(method), Schema::OneOf(answer).into()),
        );
    }
    paths = paths.path(
        "/api/batch",
        operation(
            "batch",
            "`batch`: several commands, each `{\"<method>\": <request>}`",
            "BatchRequest",
            true,
            Ref::from_schema_name("BatchResult").into(),
        ),
    );
    doc.paths = paths.build();
    let components = doc.components.get_or_insert_with(Default::default);
    // `publish` and `broadcast` need `data` (any JSON value, `null` too) or a string `b64data`.
    for name in ["PublishRequest", "BroadcastRequest"] {
        if let Some(schema) = components.schemas.remove(name) {
            let with_data = AllOfBuilder::new().item(schema).item(data_or_b64data()).build();
            components.schemas.insert(name.to_string(), Schema::AllOf(with_data).into());
        }
    }
    components.add_security_scheme(
        SECURITY_X_API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("X-API-Key", "`X-API-Key: <key>`"))),
    );
    components.add_security_scheme(
        SECURITY_AUTHORIZATION,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "`Authorization: apikey <key>`",
        ))),
    );
    doc
}

/// `data` present, or `b64data` present and a string: what `payload` in
/// [`super::methods`] needs.
fn data_or_b64data() -> Schema {
    let b64data = ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
    let any_of = AnyOfBuilder::new()
        .item(ObjectBuilder::new().required("data"))
        .item(ObjectBuilder::new().property("b64data", b64data).required("b64data"))
        .build();
    Schema::AnyOf(any_of)
}

/// One `POST` operation: its body, its 200 answer and the refusals.
fn operation(id: &str, summary: &str, request: &str, body_optional: bool, answer: RefOr<Schema>) -> PathItem {
    let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    let refusal = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json(Ref::from_schema_name("ErrorReply").into()))
            .build()
    };
    let operation = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(
                    "A JSON object; unknown fields are ignored. An empty body counts as `{}`, \
                     so it may be left out where no field is required.",
                ))
                .content("application/json", json(Ref::from_schema_name(request).into()))
                .required(Some(if body_optional { Required::False } else { Required::True }))
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The result, or the operation's error (102 unknown channel, 108 not available, ...)")
                .content("application/json", json(answer))
                .build(),
        )
        .response("400", refusal("Bad request (107): not JSON, a field of the wrong type, a missing field"))
        .response("401", refusal("Unauthorized (101): no API key configured, or a missing or wrong key"))
        .response("404", refusal("Method not found (104)"))
        .response("413", refusal("Limit exceeded (106): the body is larger than 1 MiB"))
        .response("503", refusal("Not available (108): the hub is shutting down"))
        .security(SecurityRequirement::new(SECURITY_X_API_KEY, Vec::<String>::new()))
        .security(SecurityRequirement::new(SECURITY_AUTHORIZATION, Vec::<String>::new()))
        .build();
    PathItem::new(HttpMethod::Post, operation)
}
