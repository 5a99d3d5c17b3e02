//! The node: process-wide state shared by transports, sessions, topics and the
//! server API.
//!
//! It owns the registries (sessions by client id, client ids by user, topics by
//! channel), the token verifier, the metrics, and the operations the server API
//! exposes. Registries are `DashMap`s whose guards are never held across an
//! await; session actors register themselves on connect and unregister when
//! their state is dropped (normal stop or failure alike).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use protocol::codes::{self, DisconnectCode, ErrorCode};
use protocol::proto::{ClientInfo, Publication};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::auth::TokenVerifier;
use crate::broker::amqp::{AmqpSettings, Cluster};
use crate::broker::Envelope;
use crate::channel::Channel;
use crate::config::{ChannelOptions, Config};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::session::{SessionActor, SessionArgs, SessionMsg, TransportKind};
use crate::topic::registry::TopicRegistry;
use crate::topic::{HistoryPage, HistoryQuery, Position, PublishArgs, TopicMsg};
use crate::transport::Inflight;
use protocol::Encoding;

/// A connected session as the registries see it.
#[derive(Clone)]
pub struct SessionEntry {
    pub actor: ActorRef<SessionMsg>,
    pub user: Arc<str>,
}

/// Counts for `/api/info`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: u64,
    pub num_users: u64,
    pub num_channels: u64,
    pub num_subs: u64,
    pub uptime: u64,
}

pub struct Node {
    pub config: Arc<Config>,
    /// Set when the node runs with the AMQP broker (`amqp_url`).
    cluster: Arc<OnceLock<Arc<Cluster>>>,
    pub verifier: TokenVerifier,
    pub metrics: Arc<Metrics>,
    pub topics: TopicRegistry,
    pub uid: String,
    sessions: DashMap<Arc<str>, SessionEntry>,
    users: DashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Sessions of the HTTP transports by their secret session id, for `/emulation`.
    emulation: DashMap<Arc<str>, (ActorRef<SessionMsg>, Arc<Inflight>, Encoding)>,
    /// Session actors alive (connected or not), for shutdown and leak checks.
    live_sessions: DashMap<ractor::ActorId, Arc<Outbox>>,
    supervisor: ActorRef<()>,
    topic_supervisor: ActorCell,
    started: Instant,
    shutting_down: AtomicBool,
}

