//! Calls to the application's backend in Centrifugo's HTTP proxy shapes
//! (`internal/proxyproto/proxy.proto` of Centrifugo v6, JSON over HTTP POST):
//! the connect proxy (`[proxy.connect]`: authenticates a connect without a
//! token), the subscribe and publish proxies (`[proxy.subscribe]`,
//! `[proxy.publish]`, for namespaces with `subscribe_proxy` / `publish_proxy`)
//! and the RPC proxy (`[proxy.rpc]`: answers a client's `rpc` command).
//!
//! Every request body is a JSON object with `client`, `transport`
//! (`websocket`, `sse`, `http_stream`, `uni_sse`), `protocol` (`json` or
//! `protobuf`), `encoding` (`json` or `binary`), and per kind: connect `name`,
//! `version`, `channels` (those the client asks to recover), `data`; subscribe
//! `user`, `channel`, `meta`, `data`; publish `user`, `channel`, `meta`,
//! `data`; rpc `user`, `method`, `meta`, `data`. A payload goes as `data` (raw
//! JSON, when it is JSON) or `b64data` (base64, otherwise); `meta` is what the
//! connect proxy returned for the connection. The headers named in an
//! endpoint's `http_headers` (say `Cookie`, `Authorization`) are copied from
//! the client's HTTP request (the WebSocket handshake, the SSE or HTTP-stream
//! request) onto the proxy request, as Centrifugo does.
//!
//! Answer (JSON object), one of:
//! - `{"result": {...}}`: connect `user`, `expire_at` (Unix seconds, 0: none),
//!   `info`/`b64info`, `data`/`b64data` (to the client's connect reply),
//!   `channels` and `subs` (server-side subscriptions), `meta`; subscribe
//!   `info`/`b64info` (the subscriber's `chan_info`), `data`/`b64data` (to the
//!   subscribe reply), `expire_at`; publish `data`/`b64data` (the publication's
//!   new data; absent: unchanged); rpc `data`/`b64data` (the rpc reply).
//!   Other fields of Centrifugo's results (`caps`, `override`, ...) are not
//!   supported and ignored;
//! - `{"error": {"code": N, "message": "...", "temporary": bool}}`: the
//!   client's reply is that error (Centrifugo keeps application codes in
//!   400..=1999; others become 100 internal);
//! - `{"disconnect": {"code": N, "reason": "..."}}`: the client is closed
//!   with it (codes 4000..=4999, others are refused as garbage).
//!
//! A backend that does not answer within the timeout, answers non-2xx, or
//! answers anything else gets the client error 100 "internal server error"
//! marked temporary (the SDK may retry), never a hang; each call is timed in
//! `hub_proxy_call_duration_seconds{proxy}` and each failure counted in
//! `hub_proxy_errors_total{proxy}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::metrics::Metrics;

/// `[proxy]`: the backend endpoints (each off while unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// `[proxy.connect]`: asked on every connect without a token (a connect
    /// with a token is checked as a JWT, as in Centrifugo). Unset = a connect
    /// without a token needs `allow_anonymous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ProxyEndpoint>,
    /// `[proxy.refresh]`: asked when a connection the connect proxy gave an
    /// expiry reaches it (the hub refreshes it, not the client: its connect
    /// reply says no expiry). Unset = such a connection is closed with 3005
    /// at its expiry unless refreshed by the server API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<ProxyEndpoint>,
    /// `[proxy.subscribe]`: asked on a subscribe without a token to a channel
    /// of a namespace with `subscribe_proxy = true` (it decides instead of
    /// `allow_subscribe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<ProxyEndpoint>,
    /// `[proxy.publish]`: asked on a client publish into a channel of a
    /// namespace with `publish_proxy = true` (it decides instead of
    /// `allow_publish`, and may change the data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<ProxyEndpoint>,
    /// `[proxy.rpc]`: where a client's `rpc` command goes. Unset = `rpc`
    /// answers 108 "not available", as Centrifugo without an RPC proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<ProxyEndpoint>,
}

