//! Unit tests of `config`: defaults, the dev preset, layering, and errors naming source and key.
//! The environment is passed explicitly, never read from the process, so tests don't race.

use super::sources::{STRING_KEYS, TOP_LEVEL_KEYS};
use super::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Writes `text` to a fresh file under the temp dir and returns its path.
fn file(text: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("hub-config-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("hub-{}.toml", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).unwrap();
    path
}

fn with_file(path: &Path) -> ConfigArgs {
    ConfigArgs { config: Some(path.to_owned()), ..ConfigArgs::default() }
}

fn load_text(text: &str) -> (PathBuf, Result<Config, ConfigError>) {
    let path = file(text);
    let result = Config::load_from(&with_file(&path), no_env());
    (path, result)
}

fn error_text(text: &str) -> (String, String) {
    let (path, result) = load_text(text);
    (path.display().to_string(), result.unwrap_err().to_string())
}

fn dev_options() -> ChannelOptions {
    ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        presence: true,
        join_leave: true,
        allow_publish: true,
        allow_subscribe: true,
        force_recovery: true,
        allow_user_limited_channels: false,
        allow_tags_filter: true,
        subscribe_proxy: false,
        publish_proxy: false,
        allowed_delta_types: vec![DeltaType::Fossil],
        delta_publish: false,
    }
}

#[test]
fn defaults() {
    let config = Config::load_from(&ConfigArgs::default(), no_env()).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(config.node_name, format!("hub-{}", std::process::id()));
    assert_eq!(config.api_key, None);
    assert!(!config.allow_anonymous);
    assert_eq!(config.ping_interval, Duration::from_secs(25));
    assert_eq!(config.pong_timeout, Duration::from_secs(8));
    assert_eq!(config.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.client_expired_close_delay, Duration::from_secs(25), "Centrifugo's default");
    assert_eq!(config.client_expired_sub_close_delay, Duration::from_secs(25), "Centrifugo's default");
    assert_eq!(config.client_outbox_bytes, 1_048_576);
    assert_eq!(config.max_frame_bytes, 65_536);
    assert_eq!(config.max_channels_per_client, 128);
    assert_eq!(config.max_channel_length, 255);
    assert_eq!(config.idempotency_window, Duration::from_secs(300));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.log_level, "info");
    assert_eq!(config.channel, ChannelOptions::default());
    assert!(!config.channel.history_enabled());
    assert!(config.namespaces.is_empty());
    assert!(!config.dev);
}

#[test]
fn dev_preset() {
    let args = ConfigArgs { dev: true, ..ConfigArgs::default() };
    let config = Config::load_from(&args, no_env()).unwrap();
    assert!(config.dev);
    assert!(config.allow_anonymous);
    assert_eq!(config.api_key.as_deref(), Some("dev"));
    assert_eq!(config.channel, dev_options());
    assert!(config.channel.history_enabled());
    assert_eq!(config.namespace(Some("chat")), Some(&dev_options()));
    assert_eq!(config.channel_options("chat:room"), Some(&dev_options()));
    assert_eq!(config.channel_options("news"), Some(&dev_options()));
    assert_eq!(config.channel_options("other:x"), None);
    // The embedded demo at `/`, whatever the working directory.
    assert!(config.demo);
    assert_eq!(config.static_dir, None);
}

#[test]
fn demo_is_off_by_default_and_the_dev_preset_one_can_be_switched_off() {
    assert!(!Config::load_from(&ConfigArgs::default(), no_env()).unwrap().demo);
    let config = load_text("demo = true\n").1.unwrap();
    assert!(config.demo && !config.dev);
    let args = ConfigArgs { dev: true, ..ConfigArgs::default() };
    let config = Config::load_from(&args, env(&[("HUB_DEMO", "false")])).unwrap();
    assert!(config.dev && !config.demo);
    // static_dir beside the preset's demo: the server serves the directory instead.
    let config = Config::load_from(&args, env(&[("HUB_STATIC_DIR", "site")])).unwrap();
    assert!(config.demo);
    assert_eq!(config.static_dir.as_deref(), Some(std::path::Path::new("site")));
}

