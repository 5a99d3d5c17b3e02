//! The AMQP broker: many hub nodes joined through RabbitMQ.
//!
//! Topology (prefix `p`, default `hub`; S shards, default 16):
//! - `p.publish`: consistent-hash exchange. Backend services publish here with
//!   routing key = channel and the data as body (headers `idempotency_key`,
//!   `tags`); nodes publish here too (type `hub`, a MessagePack [`Envelope`]).
//!   It hashes each channel onto one of S shard queues `p.shard.K`.
//! - `p.shard.K`: quorum queues with single active consumer. Every node
//!   consumes every shard; RabbitMQ makes one node the active consumer of each,
//!   the owner of its channels: it sequences their publications and keeps their
//!   history ([`super::owner`]). When the owner dies, RabbitMQ activates another
//!   node's consumer; that node starts new epochs.
//! - `p.deliver` (fanout): owners publish sequenced publications and join/leave
//!   events here; `p.broadcast` (fanout): heartbeats and cluster-wide commands;
//!   `p.direct` (direct, key = node name): requests to one node.
//! - `p.node.<uid>`: each node's one exclusive queue, bound to those three
//!   exchanges — three bindings per node whatever its clients do, so reconnect
//!   storms never churn bindings. It also receives the replies to the node's
//!   requests (`reply_to` + `correlation_id`).
//!
//! Guarantees: per-channel order (one sequencer, one delivery channel, FIFO
//! queues); owners ack a shard message only after the delivery it produced is
//! confirmed, so a publication accepted by RabbitMQ is delivered at least once
//! (a redelivery after a failover carries a new epoch). Publisher confirms on
//! everything the hub publishes; consumer prefetch bounds what is in flight.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel as AmqpChannel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use protocol::codes::{self, ErrorCode};
use protocol::proto::{ClientInfo, Push};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::owner::ShardOwner;
use super::{Broker, BrokerEvents, Envelope, NodeInfo, Reply, UserCommand, WireInfo, WirePublication};
use crate::channel::Channel;
use crate::config::{ChannelOptions, Config};
use crate::metrics::Metrics;
use crate::telemetry::TraceContext;
use crate::topic::history::HistoryQuery;
use crate::topic::{HistoryPage, OwnerStream, Position, PublishArgs, Replication};

/// AMQP message type of hub envelopes; anything else on the publish exchange
/// is a plain publication from a backend service.
const HUB_TYPE: &str = "hub";
/// How long a request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Heartbeat period; a node unheard for `NODE_EXPIRY` is gone.
const HEARTBEAT: Duration = Duration::from_secs(1);
const NODE_EXPIRY: Duration = Duration::from_secs(5);
/// Longest wait of each step of leaving the cluster.
const STOP_STEP: Duration = Duration::from_secs(2);
/// Unacknowledged messages per consumer.
const PREFETCH: u16 = 512;

/// What a node needs to join the cluster.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: String,
    pub prefix: String,
    pub shards: u16,
}

struct Names {
    publish: String,
    deliver: String,
    broadcast: String,
    direct: String,
    node_queue: String,
    prefix: String,
}

impl Names {
    fn shard(&self, k: u16) -> String {
        format!("{}.shard.{k}", self.prefix)
    }
}

/// Where answers to a request go: one answer, or several (a broadcast query).
enum Waiter {
    One(oneshot::Sender<Reply>),
    Many(mpsc::Sender<Reply>),
}

/// What a node knows of the others: its requests waiting for answers (by
/// correlation id) and the live nodes heard from. No I/O: the AMQP loops feed
/// it, and it is unit-tested without RabbitMQ.
struct Membership {
    /// This node's uid (its own heartbeats are not counted).
    uid: String,
    pending: DashMap<u64, Waiter>,
    next_id: AtomicU64,
    nodes: DashMap<String, (NodeInfo, Instant)>,
}

impl Membership {
    fn new(uid: String) -> Membership {
        Membership { uid, pending: DashMap::new(), next_id: AtomicU64::new(1), nodes: DashMap::new() }
    }

    /// A new request expecting one answer: its correlation id and the answer.
    fn expect_one(&self) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, Waiter::One(tx));
        (id, rx)
    }

    /// A new query expecting up to `answers` answers.
    fn expect_many(&self, answers: usize) -> (u64, mpsc::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(answers.max(1));
        self.pending.insert(id, Waiter::Many(tx));
        (id, rx)
    }

    /// The request `id` is no longer waited for.
    fn forget(&self, id: u64) {
        self.pending.remove(&id);
    }

    /// An answer arrived for `id`: a one-answer request is done with it; a
    /// gathering query keeps waiting for more until its caller stops. Answers
    /// for unknown ids (late, or never asked) are dropped.
    fn answer(&self, id: u64, reply: Reply) {
        match self.pending.remove_if(&id, |_, waiter| matches!(waiter, Waiter::One(_))) {
            Some((_, Waiter::One(tx))) => {
                let _ = tx.send(reply);
            }
            _ => {
                if let Some(waiter) = self.pending.get(&id) {
                    if let Waiter::Many(tx) = waiter.value() {
                        let _ = tx.try_send(reply);
                    }
                }
            }
        }
    }

    fn heard(&self, info: NodeInfo, now: Instant) {
        if info.uid != self.uid {
            self.nodes.insert(info.uid.clone(), (info, now));
        }
    }

    fn left(&self, uid: &str) {
        self.nodes.remove(uid);
    }

    /// Other live nodes (heard from within [`NODE_EXPIRY`] of `now`).
    fn live(&self, now: Instant) -> Vec<NodeInfo> {
        self.nodes.retain(|_, (_, seen)| now.duration_since(*seen) < NODE_EXPIRY);
        self.nodes.iter().map(|entry| entry.value().0.clone()).collect()
    }
}

/// A node's membership in the cluster: the [`Broker`] of a node joined
/// through RabbitMQ, and the [`Replication`] its topics sync from.
pub struct Cluster {
    config: Arc<Config>,
    /// This node's name (the routing key of requests to it).
    name: String,
    connection: Connection,
    /// Confirm-mode channel for everything this node publishes.
    publisher: AmqpChannel,
    names: Names,
    shards: u16,
    members: Membership,
    /// The node's metrics (`hub_broker_round_trip_duration_seconds`).
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Consumers (the node queue's, the shards') waiting for lapin to replay
    /// their channel's topology after a lost connection: the node is not
    /// ready until every one is back, since a publication delivered before
    /// the node queue is bound again would never reach this node.
    recovering: std::sync::atomic::AtomicUsize,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "RabbitMQ lacks the consistent-hash exchange: enable it with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` ({0})"
    )]
    MissingPlugin(String),
    #[error("cannot declare {what}: {reason}")]
    Declare { what: String, reason: String },
}

