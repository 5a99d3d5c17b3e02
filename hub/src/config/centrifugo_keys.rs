//! The Centrifugo v6 keys, family by family (Centrifugo's `internal/configtypes`), and
//! what each becomes in the hub's config. The lists are exhaustive for the families the
//! hub maps (a key missing from them is an unknown key); families the hub does not have
//! (`engine` options, `consumers`, `admin`, ...) are one line each.

use serde_json::Value as Json;

use super::Mapper;
use super::Rule::{self, Feature, Refuse, Silent, Warn};

const MAP: Rule = Rule::Map;

pub(super) const MAP_SUBSCRIPTIONS: &str =
    "not supported (map subscriptions); the namespace is served as a stream namespace";
pub(super) const POSITIONING: &str =
    "not supported (positioning): the hub does not check a subscriber's stream position";
const ONE_ADDRESS: &str = "not supported: the hub serves every endpoint on one address (listen)";
const BODY_LIMIT: &str =
    "not supported: the hub takes POST bodies up to max_frame_bytes (at least 64 KiB), as the other transports";
const TLS: &str = "not supported: the hub serves plain HTTP; terminate TLS in a proxy in front of it";

pub(super) const TOP: &[(&str, Rule)] = &[
    ("http_server", MAP),
    ("log", MAP),
    ("engine", MAP),
    ("broker", MAP),
    ("presence_manager", MAP),
    ("map_broker", Warn(MAP_SUBSCRIPTIONS)),
    ("controller", Warn("not supported: the hub's nodes talk through RabbitMQ (amqp_url)")),
    ("shared_poll", Warn("not supported (shared poll subscriptions)")),
    ("client", MAP),
    ("channel", MAP),
    // Both are read after the walk (an RPC proxy may be one of the named proxies).
    ("rpc", Silent),
    ("proxies", Silent),
    ("http_api", MAP),
    ("grpc_api", Feature("not supported: the server API is HTTP only")),
    ("consumers", Warn("not supported: backends publish over AMQP (p.publish) or the HTTP server API")),
    ("websocket", MAP),
    ("sse", MAP),
    ("http_stream", MAP),
    ("webtransport", Feature("not supported (WebTransport)")),
    ("uni_sse", MAP),
    ("uni_http_stream", Feature("not supported (unidirectional HTTP streaming); uni_sse is served")),
    ("uni_websocket", Feature("not supported (unidirectional WebSocket); uni_sse is served")),
    ("uni_grpc", Feature("not supported (unidirectional gRPC); uni_sse is served")),
    ("emulation", MAP),
    ("admin", Feature("not supported: the hub has no admin console yet")),
    ("prometheus", MAP),
    ("health", MAP),
    ("swagger", Feature("not supported: the hub describes its API at /api/openapi.json and /api/docs")),
    ("debug", Feature("not supported (pprof endpoints)")),
    ("init", Feature("not supported (connection init endpoint)")),
    ("opentelemetry", MAP),
    ("graphite", Feature("not supported (Graphite export); see prometheus")),
    // The hub sends no usage statistics.
    ("usage_stats", Silent),
    ("node", MAP),
    ("shutdown", MAP),
    ("pid_file", Warn("not supported: the hub writes no PID file")),
    ("enable_unreleased_features", Warn("no effect on the hub")),
];

pub(super) fn top(m: &mut Mapper, name: &str, key: &str, value: &Json) {
    match name {
        "http_server" => http_server(m, key, value),
        "log" => m.walk(key, value, &[("level", MAP), ("file", Warn("not supported: the hub logs to stderr"))], log),
        "engine" => engine(m, key, value, false),
        "broker" | "presence_manager" => engine(m, key, value, true),
        "client" => client(m, key, value),
        "channel" => super::channels::channel(m, key, value),
        "http_api" => http_api(m, key, value),
        "websocket" => websocket(m, key, value),
        "sse" => transport(m, key, value, "/connection/sse"),
        "http_stream" => transport(m, key, value, "/connection/http_stream"),
        "uni_sse" => transport(m, key, value, "/connection/uni_sse"),
        "emulation" => transport(m, key, value, "/emulation"),
        "prometheus" => prometheus(m, key, value),
        "health" => m.walk(key, value, &[("enabled", Silent), ("handler_prefix", MAP)], |m, _, key, value| {
            prefix(m, key, value, "/health")
        }),
        "opentelemetry" => m.walk(
            key,
            value,
            &[
                // The hub exports spans when OTEL_EXPORTER_OTLP_ENDPOINT is set, as Centrifugo.
                ("enabled", Silent),
                ("api", Warn("not supported: server API calls have spans only for publish")),
                ("consuming", Warn("not supported: the hub has no consumers")),
                ("google_cloud_adc_auth", Warn("not supported: the OTLP exporter sends no Google credentials")),
            ],
            |_, _, _, _| {},
        ),
        "node" => m.walk(
            key,
            value,
            &[("name", MAP), ("info_metrics_aggregate_interval", Warn("not supported (no metrics aggregation)"))],
            |m, _, key, value| m.set_string(&["node_name"], key, value),
        ),
        "shutdown" => m.walk(key, value, &[("timeout", MAP)], |m, _, key, value| {
            m.set_duration(&["shutdown_timeout"], key, value)
        }),
        _ => {}
    }
}

