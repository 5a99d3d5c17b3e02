//! OpenTelemetry: the `hub` binary with `--otel-endpoint` exports its spans
//! over OTLP/HTTP to a small collector written here ([`OtlpReceiver`]: POST
//! `/v1/traces`, protobuf bodies), continuing the W3C `traceparent` an API
//! caller sent: request span → topic `publish` span, in the caller's trace.
//! The exporter flushes at shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::helpers::{raw_response, WAIT};
use crate::logging::HubProcess;

/// The API key the hubs of these tests run with.
pub const API_KEY: &str = "otel-test-key";

/// One span as the collector received it; ids in lower-case hex, attribute
/// values as text.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// The attributes of the resource that exported it (`service.name`, ...).
    pub resource: BTreeMap<String, String>,
}

/// A minimal OTLP/HTTP collector on 127.0.0.1: takes `POST /v1/traces`
/// (HTTP/1.1, keep-alive, `Content-Length` bodies of protobuf
/// `ExportTraceServiceRequest`s), answers 200 with an empty response, and
/// hands every span it decoded to the test.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: mpsc::Receiver<ReceivedSpan>,
    /// Spans received but not yet asked for.
    seen: Vec<ReceivedSpan>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let addr = listener.local_addr().expect("the collector's address");
        let (send, spans) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, send.clone()));
            }
        });
        OtlpReceiver { addr, spans, seen: Vec::new() }
    }

    /// The base URL to configure as `otel.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first span named `name` received so far or within [`WAIT`].
    pub async fn span_named(&mut self, name: &str) -> ReceivedSpan {
        self.span_where(name, |span| span.name == name).await
    }

    /// The first span that `matches`, received so far or within [`WAIT`].
    pub async fn span_where(&mut self, what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        if let Some(span) = self.seen.iter().find(|span| matches(span)) {
            return span.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let span = tokio::time::timeout_at(deadline, self.spans.recv())
                .await
                .unwrap_or_else(|_| panic!("no span {what} within {WAIT:?}; received: {:#?}", self.seen))
                .expect("the collector runs");
            self.seen.push(span.clone());
            if matches(&span) {
                return span;
            }
        }
    }
}

/// One collector connection: requests until the exporter closes it.
async fn serve(mut stream: TcpStream, spans: mpsc::Sender<ReceivedSpan>) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
        let answer = if request_line.starts_with("post /v1/traces ") {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("a protobuf export request");
            for span in spans_of(request) {
                let _ = spans.send(span).await;
            }
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = attributes(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /api/publish` of `{"n":1}` into `channel`, with `traceparent` when
/// given; the whole response.
pub async fn traced_publish(addr: SocketAddr, channel: &str, traceparent: Option<&str>) -> String {
    let body = format!(r#"{{"channel":"{channel}","data":{{"n":1}}}}"#);
    let header = traceparent.map(|value| format!("traceparent: {value}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n\
         {header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_response(addr, &request).await
}

/// An API publish with a `traceparent` is exported as one trace, the
/// caller's: the request span is the child of the caller's span, the
/// topic's `publish` span (channel, offset, subscribers) the child of the
/// request span; the resource names the service (`OTEL_SERVICE_NAME`). A
/// publish without `traceparent` starts a trace of its own. The batch
/// processor's delay is a minute here, so the spans arrive through the flush
/// at shutdown (SIGTERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_publish_spans_continue_the_callers_trace() {
    let mut collector = OtlpReceiver::start().await;
    let endpoint = collector.endpoint();
    let (mut hub, addr) = HubProcess::start_with(
        &["--api-key", API_KEY, "--otel-endpoint", &endpoint],
        &[("OTEL_SERVICE_NAME", "hub-under-test"), ("OTEL_BSP_SCHEDULE_DELAY", "60000")],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let response = traced_publish(addr, "news", Some(&format!("00-{trace_id}-{parent_id}-01"))).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let response = traced_publish(addr, "sports", None).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    tokio::task::block_in_place(|| hub.terminate());

    let request =
        collector.span_where("request in the caller's trace", |s| s.name == "request" && s.trace_id == trace_id).await;
    assert_eq!(request.parent_span_id, parent_id, "the request span is the child of the caller's: {request:#?}");
    assert_eq!(request.attributes.get("path").map(String::as_str), Some("/api/publish"), "{request:#?}");
    assert_eq!(request.resource.get("service.name").map(String::as_str), Some("hub-under-test"), "{request:#?}");
    assert!(request.resource.contains_key("service.instance.id"), "{request:#?}");

    let publish = collector.span_where("publish of news", |s| s.name == "publish" && s.trace_id == trace_id).await;
    assert_eq!(publish.parent_span_id, request.span_id, "publish is the child of the request span: {publish:#?}");
    assert_eq!(publish.attributes.get("channel").map(String::as_str), Some("news"), "{publish:#?}");
    assert!(publish.attributes.contains_key("offset"), "{publish:#?}");
    assert_eq!(publish.attributes.get("subscribers").map(String::as_str), Some("0"), "{publish:#?}");

    let other = collector
        .span_where("publish of sports", |s| {
            s.name == "publish" && s.attributes.get("channel").is_some_and(|c| c == "sports")
        })
        .await;
    assert_ne!(other.trace_id, trace_id, "no traceparent: a trace of its own");
    let root = collector.span_where("its request", |s| s.name == "request" && s.trace_id == other.trace_id).await;
    assert_eq!(root.parent_span_id, "", "a request without traceparent is a root span: {root:#?}");
    assert_eq!(other.parent_span_id, root.span_id);
}
