//! Topics: one actor per channel.
//!
//! A topic owns its channel's subscribers, stream (epoch, offsets, history),
//! presence and idempotency keys. It never awaits anyone: replies go back
//! through reply ports and pushes go into subscribers' outboxes with a
//! non-blocking push, so a slow session can never stall a channel (its outbox
//! closes it with 3008 and the topic drops it).
//!
//! Ordering: a subscriber's subscribe reply (with recovered publications) is
//! queued by the topic itself, before the subscriber is added, so a client
//! never sees a live publication ahead of its subscribe reply, and publications
//! reach each subscriber in offset order.
//!
//! The actor is the one owner of its [`TopicState`]. A bug that panics while
//! it handles a message does not take the channel down: the panic is caught,
//! counted (`topic_restarts`), and the topic goes on with its stream intact
//! (same epoch, same offsets), while its subscribers are told that they lost
//! the channel (they resubscribe with 2500 and recover what they missed).
//!
//! Cluster mode: every topic is a replica of its channel's owner. What a
//! replica does (sync once, buffer meanwhile, drop repeats, drop subscribers at
//! a gap or a new epoch) is decided by the pure [`replica::Replica`]; the actor
//! only carries out its [`replica::Action`]s (spawns the sync through
//! [`Replication`], fans out, answers subscribes, tells subscribers they lost
//! the channel).

pub mod delta;
pub mod filter;
pub(crate) mod history;
pub mod registry;
pub(crate) mod replica;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use protocol::codec;
use protocol::codes::{self, ErrorCode};
use protocol::proto::{self, ClientInfo, Publication, Push, Reply};
use protocol::Encoding;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use delta::DeltaBase;
use delta::{Encodings, Previous};
use filter::TagsFilter;
use history::Stream;
pub use history::{HistoryPage, HistoryQuery};
use replica::{Action, Replica, SyncId};

use crate::channel::Channel;
use crate::config::ChannelOptions;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, PushError};
use crate::telemetry::TraceContext;

/// How often an idle topic checks whether it can retire.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Told that a subscriber lost its channel: the topic restarted after a
/// failure, or a replica lost continuity with the owner's stream. The
/// subscriber is no longer in the topic; it should resubscribe and recover
/// (sessions answer with unsubscribe 2500 "insufficient state").
///
/// Called from the topic (or its supervisor) while it handles a message: it
/// must not block (sessions cast to themselves).
pub trait ChannelLost: Send + Sync {
    fn channel_lost(&self, channel: Channel);
}

/// One subscriber of a channel, as the topic sees it: where its messages go
/// (the outbox) and whom to tell when the channel is lost. A topic knows
/// nothing else of sessions.
#[derive(Clone)]
pub struct Subscriber {
    pub client: Arc<str>,
    pub user: Arc<str>,
    pub outbox: Arc<Outbox>,
    pub lost: Arc<dyn ChannelLost>,
    pub conn_info: Bytes,
    pub chan_info: Bytes,
    /// The subscriber's tags filter: only publications it passes reach it,
    /// live or recovered (joins, leaves and other pushes always do).
    pub filter: Option<Arc<TagsFilter>>,
    /// Some when the subscriber negotiated delta compression (see
    /// [`delta`]): where it stands in the channel's chain of deltas.
    pub delta: Option<DeltaBase>,
}

/// A channel's stream as its owner hands it to a replica: (epoch, top
/// offset, the retained publications in offset order).
pub type OwnerStream = (String, u64, Vec<Publication>);

/// Cluster mode: the channel's owner as a replica sees it (implemented by the
/// AMQP broker). A topic with a `Replication` is a replica: it publishes
/// nothing itself, syncs the owner's stream once, then applies the
/// publications the broker delivers.
pub trait Replication: Send + Sync {
    /// The owner's stream of `channel`: (epoch, top offset, retained publications).
    fn sync(self: Arc<Self>, channel: String) -> BoxFuture<'static, Result<OwnerStream, ErrorCode>>;
    /// Announces a join (`join`) or leave of a local subscriber to every node
    /// (this one included: the broker delivers it back as [`TopicMsg::Remote`]).
    fn announce(&self, channel: &str, info: &ClientInfo, join: bool);
}

impl Subscriber {
    fn info(&self) -> ClientInfo {
        ClientInfo {
            user: self.user.to_string(),
            client: self.client.to_string(),
            conn_info: self.conn_info.clone(),
            chan_info: self.chan_info.clone(),
        }
    }
}