fn log(m: &mut Mapper, _: &str, key: &str, value: &Json) {
    let Some(level) = m.string(key, value) else {
        return;
    };
    let level = level.to_ascii_lowercase();
    let filter = match level.as_str() {
        "" => return,
        "trace" | "debug" | "info" | "warn" | "error" => level.clone(),
        "fatal" => {
            m.warn(key, value, "partly supported: mapped to log_level = \"error\" (the hub has no fatal level)");
            "error".to_owned()
        }
        "none" => "off".to_owned(),
        _ => return m.bad(key, "must be one of trace, debug, info, warn, error, fatal, none"),
    };
    m.set(&["log_level"], Json::from(filter));
}

fn http_server(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("address", MAP),
        ("port", MAP),
        ("internal_address", Warn(ONE_ADDRESS)),
        ("internal_port", Warn(ONE_ADDRESS)),
        // Refused below when enabled.
        ("tls", Silent),
        ("tls_autocert", Silent),
        ("tls_external", Refuse(TLS)),
        ("internal_tls", Feature(ONE_ADDRESS)),
        ("http3", Feature("not supported (HTTP/3)")),
    ];
    let (mut address, mut port) = (String::new(), 8000u64);
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "address" => address = m.string(key, value).unwrap_or_default(),
        _ => port = m.uint(key, value).unwrap_or(port),
    });
    if let Some(tls) = value.get("tls").filter(|tls| tls.get("enabled").and_then(Json::as_bool) == Some(true)) {
        m.refuse(&format!("{key}.tls"), tls, TLS);
    }
    if let Some(tls) = value.get("tls_autocert").filter(|t| t.get("enabled").and_then(Json::as_bool) == Some(true)) {
        m.refuse(&format!("{key}.tls_autocert"), tls, TLS);
    }
    if port > u64::from(u16::MAX) {
        return m.bad(&format!("{key}.port"), "must be a port number, 0 to 65535");
    }
    let host = if address.is_empty() { "0.0.0.0".to_owned() } else { address };
    // An IPv6 address needs brackets before the port.
    let listen = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    m.set(&["listen"], Json::from(listen));
}

/// `engine` (`for_part` false) or `broker` / `presence_manager` (on only with `enabled`).
fn engine(m: &mut Mapper, key: &str, value: &Json, for_part: bool) {
    let Some(table) = m.table(key, value) else {
        return;
    };
    let on = !for_part || table.get("enabled").and_then(Json::as_bool) == Some(true);
    let kind = table.get("type").and_then(Json::as_str).unwrap_or("memory");
    if on && !matches!(kind, "" | "memory") {
        let line = format!("{key}.type");
        m.warn(&line, &Json::from(kind), "not supported: the hub's nodes share channels through RabbitMQ (amqp_url)");
    }
}

