//! The sessions of this node and what they share.
//!
//! - [`SessionContext`]: what a session (and a transport starting one) needs
//!   of the node — the configuration, the token verifier, the channel
//!   operations ([`Engine`]), the topics, the metrics and the registry —
//!   handed down at spawn instead of the node itself.
//! - [`SessionRegistry`]: sessions by client id, client ids by user, HTTP
//!   sessions by their secret emulation id, and every live session actor (for
//!   shutdown). `DashMap`s whose guards are never held across an await.
//!   Session actors register on connect and unregister when their state is
//!   dropped (normal stop or failure alike).
//!
//! Connection limits (`crate::quota`): [`SessionRegistry::try_register`]
//! counts a client against the node's, its user's and its address's limit
//! and registers it in one step, each count updated atomically (an atomic
//! for the node, the `DashMap` entry's lock for a user or an address), so
//! concurrent connects never pass a limit; a refused client leaves no count.
//!
//! Shutdown waits on a drop-sentinel: every session holds a clone of one
//! sender, and [`SessionRegistry::drain`] waits until the last is dropped
//! (mini-redis's `shutdown_complete`), bounded by a deadline.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use protocol::codec::decode_frame;
use protocol::codes::DisconnectCode;
use protocol::proto::Command;
use protocol::Encoding;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inflight, SessionActor, SessionArgs, SessionMsg, TransportKind};
use crate::auth::TokenVerifier;
use crate::channel::Channel;
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::quota::{ConnectionLimits, Refusal};
use crate::topic::registry::TopicRegistry;

/// Frames an emulated session may have in flight before `/emulation` waits.
const MAX_PENDING_FRAMES: usize = 64;
/// How long `/emulation` waits for room before answering busy.
const EMULATION_WAIT: Duration = Duration::from_secs(5);

/// A connected session as the registry sees it.
#[derive(Clone)]
pub struct SessionEntry {
    pub actor: ActorRef<SessionMsg>,
    pub user: Arc<str>,
    /// The client address counted against `client_ip_connection_limit`
    /// (`None` when that limit is off or the address is unknown).
    pub ip: Option<IpAddr>,
    /// The session id of an SSE or HTTP-stream connection (its connect
    /// reply's `session`); none for WebSocket.
    pub session: Option<Arc<str>>,
}

/// Which of a user's connected sessions a server command reaches: all of
/// them, narrowed by `client` and `session` (both must match when both are
/// given), never those in `except`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selector<'a> {
    pub client: Option<&'a str>,
    pub session: Option<&'a str>,
    pub except: &'a [String],
}

impl Selector<'_> {
    fn matches(&self, client: &str, entry: &SessionEntry) -> bool {
        self.client.is_none_or(|want| client == want)
            && self.session.is_none_or(|want| entry.session.as_deref() == Some(want))
            && !self.except.iter().any(|kept| kept == client)
    }
}

/// Why emulation commands were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    #[error("session not found")]
    UnknownSession,
    #[error("encoding differs from the session's")]
    WrongEncoding,
    /// The frame does not decode (the decoder's reason).
    #[error("{0}")]
    BadFrame(String),
    #[error("session busy, retry")]
    Busy,
}

