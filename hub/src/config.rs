//! Configuration: every setting of a hub node, where it comes from, and its validation.
//!
//! This module owns [`Config`] and the layering that builds it. Later layers override
//! earlier ones, key by key:
//!
//! 1. built-in defaults ([`Config::default`]);
//! 2. the `--dev` preset, when `dev` is true in any later layer;
//! 3. the file given with `--config FILE` (or `HUB_CONFIG`): the hub's own TOML, or a
//!    Centrifugo v6 config (JSON, YAML or TOML) mapped onto the hub's keys, with a
//!    [`ConfigWarning`] for each Centrifugo key the hub supports only partly or not at all
//!    (see `config/centrifugo.rs` for how a file is recognised and the error/warning rule);
//! 4. the standard OpenTelemetry variables `OTEL_EXPORTER_OTLP_ENDPOINT` and
//!    `OTEL_SERVICE_NAME` (keys `otel.endpoint`, `otel.service_name`);
//! 5. environment variables `HUB_<KEY>`, nested keys joined with `__`
//!    (`HUB_PING_INTERVAL`, `HUB_TOKEN__HMAC_SECRET`, `HUB_NAMESPACES__CHAT__PRESENCE`);
//!    variables whose first segment is not a config key (e.g. `HUB_CONFIG`) are ignored;
//! 6. command-line flags ([`ConfigArgs`]).
//!
//! It guarantees that a [`Config`] returned by [`Config::load`] is valid: unknown keys,
//! wrong types and invalid values (a zero `ping_interval`, a namespace name with `:`, an
//! unparsable PEM key, ...) are refused with a [`ConfigError`] naming the source (file path,
//! environment variable or flag), the key and the reason. Loading never panics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Every setting of a hub node. Build one in code with `Config { .., ..Config::default() }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket server listens on.
    pub listen: SocketAddr,
    /// Name of this node, reported to clients in the connect reply and by the `info` API.
    pub node_name: String,
    /// Server API key (`X-API-Key`); `None` = the server API refuses everything with 401.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Clients may connect without a token (their user is `""`).
    pub allow_anonymous: bool,
    /// Browser origins allowed cross-origin (exact `https://host[:port]`, or `*`).
    /// Requests without `Origin` and same-origin requests are always allowed;
    /// others get 403 (WebSocket handshake included).
    pub allowed_origins: Vec<String>,
    /// Serve the demo app compiled into the binary at `/` (set by `--dev`);
    /// `static_dir`, when set, is served instead.
    pub demo: bool,
    /// A directory served at `/` (e.g. a rebuilt demo); `index.html` for `/`.
    /// It takes the place of the embedded demo. Without an `index.html`: a
    /// warning at start, nothing served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<std::path::PathBuf>,
    /// RabbitMQ URL (`amqp://user:pass@host:5672/%2f`): join every node on the
    /// same broker and prefix. None = one process, in-memory broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_url: Option<String>,
    /// Prefix of the exchanges and queues the hub declares.
    pub amqp_prefix: String,
    /// Number of shard queues channels are hashed onto (fixed for a cluster's life).
    pub amqp_shards: u16,
    /// Server ping period; the first ping is jittered.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long a client has to answer a ping before it is closed with 3012 "no pong".
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// A connection that sends no connect command within this time is closed (3502 stale).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Grace after a connection token's `exp` before the connection is closed with
    /// 3005 "connection expired", so that an SDK refreshing at `exp` (its `getToken`
    /// may take a while) keeps its connection. Centrifugo's `client.expired_close_delay`
    /// (v3/v4 `client_expired_close_delay`), default 25 s there and here. 0 = closed as
    /// soon as `exp` passes.
    #[serde(with = "humantime_serde")]
    pub client_expired_close_delay: Duration,
    /// The same grace for a subscription token's `exp`, after which the subscription
    /// ends with unsubscribe 2501 "subscription expired" (the SDK resubscribes with a
    /// new token). Centrifugo's `client.expired_sub_close_delay`, default 25 s. 0 = none.
    #[serde(with = "humantime_serde")]
    pub client_expired_sub_close_delay: Duration,
    /// How long a connection's writer waits after the first queued message
    /// before it writes, so that more messages share one frame and one send
    /// (higher throughput at high message rates, at the cost of this much
    /// latency). 0 = write at once.
    #[serde(with = "humantime_serde")]
    pub write_delay: Duration,
    /// Per-session outbox bound in bytes; a client whose queue is past it when
    /// the next message comes is closed with 3008 "slow". One message may pass
    /// it (at most `2 × client_outbox_bytes` queued), and no publication or
    /// reply is larger than it once encoded (see `crate::limits`).
    pub client_outbox_bytes: usize,
    /// Most publications a resubscribing client recovers in its subscribe
    /// reply (Centrifugo's key and default: 300); past it, or past
    /// `client_outbox_bytes`, the reply says `recovered: false`. 0 = no count limit.
    pub client_recovery_max_publication_limit: usize,
    /// Largest incoming frame in bytes.
    pub max_frame_bytes: usize,
    /// Most channels one client may be subscribed to.
    pub max_channels_per_client: usize,
    /// Longest channel name in bytes.
    pub max_channel_length: usize,
    /// Most connected clients on this node; one more is closed with 3504
    /// "connection limit". 0 = no limit (Centrifugo's `client_connection_limit`).
    pub client_connection_limit: usize,
    /// Most connected clients of one user (token `sub`) on this node; one
    /// more is closed with 3504. Anonymous clients are not counted. 0 = no
    /// limit (Centrifugo's `client_user_connection_limit`).
    pub client_user_connection_limit: usize,
    /// Most connected clients from one address on this node; one more is
    /// closed with 3504. The address is the socket's peer, or the one named
    /// by `client_ip_header`. 0 = no limit.
    pub client_ip_connection_limit: usize,
    /// A header set by a trusted reverse proxy that carries the client's
    /// address (`X-Forwarded-For`: its last entry; `X-Real-IP`). Read only
    /// when set: without a proxy in front, a client could write it itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip_header: Option<String>,
    /// Commands per second one client may send (a token bucket refilled at
    /// this rate); a command over it gets error 111 "too many requests".
    /// 0 = no limit.
    pub client_command_rate: u32,
    /// Commands a client may send at once before `client_command_rate`
    /// applies (the bucket's size); 0 = as many as `client_command_rate`.
    pub client_command_burst: u32,
    /// Commands refused in a row (error 111) after which the next refused one
    /// closes the client with 3013 "too many requests". 0 = never closed.
    pub client_command_rate_disconnect_after: u32,
    /// Window in which an API publish with the same `idempotency_key` is accepted once; 0 = off.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// How long shutdown waits for in-flight work to drain.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Serve Prometheus metrics at `/metrics` (otherwise it answers 404).
    pub prometheus: bool,
    /// Log output format.
    pub log_format: LogFormat,
    /// `tracing` EnvFilter directive, e.g. `info` or `hub=debug,info`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// Set by `--dev`: the dev preset was applied under the file, env and flags.
    pub dev: bool,
    /// Token verification keys and checks.
    pub token: TokenConfig,
    /// Options for channels without a namespace (`news`).
    pub channel: ChannelOptions,
    /// Options per namespace: channel `chat:room1` uses `namespaces["chat"]`.
    pub namespaces: BTreeMap<String, ChannelOptions>,
    /// The automatic server-side subscription of every user to its personal channel.
    pub personal_channel: PersonalChannelConfig,
    /// OpenTelemetry: the OTLP exporter (off while `otel.endpoint` is unset).
    pub otel: OtelConfig,
    /// Calls to the application's backend (`[proxy.rpc]`, ...).
    pub proxy: ProxyConfig,
}