/// One backend endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyEndpoint {
    /// `http://` or `https://` URL the request is POSTed to.
    pub endpoint: String,
    /// How long the backend may take (default 1 s, as Centrifugo).
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Headers of the client's HTTP request copied onto each proxy request
    /// (Centrifugo's `http_headers`), matched case-insensitively: `Cookie`
    /// forwards the browser's cookies. At most [`MAX_FORWARDED_HEADERS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<String>,
}

/// The most headers one endpoint may forward.
pub const MAX_FORWARDED_HEADERS: usize = 32;

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

impl ProxyConfig {
    fn endpoints(&self) -> [(&'static str, Option<&ProxyEndpoint>); 5] {
        [
            ("connect", self.connect.as_ref()),
            ("refresh", self.refresh.as_ref()),
            ("subscribe", self.subscribe.as_ref()),
            ("publish", self.publish.as_ref()),
            ("rpc", self.rpc.as_ref()),
        ]
    }

    /// Every invalid value as (key under `proxy.`, reason).
    pub fn problems(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for (name, endpoint) in self.endpoints() {
            let Some(endpoint) = endpoint else { continue };
            let url = url::Url::parse(&endpoint.endpoint);
            if !url.is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host()) {
                out.push((format!("{name}.endpoint"), "must be an http:// or https:// URL"));
            }
            if endpoint.timeout.is_zero() {
                out.push((format!("{name}.timeout"), "must be above 0"));
            }
            if endpoint.http_headers.len() > MAX_FORWARDED_HEADERS {
                out.push((format!("{name}.http_headers"), "at most 32 headers"));
            }
            if endpoint.http_headers.iter().any(|h| reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()) {
                out.push((format!("{name}.http_headers"), "must be header names such as Cookie or Authorization"));
            }
        }
        out
    }

    /// The header names any endpoint forwards, lower-cased, without repeats.
    pub fn forwarded_header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .endpoints()
            .into_iter()
            .flat_map(|(_, endpoint)| endpoint.into_iter().flat_map(|e| e.http_headers.iter()))
            .map(|name| name.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// What the session knows of the caller, for the request body.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub client: &'a str,
    pub user: &'a str,
    pub transport: &'static str,
    pub protobuf: bool,
    /// The forwarded headers of the client's HTTP request ([`Proxies::forwarded`]).
    pub headers: &'a [(String, String)],
    /// What the connect proxy returned as the connection's `meta` (JSON).
    pub meta: Option<&'a RawValue>,
}

/// The backend's answer: its result, or an error or a disconnect for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The backend allowed it, with this result.
    Result(T),
    /// An error for the client (code in 400..=1999, message, temporary).
    Error(u32, String, bool),
    /// Close the client (code in 4000..=4999, reason).
    Disconnect(u32, String),
}

/// The backend's answer to an RPC: the reply's data.
pub type RpcOutcome = Outcome<Bytes>;

/// What the connect proxy decided for a connect without a token.
#[derive(Debug, Clone, Default)]
pub struct ConnectReply {
    /// The user ("" = anonymous).
    pub user: String,
    /// When the connection expires (Unix seconds); `None`: never.
    pub expires_at: Option<u64>,
    /// The connection's `conn_info`.
    pub info: Bytes,
    /// Data for the client's connect reply.
    pub data: Bytes,
    /// Server-side subscriptions (`channels`, then the keys of `subs`), each
    /// with its `chan_info`.
    pub channels: Vec<(String, Bytes)>,
    /// Kept for the connection and sent in its later proxy requests.
    pub meta: Option<Box<RawValue>>,
}

/// What the refresh proxy decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshReply {
    /// Close the connection now (3005).
    pub expired: bool,
    /// The connection's new expiry (Unix seconds); `None`: never.
    pub expires_at: Option<u64>,
    /// The connection's new `conn_info`, when given.
    pub info: Option<Bytes>,
}

/// What the subscribe proxy decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeReply {
    /// The subscriber's `chan_info`.
    pub info: Bytes,
    /// Data for the client's subscribe reply.
    pub data: Bytes,
    /// When the subscription expires (Unix seconds); `None`: never.
    pub expires_at: Option<u64>,
}

