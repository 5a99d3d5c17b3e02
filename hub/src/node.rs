//! The node: what one hub process is, assembled at start.
//!
//! It builds the parts in their one order — the broker's connection (in a
//! cluster), the topics (replicas of the broker's channels in a cluster), the
//! session registry, the node's [`BrokerEvents`] handler, the broker running
//! with that handler, the channel operations ([`Engine`]) and what sessions
//! share ([`SessionContext`]) — and keeps them for the server API, whose
//! operations are here: publish, presence, history, the live channels, and
//! server-side subscribe, unsubscribe and disconnect of a user's sessions on
//! every node. Transports and sessions get the narrow handles they need (the
//! session context), never the node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use protocol::codes::{self, DisconnectCode, ErrorCode};
use protocol::proto::{ClientInfo, Publication, Push};
use ractor::ActorCell;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::broker::amqp::{AmqpSettings, Cluster};
use crate::broker::memory::MemoryBroker;
pub use crate::broker::ExpiryRefresh;
use crate::broker::{Broker, BrokerEvents, UserCommand};
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
pub use crate::metrics::NodeInfo;
use crate::session::{Selector, SessionContext, SessionRegistry};
use crate::telemetry::TraceContext;
use crate::topic::registry::TopicRegistry;
use crate::topic::{HistoryPage, HistoryQuery, Position, PublishArgs, Replication, TopicMsg};

pub struct Node {
    pub config: Arc<Config>,
    pub verifier: TokenVerifier,
    pub metrics: Arc<Metrics>,
    pub topics: TopicRegistry,
    pub uid: String,
    /// What sessions and transports share.
    pub sessions: Arc<SessionContext>,
    pub engine: Arc<Engine>,
    broker: Arc<dyn Broker>,
    events: Arc<NodeEvents>,
    topic_supervisor: ActorCell,
    /// Cancelled when shutdown starts.
    stopping: CancellationToken,
}

/// Narrows a server command to some of a user's connections: one client,
/// the connection with one session id (SSE and HTTP-stream connections have
/// one, given in their connect reply), or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub client: Option<&'a str>,
    pub session: Option<&'a str>,
}

impl Node {
    /// Builds the node: joins the cluster when `amqp_url` is set, starts the
    /// supervisors.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Node>> {
        let config = Arc::new(config);
        let verifier = TokenVerifier::new(&config.token)?;
        let metrics = Arc::new(Metrics::default());
        let uid = uuid::Uuid::new_v4().to_string();
        let stopping = CancellationToken::new();
        let cluster = match &config.amqp_url {
            Some(url) => {
                let settings =
                    AmqpSettings { url: url.clone(), prefix: config.amqp_prefix.clone(), shards: config.amqp_shards };
                Some(Cluster::connect(config.clone(), &settings, &uid, metrics.clone()).await?)
            }
            None => None,
        };
        let replication = cluster.clone().map(|cluster| cluster as Arc<dyn Replication>);
        let (topics, topic_supervisor) = TopicRegistry::start(
            metrics.clone(),
            config.idempotency_window,
            config.client_recovery_max_publication_limit,
            replication,
        )
        .await?;
        let registry = SessionRegistry::start(metrics.clone(), stopping.clone()).await?;
        let events = Arc::new(NodeEvents {
            config: config.clone(),
            uid: uid.clone(),
            metrics: metrics.clone(),
            topics: topics.clone(),
            registry: registry.clone(),
            started: Instant::now(),
        });
        let broker: Arc<dyn Broker> = match cluster {
            Some(cluster) => {
                cluster.run(events.clone()).await?;
                cluster
            }
            None => Arc::new(MemoryBroker::new(topics.clone(), events.clone())),
        };
        let engine = Arc::new(Engine::new(config.clone(), broker.clone()));
        let sessions = Arc::new(SessionContext {
            config: config.clone(),
            verifier: verifier.clone(),
            metrics: metrics.clone(),
            engine: engine.clone(),
            topics: topics.clone(),
            registry,
            proxies: Arc::new(crate::proxy::Proxies::new(config.proxy.clone(), metrics.clone())),
        });
        Ok(Arc::new(Node {
            config,
            verifier,
            metrics,
            topics,
            uid,
            sessions,
            engine,
            broker,
            events,
            topic_supervisor,
            stopping,
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.node_name
    }

    /// Whether this node is one of a cluster.
    pub fn is_cluster(&self) -> bool {
        self.broker.is_cluster()
    }

    /// Cancelled when shutdown starts (HTTP answers 503 from then on).
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Session actors alive on this node.
    pub fn live_session_count(&self) -> usize {
        self.sessions.registry.live_count()
    }

    /// Connected clients on this node.
    pub fn client_count(&self) -> usize {
        self.sessions.registry.client_count()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Whether this node should be sent traffic (`GET /ready`), and if not,
    /// why: it is shutting down, or its broker's connection (RabbitMQ, in a
    /// cluster) is not open. A node exists only once its broker has joined
    /// (`Cluster::run` returned), so there is no "starting" state to report.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.is_shutting_down() {
            Err("shutting down")
        } else if !self.broker.is_connected() {
            Err("broker not connected")
        } else {
            Ok(())
        }
    }

    /// Tells every client 3001 "shutdown" and waits (up to `timeout`) for the
    /// sessions to end (a drop-sentinel, no polling), then leaves the cluster
    /// and stops the supervisors. Returns the number of sessions still alive
    /// at the deadline.
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        self.stopping.cancel();
        let left = self.sessions.registry.drain(codes::SHUTDOWN, timeout).await;
        self.broker.stop().await;
        self.sessions.registry.stop_supervisor();
        self.topic_supervisor.stop(None);
        left
    }