fn declare_error(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> ClusterError {
    let what = what.into();
    move |e| ClusterError::Declare { what, reason: e.to_string() }
}

impl Cluster {
    /// Connects and declares the exchanges; consumes nothing yet (see
    /// [`Cluster::run`]). `uid` and `config.node_name` identify this node.
    pub async fn connect(
        config: Arc<Config>,
        settings: &AmqpSettings,
        uid: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let name = config.node_name.clone();
        let properties = ConnectionProperties::default()
            .enable_auto_recover()
            .with_connection_name(format!("hub node {name}").into());
        let connection = Connection::connect(&settings.url, properties)
            .await
            .map_err(|e| ClusterError::Connect { url: redact(&settings.url), reason: e.to_string() })?;
        let setup = connection.create_channel().await.map_err(declare_error("a channel"))?;
        let prefix = settings.prefix.clone();
        let names = Names {
            publish: format!("{prefix}.publish"),
            deliver: format!("{prefix}.deliver"),
            broadcast: format!("{prefix}.broadcast"),
            direct: format!("{prefix}.direct"),
            node_queue: format!("{prefix}.node.{uid}"),
            prefix,
        };
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        if let Err(e) = setup
            .exchange_declare(
                names.publish.as_str().into(),
                ExchangeKind::Custom("x-consistent-hash".into()),
                durable,
                FieldTable::default(),
            )
            .await
        {
            return Err(ClusterError::MissingPlugin(e.to_string()));
        }
        for (name, kind) in [
            (&names.deliver, ExchangeKind::Fanout),
            (&names.broadcast, ExchangeKind::Fanout),
            (&names.direct, ExchangeKind::Direct),
        ] {
            setup
                .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
                .await
                .map_err(declare_error(format!("exchange {name}")))?;
        }
        let publisher = connection.create_channel().await.map_err(declare_error("a channel"))?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(declare_error("confirm mode"))?;
        Ok(Arc::new(Cluster {
            config,
            name,
            connection,
            publisher,
            names,
            shards: settings.shards,
            members: Membership::new(uid.to_string()),
            metrics,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            recovering: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// Waits until lapin replayed `channel`'s topology (queues, bindings,
    /// consumers) after `error`, counted in `recovering` meanwhile; a channel
    /// that cannot recover is retried a second later.
    async fn recover_consumer(&self, channel: &AmqpChannel, error: lapin::Error, what: &str) {
        use std::sync::atomic::Ordering;
        self.recovering.fetch_add(1, Ordering::SeqCst);
        if let Err(error) = channel.wait_for_recovery(error).await {
            tracing::error!(%error, what, "consumer cannot recover");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.recovering.fetch_sub(1, Ordering::SeqCst);
    }

    /// Declares this node's queue and the shard queues and starts consuming:
    /// what arrives for this node goes to `events` (registered once, here).
    pub async fn run(self: &Arc<Self>, events: Arc<dyn BrokerEvents>) -> Result<(), ClusterError> {
        let cluster = self;
        let uid = cluster.members.uid.clone();
        // Queues and bindings are declared on the channel that consumes them:
        // lapin's recovery redeclares what a channel declared, so after a
        // RabbitMQ restart the exclusive node queue and its bindings come back.
        let node_channel = cluster.connection.create_channel().await.map_err(declare_error("a channel"))?;
        node_channel.basic_qos(PREFETCH * 4, BasicQosOptions::default()).await.map_err(declare_error("qos"))?;
        let names = &cluster.names;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        node_channel
            .queue_declare(names.node_queue.as_str().into(), options, FieldTable::default())
            .await
            .map_err(declare_error(format!("queue {}", names.node_queue)))?;
        for (exchange, key) in [(&names.deliver, ""), (&names.broadcast, ""), (&names.direct, cluster.name.as_str())] {
            node_channel
                .queue_bind(
                    names.node_queue.as_str().into(),
                    exchange.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(declare_error(format!("binding of {} to {exchange}", names.node_queue)))?;
        }
        let consumer = node_channel
            .basic_consume(
                cluster.names.node_queue.as_str().into(),
                format!("node-{uid}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(declare_error("node consumer"))?;
        let mut tasks = vec![tokio::spawn(node_loop(cluster.clone(), events.clone(), node_channel, consumer))];
        for k in 0..cluster.shards {
            let channel = cluster.connection.create_channel().await.map_err(declare_error("a channel"))?;
            channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(declare_error("qos"))?;
            let queue = cluster.names.shard(k);
            let mut arguments = FieldTable::default();
            arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
            arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            let options = QueueDeclareOptions { durable: true, ..Default::default() };
            channel
                .queue_declare(queue.as_str().into(), options, arguments)
                .await
                .map_err(declare_error(format!("queue {queue}")))?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    cluster.names.publish.as_str().into(),
                    "1".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(declare_error(format!("binding of {queue}")))?;
            let consumer = channel
                .basic_consume(
                    cluster.names.shard(k).as_str().into(),
                    format!("owner-{uid}-{k}").into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(declare_error(format!("consumer of shard {k}")))?;
            tasks.push(tokio::spawn(shard_loop(cluster.clone(), k, channel, consumer)));
        }
        tasks.push(tokio::spawn(heartbeat_loop(cluster.clone(), events)));
        *cluster.tasks.lock() = tasks;
        tracing::info!(prefix = %cluster.names.prefix, shards = cluster.shards, "joined the cluster");
        Ok(())
    }

    /// Leaves the cluster: says goodbye, stops the loops, closes the
    /// connection. Bounded: a stalled broker cannot hold the shutdown.
    pub async fn stop(&self) {
        let goodbye = Envelope::Goodbye { uid: self.members.uid.clone() };
        let _ = tokio::time::timeout(STOP_STEP, self.send(&self.names.broadcast, "", &goodbye, None)).await;
        self.shutdown.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            task.abort();
        }
        let _ = tokio::time::timeout(STOP_STEP, self.connection.close(200, "shutdown".into())).await;
    }

    /// Publishes an envelope (confirmed).
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope,
        request: Option<u64>,
    ) -> Result<(), ErrorCode> {
        self.send_traced(exchange, routing_key, envelope, request, &TraceContext::default()).await
    }

    /// Publishes an envelope (confirmed) with `trace` in its headers.
    async fn send_traced(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope,
        request: Option<u64>,
        trace: &TraceContext,
    ) -> Result<(), ErrorCode> {
        let mut properties = BasicProperties::default().with_type(HUB_TYPE.into());
        if let Some(headers) = trace_headers(trace) {
            properties = properties.with_headers(headers);
        }
        if let Some(id) = request {
            properties = properties
                .with_reply_to(self.names.node_queue.as_str().into())
                .with_correlation_id(id.to_string().into());
        }
        publish_confirmed(&self.publisher, exchange, routing_key, &envelope.encode(), properties).await
    }

    /// Sends a request and waits for its one answer.
    async fn request(&self, exchange: &str, routing_key: &str, envelope: Envelope) -> Result<Reply, ErrorCode> {
        self.request_traced(exchange, routing_key, envelope, &TraceContext::default()).await
    }

    /// [`Cluster::request`] with `trace` in the request's headers.
    async fn request_traced(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: Envelope,
        trace: &TraceContext,
    ) -> Result<Reply, ErrorCode> {
        let operation = envelope.kind();
        let started = Instant::now();
        let (id, rx) = self.members.expect_one();
        let sent = self.send_traced(exchange, routing_key, &envelope, Some(id), trace).await;
        let result = match sent {
            Ok(()) => match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
                Ok(Ok(Reply::Error(code, _))) => Err(error_code(code)),
                Ok(Ok(reply)) => Ok(reply),
                _ => Err(codes::INTERNAL.temporary()),
            },
            Err(code) => Err(code),
        };
        self.members.forget(id);
        self.metrics.observe_broker_round_trip(operation, started.elapsed());
        result
    }

    /// A request to the owner of `channel`.
    async fn to_owner(&self, channel: &str, envelope: Envelope) -> Result<Reply, ErrorCode> {
        let publish = self.names.publish.clone();
        self.request(&publish, channel, envelope).await
    }

    async fn publish_through_owner(&self, channel: &str, args: PublishArgs) -> Result<Position, ErrorCode> {
        let envelope = Envelope::Publish {
            data: args.data.to_vec(),
            info: args.info.as_ref().map(WireInfo::from),
            tags: args.tags,
            idempotency_key: args.idempotency_key,
            delta: args.delta,
        };
        let publish = self.names.publish.clone();
        match self.request_traced(&publish, channel, envelope, &args.trace).await? {
            Reply::Published { offset, epoch } => Ok(Position { offset, epoch }),
            _ => Err(codes::INTERNAL),
        }
    }

    /// The owner's stream of `channel` (epoch, top, retained publications).
    async fn sync_stream(&self, channel: &str) -> Result<OwnerStream, ErrorCode> {
        match self.to_owner(channel, Envelope::Sync).await? {
            Reply::Stream { epoch, top, publications } => {
                Ok((epoch, top, publications.into_iter().map(WirePublication::into_proto).collect()))
            }
            _ => Err(codes::INTERNAL),
        }
    }

    async fn history_of_owner(&self, channel: &str, query: HistoryQuery) -> Result<HistoryPage, ErrorCode> {
        let envelope = Envelope::History { limit: query.limit, since: query.since, reverse: query.reverse };
        match self.to_owner(channel, envelope).await? {
            Reply::History { epoch, top, publications } => Ok(HistoryPage {
                publications: publications.into_iter().map(WirePublication::into_proto).collect(),
                epoch,
                offset: top,
            }),
            _ => Err(codes::INTERNAL),
        }
    }

    async fn history_remove_at_owner(&self, channel: &str) -> Result<(), ErrorCode> {
        self.to_owner(channel, Envelope::HistoryRemove).await.map(|_| ())
    }

    /// Announces a join or leave of a local client to every node.
    fn announce_to_all(&self, channel: &str, info: &ClientInfo, join: bool) {
        let envelope = if join {
            Envelope::Join { channel: channel.to_string(), info: info.into() }
        } else {
            Envelope::Leave { channel: channel.to_string(), info: info.into() }
        };
        let publisher = self.publisher.clone();
        let deliver = self.names.deliver.clone();
        tokio::spawn(async move {
            let properties = BasicProperties::default().with_type(HUB_TYPE.into());
            let _ = publish_confirmed(&publisher, &deliver, "", &envelope.encode(), properties).await;
        });
    }

    /// Sends a cluster-wide command to every node (this one included).
    async fn broadcast_envelope(&self, envelope: Envelope) -> Result<(), ErrorCode> {
        let broadcast = self.names.broadcast.clone();
        self.send(&broadcast, "", &envelope, None).await
    }

    /// Presence of `channel` on every live node.
    async fn presence_everywhere(&self, channel: &str) -> Result<Vec<ClientInfo>, ErrorCode> {
        let replies = self.ask_every_node(Envelope::PresenceQuery { channel: channel.to_string() }).await?;
        let mut out = Vec::new();
        for reply in replies {
            if let Reply::Presence(list) = reply {
                out.extend(list.into_iter().map(ClientInfo::from));
            }
        }
        Ok(out)
    }

    /// Live channels of every live node, with subscriber counts summed over nodes.
    async fn channels_everywhere(&self) -> Result<BTreeMap<String, u32>, ErrorCode> {
        let replies = self.ask_every_node(Envelope::ChannelsQuery).await?;
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for reply in replies {
            if let Reply::Channels(list) = reply {
                for (channel, count) in list {
                    *out.entry(channel).or_default() += count;
                }
            }
        }
        Ok(out)
    }

    /// Sends `query` to every node (this one included) and gathers the answers
    /// that arrive within 2 s: a node that dies meanwhile is left out rather
    /// than waited for.
    async fn ask_every_node(&self, query: Envelope) -> Result<Vec<Reply>, ErrorCode> {
        let expected = self.live_nodes().len() + 1;
        let operation = query.kind();
        let started = Instant::now();
        let (id, mut rx) = self.members.expect_many(expected);
        let broadcast = self.names.broadcast.clone();
        let sent = self.send(&broadcast, "", &query, Some(id)).await;
        let mut out = Vec::with_capacity(expected);
        if sent.is_ok() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while out.len() < expected {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(reply)) => out.push(reply),
                    _ => break,
                }
            }
        }
        self.members.forget(id);
        self.metrics.observe_broker_round_trip(operation, started.elapsed());
        sent.map(|()| out)
    }

    /// Hands emulation commands to the node holding the session; Ok(false)
    /// when that node does not know the session.
    async fn forward_emulation_to(
        &self,
        node_name: &str,
        session: &str,
        data: Vec<u8>,
        protobuf: bool,
    ) -> Result<bool, ErrorCode> {
        if !self.live_nodes().iter().any(|n| n.name == node_name) {
            // No such node (or it died): nothing would answer.
            return Ok(false);
        }
        let direct = self.names.direct.clone();
        let envelope = Envelope::Emulation { session: session.to_string(), protobuf, data };
        match self.request(&direct, node_name, envelope).await {
            Ok(Reply::Emulation(found)) => Ok(found),
            Ok(_) => Err(codes::INTERNAL),
            Err(code) if code == codes::INTERNAL.temporary() => Ok(false),
            Err(code) => Err(code),
        }
    }

    /// Other live nodes (those heard from within the expiry).
    pub fn live_nodes(&self) -> Vec<NodeInfo> {
        self.members.live(Instant::now())
    }

    fn answer(self: &Arc<Self>, delivery: &Delivery, reply: Reply) {
        let (Some(reply_to), Some(id)) =
            (delivery.properties.reply_to().clone(), delivery.properties.correlation_id().clone())
        else {
            return;
        };
        let cluster = self.clone();
        tokio::spawn(async move {
            let properties = BasicProperties::default().with_type(HUB_TYPE.into()).with_correlation_id(id);
            let body = Envelope::Reply(reply).encode();
            let _ = publish_confirmed(&cluster.publisher, "", reply_to.as_str(), &body, properties).await;
        });
    }
}

impl Replication for Cluster {
    fn sync(self: Arc<Self>, channel: String) -> BoxFuture<'static, Result<OwnerStream, ErrorCode>> {
        async move { self.sync_stream(&channel).await }.boxed()
    }

    fn announce(&self, channel: &str, info: &ClientInfo, join: bool) {
        self.announce_to_all(channel, info, join);
    }
}

impl Broker for Cluster {
    fn publish<'a>(
        &'a self,
        channel: &'a Channel,
        _options: &'a ChannelOptions,
        args: PublishArgs,
    ) -> BoxFuture<'a, Result<Position, ErrorCode>> {
        self.publish_through_owner(channel.as_str(), args).boxed()
    }

    fn presence<'a>(
        &'a self,
        channel: &'a Channel,
        _options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>> {
        self.presence_everywhere(channel.as_str()).boxed()
    }

    fn presence_stats<'a>(
        &'a self,
        channel: &'a Channel,
        _options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(u32, u32), ErrorCode>> {
        async move {
            let presence = self.presence_everywhere(channel.as_str()).await?;
            let clients: HashSet<&str> = presence.iter().map(|info| info.client.as_str()).collect();
            let users: HashSet<&str> = presence.iter().map(|info| info.user.as_str()).collect();
            Ok((clients.len() as u32, users.len() as u32))
        }
        .boxed()
    }

    fn history<'a>(
        &'a self,
        channel: &'a Channel,
        _options: &'a ChannelOptions,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, ErrorCode>> {
        self.history_of_owner(channel.as_str(), query).boxed()
    }

    fn history_remove<'a>(
        &'a self,
        channel: &'a Channel,
        _options: &'a ChannelOptions,
    ) -> BoxFuture<'a, Result<(), ErrorCode>> {
        self.history_remove_at_owner(channel.as_str()).boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<BTreeMap<String, u32>, ErrorCode>> {
        self.channels_everywhere().boxed()
    }

    fn user_command(&self, command: UserCommand) -> BoxFuture<'_, Result<(), ErrorCode>> {
        self.broadcast_envelope(user_envelope(command)).boxed()
    }

    fn forward_emulation<'a>(
        &'a self,
        node: &'a str,
        session: &'a str,
        data: Vec<u8>,
        protobuf: bool,
    ) -> BoxFuture<'a, Result<bool, ErrorCode>> {
        self.forward_emulation_to(node, session, data, protobuf).boxed()
    }

    fn other_nodes(&self) -> Vec<NodeInfo> {
        self.live_nodes()
    }

    fn is_cluster(&self) -> bool {
        true
    }

    fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.recovering.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Cluster::stop(self).boxed()
    }
}

