//! Request ids and log spans: `X-Request-ID` is echoed when sane and
//! generated (a UUID v4) otherwise, on every kind of answer; the log lines
//! of a connection carry its client id and transport; with OpenTelemetry on,
//! log lines carry the trace and span ids of the exported spans (the `hub`
//! binary with JSON logs, read from its stderr).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use protocol::Encoding;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{raw_response, spawn_hub, test_config, WAIT};
use crate::otel::{traced_publish, OtlpReceiver, API_KEY};
use crate::ws_client::WsClient;

/// The value of the `x-request-id` header of a raw response (actix writes
/// header names in lower case).
fn request_id_of(response: &str) -> Option<String> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| line.strip_prefix("x-request-id: ")).map(str::to_string)
}

/// Asserts `id` is a generated one: a UUID v4.
fn assert_generated(id: Option<String>, what: &str) {
    let id = id.unwrap_or_else(|| panic!("{what}: no x-request-id"));
    let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{what}: {id:?} is not a UUID: {e}"));
    assert_eq!(uuid.get_version_num(), 4, "{what}: {id}");
}

/// A request with an optional `X-Request-ID`; the whole response.
async fn exchange(addr: SocketAddr, head: &str, request_id: Option<&str>) -> String {
    let header = request_id.map(|id| format!("X-Request-ID: {id}\r\n")).unwrap_or_default();
    raw_response(addr, &format!("{head}\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n")).await
}

