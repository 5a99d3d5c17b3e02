//! Token verification: connection and subscription JWTs.
//!
//! This module owns the keys configured under `[token]` and turns a compact JWT into the
//! claims the session needs ([`ConnectClaims`], [`SubscribeClaims`]). It guarantees:
//!
//! - the token header's `alg` picks the key: HS256/384/512 use `hmac_secret`, RS256/384/512
//!   `rsa_public_key`, ES256/384 `ecdsa_public_key`; an algorithm without a configured key,
//!   or any other algorithm (`none`, PS*, EdDSA), is [`TokenError::Invalid`];
//! - `exp` is optional (no `exp` = the token never expires) and, when present, is enforced
//!   with zero leeway: a token whose `exp` lies in the past is [`TokenError::Expired`];
//!   `nbf`, when present, is enforced the same way;
//! - `aud` and `iss` must match when `token.audience` / `token.issuer` are configured, and
//!   are ignored otherwise;
//! - a token serves one purpose, as Centrifugo's verifier has it: a connection token that
//!   carries a `channel` claim is a subscription token and is [`TokenError::Invalid`] (so a
//!   subscription token never connects, whatever else it holds); a subscription token
//!   without a `channel` claim is [`TokenError::Invalid`]. The purpose is checked before
//!   `exp`, so a token of the wrong kind is invalid even when it has also expired;
//! - the `info` claim is handed on as the raw JSON text the token carried, unchanged;
//! - with `token.jwks_url` set, an RS*/ES* token whose header names a `kid` is verified
//!   with that key of the JWKS (RSA or EC; fetched, cached and rotated by
//!   [`jwks`]), whatever keys the file also configures; a token without `kid`
//!   uses the configured keys as above. A JWKS that cannot be fetched is
//!   [`TokenError::Unavailable`] (temporary), an unknown `kid` is
//!   [`TokenError::Invalid`];
//! - no input makes verification panic; every failure is a [`TokenError`].
//!
//! [`TokenVerifier::verify_connect`] and [`TokenVerifier::verify_subscribe`]
//! are async because a JWKS key may need fetching (bounded by
//! `token.jwks_timeout`); the `_now` variants use the keys at hand and never
//! wait.
//!
//! Keys are parsed once, in [`TokenVerifier::new`]; the verifier is an `Arc` inside, cheap
//! to clone and share between sessions. [`sign_connect_token`] and [`sign_subscribe_token`]
//! make HS256 tokens for `hub gentoken` and for tests.

pub mod jwks;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Keys for connection and subscription JWTs: the `[token]` section of the
/// configuration (re-exported as `config::TokenConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Shared secret for HS256/384/512 tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// RSA public key, PEM text, for RS256/384/512 tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_public_key: Option<String>,
    /// ECDSA public key, PEM text, for ES256/384 tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecdsa_public_key: Option<String>,
    /// If set, a token's `aud` must contain it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// If set, a token's `iss` must equal it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// URL (`https://` or `http://`) of a JWKS: RS*/ES* tokens whose header
    /// names a `kid` are verified with that RSA or EC key of the set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(with = "humantime_serde")]
    pub jwks_cache_ttl: Duration,
    /// The shortest time between two fetches of the JWKS, whatever asks for
    /// them (an unknown `kid`, a stale set): the bound on what made-up `kid`s
    /// cost the identity provider.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// How long a fetch of the JWKS may take; a client waiting on it gets a
    /// temporary error past it.
    #[serde(with = "humantime_serde")]
    pub jwks_timeout: Duration,
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            hmac_secret: None,
            rsa_public_key: None,
            ecdsa_public_key: None,
            audience: None,
            issuer: None,
            jwks_url: None,
            jwks_cache_ttl: Duration::from_secs(3600),
            jwks_refresh_interval: Duration::from_secs(10),
            jwks_timeout: Duration::from_secs(5),
        }
    }
}

/// Claims of a verified connection token.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectClaims {
    /// The `sub` claim: the user id (empty when the token has no `sub`).
    pub user: String,
    /// The `exp` claim in Unix seconds; `None` = the token never expires.
    pub expires_at: Option<u64>,
    /// The `info` claim as the raw JSON text of the token (object, string, anything).
    pub info: Option<Bytes>,
    /// The `channels` claim: channels this connection may subscribe to without further checks.
    pub channels: Vec<String>,
}