#[test]
fn dev_preset_keeps_a_given_api_key_and_file_settings() {
    let path =
        file("api_key = \"from-file\"\n[namespaces.chat]\nhistory_size = 5\n[namespaces.games]\npresence = true\n");
    let args = ConfigArgs { dev: true, ..with_file(&path) };
    let config = Config::load_from(&args, no_env()).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("from-file"));
    assert_eq!(config.namespaces["chat"], ChannelOptions { history_size: 5, ..dev_options() });
    assert_eq!(config.namespaces["games"], ChannelOptions { presence: true, ..ChannelOptions::default() });

    let config = Config::load_from(&args, env(&[("HUB_API_KEY", "from-env")])).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("from-env"));
    let args = ConfigArgs { api_key: Some("from-flag".into()), ..args };
    let config = Config::load_from(&args, env(&[("HUB_API_KEY", "from-env")])).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("from-flag"));
}

#[test]
fn dev_can_be_switched_on_by_file_or_env() {
    let (_, config) = load_text("dev = true\n");
    assert!(config.unwrap().allow_anonymous);
    let config = Config::load_from(&ConfigArgs::default(), env(&[("HUB_DEV", "true")])).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("dev"));
}

#[test]
fn precedence_file_then_env_then_flags() {
    let path = file(
        "listen = \"0.0.0.0:9000\"\nping_interval = \"10s\"\npong_timeout = \"3s\"\napi_key = \"file\"\n\
         node_name = \"file-node\"\n[token]\nhmac_secret = \"file-secret\"\n",
    );
    let vars = env(&[("HUB_PING_INTERVAL", "500ms"), ("HUB_API_KEY", "env"), ("HUB_NODE_NAME", "env-node")]);

    let config = Config::load_from(&with_file(&path), no_env()).unwrap();
    assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.ping_interval, Duration::from_secs(10));
    assert_eq!(config.token.hmac_secret.as_deref(), Some("file-secret"));

    let config = Config::load_from(&with_file(&path), vars.clone()).unwrap();
    assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.ping_interval, Duration::from_millis(500));
    assert_eq!(config.pong_timeout, Duration::from_secs(3));
    assert_eq!(config.api_key.as_deref(), Some("env"));
    assert_eq!(config.node_name, "env-node");

    let args = ConfigArgs {
        api_key: Some("flag".into()),
        ping_interval: Some(Duration::from_secs(1)),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        token_hmac_secret: Some("flag-secret".into()),
        allow_anonymous: true,
        log_format: Some(LogFormat::Json),
        log_level: Some("debug".into()),
        ..with_file(&path)
    };
    let config = Config::load_from(&args, vars).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("flag"));
    assert_eq!(config.ping_interval, Duration::from_secs(1));
    assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.token.hmac_secret.as_deref(), Some("flag-secret"));
    assert_eq!(config.node_name, "env-node");
    assert!(config.allow_anonymous);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.log_level, "debug");
}

#[test]
fn env_scheme() {
    let vars = env(&[
        ("HUB_TOKEN__HMAC_SECRET", "s3cret"),
        ("HUB_API_KEY", "12345"),
        ("HUB_ALLOW_ANONYMOUS", "true"),
        ("HUB_MAX_FRAME_BYTES", "1024"),
        ("HUB_LOG_FORMAT", "json"),
        ("HUB_LISTEN", "[::1]:8001"),
        ("HUB_CHANNEL__PRESENCE", "true"),
        ("HUB_NAMESPACES__CHAT__HISTORY_SIZE", "10"),
        ("HUB_NAMESPACES__CHAT__HISTORY_TTL", "1m"),
        // Not ours: ignored rather than refused.
        ("HUB_CONFIG", "elsewhere.toml"),
        ("HUB_URL", "http://x"),
        ("PATH", "/bin"),
    ]);
    let config = Config::load_from(&ConfigArgs::default(), vars).unwrap();
    assert_eq!(config.token.hmac_secret.as_deref(), Some("s3cret"));
    assert_eq!(config.api_key.as_deref(), Some("12345"));
    assert!(config.allow_anonymous);
    assert_eq!(config.max_frame_bytes, 1024);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.listen, "[::1]:8001".parse().unwrap());
    assert!(config.channel.presence);
    assert_eq!(
        config.namespace(Some("chat")),
        Some(&ChannelOptions { history_size: 10, history_ttl: Duration::from_secs(60), ..ChannelOptions::default() })
    );
}

