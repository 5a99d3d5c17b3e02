//! Brokers: how the node's operations reach a channel's state, and what
//! arrives from other nodes (the seam of centrifuge's `Broker` and
//! `BrokerEventHandler`).
//!
//! - [`Broker`]: what a node asks of its channels wherever they are sequenced:
//!   publish, presence, history, the live channels, and commands for users'
//!   sessions on every node. Two implementations:
//!   - [`memory::MemoryBroker`] (the default): one process; each channel's
//!     topic actor sequences its publications and fans them out (see
//!     [`crate::topic`]). Nothing else to start.
//!   - [`amqp::Cluster`]: many nodes joined through RabbitMQ (`--amqp-url`). A
//!     channel's publications are sequenced by one node, the owner of its
//!     shard (the active consumer of a single-active-consumer quorum queue),
//!     and delivered to every node, whose topic actors fan out to their local
//!     subscribers. See docs/ARCHITECTURE.md, "Across nodes".
//! - [`BrokerEvents`]: what arrives from other nodes (and, for the memory
//!   broker, from this one), handled by the node that started the broker: it
//!   registers its handler when it starts the broker, and the broker never
//!   calls a session or a transport itself.
//!
//! [`Envelope`] is what nodes say to each other, encoded with MessagePack.

pub mod amqp;
pub mod memory;
mod owner;

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use protocol::codes::{DisconnectCode, ErrorCode};
use protocol::proto::{self, ClientInfo, Publication, Push};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::config::ChannelOptions;
use crate::telemetry::TraceContext;
use crate::topic::{HistoryPage, HistoryQuery, Position, PublishArgs};

pub use crate::metrics::NodeInfo;

/// A server-API command for the sessions of a user, carried out on every
/// node. `client` narrows it to one connection, `session` to the connection
/// with that session id (the `session` of an SSE or HTTP-stream connect
/// reply; a WebSocket connection has none); both must match when both are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Subscribe server-side to `channel` (a `subscribe` push).
    Subscribe { user: String, channel: String, client: Option<String>, session: Option<String> },
    /// Unsubscribe from `channel` (an `unsubscribe` push with code 2000).
    Unsubscribe { user: String, channel: String, client: Option<String>, session: Option<String> },
    /// Close the connections with `code`, except the clients in `whitelist`.
    Disconnect {
        user: String,
        client: Option<String>,
        session: Option<String>,
        whitelist: Vec<String>,
        code: DisconnectCode,
    },
    /// The connections' expiry from the backend (server API `refresh`).
    Refresh { user: String, client: Option<String>, session: Option<String>, refresh: ExpiryRefresh },
}

/// What a `refresh` sets (Centrifugo's semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryRefresh {
    /// Close the connections as expired (3005 "connection expired").
    Expired,
    /// The connections expire at this Unix time (seconds); one already past
    /// closes them as expired.
    ExpireAt(u64),
    /// The connections no longer expire.
    Never,
}