/// Claims of a verified subscription token.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeClaims {
    /// The `sub` claim: the user the token was issued to (empty when absent).
    pub user: String,
    /// The `channel` claim: the one channel this token grants; never empty.
    pub channel: String,
    /// The `exp` claim in Unix seconds; `None` = the token never expires.
    pub expires_at: Option<u64>,
    /// The `info` claim (channel-scoped info) as raw JSON text.
    pub info: Option<Bytes>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token was valid but its `exp` is in the past: the client should get a new one.
    #[error("token expired")]
    Expired,
    /// Anything else: bad format, bad signature, unknown algorithm, wrong audience, ...
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key could not be had now (the JWKS endpoint is unreachable or
    /// slow): the client should retry later.
    #[error("token keys unavailable: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// True when the same token may verify later ([`TokenError::Unavailable`]).
    pub fn is_temporary(&self) -> bool {
        matches!(self, TokenError::Unavailable(_))
    }
}

/// A key under `[token]` that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// The key is set but cannot be parsed; `key` is its config path, e.g. `token.rsa_public_key`.
    #[error("key \"{key}\": {reason}")]
    BadKey { key: &'static str, reason: String },
}

impl AuthConfigError {
    /// The config key the error is about (e.g. `token.rsa_public_key`).
    pub fn key(&self) -> &'static str {
        match self {
            AuthConfigError::BadKey { key, .. } => key,
        }
    }

    /// The reason, without the key.
    pub fn reason(&self) -> &str {
        match self {
            AuthConfigError::BadKey { reason, .. } => reason,
        }
    }
}

/// Verifies connection and subscription tokens with the configured keys. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Keys>,
}

struct Keys {
    hmac: Option<DecodingKey>,
    rsa: Option<DecodingKey>,
    ecdsa: Option<DecodingKey>,
    audience: Option<String>,
    issuer: Option<String>,
    jwks: Option<Arc<jwks::Jwks>>,
}

impl std::fmt::Debug for TokenVerifier {
    // Keys stay out of logs: only say which ones are present.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hmac", &self.inner.hmac.is_some())
            .field("rsa", &self.inner.rsa.is_some())
            .field("ecdsa", &self.inner.ecdsa.is_some())
            .field("audience", &self.inner.audience)
            .field("issuer", &self.inner.issuer)
            .field("jwks", &self.inner.jwks)
            .finish()
    }
}

/// The claims we read from either kind of token; unknown claims are ignored.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel: String,
}

/// A JWT NumericDate: integer or fractional seconds. Fractions are rounded the way
/// jsonwebtoken's own `exp` check rounds them, so `expires_at` agrees with what it enforced.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(u64),
    Float(f64),
}

impl NumericDate {
    fn seconds(&self) -> u64 {
        match *self {
            NumericDate::Int(s) => s,
            // `as` saturates; negative or NaN dates become 0, which jsonwebtoken already
            // refused as expired or malformed before we get here.
            NumericDate::Float(s) => s.round() as u64,
        }
    }
}

/// Parses an optional PEM public key; a key that is set but unusable is an
/// error naming its config key.
fn pem_key(
    pem: Option<&str>,
    key: &'static str,
    kind: &str,
    parse: fn(&[u8]) -> Result<DecodingKey, jsonwebtoken::errors::Error>,
) -> Result<Option<DecodingKey>, AuthConfigError> {
    pem.map(|pem| {
        parse(pem.as_bytes())
            .map_err(|e| AuthConfigError::BadKey { key, reason: format!("not {kind} public key in PEM format: {e}") })
    })
    .transpose()
}

