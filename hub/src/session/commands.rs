//! The session's command handlers: one method per protocol command.
//!
//! Rules common to all: before a successful connect only `connect` is
//! accepted (anything else disconnects with 3501); a command that expects a
//! reply must carry an id; an empty command is a pong; `rpc` and `send` with
//! an id get error 108 "not available" (no handler here), an async `send` is
//! ignored, and a command naming no known method disconnects with 3501.

use std::sync::Arc;
use std::time::Duration;

use protocol::codes::{self, ErrorCode, UnsubscribeCode};
use protocol::proto::{self, ClientInfo, Command, Push, Reply};
use protocol::subscribe_flags;

use super::{ttl_until, Session, Subscription};
use crate::auth::TokenError;
use crate::channel::Channel;
use crate::config::{ChannelOptions, DeltaType};
use crate::quota::Refusal;
use crate::topic::filter::TagsFilter;
use crate::topic::{
    DeltaBase, HistoryQuery, PublishArgs, ReplyTarget, SubscribeArgs, Subscribed, Subscriber, TopicMsg,
};

/// A `?channel=` of a one-way SSE client in a namespace where clients may not
/// subscribe by themselves.
const UNI_SSE_NOT_ALLOWED: UnsubscribeCode = UnsubscribeCode { code: 2000, reason: "permission denied" };
/// A `?channel=` of a one-way SSE client that is not a valid channel (unknown
/// namespace, bad name).
const UNI_SSE_UNKNOWN_CHANNEL: UnsubscribeCode = UnsubscribeCode { code: 2000, reason: "unknown channel" };

/// Outcome of a handler: a reply to send, or nothing (already sent / none due).
type Handled = Result<Option<Reply>, ErrorCode>;

impl Session {
    pub(super) async fn handle_command(&mut self, command: Command) {
        let id = command.id;
        let is_pong = command == Command::default();
        if is_pong {
            // The empty command answers a server ping (already noted by the caller).
            return;
        }
        if self.client.is_none() && command.connect.is_none() {
            return self.disconnect(codes::BAD_REQUEST_DISCONNECT);
        }
        if id == 0 && command.send.is_none() {
            // Every command but `send` and the pong expects a reply, so needs an id.
            return self.disconnect(codes::BAD_REQUEST_DISCONNECT);
        }
        if command.connect.is_none() && !self.command_allowed(id) {
            return;
        }
        let result: Handled = if let Some(request) = command.connect {
            return self.connect(id, request).await;
        } else if let Some(request) = command.subscribe {
            self.subscribe(id, request).await
        } else if let Some(request) = command.unsubscribe {
            self.unsubscribe(request).await
        } else if let Some(request) = command.publish {
            self.publish(id, request).await
        } else if let Some(request) = command.presence {
            self.presence(request).await
        } else if let Some(request) = command.presence_stats {
            self.presence_stats(request).await
        } else if let Some(request) = command.history {
            self.history(request).await
        } else if command.ping.is_some() {
            Ok(Some(Reply { ping: Some(proto::PingResult {}), ..Default::default() }))
        } else if let Some(request) = command.refresh {
            self.refresh(request).await
        } else if let Some(request) = command.sub_refresh {
            self.sub_refresh(request).await
        } else if command.send.is_some() && id == 0 {
            tracing::debug!(client = %self.client_id(), "async message ignored: no handler for `send`");
            return;
        } else if let Some(request) = command.rpc.as_ref().filter(|_| self.ctx.proxies.has_rpc()) {
            self.rpc(id, request.clone()).await
        } else if command.rpc.is_some() || command.send.is_some() {
            // No RPC or message handler on this server: 108, as Centrifugo answers
            // an `rpc` when no RPC handler is set (centrifuge-js asserts it).
            Err(codes::NOT_AVAILABLE)
        } else {
            // A command naming no method this server knows is malformed, as in
            // Centrifugo (3501 bad request).
            tracing::debug!(client = %self.client_id(), id, "command names no known method");
            return self.disconnect(codes::BAD_REQUEST_DISCONNECT);
        };
        if self.closed {
            return;
        }
        match result {
            Ok(Some(mut reply)) => {
                reply.id = id;
                self.send(&reply);
            }
            Ok(None) => {}
            Err(error) => self.send(&Reply { id, error: Some(error.to_proto()), ..Default::default() }),
        }
    }