/// What the publish proxy decided: the data to publish (`None`: the client's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReply {
    pub data: Option<Bytes>,
}

/// Why a proxy call gave no usable answer (each is error 100 for the client).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("backend did not answer within {0:?}")]
    Timeout(Duration),
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    #[error("backend answered HTTP {0}")]
    Status(u16),
    #[error("backend answered garbage: {0}")]
    Garbage(String),
}

/// The fields every request starts with.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    client: &'a str,
    transport: &'a str,
    protocol: &'a str,
    encoding: &'a str,
    #[serde(flatten)]
    body: T,
}

/// A client payload: raw JSON when it is JSON, base64 otherwise.
#[derive(Serialize)]
struct PayloadOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64data: Option<String>,
}

impl<'a> PayloadOut<'a> {
    fn new(data: &'a [u8]) -> PayloadOut<'a> {
        let json: Option<&RawValue> = std::str::from_utf8(data).ok().and_then(|text| serde_json::from_str(text).ok());
        PayloadOut {
            data: json,
            b64data: (json.is_none() && !data.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(data)),
        }
    }
}

#[derive(Serialize)]
struct ConnectBody<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    channels: &'a [String],
    #[serde(flatten)]
    payload: PayloadOut<'a>,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct ChannelBody<'a> {
    user: &'a str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    #[serde(flatten)]
    payload: PayloadOut<'a>,
}

#[derive(Serialize)]
struct RpcBody<'a> {
    user: &'a str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    #[serde(flatten)]
    payload: PayloadOut<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response<T> {
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error: Option<BackendError>,
    #[serde(default)]
    disconnect: Option<BackendDisconnect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendError {
    code: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendDisconnect {
    code: u32,
    #[serde(default)]
    reason: String,
}

/// A result's payload pair (`data`/`b64data`, or `info`/`b64info`).
fn payload_in(json: Option<Box<RawValue>>, b64: Option<String>, name: &str) -> Result<Option<Bytes>, ProxyError> {
    match (json, b64) {
        (Some(json), None) => Ok(Some(Bytes::copy_from_slice(json.get().as_bytes()))),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map(|data| Some(Bytes::from(data)))
            .map_err(|_| ProxyError::Garbage(format!("b64{name} that is not base64"))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ProxyError::Garbage(format!("both {name} and b64{name}"))),
    }
}

#[derive(Deserialize)]
struct RpcResult {
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
}

#[derive(Deserialize, Default)]
struct SubOptionsIn {
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
}

#[derive(Deserialize)]
struct ConnectResultIn {
    #[serde(default)]
    user: String,
    #[serde(default)]
    expire_at: i64,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    subs: std::collections::BTreeMap<String, SubOptionsIn>,
    #[serde(default)]
    meta: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RefreshResultIn {
    #[serde(default)]
    expired: bool,
    #[serde(default)]
    expire_at: i64,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
}

#[derive(Deserialize)]
struct SubscribeResultIn {
    #[serde(default)]
    expire_at: i64,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
}

#[derive(Deserialize)]
struct PublishResultIn {
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
}

fn expiry(expire_at: i64) -> Result<Option<u64>, ProxyError> {
    match expire_at {
        0 => Ok(None),
        at if at > 0 => Ok(Some(at as u64)),
        _ => Err(ProxyError::Garbage("a negative expire_at".into())),
    }
}

/// The backend calls of one node (cheap to share: `Arc`).
pub struct Proxies {
    config: ProxyConfig,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    forwarded: Vec<String>,
}

impl Proxies {
    pub fn new(config: ProxyConfig, metrics: Arc<Metrics>) -> Proxies {
        // A client without TLS roots or a proxy of its own would still fail only
        // per call; building the default one fails only without a TLS backend,
        // which the `rustls` feature always brings.
        let client = reqwest::Client::builder().build().unwrap_or_else(|_| reqwest::Client::new());
        let forwarded = config.forwarded_header_names();
        Proxies { config, client, metrics, forwarded }
    }

    /// Whether an RPC proxy is configured.
    pub fn has_rpc(&self) -> bool {
        self.config.rpc.is_some()
    }

    /// Whether a connect proxy is configured.
    pub fn has_connect(&self) -> bool {
        self.config.connect.is_some()
    }

    /// Whether a refresh proxy is configured.
    pub fn has_refresh(&self) -> bool {
        self.config.refresh.is_some()
    }

    /// Asks the refresh proxy about a connection at its expiry. `None` when
    /// no refresh proxy is set.
    pub async fn refresh(&self, caller: Caller<'_>) -> Option<Result<Outcome<RefreshReply>, ProxyError>> {
        let endpoint = self.config.refresh.as_ref()?;
        let body = RefreshBody { user: caller.user, meta: caller.meta };
        let started = Instant::now();
        let outcome = self.post(endpoint, &caller, body).await.and_then(|bytes| {
            read_outcome::<RefreshResultIn, _>(&bytes, |result| {
                Ok(RefreshReply {
                    expired: result.expired,
                    expires_at: expiry(result.expire_at)?,
                    info: payload_in(result.info, result.b64info, "info")?,
                })
            })
        });
        Some(self.finish("refresh", started, outcome))
    }

    /// The headers of a client's HTTP request that some endpoint forwards
    /// (`get` reads one by lower-case name; values that are not visible
    /// ASCII are left out). Empty, and free, when none is configured.
    pub fn forwarded(&self, get: impl Fn(&str) -> Option<String>) -> Arc<[(String, String)]> {
        self.forwarded.iter().filter_map(|name| get(name).map(|value| (name.clone(), value))).collect()
    }

    /// Asks the connect proxy about a connect without a token. `None` when no
    /// connect proxy is set.
    pub async fn connect(
        &self,
        caller: Caller<'_>,
        request: &protocol::proto::ConnectRequest,
    ) -> Option<Result<Outcome<ConnectReply>, ProxyError>> {
        let endpoint = self.config.connect.as_ref()?;
        let channels: Vec<String> = request.subs.keys().cloned().collect();
        let body = ConnectBody {
            name: &request.name,
            version: &request.version,
            channels: &channels,
            payload: PayloadOut::new(&request.data),
        };
        let started = Instant::now();
        let outcome = self.post(endpoint, &caller, body).await.and_then(|bytes| {
            read_outcome::<ConnectResultIn, _>(&bytes, |result| {
                let mut channels: Vec<(String, Bytes)> =
                    result.channels.into_iter().map(|name| (name, Bytes::new())).collect();
                for (name, options) in result.subs {
                    let info = payload_in(options.info, options.b64info, "info")?.unwrap_or_default();
                    channels.push((name, info));
                }
                Ok(ConnectReply {
                    user: result.user,
                    expires_at: expiry(result.expire_at)?,
                    info: payload_in(result.info, result.b64info, "info")?.unwrap_or_default(),
                    data: payload_in(result.data, result.b64data, "data")?.unwrap_or_default(),
                    channels,
                    meta: result.meta,
                })
            })
        });
        Some(self.finish("connect", started, outcome))
    }

    /// Asks the subscribe proxy. `None` when no subscribe proxy is set.
    pub async fn subscribe(
        &self,
        caller: Caller<'_>,
        channel: &str,
        data: &[u8],
    ) -> Option<Result<Outcome<SubscribeReply>, ProxyError>> {
        let endpoint = self.config.subscribe.as_ref()?;
        let body = ChannelBody { user: caller.user, channel, meta: caller.meta, payload: PayloadOut::new(data) };
        let started = Instant::now();
        let outcome = self.post(endpoint, &caller, body).await.and_then(|bytes| {
            read_outcome::<SubscribeResultIn, _>(&bytes, |result| {
                Ok(SubscribeReply {
                    info: payload_in(result.info, result.b64info, "info")?.unwrap_or_default(),
                    data: payload_in(result.data, result.b64data, "data")?.unwrap_or_default(),
                    expires_at: expiry(result.expire_at)?,
                })
            })
        });
        Some(self.finish("subscribe", started, outcome))
    }

    /// Asks the publish proxy. `None` when no publish proxy is set.
    pub async fn publish(
        &self,
        caller: Caller<'_>,
        channel: &str,
        data: &[u8],
    ) -> Option<Result<Outcome<PublishReply>, ProxyError>> {
        let endpoint = self.config.publish.as_ref()?;
        let body = ChannelBody { user: caller.user, channel, meta: caller.meta, payload: PayloadOut::new(data) };
        let started = Instant::now();
        let outcome = self.post(endpoint, &caller, body).await.and_then(|bytes| {
            read_outcome::<PublishResultIn, _>(&bytes, |result| {
                Ok(PublishReply { data: payload_in(result.data, result.b64data, "data")? })
            })
        });
        Some(self.finish("publish", started, outcome))
    }

    /// Sends a client's `rpc` to the backend. `None` when no RPC proxy is set.
    pub async fn rpc(&self, caller: Caller<'_>, method: &str, data: &[u8]) -> Option<Result<RpcOutcome, ProxyError>> {
        let endpoint = self.config.rpc.as_ref()?;
        let body = RpcBody { user: caller.user, method, meta: caller.meta, payload: PayloadOut::new(data) };
        let started = Instant::now();
        let outcome = self.post(endpoint, &caller, body).await.and_then(|bytes| rpc_outcome(&bytes));
        Some(self.finish("rpc", started, outcome))
    }

    /// Times the call in `hub_proxy_call_duration_seconds{proxy}`; a call
    /// with no usable answer (garbage included) counts in
    /// `hub_proxy_errors_total{proxy}` and is logged.
    fn finish<T>(
        &self,
        proxy: &'static str,
        started: Instant,
        outcome: Result<T, ProxyError>,
    ) -> Result<T, ProxyError> {
        self.metrics.observe_proxy_call(proxy, started.elapsed(), outcome.is_ok());
        if let Err(error) = &outcome {
            tracing::warn!(proxy, %error, "proxy call failed");
        }
        outcome
    }

    /// POSTs one request; the body of the 2xx answer.
    async fn post<T: Serialize>(
        &self,
        endpoint: &ProxyEndpoint,
        caller: &Caller<'_>,
        body: T,
    ) -> Result<Bytes, ProxyError> {
        let body = Envelope {
            client: caller.client,
            transport: caller.transport,
            protocol: if caller.protobuf { "protobuf" } else { "json" },
            encoding: if caller.protobuf { "binary" } else { "json" },
            body,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ProxyError::Garbage(e.to_string()))?;
        let mut request =
            self.client.post(&endpoint.endpoint).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in caller.headers {
            if endpoint.http_headers.iter().any(|wanted| wanted.eq_ignore_ascii_case(name)) {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let answer = async {
            let response = request.send().await.map_err(|e| ProxyError::Unreachable(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProxyError::Status(status.as_u16()));
            }
            response.bytes().await.map_err(|e| ProxyError::Unreachable(e.to_string()))
        };
        tokio::time::timeout(endpoint.timeout, answer).await.map_err(|_| ProxyError::Timeout(endpoint.timeout))?
    }
}

/// Disconnect reasons a backend may choose, kept for the life of the process
/// (the outbox's close code holds a `&'static str`): at most
/// [`MAX_REASONS`] distinct ones of at most [`MAX_REASON_BYTES`] bytes, so
/// at most 32 KiB; past that, a backend's new reason reads as
/// "disconnected by the backend".
pub fn disconnect_reason(reason: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static REASONS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    const FALLBACK: &str = "disconnected by the backend";
    let mut cut = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason[..cut];
    if reason.is_empty() {
        return FALLBACK;
    }
    let Ok(mut reasons) = REASONS.get_or_init(Default::default).lock() else { return FALLBACK };
    if let Some(known) = reasons.get(reason) {
        return known;
    }
    if reasons.len() >= MAX_REASONS {
        return FALLBACK;
    }
    let kept: &'static str = Box::leak(reason.to_owned().into_boxed_str());
    reasons.insert(kept);
    kept
}

const MAX_REASONS: usize = 256;
const MAX_REASON_BYTES: usize = 128;

/// Reads a backend's answer: `result` (read by `read`), `error` or `disconnect`.
fn read_outcome<R: serde::de::DeserializeOwned, T>(
    body: &[u8],
    read: impl FnOnce(R) -> Result<T, ProxyError>,
) -> Result<Outcome<T>, ProxyError> {
    let garbage = |why: &str| ProxyError::Garbage(why.to_owned());
    let response: Response<R> = serde_json::from_slice(body).map_err(|e| ProxyError::Garbage(e.to_string()))?;
    match (response.result, response.error, response.disconnect) {
        (_, _, Some(disconnect)) => {
            if !(4000..=4999).contains(&disconnect.code) {
                return Err(garbage("a disconnect code outside 4000..=4999"));
            }
            Ok(Outcome::Disconnect(disconnect.code, disconnect.reason))
        }
        (_, Some(error), None) => {
            if (400..=1999).contains(&error.code) {
                Ok(Outcome::Error(error.code, error.message, error.temporary))
            } else {
                Err(garbage("an error code outside 400..=1999"))
            }
        }
        (Some(result), None, None) => read(result).map(Outcome::Result),
        (None, None, None) => Err(garbage("neither result, error nor disconnect")),
    }
}

/// Reads the backend's answer to an RPC.
fn rpc_outcome(body: &[u8]) -> Result<RpcOutcome, ProxyError> {
    read_outcome::<RpcResult, _>(
        body,
        |result| Ok(payload_in(result.data, result.b64data, "data")?.unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_timeout() {
        let endpoint = |url: &str, timeout: u64| ProxyConfig {
            rpc: Some(ProxyEndpoint {
                endpoint: url.into(),
                timeout: Duration::from_millis(timeout),
                http_headers: Vec::new(),
            }),
            ..Default::default()
        };
        assert!(endpoint("http://127.0.0.1:3000/rpc", 1000).problems().is_empty());
        assert!(endpoint("https://backend.example/rpc", 1000).problems().is_empty());
        assert_eq!(endpoint("ftp://backend.example/rpc", 1000).problems()[0].0, "rpc.endpoint");
        assert_eq!(endpoint("backend:3000", 1000).problems()[0].0, "rpc.endpoint");
        assert_eq!(endpoint("http://127.0.0.1:3000/rpc", 0).problems()[0].0, "rpc.timeout");
    }

    #[test]
    fn disconnect_reasons_are_bounded() {
        assert_eq!(disconnect_reason("kicked"), "kicked");
        assert_eq!(disconnect_reason(""), "disconnected by the backend");
        let long = "é".repeat(100);
        let cut = disconnect_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && long.starts_with(cut));
    }

    #[test]
    fn answers_are_read_as_centrifugo_defines_them() {
        assert_eq!(
            rpc_outcome(br#"{"result":{"data":{"sum":3}}}"#).ok(),
            Some(RpcOutcome::Result(Bytes::from_static(br#"{"sum":3}"#)))
        );
        assert_eq!(
            rpc_outcome(br#"{"result":{"b64data":"aGk="}}"#).ok(),
            Some(RpcOutcome::Result(Bytes::from_static(b"hi")))
        );
        assert_eq!(rpc_outcome(br#"{"result":{}}"#).ok(), Some(RpcOutcome::Result(Bytes::new())));
        assert_eq!(
            rpc_outcome(br#"{"error":{"code":1000,"message":"nope"}}"#).ok(),
            Some(RpcOutcome::Error(1000, "nope".into(), false))
        );
        assert_eq!(
            rpc_outcome(br#"{"disconnect":{"code":4500,"reason":"bye"}}"#).ok(),
            Some(RpcOutcome::Disconnect(4500, "bye".into()))
        );
        for garbage in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"{"error":{"code":100,"message":"x"}}"#,
            br#"{"disconnect":{"code":3000,"reason":"x"}}"#,
            br#"{"result":{"b64data":"%%%"}}"#,
            br#"{"result":{"data":1,"b64data":"aGk="}}"#,
            br#"{"result":{},"extra":1}"#,
        ] {
            assert!(
                matches!(rpc_outcome(garbage), Err(ProxyError::Garbage(_))),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