impl Node {
    /// Builds the node and starts its supervisors.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Node>> {
        let verifier = TokenVerifier::new(&config.token)?;
        let metrics = Arc::new(Metrics::default());
        let cluster = Arc::new(OnceLock::new());
        let (topics, topic_supervisor) = TopicRegistry::start(
            metrics.clone(),
            config.idempotency_window,
            config.client_recovery_max_publication_limit,
            cluster.clone(),
        )
        .await?;
        let (supervisor, _) = Actor::spawn(None, SessionSupervisor { metrics: metrics.clone() }, ()).await?;
        let amqp = config.amqp_url.clone().map(|url| AmqpSettings {
            url,
            prefix: config.amqp_prefix.clone(),
            shards: config.amqp_shards,
        });
        let node = Arc::new(Node {
            config: Arc::new(config),
            cluster,
            verifier,
            metrics,
            topics,
            uid: uuid::Uuid::new_v4().to_string(),
            sessions: DashMap::new(),
            users: DashMap::new(),
            emulation: DashMap::new(),
            live_sessions: DashMap::new(),
            supervisor,
            topic_supervisor,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
        });
        if let Some(settings) = amqp {
            let cluster = Cluster::start(&node, &settings).await?;
            // Set once, right after the node exists and before it serves.
            let _ = node.cluster.set(cluster);
        }
        Ok(node)
    }

    /// The cluster this node belongs to (AMQP broker), if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    pub fn name(&self) -> &str {
        &self.config.node_name
    }

    /// Starts a session actor for a new connection whose messages go to
    /// `outbox`. An HTTP-transport session also gets a secret session id under
    /// which `/emulation` finds it.
    pub async fn spawn_session(
        self: &Arc<Self>,
        outbox: Arc<Outbox>,
        transport: TransportKind,
        emulation: Option<(Arc<str>, Arc<Inflight>)>,
    ) -> anyhow::Result<ActorRef<SessionMsg>> {
        if self.is_shutting_down() {
            anyhow::bail!("node is shutting down");
        }
        let encoding = outbox.encoding();
        let emulation_id = emulation.as_ref().map(|(id, _)| id.clone());
        let args = SessionArgs { node: self.clone(), outbox: outbox.clone(), transport, emulation_id };
        let (actor, _) = Actor::spawn_linked(None, SessionActor, args, self.supervisor.get_cell()).await?;
        self.metrics.session_started(transport);
        self.live_sessions.insert(actor.get_id(), outbox);
        if let Some((id, inflight)) = emulation {
            self.emulation.insert(id, (actor.clone(), inflight, encoding));
        }
        Ok(actor)
    }

    /// The session behind an `/emulation` session id.
    pub fn emulation_session(&self, id: &str) -> Option<(ActorRef<SessionMsg>, Arc<Inflight>, Encoding)> {
        self.emulation.get(id).map(|entry| entry.value().clone())
    }

    pub(crate) fn emulation_stopped(&self, id: &str) {
        self.emulation.remove(id);
    }

    pub(crate) fn session_stopped(&self, id: ractor::ActorId) {
        self.live_sessions.remove(&id);
    }

    pub(crate) fn register(&self, client: Arc<str>, entry: SessionEntry) {
        self.users.entry(entry.user.clone()).or_default().insert(client.clone());
        self.sessions.insert(client, entry);
    }

    pub(crate) fn unregister(&self, client: &str, user: &str) {
        self.sessions.remove(client);
        self.users.remove_if_mut(user, |_, clients| {
            clients.remove(client);
            clients.is_empty()
        });
    }

    /// Session actors alive on this node.
    pub fn live_session_count(&self) -> usize {
        self.live_sessions.len()
    }

    /// Connected clients on this node.
    pub fn client_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Tells every client 3001 "shutdown" and waits (up to `timeout`) for the
    /// sessions to end. Returns the number still alive at the deadline.
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        self.shutting_down.store(true, Ordering::Release);
        for entry in self.live_sessions.iter() {
            entry.value().close(codes::SHUTDOWN);
        }
        let deadline = Instant::now() + timeout;
        while !self.live_sessions.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.live_sessions.len();
        if let Some(cluster) = self.cluster() {
            cluster.stop().await;
        }
        self.supervisor.stop(None);
        self.topic_supervisor.stop(None);
        left
    }

    fn sessions_of(&self, user: &str, client: Option<&str>) -> Vec<SessionEntry> {
        let clients: Vec<Arc<str>> = match self.users.get(user) {
            Some(clients) => clients.iter().filter(|c| client.is_none_or(|want| &***c == want)).cloned().collect(),
            None => Vec::new(),
        };
        clients.iter().filter_map(|c| self.sessions.get(c).map(|e| e.value().clone())).collect()
    }

    // ---- operations of the server API -------------------------------------------------

    pub async fn publish(&self, channel: &str, args: PublishArgs) -> Result<Position, ErrorCode> {
        let (channel, options) = Channel::parse(channel, &self.config)?;
        self.publish_to(&channel, options, args).await
    }

    /// Publishes into a validated channel: through its owner in a cluster,
    /// through the local topic otherwise.
    ///
    /// Refused with [`crate::limits::PUBLICATION_TOO_LARGE`] (106) when its
    /// push could not be delivered to a client (`client_outbox_bytes`).
    pub async fn publish_to(
        &self,
        channel: &Channel,
        options: &ChannelOptions,
        args: PublishArgs,
    ) -> Result<Position, ErrorCode> {
        let publication = Publication {
            data: args.data.clone(),
            info: args.info.clone(),
            tags: args.tags.clone(),
            ..Default::default()
        };
        crate::limits::check_publication(channel.as_str(), &publication, self.config.client_outbox_bytes)?;
        match self.cluster() {
            Some(cluster) => cluster.publish(channel.as_str(), args).await,
            None => self.topics.call(channel, options, |reply| TopicMsg::Publish(Box::new(args.clone()), reply)).await,
        }
    }

    pub async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, ErrorCode> {
        let (channel, options) = Channel::parse(channel, &self.config)?;
        if !options.presence {
            return Err(codes::NOT_AVAILABLE);
        }
        match self.cluster() {
            Some(cluster) => {
                let list = cluster.presence(channel.as_str()).await?;
                Ok(list.into_iter().map(|info| (info.client.clone(), info)).collect())
            }
            None => self.topics.call(&channel, options, TopicMsg::Presence).await,
        }
    }

    pub async fn presence_stats(&self, channel: &str) -> Result<(u32, u32), ErrorCode> {
        let (parsed, options) = Channel::parse(channel, &self.config)?;
        if !options.presence {
            return Err(codes::NOT_AVAILABLE);
        }
        if self.cluster().is_some() {
            let presence = self.presence(channel).await?;
            let users: HashSet<&str> = presence.values().map(|info| info.user.as_str()).collect();
            return Ok((presence.len() as u32, users.len() as u32));
        }
        self.topics.call(&parsed, options, TopicMsg::PresenceStats).await
    }

    /// Presence of this node's subscribers of `channel` (no topic is created).
    pub async fn local_presence(&self, channel: &str) -> Vec<ClientInfo> {
        let Some(topic) = self.topics.lookup(channel) else { return Vec::new() };
        match topic.call(TopicMsg::Presence, Some(Duration::from_secs(5))).await {
            Ok(ractor::rpc::CallResult::Success(Ok(map))) => map.into_values().collect(),
            _ => Vec::new(),
        }
    }

    pub async fn history(&self, channel: &str, query: HistoryQuery) -> Result<HistoryPage, ErrorCode> {
        let (channel, options) = Channel::parse(channel, &self.config)?;
        if !options.history_enabled() {
            return Err(codes::NOT_AVAILABLE);
        }
        match self.cluster() {
            Some(cluster) => cluster.history(channel.as_str(), query).await,
            None => self.topics.call(&channel, options, |reply| TopicMsg::History(query.clone(), reply)).await,
        }
    }

    pub async fn history_remove(&self, channel: &str) -> Result<(), ErrorCode> {
        let (channel, options) = Channel::parse(channel, &self.config)?;
        if !options.history_enabled() {
            return Err(codes::NOT_AVAILABLE);
        }
        match self.cluster() {
            Some(cluster) => cluster.history_remove(channel.as_str()).await,
            None => self.topics.call(&channel, options, TopicMsg::HistoryRemove).await,
        }
    }

    /// Sends a cluster-wide command, or applies it here when alone.
    fn everywhere(&self, envelope: Envelope) -> bool {
        let Some(cluster) = self.cluster().cloned() else { return false };
        tokio::spawn(async move {
            if let Err(code) = cluster.broadcast(envelope).await {
                tracing::warn!(code = code.code, "cluster-wide command not sent");
            }
        });
        true
    }

    /// Subscribes the user's connections (or one of them) to `channel`
    /// server-side, on every node.
    pub fn subscribe_user(&self, user: &str, channel: &str, client: Option<&str>) -> Result<(), ErrorCode> {
        Channel::parse(channel, &self.config)?;
        let envelope =
            Envelope::SubscribeUser { user: user.into(), channel: channel.into(), client: client.map(Into::into) };
        if !self.everywhere(envelope) {
            self.local_subscribe_user(user, channel, client)?;
        }
        Ok(())
    }

    pub fn local_subscribe_user(&self, user: &str, channel: &str, client: Option<&str>) -> Result<(), ErrorCode> {
        let (channel, _) = Channel::parse(channel, &self.config)?;
        for entry in self.sessions_of(user, client) {
            let _ = entry.actor.cast(SessionMsg::ServerSubscribe(channel.clone()));
        }
        Ok(())
    }

    /// Unsubscribes the user's connections (or one of them) from `channel`, on every node.
    pub fn unsubscribe_user(&self, user: &str, channel: &str, client: Option<&str>) -> Result<(), ErrorCode> {
        Channel::parse(channel, &self.config)?;
        let envelope =
            Envelope::UnsubscribeUser { user: user.into(), channel: channel.into(), client: client.map(Into::into) };
        if !self.everywhere(envelope) {
            self.local_unsubscribe_user(user, channel, client)?;
        }
        Ok(())
    }

    pub fn local_unsubscribe_user(&self, user: &str, channel: &str, client: Option<&str>) -> Result<(), ErrorCode> {
        let (channel, _) = Channel::parse(channel, &self.config)?;
        for entry in self.sessions_of(user, client) {
            let _ = entry.actor.cast(SessionMsg::ServerUnsubscribe(channel.clone()));
        }
        Ok(())
    }

    /// Disconnects the user's connections (or one of them) with `code`, on every node.
    pub fn disconnect_user(&self, user: &str, client: Option<&str>, code: DisconnectCode) {
        let envelope = Envelope::DisconnectUser {
            user: user.into(),
            client: client.map(Into::into),
            code: code.code,
            reason: code.reason.into(),
        };
        if !self.everywhere(envelope) {
            self.local_disconnect_user(user, client, code);
        }
    }

    pub fn local_disconnect_user(&self, user: &str, client: Option<&str>, code: DisconnectCode) {
        for entry in self.sessions_of(user, client) {
            let _ = entry.actor.cast(SessionMsg::Disconnect(code));
        }
    }

    /// Live channels with their subscriber counts: over the whole cluster
    /// (counts summed over nodes) or of this node alone.
    pub async fn channels(&self) -> Result<BTreeMap<String, u32>, ErrorCode> {
        match self.cluster() {
            Some(cluster) => cluster.channels().await,
            None => Ok(self.local_channels().await),
        }
    }

    /// This node's channels that have subscribers here, with their counts.
    pub async fn local_channels(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for name in self.topics.channels() {
            if let Some(topic) = self.topics.lookup(&name) {
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

    /// This node and every live node of its cluster.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![self.local_info()];
        if let Some(cluster) = self.cluster() {
            nodes.extend(cluster.live_nodes());
        }
        nodes
    }

    /// Counts of this node.
    pub fn local_info(&self) -> NodeInfo {
        NodeInfo {
            uid: self.uid.clone(),
            name: self.config.node_name.clone(),
            version: crate::VERSION.to_string(),
            num_clients: self.sessions.len() as u64,
            num_users: self.users.len() as u64,
            num_channels: self.topics.len() as u64,
            num_subs: Metrics::get(&self.metrics.subscriptions),
            uptime: self.started.elapsed().as_secs(),
        }
    }
}

/// Supervises session actors: a failing session is counted and logged; its
/// state's drop already unregistered it and left its channels.
struct SessionSupervisor {
    metrics: Arc<Metrics>,
}

impl Actor for SessionSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event {
            Metrics::inc(&self.metrics.session_failures);
            tracing::error!(actor = %cell.get_id(), %error, "session failed");
        }
        Ok(())
    }
}