    /// `rpc` through the RPC proxy (`[proxy.rpc]`, see crate::proxy): the
    /// backend's data, its error, or its disconnect; a backend with no usable
    /// answer is error 100 marked temporary ([`Session::proxy_outcome`]).
    async fn rpc(&mut self, id: u32, request: proto::RpcRequest) -> Handled {
        let client = self.client_id();
        let proxies = self.ctx.proxies.clone();
        let outcome = proxies.rpc(self.caller(&client), &request.method, &request.data).await;
        let data = self.proxy_outcome(id, outcome);
        Ok(data.map(|data| Reply { rpc: Some(proto::RpcResult { data }), ..Default::default() }))
    }

    /// What the proxies are told of this connection.
    pub(super) fn caller<'a>(&'a self, client: &'a str) -> crate::proxy::Caller<'a> {
        crate::proxy::Caller {
            client,
            user: &self.user,
            transport: self.transport.label(),
            protobuf: self.outbox.encoding() == protocol::Encoding::Protobuf,
            headers: &self.headers,
            meta: self.meta.as_deref(),
        }
    }

    /// Asks the subscribe proxy (`subscribe_proxy = true`): its decision, or
    /// `None` when the client got its answer already (the backend's error, 100
    /// temporary when the backend gave no usable answer, or a close).
    async fn subscribe_proxy(
        &mut self,
        id: u32,
        channel: &Channel,
        data: &[u8],
    ) -> Option<crate::proxy::SubscribeReply> {
        let client = self.client_id();
        let proxies = self.ctx.proxies.clone();
        let outcome = proxies.subscribe(self.caller(&client), channel.as_str(), data).await;
        self.proxy_outcome(id, outcome)
    }

    /// Asks the publish proxy (`publish_proxy = true`): `Some(Some(data))`
    /// when the backend changed the data, `Some(None)` when it kept it, `None`
    /// when the client got its answer already (as for the subscribe proxy).
    async fn publish_proxy(&mut self, id: u32, channel: &Channel, data: &[u8]) -> Option<Option<bytes::Bytes>> {
        let client = self.client_id();
        let proxies = self.ctx.proxies.clone();
        let outcome = proxies.publish(self.caller(&client), channel.as_str(), data).await;
        self.proxy_outcome(id, outcome).map(|reply| reply.data)
    }

    /// A proxy's answer: its result, or `None` once the client was answered
    /// (the backend's error as the reply to command `id`; 100 temporary when
    /// the backend gave no usable answer; 108 with no endpoint, which the
    /// config check rules out) or closed (the backend's disconnect).
    fn proxy_outcome<T>(
        &mut self,
        id: u32,
        outcome: Option<Result<crate::proxy::Outcome<T>, crate::proxy::ProxyError>>,
    ) -> Option<T> {
        use crate::proxy::Outcome;
        let error = match outcome {
            Some(Ok(Outcome::Result(result))) => return Some(result),
            Some(Ok(Outcome::Disconnect(code, reason))) => {
                self.backend_disconnect(code, &reason);
                return None;
            }
            Some(Ok(Outcome::Error(code, message, temporary))) => proto::Error { code, message, temporary },
            Some(Err(_)) => codes::INTERNAL.temporary().to_proto(),
            None => codes::NOT_AVAILABLE.to_proto(),
        };
        self.send(&Reply { id, error: Some(error), ..Default::default() });
        None
    }

    /// Closes the client as the backend said (a code in 4000..=4999, checked
    /// by the proxy).
    pub(super) fn backend_disconnect(&mut self, code: u32, reason: &str) {
        let code = u16::try_from(code).unwrap_or(4000);
        self.disconnect(protocol::codes::DisconnectCode { code, reason: crate::proxy::disconnect_reason(reason) });
    }

    /// `client_command_rate`: takes a token for a command of a connected
    /// client. Without one the command is refused with error 111 (an async
    /// `send` silently); past `client_command_rate_disconnect_after` refusals
    /// in a row, the client is closed with 3013 instead.
    fn command_allowed(&mut self, id: u32) -> bool {
        let Some(bucket) = self.command_bucket.as_mut() else { return true };
        if bucket.take(tokio::time::Instant::now()) {
            self.refused_in_row = 0;
            return true;
        }
        let metrics = self.ctx.metrics.clone();
        let disconnect_after = self.ctx.config.client_command_rate_disconnect_after;
        if disconnect_after > 0 && self.refused_in_row >= disconnect_after {
            metrics.limit_refused(Refusal::CommandRateDisconnect);
            tracing::info!(refused = self.refused_in_row, "disconnected: over client_command_rate");
            self.disconnect(codes::TOO_MANY_REQUESTS_DISCONNECT);
            return false;
        }
        self.refused_in_row += 1;
        metrics.limit_refused(Refusal::CommandRate);
        if id != 0 {
            self.send(&Reply {
                id,
                error: Some(codes::TOO_MANY_REQUESTS.temporary().to_proto()),
                ..Default::default()
            });
        }
        false
    }

