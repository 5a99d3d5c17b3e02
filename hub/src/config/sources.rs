//! Where configuration values come from: the `--dev` preset, `HUB_*` environment
//! variables and command-line flags as figment layers, and the translation of figment
//! errors into [`ConfigError`]s that name the source (file, variable, flag) and the key.
//!
//! Guarantees: building a layer never fails and never panics; environment variables whose
//! first segment is not a config key are ignored; every figment error maps to a
//! `ConfigError` with the origin of the offending value.

use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::{ChannelOptions, ConfigArgs, ConfigError, DeltaType, LogFormat};

/// Top-level keys, so the environment layer only picks up `HUB_*` variables meant for us.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "node_name",
    "api_key",
    "allow_anonymous",
    "allowed_origins",
    "demo",
    "static_dir",
    "amqp_url",
    "amqp_prefix",
    "amqp_shards",
    "ping_interval",
    "pong_timeout",
    "connect_timeout",
    "client_expired_close_delay",
    "client_expired_sub_close_delay",
    "write_delay",
    "client_outbox_bytes",
    "client_recovery_max_publication_limit",
    "max_frame_bytes",
    "max_channels_per_client",
    "max_channel_length",
    "client_connection_limit",
    "client_user_connection_limit",
    "client_ip_connection_limit",
    "client_ip_header",
    "client_command_rate",
    "client_command_burst",
    "client_command_rate_disconnect_after",
    "idempotency_window",
    "shutdown_timeout",
    "prometheus",
    "log_format",
    "log_level",
    "dev",
    "token",
    "channel",
    "namespaces",
    "personal_channel",
    "otel",
    "proxy",
];

/// String-typed keys: their environment values are taken verbatim (`HUB_API_KEY=123` is the
/// string "123", not a number).
pub(super) const STRING_KEYS: &[&str] = &[
    "listen",
    "static_dir",
    "amqp_url",
    "amqp_prefix",
    "node_name",
    "api_key",
    "log_level",
    "client_ip_header",
    "token.hmac_secret",
    "token.rsa_public_key",
    "token.ecdsa_public_key",
    "token.audience",
    "token.issuer",
    "token.jwks_url",
    "otel.endpoint",
    "otel.service_name",
    "proxy.connect.endpoint",
    "proxy.refresh.endpoint",
    "proxy.subscribe.endpoint",
    "proxy.publish.endpoint",
    "proxy.rpc.endpoint",
    "personal_channel.namespace",
];

/// The standard OpenTelemetry variables the hub honours, with their keys.
const OTEL_VARIABLES: &[(&str, &str)] =
    &[("OTEL_EXPORTER_OTLP_ENDPOINT", "endpoint"), ("OTEL_SERVICE_NAME", "service_name")];

const ENV_PREFIX: &str = "HUB_";
const ENV_SOURCE: &str = "environment variable";
const FLAGS_SOURCE: &str = "command-line flag";
const DEV_SOURCE: &str = "--dev preset";
const OTEL_ENV_SOURCE: &str = "OpenTelemetry environment variable";
const DEFAULTS_SOURCE: &str = "built-in defaults";

/// The `--dev` preset: everything on, so the SDK examples work against a bare `hub --dev`.
pub(super) fn dev_preset() -> impl Provider + Clone {
    let everything = ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        presence: true,
        join_leave: true,
        allow_publish: true,
        allow_subscribe: true,
        force_recovery: true,
        allow_user_limited_channels: false,
        allow_tags_filter: true,
        // Proxies need endpoints of the user's own.
        subscribe_proxy: false,
        publish_proxy: false,
        allowed_delta_types: vec![DeltaType::Fossil],
        delta_publish: false,
    };
    let mut dict = Dict::new();
    dict.insert("allow_anonymous".into(), Value::from(true));
    dict.insert("api_key".into(), Value::from("dev"));
    dict.insert("prometheus".into(), Value::from(true));
    dict.insert("allowed_origins".into(), Value::from(vec![Value::from("*")]));
    // The Vue demo at `/`, from the binary (any working directory).
    dict.insert("demo".into(), Value::from(true));
    dict.insert("channel".into(), channel_value(&everything));
    let mut namespaces = Dict::new();
    namespaces.insert("chat".into(), channel_value(&everything));
    dict.insert("namespaces".into(), Value::from(namespaces));
    Layer { metadata: Metadata::named(DEV_SOURCE), dict }
}

fn channel_value(options: &ChannelOptions) -> Value {
    let mut dict = Dict::new();
    dict.insert("history_size".into(), Value::from(options.history_size));
    dict.insert("history_ttl".into(), Value::from(humantime::format_duration(options.history_ttl).to_string()));
    for (key, on) in [
        ("presence", options.presence),
        ("join_leave", options.join_leave),
        ("allow_publish", options.allow_publish),
        ("allow_subscribe", options.allow_subscribe),
        ("force_recovery", options.force_recovery),
        ("allow_user_limited_channels", options.allow_user_limited_channels),
        ("allow_tags_filter", options.allow_tags_filter),
        ("delta_publish", options.delta_publish),
    ] {
        dict.insert(key.into(), Value::from(on));
    }
    let delta_types: Vec<Value> = options
        .allowed_delta_types
        .iter()
        .map(|t| match t {
            DeltaType::Fossil => Value::from("fossil"),
        })
        .collect();
    dict.insert("allowed_delta_types".into(), Value::from(delta_types));
    Value::from(dict)
}