/// Opens an SSE stream and returns the response head (the stream stays open
/// until the socket is dropped).
async fn sse_head(addr: SocketAddr, request_id: Option<&str>) -> String {
    let header = request_id.map(|id| format!("X-Request-ID: {id}\r\n")).unwrap_or_default();
    let connect: String = url::form_urlencoded::byte_serialize(br#"{"id":1,"connect":{}}"#).collect();
    let request = format!("GET /connection/sse?cf_connect={connect} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\n");
    tokio::time::timeout(WAIT, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the hub");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut seen = Vec::new();
        loop {
            let text = String::from_utf8_lossy(&seen);
            if let Some((head, _)) = text.split_once("\r\n\r\n") {
                return format!("{head}\r\n\r\n");
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read the stream");
            assert!(n > 0, "the stream ended before its head: {text}");
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("an SSE response head within WAIT")
}

/// A sane `X-Request-ID` comes back as sent; a missing, too long or
/// non-visible-ASCII one is replaced with a UUID v4: on a normal answer, on
/// refusals (actix-web's own 404, a handler's 401) and on an SSE stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_or_generated() {
    let hub = spawn_hub(test_config()).await;
    let addr = hub.addr;
    let sane = "req-42_A.b~c";
    // One past the longest id the hub takes (128 bytes).
    let too_long = "a".repeat(129);
    for (head, status) in [
        ("GET /health HTTP/1.1", "200"),
        ("GET /no/such/path HTTP/1.1", "404"),
        ("POST /api/info HTTP/1.1\r\nContent-Length: 0", "401"),
    ] {
        let response = exchange(addr, head, Some(sane)).await;
        assert!(response.starts_with(&format!("HTTP/1.1 {status} ")), "{head}: {response}");
        assert_eq!(request_id_of(&response).as_deref(), Some(sane), "{head}: echoed");
        assert_generated(request_id_of(&exchange(addr, head, None).await), &format!("{head}, none sent"));
        for insane in [too_long.as_str(), "two words", "caf\u{e9}"] {
            let response = exchange(addr, head, Some(insane)).await;
            assert_generated(request_id_of(&response), &format!("{head}, {insane:?} sent"));
        }
    }
    let head = sse_head(addr, Some(sane)).await;
    assert!(head.starts_with("HTTP/1.1 200 ") && head.contains("text/event-stream"), "{head}");
    assert_eq!(request_id_of(&head).as_deref(), Some(sane), "SSE: echoed");
    assert_generated(request_id_of(&sse_head(addr, None).await), "SSE, none sent");
    assert_generated(request_id_of(&sse_head(addr, Some("two words")).await), "SSE, insane");
    hub.shutdown().await;
}

/// The `hub` binary, killed when dropped, with its stderr lines on a channel.
pub struct HubProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl HubProcess {
    /// Starts the binary with JSON logs at `hub=debug` on an ephemeral port;
    /// returns it with the address it listens on.
    fn start() -> (HubProcess, SocketAddr) {
        HubProcess::start_with(&[], &[])
    }

    /// [`HubProcess::start`] with more flags and environment variables (the
    /// `OTEL_*` ones of the process are removed first).
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> (HubProcess, SocketAddr) {
        let defaults =
            ["--allow-anonymous", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "hub=debug"];
        let all: Vec<&str> = defaults.iter().chain(args).copied().collect();
        HubProcess::start_exact(&all, env)
    }

    /// Starts the binary with exactly `args`, which must give JSON logs at
    /// info or below (the listening line is read from them).
    pub fn start_exact(args: &[&str], env: &[(&str, &str)]) -> (HubProcess, SocketAddr) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hub"));
        command.args(args).env_remove("RUST_LOG");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hub binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut hub = HubProcess { child, lines };
        let listening = hub.wait_for("the listening line", |line| {
            line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("listening on http://"))
        });
        let message = listening["fields"]["message"].as_str().unwrap_or_default();
        let addr = message["listening on http://".len()..].parse().expect("the logged address parses");
        (hub, addr)
    }

    /// Asks the hub to stop (SIGTERM) and waits until it has exited.
    pub fn terminate(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -TERM: {status}");
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("the hub's status").is_none() {
            assert!(Instant::now() < deadline, "the hub did not exit within {WAIT:?} of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The first JSON log line from now on that `matches`, within [`WAIT`].
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no log line for {what}: {seen:#?}"));
            let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            if matches(&parsed) {
                return parsed;
            }
            seen.push(line);
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `connection` span of a JSON log line, if it has one.
fn connection_span(line: &Value) -> Option<&Value> {
    line["spans"].as_array()?.iter().find(|span| span["name"] == "connection")
}

/// Lines logged for a WebSocket connection, by its session ("connected") and
/// by its transport task ("undecodable frame"), carry its client id, user and
/// transport in the `connection` span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_of_a_connection_carry_its_client_id() {
    let (mut hub, addr) = HubProcess::start();
    let mut client = WsClient::open(addr, Encoding::Json).await;
    let connected = client.connect("").await.expect("anonymous connect succeeds");
    let mut line_of_ours = |message: &str| {
        let line = tokio::task::block_in_place(|| {
            hub.wait_for(message, |line| {
                line["fields"]["message"] == message
                    && connection_span(line).is_some_and(|span| span["client"] == connected.client.as_str())
            })
        });
        let span = connection_span(&line).expect("found by its connection span");
        assert_eq!(span["transport"], "websocket", "{line}");
        assert_eq!(span["user"], "", "{line}");
    };
    line_of_ours("connected");
    client.send_raw(Message::text("not a command")).await;
    assert_eq!(client.expect_close().await.0, 3501, "an undecodable frame closes the connection");
    line_of_ours("undecodable frame");
}

/// With OpenTelemetry on, a line logged inside a traced span carries the
/// OpenTelemetry `trace_id` and `span_id` first: the trace of the request's
/// `traceparent`, and the id of the span that is exported (the topic's
/// `publish` span, a child of the request span).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_of_a_traced_publication_carry_its_ids() {
    let mut collector = OtlpReceiver::start().await;
    let endpoint = collector.endpoint();
    let (mut hub, addr) = HubProcess::start_with(
        &["--api-key", API_KEY, "--otel-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let response = traced_publish(addr, "news", Some(&format!("00-{trace_id}-b7ad6b7169203331-01"))).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let line =
        tokio::task::block_in_place(|| hub.wait_for("published", |line| line["fields"]["message"] == "published"));
    assert_eq!(line["trace_id"], trace_id, "{line}");
    let span_id = line["span_id"].as_str().unwrap_or_else(|| panic!("no span_id: {line}")).to_owned();
    assert!(span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    assert_ne!(span_id, "b7ad6b7169203331", "the hub's own span, not the caller's");
    let publish = collector.span_named("publish").await;
    assert_eq!((publish.trace_id.as_str(), publish.span_id.as_str()), (trace_id, span_id.as_str()));
    hub.terminate();
    let stopped =
        tokio::task::block_in_place(|| hub.wait_for("hub stopped", |line| line["fields"]["message"] == "hub stopped"));
    assert!(stopped.get("trace_id").is_none() && stopped.get("span_id").is_none(), "outside any span: {stopped}");
}