    async fn connect(&mut self, id: u32, request: proto::ConnectRequest) {
        if self.client.is_some() {
            return self.disconnect(codes::BAD_REQUEST_DISCONNECT);
        }
        let ctx = self.ctx.clone();
        // Made now: the connect proxy is told the id the connection will have.
        let client: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        // The connect proxy's `data`, for the client's connect reply.
        let mut connect_data = bytes::Bytes::new();
        // The refresh proxy, not the client, renews a connection the connect
        // proxy admitted (Centrifugo's server-side refresh): no expiry is announced.
        let mut refreshed_by_proxy = false;
        let (user, expires_at, info, channels) = if !request.token.is_empty() {
            match ctx.verifier.verify_connect(&request.token).await {
                Ok(claims) => (claims.user, claims.expires_at, claims.info.unwrap_or_default(), claims.channels),
                Err(TokenError::Expired) => {
                    self.send(&Reply { id, error: Some(codes::TOKEN_EXPIRED.to_proto()), ..Default::default() });
                    return;
                }
                Err(TokenError::Unavailable(reason)) => {
                    tracing::warn!(%reason, "connect refused for now: token keys unavailable");
                    self.send(&Reply { id, error: Some(codes::KEYS_UNAVAILABLE.to_proto()), ..Default::default() });
                    return;
                }
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(%reason, "connect refused: invalid token");
                    return self.disconnect(codes::INVALID_TOKEN);
                }
            }
        } else if ctx.proxies.has_connect() {
            match self.connect_proxy(id, &client, &request).await {
                Some((decided, data)) => {
                    connect_data = data;
                    refreshed_by_proxy = ctx.proxies.has_refresh();
                    decided
                }
                None => return,
            }
        } else if ctx.config.allow_anonymous {
            (String::new(), None, bytes::Bytes::new(), Vec::new())
        } else {
            self.send(&Reply { id, error: Some(codes::UNAUTHORIZED.to_proto()), ..Default::default() });
            return;
        };
        // Server-side subscriptions count against the same per-client limit
        // as the client's own (Centrifugo: disconnect 3505 "channel limit").
        let uni_channels = if self.transport == super::TransportKind::UniSse {
            request.subs.keys().filter(|name| !channels.contains(name)).count()
        } else {
            0
        };
        if channels.len() + uni_channels > ctx.config.max_channels_per_client {
            tracing::info!(channels = channels.len() + uni_channels, "connect refused: over max_channels_per_client");
            ctx.metrics.limit_refused(Refusal::Channels);
            return self.disconnect(codes::CHANNEL_LIMIT);
        }
        let user: Arc<str> = Arc::from(user);
        let registered = ctx.registry.try_register(
            client.clone(),
            self.myself.clone(),
            user.clone(),
            self.emulation_id.as_deref().map(Arc::from),
            self.ip,
            ctx.connection_limits(),
        );
        if let Err(refusal) = registered {
            ctx.metrics.limit_refused(refusal);
            tracing::info!(limit = refusal.label(), ip = ?self.ip, %user, "connect refused: connection limit");
            return self.disconnect(refusal.disconnect().unwrap_or(codes::CONNECTION_LIMIT));
        }
        self.client = Some(client.clone());
        self.user = user;
        self.span.record("client", &*client).record("user", &*self.user);
        self.conn_info = info;
        self.expires_at = expires_at;
        let ping = ctx.config.ping_interval.as_secs_f64().ceil().max(1.0) as u32;
        let ttl = expires_at.filter(|_| !refreshed_by_proxy).map(ttl_until);
        let mut result = proto::ConnectResult {
            client: client.to_string(),
            version: crate::VERSION.to_string(),
            expires: ttl.is_some(),
            ttl: ttl.unwrap_or(0),
            ping,
            pong: self.transport != super::TransportKind::UniSse,
            node: ctx.name().to_string(),
            session: self.emulation_id.as_deref().unwrap_or_default().to_string(),
            data: connect_data,
            ..Default::default()
        };
        // Server-side subscriptions made at connect (the personal channel, the
        // token's `channels`) are answered inside the connect reply's `subs`, as
        // Centrifugo does; the outbox is held meanwhile so that their
        // publications come after that reply. The one-way transport keeps its
        // documented events: a `subscribe` push per channel after `connect`.
        let mut server_side: Vec<(Channel, Option<(u64, String)>)> = Vec::new();
        if ctx.config.personal_channel.enabled && !self.user.is_empty() {
            if ctx.config.personal_channel.single_connection {
                let except = ctx.engine.disconnect_user_except(&self.user, &client, codes::CONNECTION_LIMIT).await;
                if let Err(error) = except {
                    tracing::warn!(code = error.code, "single connection: the user's other connections were not told");
                }
            }
            let name = ctx.config.personal_channel.channel(&self.user);
            match Channel::parse(&name, &ctx.config) {
                Ok((channel, _)) => server_side.push((channel, recover_position(&request, &name))),
                Err(error) => tracing::warn!(channel = %name, code = error.code, "personal channel refused"),
            }
        }
        for name in &channels {
            match Channel::parse(name, &ctx.config) {
                Ok((channel, _)) => server_side.push((channel, recover_position(&request, name))),
                Err(_) => tracing::warn!(channel = %name, "token channel refused: unknown channel"),
            }
        }
        let in_reply = self.transport != super::TransportKind::UniSse;
        if in_reply {
            self.outbox.hold();
        } else {
            self.send(&Reply { id, connect: Some(result.clone()), ..Default::default() });
        }
        for (channel, recover) in server_side {
            let name = channel.to_string();
            let target = if in_reply { ReplyTarget::Return } else { ReplyTarget::Push };
            if let Some(subscribed) = self.server_subscribe(channel, recover, target).await {
                result.subs.insert(name, *subscribed);
            }
            if self.closed {
                return;
            }
        }
        if in_reply {
            let encoding = self.outbox.encoding();
            let mut reply = Reply { id, connect: Some(result), ..Default::default() };
            let mut bytes = protocol::codec::encode(encoding, &reply);
            if let Some(connect) = reply.connect.as_mut().filter(|_| bytes.len() > self.outbox.max_message()) {
                // Too large with what was recovered: the subscriptions stay,
                // their publications are left out (`recovered: false`; the SDK
                // goes on from the position given).
                for sub in connect.subs.values_mut() {
                    sub.publications.clear();
                    sub.recovered = false;
                }
                bytes = protocol::codec::encode(encoding, &reply);
            }
            if let Err(error) = self.outbox.release_front(bytes) {
                if error == crate::outbox::PushError::Slow {
                    ctx.metrics.slow_disconnects.inc();
                }
                return self.stop();
            }
        }
        tracing::debug!(%client, user = %self.user, transport = ?self.transport, "connected");
        self.schedule_ping(true);
        match expires_at {
            Some(exp) if refreshed_by_proxy => self.schedule_proxy_refresh(exp, None),
            Some(exp) => self.schedule_expiry(exp),
            None => {}
        }
        if self.transport == super::TransportKind::UniSse {
            // A one-way client names its channels in `subs` (from the query);
            // it gets those any client may subscribe to.
            for (name, sub) in &request.subs {
                if channels.contains(name) {
                    continue;
                }
                match Channel::parse(name, &ctx.config) {
                    Ok((channel, options)) if channel.client_may_subscribe(options, &self.user) => {
                        let recover = sub.recover.then(|| (sub.offset, sub.epoch.clone()));
                        self.server_subscribe(channel, recover, ReplyTarget::Push).await;
                    }
                    // Refused: the stream says so for that channel and goes on
                    // with the others (a code below 2500: no retry).
                    Ok(_) => self.refuse_uni_channel(name, UNI_SSE_NOT_ALLOWED),
                    Err(_) => self.refuse_uni_channel(name, UNI_SSE_UNKNOWN_CHANNEL),
                }
                if self.closed {
                    return;
                }
            }
        }
    }

    /// A connect without a token, decided by the connect proxy: (user,
    /// expiry, conn_info, server-side channels) and the data for the reply.
    /// `None` when the client got its answer already (an error reply or a
    /// close). The backend's `meta` is kept for the connection's later calls.
    #[allow(clippy::type_complexity)]
    async fn connect_proxy(
        &mut self,
        id: u32,
        client: &str,
        request: &proto::ConnectRequest,
    ) -> Option<((String, Option<u64>, bytes::Bytes, Vec<String>), bytes::Bytes)> {
        let proxies = self.ctx.proxies.clone();
        let outcome = proxies.connect(self.caller(client), request).await?;
        // As Centrifugo: an empty user is an anonymous connection the backend
        // allowed (`allow_anonymous` is not asked).
        let reply = self.proxy_outcome(id, Some(outcome))?;
        self.meta = reply.meta;
        let channels = reply.channels.into_iter().map(|(name, _)| name).collect();
        Some(((reply.user, reply.expires_at, reply.info, channels), reply.data))
    }

    fn subscriber(
        &self,
        chan_info: bytes::Bytes,
        filter: Option<Arc<TagsFilter>>,
        delta: Option<DeltaBase>,
    ) -> Subscriber {
        Subscriber {
            filter,
            delta,
            client: self.client_id(),
            user: self.user.clone(),
            outbox: self.outbox.clone(),
            lost: Arc::new(self.myself.clone()),
            conn_info: self.conn_info.clone(),
            chan_info,
        }
    }

    async fn subscribe(&mut self, id: u32, request: proto::SubscribeRequest) -> Handled {
        let ctx = self.ctx.clone();
        // As Centrifugo (centrifuge `client.go`, subscribe): a delta type it
        // does not know is a malformed request (3501); one the namespace does
        // not list in `allowed_delta_types` is not an error: the subscription
        // goes on without delta (`delta` absent from the result).
        let delta = match request.delta.as_str() {
            "" => None,
            name => match DeltaType::parse(name) {
                Some(delta_type) => Some(delta_type),
                None => {
                    tracing::info!(channel = %request.channel, delta = %name, "unknown delta type in subscribe");
                    self.disconnect(codes::BAD_REQUEST_DISCONNECT);
                    return Ok(None);
                }
            },
        };
        let (channel, options) = Channel::parse(&request.channel, &ctx.config)?;
        if self.subs.contains_key(&channel) {
            return Err(codes::ALREADY_SUBSCRIBED);
        }
        if self.subs.len() >= ctx.config.max_channels_per_client {
            ctx.metrics.limit_refused(Refusal::Channels);
            return Err(codes::LIMIT_EXCEEDED);
        }
        let mut expires_at = None;
        let mut chan_info = bytes::Bytes::new();
        let mut proxy_data = bytes::Bytes::new();
        if !request.token.is_empty() {
            match ctx.verifier.verify_subscribe(&request.token).await {
                Ok(claims) => {
                    if claims.channel != channel.as_str() || claims.user != *self.user {
                        return Err(codes::PERMISSION_DENIED);
                    }
                    expires_at = claims.expires_at;
                    chan_info = claims.info.unwrap_or_default();
                }
                Err(TokenError::Expired) => return Err(codes::TOKEN_EXPIRED),
                Err(TokenError::Unavailable(reason)) => {
                    tracing::warn!(%reason, channel = %channel, "subscribe refused for now: token keys unavailable");
                    return Err(codes::KEYS_UNAVAILABLE);
                }
                // As Centrifugo: a subscription token that does not verify refuses
                // this subscription only (103); the connection and its other
                // subscriptions stay.
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(%reason, channel = %channel, "subscribe refused: invalid token");
                    return Err(codes::PERMISSION_DENIED);
                }
            }
        } else if options.subscribe_proxy {
            let Some(decided) = self.subscribe_proxy(id, &channel, &request.data).await else { return Ok(None) };
            expires_at = decided.expires_at;
            chan_info = decided.info;
            proxy_data = decided.data;
        } else if !channel.client_may_subscribe(options, &self.user) {
            return Err(codes::PERMISSION_DENIED);
        }
        let filter = match &request.tf {
            None => None,
            Some(_) if !options.allow_tags_filter => {
                tracing::info!(channel = %channel, "subscribe refused: tags filter not allowed in the namespace");
                return Err(codes::BAD_REQUEST);
            }
            Some(node) => match TagsFilter::new(node) {
                Ok(filter) => Some(Arc::new(filter)),
                Err(reason) => {
                    tracing::info!(channel = %channel, %reason, "subscribe refused: invalid tags filter");
                    return Err(codes::BAD_REQUEST);
                }
            },
        };
        let recoverable = options.history_enabled() && (options.force_recovery || request.recoverable);
        let recover = request.recover.then(|| (request.offset, request.epoch.clone()));
        let ttl = expires_at.map(ttl_until);
        let args = SubscribeArgs {
            subscriber: self.subscriber(
                chan_info.clone(),
                filter,
                delta.filter(|t| options.allowed_delta_types.contains(t)).map(|_| DeltaBase::none()),
            ),
            recover,
            recoverable,
            reject_unrecovered: request.flag & subscribe_flags::REJECT_UNRECOVERED != 0,
            ttl,
            data: proxy_data,
            reply: ReplyTarget::Reply(id),
        };
        // Counted before the call: the topic queues the client's reply itself,
        // and a client holding its reply must find itself in hub_subscriptions.
        ctx.metrics.subscriptions.inc();
        ctx.topics
            .call(&channel, options, |reply| TopicMsg::Subscribe(Box::new(args.clone()), reply))
            .await
            .inspect_err(|_| {
                ctx.metrics.subscriptions.dec();
            })?;
        self.add_subscription(channel, Subscription { server_side: false, expires_at, chan_info });
        // The topic queued the reply itself, ahead of any publication.
        Ok(None)
    }

    /// Records a subscription the topic accepted (already counted in
    /// `hub_subscriptions` by the caller, before the topic answered).
    fn add_subscription(&mut self, channel: Channel, subscription: Subscription) {
        if let Some(exp) = subscription.expires_at {
            self.schedule_sub_expiry(channel.clone(), exp);
        }
        self.subs.insert(channel, subscription);
    }

    /// Subscribes without a client command. With [`ReplyTarget::Push`] the
    /// outcome goes out as a `subscribe` push; with [`ReplyTarget::Return`] it
    /// is returned, for the connect reply's `subs`. `None` when the
    /// subscription was not made (logged) or was pushed.
    pub(super) async fn server_subscribe(
        &mut self,
        channel: Channel,
        recover: Option<(u64, String)>,
        reply: ReplyTarget,
    ) -> Subscribed {
        if self.client.is_none() || self.subs.contains_key(&channel) {
            return None;
        }
        if self.subs.len() >= self.ctx.config.max_channels_per_client {
            self.ctx.metrics.limit_refused(Refusal::Channels);
            tracing::warn!(%channel, "server-side subscribe skipped: the client is at max_channels_per_client");
            return None;
        }
        let ctx = self.ctx.clone();
        let options = Channel::parse(channel.as_str(), &ctx.config).ok().map(|(_, o)| o)?;
        let recoverable = options.history_enabled();
        let args = SubscribeArgs {
            // Delta compression is for client-side subscriptions only (as in Centrifugo).
            subscriber: self.subscriber(bytes::Bytes::new(), None, None),
            recover,
            recoverable,
            reject_unrecovered: false,
            ttl: None,
            data: bytes::Bytes::new(),
            reply,
        };
        ctx.metrics.subscriptions.inc();
        match ctx.topics.call(&channel, options, |reply| TopicMsg::Subscribe(Box::new(args.clone()), reply)).await {
            Ok(subscribed) => {
                self.add_subscription(
                    channel,
                    Subscription { server_side: true, expires_at: None, chan_info: bytes::Bytes::new() },
                );
                subscribed
            }
            Err(error) => {
                ctx.metrics.subscriptions.dec();
                tracing::warn!(%channel, code = error.code, "server-side subscribe failed");
                None
            }
        }
    }

    pub(super) async fn server_unsubscribe(&mut self, channel: Channel, code: UnsubscribeCode) {
        if self.subs.remove(&channel).is_none() {
            return;
        }
        self.ctx.metrics.subscriptions.dec();
        self.leave_topic(&channel).await;
        self.send_unsubscribe_push(channel.as_str(), code);
    }

    /// Tells a one-way client that a channel it named was not subscribed.
    fn refuse_uni_channel(&mut self, name: &str, code: UnsubscribeCode) {
        tracing::debug!(channel = %name, reason = code.reason, "uni_sse channel refused");
        self.send_unsubscribe_push(name, code);
    }

    pub(super) fn send_unsubscribe_push(&mut self, channel: &str, code: UnsubscribeCode) {
        let push = Push { channel: channel.to_string(), unsubscribe: Some(code.to_proto()), ..Default::default() };
        self.send(&Reply { push: Some(push), ..Default::default() });
    }

    /// Removes this client from the topic and waits until it is gone, so no
    /// publication of the channel follows the unsubscribe reply.
    async fn leave_topic(&self, channel: &Channel) {
        if let Some(topic) = self.ctx.topics.lookup(channel.as_str()) {
            let client = self.client_id();
            let _ = topic.call(|reply| TopicMsg::Unsubscribe(client, Some(reply)), Some(Duration::from_secs(10))).await;
        }
    }

    async fn unsubscribe(&mut self, request: proto::UnsubscribeRequest) -> Handled {
        let (channel, _) = Channel::parse(&request.channel, &self.ctx.config)?;
        if self.subs.remove(&channel).is_some() {
            self.ctx.metrics.subscriptions.dec();
            self.leave_topic(&channel).await;
        }
        Ok(Some(Reply { unsubscribe: Some(proto::UnsubscribeResult {}), ..Default::default() }))
    }

    async fn publish(&mut self, id: u32, request: proto::PublishRequest) -> Handled {
        let ctx = self.ctx.clone();
        let (channel, options) = Channel::parse(&request.channel, &ctx.config)?;
        let mut data = request.data;
        if options.publish_proxy {
            // The backend's data is bounded like a client's (the engine checks).
            match self.publish_proxy(id, &channel, &data).await {
                Some(Some(changed)) => data = changed,
                Some(None) => {}
                None => return Ok(None),
            }
        } else if !options.allow_publish {
            return Err(codes::PERMISSION_DENIED);
        }
        // 0 bytes of data are a publication too (Centrifugo accepts them since 6.5.2).
        let info = ClientInfo {
            user: self.user.to_string(),
            client: self.client_id().to_string(),
            conn_info: self.conn_info.clone(),
            chan_info: self.subs.get(&channel).map(|s| s.chan_info.clone()).unwrap_or_default(),
        };
        // Client publications ask for delta only through the namespace's
        // `delta_publish` (as in Centrifugo), which the topic applies.
        let args = PublishArgs { data, info: Some(info), ..Default::default() };
        ctx.engine.publish_to(&channel, options, args).await?;
        Ok(Some(Reply { publish: Some(proto::PublishResult {}), ..Default::default() }))
    }

    /// Presence and history are for the channel's subscribers, or for anyone
    /// who may subscribe by itself (see [`Channel::client_may_subscribe`]).
    fn may_read(&self, channel: &Channel, options: &ChannelOptions) -> Result<(), ErrorCode> {
        if self.subs.contains_key(channel) || channel.client_may_subscribe(options, &self.user) {
            Ok(())
        } else {
            Err(codes::PERMISSION_DENIED)
        }
    }

    async fn presence(&mut self, request: proto::PresenceRequest) -> Handled {
        let ctx = self.ctx.clone();
        let (channel, options) = Channel::parse(&request.channel, &ctx.config)?;
        self.may_read(&channel, options)?;
        let presence = ctx.engine.presence(channel.as_str()).await?;
        Ok(Some(Reply { presence: Some(proto::PresenceResult { presence }), ..Default::default() }))
    }

    async fn presence_stats(&mut self, request: proto::PresenceStatsRequest) -> Handled {
        let ctx = self.ctx.clone();
        let (channel, options) = Channel::parse(&request.channel, &ctx.config)?;
        self.may_read(&channel, options)?;
        let (num_clients, num_users) = ctx.engine.presence_stats(channel.as_str()).await?;
        Ok(Some(Reply {
            presence_stats: Some(proto::PresenceStatsResult { num_clients, num_users }),
            ..Default::default()
        }))
    }

    async fn history(&mut self, request: proto::HistoryRequest) -> Handled {
        let ctx = self.ctx.clone();
        let (channel, options) = Channel::parse(&request.channel, &ctx.config)?;
        self.may_read(&channel, options)?;
        let max = options.history_size.min(i32::MAX as usize) as i32;
        let limit = if request.limit < 0 || request.limit > max { max } else { request.limit };
        let query = HistoryQuery { limit, since: request.since.map(|s| (s.offset, s.epoch)), reverse: request.reverse };
        let page = ctx.engine.history(channel.as_str(), query).await?;
        let result = proto::HistoryResult { publications: page.publications, epoch: page.epoch, offset: page.offset };
        // The largest id, so that the reply still fits once it gets its own.
        let mut reply = Reply { id: u32::MAX, history: Some(result), ..Default::default() };
        fit_history(&mut reply, self.outbox.encoding(), self.outbox.max_message());
        Ok(Some(reply))
    }

    async fn refresh(&mut self, request: proto::RefreshRequest) -> Handled {
        let claims = match self.ctx.verifier.verify_connect(&request.token).await {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Err(codes::TOKEN_EXPIRED),
            Err(TokenError::Unavailable(reason)) => {
                tracing::warn!(%reason, "refresh refused for now: token keys unavailable");
                return Err(codes::KEYS_UNAVAILABLE);
            }
            Err(TokenError::Invalid(_)) => {
                self.disconnect(codes::INVALID_TOKEN);
                return Ok(None);
            }
        };
        if claims.user != *self.user {
            self.disconnect(codes::INVALID_TOKEN);
            return Ok(None);
        }
        self.expires_at = claims.expires_at;
        let ttl = claims.expires_at.map(ttl_until);
        if let Some(exp) = claims.expires_at {
            self.schedule_expiry(exp);
        }
        let result = proto::RefreshResult {
            client: self.client_id().to_string(),
            version: crate::VERSION.to_string(),
            expires: ttl.is_some(),
            ttl: ttl.unwrap_or(0),
        };
        Ok(Some(Reply { refresh: Some(result), ..Default::default() }))
    }

    async fn sub_refresh(&mut self, request: proto::SubRefreshRequest) -> Handled {
        let (channel, _) = Channel::parse(&request.channel, &self.ctx.config)?;
        if !self.subs.contains_key(&channel) {
            return Err(codes::PERMISSION_DENIED);
        }
        let claims = match self.ctx.verifier.verify_subscribe(&request.token).await {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Err(codes::TOKEN_EXPIRED),
            Err(TokenError::Unavailable(reason)) => {
                tracing::warn!(%reason, channel = %channel, "sub_refresh refused for now: token keys unavailable");
                return Err(codes::KEYS_UNAVAILABLE);
            }
            // Like a refused subscribe: 103 for this subscription, the connection
            // stays (Centrifugo disconnects with 3500 here; a bad subscription
            // token must not end every other subscription). Unrefreshed, the
            // subscription ends with 2501 once its token and grace run out.
            Err(TokenError::Invalid(reason)) => {
                tracing::info!(%reason, channel = %channel, "sub_refresh refused: invalid token");
                return Err(codes::PERMISSION_DENIED);
            }
        };
        if claims.channel != channel.as_str() || claims.user != *self.user {
            return Err(codes::PERMISSION_DENIED);
        }
        let ttl = claims.expires_at.map(ttl_until);
        if let Some(sub) = self.subs.get_mut(&channel) {
            sub.expires_at = claims.expires_at;
        }
        if let Some(exp) = claims.expires_at {
            self.schedule_sub_expiry(channel.clone(), exp);
        }
        let result = proto::SubRefreshResult { expires: ttl.is_some(), ttl: ttl.unwrap_or(0) };
        Ok(Some(Reply { sub_refresh: Some(result), ..Default::default() }))
    }
}