fn error_code(code: u32) -> ErrorCode {
    [
        codes::UNKNOWN_CHANNEL,
        codes::NOT_AVAILABLE,
        codes::UNRECOVERABLE_POSITION,
        codes::BAD_REQUEST,
        codes::PERMISSION_DENIED,
    ]
    .into_iter()
    .find(|c| c.code == code)
    .unwrap_or(codes::INTERNAL)
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, host)) => {
            let scheme = credentials.split_once("://").map(|(s, _)| s).unwrap_or("amqp");
            format!("{scheme}://***@{host}")
        }
        None => url.to_string(),
    }
}

async fn publish_confirmed(
    channel: &AmqpChannel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), ErrorCode> {
    let confirm = channel
        .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body, properties)
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "AMQP publish failed");
            codes::INTERNAL.temporary()
        })?;
    match confirm.await {
        Ok(confirmation) if !confirmation.is_nack() => Ok(()),
        _ => Err(codes::INTERNAL.temporary()),
    }
}

/// The node queue: deliveries, control messages, replies.
async fn node_loop(
    cluster: Arc<Cluster>,
    events: Arc<dyn BrokerEvents>,
    channel: AmqpChannel,
    mut consumer: lapin::Consumer,
) {
    loop {
        let next = tokio::select! {
            _ = cluster.shutdown.cancelled() => return,
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                tracing::warn!(%error, "node queue consumer interrupted; waiting for recovery");
                cluster.recover_consumer(&channel, error, "node queue").await;
                continue;
            }
            None => return,
        };
        match Envelope::decode(&delivery.data) {
            Ok(envelope) => {
                let correlation =
                    delivery.properties.correlation_id().as_ref().and_then(|id| id.as_str().parse::<u64>().ok());
                let trace = trace_of(&delivery);
                if let Some(reply) =
                    handle_traced_envelope(&cluster.members, &*events, envelope, correlation, trace).await
                {
                    cluster.answer(&delivery, reply);
                }
            }
            Err(error) => tracing::warn!(%error, "undecodable message on the node queue"),
        }
        let _ = delivery.ack(BasicAckOptions::default()).await;
    }
}