impl TokenVerifier {
    /// Parses the keys of `cfg`. A key that is set but unusable is an error naming that key.
    pub fn new(cfg: &TokenConfig) -> Result<TokenVerifier, AuthConfigError> {
        let hmac = match cfg.hmac_secret.as_deref() {
            Some("") => {
                return Err(AuthConfigError::BadKey {
                    key: "token.hmac_secret",
                    reason: "must not be empty (leave it out to disable HMAC tokens)".into(),
                })
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let rsa = pem_key(cfg.rsa_public_key.as_deref(), "token.rsa_public_key", "an RSA", DecodingKey::from_rsa_pem)?;
        let ecdsa =
            pem_key(cfg.ecdsa_public_key.as_deref(), "token.ecdsa_public_key", "an ECDSA", DecodingKey::from_ec_pem)?;
        let jwks = match cfg.jwks_url.as_deref() {
            None => None,
            Some(url) => Some(jwks_cache(url, cfg)?),
        };
        Ok(TokenVerifier {
            inner: Arc::new(Keys {
                hmac,
                rsa,
                ecdsa,
                audience: cfg.audience.clone(),
                issuer: cfg.issuer.clone(),
                jwks,
            }),
        })
    }

    /// True when at least one key is configured, i.e. some token could ever verify.
    pub fn is_configured(&self) -> bool {
        let keys = &*self.inner;
        keys.hmac.is_some() || keys.rsa.is_some() || keys.ecdsa.is_some() || keys.jwks.is_some()
    }

    /// The JWKS key a token's `kid` names, fetched if need be; `None` when the
    /// token is verified with the configured keys (no JWKS, or no `kid`).
    async fn jwks_key(&self, token: &str) -> Result<Option<jwks::JwksKey>, TokenError> {
        let Some(jwks) = &self.inner.jwks else { return Ok(None) };
        match jwks_kid(token)? {
            Some(kid) => jwks.key(&kid).await.map(Some),
            None => Ok(None),
        }
    }

    /// The JWKS key a token's `kid` names among the keys fetched so far.
    fn jwks_key_now(&self, token: &str) -> Result<Option<jwks::JwksKey>, TokenError> {
        let Some(jwks) = &self.inner.jwks else { return Ok(None) };
        jwks_kid(token)?.map(|kid| jwks.cached(&kid)).transpose()
    }

    /// Verifies a connection token (claims `sub`, `exp`, `info`, `channels`). A token with a
    /// non-empty `channel` claim is a subscription token: [`TokenError::Invalid`], as
    /// Centrifugo refuses it ("connection JWT can not contain channel claim").
    pub async fn verify_connect(&self, token: &str) -> Result<ConnectClaims, TokenError> {
        let key = self.jwks_key(token).await?;
        self.connect_claims(token, key)
    }

    /// [`TokenVerifier::verify_connect`] with the keys at hand: never waits
    /// for a JWKS fetch.
    pub fn verify_connect_now(&self, token: &str) -> Result<ConnectClaims, TokenError> {
        let key = self.jwks_key_now(token)?;
        self.connect_claims(token, key)
    }

    fn connect_claims(&self, token: &str, key: Option<jwks::JwksKey>) -> Result<ConnectClaims, TokenError> {
        let claims = self.verify(token, Purpose::Connection, key)?;
        Ok(ConnectClaims {
            user: claims.sub,
            expires_at: claims.exp.map(|d| d.seconds()),
            info: claims.info.map(raw_bytes),
            channels: claims.channels,
        })
    }

    /// Verifies a subscription token (claims `sub`, `channel`, `exp`, `info`); `channel`
    /// must be present and non-empty. Checking that `channel` and `sub` match the
    /// subscription and the connection is the caller's job.
    pub async fn verify_subscribe(&self, token: &str) -> Result<SubscribeClaims, TokenError> {
        let key = self.jwks_key(token).await?;
        self.subscribe_claims(token, key)
    }

    /// [`TokenVerifier::verify_subscribe`] with the keys at hand: never waits
    /// for a JWKS fetch.
    pub fn verify_subscribe_now(&self, token: &str) -> Result<SubscribeClaims, TokenError> {
        let key = self.jwks_key_now(token)?;
        self.subscribe_claims(token, key)
    }

    fn subscribe_claims(&self, token: &str, key: Option<jwks::JwksKey>) -> Result<SubscribeClaims, TokenError> {
        let claims = self.verify(token, Purpose::Subscription, key)?;
        Ok(SubscribeClaims {
            user: claims.sub,
            channel: claims.channel,
            expires_at: claims.exp.map(|d| d.seconds()),
            info: claims.info.map(raw_bytes),
        })
    }

    /// Checks the signature (with `jwks_key` when the token's `kid` named
    /// one), `aud`, `iss` and `nbf`, then the token's purpose, then `exp`.
    fn verify(&self, token: &str, purpose: Purpose, jwks_key: Option<jwks::JwksKey>) -> Result<RawClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let keys = &*self.inner;
        let from_jwks;
        let (key, family) = match (&jwks_key, header.alg) {
            (Some(found), alg) => {
                if !matches!(
                    alg,
                    Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::ES256 | Algorithm::ES384
                ) {
                    return Err(TokenError::Invalid(format!("algorithm {alg:?} is not taken with a JWKS key")));
                }
                if found.alg.is_some_and(|want| want != alg) {
                    return Err(TokenError::Invalid(format!("the JWKS key is for another algorithm than {alg:?}")));
                }
                from_jwks = Some(found.key.clone());
                (&from_jwks, "token.jwks_url")
            }
            (None, alg) => match alg {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => (&keys.hmac, "token.hmac_secret"),
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => (&keys.rsa, "token.rsa_public_key"),
                Algorithm::ES256 | Algorithm::ES384 => (&keys.ecdsa, "token.ecdsa_public_key"),
                other => {
                    return Err(TokenError::Invalid(format!("unsupported algorithm {other:?}")));
                }
            },
        };
        let Some(key) = key else {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} needs {family}, which is not configured",
                header.alg
            )));
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        match &keys.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &keys.issuer {
            validation.set_issuer(&[iss]);
            validation.set_required_spec_claims(&["iss"]);
        }
        if keys.audience.is_some() {
            validation.required_spec_claims.insert("aud".to_owned());
        }
        match jsonwebtoken::decode::<RawClaims>(token, key, &validation) {
            Ok(data) => purpose.check(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                // Signed and well-formed but expired: a token of the wrong kind is
                // still invalid rather than expired (the client must not retry it).
                validation.validate_exp = false;
                let claims = jsonwebtoken::decode::<RawClaims>(token, key, &validation).map_err(invalid)?.claims;
                purpose.check(claims)?;
                Err(TokenError::Expired)
            }
            Err(e) => Err(invalid(e)),
        }
    }
}