#[test]
fn env_key_typo_inside_a_known_table_is_refused() {
    let err = Config::load_from(&ConfigArgs::default(), env(&[("HUB_TOKEN__HMAC_SECRTE", "x")])).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "config error in environment variable HUB_TOKEN__HMAC_SECRTE: key \"token.hmac_secrte\": unknown key"
        ),
        "{text}"
    );
}

#[test]
fn env_wrong_type_names_the_variable() {
    let err = Config::load_from(&ConfigArgs::default(), env(&[("HUB_MAX_FRAME_BYTES", "lots")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config error in environment variable HUB_MAX_FRAME_BYTES: key \"max_frame_bytes\": \
         invalid type: found string \"lots\", expected usize"
    );
}

#[test]
fn full_file() {
    let (_, config) = load_text(
        r#"
listen = "0.0.0.0:8000"
node_name = "n1"
api_key = "k"
allow_anonymous = true
ping_interval = "1m 30s"
pong_timeout = "500ms"
connect_timeout = "2s"
client_outbox_bytes = 4096
max_frame_bytes = 2048
max_channels_per_client = 4
max_channel_length = 32
idempotency_window = "0s"
shutdown_timeout = "1s"
log_format = "json"
log_level = "hub=debug,warn"

[token]
hmac_secret = "s"
audience = "hub"
issuer = "auth"

[channel]
allow_subscribe = true

[namespaces.chat]
history_size = 10
history_ttl = "5m"
force_recovery = true
"#,
    );
    let config = config.unwrap();
    assert_eq!(config.ping_interval, Duration::from_secs(90));
    assert_eq!(config.pong_timeout, Duration::from_millis(500));
    assert_eq!(config.idempotency_window, Duration::ZERO);
    assert_eq!(config.token.audience.as_deref(), Some("hub"));
    assert!(config.channel.allow_subscribe);
    assert!(config.namespaces["chat"].force_recovery);
    assert_eq!(config.max_channel_length, 32);
}

#[test]
fn delta_options_from_file_and_env() {
    let (_, result) = load_text(
        "[channel]\nallowed_delta_types = [\"fossil\"]\ndelta_publish = true\n\n[namespaces.docs]\nallow_subscribe = true\n",
    );
    let config = result.unwrap();
    assert_eq!(config.channel.allowed_delta_types, vec![DeltaType::Fossil]);
    assert!(config.channel.delta_publish);
    assert!(config.namespaces["docs"].allowed_delta_types.is_empty(), "off unless listed");
    let vars = env(&[("HUB_NAMESPACES__DOCS__ALLOWED_DELTA_TYPES", "[\"fossil\"]")]);
    let config = Config::load_from(&ConfigArgs::default(), vars).unwrap();
    assert_eq!(config.namespaces["docs"].allowed_delta_types, vec![DeltaType::Fossil]);
    // Only `fossil` exists: another name is refused with the key that holds it.
    let (_, error) = error_text("[channel]\nallowed_delta_types = [\"vcdiff\"]\n");
    assert!(error.contains("channel.allowed_delta_types") && error.contains("vcdiff"), "{error}");
    assert_eq!(DeltaType::parse("fossil"), Some(DeltaType::Fossil));
    assert_eq!(DeltaType::parse("Fossil"), None);
}

#[test]
fn personal_channel_and_user_limited_channels_from_file_and_env() {
    let (_, result) = load_text(
        "[personal_channel]\nenabled = true\nnamespace = \"personal\"\nsingle_connection = true\n\n\
         [namespaces.personal]\nallow_user_limited_channels = true\n",
    );
    let config = result.unwrap();
    assert!(config.personal_channel.enabled && config.personal_channel.single_connection);
    assert_eq!(config.personal_channel.channel("42"), "personal:#42");
    assert!(config.namespaces["personal"].allow_user_limited_channels);
    // Off by default; without a namespace the channel is `#<user>`.
    assert_eq!(Config::default().personal_channel, PersonalChannelConfig::default());
    assert_eq!(PersonalChannelConfig::default().channel("42"), "#42");
    // A namespace named like a number stays a string from the environment.
    let vars = env(&[
        ("HUB_PERSONAL_CHANNEL__ENABLED", "true"),
        ("HUB_PERSONAL_CHANNEL__NAMESPACE", "7"),
        ("HUB_NAMESPACES__7__ALLOW_USER_LIMITED_CHANNELS", "true"),
    ]);
    let config = Config::load_from(&ConfigArgs::default(), vars).unwrap();
    assert_eq!(config.personal_channel.channel("42"), "7:#42");
    assert!(config.namespaces["7"].allow_user_limited_channels);
}

#[test]
fn expiry_graces_come_from_file_and_env_and_may_be_zero() {
    let (_, result) = load_text("client_expired_close_delay = \"1500ms\"\nclient_expired_sub_close_delay = \"0s\"\n");
    let config = result.unwrap();
    assert_eq!(config.client_expired_close_delay, Duration::from_millis(1500));
    assert_eq!(config.client_expired_sub_close_delay, Duration::ZERO, "0 = no grace, not an error");
    let vars = env(&[("HUB_CLIENT_EXPIRED_CLOSE_DELAY", "0s"), ("HUB_CLIENT_EXPIRED_SUB_CLOSE_DELAY", "1m")]);
    let config = Config::load_from(&ConfigArgs::default(), vars).unwrap();
    assert_eq!(config.client_expired_close_delay, Duration::ZERO);
    assert_eq!(config.client_expired_sub_close_delay, Duration::from_secs(60));
    let (path, message) = error_text("client_expired_close_delay = 5\n");
    assert!(message.starts_with(&format!("config error in {path}: key \"client_expired_close_delay\": ")), "{message}");
}

#[test]
fn checkconfig_output_loads_back_to_the_same_config() {
    let args = ConfigArgs { dev: true, token_hmac_secret: Some("s".into()), ..ConfigArgs::default() };
    let config = Config::load_from(&args, no_env()).unwrap();
    let text = toml::to_string_pretty(&config).unwrap();
    let (_, again) = load_text(&text);
    assert_eq!(again.unwrap(), config, "{text}");
}

#[test]
fn redacted_hides_secrets() {
    let config = Config {
        api_key: Some("k".into()),
        token: TokenConfig { hmac_secret: Some("s".into()), ..TokenConfig::default() },
        ..Config::default()
    };
    let shown = config.redacted();
    assert_eq!(shown.api_key.as_deref(), Some("<redacted>"));
    assert_eq!(shown.token.hmac_secret.as_deref(), Some("<redacted>"));
    assert_eq!(Config::default().redacted(), Config::default());
}

#[test]
fn top_level_and_string_keys_match_the_struct() {
    let config = Config {
        api_key: Some("k".into()),
        static_dir: Some("dist".into()),
        amqp_url: Some("amqp://localhost".into()),
        client_ip_header: Some("X-Real-IP".into()),
        token: TokenConfig {
            hmac_secret: Some("s".into()),
            rsa_public_key: Some("r".into()),
            ecdsa_public_key: Some("e".into()),
            audience: Some("a".into()),
            issuer: Some("i".into()),
            jwks_url: Some("https://idp.example/jwks.json".into()),
            ..TokenConfig::default()
        },
        otel: OtelConfig { endpoint: Some("http://collector:4318".into()), ..OtelConfig::default() },
        proxy: {
            let endpoint = |path: &str| {
                Some(super::ProxyEndpoint {
                    endpoint: format!("http://backend:3000/{path}"),
                    timeout: Duration::from_secs(1),
                    http_headers: vec!["Cookie".into()],
                })
            };
            super::ProxyConfig {
                connect: endpoint("connect"),
                refresh: endpoint("refresh"),
                subscribe: endpoint("subscribe"),
                publish: endpoint("publish"),
                rpc: endpoint("rpc"),
            }
        },
        ..Config::default()
    };
    let value = serde_json::to_value(&config).unwrap();
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = TOP_LEVEL_KEYS.to_vec();
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    for key in STRING_KEYS {
        let mut v = &value;
        for part in key.split('.') {
            v = &v[part];
        }
        assert!(v.is_string(), "{key} is not a string key");
    }
}

/// `[otel]` is off by default; it comes from the file, the standard
/// `OTEL_*` variables (under `HUB_OTEL__*`), and `--otel-endpoint`; a bad
/// value names its source.
#[test]
fn otel_from_file_standard_env_hub_env_and_flag() {
    let config = Config::load_from(&ConfigArgs::default(), no_env()).unwrap();
    assert_eq!(config.otel, OtelConfig { endpoint: None, service_name: "hub".into(), sample_ratio: 1.0 });

    let path = file("[otel]\nendpoint = \"http://file:4318\"\nsample_ratio = 0.25\n");
    let config = Config::load_from(&with_file(&path), no_env()).unwrap();
    assert_eq!(config.otel.endpoint.as_deref(), Some("http://file:4318"));
    assert_eq!(config.otel.sample_ratio, 0.25);

    let standard = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://std:4318"), ("OTEL_SERVICE_NAME", "edge")]);
    let config = Config::load_from(&with_file(&path), standard.clone()).unwrap();
    assert_eq!(config.otel.endpoint.as_deref(), Some("http://std:4318"), "the standard variable beats the file");
    assert_eq!(config.otel.service_name, "edge");

    let mut both = standard.clone();
    both.extend(env(&[("HUB_OTEL__ENDPOINT", "http://hub:4318")]));
    let config = Config::load_from(&ConfigArgs::default(), both).unwrap();
    assert_eq!(config.otel.endpoint.as_deref(), Some("http://hub:4318"), "HUB_OTEL__ENDPOINT beats the standard one");

    let flag = ConfigArgs { otel_endpoint: Some("http://flag:4318".into()), ..ConfigArgs::default() };
    let config = Config::load_from(&flag, standard).unwrap();
    assert_eq!(config.otel.endpoint.as_deref(), Some("http://flag:4318"));

    let bad = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://tls:4318")]);
    let err = Config::load_from(&ConfigArgs::default(), bad).unwrap_err().to_string();
    assert!(
        err.contains("OpenTelemetry environment variable OTEL_EXPORTER_OTLP_ENDPOINT")
            && err.contains("key \"otel.endpoint\"")
            && err.contains("http://"),
        "{err}"
    );
    let (path, err) = error_text("[otel]\nsample_ratio = 2.0\n");
    assert!(err.contains(&path) && err.contains("key \"otel.sample_ratio\""), "{err}");
}

#[test]
fn missing_file_names_the_file() {
    let path = std::env::temp_dir().join("hub-config-tests-does-not-exist.toml");
    let err = Config::load_from(&with_file(&path), no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }));
    let text = err.to_string();
    assert!(text.starts_with(&format!("config error in {}: cannot read the file: ", path.display())), "{text}");
}