/// Handles one message of the node queue: answers go to the requests waiting
/// for them, deliveries and joins/leaves to `events` (this node's topics),
/// membership to `members`; queries are answered from `events` (the reply to
/// send back, if any). Owner requests do not belong here and are ignored.
#[cfg(test)]
async fn handle_node_envelope(
    members: &Membership,
    events: &dyn BrokerEvents,
    envelope: Envelope,
    correlation: Option<u64>,
) -> Option<Reply> {
    handle_traced_envelope(members, events, envelope, correlation, TraceContext::default()).await
}

/// [`handle_node_envelope`] for a message that carried `trace` in its
/// headers: a delivery continues it.
async fn handle_traced_envelope(
    members: &Membership,
    events: &dyn BrokerEvents,
    envelope: Envelope,
    correlation: Option<u64>,
    trace: TraceContext,
) -> Option<Reply> {
    match envelope {
        Envelope::Reply(reply) => {
            if let Some(id) = correlation {
                members.answer(id, reply);
            }
            None
        }
        Envelope::Deliver { channel, epoch, publication } => {
            events.publication(&channel, epoch, publication.into_proto(), trace);
            None
        }
        Envelope::Join { channel, info } => {
            let push =
                Push { channel, join: Some(protocol::proto::Join { info: Some(info.into()) }), ..Default::default() };
            events.push(&push.channel.clone(), push);
            None
        }
        Envelope::Leave { channel, info } => {
            let push =
                Push { channel, leave: Some(protocol::proto::Leave { info: Some(info.into()) }), ..Default::default() };
            events.push(&push.channel.clone(), push);
            None
        }
        Envelope::Heartbeat(info) => {
            members.heard(info, Instant::now());
            None
        }
        Envelope::Goodbye { uid } => {
            members.left(&uid);
            None
        }
        Envelope::SubscribeUser { user, channel, client, session } => {
            events.user_command(UserCommand::Subscribe { user, channel, client, session });
            None
        }
        Envelope::UnsubscribeUser { user, channel, client, session } => {
            events.user_command(UserCommand::Unsubscribe { user, channel, client, session });
            None
        }
        Envelope::DisconnectUser { user, client, code, session, whitelist, .. } => {
            events.user_command(UserCommand::Disconnect {
                user,
                client,
                session,
                whitelist,
                code: disconnect_code(code),
            });
            None
        }
        Envelope::RefreshUser { user, client, session, refresh } => {
            events.user_command(UserCommand::Refresh { user, client, session, refresh });
            None
        }
        Envelope::PresenceQuery { channel } => {
            let list = events.presence(channel).await.iter().map(WireInfo::from).collect();
            Some(Reply::Presence(list))
        }
        Envelope::ChannelsQuery => Some(Reply::Channels(events.channels().await.into_iter().collect())),
        Envelope::Emulation { session, protobuf, data } => {
            Some(Reply::Emulation(events.emulation(session, data, protobuf).await))
        }
        Envelope::Publish { .. } | Envelope::Sync | Envelope::History { .. } | Envelope::HistoryRemove => {
            tracing::warn!("owner request on a node queue; ignored");
            None
        }
    }
}