/// The `kid` of a token verified with a JWKS key: an RSA or EC token whose
/// header names one. HMAC tokens use `hmac_secret` whatever their header says.
fn jwks_kid(token: &str) -> Result<Option<String>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Ok(None);
    }
    Ok(header.kid)
}

/// The JWKS cache for `url`, with the `[token]` settings around it.
fn jwks_cache(url: &str, cfg: &TokenConfig) -> Result<Arc<jwks::Jwks>, AuthConfigError> {
    let bad = |reason: String| AuthConfigError::BadKey { key: "token.jwks_url", reason };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad("must be an https:// (or http://) URL".into()));
    }
    for (key, value) in [
        ("token.jwks_cache_ttl", cfg.jwks_cache_ttl),
        ("token.jwks_refresh_interval", cfg.jwks_refresh_interval),
        ("token.jwks_timeout", cfg.jwks_timeout),
    ] {
        if value.is_zero() {
            return Err(AuthConfigError::BadKey { key, reason: "must be greater than 0".into() });
        }
    }
    jwks::Jwks::new(jwks::JwksOptions {
        url: url.to_owned(),
        cache_ttl: cfg.jwks_cache_ttl,
        refresh_interval: cfg.jwks_refresh_interval,
        timeout: cfg.jwks_timeout,
    })
    .map_err(bad)
}

/// What a token is presented for; see [`Purpose::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Connection,
    Subscription,
}

impl Purpose {
    /// A connection token must not name a `channel`; a subscription token must.
    fn check(self, claims: RawClaims) -> Result<RawClaims, TokenError> {
        match self {
            Purpose::Connection if !claims.channel.is_empty() => Err(TokenError::Invalid(
                "a connection token must not carry a `channel` claim (that is a subscription token)".into(),
            )),
            Purpose::Subscription if claims.channel.is_empty() => {
                Err(TokenError::Invalid("subscription token has no `channel` claim".into()))
            }
            _ => Ok(claims),
        }
    }
}

fn invalid(e: jsonwebtoken::errors::Error) -> TokenError {
    TokenError::Invalid(e.to_string())
}

fn raw_bytes(raw: Box<RawValue>) -> Bytes {
    let text: Box<str> = raw.into();
    Bytes::from(text.into_string())
}

/// The claims [`sign_connect_token`] and [`sign_subscribe_token`] write.
#[derive(Serialize)]
struct OutClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    channels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
}

/// Signs an HS256 connection token carrying `claims` (`expires_at` None = no `exp`).
/// `claims.info` must be valid JSON text.
pub fn sign_connect_token(hmac_secret: &str, claims: &ConnectClaims) -> Result<String, TokenError> {
    let info = parse_info(claims.info.as_ref())?;
    sign(
        hmac_secret,
        &OutClaims {
            sub: &claims.user,
            exp: claims.expires_at,
            info: info.as_deref(),
            channels: &claims.channels,
            channel: None,
        },
    )
}

/// Signs an HS256 subscription token carrying `claims` (`expires_at` None = no `exp`).
pub fn sign_subscribe_token(hmac_secret: &str, claims: &SubscribeClaims) -> Result<String, TokenError> {
    let info = parse_info(claims.info.as_ref())?;
    sign(
        hmac_secret,
        &OutClaims {
            sub: &claims.user,
            exp: claims.expires_at,
            info: info.as_deref(),
            channels: &[],
            channel: Some(&claims.channel),
        },
    )
}

/// `now + ttl` in Unix seconds, for building `expires_at`.
pub fn expires_in(ttl: Duration) -> u64 {
    // A clock before 1970 is treated as 1970: the token then simply expires early.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    now.saturating_add(ttl).as_secs()
}

fn parse_info(info: Option<&Bytes>) -> Result<Option<Box<RawValue>>, TokenError> {
    info.map(|b| {
        let text = std::str::from_utf8(b).map_err(|e| TokenError::Invalid(format!("info: {e}")))?;
        RawValue::from_string(text.to_owned()).map_err(|e| TokenError::Invalid(format!("info is not JSON: {e}")))
    })
    .transpose()
}

fn sign(hmac_secret: &str, claims: &OutClaims<'_>) -> Result<String, TokenError> {
    if hmac_secret.is_empty() {
        return Err(TokenError::Invalid("empty HMAC secret".into()));
    }
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(hmac_secret.as_bytes()))
        .map_err(invalid)
}

#[cfg(test)]
#[path = "auth/tests.rs"]
mod tests;
