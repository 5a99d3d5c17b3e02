//! The connection task: owns the socket, the subscriptions and the requests
//! in flight; reconnects with jittered backoff and renews subscriptions with
//! recovery.
//!
//! States: *waiting* (backoff before the next attempt: subscribe requests are
//! remembered, publish requests fail with `NotConnected`) and *connected* (one
//! WebSocket; the connect command and every subscription go out together in
//! its first frame, so renewal after a reconnect costs one round trip).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{decode_frame, encode_frame};
use protocol::proto::{self, Command, Reply};
use protocol::Encoding;
use rand::Rng;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::client::{Config, Error, Request, SubscribeOptions, Subscribed};
use crate::Event;

type Ws = WebSocketStream<TcpStream>;

/// Largest frame accepted from the server.
const MAX_FRAME: usize = 16 << 20;

struct Sub {
    options: SubscribeOptions,
    /// Last position seen (offset, epoch), once the subscription is recoverable.
    position: Option<(u64, String)>,
    /// The application's subscribe call, answered by the first result.
    waiter: Option<oneshot::Sender<Result<Subscribed, Error>>>,
}

enum Pending {
    Connect,
    Subscribe(String),
    Unsubscribe(oneshot::Sender<Result<(), Error>>),
    Publish(oneshot::Sender<Result<(), Error>>),
}

/// How a connection ended.
enum End {
    /// Lost (network, server close with a reconnect code, no ping): try again.
    Lost { code: u16, reason: String },
    /// A final disconnect code: stop.
    Final { code: u16, reason: String },
    /// Closed by the application (or every handle dropped).
    Closed(Option<oneshot::Sender<()>>),
}

struct State {
    config: Config,
    subs: BTreeMap<String, Sub>,
    events: mpsc::Sender<Event>,
    next_id: u32,
}

