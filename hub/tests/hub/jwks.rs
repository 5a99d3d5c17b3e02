//! `token.jwks_url`: connection and subscription tokens verified with keys a
//! local HTTP server (written here) publishes as a JWKS. Keys rotate (a new
//! `kid` is accepted once the set is refetched, a removed one is refused once
//! the cached set is stale), unknown `kid`s refetch at most once per
//! `jwks_refresh_interval`, and an endpoint that does not answer gives the
//! client a temporary error within `jwks_timeout`, not a hang.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::config::{Config, TokenConfig};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use protocol::proto;
use protocol::Encoding;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{spawn_hub, test_config};

const RSA_A: &str = include_str!("../../src/auth/testdata/rsa_private.pem");
const EC_B: &str = include_str!("testdata/jwks_ec_b.pem");
const RSA_C: &str = include_str!("testdata/jwks_rsa_b.pem");

/// A signing key with its `kid`.
struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn rsa(kid: &'static str, pem: &str) -> Signer {
        Signer { kid, alg: Algorithm::RS256, key: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA key") }
    }

    fn ec(kid: &'static str, pem: &str) -> Signer {
        Signer { kid, alg: Algorithm::ES256, key: EncodingKey::from_ec_pem(pem.as_bytes()).expect("an EC key") }
    }

    /// The public half as a JWK with this `kid`.
    fn jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&self.key, self.alg).expect("a JWK")).expect("JSON");
        jwk["kid"] = self.kid.into();
        jwk
    }

    fn sign(&self, claims: serde_json::Value) -> String {
        let header = Header { kid: Some(self.kid.to_string()), ..Header::new(self.alg) };
        jsonwebtoken::encode(&header, &claims, &self.key).expect("the token signs")
    }

    fn connect_token(&self, user: &str) -> String {
        self.sign(serde_json::json!({"sub": user, "exp": hub::auth::expires_in(Duration::from_secs(3600))}))
    }
}

/// What the JWKS server answers.
enum Serving {
    Keys(serde_json::Value),
    /// Accept the connection, never answer.
    Silent,
}