/// Where the topic writes the outcome of a subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A reply to the client's subscribe command with this id.
    Reply(u32),
    /// A `subscribe` push (server-side subscription), then recovered publications as pushes.
    Push,
    /// Nothing queued: the topic answers the [`proto::SubscribeResult`] to the
    /// caller, which sends it itself (a server-side subscription made at
    /// connect goes in `ConnectResult.subs`, as Centrifugo does). The caller
    /// holds the outbox meanwhile so that the channel's publications follow
    /// that reply ([`crate::outbox::Outbox::hold`]).
    Return,
}

/// What a topic answers to a subscribe: the result for [`ReplyTarget::Return`],
/// `None` for the targets the topic queued itself.
pub type Subscribed = Option<Box<proto::SubscribeResult>>;

#[derive(Clone)]
pub struct SubscribeArgs {
    pub subscriber: Subscriber,
    /// The client's last position (offset, epoch) when it asks to recover.
    pub recover: Option<(u64, String)>,
    /// Recovery is on for this subscription (history enabled and asked for or forced).
    pub recoverable: bool,
    /// The subscribe flag `reject_unrecovered` (Centrifugo's flag 2): a recovery
    /// that fails is refused with error 112 "unrecoverable position" instead of
    /// answered `recovered: false`, and the client does not join the channel.
    pub reject_unrecovered: bool,
    /// Token expiry to report (`expires`, `ttl` seconds).
    pub ttl: Option<u32>,
    /// The subscribe result's `data` (from the subscribe proxy).
    pub data: Bytes,
    pub reply: ReplyTarget,
}

#[derive(Clone, Default)]
pub struct PublishArgs {
    pub data: Bytes,
    pub info: Option<ClientInfo>,
    pub tags: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    /// The trace the publication continues (empty when untraced): the
    /// topic's `publish` span is its child.
    pub trace: TraceContext,
    /// When the node accepted it (set by the engine): the start of
    /// `hub_publish_fanout_duration_seconds`.
    pub accepted: Option<Instant>,
    /// The publisher asks for delta compression (the server API's `delta`,
    /// Centrifugo's "whether to use delta"); the namespace's `delta_publish`
    /// asks for every publication.
    pub delta: bool,
}

/// A stream position: the offset of a publication (0 without history) and the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

/// Why a topic refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// The topic is retiring: look the channel up again and retry.
    Retiring,
    /// A protocol error for the caller.
    Code(ErrorCode),
}

/// Requests to a topic actor.
pub enum TopicMsg {
    Subscribe(Box<SubscribeArgs>, RpcReplyPort<Result<Subscribed, TopicError>>),
    /// Remove a subscriber (idempotent); the reply comes once it is gone.
    Unsubscribe(Arc<str>, Option<RpcReplyPort<()>>),
    Publish(Box<PublishArgs>, RpcReplyPort<Result<Position, TopicError>>),
    Presence(RpcReplyPort<Result<BTreeMap<String, ClientInfo>, TopicError>>),
    /// (clients, distinct users)
    PresenceStats(RpcReplyPort<Result<(u32, u32), TopicError>>),
    History(HistoryQuery, RpcReplyPort<Result<HistoryPage, TopicError>>),
    HistoryRemove(RpcReplyPort<Result<(), TopicError>>),
    /// Number of subscribers.
    Count(RpcReplyPort<usize>),
    /// Retire when nothing is left to keep.
    IdleCheck,
    /// Cluster mode: a publication sequenced by the channel's owner (epoch,
    /// publication, the trace it continues: the `deliver` span's parent).
    /// Its `delta` says that the publisher asked for delta compression (the
    /// topic computes the deltas; it is never stored nor sent as such).
    Deliver(String, Box<Publication>, TraceContext, Instant),
    /// Cluster mode: a push to fan out as is (join/leave announced by some node).
    Remote(Box<Push>),
    /// Cluster mode: the result of a sync the replica started: the owner's
    /// stream (epoch, top, publications), to start the replica from.
    Synced(SyncId, Result<OwnerStream, ErrorCode>),
    /// Test hook: make this actor fail as a bug would.
    InjectPanic,
}

/// A subscribe waiting for the replica's sync.
type Pending = (SubscribeArgs, RpcReplyPort<Result<Subscribed, TopicError>>);