/// Keys for connection and subscription JWTs (`[token]`), defined beside
/// the verifier that uses them.
pub use crate::auth::TokenConfig;

/// The OpenTelemetry exporter (`[otel]`), defined beside the code that runs it.
pub use crate::telemetry::OtelConfig;

/// The backend proxies (`[proxy]`), defined beside the code that calls them.
pub use crate::proxy::{ProxyConfig, ProxyEndpoint};

/// Behaviour of the channels of one namespace (or of channels without one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelOptions {
    /// Publications kept per channel; 0 = no history.
    pub history_size: usize,
    /// How long publications are kept; 0 = no history.
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// Presence (who is subscribed) is tracked and can be queried.
    pub presence: bool,
    /// Subscribers get join/leave pushes.
    pub join_leave: bool,
    /// Connected clients may publish.
    pub allow_publish: bool,
    /// Any connected client may subscribe (otherwise a subscription token, or the channel in
    /// the connection token's `channels` claim, is needed).
    pub allow_subscribe: bool,
    /// Subscriptions are recoverable without the client asking.
    pub force_recovery: bool,
    /// User-limited channels (Centrifugo's option of the same name): a
    /// channel whose name holds `#` may be subscribed to (without a token)
    /// only by the users listed after its last `#`, comma-separated
    /// (`dialog#42,43`); `allow_subscribe` does not open it to others.
    pub allow_user_limited_channels: bool,
    /// Clients may send a tags filter with their subscribe (the SDKs'
    /// `tagsFilter`): they then get only the publications whose tags pass it,
    /// live and recovered. Without it, a subscribe with a filter is refused
    /// (107), as in Centrifugo.
    pub allow_tags_filter: bool,
    /// A subscribe without a token asks the subscribe proxy
    /// (`[proxy.subscribe]`), which decides instead of `allow_subscribe`
    /// (Centrifugo's `subscribe_proxy_enabled`).
    pub subscribe_proxy: bool,
    /// A client publish asks the publish proxy (`[proxy.publish]`), which
    /// decides instead of `allow_publish` and may change the data
    /// (Centrifugo's `publish_proxy_enabled`).
    pub publish_proxy: bool,
    /// Delta encodings a subscriber may ask for (`delta` of its subscribe, the
    /// SDKs' `delta: 'fossil'`); only `"fossil"` exists. Empty: a subscriber
    /// that asks is subscribed without delta (`delta` absent from its
    /// subscribe result), as in Centrifugo.
    pub allowed_delta_types: Vec<DeltaType>,
    /// Every publication of the channel asks for delta compression, as if
    /// published with `delta: true` (Centrifugo's `delta_publish`); client
    /// publications and AMQP ingest use delta only through this option.
    pub delta_publish: bool,
}