/// What a node asks of channels, wherever they are sequenced. Errors are
/// protocol error codes: 102 unknown channel, 108 not available, 112
/// unrecoverable position, 100 (temporary) when the channel or the broker did
/// not answer in time.
pub trait Broker: Send + Sync + 'static {
    /// Sequences and delivers a publication; its position in the channel's
    /// stream (offset 0 where the namespace keeps no history).
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
        args: PublishArgs,
    ) -> BoxFuture<'a, Result<Position, ErrorCode>>;

    /// Every subscriber of `channel` (on every node).
    fn presence<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>>;

    /// (clients, distinct users) subscribed to `channel` (on every node).
    fn presence_stats<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(u32, u32), ErrorCode>>;

    /// A page of the channel's history.
    fn history<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, ErrorCode>>;

    /// Drops the channel's history.
    fn history_remove<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(), ErrorCode>>;

    /// Channels with subscribers and their subscriber counts, summed over nodes.
    fn channels(&self) -> BoxFuture<'_, Result<BTreeMap<String, u32>, ErrorCode>>;

    /// Carries out `command` on every node, this one included.
    fn user_command(&self, command: UserCommand) -> BoxFuture<'_, Result<(), ErrorCode>>;

    /// Hands emulation commands to the node named `node` that holds the
    /// session; `Ok(false)` when no such node or session is known.
    fn forward_emulation<'a>(
        &'a self,
        node: &'a str,
        session: &'a str,
        data: Vec<u8>,
        protobuf: bool,
    ) -> BoxFuture<'a, Result<bool, ErrorCode>>;

    /// The other live nodes (none for the memory broker).
    fn other_nodes(&self) -> Vec<NodeInfo>;

    /// Whether channels are sequenced elsewhere (topics are replicas).
    fn is_cluster(&self) -> bool;

    /// Whether the broker can carry operations now: always for the memory
    /// broker; for AMQP, while its connection to RabbitMQ is open. A cheap
    /// read, for the readiness probe.
    fn is_connected(&self) -> bool;

    /// Leaves: stops every task of the broker. Bounded in time.
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// What arrives from other nodes (and, with the memory broker, what this
/// node's own operations fan out), handled by the node. The broker calls these
/// from its own tasks; none of them blocks: they cast to topics and sessions,
/// and the queries answer from this node's state.
pub trait BrokerEvents: Send + Sync + 'static {
    /// A publication of `channel` sequenced by its owner, for this node's
    /// topic, with the trace it continues (the owner's `sequence` span).
    fn publication(&self, channel: &str, epoch: String, publication: Publication, trace: TraceContext);
    /// A join or leave announced by some node, for this node's topic.
    fn push(&self, channel: &str, push: Push);
    /// A command for sessions of this node.
    fn user_command(&self, command: UserCommand);
    /// This node's subscribers of `channel`.
    fn presence(&self, channel: String) -> BoxFuture<'static, Vec<ClientInfo>>;
    /// This node's channels with subscribers here, with their counts.
    fn channels(&self) -> BoxFuture<'static, BTreeMap<String, u32>>;
    /// Counts of this node.
    fn info(&self) -> NodeInfo;
    /// Emulation commands for a session of this node: whether it took them.
    fn emulation(&self, session: String, data: Vec<u8>, protobuf: bool) -> BoxFuture<'static, bool>;
}

/// Publisher info as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireInfo {
    pub user: String,
    pub client: String,
    #[serde(with = "serde_bytes_compat")]
    pub conn_info: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    pub chan_info: Vec<u8>,
}

impl From<&ClientInfo> for WireInfo {
    fn from(info: &ClientInfo) -> Self {
        WireInfo {
            user: info.user.clone(),
            client: info.client.clone(),
            conn_info: info.conn_info.to_vec(),
            chan_info: info.chan_info.to_vec(),
        }
    }
}

impl From<WireInfo> for ClientInfo {
    fn from(info: WireInfo) -> Self {
        ClientInfo {
            user: info.user,
            client: info.client,
            conn_info: info.conn_info.into(),
            chan_info: info.chan_info.into(),
        }
    }
}

/// A sequenced publication as the owner delivers it to every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WirePublication {
    pub offset: u64,
    #[serde(with = "serde_bytes_compat")]
    pub data: Vec<u8>,
    pub info: Option<WireInfo>,
    pub tags: BTreeMap<String, String>,
    /// The publisher asked for delta compression (set on a `Deliver` only;
    /// each node computes the deltas of its own subscribers). Added last and
    /// defaulted, so envelopes of older nodes still decode.
    #[serde(default)]
    pub delta: bool,
}

impl WirePublication {
    pub fn from_proto(publication: &proto::Publication) -> Self {
        WirePublication {
            offset: publication.offset,
            data: publication.data.to_vec(),
            info: publication.info.as_ref().map(WireInfo::from),
            tags: publication.tags.clone(),
            delta: publication.delta,
        }
    }

    pub fn into_proto(self) -> proto::Publication {
        proto::Publication {
            offset: self.offset,
            data: self.data.into(),
            info: self.info.map(ClientInfo::from),
            tags: self.tags,
            delta: self.delta,
            ..Default::default()
        }
    }
}

