//! One adapter per protocol: how a subscriber connects and subscribes, which
//! server messages need an answer (heartbeats), and how a publisher publishes.
//!
//! | proto | subscriber | publisher |
//! | --- | --- | --- |
//! | `hub` | Centrifugo v2 JSON over WebSocket: connect + subscribe in one frame, `{}` pings answered | server API `POST /api/batch` (or `/api/publish`), or a client connection (`--hub-publisher client`) |
//! | `ws` | the Node `ws` baseline of `bench/peers/ws-server.js`: `S<channel>` → `OK` | the same server: `P<channel> <payload>` |
//! | `socketio` | Engine.IO v4 / Socket.IO v5 over WebSocket: `40`, `42["sub",ch]` → `42["subok"]`, `2` → `3` | a client emitting `42["pub",ch,payload]` |
//! | `nats` | NATS core protocol over WebSocket: `CONNECT`, `SUB`, `PING` → `PONG` | `PUB` over a WebSocket connection |
//! | `stomp` | STOMP 1.2 over WebSocket (RabbitMQ Web-STOMP), `/topic/<ch>`, receipt awaited | `SEND` frames |
//! | `pusher` | Pusher protocol 7 (sockudo): `pusher:subscribe` → `subscription_succeeded`, `pusher:ping` → `pusher:pong` | the signed HTTP API `POST /apps/<id>/batch_events` |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use md5::Digest;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::http::HttpConn;

pub type Ws = WebSocketStream<TcpStream>;

/// Wire protocol of a server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// This hub (Centrifugo client protocol v2, JSON).
    Hub,
    /// The plain Node `ws` broadcast server (bench/peers/ws-server.js).
    Ws,
    /// Socket.IO v4 server (bench/peers/socketio-server.js).
    Socketio,
    /// nats-server with a websocket listener.
    Nats,
    /// RabbitMQ Web-STOMP.
    Stomp,
    /// Pusher protocol (sockudo).
    Pusher,
}

/// How the hub is published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HubPublisher {
    /// Server API over HTTP (`/api/batch`, or `/api/publish` for single publications).
    Http,
    /// A client connection sending `publish` commands (the namespace must allow it).
    Client,
    /// RabbitMQ: the hub cluster's publish exchange (`--amqp-exchange`, routing key =
    /// channel, body = the JSON payload), with publisher confirms, pipelined.
    Amqp,
}

/// A server under test and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub proto: Proto,
    /// Label in reports (e.g. "hub", "nats").
    pub name: String,
    /// Subscriber endpoint (`ws://...`); the first of `urls`.
    pub url: String,
    /// Every subscriber endpoint: connection i uses `urls[i % len]` (several hub nodes).
    #[serde(default)]
    pub urls: Vec<String>,
    /// HTTP base for API publishers (hub, pusher), `http://host:port`.
    pub api: String,
    /// Hub API key, or Pusher app key.
    pub key: String,
    /// Pusher app id and secret.
    pub app_id: String,
    pub secret: String,
    pub hub_publisher: HubPublisher,
    /// `/api/batch` with `"parallel": true`.
    #[serde(default)]
    pub api_parallel: bool,
    /// RabbitMQ URL and exchange of the AMQP publisher.
    #[serde(default)]
    pub amqp_url: String,
    #[serde(default)]
    pub amqp_exchange: String,
    /// Most unconfirmed AMQP publications at once.
    #[serde(default)]
    pub amqp_inflight: usize,
    /// Hub: subscribers ask for `delta: "fossil"` and API publications for
    /// `delta: true` (the channel's namespace must allow it).
    #[serde(default)]
    pub delta: bool,
}

impl Target {
    /// The subscriber endpoint of connection `index` (round-robin over `urls`).
    pub fn url_for(&self, index: usize) -> &str {
        if self.urls.is_empty() {
            &self.url
        } else {
            &self.urls[index % self.urls.len()]
        }
    }
}

/// Channel `index` as named on the wire.
pub fn channel_name(index: u32) -> String {
    format!("bench{index}")
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: 18,000 connections at the default 128 KiB each would be 2 GiB.
    WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0).max_message_size(Some(64 << 20))
}

