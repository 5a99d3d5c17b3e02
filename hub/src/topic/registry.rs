//! The topic registry and the supervisor of topic actors.
//!
//! Lookups take the fast path through a `DashMap` (no guard is held across an
//! await); a miss asks the supervisor, which creates the topic once. A topic
//! survives a panic of its own handling (see [`super`]); the supervisor only
//! forgets a topic actor that ended some other way.
//!
//! A topic that retires removes itself from the map and drains its mailbox,
//! answering `Retiring`; [`TopicRegistry::call`] then looks the channel up
//! again, so no request is lost to a retiring topic.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use protocol::codes::{self, ErrorCode};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, SupervisionEvent};

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
        Ok(SupervisorState { context })
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
                let result = match live {
                    Some(topic) => Ok(topic),
                    None => {
                        let cluster_mode = state.context.replication.is_some();
                        let topic = TopicState::new(channel.clone(), options, cluster_mode);
                        spawn_topic(&myself, state, channel, topic).await
                    }
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event {
            // Not a panic while handling a message (the topic survives those):
            // its state is gone; callers create the channel anew.
            let id = cell.get_id();
            tracing::error!(%error, "a topic actor failed outside its message handling");
            state.context.registry.retain(|_, topic| topic.get_id() != id);
        }
        Ok(())
    }
}

async fn spawn_topic(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    channel: Channel,
    topic: TopicState,
) -> Result<ActorRef<TopicMsg>, ErrorCode> {
    let args = TopicArgs { state: topic, context: state.context.clone() };
    match Actor::spawn_linked(None, TopicActor, args, myself.get_cell()).await {
        Ok((topic, _)) => {
            state.context.registry.insert(channel.shared(), topic.clone());
            Ok(topic)
        }
        Err(error) => {
            tracing::error!(%channel, %error, "cannot spawn topic");
            Err(codes::INTERNAL.temporary())
        }
    }
}
