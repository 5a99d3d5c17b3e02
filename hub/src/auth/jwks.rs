//! Public keys from a JWKS endpoint (`token.jwks_url`), cached by `kid`.
//!
//! [`Jwks::key`] answers the key a token names. It guarantees:
//!
//! - the set is fetched lazily (no task of its own, nothing to shut down) and
//!   kept for `token.jwks_cache_ttl`; past it, the next token that needs a key
//!   refetches it, and while a refetch fails the keys fetched last go on
//!   serving (an identity provider that is down does not log everyone out);
//! - a `kid` the cached set does not hold triggers a refetch (a rotation:
//!   the new key appears), but fetches, whatever triggers them, start at most
//!   once per `token.jwks_refresh_interval`: a stream of tokens with made-up
//!   `kid`s costs the provider one request per interval, not one per token;
//! - one fetch at a time: concurrent sessions that need a key wait for the
//!   same fetch (a `tokio` mutex, never held across anything but that fetch)
//!   instead of sending their own; every wait is bounded by
//!   `token.jwks_timeout`, and a fetch that fails or times out is
//!   [`TokenError::Unavailable`] (temporary), never a hang;
//! - only RSA and EC keys are taken (a symmetric `oct` key has no place in a
//!   published set); keys that do not parse, or carry no `kid`, are skipped
//!   with a warning, and the others kept; a body over [`MAX_BODY`] is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;
use tokio::time::Instant;

use super::TokenError;

/// The largest JWKS body read (a set of a few keys is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// How the JWKS is fetched and kept (from `[token]`).
#[derive(Debug, Clone)]
pub struct JwksOptions {
    pub url: String,
    pub cache_ttl: Duration,
    pub refresh_interval: Duration,
    pub timeout: Duration,
}

/// One key of the set.
#[derive(Clone)]
pub struct JwksKey {
    pub key: DecodingKey,
    /// The `alg` the set names for the key, if any: a token must use it.
    pub alg: Option<Algorithm>,
}

/// The cached set and when it was fetched.
#[derive(Default)]
struct Cached {
    keys: HashMap<String, JwksKey>,
    fetched_at: Option<Instant>,
}

/// The JWKS cache of one verifier.
pub struct Jwks {
    options: JwksOptions,
    client: reqwest::Client,
    cached: RwLock<Cached>,
    /// When the last fetch started; held while fetching (one at a time).
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.options.url).field("keys", &self.cached.read().keys.len()).finish()
    }
}