/// The envelope that carries `command` to every node.
fn user_envelope(command: UserCommand) -> Envelope {
    match command {
        UserCommand::Subscribe { user, channel, client, session } => {
            Envelope::SubscribeUser { user, channel, client, session }
        }
        UserCommand::Unsubscribe { user, channel, client, session } => {
            Envelope::UnsubscribeUser { user, channel, client, session }
        }
        UserCommand::Disconnect { user, client, session, whitelist, code } => {
            Envelope::DisconnectUser { user, client, code: code.code, reason: code.reason.into(), session, whitelist }
        }
        UserCommand::Refresh { user, client, session, refresh } => {
            Envelope::RefreshUser { user, client, session, refresh }
        }
    }
}

/// Disconnect codes travel as numbers; their reasons are the known ones.
fn disconnect_code(code: u16) -> codes::DisconnectCode {
    [
        codes::FORCE_NO_RECONNECT,
        codes::FORCE_RECONNECT,
        codes::SHUTDOWN,
        codes::INVALID_TOKEN,
        codes::CONNECTION_LIMIT,
        codes::EXPIRED_CONNECTION,
    ]
    .into_iter()
    .find(|c| c.code == code)
    .unwrap_or(if (codes::DisconnectCode { code, reason: "" }).reconnect() {
        codes::DisconnectCode { code, reason: "force reconnect" }
    } else {
        codes::DisconnectCode { code, reason: "force disconnect" }
    })
}

/// One shard queue: while this node is its active consumer, it owns the shard.
async fn shard_loop(cluster: Arc<Cluster>, shard: u16, channel: AmqpChannel, mut consumer: lapin::Consumer) {
    let mut owner = ShardOwner::new(cluster.config.clone());
    let mut prune = tokio::time::interval(Duration::from_secs(10));
    loop {
        let next = tokio::select! {
            _ = cluster.shutdown.cancelled() => return,
            _ = prune.tick() => {
                owner.prune(Instant::now());
                continue;
            }
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                // The consumer (and maybe ownership) is lost: forget the streams
                // so that whoever owns the shard next starts new epochs.
                owner.reset();
                tracing::warn!(shard, %error, "shard consumer interrupted; waiting for recovery");
                cluster.recover_consumer(&channel, error, "shard").await;
                continue;
            }
            None => return,
        };
        handle_owner_message(&cluster, &mut owner, delivery).await;
    }
}

/// Handles one message of a shard queue this node owns, in a `sequence`
/// span (channel, offset) when the message carries a trace (`traceparent`
/// header, from a node or a backend service).
async fn handle_owner_message(cluster: &Arc<Cluster>, owner: &mut ShardOwner, delivery: Delivery) {
    let channel = delivery.routing_key.as_str().to_string();
    let span = trace_of(&delivery)
        .child(|| tracing::info_span!("sequence", channel = %channel, offset = tracing::field::Empty));
    handle_owner_message_in(cluster, owner, delivery, channel, &span).instrument(span.clone()).await
}