/// Keeps the first publications of a history reply that fit in `max_bytes`
/// once encoded; the others are left for the client's next page (`since` the
/// last offset it got). `reply.id` should be the largest id it may get.
fn fit_history(reply: &mut Reply, encoding: protocol::Encoding, max_bytes: usize) {
    use protocol::prost::Message;
    if crate::limits::encoded_len(encoding, reply) <= max_bytes {
        return;
    }
    let Some(history) = reply.history.as_mut() else { return };
    let publications = std::mem::take(&mut history.publications);
    let base = crate::limits::encoded_len(encoding, reply);
    // Each publication's share of the encoding: its own bytes and a comma
    // (JSON), or a field tag and a length prefix (Protobuf).
    let share = |publication: &proto::Publication| match encoding {
        protocol::Encoding::Json => serde_json::to_vec(publication).map_or(usize::MAX, |v| v.len() + 1),
        protocol::Encoding::Protobuf => {
            let len = publication.encoded_len();
            1 + protocol::prost::length_delimiter_len(len) + len
        }
    };
    let mut total = base;
    let mut kept = Vec::new();
    for publication in publications {
        total = total.saturating_add(share(&publication));
        if total > max_bytes {
            break;
        }
        kept.push(publication);
    }
    if let Some(history) = reply.history.as_mut() {
        history.publications = kept;
    }
}

/// The position a connecting client names for a server-side channel in its
/// connect `subs` (when it asks to recover it).
fn recover_position(request: &proto::ConnectRequest, channel: &str) -> Option<(u64, String)> {
    request.subs.get(channel).filter(|s| s.recover).map(|s| (s.offset, s.epoch.clone()))
}