#[test]
fn bad_toml_names_the_file() {
    let (path, text) = error_text("listen = \n");
    assert!(text.starts_with(&format!("config error in {path}: ")), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn wrong_type_names_file_and_key() {
    let (path, text) = error_text("[namespaces.chat]\nhistory_size = \"x\"\n");
    assert_eq!(
        text,
        format!("config error in {path}: key \"namespaces.chat.history_size\": invalid type: found string \"x\", expected usize")
    );
}

#[test]
fn unknown_keys_are_refused() {
    let (path, text) = error_text("listne = \"127.0.0.1:1\"\n");
    assert!(text.starts_with(&format!("config error in {path}: key \"listne\": unknown key")), "{text}");
    let (path, text) = error_text("[namespaces.chat]\nhistroy_size = 1\n");
    assert!(
        text.starts_with(&format!("config error in {path}: key \"namespaces.chat.histroy_size\": unknown key")),
        "{text}"
    );
    let (path, text) = error_text("[token]\nsecret = \"x\"\n");
    assert!(text.starts_with(&format!("config error in {path}: key \"token.secret\": unknown key")), "{text}");
}

#[test]
fn unknown_key_under_the_dev_preset_names_the_file() {
    let path = file("[namespaces.chat]\nhistroy_size = 1\n");
    let args = ConfigArgs { dev: true, ..with_file(&path) };
    let text = Config::load_from(&args, no_env()).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!("config error in {}: key \"namespaces.chat.histroy_size\"", path.display())),
        "{text}"
    );
}