fn client(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("proxy", MAP),
        ("allowed_origins", MAP),
        ("token", MAP),
        ("subscription_token", MAP),
        ("allow_anonymous_connect_without_token", MAP),
        (
            "disallow_anonymous_connection_tokens",
            Refuse("not supported: the hub takes a connection token without sub as an anonymous client"),
        ),
        ("ping_interval", MAP),
        ("pong_timeout", MAP),
        ("expired_close_delay", MAP),
        ("expired_sub_close_delay", MAP),
        ("stale_close_delay", MAP),
        ("channel_limit", MAP),
        ("queue_max_size", MAP),
        ("presence_update_interval", Warn("not supported: presence lasts as long as the subscription")),
        ("concurrency", Warn("not supported: the hub runs a connection's commands one after another")),
        ("channel_position_check_delay", Warn(POSITIONING)),
        ("channel_position_max_time_lag", Warn(POSITIONING)),
        ("connection_limit", MAP),
        ("user_connection_limit", MAP),
        (
            "connection_rate_limit",
            Warn("not supported: no limit on new connections per second (see client_connection_limit)"),
        ),
        ("connect_include_server_time", Warn("not supported: the connect reply carries no server time")),
        ("history_max_publication_limit", MAP),
        ("recovery_max_publication_limit", MAP),
        ("insecure_skip_token_signature_verify", Refuse("not supported: the hub always verifies token signatures")),
        ("user_id_http_header", Refuse("not supported: the hub takes the user from the token's sub claim")),
        ("insecure", MAP),
        ("subscribe_to_user_personal_channel", MAP),
        (
            "connect_code_to_unidirectional_disconnect",
            Warn("not supported: uni_sse closes with the connect error's own code"),
        ),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "proxy" => super::proxies::client_proxy(m, key, value),
        "allowed_origins" => {
            if let Some(origins) = m.strings(key, value) {
                m.set(&["allowed_origins"], Json::from(origins));
            }
        }
        "token" => token(m, key, value),
        "subscription_token" if value.get("enabled").and_then(Json::as_bool) == Some(true) => {
            let reason = "not supported: the hub verifies subscription tokens with the keys of client.token";
            m.refuse(key, &Json::Null, reason);
        }
        "allow_anonymous_connect_without_token" => m.set_bool(&["allow_anonymous"], key, value),
        "ping_interval" => m.set_duration(&["ping_interval"], key, value),
        "pong_timeout" => m.set_duration(&["pong_timeout"], key, value),
        "expired_close_delay" => m.set_duration(&["client_expired_close_delay"], key, value),
        "expired_sub_close_delay" => m.set_duration(&["client_expired_sub_close_delay"], key, value),
        "stale_close_delay" => m.set_duration(&["connect_timeout"], key, value),
        "channel_limit" => m.set_uint(&["max_channels_per_client"], key, value),
        "queue_max_size" => m.set_uint(&["client_outbox_bytes"], key, value),
        "connection_limit" => m.set_uint(&["client_connection_limit"], key, value),
        "user_connection_limit" => m.set_uint(&["client_user_connection_limit"], key, value),
        "recovery_max_publication_limit" => m.set_uint(&["client_recovery_max_publication_limit"], key, value),
        "history_max_publication_limit" if m.uint(key, value).is_some_and(|n| n != 300) => {
            m.warn(key, value, "not supported: a history call returns up to the namespace's history_size");
        }
        "insecure" if m.boolean(key, value) == Some(true) => {
            m.insecure = true;
            m.warn(
                key,
                value,
                "partly supported: mapped to allow_anonymous, and allow_subscribe and allow_publish \
                 in [channel] and every namespace (the hub has no insecure mode)",
            );
        }
        "subscribe_to_user_personal_channel" => {
            let rules = [("enabled", MAP), ("personal_channel_namespace", MAP), ("single_connection", MAP)];
            m.walk(key, value, &rules, |m, name, key, value| match name {
                "enabled" => m.set_bool(&["personal_channel", "enabled"], key, value),
                "single_connection" => m.set_bool(&["personal_channel", "single_connection"], key, value),
                _ => m.set_string(&["personal_channel", "namespace"], key, value),
            });
        }
        _ => {}
    });
}

