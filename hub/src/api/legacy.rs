//! The single-endpoint format of `POST /api` (Centrifugo before v5, still served
//! by v5; npm `cent.js` uses it for `pipeline`).
//!
//! The body is a sequence of JSON commands `{"id":1,"method":"publish","params":{...}}`
//! (usually one per line); `method` is a name (any case) or Centrifugo's method
//! number. The reply holds one line per command, in order: `{"id":1,"result":{...}}`
//! or `{"id":1,"error":{...}}` (`id` only when given). Every command is decoded
//! before any runs, so a body that is not a JSON sequence answers 400 and
//! changes nothing; a command with bad params or an unknown method gets its own
//! error line. Commands run one after the other.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::{ApiError, ErrorBody};
use super::methods::{Call, Method, MethodResult};
use crate::node::Node;

#[derive(Debug, Deserialize)]
pub(super) struct Command {
    id: Option<u32>,
    method: Option<serde_json::Value>,
    params: Option<Box<RawValue>>,
}

#[derive(Debug, Serialize)]
struct Reply {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<MethodResult>,
}

fn method_of(value: Option<&serde_json::Value>) -> Result<Method, ApiError> {
    match value {
        Some(serde_json::Value::String(name)) => {
            Method::from_name(&name.to_ascii_lowercase()).ok_or(ApiError::MethodNotFound)
        }
        Some(serde_json::Value::Number(number)) => {
            number.as_u64().and_then(Method::from_number).ok_or(ApiError::MethodNotFound)
        }
        Some(_) => Err(ApiError::bad_request("`method` must be a string or a number")),
        None => Err(ApiError::bad_request("missing field `method`")),
    }
}

impl Command {
    pub(super) fn decode(&self) -> Result<Call, ApiError> {
        let method = method_of(self.method.as_ref())?;
        let params = self.params.as_ref().map_or("{}", |raw| raw.get());
        Call::decode(method, params.as_bytes())
    }
}

/// Runs every command of `body`; returns the reply lines joined by `\n`.
pub async fn run(node: &Node, body: &[u8]) -> Result<String, ApiError> {
    if body.trim_ascii().is_empty() {
        return Err(ApiError::bad_request("empty body"));
    }
    let commands = serde_json::Deserializer::from_slice(body)
        .into_iter::<Command>()
        .collect::<Result<Vec<Command>, _>>()
        .map_err(ApiError::bad_request)?;
    let mut lines = Vec::with_capacity(commands.len());
    for command in commands {
        let outcome = match command.decode() {
            Ok(call) => call.execute(node).await,
            Err(error) => Err(error),
        };
        let reply = match outcome {
            Ok(result) => Reply { id: command.id, error: None, result: Some(result) },
            Err(error) => Reply { id: command.id, error: Some(error.body()), result: None },
        };
        lines.push(serde_json::to_string(&reply).map_err(|e| ApiError::Operation(internal(e)))?);
    }
    Ok(lines.join("\n"))
}

fn internal(error: serde_json::Error) -> protocol::codes::ErrorCode {
    tracing::error!(%error, "cannot encode a server API reply");
    protocol::codes::INTERNAL
}
