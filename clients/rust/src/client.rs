//! The client handle and its configuration.
//!
//! A [`Client`] only sends requests to its connection task (`run`) through a
//! bounded queue and awaits the answers; the task owns the socket.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use protocol::Encoding;
use tokio::sync::{mpsc, oneshot};

use crate::run;
use crate::Event;

/// How a client connects and reconnects.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ws://host:port/connection/websocket`.
    pub url: String,
    /// Connection JWT; `None` connects anonymously.
    pub token: Option<String>,
    /// JSON text frames, or Protobuf (subprotocol `centrifuge-protobuf`).
    pub encoding: Encoding,
    /// Source address to bind (e.g. 127.0.0.2), to spread many clients over
    /// several addresses' ephemeral ports.
    pub local_addr: Option<IpAddr>,
    /// First reconnect delay; each attempt doubles it up to `backoff_max`.
    /// Every delay is drawn uniformly from [0, current delay] (full jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Capacity of the event channel (see the crate docs for what "full" does).
    pub event_capacity: usize,
    /// How long a request (connect, subscribe, publish) may wait for its reply.
    pub request_timeout: Duration,
    /// Extra silence tolerated after the server's ping interval before the
    /// connection is considered dead and replaced.
    pub max_ping_delay: Duration,
}

impl Config {
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            token: None,
            encoding: Encoding::Json,
            local_addr: None,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(20),
            event_capacity: 1024,
            request_timeout: Duration::from_secs(10),
            max_ping_delay: Duration::from_secs(10),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server answered with a protocol error.
    #[error("server error {code}: {message}")]
    Server { code: u32, message: String, temporary: bool },
    /// No reply within `request_timeout`.
    #[error("request timed out")]
    Timeout,
    /// The client is closed (closed by the application or a final disconnect).
    #[error("client closed")]
    Closed,
    /// The request needs a live connection and there is none right now.
    #[error("not connected")]
    NotConnected,
}

/// Options of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Ask for a recoverable subscription (the namespace needs history).
    pub recoverable: bool,
    /// Start from this position (offset, epoch): the first subscribe already
    /// recovers what was published after it.
    pub since: Option<(u64, String)>,
    /// Subscription JWT for channels that need one.
    pub token: Option<String>,
}

/// The outcome of a subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub recoverable: bool,
    pub recovered: bool,
    pub was_recovering: bool,
    pub epoch: String,
    pub offset: u64,
}

pub(crate) enum Request {
    Subscribe(String, SubscribeOptions, oneshot::Sender<Result<Subscribed, Error>>),
    Unsubscribe(String, oneshot::Sender<Result<(), Error>>),
    Publish(String, Bytes, oneshot::Sender<Result<(), Error>>),
    Reconnect,
    Close(oneshot::Sender<()>),
}

/// A handle to one connection; cloning shares the connection.
#[derive(Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    timeout: Duration,
}

impl Client {
    /// Starts the connection task (it connects in the background and keeps
    /// reconnecting) and returns the handle and the event receiver. Must be
    /// called inside a Tokio runtime.
    pub fn connect(config: Config) -> (Client, mpsc::Receiver<Event>) {
        let (requests, inbox) = mpsc::channel(64);
        let (events, receiver) = mpsc::channel(config.event_capacity.max(1));
        let timeout = config.request_timeout;
        tokio::spawn(run::run(config, inbox, events));
        (Client { requests, timeout }, receiver)
    }

    /// Subscribes to `channel`. Waits until the subscription is in place (it
    /// is sent as soon as the client is connected). The subscription is
    /// renewed with recovery after every reconnect.
    pub async fn subscribe(&self, channel: &str, options: SubscribeOptions) -> Result<Subscribed, Error> {
        self.ask(|reply| Request::Subscribe(channel.to_string(), options, reply)).await?
    }

    /// Ends a subscription.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), Error> {
        self.ask(|reply| Request::Unsubscribe(channel.to_string(), reply)).await?
    }

    /// Publishes `data` (JSON text for JSON connections) into `channel`; needs
    /// a live connection and a namespace that allows client publishing.
    pub async fn publish(&self, channel: &str, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        self.ask(|reply| Request::Publish(channel.to_string(), data, reply)).await?
    }

    /// Drops the current connection at once, as a network failure would, and
    /// reconnects (after the jittered backoff) with recovery.
    pub fn reconnect(&self) {
        let _ = self.requests.try_send(Request::Reconnect);
    }

    /// Closes the connection and stops the client.
    pub async fn close(self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(request(reply)).await.map_err(|_| Error::Closed)?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout),
        }
    }
}