#[test]
fn invalid_values_name_file_and_key() {
    for (toml, key, reason) in [
        ("pong_timeout = \"0s\"", "pong_timeout", "must be greater than 0"),
        ("ping_interval = \"0s\"", "ping_interval", "must be greater than 0"),
        ("connect_timeout = \"0s\"", "connect_timeout", "must be greater than 0"),
        ("client_outbox_bytes = 0", "client_outbox_bytes", "must be greater than 0"),
        ("node_name = \"\"", "node_name", "must not be empty"),
        ("api_key = \"\"", "api_key", "must not be empty"),
        ("log_level = \"[[[\"", "log_level", "not a valid log filter"),
        ("[namespaces.\"chat:x\"]", "namespaces.chat:x", "no ':'"),
        ("[namespaces.\"\"]", "namespaces.", "must not be empty"),
        ("[token]\nrsa_public_key = \"not a pem\"", "token.rsa_public_key", "not an RSA public key"),
        ("[token]\necdsa_public_key = \"not a pem\"", "token.ecdsa_public_key", "not an ECDSA public key"),
        ("[token]\njwks_url = \"ftp://idp/keys\"", "token.jwks_url", "must be an https:// (or http://) URL"),
        ("[token]\njwks_url = \"https://idp/keys\"\njwks_timeout = \"0s\"", "token.jwks_timeout", "greater than 0"),
        ("client_ip_header = \"X Forwarded\"", "client_ip_header", "must be a header name"),
        ("[channel]\nhistory_size = 10", "channel.history_size", "both be set"),
        ("[namespaces.a]\nforce_recovery = true", "namespaces.a.force_recovery", "recovery needs history"),
        ("[namespaces.a]\nsubscribe_proxy = true", "namespaces.a.subscribe_proxy", "needs [proxy.subscribe]"),
        ("[channel]\npublish_proxy = true", "channel.publish_proxy", "needs [proxy.publish]"),
        ("[proxy.connect]\nendpoint = \"backend:1\"", "proxy.connect.endpoint", "must be an http://"),
        (
            "[proxy.subscribe]\nendpoint = \"http://b/s\"\nhttp_headers = [\"Bad Header\"]",
            "proxy.subscribe.http_headers",
            "must be header names",
        ),
        (
            "[personal_channel]\nenabled = true\nnamespace = \"personal\"",
            "personal_channel.namespace",
            "namespace \"personal\" is not configured in [namespaces]",
        ),
    ] {
        let (path, text) = error_text(toml);
        let prefix = format!("config error in {path}: key \"{key}\": ");
        assert!(text.starts_with(&prefix) && text.contains(reason), "{toml}: {text}");
    }
}