/// A channel's state, owned by its topic actor.
pub struct TopicState {
    channel: Channel,
    options: ChannelOptions,
    subscribers: HashMap<Arc<str>, Subscriber>,
    stream: Stream,
    idempotency: HashMap<String, (Instant, Position)>,
    retiring: bool,
    idle_check_pending: bool,
    /// Some in cluster mode: the stream is the owner's, copied.
    replica: Option<Replica<Pending>>,
    /// Publications fanned out so far (names the base of a delta).
    fanned_out: u64,
    /// The last one, kept when the namespace allows delta compression.
    previous: Option<Previous>,
}

impl TopicState {
    pub fn new(channel: Channel, options: ChannelOptions, cluster_mode: bool) -> Self {
        let stream = Stream::new(options.history_size, options.history_ttl);
        TopicState {
            channel,
            options,
            subscribers: HashMap::new(),
            stream,
            idempotency: HashMap::new(),
            retiring: false,
            idle_check_pending: false,
            replica: cluster_mode.then(Replica::default),
            fanned_out: 0,
            previous: None,
        }
    }

    /// Takes the subscribers out (used by the supervisor after a failure).
    pub fn take_subscribers(&mut self) -> Vec<Subscriber> {
        self.subscribers.drain().map(|(_, s)| s).collect()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    fn position(&self, offset: u64) -> Position {
        Position { offset, epoch: if self.stream.enabled() { self.stream.epoch().to_string() } else { String::new() } }
    }
}

/// What a topic actor needs besides its state.
#[derive(Clone)]
pub struct TopicContext {
    pub registry: Arc<registry::TopicMap>,
    pub metrics: Arc<Metrics>,
    pub idempotency_window: Duration,
    /// `client_recovery_max_publication_limit` (0 = no count limit).
    pub recovery_max_publications: usize,
    /// Set when the node runs in a cluster: its topics are replicas.
    pub replication: Option<Arc<dyn Replication>>,
}

pub struct TopicActor;

pub struct TopicArgs {
    pub state: TopicState,
    pub context: TopicContext,
}

pub struct TopicActorState {
    state: TopicState,
    context: TopicContext,
}

impl Actor for TopicActor {
    type Msg = TopicMsg;
    type State = TopicActorState;
    type Arguments = TopicArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TopicMsg>,
        mut args: TopicArgs,
    ) -> Result<TopicActorState, ActorProcessingErr> {
        args.state.idle_check_pending = args.state.subscribers.is_empty();
        if args.state.idle_check_pending {
            myself.send_after(IDLE_CHECK, || TopicMsg::IdleCheck);
        }
        Ok(TopicActorState { state: args.state, context: args.context })
    }

    async fn handle(
        &self,
        myself: ActorRef<TopicMsg>,
        message: TopicMsg,
        actor: &mut TopicActorState,
    ) -> Result<(), ActorProcessingErr> {
        let TopicActorState { state, context } = actor;
        // Handling is synchronous (a topic never awaits): a panic is caught here
        // and the topic goes on with its state (see the module docs).
        let handled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle_message(&myself, message, state, context)));
        if let Err(panic) = handled {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            recover_from_panic(&myself, state, context, &reason);
        }
        Ok(())
    }
}

/// After a panic: count it, tell every subscriber it lost the channel (they
/// resubscribe and recover), and go on with the stream as it is.
fn recover_from_panic(myself: &ActorRef<TopicMsg>, state: &mut TopicState, context: &TopicContext, reason: &str) {
    context.metrics.topic_restarts.inc();
    let orphans = state.take_subscribers();
    tracing::error!(channel = %state.channel, %reason, subscribers = orphans.len(), "topic failed; it goes on with its stream");
    for subscriber in orphans {
        subscriber.lost.channel_lost(state.channel.clone());
    }
    if !state.idle_check_pending && !state.retiring {
        state.idle_check_pending = true;
        myself.send_after(IDLE_CHECK, || TopicMsg::IdleCheck);
    }
}