/// The JWKS endpoint: a bare HTTP/1.1 server that answers every request
/// with the current set, counting requests. Stopped when dropped.
struct JwksServer {
    url: String,
    serving: Arc<Mutex<Serving>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: &[&Signer]) -> JwksServer {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("an address"));
        let serving = Arc::new(Mutex::new(Serving::Keys(set(keys))));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (serving.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (shared, count) = (shared.clone(), count.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = match &*shared.lock() {
                        Serving::Keys(keys) => Some(keys.to_string()),
                        Serving::Silent => None,
                    };
                    let Some(body) = body else {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        JwksServer { url, serving, requests, task }
    }

    fn serve(&self, keys: &[&Signer]) {
        *self.serving.lock() = Serving::Keys(set(keys));
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn set(keys: &[&Signer]) -> serde_json::Value {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

fn jwks_config(url: &str, ttl: Duration, interval: Duration, timeout: Duration) -> Config {
    Config {
        allow_anonymous: false,
        token: TokenConfig {
            jwks_url: Some(url.to_string()),
            jwks_cache_ttl: ttl,
            jwks_refresh_interval: interval,
            jwks_timeout: timeout,
            ..TokenConfig::default()
        },
        ..test_config()
    }
}

/// Connects with `token` over WebSocket: the connect result, or the wire
/// error; a close (3500) is `Err` with code 3500.
async fn try_connect(hub: &crate::helpers::TestHub, token: &str) -> Result<proto::ConnectResult, (u32, bool)> {
    let mut client = hub.open(Encoding::Json).await;
    let request = proto::ConnectRequest { token: token.to_string(), ..Default::default() };
    client.send(&[proto::Command { id: 1, connect: Some(request), ..Default::default() }]).await;
    match client.reply_or_close(1).await {
        Ok(reply) => match (reply.connect, reply.error) {
            (Some(result), _) => Ok(result),
            (_, Some(error)) => Err((error.code, error.temporary)),
            _ => panic!("a connect reply without result or error"),
        },
        Err((code, _)) => Err((u32::from(code), false)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_kid_and_unknown_kids_refetch_at_most_once_per_interval() {
    let (a, b) = (Signer::rsa("a", RSA_A), Signer::ec("b", EC_B));
    let server = JwksServer::start(&[&a]).await;
    let (ttl, interval) = (Duration::from_millis(2000), Duration::from_millis(600));
    let hub = spawn_hub(jwks_config(&server.url, ttl, interval, Duration::from_secs(2))).await;

    // First use fetches the set; the next ones use the cache.
    assert_eq!(try_connect(&hub, &a.connect_token("alice")).await.map(|_| ()), Ok(()));
    assert_eq!(try_connect(&hub, &a.connect_token("alice")).await.map(|_| ()), Ok(()));
    assert_eq!(server.requests(), 1, "one fetch for two tokens");

    // A new key appears: its first token refetches the set and is accepted.
    server.serve(&[&a, &b]);
    tokio::time::sleep(interval).await;
    assert_eq!(try_connect(&hub, &b.connect_token("bob")).await.map(|_| ()), Ok(()));
    assert_eq!(server.requests(), 2);

    // Made-up kids: refused (3500), and together they cost one fetch per interval.
    tokio::time::sleep(interval).await;
    let forged = Signer::rsa("nobody", RSA_C);
    for _ in 0..5 {
        assert_eq!(try_connect(&hub, &forged.connect_token("mallory")).await.map(|_| ()), Err((3500, false)));
    }
    assert_eq!(server.requests(), 3, "five unknown kids within one interval: one fetch");
    tokio::time::sleep(interval).await;
    assert_eq!(try_connect(&hub, &forged.connect_token("mallory")).await.map(|_| ()), Err((3500, false)));
    assert_eq!(server.requests(), 4, "the next interval: one more");

    // A token signed by another key under a known kid is refused.
    let impostor = Signer { kid: "b", ..Signer::ec("b", include_str!("../../src/auth/testdata/ec_private.pem")) };
    assert_eq!(try_connect(&hub, &impostor.connect_token("bob")).await.map(|_| ()), Err((3500, false)));

    // Subscription tokens use the same keys.
    let (mut client, _) = {
        let mut client = hub.open(Encoding::Json).await;
        let result = client.connect(&b.connect_token("bob")).await.expect("connect");
        (client, result)
    };
    let sub = b.sign(serde_json::json!({"sub": "bob", "channel": "private:room"}));
    let request = proto::SubscribeRequest { channel: "private:room".into(), token: sub, ..Default::default() };
    client.subscribe_with(request).await.expect("a JWKS-signed subscription token subscribes");

    // Key `a` is removed: once the cached set is stale, its tokens are refused.
    server.serve(&[&b]);
    tokio::time::sleep(ttl).await;
    assert_eq!(try_connect(&hub, &a.connect_token("alice")).await.map(|_| ()), Err((3500, false)));
    assert_eq!(try_connect(&hub, &b.connect_token("bob")).await.map(|_| ()), Ok(()));
    hub.shutdown().await;
}

/// An endpoint that never answers: the client gets error 100, temporary,
/// within `jwks_timeout` (and its connection stays open to retry); a
/// `uni_sse` request gets 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_is_a_temporary_error_within_the_timeout() {
    let a = Signer::rsa("a", RSA_A);
    let server = JwksServer::start(&[&a]).await;
    *server.serving.lock() = Serving::Silent;
    let timeout = Duration::from_millis(500);
    let hub = spawn_hub(jwks_config(&server.url, Duration::from_secs(60), Duration::from_millis(100), timeout)).await;
    let started = Instant::now();
    assert_eq!(try_connect(&hub, &a.connect_token("alice")).await.map(|_| ()), Err((100, true)));
    assert!(started.elapsed() < timeout * 4, "answered in {:?}", started.elapsed());

    let query = format!("token={}", a.connect_token("alice"));
    let request = format!("GET /connection/uni_sse?{query} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, body) = crate::helpers::raw_request(hub.addr, &request).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"code\":100"), "{body}");

    // Back up: the next try (past the refresh interval) connects.
    server.serve(&[&a]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(try_connect(&hub, &a.connect_token("alice")).await.map(|_| ()), Ok(()));
    hub.shutdown().await;
}