/// Messages between nodes (bodies of AMQP messages of type `hub.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Envelope {
    // ---- to the owner of a channel (through the publish exchange) ----
    /// Publish into a channel (from a node's API or client).
    Publish {
        #[serde(with = "serde_bytes_compat")]
        data: Vec<u8>,
        info: Option<WireInfo>,
        tags: BTreeMap<String, String>,
        idempotency_key: Option<String>,
        /// The publisher asks for delta compression (added last, defaulted).
        #[serde(default)]
        delta: bool,
    },
    /// The channel's stream: epoch, top offset and every retained publication.
    Sync,
    /// History page.
    History {
        limit: i32,
        since: Option<(u64, String)>,
        reverse: bool,
    },
    /// Drop the channel's history.
    HistoryRemove,

    // ---- from owners to every node (delivery exchange) ----
    /// A sequenced publication of `channel`.
    Deliver {
        channel: String,
        epoch: String,
        publication: WirePublication,
    },
    /// Someone joined or left `channel` on some node.
    Join {
        channel: String,
        info: WireInfo,
    },
    Leave {
        channel: String,
        info: WireInfo,
    },

    // ---- between nodes (broadcast or direct) ----
    Heartbeat(NodeInfo),
    /// A node is leaving the cluster.
    Goodbye {
        uid: String,
    },
    // The fields added after the first release (`session`, `whitelist`) are
    // last and default to empty, so envelopes of older nodes still decode.
    SubscribeUser {
        user: String,
        channel: String,
        client: Option<String>,
        #[serde(default)]
        session: Option<String>,
    },
    UnsubscribeUser {
        user: String,
        channel: String,
        client: Option<String>,
        #[serde(default)]
        session: Option<String>,
    },
    DisconnectUser {
        user: String,
        client: Option<String>,
        code: u16,
        reason: String,
        #[serde(default)]
        session: Option<String>,
        #[serde(default)]
        whitelist: Vec<String>,
    },
    /// Local presence of a channel (answered with `Reply::Presence`).
    PresenceQuery {
        channel: String,
    },
    /// Commands for an emulated session held by the receiving node.
    Emulation {
        session: String,
        protobuf: bool,
        #[serde(with = "serde_bytes_compat")]
        data: Vec<u8>,
    },

    /// An answer to a request (`correlation_id` names the request).
    Reply(Reply),
    /// This node's live channels with their local subscriber counts (answered
    /// with `Reply::Channels`). Added last: variants keep their indices.
    ChannelsQuery,
    /// Server API `refresh` for the sessions of a user (added last, as above).
    RefreshUser {
        user: String,
        client: Option<String>,
        session: Option<String>,
        refresh: ExpiryRefresh,
    },
}

impl Envelope {
    /// The envelope's kind in snake case (`publish`, `sync`, ...): the
    /// `operation` label of `hub_broker_round_trip_duration_seconds`.
    pub fn kind(&self) -> &'static str {
        match self {
            Envelope::Publish { .. } => "publish",
            Envelope::Sync => "sync",
            Envelope::History { .. } => "history",
            Envelope::HistoryRemove => "history_remove",
            Envelope::Deliver { .. } => "deliver",
            Envelope::Join { .. } => "join",
            Envelope::Leave { .. } => "leave",
            Envelope::Heartbeat(_) => "heartbeat",
            Envelope::Goodbye { .. } => "goodbye",
            Envelope::SubscribeUser { .. } => "subscribe_user",
            Envelope::UnsubscribeUser { .. } => "unsubscribe_user",
            Envelope::DisconnectUser { .. } => "disconnect_user",
            Envelope::PresenceQuery { .. } => "presence_query",
            Envelope::Emulation { .. } => "emulation",
            Envelope::Reply(_) => "reply",
            Envelope::ChannelsQuery => "channels_query",
            Envelope::RefreshUser { .. } => "refresh_user",
        }
    }
}

/// Answers to requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Published {
        offset: u64,
        epoch: String,
    },
    Stream {
        epoch: String,
        top: u64,
        publications: Vec<WirePublication>,
    },
    History {
        epoch: String,
        top: u64,
        publications: Vec<WirePublication>,
    },
    Done,
    Presence(Vec<WireInfo>),
    /// Emulation: whether the session was found.
    Emulation(bool),
    /// A protocol error (code, message).
    Error(u32, String),
    /// Live channels of one node with their subscriber counts there.
    Channels(Vec<(String, u32)>),
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        // MessagePack encoding of these plain data types cannot fail (no maps
        // with non-string keys, no custom serializers that error).
        rmp_serde::to_vec(self).expect("envelopes always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

/// Byte vectors as MessagePack binary (not arrays of integers).
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_messagepack() {
        let envelope = Envelope::Deliver {
            channel: "news".into(),
            epoch: "abc".into(),
            publication: WirePublication {
                offset: 3,
                data: b"{\"a\":1}".to_vec(),
                info: None,
                tags: BTreeMap::new(),
                delta: false,
            },
        };
        let bytes = envelope.encode();
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        assert!(Envelope::decode(b"\xc1garbage").is_err());
        let asked = Envelope::Publish {
            data: b"{}".to_vec(),
            info: None,
            tags: BTreeMap::new(),
            idempotency_key: None,
            delta: true,
        };
        assert_eq!(Envelope::decode(&asked.encode()).unwrap(), asked, "the delta flag travels");
    }
}