pub(crate) async fn run(config: Config, mut inbox: mpsc::Receiver<Request>, events: mpsc::Sender<Event>) {
    let mut state = State { config, subs: BTreeMap::new(), events, next_id: 1 };
    let mut attempt: u32 = 0;
    loop {
        let end = match open(&state.config).await {
            Ok(ws) => {
                let connected_at = Instant::now();
                let end = state.session(ws, &mut inbox).await;
                // A connection that lived a while resets the backoff.
                if connected_at.elapsed() > Duration::from_secs(5) {
                    attempt = 0;
                }
                end
            }
            Err(reason) => End::Lost { code: 0, reason },
        };
        let (code, reason, reconnect) = match end {
            End::Closed(done) => {
                state.fail_waiters(Error::Closed);
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            End::Lost { code, reason } => (code, reason, true),
            End::Final { code, reason } => (code, reason, false),
        };
        if !reconnect {
            state.fail_waiters(Error::Closed);
        }
        if state.events.send(Event::Disconnected { code, reason, reconnect }).await.is_err() || !reconnect {
            return;
        }
        let delay = backoff(&state.config, attempt);
        attempt = attempt.saturating_add(1);
        if let Some(done) = state.wait(delay, &mut inbox).await {
            state.fail_waiters(Error::Closed);
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Delay before attempt `attempt` (0 = first reconnect): full jitter over an
/// exponentially growing ceiling.
fn backoff(config: &Config, attempt: u32) -> Duration {
    let ceiling = config.backoff_min.saturating_mul(1u32 << attempt.min(16)).min(config.backoff_max);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(if millis == 0 { 0 } else { rand::rng().random_range(0..=millis) })
}

/// The SDKs' rule: 3500-3999 and 4500-4999 mean "do not reconnect".
fn reconnects(code: u16) -> bool {
    !((3500..4000).contains(&code) || (4500..5000).contains(&code))
}

async fn open(config: &Config) -> Result<Ws, String> {
    let mut request = config.url.as_str().into_client_request().map_err(|e| format!("bad url: {e}"))?;
    if config.encoding == Encoding::Protobuf {
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("centrifuge-protobuf"));
    }
    let uri = request.uri();
    let host = uri.host().ok_or("url without host")?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| e.to_string())?;
    if let Some(ip) = config.local_addr {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket.connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let ws_config =
        WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0).max_message_size(Some(MAX_FRAME));
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

impl State {
    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn fail_waiters(&mut self, error: Error) {
        for sub in self.subs.values_mut() {
            if let Some(waiter) = sub.waiter.take() {
                let _ = waiter.send(Err(error.clone()));
            }
        }
    }

    /// Backoff: handles requests while waiting. Returns `Some` when closed.
    async fn wait(
        &mut self,
        delay: Duration,
        inbox: &mut mpsc::Receiver<Request>,
    ) -> Option<Option<oneshot::Sender<()>>> {
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return None,
                request = inbox.recv() => match request {
                    None => return Some(None),
                    Some(Request::Close(done)) => return Some(Some(done)),
                    Some(Request::Subscribe(channel, options, reply)) => self.remember(channel, options, reply),
                    Some(Request::Unsubscribe(channel, reply)) => {
                        self.subs.remove(&channel);
                        let _ = reply.send(Ok(()));
                    }
                    Some(Request::Publish(_, _, reply)) => {
                        let _ = reply.send(Err(Error::NotConnected));
                    }
                    Some(Request::Reconnect) => {}
                },
            }
        }
    }

    fn remember(
        &mut self,
        channel: String,
        options: SubscribeOptions,
        reply: oneshot::Sender<Result<Subscribed, Error>>,
    ) {
        if self.subs.contains_key(&channel) {
            let _ =
                reply.send(Err(Error::Server { code: 105, message: "already subscribed".into(), temporary: false }));
            return;
        }
        let position = options.since.clone();
        self.subs.insert(channel, Sub { options, position, waiter: Some(reply) });
    }

    fn subscribe_command(&mut self, channel: &str, pending: &mut HashMap<u32, Pending>) -> Command {
        let id = self.id();
        let sub = &self.subs[channel];
        let (recover, offset, epoch) = match &sub.position {
            Some((offset, epoch)) => (true, *offset, epoch.clone()),
            None => (false, 0, String::new()),
        };
        let request = proto::SubscribeRequest {
            channel: channel.to_string(),
            token: sub.options.token.clone().unwrap_or_default(),
            recover,
            offset,
            epoch,
            recoverable: sub.options.recoverable || recover,
            ..Default::default()
        };
        pending.insert(id, Pending::Subscribe(channel.to_string()));
        Command { id, subscribe: Some(request), ..Default::default() }
    }

    /// One connection, from the connect command until it ends.
    async fn session(&mut self, mut ws: Ws, inbox: &mut mpsc::Receiver<Request>) -> End {
        let encoding = self.config.encoding;
        let mut pending: HashMap<u32, Pending> = HashMap::new();
        let connect_id = self.id();
        pending.insert(connect_id, Pending::Connect);
        let mut first = vec![Command {
            id: connect_id,
            connect: Some(proto::ConnectRequest {
                token: self.config.token.clone().unwrap_or_default(),
                name: "hub-client-rust".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for channel in &channels {
            first.push(self.subscribe_command(channel, &mut pending));
        }
        if send(&mut ws, encoding, &first).await.is_err() {
            return End::Lost { code: 0, reason: "write failed".into() };
        }
        let mut pong = false;
        // Until the connect reply tells the ping interval, the request timeout bounds the wait.
        let mut silence = self.config.request_timeout;
        let mut last_frame = Instant::now();
        loop {
            let dead_at = last_frame + silence;
            tokio::select! {
                message = ws.next() => {
                    last_frame = Instant::now();
                    let frame = match message {
                        Some(Ok(Message::Text(text))) => Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((0, String::new()));
                            return if reconnects(code) { End::Lost { code, reason } } else { End::Final { code, reason } };
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return End::Lost { code: 0, reason: error.to_string() },
                        None => return End::Lost { code: 0, reason: "connection closed".into() },
                    };
                    let replies: Vec<Reply> = match decode_frame(encoding, &frame, MAX_FRAME) {
                        Ok(replies) => replies,
                        Err(error) => return End::Lost { code: 0, reason: format!("bad frame: {error}") },
                    };
                    let mut out = Vec::new();
                    for reply in replies {
                        if let Some(end) = self.on_reply(reply, &mut pending, &mut out, &mut pong, &mut silence).await {
                            return end;
                        }
                    }
                    if !out.is_empty() && send(&mut ws, encoding, &out).await.is_err() {
                        return End::Lost { code: 0, reason: "write failed".into() };
                    }
                }
                request = inbox.recv() => {
                    let Some(request) = request else { return End::Closed(None) };
                    let command = match request {
                        Request::Close(done) => {
                            let _ = ws.close(None).await;
                            return End::Closed(Some(done));
                        }
                        Request::Reconnect => return End::Lost { code: 0, reason: "reconnect requested".into() },
                        Request::Subscribe(channel, options, reply) => {
                            if self.subs.contains_key(&channel) {
                                self.remember(channel, options, reply);
                                continue;
                            }
                            self.remember(channel.clone(), options, reply);
                            self.subscribe_command(&channel, &mut pending)
                        }
                        Request::Unsubscribe(channel, reply) => {
                            if self.subs.remove(&channel).is_none() {
                                let _ = reply.send(Ok(()));
                                continue;
                            }
                            let id = self.id();
                            pending.insert(id, Pending::Unsubscribe(reply));
                            Command { id, unsubscribe: Some(proto::UnsubscribeRequest { channel }), ..Default::default() }
                        }
                        Request::Publish(channel, data, reply) => {
                            let id = self.id();
                            pending.insert(id, Pending::Publish(reply));
                            Command { id, publish: Some(proto::PublishRequest { channel, data }), ..Default::default() }
                        }
                    };
                    if send(&mut ws, encoding, &[command]).await.is_err() {
                        return End::Lost { code: 0, reason: "write failed".into() };
                    }
                }
                _ = tokio::time::sleep_until(dead_at) => {
                    return End::Lost { code: 0, reason: "no ping from the server".into() };
                }
            }
        }
    }

    /// Handles one reply; commands to send go to `out`.
    async fn on_reply(
        &mut self,
        reply: Reply,
        pending: &mut HashMap<u32, Pending>,
        out: &mut Vec<Command>,
        pong: &mut bool,
        silence: &mut Duration,
    ) -> Option<End> {
        if reply.id == 0 {
            let Some(push) = reply.push else {
                // A server ping.
                if *pong {
                    out.push(Command::default());
                }
                return None;
            };
            return self.on_push(push, pending, out).await;
        }
        let error =
            reply.error.clone().map(|e| Error::Server { code: e.code, message: e.message, temporary: e.temporary });
        match pending.remove(&reply.id)? {
            Pending::Connect => match (error, reply.connect) {
                (None, Some(result)) => {
                    *pong = result.pong;
                    if result.ping > 0 {
                        *silence = Duration::from_secs(result.ping as u64) + self.config.max_ping_delay;
                    }
                    let _ = self.events.send(Event::Connected { client: result.client }).await;
                }
                (Some(Error::Server { code, message, temporary }), _) => {
                    let end = if temporary || code == 109 {
                        End::Lost { code: code as u16, reason: message }
                    } else {
                        End::Final { code: code as u16, reason: message }
                    };
                    return Some(end);
                }
                _ => return Some(End::Lost { code: 0, reason: "empty connect reply".into() }),
            },
            Pending::Subscribe(channel) => {
                let sub = self.subs.get_mut(&channel)?;
                match (error, reply.subscribe) {
                    (None, Some(result)) => {
                        if result.recoverable {
                            sub.position = Some((result.offset, result.epoch.clone()));
                        }
                        let subscribed = Subscribed {
                            recoverable: result.recoverable,
                            recovered: result.recovered,
                            was_recovering: result.was_recovering,
                            epoch: result.epoch.clone(),
                            offset: result.offset,
                        };
                        if let Some(waiter) = sub.waiter.take() {
                            let _ = waiter.send(Ok(subscribed));
                        }
                        let event = Event::Subscribed {
                            channel: channel.clone(),
                            recovered: result.recovered,
                            was_recovering: result.was_recovering,
                            epoch: result.epoch,
                            offset: result.offset,
                        };
                        let _ = self.events.send(event).await;
                        for publication in result.publications {
                            let event = Event::Publication {
                                channel: channel.clone(),
                                data: publication.data,
                                offset: publication.offset,
                            };
                            let _ = self.events.send(event).await;
                        }
                    }
                    (error, _) => {
                        let error = error.unwrap_or(Error::Server {
                            code: 100,
                            message: "empty subscribe reply".into(),
                            temporary: true,
                        });
                        let sub = self.subs.remove(&channel)?;
                        if let Some(waiter) = sub.waiter {
                            let _ = waiter.send(Err(error));
                        } else if let Error::Server { code, message, .. } = error {
                            let event = Event::Unsubscribed { channel, code, reason: message, resubscribe: false };
                            let _ = self.events.send(event).await;
                        }
                    }
                }
            }
            Pending::Unsubscribe(waiter) => {
                let _ = waiter.send(error.map_or(Ok(()), Err));
            }
            Pending::Publish(waiter) => {
                let _ = waiter.send(error.map_or(Ok(()), Err));
            }
        }
        None
    }

    async fn on_push(
        &mut self,
        push: proto::Push,
        pending: &mut HashMap<u32, Pending>,
        out: &mut Vec<Command>,
    ) -> Option<End> {
        let channel = push.channel;
        if let Some(publication) = push.r#pub {
            if let Some(sub) = self.subs.get_mut(&channel) {
                if let Some(position) = &mut sub.position {
                    if publication.offset > 0 {
                        position.0 = publication.offset;
                    }
                }
            }
            let _ = self
                .events
                .send(Event::Publication { channel, data: publication.data, offset: publication.offset })
                .await;
        } else if let Some(join) = push.join {
            let info = join.info.unwrap_or_default();
            let _ =
                self.events.send(Event::Presence { channel, joined: true, client: info.client, user: info.user }).await;
        } else if let Some(leave) = push.leave {
            let info = leave.info.unwrap_or_default();
            let _ = self
                .events
                .send(Event::Presence { channel, joined: false, client: info.client, user: info.user })
                .await;
        } else if let Some(unsubscribe) = push.unsubscribe {
            let resubscribe = unsubscribe.code >= 2500;
            if resubscribe && self.subs.contains_key(&channel) {
                out.push(self.subscribe_command(&channel, pending));
            } else {
                self.subs.remove(&channel);
            }
            let event =
                Event::Unsubscribed { channel, code: unsubscribe.code, reason: unsubscribe.reason, resubscribe };
            let _ = self.events.send(event).await;
        } else if let Some(subscribe) = push.subscribe {
            let event = Event::Subscribed {
                channel,
                recovered: subscribe.recovered,
                was_recovering: subscribe.was_recovering,
                epoch: subscribe.epoch,
                offset: subscribe.offset,
            };
            let _ = self.events.send(event).await;
        } else if let Some(disconnect) = push.disconnect {
            let (code, reason) = (disconnect.code as u16, disconnect.reason);
            return Some(if disconnect.reconnect { End::Lost { code, reason } } else { End::Final { code, reason } });
        }
        None
    }
}

async fn send(
    ws: &mut Ws,
    encoding: Encoding,
    commands: &[Command],
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let frame = encode_frame(encoding, commands);
    let message = match encoding {
        // The JSON encoder writes UTF-8 only.
        Encoding::Json => Message::Text(String::from_utf8_lossy(&frame).into_owned().into()),
        Encoding::Protobuf => Message::Binary(frame),
    };
    ws.send(message).await
}