async fn handle_owner_message_in(
    cluster: &Arc<Cluster>,
    owner: &mut ShardOwner,
    delivery: Delivery,
    channel: String,
    span: &tracing::Span,
) {
    let now = Instant::now();
    let is_hub = delivery.properties.kind().as_ref().is_some_and(|k| k.as_str() == HUB_TYPE);
    let envelope = if is_hub {
        match Envelope::decode(&delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "undecodable hub message on a shard queue; dropped");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                return;
            }
        }
    } else {
        plain_publication(&delivery)
    };
    let result = match envelope {
        Envelope::Publish { data, info, tags, idempotency_key, delta } => {
            match owner.publish(&channel, data, info, tags, idempotency_key, now) {
                Ok(mut sequenced) => {
                    // The flag travels to every node with the delivery.
                    sequenced.publication.delta = delta;
                    if sequenced.duplicate {
                        Ok(Reply::Published { offset: sequenced.publication.offset, epoch: sequenced.epoch })
                    } else {
                        let offset = sequenced.publication.offset;
                        span.record("offset", offset);
                        let epoch = sequenced.epoch.clone();
                        let deliver = Envelope::Deliver {
                            channel: channel.clone(),
                            epoch: sequenced.epoch,
                            publication: sequenced.publication,
                        };
                        let exchange = cluster.names.deliver.clone();
                        // Publish now (in order), settle later: the ack of the shard
                        // message waits for RabbitMQ's confirm of the delivery.
                        let mut properties = BasicProperties::default().with_type(HUB_TYPE.into());
                        if let Some(headers) = trace_headers(&TraceContext::current()) {
                            properties = properties.with_headers(headers);
                        }
                        match cluster
                            .publisher
                            .basic_publish(
                                exchange.as_str().into(),
                                "".into(),
                                BasicPublishOptions::default(),
                                &deliver.encode(),
                                properties,
                            )
                            .await
                        {
                            Ok(confirm) => {
                                let cluster = cluster.clone();
                                tokio::spawn(async move {
                                    match confirm.await {
                                        Ok(c) if !c.is_nack() => {
                                            cluster.answer(&delivery, Reply::Published { offset, epoch });
                                            let _ = delivery.ack(BasicAckOptions::default()).await;
                                        }
                                        _ => {
                                            let _ = delivery
                                                .nack(BasicNackOptions { requeue: true, ..Default::default() })
                                                .await;
                                        }
                                    }
                                });
                                return;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "delivery publish failed; message requeued");
                                owner.reset();
                                let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
                                return;
                            }
                        }
                    }
                }
                Err(code) => Err(code),
            }
        }
        Envelope::Sync => owner.sync(&channel, now),
        Envelope::History { limit, since, reverse } => {
            owner.history(&channel, &HistoryQuery { limit, since, reverse }, now)
        }
        Envelope::HistoryRemove => owner.history_remove(&channel),
        other => {
            tracing::warn!(?other, "unexpected message on a shard queue; dropped");
            Ok(Reply::Done)
        }
    };
    let reply = result.unwrap_or_else(|code| Reply::Error(code.code, code.message.to_string()));
    if let Reply::Error(code, message) = &reply {
        tracing::debug!(%channel, code, %message, "owner refused a request");
    }
    cluster.answer(&delivery, reply);
    let _ = delivery.ack(BasicAckOptions::default()).await;
}

/// The W3C trace headers (`traceparent`, `tracestate`) naming `trace`, as
/// AMQP headers; `None` when untraced. Hub messages carry them beside the
/// envelope, so nodes of older versions (which ignore headers) still read it.
fn trace_headers(trace: &TraceContext) -> Option<FieldTable> {
    let mut headers = FieldTable::default();
    trace.to_headers(|name, value| {
        headers.insert(name.into(), AMQPValue::LongString(value.into()));
    });
    (!headers.inner().is_empty()).then_some(headers)
}

/// The trace a message continues: its `traceparent` and `tracestate`
/// headers (long or short strings), from a hub node or a backend service.
fn trace_of(delivery: &Delivery) -> TraceContext {
    let Some(headers) = delivery.properties.headers().as_ref() else {
        return TraceContext::default();
    };
    TraceContext::from_headers(|name| header_text(headers, name))
}

/// A text header (long or short string).
fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A message from a backend service: the body is the publication's data.
fn plain_publication(delivery: &Delivery) -> Envelope {
    let headers = delivery.properties.headers().as_ref();
    let idempotency_key = headers
        .and_then(|headers| header_text(headers, "idempotency_key"))
        .or_else(|| delivery.properties.message_id().as_ref().map(|id: &ShortString| id.as_str().to_string()));
    let mut tags = BTreeMap::new();
    if let Some(AMQPValue::FieldTable(table)) = headers.and_then(|h| h.inner().get("tags")) {
        for (key, value) in table.inner() {
            let text = match value {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_string(),
                other => format!("{other:?}"),
            };
            tags.insert(key.as_str().to_string(), text);
        }
    }
    // A backend's publication asks for delta through the namespace's `delta_publish`.
    Envelope::Publish { data: delivery.data.clone(), info: None, tags, idempotency_key, delta: false }
}

async fn heartbeat_loop(cluster: Arc<Cluster>, events: Arc<dyn BrokerEvents>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = cluster.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let heartbeat = Envelope::Heartbeat(events.info());
        let broadcast = cluster.names.broadcast.clone();
        let _ = cluster.send(&broadcast, "", &heartbeat, None).await;
    }
}

#[cfg(test)]
mod tests {
    //! The node queue's message handling and request correlation, without
    //! RabbitMQ: envelopes go through `handle_node_envelope` with a fake
    //! `BrokerEvents` that records what the node would have been told.

    use std::sync::Mutex as StdMutex;

    use protocol::proto::Publication;

    use super::*;
    use crate::broker::ExpiryRefresh;

    #[derive(Default)]
    struct Recorded {
        publications: Vec<(String, String, u64)>,
        /// The trace headers each publication continued.
        traces: Vec<Vec<(&'static str, String)>>,
        pushes: Vec<Push>,
        commands: Vec<UserCommand>,
        emulations: Vec<(String, Vec<u8>, bool)>,
    }

    #[derive(Default)]
    struct FakeEvents(StdMutex<Recorded>);

    impl FakeEvents {
        fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
            self.0.lock().expect("not poisoned")
        }
    }

    fn info(client: &str) -> ClientInfo {
        ClientInfo { user: "u".into(), client: client.into(), ..Default::default() }
    }