/// Handles one message (the body of the actor's `handle`, synchronous).
fn handle_message(myself: &ActorRef<TopicMsg>, message: TopicMsg, state: &mut TopicState, context: &TopicContext) {
    let now = Instant::now();
    match message {
        TopicMsg::Subscribe(args, reply) => match state.replica.as_mut() {
            Some(replica) if !state.retiring => {
                let action = replica.subscribe((*args, reply));
                carry_out(state, myself, action, now, context);
            }
            _ => {
                let result = subscribe(state, *args, now, context);
                let _ = reply.send(result);
            }
        },
        TopicMsg::Deliver(epoch, publication, trace, received) => {
            let span = trace.child(|| {
                tracing::info_span!(
                    "deliver",
                    channel = %state.channel,
                    offset = publication.offset,
                    subscribers = state.subscribers.len()
                )
            });
            let _entered = span.enter();
            if let Some(replica) = state.replica.as_mut() {
                let action = replica.deliver(&mut state.stream, epoch, *publication, now);
                let fanout = matches!(action, Action::Fanout(_));
                carry_out(state, myself, action, now, context);
                if fanout {
                    context.metrics.observe_fanout(received.elapsed());
                }
            }
        }
        TopicMsg::Remote(push) => broadcast(state, *push, context),
        TopicMsg::Synced(sync, result) => {
            if let Some(replica) = state.replica.as_mut() {
                for action in replica.synced(&mut state.stream, sync, result, now) {
                    carry_out(state, myself, action, now, context);
                }
            }
        }
        TopicMsg::Unsubscribe(client, reply) => {
            if let Some(subscriber) = state.subscribers.remove(&client) {
                leave(state, &subscriber, context);
            }
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
        }
        TopicMsg::Publish(args, reply) => {
            let result = if state.retiring {
                Err(TopicError::Retiring)
            } else if state.replica.is_some() {
                // Cluster mode publishes through the channel's owner, never here.
                Err(TopicError::Code(codes::INTERNAL))
            } else {
                Ok(publish(state, *args, now, context))
            };
            let _ = reply.send(result);
        }
        TopicMsg::Presence(reply) => {
            let result = refuse_if(state, !state.options.presence)
                .map(|()| state.subscribers.values().map(|s| (s.client.to_string(), s.info())).collect());
            let _ = reply.send(result);
        }
        TopicMsg::PresenceStats(reply) => {
            let result = refuse_if(state, !state.options.presence).map(|()| {
                let users: HashSet<&str> = state.subscribers.values().map(|s| &*s.user).collect();
                (state.subscribers.len() as u32, users.len() as u32)
            });
            let _ = reply.send(result);
        }
        TopicMsg::History(query, reply) => {
            let result = refuse_if(state, !state.stream.enabled())
                .and_then(|()| state.stream.page(&query, now).map_err(TopicError::Code));
            let _ = reply.send(result);
        }
        TopicMsg::HistoryRemove(reply) => {
            let result = refuse_if(state, !state.stream.enabled()).map(|()| state.stream.clear());
            let _ = reply.send(result);
        }
        TopicMsg::Count(reply) => {
            let _ = reply.send(state.subscribers.len());
        }
        TopicMsg::IdleCheck => {
            state.idle_check_pending = false;
            if !state.subscribers.is_empty() || state.retiring {
                return;
            }
            let window = context.idempotency_window;
            state.idempotency.retain(|_, (at, _)| now.duration_since(*at) < window);
            // A replica keeps nothing the owner does not have.
            let stream_done = state.replica.is_some() || !state.stream.enabled() || state.stream.expired(now);
            if stream_done && state.idempotency.is_empty() {
                state.retiring = true;
                let id = myself.get_id();
                context.registry.remove_if(state.channel.as_str(), |_, topic| topic.get_id() == id);
                // Closes the mailbox to new messages; those already queued are
                // answered `Retiring`, so their senders look the channel up again.
                let _ = myself.drain();
            } else {
                state.idle_check_pending = true;
                myself.send_after(IDLE_CHECK, || TopicMsg::IdleCheck);
            }
            return;
        }
        TopicMsg::InjectPanic => panic!("injected topic failure (test hook)"),
    }
    if state.subscribers.is_empty() && !state.idle_check_pending && !state.retiring {
        state.idle_check_pending = true;
        myself.send_after(IDLE_CHECK, || TopicMsg::IdleCheck);
    }
}

fn refuse_if(state: &TopicState, not_available: bool) -> Result<(), TopicError> {
    if state.retiring {
        Err(TopicError::Retiring)
    } else if not_available {
        Err(TopicError::Code(codes::NOT_AVAILABLE))
    } else {
        Ok(())
    }
}