/// Sessions of this node.
pub struct SessionRegistry {
    sessions: DashMap<Arc<str>, SessionEntry>,
    users: DashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Connected clients, counted against `client_connection_limit`.
    connected: AtomicUsize,
    /// Connected clients by address, while `client_ip_connection_limit` is on.
    by_ip: DashMap<IpAddr, usize>,
    /// Sessions of the HTTP transports by their secret session id, for `/emulation`.
    emulation: DashMap<Arc<str>, (ActorRef<SessionMsg>, Arc<Inflight>, Encoding)>,
    /// Session actors alive (connected or not), for shutdown and leak checks.
    live: DashMap<ractor::ActorId, Arc<Outbox>>,
    supervisor: ActorRef<()>,
    /// Cancelled when the node starts stopping: no new session from then on.
    stopping: CancellationToken,
    /// The drop-sentinel: each session holds a clone; taken (dropped) by drain.
    alive: Mutex<Option<mpsc::Sender<()>>>,
    all_gone: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl SessionRegistry {
    /// Starts the sessions' supervisor.
    pub async fn start(metrics: Arc<Metrics>, stopping: CancellationToken) -> anyhow::Result<Arc<SessionRegistry>> {
        let (supervisor, _) = Actor::spawn(None, SessionSupervisor { metrics }, ()).await?;
        let (alive, all_gone) = mpsc::channel(1);
        Ok(Arc::new(SessionRegistry {
            sessions: DashMap::new(),
            users: DashMap::new(),
            connected: AtomicUsize::new(0),
            by_ip: DashMap::new(),
            emulation: DashMap::new(),
            live: DashMap::new(),
            supervisor,
            stopping,
            alive: Mutex::new(Some(alive)),
            all_gone: tokio::sync::Mutex::new(all_gone),
        }))
    }

    /// Registers a connected client unless that passes one of `limits` (0 =
    /// off): the node's, then its address's (`ip`, counted only while that
    /// limit is on), then its user's (anonymous clients are not counted per
    /// user). A refusal undoes the counts taken before it.
    pub(super) fn try_register(
        &self,
        client: Arc<str>,
        actor: ActorRef<SessionMsg>,
        user: Arc<str>,
        session: Option<Arc<str>>,
        ip: Option<IpAddr>,
        limits: ConnectionLimits,
    ) -> Result<(), Refusal> {
        let node_ok = self.connected.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (limits.node == 0 || n < limits.node).then_some(n + 1)
        });
        if node_ok.is_err() {
            return Err(Refusal::NodeConnections);
        }
        let ip = ip.filter(|_| limits.ip > 0);
        if let Some(ip) = ip {
            // A refused address already has a count (>= the limit >= 1), so
            // no zero entry is left behind.
            let mut count = self.by_ip.entry(ip).or_insert(0);
            if *count >= limits.ip {
                drop(count);
                self.connected.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::IpConnections);
            }
            *count += 1;
        }
        {
            let mut clients = self.users.entry(user.clone()).or_default();
            if limits.user > 0 && !user.is_empty() && clients.len() >= limits.user {
                drop(clients);
                self.release(ip);
                return Err(Refusal::UserConnections);
            }
            clients.insert(client.clone());
        }
        self.sessions.insert(client, SessionEntry { actor, user, ip, session });
        Ok(())
    }

    /// Gives back the node's and the address's count of one client.
    fn release(&self, ip: Option<IpAddr>) {
        self.connected.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = ip {
            self.by_ip.remove_if_mut(&ip, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
    }

    pub(super) fn unregister(&self, client: &str, user: &str) {
        if let Some((_, entry)) = self.sessions.remove(client) {
            self.release(entry.ip);
        }
        self.users.remove_if_mut(user, |_, clients| {
            clients.remove(client);
            clients.is_empty()
        });
    }

    pub(super) fn stopped(&self, id: ractor::ActorId, emulation_id: Option<&str>) {
        self.live.remove(&id);
        if let Some(id) = emulation_id {
            self.emulation.remove(id);
        }
    }

    /// Session actors alive on this node.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Connected clients on this node.
    pub fn client_count(&self) -> usize {
        self.sessions.len()
    }

    /// Distinct users connected to this node.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The connected sessions of `user` that `select` picks.
    pub fn sessions_of(&self, user: &str, select: Selector<'_>) -> Vec<SessionEntry> {
        let clients: Vec<Arc<str>> = match self.users.get(user) {
            Some(clients) => clients.iter().cloned().collect(),
            None => Vec::new(),
        };
        clients
            .iter()
            .filter_map(|c| self.sessions.get(c).filter(|e| select.matches(c, e.value())).map(|e| e.value().clone()))
            .collect()
    }

    /// Subscribes the user's selected sessions to `channel` server-side.
    pub fn subscribe_user(&self, user: &str, channel: Channel, select: Selector<'_>) {
        for entry in self.sessions_of(user, select) {
            let _ = entry.actor.cast(SessionMsg::ServerSubscribe(channel.clone()));
        }
    }

    /// Unsubscribes the user's selected sessions from `channel` (code 2000).
    pub fn unsubscribe_user(&self, user: &str, channel: Channel, select: Selector<'_>) {
        for entry in self.sessions_of(user, select) {
            let _ = entry.actor.cast(SessionMsg::ServerUnsubscribe(channel.clone()));
        }
    }

    /// Disconnects the user's selected sessions with `code`.
    pub fn disconnect_user(&self, user: &str, select: Selector<'_>, code: DisconnectCode) {
        for entry in self.sessions_of(user, select) {
            let _ = entry.actor.cast(SessionMsg::Disconnect(code));
        }
    }

    /// Sets the connection expiry of the user's selected sessions: `Some(exp)`
    /// (Unix seconds; one already past closes them with 3005), or `None` (no expiry).
    pub fn refresh_user(&self, user: &str, select: Selector<'_>, expires_at: Option<u64>) {
        for entry in self.sessions_of(user, select) {
            let _ = entry.actor.cast(SessionMsg::Refresh(expires_at));
        }
    }

    /// Decodes emulation commands for the local session `id` and hands them
    /// over, waiting (at most [`EMULATION_WAIT`]) while it has too many frames
    /// in flight.
    pub async fn emulate(
        &self,
        id: &str,
        encoding: Encoding,
        data: &[u8],
        max_frame_bytes: usize,
    ) -> Result<(), EmulationError> {
        // The frame first: a bad one is refused whatever session it names.
        let commands = decode_frame::<Command>(encoding, data, max_frame_bytes)
            .map_err(|e| EmulationError::BadFrame(e.to_string()))?;
        let (session, inflight, session_encoding) =
            self.emulation.get(id).map(|entry| entry.value().clone()).ok_or(EmulationError::UnknownSession)?;
        if session_encoding != encoding {
            return Err(EmulationError::WrongEncoding);
        }
        let deadline = tokio::time::Instant::now() + EMULATION_WAIT;
        while inflight.count() >= MAX_PENDING_FRAMES {
            if tokio::time::timeout_at(deadline, inflight.drained()).await.is_err() {
                return Err(EmulationError::Busy);
            }
        }
        session.cast(SessionMsg::Commands(commands, Some(inflight.start()))).map_err(|_| EmulationError::UnknownSession)
    }

    /// Closes every session's outbox with `code` (queued messages first) and
    /// waits until every session actor has ended, at most `timeout`. Returns
    /// the number still alive then.
    pub async fn drain(&self, code: DisconnectCode, timeout: Duration) -> usize {
        self.stopping.cancel();
        drop(self.alive.lock().take());
        for entry in self.live.iter() {
            entry.value().close(code);
        }
        let mut all_gone = self.all_gone.lock().await;
        // `None` once the last session dropped its sender.
        let _ = tokio::time::timeout(timeout, all_gone.recv()).await;
        self.live.len()
    }

    /// Stops the sessions' supervisor.
    pub fn stop_supervisor(&self) {
        self.supervisor.stop(None);
    }
}

/// What sessions and the transports that start them share: handed down, never
/// the node.
pub struct SessionContext {
    pub config: Arc<Config>,
    pub verifier: TokenVerifier,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub topics: TopicRegistry,
    pub registry: Arc<SessionRegistry>,
    /// Calls to the application's backend (`rpc`).
    pub proxies: Arc<crate::proxy::Proxies>,
}

impl SessionContext {
    /// This node's name (in connect replies and emulation routing).
    pub fn name(&self) -> &str {
        &self.config.node_name
    }

    /// The connection limits of the configuration.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            node: self.config.client_connection_limit,
            user: self.config.client_user_connection_limit,
            ip: self.config.client_ip_connection_limit,
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.registry.stopping.is_cancelled()
    }

    /// Starts a session actor for a new connection whose messages go to
    /// `outbox`. An HTTP-transport session also gets a secret session id
    /// under which `/emulation` finds it. Refused while the node stops.
    /// `span` is the connection's ([`super::connection_span`]): the session
    /// handles every message inside it. `ip` is the client's address
    /// (`crate::quota::client_ip`), for `client_ip_connection_limit`.
    pub async fn spawn(
        self: &Arc<Self>,
        outbox: Arc<Outbox>,
        transport: TransportKind,
        emulation: Option<(Arc<str>, Arc<Inflight>)>,
        span: tracing::Span,
        ip: Option<IpAddr>,
        headers: Arc<[(String, String)]>,
    ) -> anyhow::Result<ActorRef<SessionMsg>> {
        let registry = &self.registry;
        let Some(alive) = registry.alive.lock().clone() else { anyhow::bail!("node is shutting down") };
        if self.is_shutting_down() {
            anyhow::bail!("node is shutting down");
        }
        let encoding = outbox.encoding();
        let emulation_id = emulation.as_ref().map(|(id, _)| id.clone());
        let args = SessionArgs {
            ctx: self.clone(),
            outbox: outbox.clone(),
            transport,
            emulation_id,
            alive,
            span,
            ip,
            headers,
        };
        let (actor, _) = Actor::spawn_linked(None, SessionActor, args, registry.supervisor.get_cell()).await?;
        self.metrics.session_started(transport.index());
        registry.live.insert(actor.get_id(), outbox);
        if let Some((id, inflight)) = emulation {
            registry.emulation.insert(id, (actor.clone(), inflight, encoding));
        }
        Ok(actor)
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
            self.metrics.session_failures.inc();
            tracing::error!(actor = %cell.get_id(), %error, "session failed");
        }
        Ok(())
    }
}