/// A delta encoding of publications (Centrifugo's `DeltaType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaType {
    /// The Fossil SCM delta format (`protocol::fossil`).
    Fossil,
}

impl DeltaType {
    /// The type a subscribe names (`SubscribeRequest.delta`); `None` for a name that is not one.
    pub fn parse(name: &str) -> Option<DeltaType> {
        (name == "fossil").then_some(DeltaType::Fossil)
    }
}

/// `[personal_channel]`: Centrifugo's `client.subscribe_to_user_personal_channel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonalChannelConfig {
    /// Every connection with a user (not anonymous) is subscribed server-side,
    /// at connect, to the user's personal channel `<namespace>:#<user>`.
    pub enabled: bool,
    /// The namespace of personal channels (it must exist); empty: channels
    /// without namespace (`#<user>`).
    pub namespace: String,
    /// One connection per user: a new connection closes the user's other
    /// connections, on every node, with 3504 "connection limit".
    pub single_connection: bool,
}

impl PersonalChannelConfig {
    /// The personal channel of `user`.
    pub fn channel(&self, user: &str) -> String {
        if self.namespace.is_empty() {
            format!("#{user}")
        } else {
            format!("{}:#{user}", self.namespace)
        }
    }
}

impl ChannelOptions {
    /// True when channels keep history (both a size and a TTL are set).
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            node_name: format!("hub-{}", std::process::id()),
            api_key: None,
            allow_anonymous: false,
            allowed_origins: Vec::new(),
            demo: false,
            static_dir: None,
            amqp_url: None,
            amqp_prefix: "hub".to_owned(),
            amqp_shards: 16,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            client_expired_close_delay: Duration::from_secs(25),
            client_expired_sub_close_delay: Duration::from_secs(25),
            write_delay: Duration::ZERO,
            client_outbox_bytes: 1024 * 1024,
            client_recovery_max_publication_limit: 300,
            max_frame_bytes: 64 * 1024,
            max_channels_per_client: 128,
            max_channel_length: 255,
            client_connection_limit: 0,
            client_user_connection_limit: 0,
            client_ip_connection_limit: 0,
            client_ip_header: None,
            client_command_rate: 0,
            client_command_burst: 0,
            client_command_rate_disconnect_after: 20,
            idempotency_window: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(10),
            prometheus: false,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            dev: false,
            token: TokenConfig::default(),
            channel: ChannelOptions::default(),
            namespaces: BTreeMap::new(),
            personal_channel: PersonalChannelConfig::default(),
            otel: OtelConfig::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

/// The flags that feed the configuration. Flatten it into the binary's `clap` parser.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Configuration")]
pub struct ConfigArgs {
    /// Configuration file: the hub's TOML, or a Centrifugo v6 config (.json, .yaml/.yml or
    /// .toml) mapped onto the hub's keys; its keys override the defaults and are
    /// overridden by HUB_* environment variables and by flags.
    #[arg(long, short = 'c', value_name = "FILE", env = "HUB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [config: listen, default 127.0.0.1:8000].
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<SocketAddr>,
    /// Server API key expected in X-API-Key; without one the API answers 401
    /// [config: api_key].
    #[arg(long, value_name = "KEY", global = true)]
    pub api_key: Option<String>,
    /// Secret for HS256/384/512 connection and subscription tokens
    /// [config: token.hmac_secret].
    #[arg(long, value_name = "SECRET", global = true)]
    pub token_hmac_secret: Option<String>,
    /// Let clients connect without a token [config: allow_anonymous].
    #[arg(long, global = true)]
    pub allow_anonymous: bool,
    /// Node name reported to clients [config: node_name, default hub-<pid>].
    #[arg(long, value_name = "NAME", global = true)]
    pub node_name: Option<String>,
    /// Server ping period, e.g. 25s or 500ms [config: ping_interval, default 25s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub ping_interval: Option<Duration>,
    /// Time a client has to answer a ping [config: pong_timeout, default 8s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub pong_timeout: Option<Duration>,
    /// Join other nodes through RabbitMQ at this URL [config: amqp_url].
    #[arg(long, value_name = "URL", global = true)]
    pub amqp_url: Option<String>,
    /// Log format [config: log_format, default human].
    #[arg(long, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Export spans over OTLP/HTTP to this collector base URL, e.g.
    /// http://127.0.0.1:4318 [config: otel.endpoint, default off].
    #[arg(long, value_name = "URL", global = true)]
    pub otel_endpoint: Option<String>,
    /// Log filter such as info or hub=debug,warn; RUST_LOG overrides it
    /// [config: log_level, default info].
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,
    /// Try-out preset: anonymous connect; channels without namespace and namespace "chat"
    /// with publish, subscribe, history (100, 300s), presence, join/leave and forced
    /// recovery; API key "dev" unless one is given; the demo app at / [config: dev].
    #[arg(long, global = true)]
    pub dev: bool,
}

/// Why the configuration was refused. The message names the source, the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("config error in {}: cannot read the file: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    /// A source could not be parsed at all (e.g. TOML syntax); `origin` names it.
    #[error("config error in {origin}: {reason}")]
    Syntax { origin: String, reason: String },
    /// One key is unknown or has a bad type or value.
    #[error("config error in {origin}: key \"{key}\": {reason}")]
    Key { origin: String, key: String, reason: String },
    /// Several problems, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    fn from_list(mut errors: Vec<ConfigError>) -> ConfigError {
        match errors.len() {
            1 => errors.remove(0),
            _ => ConfigError::Many(errors),
        }
    }
}

