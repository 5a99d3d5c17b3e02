//! The topic registry and the supervisor of topic actors.
//!
//! Lookups take the fast path through a `DashMap` (no guard is held across an
//! await); a miss asks the supervisor, which creates the topic once. The
//! supervisor restarts a topic actor that fails: the new actor gets the same
//! state (stream and epoch intact), and the former subscribers are told to
//! resubscribe with unsubscribe code 2500, so they recover what they missed.
//!
//! A topic that retires removes itself from the map and drains its mailbox,
//! answering `Retiring`; [`TopicRegistry::call`] then looks the channel up
//! again, so no request is lost to a retiring topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use protocol::codes::{self, ErrorCode};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, SupervisionEvent};

use super::{Replication, TopicActor, TopicArgs, TopicContext, TopicError, TopicMsg, TopicState};
use crate::channel::Channel;
use crate::config::ChannelOptions;
use crate::metrics::Metrics;

/// Channel name to its live topic actor.
pub type TopicMap = DashMap<Arc<str>, ActorRef<TopicMsg>>;

/// How long a caller waits for a topic before answering a temporary error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Lookups retried while topics retire under the caller.
const ATTEMPTS: usize = 5;

pub enum SupervisorMsg {
    GetOrSpawn(Channel, ChannelOptions, RpcReplyPort<Result<ActorRef<TopicMsg>, ErrorCode>>),
}

/// Handle to the topics of this node.
#[derive(Clone)]
pub struct TopicRegistry {
    map: Arc<TopicMap>,
    supervisor: ActorRef<SupervisorMsg>,
}

impl TopicRegistry {
    /// Starts the supervisor. With `replication` (a cluster), every topic is a
    /// replica of its channel's owner.
    pub async fn start(
        metrics: Arc<Metrics>,
        idempotency_window: Duration,
        recovery_max_publications: usize,
        replication: Option<Arc<dyn Replication>>,
    ) -> anyhow::Result<(TopicRegistry, ActorCell)> {
        let map: Arc<TopicMap> = Arc::new(DashMap::new());
        let context =
            TopicContext { registry: map.clone(), metrics, idempotency_window, recovery_max_publications, replication };
        let (supervisor, _) = Actor::spawn(None, TopicSupervisor, context).await?;
        let cell = supervisor.get_cell();
        Ok((TopicRegistry { map, supervisor }, cell))
    }

    /// The live topic for `channel`, if any (no creation).
    pub fn lookup(&self, channel: &str) -> Option<ActorRef<TopicMsg>> {
        self.map.get(channel).map(|entry| entry.value().clone())
    }

    /// Number of live topics.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Channel names of live topics with their subscriber counts... names only;
    /// counts are asked of each topic by the caller.
    pub fn channels(&self) -> Vec<Arc<str>> {
        self.map.iter().map(|entry| entry.key().clone()).collect()
    }

    async fn get_or_spawn(&self, channel: &Channel, options: &ChannelOptions) -> Result<ActorRef<TopicMsg>, ErrorCode> {
        if let Some(topic) = self.lookup(channel.as_str()) {
            return Ok(topic);
        }
        let (channel, options) = (channel.clone(), options.clone());
        match self.supervisor.call(|reply| SupervisorMsg::GetOrSpawn(channel, options, reply), Some(CALL_TIMEOUT)).await
        {
            Ok(CallResult::Success(result)) => result,
            _ => Err(codes::INTERNAL.temporary()),
        }
    }

    /// Sends a request to the channel's topic (created if needed) and waits for
    /// the answer, retrying when the topic retired under us.
    pub async fn call<T: Send + 'static>(
        &self,
        channel: &Channel,
        options: &ChannelOptions,
        request: impl Fn(RpcReplyPort<Result<T, TopicError>>) -> TopicMsg,
    ) -> Result<T, ErrorCode> {
        for _ in 0..ATTEMPTS {
            let topic = self.get_or_spawn(channel, options).await?;
            match topic.call(&request, Some(CALL_TIMEOUT)).await {
                Ok(CallResult::Success(Ok(value))) => return Ok(value),
                Ok(CallResult::Success(Err(TopicError::Code(code)))) => return Err(code),
                Ok(CallResult::Success(Err(TopicError::Retiring))) | Err(MessagingErr::SendErr(_)) => {
                    self.forget(channel.as_str(), &topic);
                }
                Err(_) | Ok(CallResult::Timeout) | Ok(CallResult::SenderError) => {
                    // The topic failed while handling the request: whether it took
                    // effect is unknown, so the caller gets a temporary error.
                    return Err(codes::INTERNAL.temporary());
                }
            }
        }
        Err(codes::INTERNAL.temporary())
    }

    /// Sends without waiting, to the live topic only (e.g. an unsubscribe).
    pub fn cast_existing(&self, channel: &str, message: TopicMsg) {
        if let Some(topic) = self.lookup(channel) {
            let _ = topic.cast(message);
        }
    }

    fn forget(&self, channel: &str, topic: &ActorRef<TopicMsg>) {
        let id = topic.get_id();
        self.map.remove_if(channel, |_, current| current.get_id() == id);
    }
}