fn token(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("hmac_secret_key", MAP),
        (
            "hmac_previous_secret_key",
            Refuse(
                "not supported: the hub checks one HMAC secret; tokens signed with the previous one would be refused",
            ),
        ),
        ("hmac_previous_secret_key_valid_until", Silent),
        ("rsa_public_key", MAP),
        ("ecdsa_public_key", MAP),
        ("jwks_public_endpoint", MAP),
        ("audience", MAP),
        ("audience_regex", Refuse("not supported: the hub checks an exact audience (client.token.audience)")),
        ("issuer", MAP),
        ("issuer_regex", Refuse("not supported: the hub checks an exact issuer (client.token.issuer)")),
        ("user_id_claim", MAP),
        (
            "insecure_skip_jwks_endpoint_safety_check",
            Warn("not supported: the hub fetches the JWKS from the endpoint as given"),
        ),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "hmac_secret_key" => m.set_string(&["token", "hmac_secret"], key, value),
        "rsa_public_key" => m.set_string(&["token", "rsa_public_key"], key, value),
        "ecdsa_public_key" => m.set_string(&["token", "ecdsa_public_key"], key, value),
        "jwks_public_endpoint" => m.set_string(&["token", "jwks_url"], key, value),
        "audience" => m.set_string(&["token", "audience"], key, value),
        "issuer" => m.set_string(&["token", "issuer"], key, value),
        _ => {
            if m.string(key, value).is_some_and(|claim| !matches!(claim.as_str(), "" | "sub")) {
                m.refuse(key, value, "not supported: the hub takes the user from the sub claim");
            }
        }
    });
}

fn http_api(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("disabled", MAP),
        ("handler_prefix", MAP),
        ("key", MAP),
        ("error_mode", Warn("not supported: API errors come in the body of a 200 answer, as by default")),
        // The hub serves the API on its one address, which is what `external` asks.
        ("external", Silent),
        ("insecure", Refuse("not supported: the hub's server API always needs a key (http_api.key)")),
    ];
    let disabled = value.get("disabled").and_then(Json::as_bool) == Some(true);
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "disabled" if m.boolean(key, value) == Some(true) => {
            m.warn(key, value, "partly supported: no api_key is set, so /api answers every request with 401");
        }
        "key" if !disabled => m.set_string(&["api_key"], key, value),
        "handler_prefix" => prefix(m, key, value, "/api"),
        _ => {}
    });
}

fn websocket(m: &mut Mapper, key: &str, value: &Json) {
    const BUFFERS: Rule = Warn("not supported: the hub sizes its socket buffers itself");
    const COMPRESSION: Rule = Warn("not supported (permessage-deflate)");
    let rules = [
        ("disabled", Warn("not supported: the hub always serves WebSocket")),
        ("handler_prefix", MAP),
        ("compression", COMPRESSION),
        ("compression_min_size", COMPRESSION),
        ("compression_level", Silent),
        ("read_buffer_size", BUFFERS),
        ("use_write_buffer_pool", BUFFERS),
        ("write_buffer_size", BUFFERS),
        ("write_timeout", MAP),
        ("message_size_limit", MAP),
        ("decompressed_message_size_limit", Silent),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "handler_prefix" => prefix(m, key, value, "/connection/websocket"),
        "write_timeout" => {
            if m.duration(key, value).is_some_and(|d| d.as_millis() != 1000) {
                m.warn(key, value, "not supported: the hub's write deadline is fixed");
            }
        }
        _ => m.set_uint(&["max_frame_bytes"], key, value),
    });
}

/// `sse`, `http_stream`, `uni_sse`, `emulation`: the hub always serves them, at `path`.
fn transport(m: &mut Mapper, key: &str, value: &Json, path: &'static str) {
    let rules = [
        ("enabled", Silent),
        ("handler_prefix", MAP),
        ("max_request_body_size", MAP),
        ("connect_code_to_http_response", Warn("not supported: uni_sse answers 200 and closes with the error's code")),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "handler_prefix" => prefix(m, key, value, path),
        _ => {
            if m.uint(key, value).is_some_and(|n| n != 65536) {
                m.warn(key, value, BODY_LIMIT);
            }
        }
    });
}

fn prometheus(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("enabled", MAP),
        ("handler_prefix", MAP),
        ("instrument_http_handlers", Warn("not supported: the hub has no per-handler HTTP metrics")),
        ("recovered_publications_histogram", Warn("not supported (this histogram)")),
        ("native_histograms", Warn("not supported: the hub's histograms have fixed buckets")),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "enabled" => m.set_bool(&["prometheus"], key, value),
        _ => prefix(m, key, value, "/metrics"),
    });
}

/// A `handler_prefix`: the hub's own path passes silently, another one is a warning.
fn prefix(m: &mut Mapper, key: &str, value: &Json, path: &str) {
    if m.string(key, value).is_some_and(|given| !given.is_empty() && given != path) {
        m.warn(key, value, format!("not supported: the hub serves it at {path}"));
    }
}