    fn node_info(uid: &str) -> NodeInfo {
        NodeInfo {
            uid: uid.into(),
            name: format!("node-{uid}"),
            version: "test".into(),
            num_clients: 0,
            num_users: 0,
            num_channels: 0,
            num_subs: 0,
            uptime: 0,
        }
    }

    impl BrokerEvents for FakeEvents {
        fn publication(&self, channel: &str, epoch: String, publication: Publication, trace: TraceContext) {
            let mut headers = Vec::new();
            trace.to_headers(|name, value| headers.push((name, value)));
            self.recorded().traces.push(headers);
            self.recorded().publications.push((channel.into(), epoch, publication.offset));
        }
        fn push(&self, _channel: &str, push: Push) {
            self.recorded().pushes.push(push);
        }
        fn user_command(&self, command: UserCommand) {
            self.recorded().commands.push(command);
        }
        fn presence(&self, channel: String) -> BoxFuture<'static, Vec<ClientInfo>> {
            async move {
                if channel == "chat:a" {
                    vec![info("c1"), info("c2")]
                } else {
                    Vec::new()
                }
            }
            .boxed()
        }
        fn channels(&self) -> BoxFuture<'static, BTreeMap<String, u32>> {
            async { BTreeMap::from([("chat:a".to_string(), 2)]) }.boxed()
        }
        fn info(&self) -> NodeInfo {
            node_info("me")
        }
        fn emulation(&self, session: String, data: Vec<u8>, protobuf: bool) -> BoxFuture<'static, bool> {
            let known = session == "s1";
            self.recorded().emulations.push((session, data, protobuf));
            async move { known }.boxed()
        }
    }

    fn wire(offset: u64) -> WirePublication {
        WirePublication { offset, data: b"{}".to_vec(), info: None, tags: BTreeMap::new(), delta: false }
    }

    #[tokio::test]
    async fn deliveries_joins_leaves_and_user_commands_reach_the_handler() {
        let members = Membership::new("me".into());
        let events = FakeEvents::default();
        let deliver = Envelope::Deliver { channel: "news".into(), epoch: "E".into(), publication: wire(7) };
        assert_eq!(handle_node_envelope(&members, &events, deliver, None).await, None);
        let join = Envelope::Join { channel: "chat:a".into(), info: (&info("c1")).into() };
        assert_eq!(handle_node_envelope(&members, &events, join, None).await, None);
        let leave = Envelope::Leave { channel: "chat:a".into(), info: (&info("c1")).into() };
        assert_eq!(handle_node_envelope(&members, &events, leave, None).await, None);
        let disconnect = Envelope::DisconnectUser {
            user: "u".into(),
            client: None,
            code: 3503,
            reason: "ignored".into(),
            session: None,
            whitelist: vec!["keep".into()],
        };
        handle_node_envelope(&members, &events, disconnect, None).await;
        let custom = Envelope::DisconnectUser {
            user: "u".into(),
            client: Some("c".into()),
            code: 4001,
            reason: "".into(),
            session: Some("s".into()),
            whitelist: Vec::new(),
        };
        handle_node_envelope(&members, &events, custom, None).await;
        let subscribe =
            Envelope::SubscribeUser { user: "u".into(), channel: "news".into(), client: None, session: None };
        handle_node_envelope(&members, &events, subscribe, None).await;
        let refresh = Envelope::RefreshUser {
            user: "u".into(),
            client: None,
            session: Some("s".into()),
            refresh: ExpiryRefresh::ExpireAt(42),
        };
        handle_node_envelope(&members, &events, refresh, None).await;

        let recorded = events.recorded();
        assert_eq!(recorded.publications, vec![("news".to_string(), "E".to_string(), 7)]);
        assert_eq!(recorded.pushes.len(), 2);
        assert_eq!(recorded.pushes[0].channel, "chat:a");
        assert_eq!(
            recorded.pushes[0].join.as_ref().and_then(|j| j.info.as_ref()).map(|i| i.client.as_str()),
            Some("c1")
        );
        assert!(recorded.pushes[1].leave.is_some() && recorded.pushes[1].join.is_none());
        assert_eq!(
            recorded.commands,
            vec![
                UserCommand::Disconnect {
                    user: "u".into(),
                    client: None,
                    session: None,
                    whitelist: vec!["keep".into()],
                    code: codes::FORCE_NO_RECONNECT
                },
                UserCommand::Disconnect {
                    user: "u".into(),
                    client: Some("c".into()),
                    session: Some("s".into()),
                    whitelist: Vec::new(),
                    code: codes::DisconnectCode { code: 4001, reason: "force reconnect" },
                },
                UserCommand::Subscribe { user: "u".into(), channel: "news".into(), client: None, session: None },
                UserCommand::Refresh {
                    user: "u".into(),
                    client: None,
                    session: Some("s".into()),
                    refresh: ExpiryRefresh::ExpireAt(42),
                },
            ]
        );
    }

    #[tokio::test]
    async fn queries_are_answered_from_the_handler_and_owner_requests_ignored() {
        let members = Membership::new("me".into());
        let events = FakeEvents::default();
        let presence =
            handle_node_envelope(&members, &events, Envelope::PresenceQuery { channel: "chat:a".into() }, Some(1));
        let Some(Reply::Presence(list)) = presence.await else { panic!("a presence answer") };
        assert_eq!(list.iter().map(|i| i.client.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
        let channels = handle_node_envelope(&members, &events, Envelope::ChannelsQuery, Some(2)).await;
        assert_eq!(channels, Some(Reply::Channels(vec![("chat:a".into(), 2)])));
        let known = Envelope::Emulation { session: "s1".into(), protobuf: true, data: vec![1, 2] };
        assert_eq!(handle_node_envelope(&members, &events, known, Some(3)).await, Some(Reply::Emulation(true)));
        let unknown = Envelope::Emulation { session: "nope".into(), protobuf: false, data: vec![] };
        assert_eq!(handle_node_envelope(&members, &events, unknown, Some(4)).await, Some(Reply::Emulation(false)));
        assert_eq!(events.recorded().emulations[0], ("s1".to_string(), vec![1, 2], true));
        for owner_request in [Envelope::Sync, Envelope::HistoryRemove] {
            assert_eq!(handle_node_envelope(&members, &events, owner_request, Some(5)).await, None);
        }
    }

    #[tokio::test]
    async fn answers_reach_their_request_by_correlation_id() {
        let members = Membership::new("me".into());
        let events = FakeEvents::default();
        let (first, first_rx) = members.expect_one();
        let (second, second_rx) = members.expect_one();
        assert_ne!(first, second);
        // Out of order, and one for a request nobody waits for any more.
        let done = |id| handle_node_envelope(&members, &events, Envelope::Reply(Reply::Done), Some(id));
        handle_node_envelope(
            &members,
            &events,
            Envelope::Reply(Reply::Published { offset: 2, epoch: "E".into() }),
            Some(second),
        )
        .await;
        done(999).await;
        handle_node_envelope(
            &members,
            &events,
            Envelope::Reply(Reply::Error(102, "unknown channel".into())),
            Some(first),
        )
        .await;
        assert_eq!(second_rx.await.ok(), Some(Reply::Published { offset: 2, epoch: "E".into() }));
        assert_eq!(first_rx.await.ok(), Some(Reply::Error(102, "unknown channel".into())));
        assert!(members.pending.is_empty(), "one-answer requests are done with their answer");

        // A gathering query takes every answer until its caller forgets it.
        let (query, mut answers) = members.expect_many(3);
        for n in 0..2u32 {
            handle_node_envelope(
                &members,
                &events,
                Envelope::Reply(Reply::Channels(vec![("a".into(), n)])),
                Some(query),
            )
            .await;
        }
        assert_eq!(answers.recv().await, Some(Reply::Channels(vec![("a".into(), 0)])));
        assert_eq!(answers.recv().await, Some(Reply::Channels(vec![("a".into(), 1)])));
        members.forget(query);
        done(query).await;
        assert_eq!(answers.recv().await, None, "nothing after the caller stopped waiting");
    }

    #[test]
    fn heartbeats_make_nodes_live_until_they_expire_or_leave() {
        let members = Membership::new("me".into());
        let start = Instant::now();
        members.heard(node_info("me"), start);
        members.heard(node_info("a"), start);
        members.heard(node_info("b"), start);
        let uids = |list: Vec<NodeInfo>| {
            let mut uids: Vec<String> = list.into_iter().map(|n| n.uid).collect();
            uids.sort();
            uids
        };
        assert_eq!(uids(members.live(start)), ["a", "b"], "this node's own heartbeat is not counted");
        members.left("a");
        assert_eq!(uids(members.live(start)), ["b"]);
        members.heard(node_info("c"), start + NODE_EXPIRY / 2);
        assert_eq!(uids(members.live(start + NODE_EXPIRY)), ["c"], "b expired, c heard later");
    }

    #[test]
    fn user_commands_travel_as_their_envelopes() {
        let command = UserCommand::Disconnect {
            user: "u".into(),
            client: None,
            session: None,
            whitelist: vec!["c1".into()],
            code: codes::FORCE_RECONNECT,
        };
        let envelope = Envelope::DisconnectUser {
            user: "u".into(),
            client: None,
            code: 3011,
            reason: "force reconnect".into(),
            session: None,
            whitelist: vec!["c1".into()],
        };
        assert_eq!(user_envelope(command), envelope);
        assert_eq!(Envelope::decode(&envelope.encode()).expect("decodes"), envelope);
        // An envelope of a node from before `session` and `whitelist` decodes
        // with both empty.
        #[derive(serde::Serialize)]
        enum Older {
            #[allow(dead_code)]
            Publish,
            #[allow(dead_code)]
            Sync,
            #[allow(dead_code)]
            History,
            #[allow(dead_code)]
            HistoryRemove,
            #[allow(dead_code)]
            Deliver,
            #[allow(dead_code)]
            Join,
            #[allow(dead_code)]
            Leave,
            #[allow(dead_code)]
            Heartbeat,
            #[allow(dead_code)]
            Goodbye,
            #[allow(dead_code)]
            SubscribeUser,
            #[allow(dead_code)]
            UnsubscribeUser,
            DisconnectUser {
                user: String,
                client: Option<String>,
                code: u16,
                reason: String,
            },
        }
        let older = Older::DisconnectUser { user: "u".into(), client: None, code: 3503, reason: "x".into() };
        let decoded = Envelope::decode(&rmp_serde::to_vec(&older).expect("encodes")).expect("decodes");
        assert_eq!(
            decoded,
            Envelope::DisconnectUser {
                user: "u".into(),
                client: None,
                code: 3503,
                reason: "x".into(),
                session: None,
                whitelist: Vec::new(),
            }
        );
        assert_eq!(disconnect_code(3504), codes::CONNECTION_LIMIT, "its reason travels too");
        for code in [3503, 3011, 3001, 3500, 3504, 3005] {
            assert_eq!(disconnect_code(code).code, code);
        }
    }

    /// A trace travels between nodes as W3C headers beside the envelope:
    /// what `trace_headers` writes, `header_text` and `TraceContext` read
    /// back (long or short strings), and a delivery hands it to the node's
    /// topic. An untraced message has no such headers at all.
    #[tokio::test]
    async fn trace_context_travels_in_headers_to_the_topic() {
        crate::telemetry::enable_for_tests();
        assert!(trace_headers(&TraceContext::default()).is_none(), "untraced: no headers");
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut incoming = FieldTable::default();
        incoming.insert("traceparent".into(), AMQPValue::ShortString(parent.into()));
        incoming.insert("tracestate".into(), AMQPValue::LongString("vendor=x".into()));
        let trace = TraceContext::from_headers(|name| header_text(&incoming, name));
        assert!(!trace.is_empty());
        let headers = trace_headers(&trace).expect("traced: headers");
        assert_eq!(header_text(&headers, "traceparent").as_deref(), Some(parent));
        assert_eq!(header_text(&headers, "tracestate").as_deref(), Some("vendor=x"));
        let malformed = TraceContext::from_headers(|name| (name == "traceparent").then(|| "00-zz-01".to_owned()));
        assert!(malformed.is_empty(), "a malformed traceparent is ignored");

        let events = FakeEvents::default();
        let members = Membership::new("me".into());
        let deliver = Envelope::Deliver { channel: "news".into(), epoch: "E".into(), publication: wire(1) };
        handle_traced_envelope(&members, &events, deliver, None, trace).await;
        let recorded = events.recorded();
        assert_eq!(recorded.traces.len(), 1);
        assert_eq!(recorded.traces[0][0], ("traceparent", parent.to_owned()));
    }
}