struct TopicSupervisor;

struct SupervisorState {
    context: TopicContext,
    children: HashMap<ActorId, Arc<Mutex<TopicState>>>,
    /// The newest child of each channel (an index into `children`, so that
    /// finding a channel's child does not scan them all).
    by_channel: HashMap<Channel, ActorId>,
}

impl Actor for TopicSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = TopicContext;

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        context: TopicContext,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState { context, children: HashMap::new(), by_channel: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::GetOrSpawn(channel, options, reply) => {
                let live = state.context.registry.get(channel.as_str()).map(|t| t.value().clone());
                let failed = if live.is_none() { failed_child(state, &channel) } else { None };
                let result = match (live, failed) {
                    (Some(topic), _) => Ok(topic),
                    // The channel's actor failed and a caller, finding its
                    // mailbox closed, forgot it before this supervisor got the
                    // failure event. Restart it now with its state: a fresh state
                    // here would start a second stream (a new epoch) and the
                    // publications made on it would be lost once the failure
                    // event restarted the first one.
                    (None, Some((id, shared))) => restart(&myself, state, id, shared, "mailbox closed").await,
                    (None, None) => {
                        let cluster_mode = state.context.replication.is_some();
                        let shared = Arc::new(Mutex::new(TopicState::new(channel.clone(), options, cluster_mode)));
                        spawn_topic(&myself, state, channel, shared).await
                    }
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                let id = cell.get_id();
                if let Some(shared) = state.children.remove(&id) {
                    let channel = shared.lock().channel.clone();
                    if state.by_channel.get(&channel) == Some(&id) {
                        state.by_channel.remove(&channel);
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                // None when `GetOrSpawn` already restarted it (see there).
                let Some(shared) = state.children.get(&cell.get_id()).cloned() else { return Ok(()) };
                let _ = restart(&myself, state, cell.get_id(), shared, &error.to_string()).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The child holding `channel`'s state whose actor is gone: a child that is
/// not retiring is in the map unless a caller forgot it after finding its
/// mailbox closed, that is after it failed.
fn failed_child(state: &SupervisorState, channel: &Channel) -> Option<(ActorId, Arc<Mutex<TopicState>>)> {
    let id = state.by_channel.get(channel)?;
    let shared = state.children.get(id)?;
    let retiring = shared.lock().retiring;
    (!retiring).then(|| (*id, shared.clone()))
}

/// Restarts the failed child `id` on its state (stream and epoch intact) and
/// tells its former subscribers to resubscribe (2500). Runs once per failure:
/// the child is taken out of `children` first.
async fn restart(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: ActorId,
    shared: Arc<Mutex<TopicState>>,
    error: &str,
) -> Result<ActorRef<TopicMsg>, ErrorCode> {
    state.children.remove(&id);
    Metrics::inc(&state.context.metrics.topic_restarts);
    let (channel, orphans) = {
        let mut topic = shared.lock();
        topic.retiring = false;
        topic.idle_check_pending = false;
        (topic.channel.clone(), topic.take_subscribers())
    };
    tracing::error!(%channel, %error, subscribers = orphans.len(), "topic failed; restarting it");
    state.context.registry.remove_if(channel.as_str(), |_, topic| topic.get_id() == id);
    let result = spawn_topic(myself, state, channel.clone(), shared).await;
    if let Err(code) = &result {
        tracing::error!(%channel, ?code, "topic restart failed");
    }
    for subscriber in orphans {
        subscriber.lost.channel_lost(channel.clone());
    }
    result
}

async fn spawn_topic(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    channel: Channel,
    shared: Arc<Mutex<TopicState>>,
) -> Result<ActorRef<TopicMsg>, ErrorCode> {
    let args = TopicArgs { state: shared.clone(), context: state.context.clone() };
    match Actor::spawn_linked(None, TopicActor, args, myself.get_cell()).await {
        Ok((topic, _)) => {
            state.children.insert(topic.get_id(), shared);
            state.by_channel.insert(channel.clone(), topic.get_id());
            state.context.registry.insert(channel.shared(), topic.clone());
            Ok(topic)
        }
        Err(error) => {
            tracing::error!(%channel, %error, "cannot spawn topic");
            Err(codes::INTERNAL.temporary())
        }
    }
}