    // ---- operations of the server API -------------------------------------------------

    pub async fn publish(&self, channel: &str, args: PublishArgs) -> Result<Position, ErrorCode> {
        self.engine.publish(channel, args).await
    }

    pub async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, ErrorCode> {
        self.engine.presence(channel).await
    }

    pub async fn presence_stats(&self, channel: &str) -> Result<(u32, u32), ErrorCode> {
        self.engine.presence_stats(channel).await
    }

    pub async fn history(&self, channel: &str, query: HistoryQuery) -> Result<HistoryPage, ErrorCode> {
        self.engine.history(channel, query).await
    }

    pub async fn history_remove(&self, channel: &str) -> Result<(), ErrorCode> {
        self.engine.history_remove(channel).await
    }

    /// Live channels with their subscriber counts (summed over the cluster's nodes).
    pub async fn channels(&self) -> Result<BTreeMap<String, u32>, ErrorCode> {
        self.engine.channels().await
    }

    /// Carries out a user command on every node; answers once it is sent.
    fn everywhere(&self, command: UserCommand) {
        let broker = self.broker.clone();
        tokio::spawn(async move {
            if let Err(code) = broker.user_command(command).await {
                tracing::warn!(code = code.code, "cluster-wide command not sent");
            }
        });
    }

    /// Subscribes the user's connections (or those `target` names) to
    /// `channel` server-side, on every node.
    pub fn subscribe_user(&self, user: &str, channel: &str, target: Target<'_>) -> Result<(), ErrorCode> {
        self.engine.channel(channel)?;
        self.everywhere(UserCommand::Subscribe {
            user: user.into(),
            channel: channel.into(),
            client: target.client.map(Into::into),
            session: target.session.map(Into::into),
        });
        Ok(())
    }

    /// Unsubscribes the user's connections (or those `target` names) from
    /// `channel`, on every node.
    pub fn unsubscribe_user(&self, user: &str, channel: &str, target: Target<'_>) -> Result<(), ErrorCode> {
        self.engine.channel(channel)?;
        self.everywhere(UserCommand::Unsubscribe {
            user: user.into(),
            channel: channel.into(),
            client: target.client.map(Into::into),
            session: target.session.map(Into::into),
        });
        Ok(())
    }

    /// Disconnects the user's connections (or those `target` names) with
    /// `code`, on every node, except the clients in `whitelist`.
    pub fn disconnect_user(&self, user: &str, target: Target<'_>, whitelist: Vec<String>, code: DisconnectCode) {
        self.everywhere(UserCommand::Disconnect {
            user: user.into(),
            client: target.client.map(Into::into),
            session: target.session.map(Into::into),
            whitelist,
            code,
        });
    }

    /// Sets the expiry of the user's connections (or those `target` names),
    /// on every node: server API `refresh`.
    pub fn refresh_user(&self, user: &str, target: Target<'_>, refresh: ExpiryRefresh) {
        self.everywhere(UserCommand::Refresh {
            user: user.into(),
            client: target.client.map(Into::into),
            session: target.session.map(Into::into),
            refresh,
        });
    }

    /// This node and every live node of its cluster.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![self.local_info()];
        nodes.extend(self.broker.other_nodes());
        nodes
    }

    /// Counts of this node.
    pub fn local_info(&self) -> NodeInfo {
        self.events.info()
    }

    /// Live nodes of the cluster, this one included (`None` alone).
    pub fn cluster_size(&self) -> Option<usize> {
        self.is_cluster().then(|| self.broker.other_nodes().len() + 1)
    }
}

