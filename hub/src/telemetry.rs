//! OpenTelemetry: W3C trace context in and out, and the OTLP span exporter.
//!
//! Off unless `otel.endpoint` is set ([`OtelConfig`]). Off, nothing here runs
//! but one relaxed atomic load per HTTP request and per publication: no
//! exporter, no OpenTelemetry layer, no extra spans, headers not read,
//! [`TraceContext`]s stay empty.
//!
//! On ([`Telemetry::start`], called once by the binary):
//! - the `tracing` spans of the hub become OpenTelemetry spans (the
//!   `tracing-opentelemetry` layer from [`Telemetry::layer`]), exported over
//!   OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` by a batch span processor
//!   on a thread of its own. Its queue is bounded ([`MAX_QUEUE_SPANS`]): when
//!   it is full, finished spans are dropped (counted by the SDK and reported
//!   once at shutdown), never waited for. Sampling: parent-based, roots with
//!   `otel.sample_ratio`.
//! - [`TraceContext`] carries a trace from where it enters (a `traceparent`
//!   header of an HTTP request or of an AMQP message) to where the work
//!   happens (the channel's topic actor, the channel's owner on another
//!   node). It crosses actor mailboxes as a value and nodes as AMQP headers
//!   (`traceparent`, `tracestate`), which nodes of older versions ignore.
//! - [`Telemetry::shutdown`] flushes what is queued, bounded in time.
//!
//! Spans are made per request and per publication, never per delivered
//! message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::TokioCurrentThread;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header that names the parent span (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace state, carried along as is.
pub const TRACESTATE: &str = "tracestate";
/// Finished spans waiting for export at most (the SDK's default; the
/// standard `OTEL_BSP_MAX_QUEUE_SIZE` changes it); past it they are dropped.
pub const MAX_QUEUE_SPANS: usize = 2048;
/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether an exporter runs (set once by [`Telemetry::start`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Unit tests of propagation turn the header handling on without an exporter.
#[cfg(test)]
pub(crate) fn enable_for_tests() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether OpenTelemetry is on in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `[otel]`: the OTLP exporter. Off while `endpoint` is unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// OTLP/HTTP base URL of a collector (`http://127.0.0.1:4318`); spans go
    /// to `<endpoint>/v1/traces`. Unset = OpenTelemetry off. The standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variable sets it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME` sets it too).
    pub service_name: String,
    /// Share of new traces (those without a sampled parent) that are
    /// recorded, 0.0 to 1.0; a parent's decision is always followed.
    pub sample_ratio: f64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig { endpoint: None, service_name: "hub".to_owned(), sample_ratio: 1.0 }
    }
}

impl OtelConfig {
    /// Every invalid value as (key under `otel.`, reason).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint);
            if !url.is_ok_and(|url| url.scheme() == "http" && url.has_host()) {
                out.push((
                    "endpoint",
                    "must be an http:// URL (the exporter speaks plain HTTP: use a local collector)",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            out.push(("service_name", "must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            out.push(("sample_ratio", "must be between 0.0 and 1.0"));
        }
        out
    }

    /// The URL spans are posted to: the endpoint with `/v1/traces`.
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint.as_ref().map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}

/// The running exporter: the tracer provider, flushed by [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct TelemetryError(String);

impl Telemetry {
    /// Starts the exporter when `config.endpoint` is set (`None` otherwise)
    /// and turns [`TraceContext`] on. `node` becomes `service.instance.id`.
    pub fn start(config: &OtelConfig, node: &str) -> Result<Option<Telemetry>, TelemetryError> {
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        // The SDK's defaults (queue of MAX_QUEUE_SPANS, batches of 512, every
        // 5 s) unless the standard OTEL_BSP_* variables say otherwise.
        let batch = BatchConfigBuilder::default().build();
        let processor = BatchSpanProcessor::builder(exporter, TokioCurrentThread).with_batch_config(batch).build();
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.instance.id", node.to_owned()))
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
            .with_resource(resource)
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry { provider }))
    }

    /// The `tracing` layer that turns the hub's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("hub")).with_tracked_inactivity(false)
    }

    /// Exports what is queued and stops the exporter; gives up after `limit`
    /// (the processor's thread is left to finish on its own).
    pub async fn shutdown(self, limit: Duration) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let provider = self.provider;
        std::thread::spawn(move || {
            let _ = done.send(provider.shutdown());
        });
        match tokio::time::timeout(limit, finished).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "OpenTelemetry exporter: shutdown failed"),
            Ok(Err(_)) | Err(_) => tracing::warn!("OpenTelemetry exporter: spans not flushed within {limit:?}"),
        }
    }
}

