//! Calls to the application's backend in Centrifugo's HTTP proxy shapes
//! (`internal/proxyproto/proxy.proto`, JSON over HTTP POST). Today: the RPC
//! proxy (`[proxy.rpc]`), which answers a client's `rpc` command.
//!
//! Request body (JSON object): `client`, `transport` (`websocket`, `sse`,
//! `http_stream`, `uni_sse`), `protocol` (`json` or `protobuf`), `encoding`
//! (`json` or `binary`), `user`, `method`, and the client's payload as `data`
//! (raw JSON, when it is JSON) or `b64data` (base64, otherwise).
//!
//! Answer (JSON object), one of:
//! - `{"result": {"data": <JSON>}}` or `{"result": {"b64data": "<base64>"}}`
//!   (or `{"result": {}}`): the client's `rpc` reply carries those bytes;
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
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

impl ProxyConfig {
    /// Every invalid value as (key under `proxy.`, reason).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if let Some(rpc) = &self.rpc {
            let url = url::Url::parse(&rpc.endpoint);
            if !url.is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host()) {
                out.push(("rpc.endpoint", "must be an http:// or https:// URL"));
            }
            if rpc.timeout.is_zero() {
                out.push(("rpc.timeout", "must be above 0"));
            }
        }
        out
    }
}

/// What the session knows of the caller, for the request body.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub client: &'a str,
    pub user: &'a str,
    pub transport: &'static str,
    pub protobuf: bool,
}

/// The backend's answer to an RPC.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcOutcome {
    /// The reply's `data`.
    Result(Bytes),
    /// An error for the client (code, message, temporary).
    Error(u32, String, bool),
    /// Close the client (code, reason).
    Disconnect(u32, String),
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

#[derive(Serialize)]
struct RpcRequest<'a> {
    client: &'a str,
    transport: &'a str,
    protocol: &'a str,
    encoding: &'a str,
    user: &'a str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64data: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcResponse {
    #[serde(default)]
    result: Option<RpcResult>,
    #[serde(default)]
    error: Option<BackendError>,
    #[serde(default)]
    disconnect: Option<BackendDisconnect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcResult {
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
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

/// The backend calls of one node (cheap to share: `Arc`).
pub struct Proxies {
    config: ProxyConfig,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Proxies {
    pub fn new(config: ProxyConfig, metrics: Arc<Metrics>) -> Proxies {
        // A client without TLS roots or a proxy of its own would still fail only
        // per call; building the default one fails only without a TLS backend,
        // which the `rustls` feature always brings.
        let client = reqwest::Client::builder().build().unwrap_or_else(|_| reqwest::Client::new());
        Proxies { config, client, metrics }
    }

    /// Whether an RPC proxy is configured.
    pub fn has_rpc(&self) -> bool {
        self.config.rpc.is_some()
    }

    /// Sends a client's `rpc` to the backend. `None` when no RPC proxy is set.
    pub async fn rpc(&self, caller: Caller<'_>, method: &str, data: &[u8]) -> Option<Result<RpcOutcome, ProxyError>> {
        let endpoint = self.config.rpc.as_ref()?;
        let started = Instant::now();
        let outcome = self.call_rpc(endpoint, &caller, method, data).await;
        self.metrics.observe_proxy_call("rpc", started.elapsed(), outcome.is_ok());
        if let Err(error) = &outcome {
            tracing::warn!(proxy = "rpc", %error, "RPC proxy call failed");
        }
        Some(outcome)
    }

    async fn call_rpc(
        &self,
        endpoint: &ProxyEndpoint,
        caller: &Caller<'_>,
        method: &str,
        data: &[u8],
    ) -> Result<RpcOutcome, ProxyError> {
        let json: Option<&RawValue> = std::str::from_utf8(data).ok().and_then(|text| serde_json::from_str(text).ok());
        let body = RpcRequest {
            client: caller.client,
            transport: caller.transport,
            protocol: if caller.protobuf { "protobuf" } else { "json" },
            encoding: if caller.protobuf { "binary" } else { "json" },
            user: caller.user,
            method,
            data: json,
            b64data: (json.is_none() && !data.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(data)),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ProxyError::Garbage(e.to_string()))?;
        let send = self
            .client
            .post(&endpoint.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let answer = async {
            let response = send.await.map_err(|e| ProxyError::Unreachable(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProxyError::Status(status.as_u16()));
            }
            response.bytes().await.map_err(|e| ProxyError::Unreachable(e.to_string()))
        };
        let bytes = tokio::time::timeout(endpoint.timeout, answer)
            .await
            .map_err(|_| ProxyError::Timeout(endpoint.timeout))??;
        rpc_outcome(&bytes)
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

/// Reads the backend's answer to an RPC.
fn rpc_outcome(body: &[u8]) -> Result<RpcOutcome, ProxyError> {
    let garbage = |why: &str| ProxyError::Garbage(why.to_owned());
    let response: RpcResponse = serde_json::from_slice(body).map_err(|e| ProxyError::Garbage(e.to_string()))?;
    match (response.result, response.error, response.disconnect) {
        (_, _, Some(disconnect)) => {
            if !(4000..=4999).contains(&disconnect.code) {
                return Err(garbage("a disconnect code outside 4000..=4999"));
            }
            Ok(RpcOutcome::Disconnect(disconnect.code, disconnect.reason))
        }
        (_, Some(error), None) => {
            if (400..=1999).contains(&error.code) {
                Ok(RpcOutcome::Error(error.code, error.message, error.temporary))
            } else {
                Err(garbage("an error code outside 400..=1999"))
            }
        }
        (Some(result), None, None) => match (result.data, result.b64data) {
            (Some(data), None) => Ok(RpcOutcome::Result(Bytes::copy_from_slice(data.get().as_bytes()))),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(|data| RpcOutcome::Result(Bytes::from(data)))
                .map_err(|_| garbage("b64data that is not base64")),
            (None, None) => Ok(RpcOutcome::Result(Bytes::new())),
            (Some(_), Some(_)) => Err(garbage("both data and b64data")),
        },
        (None, None, None) => Err(garbage("neither result, error nor disconnect")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_timeout() {
        let endpoint = |url: &str, timeout: u64| ProxyConfig {
            rpc: Some(ProxyEndpoint { endpoint: url.into(), timeout: Duration::from_millis(timeout) }),
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