#[test]
fn unparsable_values_name_file_and_key() {
    for (toml, key) in [
        ("listen = \"localhost\"", "listen"),
        ("ping_interval = \"soon\"", "ping_interval"),
        ("ping_interval = 25", "ping_interval"),
        ("log_format = \"xml\"", "log_format"),
        ("max_frame_bytes = -1", "max_frame_bytes"),
        ("allow_anonymous = \"yes\"", "allow_anonymous"),
    ] {
        let (path, text) = error_text(toml);
        assert!(text.starts_with(&format!("config error in {path}: key \"{key}\": ")), "{toml}: {text}");
    }
}

#[test]
fn several_problems_are_all_reported() {
    let (_, result) = load_text("ping_interval = \"0s\"\npong_timeout = \"0s\"\n");
    let ConfigError::Many(errors) = result.unwrap_err() else { panic!("expected several errors") };
    assert_eq!(errors.len(), 2);
}

#[test]
fn invalid_flag_value_names_the_flag() {
    let args = ConfigArgs { pong_timeout: Some(Duration::ZERO), ..ConfigArgs::default() };
    let err = Config::load_from(&args, no_env()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config error in command-line flag --pong-timeout: key \"pong_timeout\": must be greater than 0"
    );
}

#[test]
fn namespace_lookup() {
    let mut config = Config::default();
    config.namespaces.insert("chat".into(), ChannelOptions { presence: true, ..ChannelOptions::default() });
    assert_eq!(config.namespace(None), Some(&config.channel));
    assert!(config.namespace(Some("chat")).unwrap().presence);
    assert_eq!(config.namespace(Some("nope")), None);
    assert!(config.channel_options("chat:a:b").unwrap().presence);
}