/// A trace context carried along with a piece of work (a publication): the
/// span it continues. Empty when OpenTelemetry is off or nothing is traced.
/// Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct TraceContext(Option<opentelemetry::Context>);

impl TraceContext {
    /// The current `tracing` span's context (empty when off or untraced).
    pub fn current() -> TraceContext {
        if !enabled() {
            return TraceContext(None);
        }
        TraceContext::valid(tracing::Span::current().context())
    }

    /// The context named by W3C headers, read with `get` (header name in
    /// lower case); empty when off, absent or malformed.
    pub fn from_headers(get: impl Fn(&str) -> Option<String>) -> TraceContext {
        if !enabled() {
            return TraceContext(None);
        }
        let Some(parent) = get(TRACEPARENT) else {
            return TraceContext(None);
        };
        struct Headers {
            parent: String,
            state: Option<String>,
        }
        impl Extractor for Headers {
            fn get(&self, key: &str) -> Option<&str> {
                match key {
                    TRACEPARENT => Some(&self.parent),
                    TRACESTATE => self.state.as_deref(),
                    _ => None,
                }
            }
            fn keys(&self) -> Vec<&str> {
                vec![TRACEPARENT, TRACESTATE]
            }
        }
        let headers = Headers { parent, state: get(TRACESTATE) };
        TraceContext::valid(TraceContextPropagator::new().extract(&headers))
    }

    /// The W3C headers (`traceparent`, `tracestate` when not empty) that
    /// name this context, given to `set`; nothing when empty.
    pub fn to_headers(&self, mut set: impl FnMut(&'static str, String)) {
        let Some(context) = &self.0 else {
            return;
        };
        struct Headers<'s, F>(&'s mut F);
        impl<F: FnMut(&'static str, String)> Injector for Headers<'_, F> {
            fn set(&mut self, key: &str, value: String) {
                match key {
                    TRACEPARENT => (self.0)(TRACEPARENT, value),
                    TRACESTATE if !value.is_empty() => (self.0)(TRACESTATE, value),
                    _ => {}
                }
            }
        }
        TraceContextPropagator::new().inject_context(context, &mut Headers(&mut set));
    }

    /// Whether there is a context to continue.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// A span continuing this context: `make()` (which creates it) with this
    /// context as its parent; a disabled span when the context is empty, so
    /// untraced work makes no span at all.
    pub fn child(&self, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
        let Some(context) = &self.0 else {
            return tracing::Span::none();
        };
        let span = make();
        // Fails only for a span the layer does not know (filtered out).
        let _ = span.set_parent(context.clone());
        span
    }

    /// Makes `span` a child of this context (nothing when empty).
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(context) = &self.0 {
            let _ = span.set_parent(context.clone());
        }
    }

    fn valid(context: opentelemetry::Context) -> TraceContext {
        let valid = context.span().span_context().is_valid();
        TraceContext(valid.then_some(context))
    }
}

/// The OpenTelemetry (trace id, span id) of a `tracing` span, as lower-case
/// hex, when the OpenTelemetry layer runs in `dispatch` and knows the span.
pub fn ids_of(span: &tracing::span::Id, dispatch: &tracing::Dispatch) -> Option<(String, String)> {
    let context = tracing_opentelemetry::get_otel_context(span, dispatch)?;
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

/// A log line format that puts the OpenTelemetry `trace_id` and `span_id`
/// of the event's span first in each JSON object, around the JSON format
/// `F` (lines outside a span, or with OpenTelemetry off, are `F`'s alone).
/// The ids are those of the exported spans.
pub struct WithTraceIds<F>(pub F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    N: for<'writer> tracing_subscriber::fmt::FormatFields<'writer> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = match ctx.parent_span() {
            Some(span) if enabled() => tracing::dispatcher::get_default(|dispatch| ids_of(&span.id(), dispatch)),
            _ => None,
        };
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, tracing_subscriber::fmt::format::Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_endpoint_name_and_ratio() {
        assert!(OtelConfig::default().problems().is_empty());
        let bad =
            OtelConfig { endpoint: Some("https://collector:4318".into()), service_name: " ".into(), sample_ratio: 1.5 };
        let keys: Vec<_> = bad.problems().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["endpoint", "service_name", "sample_ratio"]);
        let good = OtelConfig { endpoint: Some("http://127.0.0.1:4318/".into()), ..Default::default() };
        assert!(good.problems().is_empty());
        assert_eq!(good.traces_url().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
    }
}