impl Jwks {
    /// A cache for `options` (no fetch yet). Fails only when the HTTP client
    /// cannot be built (its TLS set-up).
    pub fn new(options: JwksOptions) -> Result<Arc<Jwks>, String> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(concat!("hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Arc::new(Jwks {
            options,
            client,
            cached: RwLock::new(Cached::default()),
            last_attempt: tokio::sync::Mutex::new(None),
        }))
    }

    /// The key `kid` names, fetching the set when it is stale or lacks
    /// `kid` (bounded as the module says). Waits at most `timeout` for a
    /// fetch (its own or another session's).
    pub async fn key(&self, kid: &str) -> Result<JwksKey, TokenError> {
        let wait = self.options.timeout.saturating_add(Duration::from_millis(100));
        match tokio::time::timeout(wait, self.key_inner(kid)).await {
            Ok(result) => result,
            Err(_) => Err(TokenError::Unavailable("the JWKS endpoint did not answer in time".into())),
        }
    }

    async fn key_inner(&self, kid: &str) -> Result<JwksKey, TokenError> {
        let asked_at = Instant::now();
        if let Some(found) = self.fresh(kid, asked_at) {
            return found;
        }
        let mut last_attempt = self.last_attempt.lock().await;
        // Another session may have fetched while this one waited.
        let now = Instant::now();
        if let Some(found) = self.fetched_since(kid, asked_at) {
            return found;
        }
        let may_fetch =
            last_attempt.is_none_or(|at| now.saturating_duration_since(at) >= self.options.refresh_interval);
        if !may_fetch {
            return self.cached_or(kid, None);
        }
        *last_attempt = Some(now);
        let fetched = self.fetch().await;
        drop(last_attempt);
        match fetched {
            Ok(keys) => {
                tracing::debug!(url = %self.options.url, keys = keys.len(), "JWKS fetched");
                *self.cached.write() = Cached { keys, fetched_at: Some(Instant::now()) };
                self.cached_or(kid, None)
            }
            Err(reason) => {
                tracing::warn!(url = %self.options.url, %reason, "JWKS fetch failed");
                self.cached_or(kid, Some(reason))
            }
        }
    }

    /// The key `kid` names among the keys fetched so far (no fetch).
    pub fn cached(&self, kid: &str) -> Result<JwksKey, TokenError> {
        self.cached_or(kid, None)
    }

    /// The answer from a set younger than the TTL, if there is one that
    /// holds `kid`; `None` = fetch.
    fn fresh(&self, kid: &str, now: Instant) -> Option<Result<JwksKey, TokenError>> {
        let cached = self.cached.read();
        let fetched_at = cached.fetched_at?;
        if now.saturating_duration_since(fetched_at) >= self.options.cache_ttl {
            return None;
        }
        cached.keys.get(kid).map(|key| Ok(key.clone()))
    }

    /// The answer from a set fetched after `since` (by another session).
    fn fetched_since(&self, kid: &str, since: Instant) -> Option<Result<JwksKey, TokenError>> {
        let cached = self.cached.read();
        if cached.fetched_at.is_some_and(|at| at >= since) {
            return Some(self.lookup(&cached, kid, None));
        }
        None
    }

    /// The cached key, or why not: the fetch failure when nothing was ever
    /// fetched, an unknown `kid` otherwise.
    fn cached_or(&self, kid: &str, failure: Option<String>) -> Result<JwksKey, TokenError> {
        self.lookup(&self.cached.read(), kid, failure)
    }

    fn lookup(&self, cached: &Cached, kid: &str, failure: Option<String>) -> Result<JwksKey, TokenError> {
        if let Some(key) = cached.keys.get(kid) {
            return Ok(key.clone());
        }
        match (cached.fetched_at, failure) {
            (None, Some(reason)) => Err(TokenError::Unavailable(format!("the JWKS could not be fetched: {reason}"))),
            (None, None) => Err(TokenError::Unavailable("the JWKS has not been fetched yet".into())),
            (Some(_), _) => Err(TokenError::Invalid(format!("no key with kid {kid:?} in the JWKS"))),
        }
    }

    /// GETs the set and parses its keys.
    async fn fetch(&self) -> Result<HashMap<String, JwksKey>, String> {
        let mut response = self.client.get(&self.options.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("the body is larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_set(&body)
    }
}

/// The usable keys of a JWKS document, by `kid`.
pub fn parse_set(body: &[u8]) -> Result<HashMap<String, JwksKey>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "JWKS: a key that does not parse is skipped");
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone().filter(|kid| !kid.is_empty()) else {
            tracing::warn!("JWKS: a key without kid is skipped");
            continue;
        };
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)) {
            tracing::warn!(%kid, "JWKS: only RSA and EC keys are used; key skipped");
            continue;
        }
        let alg = match jwk.common.key_algorithm.map(signing_algorithm) {
            None => None,
            Some(Some(alg)) => Some(alg),
            Some(None) => {
                tracing::warn!(%kid, "JWKS: a key for an algorithm tokens are not signed with here is skipped");
                continue;
            }
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(kid, JwksKey { key, alg });
            }
            Err(error) => tracing::warn!(%kid, %error, "JWKS: a key that does not parse is skipped"),
        }
    }
    Ok(keys)
}

/// The token algorithm a key's `alg` names, among those taken with a JWKS
/// key (RS*, ES*); `None` for any other (encryption, PS*, HMAC, unknown).
fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_and_ec_keys_with_a_kid_are_kept() {
        let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa_private.pem")).unwrap();
        let mut rsa =
            serde_json::to_value(Jwk::from_encoding_key(&rsa, jsonwebtoken::Algorithm::RS256).unwrap()).unwrap();
        rsa["kid"] = "r1".into();
        let ec = jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!("testdata/ec_private.pem")).unwrap();
        let mut ec =
            serde_json::to_value(Jwk::from_encoding_key(&ec, jsonwebtoken::Algorithm::ES256).unwrap()).unwrap();
        ec["kid"] = "e1".into();
        let mut no_kid = ec.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let oct = serde_json::json!({"kty": "oct", "kid": "h1", "k": "c2VjcmV0"});
        let odd = serde_json::json!({"kty": "XYZ", "kid": "x1"});
        let body = serde_json::json!({"keys": [rsa, ec, no_kid, oct, odd]}).to_string();
        let keys = parse_set(body.as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["e1", "r1"]);
        assert_eq!(keys["r1"].alg, Some(jsonwebtoken::Algorithm::RS256));
        for bad in [&b"not json"[..], b"{}", b"{\"keys\": 3}"] {
            assert!(parse_set(bad).is_err());
        }
    }
}