fn subscribe(
    state: &mut TopicState,
    args: SubscribeArgs,
    now: Instant,
    context: &TopicContext,
) -> Result<Subscribed, TopicError> {
    if state.retiring {
        return Err(TopicError::Retiring);
    }
    let mut subscriber = args.subscriber;
    if state.subscribers.contains_key(&subscriber.client) {
        return Err(TopicError::Code(codes::ALREADY_SUBSCRIBED));
    }
    let recoverable = args.recoverable && state.stream.enabled();
    let succeeded = |epoch: &String| state.replica.as_ref().is_some_and(|r| r.is_predecessor(epoch));
    let (publications, recovered) = match (&args.recover, recoverable) {
        (Some((_, epoch)), true) if *epoch != state.stream.epoch() && succeeded(epoch) => {
            // The client's stream ended with its owner: what it missed there is
            // unknown (not recovered), but the stream that replaced it is whole.
            (state.stream.complete(now), false)
        }
        (Some((offset, epoch)), true) => {
            let recovery = state.stream.recover(*offset, epoch, now);
            (recovery.publications, recovery.recovered)
        }
        _ => (Vec::new(), false),
    };
    // Centrifugo's `client_recovery_max_publication_limit`: past it, no
    // recovery (the byte bound is checked once the reply is encoded).
    let max_count = context.recovery_max_publications;
    let (mut publications, recovered) =
        if max_count > 0 && publications.len() > max_count { (Vec::new(), false) } else { (publications, recovered) };
    if let Some(filter) = &subscriber.filter {
        // The position still covers the filtered ones (`offset` is the top).
        publications.retain(|p| filter.matches(&p.tags));
    }
    let (epoch, offset) =
        if recoverable { (state.stream.epoch().to_string(), state.stream.top()) } else { (String::new(), 0) };
    let encoding = subscriber.outbox.encoding();
    let delta = subscriber.delta.is_some() && args.reply != ReplyTarget::Push;
    // The data of the last publication the subscriber is sent with its reply.
    let mut last_sent = publications.last().map(|p| p.data.clone());
    if delta {
        publications = publications.into_iter().map(|p| delta::recovered_for_delta(encoding, p)).collect();
    }
    // The outbox's largest message (`client_outbox_bytes`): a recovery that
    // does not fit in it is answered `recovered: false` without publications.
    let max_bytes = subscriber.outbox.max_message();
    let was_recovering = args.recover.is_some() && recoverable;
    if was_recovering && !recovered && args.reject_unrecovered {
        return Err(TopicError::Code(codes::UNRECOVERABLE_POSITION));
    }
    let result = |publications: Vec<Publication>, recovered: bool| proto::SubscribeResult {
        expires: args.ttl.is_some(),
        ttl: args.ttl.unwrap_or(0),
        recoverable,
        epoch: epoch.clone(),
        publications,
        recovered,
        offset,
        positioned: recoverable,
        was_recovering,
        data: args.data.clone(),
        delta,
    };
    let mut returned = None;
    let queued = match args.reply {
        ReplyTarget::Reply(id) => {
            let reply = |publications: Vec<Publication>, recovered: bool| {
                let subscribe = Some(result(publications, recovered));
                codec::encode(encoding, &Reply { id, subscribe, ..Default::default() })
            };
            let mut encoded = reply(publications, recovered);
            if encoded.len() > max_bytes {
                if was_recovering && args.reject_unrecovered {
                    return Err(TopicError::Code(codes::UNRECOVERABLE_POSITION));
                }
                encoded = reply(Vec::new(), false);
                last_sent = None;
            }
            subscriber.outbox.push(encoded)
        }
        ReplyTarget::Return => {
            // Bounded like a reply of its own; the caller checks the sum.
            let mut answer = result(publications, recovered);
            if codec::encode(encoding, &Reply { subscribe: Some(answer.clone()), ..Default::default() }).len()
                > max_bytes
            {
                answer = result(Vec::new(), false);
                last_sent = None;
            }
            returned = Some(Box::new(answer));
            Ok(())
        }
        ReplyTarget::Push => {
            let subscribe_push = |recovered: bool| {
                let push = Push {
                    channel: state.channel.to_string(),
                    subscribe: Some(proto::Subscribe {
                        recoverable,
                        epoch: epoch.clone(),
                        offset,
                        positioned: recoverable,
                        was_recovering,
                        recovered,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                encode_push(encoding, push)
            };
            // The subscribe push and the recovered publications go in as one
            // unit, bounded like one reply.
            let mut group = vec![subscribe_push(recovered)];
            for publication in publications {
                let push = Push { channel: state.channel.to_string(), r#pub: Some(publication), ..Default::default() };
                group.push(encode_push(encoding, push));
            }
            if group.iter().map(Bytes::len).sum::<usize>() > max_bytes {
                group = vec![subscribe_push(false)];
            }
            subscriber.outbox.push_all(&group)
        }
    };
    if let Err(error) = queued {
        if error == PushError::Slow {
            context.metrics.slow_disconnects.inc();
        }
        return Err(TopicError::Code(codes::INTERNAL.temporary()));
    }
    if delta {
        // Its base: the channel's last publication when what it was sent last
        // holds the same bytes (a delta depends on nothing else), else none:
        // the next publication goes in full.
        let base = state.previous.as_ref().filter(|p| last_sent.as_ref() == Some(&p.data)).map(|p| p.seq);
        subscriber.delta = Some(base.map_or_else(DeltaBase::none, DeltaBase::at));
    } else {
        subscriber.delta = None;
    }
    let info = subscriber.info();
    state.subscribers.insert(subscriber.client.clone(), subscriber);
    if state.options.join_leave {
        match (&state.replica, &context.replication) {
            // Every node (this one too) hears it from the delivery exchange.
            (Some(_), Some(replication)) => replication.announce(state.channel.as_str(), &info, true),
            _ => {
                let push = Push {
                    channel: state.channel.to_string(),
                    join: Some(proto::Join { info: Some(info) }),
                    ..Default::default()
                };
                broadcast(state, push, context);
            }
        }
    }
    Ok(returned)
}

/// Cluster mode: carries out what the replica decided.
fn carry_out(
    state: &mut TopicState,
    myself: &ActorRef<TopicMsg>,
    action: Action<Pending>,
    now: Instant,
    context: &TopicContext,
) {
    match action {
        Action::Ignore | Action::Wait => {}
        Action::StartSync(sync) => {
            let Some(replication) = context.replication.clone() else {
                let _ = myself.cast(TopicMsg::Synced(sync, Err(codes::INTERNAL.temporary())));
                return;
            };
            let channel = state.channel.clone();
            let myself = myself.clone();
            tokio::spawn(async move {
                let result = replication.sync(channel.to_string()).await;
                let _ = myself.cast(TopicMsg::Synced(sync, result));
            });
        }
        Action::Subscribe(pending) => answer(state, pending, now, context),
        Action::AnswerPending(pending) => {
            for pending in pending {
                answer(state, pending, now, context);
            }
        }
        Action::FailPending(pending, code) => {
            for (_, reply) in pending {
                let _ = reply.send(Err(TopicError::Code(code)));
            }
        }
        Action::Fanout(mut publication) => {
            context.metrics.publications.inc();
            // The publisher's delta flag travels on the publication up to
            // here (see `Deliver`); clients see `delta` only on a delta.
            let asked = std::mem::take(&mut publication.delta);
            fan_out(state, publication, asked, context);
        }
        Action::DropSubscribers => {
            for subscriber in state.take_subscribers() {
                subscriber.lost.channel_lost(state.channel.clone());
            }
        }
    }
}

fn answer(state: &mut TopicState, (args, reply): Pending, now: Instant, context: &TopicContext) {
    let result = subscribe(state, args, now, context);
    let _ = reply.send(result);
}

/// Sequences and fans out one publication, in a `publish` span (channel,
/// offset, subscribers) when it is traced.
fn publish(state: &mut TopicState, args: PublishArgs, now: Instant, context: &TopicContext) -> Position {
    let accepted = args.accepted;
    let span = args.trace.child(|| {
        tracing::info_span!(
            "publish",
            channel = %state.channel,
            offset = tracing::field::Empty,
            subscribers = state.subscribers.len()
        )
    });
    let _entered = span.enter();
    if let Some(key) = &args.idempotency_key {
        let window = context.idempotency_window;
        if let Some((at, position)) = state.idempotency.get(key) {
            if now.duration_since(*at) < window {
                return position.clone();
            }
        }
    }
    let mut publication = Publication { data: args.data, info: args.info, tags: args.tags, ..Default::default() };
    let offset = if state.stream.enabled() { state.stream.append(publication.clone(), now) } else { 0 };
    let delta = args.delta;
    publication.offset = offset;
    span.record("offset", offset);
    let position = state.position(offset);
    if let Some(key) = args.idempotency_key {
        let window = context.idempotency_window;
        state.idempotency.retain(|_, (at, _)| now.duration_since(*at) < window);
        state.idempotency.insert(key, (now, position.clone()));
    }
    context.metrics.publications.inc();
    fan_out(state, publication, delta, context);
    if let Some(accepted) = accepted {
        context.metrics.observe_fanout(accepted.elapsed());
    }
    tracing::debug!(offset, "published");
    position
}

fn leave(state: &mut TopicState, subscriber: &Subscriber, context: &TopicContext) {
    if state.options.join_leave && state.replica.is_some() {
        if let Some(replication) = &context.replication {
            replication.announce(state.channel.as_str(), &subscriber.info(), false);
        }
        return;
    }
    if state.options.join_leave {
        let info = Some(subscriber.info());
        let push =
            Push { channel: state.channel.to_string(), leave: Some(proto::Leave { info }), ..Default::default() };
        broadcast(state, push, context);
    }
}

fn encode_push(encoding: Encoding, push: Push) -> Bytes {
    codec::encode(encoding, &Reply { push: Some(push), ..Default::default() })
}

/// Fans a push that is not a publication (join, leave) out to every
/// subscriber: encoded once per encoding in use, the bytes shared.
fn broadcast(state: &mut TopicState, push: Push, context: &TopicContext) {
    let reply = Reply { push: Some(push), ..Default::default() };
    let mut encoded: [Option<Bytes>; 2] = [None, None];
    let mut gone: Vec<Arc<str>> = Vec::new();
    for subscriber in state.subscribers.values() {
        let encoding = subscriber.outbox.encoding();
        let bytes = encoded[encoding.index()].get_or_insert_with(|| codec::encode(encoding, &reply)).clone();
        push_to(subscriber, bytes, &mut gone, context);
    }
    remove_gone(state, gone, context);
}

/// Fans a publication out to every subscriber its tags filter lets through:
/// each variant (plain; full or delta for delta subscribers, see [`delta`])
/// encoded at most once per encoding, the bytes shared. `asked_delta`: the
/// publisher asked for delta compression (or the namespace does for all).
fn fan_out(state: &mut TopicState, publication: Publication, asked_delta: bool, context: &TopicContext) {
    state.fanned_out += 1;
    let seq = state.fanned_out;
    let previous = state.previous.take();
    let asked_delta = asked_delta || state.options.delta_publish;
    let base = previous.filter(|_| asked_delta);
    let base_seq = base.as_ref().map(|p| p.seq);
    let mut encodings = Encodings::new(state.channel.as_str(), publication, base.map(|p| p.data));
    let mut gone: Vec<Arc<str>> = Vec::new();
    for subscriber in state.subscribers.values_mut() {
        if let Some(filter) = &subscriber.filter {
            if !filter.matches(&encodings.publication().tags) {
                continue;
            }
        }
        let encoding = subscriber.outbox.encoding();
        let bytes = match &mut subscriber.delta {
            None => encodings.plain(encoding),
            Some(sent) => {
                let has_base = base_seq.is_some_and(|b| *sent == DeltaBase::at(b));
                *sent = DeltaBase::at(seq);
                encodings.for_delta_subscriber(encoding, has_base)
            }
        };
        push_to(subscriber, bytes, &mut gone, context);
    }
    if !state.options.allowed_delta_types.is_empty() {
        let publication = encodings.into_publication();
        state.previous = Some(Previous { seq, data: publication.data });
    }
    remove_gone(state, gone, context);
}

/// Pushes without waiting; a subscriber whose outbox overflows or is closed
/// goes into `gone`.
fn push_to(subscriber: &Subscriber, bytes: Bytes, gone: &mut Vec<Arc<str>>, context: &TopicContext) {
    match subscriber.outbox.push(bytes) {
        Ok(()) => {}
        Err(PushError::Slow) => {
            context.metrics.slow_disconnects.inc();
            gone.push(subscriber.client.clone());
        }
        Err(PushError::Closed) => gone.push(subscriber.client.clone()),
    }
}

/// Removes the subscribers that could not take a push (and announces their leave).
fn remove_gone(state: &mut TopicState, gone: Vec<Arc<str>>, context: &TopicContext) {
    for client in gone {
        if let Some(subscriber) = state.subscribers.remove(&client) {
            leave(state, &subscriber, context);
        }
    }
}
