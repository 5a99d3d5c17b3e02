//! The memory broker: one process, nothing else to start (the default).
//!
//! Each channel's topic actor on this node sequences its publications (epoch,
//! offsets, history) and fans them out; this broker only routes the node's
//! operations to those topics, and carries user commands straight back to the
//! node's [`BrokerEvents`] handler. Presence and history answer from the
//! topics; the live channels from the handler (this node's topics).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use protocol::codes::ErrorCode;
use protocol::proto::ClientInfo;

use super::{Broker, BrokerEvents, NodeInfo, UserCommand};
use crate::channel::Channel;
use crate::config::ChannelOptions;
use crate::topic::registry::TopicRegistry;
use crate::topic::{HistoryPage, HistoryQuery, Position, PublishArgs, TopicMsg};

/// The single-process broker.
pub struct MemoryBroker {
    topics: TopicRegistry,
    events: Arc<dyn BrokerEvents>,
}

impl MemoryBroker {
    /// A broker over this node's `topics`; `events` is the node's handler.
    pub fn new(topics: TopicRegistry, events: Arc<dyn BrokerEvents>) -> MemoryBroker {
        MemoryBroker { topics, events }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
        args: PublishArgs,
    ) -> BoxFuture<'a, Result<Position, ErrorCode>> {
        self.topics.call(channel, options, move |reply| TopicMsg::Publish(Box::new(args.clone()), reply)).boxed()
    }

    fn presence<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>> {
        async move { Ok(self.topics.call(channel, options, TopicMsg::Presence).await?.into_values().collect()) }.boxed()
    }

    fn presence_stats<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(u32, u32), ErrorCode>> {
        self.topics.call(channel, options, TopicMsg::PresenceStats).boxed()
    }

    fn history<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, ErrorCode>> {
        self.topics.call(channel, options, move |reply| TopicMsg::History(query.clone(), reply)).boxed()
    }

    fn history_remove<'a>(
        &'a self,
        channel: &'a Channel,
        options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(), ErrorCode>> {
        self.topics.call(channel, options, TopicMsg::HistoryRemove).boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<BTreeMap<String, u32>, ErrorCode>> {
        let local = self.events.channels();
        async move { Ok(local.await) }.boxed()
    }

    fn user_command(&self, command: UserCommand) -> BoxFuture<'_, Result<(), ErrorCode>> {
        self.events.user_command(command);
        async { Ok(()) }.boxed()
    }

    fn forward_emulation<'a>(
        &'a self,
        _node: &'a str,
        _session: &'a str,
        _data: Vec<u8>,
        _protobuf: bool,
    ) -> BoxFuture<'a, Result<bool, ErrorCode>> {
        // There is no other node.
        async { Ok(false) }.boxed()
    }

    fn other_nodes(&self) -> Vec<NodeInfo> {
        Vec::new()
    }

    fn is_cluster(&self) -> bool {
        false
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}