impl Config {
    /// The largest body, in bytes, of a POST to the HTTP transports
    /// (`/connection/sse`, `/connection/http_stream`, `/emulation`):
    /// `max_frame_bytes`, but at least 64 KiB. Larger bodies are answered 413.
    pub fn transport_body_limit(&self) -> usize {
        self.max_frame_bytes.max(64 * 1024)
    }

    /// Loads the configuration from the defaults, the `--dev` preset, the file, the process
    /// environment and the flags, then validates it.
    /// The warnings of a Centrifugo file are dropped: see [`Config::load_reporting`].
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        Config::load_reporting(args).map(|(config, _)| config)
    }

    /// [`Config::load`], and the warnings of a Centrifugo file (empty for the hub's own).
    pub fn load_reporting(args: &ConfigArgs) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        // `std::env::vars` panics on non-Unicode variables; skip those instead.
        let env =
            std::env::vars_os().filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
        Config::load_reporting_from(args, env)
    }

    /// [`Config::load`] with an explicit environment (tests use it to avoid process env).
    pub fn load_from<I>(args: &ConfigArgs, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Config::load_reporting_from(args, env).map(|(config, _)| config)
    }

    /// [`Config::load_reporting`] with an explicit environment.
    pub fn load_reporting_from<I>(args: &ConfigArgs, env: I) -> Result<(Config, Vec<ConfigWarning>), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut centrifugo = None;
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Unreadable { path: path.clone(), reason: e.to_string() })?;
            if let centrifugo::FileFormat::Centrifugo(document) = centrifugo::detect(path, &text)? {
                centrifugo = Some(centrifugo::map(path, &document)?);
            }
        }
        let (file_layer, warnings) = match centrifugo {
            Some(mapped) => (Some(mapped.layer), mapped.warnings),
            None => (None, Vec::new()),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let otel_env = otel_env_layer(&env);
        let env = env_layer(env);
        let flags = flags_layer(args);
        let build = |dev: bool| {
            let mut figment = Figment::new();
            if dev {
                figment = figment.merge(dev_preset());
            }
            match (&file_layer, &args.config) {
                (Some(layer), _) => figment = figment.merge(layer.clone()),
                (None, Some(path)) => figment = figment.merge(Toml::file_exact(path)),
                (None, None) => {}
            }
            figment.merge(otel_env.clone()).merge(env.clone()).merge(flags.clone())
        };
        let figment = build(false);
        let mut config: Config = figment.extract().map_err(|e| convert(e, &figment))?;
        let figment = if config.dev { build(true) } else { figment };
        if config.dev {
            config = figment.extract().map_err(|e| convert(e, &figment))?;
        }
        let problems = config.problems();
        if problems.is_empty() {
            return Ok((config, warnings));
        }
        let errors = problems
            .into_iter()
            .map(|(key, reason)| {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                ConfigError::Key { origin: origin(figment.find_metadata(&key), &path), key, reason }
            })
            .collect();
        Err(ConfigError::from_list(errors))
    }

    /// Options for a namespace name (`None` = the top-level `channel` options); `None` if the
    /// namespace is unknown.
    pub fn namespace(&self, name: Option<&str>) -> Option<&ChannelOptions> {
        match name {
            None => Some(&self.channel),
            Some(name) => self.namespaces.get(name),
        }
    }

    /// Options for a channel name: `chat:room1` uses namespace `chat`, `news` the top-level
    /// options; `None` if the namespace is unknown.
    pub fn channel_options(&self, channel: &str) -> Option<&ChannelOptions> {
        self.namespace(channel.split_once(':').map(|(ns, _)| ns))
    }

    /// A copy with secrets (API key, HMAC secret) replaced by `"<redacted>"`, for printing
    /// and logging.
    pub fn redacted(&self) -> Config {
        let hide = |s: &Option<String>| s.as_ref().map(|_| "<redacted>".to_owned());
        let mut copy = self.clone();
        copy.api_key = hide(&self.api_key);
        copy.token.hmac_secret = hide(&self.token.hmac_secret);
        copy
    }

    /// Every invalid value as (key, reason); empty when the config is valid.
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |ok: bool, key: &str, reason: &str| {
            if !ok {
                out.push((key.to_owned(), reason.to_owned()));
            }
        };
        check(!self.node_name.trim().is_empty(), "node_name", "must not be empty");
        check(
            self.api_key.as_deref() != Some(""),
            "api_key",
            "must not be empty (leave it out to disable the server API)",
        );
        check(!self.ping_interval.is_zero(), "ping_interval", "must be greater than 0");
        check(!self.pong_timeout.is_zero(), "pong_timeout", "must be greater than 0");
        check(!self.connect_timeout.is_zero(), "connect_timeout", "must be greater than 0");
        check(self.client_outbox_bytes > 0, "client_outbox_bytes", "must be greater than 0");
        check(self.max_frame_bytes > 0, "max_frame_bytes", "must be greater than 0");
        check(self.max_channels_per_client > 0, "max_channels_per_client", "must be greater than 0");
        check(self.max_channel_length > 0, "max_channel_length", "must be greater than 0");
        check(self.amqp_shards > 0, "amqp_shards", "must be greater than 0");
        check(
            self.client_ip_header
                .as_deref()
                .is_none_or(|name| actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_ok()),
            "client_ip_header",
            "must be a header name such as X-Forwarded-For or X-Real-IP",
        );
        check(
            !self.amqp_prefix.is_empty()
                && self.amqp_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "amqp_prefix",
            "must be non-empty ASCII letters, digits, '.', '_' or '-'",
        );
        check(
            self.amqp_url.as_deref().is_none_or(|u| u.starts_with("amqp://") || u.starts_with("amqps://")),
            "amqp_url",
            "must start with amqp:// or amqps://",
        );
        check(self.token.audience.as_deref() != Some(""), "token.audience", "must not be empty");
        check(self.token.issuer.as_deref() != Some(""), "token.issuer", "must not be empty");
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(("log_level".into(), format!("not a valid log filter: {e}")));
        }
        if let Err(e) = crate::auth::TokenVerifier::new(&self.token) {
            out.push((e.key().to_owned(), e.reason().to_owned()));
        }
        for (key, reason) in self.otel.problems() {
            out.push((format!("otel.{key}"), reason.to_owned()));
        }
        for (key, reason) in self.proxy.problems() {
            out.push((format!("proxy.{key}"), reason.to_owned()));
        }
        channel_problems("channel", &self.channel, &self.proxy, &mut out);
        for (name, options) in &self.namespaces {
            let key = format!("namespaces.{name}");
            if name.is_empty() {
                out.push((key.clone(), "namespace name must not be empty".into()));
            } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                out.push((
                    key.clone(),
                    "namespace name may only hold ASCII letters, digits, '_', '-' and '.' (no ':')".into(),
                ));
            }
            channel_problems(&key, options, &self.proxy, &mut out);
        }
        let personal = &self.personal_channel;
        if personal.enabled && !personal.namespace.is_empty() && !self.namespaces.contains_key(&personal.namespace) {
            out.push((
                "personal_channel.namespace".into(),
                format!("namespace {:?} is not configured in [namespaces]", personal.namespace),
            ));
        }
        out
    }
}

fn channel_problems(prefix: &str, options: &ChannelOptions, proxy: &ProxyConfig, out: &mut Vec<(String, String)>) {
    if options.subscribe_proxy && proxy.subscribe.is_none() {
        out.push((format!("{prefix}.subscribe_proxy"), "needs [proxy.subscribe] with its endpoint".into()));
    }
    if options.publish_proxy && proxy.publish.is_none() {
        out.push((format!("{prefix}.publish_proxy"), "needs [proxy.publish] with its endpoint".into()));
    }
    let has_size = options.history_size > 0;
    let has_ttl = !options.history_ttl.is_zero();
    if has_size != has_ttl {
        out.push((
            format!("{prefix}.history_size"),
            "history_size and history_ttl must both be set (history on) or both be 0 (history off)".into(),
        ));
    }
    if options.force_recovery && !options.history_enabled() {
        out.push((
            format!("{prefix}.force_recovery"),
            "recovery needs history: set history_size and history_ttl".into(),
        ));
    }
}

#[path = "config/centrifugo.rs"]
mod centrifugo;
pub use centrifugo::ConfigWarning;
#[path = "config/sources.rs"]
mod sources;
use sources::{convert, dev_preset, env_layer, flags_layer, origin, otel_env_layer};

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
