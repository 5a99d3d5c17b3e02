//! `batch`: several calls in one request, `{"commands":[{"publish":{...}}, ...]}`,
//! answered `{"replies":[{"publish":{...}}, {"error":{...}}, ...]}` at the top
//! level of the body, one reply per command in the commands' order.
//!
//! Commands run one after the other, or up to [`BATCH_CONCURRENCY`] at a time
//! when `parallel` is true. A command that does not decode makes the whole
//! batch a 400 (nothing runs); a command naming no known method gets error
//! 104; every other failure is that command's `error`.

use futures_util::stream::{self, StreamExt};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::error::{ApiError, ErrorBody};
use super::methods::{
    BroadcastRequest, Call, ChannelRequest, ChannelsRequest, DisconnectRequest, HistoryRequest, InfoRequest, Method,
    MethodResult, PublishRequest, UserChannelRequest,
};
use crate::node::Node;

/// Commands of one `parallel` batch run at the same time.
const BATCH_CONCURRENCY: usize = 64;

#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    #[serde(default)]
    pub commands: Vec<BatchCommand>,
    /// Run the commands concurrently (replies keep the commands' order).
    pub parallel: Option<bool>,
}

/// One batch command: an object with one key naming the method, e.g.
/// `{"publish": {...}}`. Should several be set, the first in Centrifugo's
/// order wins; with none, the reply is error 104.
#[derive(Debug, Default, Deserialize)]
pub struct BatchCommand {
    publish: Option<PublishRequest>,
    broadcast: Option<BroadcastRequest>,
    subscribe: Option<UserChannelRequest>,
    unsubscribe: Option<UserChannelRequest>,
    disconnect: Option<DisconnectRequest>,
    history: Option<HistoryRequest>,
    history_remove: Option<ChannelRequest>,
    presence: Option<ChannelRequest>,
    presence_stats: Option<ChannelRequest>,
    info: Option<InfoRequest>,
    channels: Option<ChannelsRequest>,
}

impl BatchCommand {
    fn into_call(self) -> Option<Call> {
        let calls = [
            self.publish.map(Call::Publish),
            self.broadcast.map(Call::Broadcast),
            self.subscribe.map(Call::Subscribe),
            self.unsubscribe.map(Call::Unsubscribe),
            self.disconnect.map(Call::Disconnect),
            self.history.map(Call::History),
            self.history_remove.map(Call::HistoryRemove),
            self.presence.map(Call::Presence),
            self.presence_stats.map(Call::PresenceStats),
            self.info.map(Call::Info),
            self.channels.map(Call::Channels),
        ];
        calls.into_iter().flatten().next()
    }
}

/// Runs a batch: in order, or concurrently (bounded) when `parallel`.
pub async fn run(node: &Node, request: BatchRequest) -> BatchResult {
    let run = |command: BatchCommand| async move {
        let Some(call) = command.into_call() else {
            return BatchReply::Error(ApiError::MethodNotFound.body());
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
#[derive(Debug, Serialize)]
pub struct BatchResult {
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