/// Opens a WebSocket from `source` (when given) to `url`.
pub async fn open_ws(url: &str, source: Option<IpAddr>) -> Result<Ws> {
    let request = url.into_client_request().context("bad url")?;
    let uri = request.uri();
    let host = uri.host().context("url without host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port)).await?.next().context("no address")?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
    }
    let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

fn text(message: &Message) -> &[u8] {
    match message {
        Message::Text(text) => text.as_bytes(),
        Message::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// Reads until a data frame satisfies `done`, answering heartbeats on the way.
async fn expect(ws: &mut Ws, proto: Proto, what: &str, mut done: impl FnMut(&[u8]) -> bool) -> Result<()> {
    let wait = async {
        while let Some(message) = ws.next().await {
            let message = message?;
            if let Message::Close(frame) = &message {
                bail!("closed while waiting for {what}: {frame:?}");
            }
            let data = text(&message).to_vec();
            if done(&data) {
                return Ok(());
            }
            if let Some(answer) = heartbeat_answer(proto, &data) {
                ws.send(answer).await?;
            }
        }
        bail!("connection ended while waiting for {what}")
    };
    tokio::time::timeout(Duration::from_secs(30), wait).await.map_err(|_| anyhow!("timed out waiting for {what}"))?
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Connects and subscribes to `channel`; returns once the subscription is confirmed.
pub async fn subscribe(target: &Target, url: &str, source: Option<IpAddr>, channel: &str) -> Result<Ws> {
    let proto = target.proto;
    let mut ws = open_ws(url, source).await?;
    match proto {
        Proto::Hub => {
            let delta = if target.delta { r#","delta":"fossil""# } else { "" };
            let frame = format!(
                "{{\"id\":1,\"connect\":{{}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"{channel}\"{delta}}}}}"
            );
            ws.send(Message::text(frame)).await?;
            let mut refused = None;
            expect(&mut ws, proto, "subscribe reply", |data| {
                let done = contains(data, b"\"id\":2");
                if done && contains(data, b"\"error\"") {
                    refused = Some(String::from_utf8_lossy(data).into_owned());
                }
                done
            })
            .await?;
            if let Some(reply) = refused {
                bail!("subscribe refused: {reply}");
            }
        }
        Proto::Ws => {
            ws.send(Message::text(format!("S{channel}"))).await?;
            expect(&mut ws, proto, "OK", |data| data == b"OK").await?;
        }
        Proto::Socketio => {
            expect(&mut ws, proto, "engine.io open", |data| data.first() == Some(&b'0')).await?;
            ws.send(Message::text("40")).await?;
            expect(&mut ws, proto, "namespace connect", |data| data.starts_with(b"40")).await?;
            ws.send(Message::text(format!("42[\"sub\",\"{channel}\"]"))).await?;
            expect(&mut ws, proto, "subok", |data| data.starts_with(b"42[\"subok\"")).await?;
        }
        Proto::Nats => {
            expect(&mut ws, proto, "INFO", |data| data.starts_with(b"INFO")).await?;
            let hello = format!("CONNECT {{\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}}\r\nSUB {channel} 1\r\nPING\r\n");
            ws.send(Message::binary(hello.into_bytes())).await?;
            expect(&mut ws, proto, "PONG", |data| contains(data, b"PONG")).await?;
        }
        Proto::Stomp => {
            ws.send(Message::text(
                "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\0",
            ))
            .await?;
            expect(&mut ws, proto, "CONNECTED", |data| data.starts_with(b"CONNECTED")).await?;
            let frame = format!("SUBSCRIBE\nid:0\ndestination:/topic/{channel}\nack:auto\nreceipt:sub\n\n\0");
            ws.send(Message::text(frame)).await?;
            expect(&mut ws, proto, "RECEIPT", |data| data.starts_with(b"RECEIPT")).await?;
        }
        Proto::Pusher => {
            expect(&mut ws, proto, "connection_established", |data| contains(data, b"pusher:connection_established"))
                .await?;
            let frame = format!("{{\"event\":\"pusher:subscribe\",\"data\":{{\"channel\":\"{channel}\"}}}}");
            ws.send(Message::text(frame)).await?;
            expect(&mut ws, proto, "subscription_succeeded", |data| contains(data, b"subscription_succeeded")).await?;
        }
    }
    Ok(ws)
}

/// The answer a server message needs, if any (application-level heartbeats).
pub fn heartbeat_answer(proto: Proto, data: &[u8]) -> Option<Message> {
    match proto {
        // A hub ping is an empty reply `{}` on a line of its own.
        Proto::Hub => {
            let ping = memchr::memmem::find_iter(data, b"{}").any(|at| {
                let before = at == 0 || data[at - 1] == b'\n';
                let after = at + 2 == data.len() || data[at + 2] == b'\n';
                before && after
            });
            ping.then(|| Message::text("{}"))
        }
        Proto::Socketio => (data == b"2").then(|| Message::text("3")),
        Proto::Nats => contains(data, b"PING\r\n").then(|| Message::binary(b"PONG\r\n".to_vec())),
        Proto::Pusher => {
            contains(data, b"pusher:ping").then(|| Message::text("{\"event\":\"pusher:pong\",\"data\":{}}"))
        }
        Proto::Ws | Proto::Stomp => None,
    }
}

/// Publishes batches of `(channel name, payload)`.
pub enum Publisher {
    Http { conn: HttpConn, path: &'static str, key: String, parallel: bool, delta: bool },
    Pusher { conn: HttpConn, key: String, app_id: String, secret: String },
    Ws { proto: Proto, sink: Arc<Mutex<SplitSink<Ws, Message>>>, next_id: u64 },
    Amqp(Box<crate::amqp::AmqpPublisher>),
}

impl Publisher {
    pub async fn connect(target: &Target) -> Result<Publisher> {
        match (target.proto, target.hub_publisher) {
            (Proto::Hub, HubPublisher::Http) => Ok(Publisher::Http {
                conn: HttpConn::connect(&target.api).await?,
                path: "/api/batch",
                key: target.key.clone(),
                parallel: target.api_parallel,
                delta: target.delta,
            }),
            (Proto::Hub, HubPublisher::Amqp) => Ok(Publisher::Amqp(Box::new(
                crate::amqp::AmqpPublisher::connect(&target.amqp_url, &target.amqp_exchange, target.amqp_inflight)
                    .await?,
            ))),
            (Proto::Pusher, _) => Ok(Publisher::Pusher {
                conn: HttpConn::connect(&target.api).await?,
                key: target.key.clone(),
                app_id: target.app_id.clone(),
                secret: target.secret.clone(),
            }),
            (proto, _) => {
                let ws = open_ws(&target.url, None).await?;
                let (sink, stream) = ws.split();
                let sink = Arc::new(Mutex::new(sink));
                let mut ws = PublisherConn { proto, sink: sink.clone(), stream };
                ws.handshake().await?;
                tokio::spawn(ws.drain());
                Ok(Publisher::Ws { proto, sink, next_id: 1 })
            }
        }
    }

    /// Publishes a batch (one request or one flush).
    pub async fn publish(&mut self, batch: &[(String, String)]) -> Result<()> {
        match self {
            Publisher::Amqp(amqp) => amqp.publish(batch).await?,
            Publisher::Http { conn, path, key, parallel, delta } => {
                let mut body = String::with_capacity(batch.len() * 160 + 16);
                body.push_str("{\"commands\":[");
                for (i, (channel, payload)) in batch.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    let delta = if *delta { ",\"delta\":true" } else { "" };
                    body.push_str(&format!("{{\"publish\":{{\"channel\":\"{channel}\",\"data\":{payload}{delta}}}}}"));
                }
                body.push(']');
                if *parallel {
                    body.push_str(",\"parallel\":true");
                }
                body.push('}');
                let (status, answer) = conn.post(path, &[("X-API-Key", key)], body.as_bytes()).await?;
                if status != 200 || contains(&answer, b"\"error\"") {
                    bail!("publish failed: {status} {}", String::from_utf8_lossy(&answer[..answer.len().min(300)]));
                }
            }
            Publisher::Pusher { conn, key, app_id, secret } => {
                // Pusher caps a batch at 10 events.
                for chunk in batch.chunks(10) {
                    let events: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|(channel, payload)| serde_json::json!({"channel": channel, "name": "m", "data": payload}))
                        .collect();
                    let body = serde_json::to_vec(&serde_json::json!({ "batch": events }))?;
                    let path = format!("/apps/{app_id}/batch_events");
                    let query = pusher_query(key, secret, "POST", &path, &body);
                    let (status, answer) = conn.post(&format!("{path}?{query}"), &[], &body).await?;
                    if status != 200 {
                        bail!("pusher publish failed: {status} {}", String::from_utf8_lossy(&answer));
                    }
                }
            }
            Publisher::Ws { proto, sink, next_id } => {
                let mut sink = sink.lock().await;
                let proto = *proto;
                match proto {
                    Proto::Nats => {
                        let mut frame = Vec::with_capacity(batch.len() * 140);
                        for (channel, payload) in batch {
                            frame.extend_from_slice(
                                format!("PUB {channel} {}\r\n{payload}\r\n", payload.len()).as_bytes(),
                            );
                        }
                        sink.send(Message::binary(frame)).await?;
                    }
                    Proto::Hub => {
                        let mut frame = String::with_capacity(batch.len() * 160);
                        for (channel, payload) in batch {
                            if !frame.is_empty() {
                                frame.push('\n');
                            }
                            *next_id += 1;
                            frame.push_str(&format!(
                                "{{\"id\":{},\"publish\":{{\"channel\":\"{channel}\",\"data\":{payload}}}}}",
                                *next_id
                            ));
                        }
                        sink.send(Message::text(frame)).await?;
                    }
                    _ => {
                        for (channel, payload) in batch {
                            let message = match proto {
                                Proto::Ws => format!("P{channel} {payload}"),
                                Proto::Socketio => format!("42[\"pub\",\"{channel}\",{payload}]"),
                                Proto::Stomp => format!(
                                    "SEND\ndestination:/topic/{channel}\ncontent-type:application/json\n\n{payload}\0"
                                ),
                                _ => unreachable!("handled above"),
                            };
                            sink.feed(Message::text(message)).await?;
                        }
                        sink.flush().await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A publisher's WebSocket: handshake, then a task that reads (and answers
/// heartbeats) so the server never blocks on it.
struct PublisherConn {
    proto: Proto,
    sink: Arc<Mutex<SplitSink<Ws, Message>>>,
    stream: SplitStream<Ws>,
}

impl PublisherConn {
    async fn send(&self, message: Message) -> Result<()> {
        Ok(self.sink.lock().await.send(message).await?)
    }

    async fn wait(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) -> Result<()> {
        let wait = async {
            while let Some(message) = self.stream.next().await {
                if done(text(&message?)) {
                    return Ok(());
                }
            }
            bail!("publisher connection ended while waiting for {what}")
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .map_err(|_| anyhow!("timed out waiting for {what}"))?
    }

    async fn handshake(&mut self) -> Result<()> {
        match self.proto {
            Proto::Hub => {
                self.send(Message::text("{\"id\":1,\"connect\":{}}")).await?;
                self.wait("connect reply", |d| contains(d, b"\"id\":1")).await?;
            }
            Proto::Socketio => {
                self.wait("engine.io open", |d| d.first() == Some(&b'0')).await?;
                self.send(Message::text("40")).await?;
                self.wait("namespace connect", |d| d.starts_with(b"40")).await?;
            }
            Proto::Nats => {
                self.wait("INFO", |d| d.starts_with(b"INFO")).await?;
                let hello = "CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}\r\nPING\r\n";
                self.send(Message::binary(hello.as_bytes().to_vec())).await?;
                self.wait("PONG", |d| contains(d, b"PONG")).await?;
            }
            Proto::Stomp => {
                self.send(Message::text(
                    "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\0",
                ))
                .await?;
                self.wait("CONNECTED", |d| d.starts_with(b"CONNECTED")).await?;
            }
            Proto::Ws | Proto::Pusher => {}
        }
        Ok(())
    }

    async fn drain(mut self) {
        while let Some(Ok(message)) = self.stream.next().await {
            let data = text(&message);
            if self.proto == Proto::Hub && contains(data, b"\"error\"") {
                eprintln!("publisher: {}", String::from_utf8_lossy(&data[..data.len().min(300)]));
            }
            if let Some(answer) = heartbeat_answer(self.proto, data) {
                if self.send(answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The query string of a signed Pusher HTTP API request.
fn pusher_query(key: &str, secret: &str, method: &str, path: &str, body: &[u8]) -> String {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let body_md5 = hex::encode(md5::Md5::digest(body));
    let query = format!("auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={body_md5}");
    let to_sign = format!("{method}\n{path}\n{query}");
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{query}&auth_signature={signature}")
}