/// A fixed dictionary of values with a name, as one figment layer.
#[derive(Clone)]
pub(super) struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    pub(super) fn new(metadata: Metadata, dict: Dict) -> Layer {
        Layer { metadata, dict }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// `HUB_A__B=v` becomes key `a.b`; values are parsed like TOML scalars (`true`, `8`, `25s`
/// as a string), except [`STRING_KEYS`], which are taken verbatim.
pub(super) fn env_layer<I: IntoIterator<Item = (String, String)>>(env: I) -> Layer {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
            let top = key.split("__").next().unwrap_or_default();
            TOP_LEVEL_KEYS.contains(&top).then_some((key, value))
        })
        .collect();
    vars.sort();
    let mut dict = Dict::new();
    for (key, raw) in vars {
        let path: Vec<String> = key.split("__").map(str::to_owned).collect();
        let value = if STRING_KEYS.contains(&path.join(".").as_str()) {
            Value::from(raw)
        } else {
            // Infallible: unparsable text becomes a string value.
            raw.parse::<Value>().unwrap_or_else(|_| Value::from(raw.clone()))
        };
        insert_nested(&mut dict, &path, value);
    }
    let metadata = Metadata::named(ENV_SOURCE)
        .interpolater(|_: &Profile, keys: &[&str]| format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase()));
    Layer { metadata, dict }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME` (when not empty)
/// as `otel.endpoint` and `otel.service_name`, below the `HUB_*` variables.
pub(super) fn otel_env_layer(env: &[(String, String)]) -> Layer {
    let mut otel = Dict::new();
    for (name, value) in env {
        if let Some((_, key)) = OTEL_VARIABLES.iter().find(|(variable, _)| variable == name) {
            if !value.trim().is_empty() {
                otel.insert((*key).to_owned(), Value::from(value.clone()));
            }
        }
    }
    let mut dict = Dict::new();
    if !otel.is_empty() {
        dict.insert("otel".into(), Value::from(otel));
    }
    let metadata = Metadata::named(OTEL_ENV_SOURCE).interpolater(|_: &Profile, keys: &[&str]| {
        let key = keys.last().copied().unwrap_or_default();
        OTEL_VARIABLES
            .iter()
            .find(|(_, k)| *k == key)
            .map_or_else(|| key.to_owned(), |(variable, _)| (*variable).to_owned())
    });
    Layer { metadata, dict }
}

fn insert_nested(dict: &mut Dict, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        dict.insert(first.clone(), value);
        return;
    }
    let entry = dict.entry(first.clone()).or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = entry {
        insert_nested(inner, rest, value);
    }
}

pub(super) fn flags_layer(args: &ConfigArgs) -> Layer {
    let mut dict = Dict::new();
    let mut set = |key: &str, value: Value| {
        dict.insert(key.to_owned(), value);
    };
    let duration = |d: Duration| Value::from(humantime::format_duration(d).to_string());
    if let Some(listen) = args.listen {
        set("listen", Value::from(listen.to_string()));
    }
    if let Some(key) = &args.api_key {
        set("api_key", Value::from(key.clone()));
    }
    if let Some(name) = &args.node_name {
        set("node_name", Value::from(name.clone()));
    }
    if args.allow_anonymous {
        set("allow_anonymous", Value::from(true));
    }
    if let Some(d) = args.ping_interval {
        set("ping_interval", duration(d));
    }
    if let Some(d) = args.pong_timeout {
        set("pong_timeout", duration(d));
    }
    if let Some(format) = args.log_format {
        let name = match format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        };
        set("log_format", Value::from(name));
    }
    if let Some(url) = &args.amqp_url {
        set("amqp_url", Value::from(url.clone()));
    }
    if let Some(endpoint) = &args.otel_endpoint {
        let mut otel = Dict::new();
        otel.insert("endpoint".into(), Value::from(endpoint.clone()));
        set("otel", Value::from(otel));
    }
    if let Some(level) = &args.log_level {
        set("log_level", Value::from(level.clone()));
    }
    if args.dev {
        set("dev", Value::from(true));
    }
    if let Some(secret) = &args.token_hmac_secret {
        let mut token = Dict::new();
        token.insert("hmac_secret".into(), Value::from(secret.clone()));
        set("token", Value::from(token));
    }
    let metadata = Metadata::named(FLAGS_SOURCE)
        .interpolater(|_: &Profile, keys: &[&str]| format!("--{}", keys.join("-").replace('_', "-")));
    Layer { metadata, dict }
}

/// Where a value came from, for error messages: the file path, `environment variable
/// HUB_X`, `command-line flag --x`, the dev preset, or the built-in defaults.
pub(super) fn origin(metadata: Option<&Metadata>, path: &[String]) -> String {
    let Some(metadata) = metadata else {
        return DEFAULTS_SOURCE.to_owned();
    };
    if let Some(Source::File(file)) = &metadata.source {
        return file.display().to_string();
    }
    if metadata.name == ENV_SOURCE || metadata.name == FLAGS_SOURCE || metadata.name == OTEL_ENV_SOURCE {
        return format!("{} {}", metadata.name, metadata.interpolate(&Profile::Default, path));
    }
    metadata.name.to_string()
}

pub(super) fn convert(error: figment::Error, figment: &Figment) -> ConfigError {
    let errors = error
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let reason = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key, expected one of: {}", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            let key = path.join(".");
            let metadata = figment.find_metadata(&key).or(e.metadata.as_ref());
            let origin = origin(metadata, &path);
            if path.is_empty() {
                ConfigError::Syntax { origin, reason }
            } else {
                ConfigError::Key { origin, key, reason }
            }
        })
        .collect();
    ConfigError::from_list(errors)
}
