//! `batch`: several calls in one request, `{"commands":[{"publish":{...}}, ...]}`,
//! answered `{"replies":[{"publish":{...}}, {"error":{...}}, ...]}` at the top
//! level of the body, one reply per command in the commands' order.
//!
//! Commands run one after the other, or up to [`BATCH_CONCURRENCY`] at a time
//! when `parallel` is true. The rule, as in Centrifugo (an individual
//! command's error goes in its reply slot) and in the older `POST /api`: every
//! command is decoded on its own, and one that fails gets its own `error`
//! while the others run:
//! - not an object: 107 "a command must be an object naming one method";
//! - naming no known method: 104 "method not found";
//! - naming two or more methods: 107 "a command names more than one method: publish, history";
//! - params that do not decode (wrong type, missing field): 107 with serde's reason.
//!
//! Only a body that is not a batch (not an object, `commands` not an array)
//! answers 400, and then nothing runs. Keys that name no method are ignored,
//! like unknown fields everywhere in the API.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::error::{ApiError, ErrorBody};
use super::methods::{Call, Method, MethodResult};
use crate::node::Node;

/// Commands of one `parallel` batch run at the same time.
const BATCH_CONCURRENCY: usize = 64;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchRequest {
    /// Each command as its JSON text, decoded one by one ([`decode_command`]):
    /// an object with one key naming the method, its value the method's
    /// request, e.g. `{"publish": {"channel": "news", "data": {}}}`. Any other
    /// value is not refused as a whole: its reply is an `error` (107, or 104
    /// when it names no method).
    #[serde(default)]
    #[schema(value_type = Vec<Value>)]
    pub commands: Vec<Box<RawValue>>,
    /// Run the commands concurrently (replies keep the commands' order).
    pub parallel: Option<bool>,
}

/// Decodes one batch command: an object with one key naming the method, e.g.
/// `{"publish": {...}}`. Errors as in the module docs.
pub(super) fn decode_command(command: &RawValue) -> Result<Call, ApiError> {
    let not_an_object = || ApiError::bad_request("a command must be an object naming one method");
    if !command.get().starts_with('{') {
        return Err(not_an_object());
    }
    let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(command.get()).map_err(|_| not_an_object())?;
    let named: Vec<Method> = Method::ALL.into_iter().filter(|method| fields.contains_key(method.name())).collect();
    match named.as_slice() {
        [] => Err(ApiError::MethodNotFound),
        [method] => {
            // Present: `named` holds only the keys of `fields`.
            let params = fields.get(method.name()).map_or("{}", |raw| raw.get());
            Call::decode(*method, params.as_bytes())
        }
        several => {
            let names: Vec<&str> = several.iter().map(|method| method.name()).collect();
            Err(ApiError::BadRequest(format!("a command names more than one method: {}", names.join(", "))))
        }
    }
}

/// Runs a batch: in order, or concurrently (bounded) when `parallel`.
pub async fn run(node: &Node, request: BatchRequest) -> BatchResult {
    let run = |command: Box<RawValue>| async move {
        let call = match decode_command(&command) {
            Ok(call) => call,
            Err(error) => return BatchReply::Error(error.body()),
        };
        let method = call.method();
        match call.execute(node).await {
            Ok(result) => BatchReply::Result(method, result),
            Err(error) => BatchReply::Error(error.body()),
        }
    };
    let commands = request.commands.into_iter();
    let replies = if request.parallel.unwrap_or(false) {
        stream::iter(commands).map(run).buffered(BATCH_CONCURRENCY).collect().await
    } else {
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            replies.push(run(command).await);
        }
        replies
    };
    BatchResult { replies }
}

/// `{"replies": [...]}`, at the top level of the body (no `result` around it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// One per command, in the commands' order: `{"<method>": <result>}` or
    /// `{"error": {"code": N, "message": "..."}}`.
    #[schema(value_type = Vec<Object>)]
    pub replies: Vec<BatchReply>,
}

/// One batch reply: `{"<method>": <result>}` or `{"error": {...}}`.
#[derive(Debug)]
pub enum BatchReply {
    Result(Method, MethodResult),
    Error(ErrorBody),
}

impl Serialize for BatchReply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            BatchReply::Result(method, result) => map.serialize_entry(method.name(), result)?,
            BatchReply::Error(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}
