//! The channel operations that the server API and sessions share: publish,
//! presence, history and the live channels, each checked against the
//! channel's namespace options and carried out by the [`Broker`] (this node's
//! topics, or the channel's owner in a cluster).
//!
//! Errors are protocol error codes: 102 unknown channel (bad name or
//! namespace), 108 not available (presence or history off), 106 a publication
//! no client could be sent (see [`crate::limits`]), and the broker's own.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::codes::{self, DisconnectCode, ErrorCode};
use protocol::proto::{ClientInfo, Publication};

use crate::broker::{Broker, UserCommand};
use crate::channel::Channel;
use crate::config::{ChannelOptions, Config};
use crate::telemetry::TraceContext;
use crate::topic::{HistoryPage, HistoryQuery, Position, PublishArgs};

/// The channel operations of a node. Cheap to share (`Arc`).
pub struct Engine {
    pub config: Arc<Config>,
    pub broker: Arc<dyn Broker>,
}

impl Engine {
    pub fn new(config: Arc<Config>, broker: Arc<dyn Broker>) -> Engine {
        Engine { config, broker }
    }

    /// Closes every connection of `user`, on every node, except the client
    /// `keep` (a personal channel's `single_connection`).
    pub async fn disconnect_user_except(&self, user: &str, keep: &str, code: DisconnectCode) -> Result<(), ErrorCode> {
        let command = UserCommand::Disconnect {
            user: user.into(),
            client: None,
            session: None,
            whitelist: vec![keep.into()],
            code,
        };
        self.broker.user_command(command).await
    }

    /// Validates `channel` against the configuration: its name and namespace options.
    pub fn channel(&self, channel: &str) -> Result<(Channel, &ChannelOptions), ErrorCode> {
        Channel::parse(channel, &self.config)
    }

    pub async fn publish(&self, channel: &str, args: PublishArgs) -> Result<Position, ErrorCode> {
        let (channel, options) = self.channel(channel)?;
        self.publish_to(&channel, options, args).await
    }

    /// Publishes into a validated channel. Refused with
    /// [`crate::limits::PUBLICATION_TOO_LARGE`] (106) when its push could not
    /// be delivered to a client (`client_outbox_bytes`).
    pub async fn publish_to(
        &self,
        channel: &Channel,
        options: &ChannelOptions,
        mut args: PublishArgs,
    ) -> Result<Position, ErrorCode> {
        args.accepted.get_or_insert_with(std::time::Instant::now);
        if args.trace.is_empty() {
            // The caller's span (an API request, a client connection) when traced.
            args.trace = TraceContext::current();
        }
        let publication = Publication {
            data: args.data.clone(),
            info: args.info.clone(),
            tags: args.tags.clone(),
            ..Default::default()
        };
        crate::limits::check_publication(channel.as_str(), &publication, self.config.client_outbox_bytes)?;
        self.broker.publish(channel, options, args).await
    }

    /// Every subscriber of `channel`, by client id.
    pub async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, ErrorCode> {
        let (channel, options) = self.channel(channel)?;
        if !options.presence {
            return Err(codes::NOT_AVAILABLE);
        }
        let list = self.broker.presence(&channel, options).await?;
        Ok(list.into_iter().map(|info| (info.client.clone(), info)).collect())
    }

    /// (clients, distinct users) subscribed to `channel`.
    pub async fn presence_stats(&self, channel: &str) -> Result<(u32, u32), ErrorCode> {
        let (channel, options) = self.channel(channel)?;
        if !options.presence {
            return Err(codes::NOT_AVAILABLE);
        }
        self.broker.presence_stats(&channel, options).await
    }

    pub async fn history(&self, channel: &str, query: HistoryQuery) -> Result<HistoryPage, ErrorCode> {
        let (channel, options) = self.channel(channel)?;
        if !options.history_enabled() {
            return Err(codes::NOT_AVAILABLE);
        }
        self.broker.history(&channel, options, query).await
    }

    pub async fn history_remove(&self, channel: &str) -> Result<(), ErrorCode> {
        let (channel, options) = self.channel(channel)?;
        if !options.history_enabled() {
            return Err(codes::NOT_AVAILABLE);
        }
        self.broker.history_remove(&channel, options).await
    }

    /// Channels with subscribers and their counts (over the whole cluster).
    pub async fn channels(&self) -> Result<BTreeMap<String, u32>, ErrorCode> {
        self.broker.channels().await
    }
}