/// The node's handler of what its broker delivers: casts to this node's
/// topics and sessions, queries answered from them. Holds handles, not the node.
struct NodeEvents {
    config: Arc<Config>,
    uid: String,
    metrics: Arc<Metrics>,
    topics: TopicRegistry,
    registry: Arc<SessionRegistry>,
    started: Instant,
}

impl BrokerEvents for NodeEvents {
    fn publication(&self, channel: &str, epoch: String, publication: Publication, trace: TraceContext) {
        if let Some(topic) = self.topics.lookup(channel) {
            let _ = topic.cast(TopicMsg::Deliver(epoch, Box::new(publication), trace, Instant::now()));
        }
    }

    fn push(&self, channel: &str, push: Push) {
        if let Some(topic) = self.topics.lookup(channel) {
            let _ = topic.cast(TopicMsg::Remote(Box::new(push)));
        }
    }

    fn user_command(&self, command: UserCommand) {
        let channel = |name: &str| crate::channel::Channel::parse(name, &self.config).ok().map(|(channel, _)| channel);
        match command {
            UserCommand::Subscribe { user, channel: name, client, session } => {
                if let Some(channel) = channel(&name) {
                    let select = Selector { client: client.as_deref(), session: session.as_deref(), except: &[] };
                    self.registry.subscribe_user(&user, channel, select);
                }
            }
            UserCommand::Unsubscribe { user, channel: name, client, session } => {
                if let Some(channel) = channel(&name) {
                    let select = Selector { client: client.as_deref(), session: session.as_deref(), except: &[] };
                    self.registry.unsubscribe_user(&user, channel, select);
                }
            }
            UserCommand::Disconnect { user, client, session, whitelist, code } => {
                let select = Selector { client: client.as_deref(), session: session.as_deref(), except: &whitelist };
                self.registry.disconnect_user(&user, select, code)
            }
            UserCommand::Refresh { user, client, session, refresh } => {
                let select = Selector { client: client.as_deref(), session: session.as_deref(), except: &[] };
                match refresh {
                    ExpiryRefresh::Expired => self.registry.disconnect_user(&user, select, codes::EXPIRED_CONNECTION),
                    ExpiryRefresh::ExpireAt(exp) => self.registry.refresh_user(&user, select, Some(exp)),
                    ExpiryRefresh::Never => self.registry.refresh_user(&user, select, None),
                }
            }
        }
    }

    fn presence(&self, channel: String) -> BoxFuture<'static, Vec<ClientInfo>> {
        let topic = self.topics.lookup(&channel);
        async move {
            let Some(topic) = topic else { return Vec::new() };
            match topic.call(TopicMsg::Presence, Some(Duration::from_secs(5))).await {
                Ok(ractor::rpc::CallResult::Success(Ok(map))) => map.into_values().collect(),
                _ => Vec::new(),
            }
        }
        .boxed()
    }

    fn channels(&self) -> BoxFuture<'static, BTreeMap<String, u32>> {
        let topics = self.topics.clone();
        async move {
            let mut out = BTreeMap::new();
            for name in topics.channels() {
                if let Some(topic) = topics.lookup(&name) {
                    if let Ok(ractor::rpc::CallResult::Success(n)) =
                        topic.call(TopicMsg::Count, Some(Duration::from_secs(5))).await
                    {
                        if n > 0 {
                            out.insert(name.to_string(), n as u32);
                        }
                    }
                }
            }
            out
        }
        .boxed()
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            uid: self.uid.clone(),
            name: self.config.node_name.clone(),
            version: crate::VERSION.to_string(),
            num_clients: self.registry.client_count() as u64,
            num_users: self.registry.user_count() as u64,
            num_channels: self.topics.len() as u64,
            num_subs: self.metrics.subscription_count(),
            uptime: self.started.elapsed().as_secs(),
        }
    }

    fn emulation(&self, session: String, data: Vec<u8>, protobuf: bool) -> BoxFuture<'static, bool> {
        let registry = self.registry.clone();
        let limit = self.config.max_frame_bytes;
        async move {
            let encoding = if protobuf { protocol::Encoding::Protobuf } else { protocol::Encoding::Json };
            registry.emulate(&session, encoding, &data, limit).await.is_ok()
        }
        .boxed()
    }
}

#[cfg(test)]
mod paused_sessions;
