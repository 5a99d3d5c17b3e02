//! Unit tests of the Centrifugo loader: detection, each key family's mapping, the exact
//! warning and error lines, and the three fixtures (JSON, YAML, TOML) giving one config.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::go_duration;
use crate::config::{ChannelOptions, Config, ConfigArgs, ConfigError, ConfigWarning, ProxyEndpoint};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hub/testdata/centrifugo");

/// Writes `text` to a fresh file named `config.<extension>` under the temp dir.
fn file(extension: &str, text: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hub-centrifugo-tests-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("config.{extension}"));
    std::fs::write(&path, text).unwrap();
    path
}

fn load_path(path: &std::path::Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let args = ConfigArgs { config: Some(path.to_owned()), ..ConfigArgs::default() };
    Config::load_reporting_from(&args, Vec::new())
}

/// Loads `text` as `config.<extension>`; the warnings without their file name.
fn load(extension: &str, text: &str) -> (Config, Vec<String>) {
    let path = file(extension, text);
    let (config, warnings) = load_path(&path).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}: ", path.display());
    let lines = warnings.iter().map(|w| w.to_string().strip_prefix(&prefix).unwrap().to_owned()).collect();
    (config, lines)
}

/// The error of `text` as `config.<extension>`, the file name replaced by `FILE`.
fn error(extension: &str, text: &str) -> String {
    let path = file(extension, text);
    let error = load_path(&path).expect_err("the file is refused").to_string();
    error.replace(&path.display().to_string(), "FILE")
}

fn json(text: &str) -> (Config, Vec<String>) {
    load("json", text)
}

fn fixture(extension: &str) -> (Config, Vec<String>) {
    let path = PathBuf::from(format!("{FIXTURES}/config.{extension}"));
    let (config, warnings) = load_path(&path).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}: ", path.display());
    (config, warnings.iter().map(|w| w.to_string().strip_prefix(&prefix).unwrap().to_owned()).collect())
}

const MAP: &str = "not supported (map subscriptions); the namespace is served as a stream namespace";

#[test]
fn the_fixture_maps_onto_hub_keys() {
    let (config, _) = fixture("json");
    assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.token.hmac_secret.as_deref(), Some("centrifugo-migration-secret"));
    assert_eq!(config.allowed_origins, ["https://app.example"]);
    assert!(!config.allow_anonymous);
    assert_eq!(config.ping_interval, Duration::from_secs(20));
    assert_eq!(config.pong_timeout, Duration::from_secs(5));
    assert_eq!(config.max_channels_per_client, 64);
    assert_eq!(config.log_level, "debug");
    assert_eq!(config.api_key.as_deref(), Some("centrifugo-migration-api-key"));
    assert!(config.prometheus);
    assert_eq!(config.max_channel_length, 128);
    assert_eq!(
        config.proxy.rpc,
        Some(ProxyEndpoint {
            endpoint: "http://127.0.0.1:3000/rpc".into(),
            timeout: Duration::from_secs(3),
            http_headers: Vec::new(),
        })
    );
    let without_namespace = ChannelOptions {
        presence: true,
        history_size: 10,
        history_ttl: Duration::from_secs(60),
        force_recovery: true,
        allowed_delta_types: vec![crate::config::DeltaType::Fossil],
        delta_publish: true,
        ..ChannelOptions::default()
    };
    assert_eq!(config.channel, without_namespace);
    let chat = ChannelOptions {
        presence: true,
        join_leave: true,
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        force_recovery: true,
        allow_subscribe: true,
        allow_publish: true,
        allow_tags_filter: true,
        allow_user_limited_channels: false,
        subscribe_proxy: false,
        publish_proxy: false,
        allowed_delta_types: Vec::new(),
        delta_publish: false,
    };
    assert_eq!(config.namespaces["chat"], chat);
    assert_eq!(config.namespaces["dialog"], ChannelOptions { allow_user_limited_channels: true, ..Default::default() });
    let subscribe_only = ChannelOptions { allow_subscribe: true, ..Default::default() };
    assert_eq!(config.namespaces["board"], subscribe_only);
    assert_eq!(config.namespaces["feed"], subscribe_only);
    assert_eq!(config.namespaces.len(), 4);
    // Keys the file does not set keep the hub's defaults.
    assert_eq!(config.client_outbox_bytes, Config::default().client_outbox_bytes);
}

#[test]
fn json_yaml_and_toml_fixtures_give_one_config_and_the_same_lines() {
    let (json_config, json_lines) = fixture("json");
    for extension in ["yaml", "toml"] {
        let (config, lines) = fixture(extension);
        assert_eq!(config, json_config, "config.{extension}");
        assert_eq!(lines, json_lines, "config.{extension}");
    }
}

#[test]
fn the_fixture_warnings_one_line_per_key() {
    let (_, lines) = fixture("json");
    let expected = [
        "admin: not supported: the hub has no admin console yet".to_owned(),
        "channel.namespaces[chat].allow_publish_for_subscriber = true: partly supported: mapped to allow_publish, \
         which also lets connected clients that are not subscribed publish"
            .to_owned(),
        format!("channel.namespaces[board].map: {MAP}"),
        format!("channel.namespaces[board].subscription_type = \"map\": {MAP}"),
        "channel.namespaces[feed].shared_poll: not supported (shared poll subscriptions); the namespace is served \
         as a stream namespace"
            .to_owned(),
        "channel.namespaces[feed].subscription_type = \"shared_poll\": not supported (shared poll subscriptions); \
         the namespace is served as a stream namespace"
            .to_owned(),
        "client.concurrency = 8: not supported: the hub runs a connection's commands one after another".to_owned(),
        "engine.type = \"redis\": not supported: the hub's nodes share channels through RabbitMQ (amqp_url)".to_owned(),
        "proxies[poller]: not supported: the hub uses a named proxy only as its subscribe, publish or RPC proxy, \
         and no namespace or RPC uses this one"
            .to_owned(),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn a_warning_line_names_file_key_value_and_reason() {
    let path = file("json", r#"{"engine": {"type": "redis"}}"#);
    let (_, warnings) = load_path(&path).unwrap();
    assert_eq!(
        warnings[0].to_string(),
        format!(
            "{}: engine.type = \"redis\": not supported: the hub's nodes share channels through RabbitMQ (amqp_url)",
            path.display()
        )
    );
}

#[test]
fn client_token_keys() {
    let (config, lines) = json(
        r#"{"client": {"token": {"rsa_public_key": "", "jwks_public_endpoint": "https://id.example/jwks",
            "audience": "app", "issuer": "https://id.example", "user_id_claim": "sub"}}}"#,
    );
    assert_eq!(config.token.jwks_url.as_deref(), Some("https://id.example/jwks"));
    assert_eq!(config.token.audience.as_deref(), Some("app"));
    assert_eq!(config.token.issuer.as_deref(), Some("https://id.example"));
    assert_eq!(config.token.rsa_public_key, None, "an empty key is no key");
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn client_keys() {
    let (config, lines) = json(
        r#"{"client": {"allow_anonymous_connect_without_token": true, "expired_close_delay": "10s",
            "expired_sub_close_delay": "0s", "stale_close_delay": "3s", "queue_max_size": 65536,
            "connection_limit": 1000, "user_connection_limit": 5, "recovery_max_publication_limit": 100,
            "history_max_publication_limit": 300,
            "subscribe_to_user_personal_channel": {"enabled": true, "personal_channel_namespace": "personal",
              "single_connection": true}},
            "channel": {"namespaces": [{"name": "personal"}]}}"#,
    );
    assert!(config.allow_anonymous);
    assert_eq!(config.client_expired_close_delay, Duration::from_secs(10));
    assert_eq!(config.client_expired_sub_close_delay, Duration::ZERO);
    assert_eq!(config.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.client_outbox_bytes, 65536);
    assert_eq!(config.client_connection_limit, 1000);
    assert_eq!(config.client_user_connection_limit, 5);
    assert_eq!(config.client_recovery_max_publication_limit, 100);
    assert!(config.personal_channel.enabled && config.personal_channel.single_connection);
    assert_eq!(config.personal_channel.namespace, "personal");
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn client_insecure_opens_every_namespace() {
    let (config, lines) = json(r#"{"client": {"insecure": true}, "channel": {"namespaces": [{"name": "chat"}]}}"#);
    assert!(config.allow_anonymous);
    for options in [&config.channel, &config.namespaces["chat"]] {
        assert!(options.allow_subscribe && options.allow_publish);
    }
    assert_eq!(
        lines,
        ["client.insecure = true: partly supported: mapped to allow_anonymous, and allow_subscribe and allow_publish \
          in [channel] and every namespace (the hub has no insecure mode)"]
    );
}

#[test]
fn server_api_log_prometheus_node_and_shutdown() {
    let (config, lines) = json(
        r#"{"http_server": {"address": "127.0.0.1", "port": 8100}, "http_api": {"key": "k", "external": true},
            "log": {"level": "none"}, "prometheus": {"enabled": true, "handler_prefix": "/metrics"},
            "node": {"name": "n1"}, "shutdown": {"timeout": "1m30s"}, "health": {"enabled": true},
            "usage_stats": {"disabled": true}, "admin": {"enabled": false, "password": "x"}}"#,
    );
    assert_eq!(config.listen, "127.0.0.1:8100".parse().unwrap());
    assert_eq!(config.api_key.as_deref(), Some("k"));
    assert_eq!(config.log_level, "off");
    assert!(config.prometheus);
    assert_eq!(config.node_name, "n1");
    assert_eq!(config.shutdown_timeout, Duration::from_secs(90));
    assert!(lines.is_empty(), "{lines:?}");
    let (config, _) = json(r#"{"http_server": {"address": "::1"}}"#);
    assert_eq!(config.listen, "[::1]:8000".parse().unwrap());
    let (config, lines) = json(r#"{"log": {"level": "fatal"}}"#);
    assert_eq!(config.log_level, "error");
    assert_eq!(
        lines,
        ["log.level = \"fatal\": partly supported: mapped to log_level = \"error\" (the hub has no fatal level)"]
    );
}

#[test]
fn centrifugo_defaults_where_they_differ_listen_on_every_interface() {
    let (config, lines) = json("{}");
    assert_eq!(config.listen, "0.0.0.0:8000".parse().unwrap());
    assert_eq!(config, Config { listen: config.listen, node_name: config.node_name.clone(), ..Config::default() });
    assert!(lines.is_empty());
}

#[test]
fn channel_permissions_and_their_partial_lines() {
    let (config, lines) = json(
        r#"{"channel": {"namespaces": [
            {"name": "a", "allow_subscribe_for_anonymous": true, "allow_publish_for_anonymous": true},
            {"name": "b", "allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true,
             "allow_publish_for_client": true, "allow_publish_for_subscriber": true,
             "allow_presence_for_client": true}]}}"#,
    );
    for name in ["a", "b"] {
        assert!(config.namespaces[name].allow_subscribe && config.namespaces[name].allow_publish, "{name}");
    }
    assert_eq!(
        lines,
        [
            "channel.namespaces[a].allow_subscribe_for_anonymous = true: partly supported: mapped to allow_subscribe, \
             which lets every connected client subscribe",
            "channel.namespaces[a].allow_publish_for_anonymous = true: partly supported: mapped to allow_publish, \
             which lets every connected client publish",
            "channel.namespaces[b].allow_presence_for_client = true: partly supported: the hub lets subscribers, \
             and clients that may subscribe, read it",
        ]
    );
}

#[test]
fn rpc_proxy_from_rpc_proxy_or_a_named_one() {
    let (config, lines) = json(
        r#"{"rpc": {"proxy": {"endpoint": "http://backend:3000/rpc"}, "without_namespace": {"proxy_enabled": true},
            "namespaces": [{"name": "ns", "proxy_enabled": true}]}}"#,
    );
    assert_eq!(
        config.proxy.rpc,
        Some(ProxyEndpoint {
            endpoint: "http://backend:3000/rpc".into(),
            timeout: Duration::from_secs(1),
            http_headers: Vec::new(),
        })
    );
    assert_eq!(lines, ["rpc.namespaces: partly supported: every RPC method, namespaced or not, goes to [proxy.rpc]"]);
    // A proxy defined but used by no RPC namespace is not called, as in Centrifugo.
    let (config, lines) = json(r#"{"rpc": {"proxy": {"endpoint": "http://backend:3000/rpc"}}}"#);
    assert_eq!(config.proxy.rpc, None);
    assert!(lines.is_empty());
    let text = error(
        "json",
        r#"{"proxies": [{"name": "one", "endpoint": "http://a/rpc"}, {"name": "two", "endpoint": "http://b/rpc"}],
            "rpc": {"without_namespace": {"proxy_enabled": true, "proxy_name": "one"},
                    "namespaces": [{"name": "x", "proxy_enabled": true, "proxy_name": "two"},
                                   {"name": "y", "proxy_enabled": true, "proxy_name": "three"}]}}"#,
    );
    assert_eq!(
        text,
        "config error in FILE: key \"rpc.namespaces[y]\": uses the proxy \"three\", which is not defined\n\
         config error in FILE: key \"rpc.without_namespace\": not supported: the hub has one RPC proxy \
         ([proxy.rpc]) and this file uses several"
    );
}

fn endpoint(url: &str, timeout: Duration, headers: &[&str]) -> Option<ProxyEndpoint> {
    let http_headers = headers.iter().map(|h| (*h).to_owned()).collect();
    Some(ProxyEndpoint { endpoint: url.into(), timeout, http_headers })
}

#[test]
fn connect_proxy_maps_onto_proxy_connect() {
    let (config, lines) = json(
        r#"{"client": {"proxy": {"connect": {"enabled": true, "endpoint": "http://b/connect", "timeout": "3s",
            "http_headers": ["Cookie", "Authorization"], "include_connection_meta": true, "grpc_metadata": ["x"]},
            "refresh": {"enabled": false, "endpoint": "http://b/refresh"}}}}"#,
    );
    assert_eq!(
        config.proxy.connect,
        endpoint("http://b/connect", Duration::from_secs(3), &["Cookie", "Authorization"])
    );
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(config.proxy.refresh, None, "not enabled");
    let (config, lines) = json(
        r#"{"client": {"proxy": {"refresh": {"enabled": true, "endpoint": "http://b/refresh", "timeout": "2s"}}}}"#,
    );
    assert_eq!(config.proxy.refresh, endpoint("http://b/refresh", Duration::from_secs(2), &[]));
    assert!(lines.is_empty(), "{lines:?}");
    // Not enabled: no connect proxy, no line.
    let (config, lines) = json(r#"{"client": {"proxy": {"connect": {"endpoint": "http://b/connect"}}}}"#);
    assert_eq!(config.proxy.connect, None);
    assert!(lines.is_empty(), "{lines:?}");
    // What the hub cannot do with it changes who may connect: errors.
    let text = error(
        "json",
        r#"{"client": {"proxy": {"connect": {"enabled": true, "endpoint": "grpc://b:9000", "binary_encoding": true,
            "emulated_headers": ["Authorization"], "http": {"static_headers": {"X-Key": "k"}}, "retries": 2}}}}"#,
    );
    let expected = [
        "config error in FILE: key \"client.proxy.connect.binary_encoding\": true: not supported: the hub sends a \
         payload as data when it is JSON, as b64data only otherwise",
        "config error in FILE: key \"client.proxy.connect.emulated_headers\": not supported: the hub forwards \
         headers of the client's HTTP request (http_headers), not the headers a client sends in its connect command",
        "config error in FILE: key \"client.proxy.connect.http.static_headers\": not supported: the hub's proxy \
         requests carry no static headers, TLS settings or status transforms",
        "config error in FILE: key \"client.proxy.connect.retries\": unknown Centrifugo v6 key, expected one of: \
         name, endpoint, timeout, http_headers, grpc_metadata, emulated_headers, binary_encoding, \
         include_connection_meta, http, grpc, enabled",
        "config error in FILE: key \"client.proxy.connect.endpoint\": \"grpc://b:9000\": not supported: the hub \
         calls backends over HTTP only",
    ];
    assert_eq!(text, expected.join("\n"));
    assert_eq!(
        error("json", r#"{"client": {"proxy": {"connect": {"enabled": true}}}}"#),
        "config error in FILE: key \"client.proxy.connect.endpoint\": must be set: the http:// or https:// URL of \
         the backend"
    );
}

#[test]
fn subscribe_and_publish_proxies_from_channel_proxy_or_named_ones() {
    let (config, lines) = json(
        r#"{"proxies": [{"name": "pub", "endpoint": "http://b/publish", "timeout": "2s", "http_headers": ["Cookie"]}],
            "channel": {"proxy": {"subscribe": {"endpoint": "http://b/subscribe"}},
                        "without_namespace": {"subscribe_proxy_enabled": true},
                        "namespaces": [{"name": "chat", "subscribe_proxy_enabled": true, "subscribe_proxy_name": "default",
                                        "publish_proxy_enabled": true, "publish_proxy_name": "pub"},
                                       {"name": "news", "publish_proxy_enabled": true, "publish_proxy_name": "pub"},
                                       {"name": "plain", "publish_proxy_name": "pub"}]}}"#,
    );
    assert_eq!(config.proxy.subscribe, endpoint("http://b/subscribe", Duration::from_secs(1), &[]));
    assert_eq!(config.proxy.publish, endpoint("http://b/publish", Duration::from_secs(2), &["Cookie"]));
    assert!(config.channel.subscribe_proxy && !config.channel.publish_proxy);
    let chat = &config.namespaces["chat"];
    assert!(chat.subscribe_proxy && chat.publish_proxy);
    let news = &config.namespaces["news"];
    assert!(!news.subscribe_proxy && news.publish_proxy);
    assert_eq!(config.namespaces["plain"], ChannelOptions::default());
    assert!(lines.is_empty(), "{lines:?}");
    // A default proxy that no namespace turns on is not called, as in Centrifugo.
    let (config, lines) = json(r#"{"channel": {"proxy": {"publish": {"endpoint": "http://b/publish"}}}}"#);
    assert_eq!(config.proxy.publish, None);
    assert!(lines.is_empty(), "{lines:?}");
    // One endpoint per kind: several are an error, and so is a proxy that is not defined.
    let text = error(
        "json",
        r#"{"proxies": [{"name": "a", "endpoint": "http://a/subscribe"}, {"name": "b", "endpoint": "http://b/subscribe"}],
            "channel": {"namespaces": [{"name": "x", "subscribe_proxy_enabled": true, "subscribe_proxy_name": "a"},
                                       {"name": "y", "subscribe_proxy_enabled": true, "subscribe_proxy_name": "b"},
                                       {"name": "z", "publish_proxy_enabled": true}]}}"#,
    );
    assert_eq!(
        text,
        "config error in FILE: key \"channel.namespaces[y].subscribe_proxy_enabled\": not supported: the hub has \
         one subscribe proxy ([proxy.subscribe]) and this file uses several\n\
         config error in FILE: key \"channel.namespaces[z].publish_proxy_enabled\": uses the proxy \"default\", \
         which is not defined (channel.proxy.publish)"
    );
    // The subscribe proxy decides who may subscribe: what the hub cannot do with it is an error.
    let text = error(
        "json",
        r#"{"channel": {"proxy": {"subscribe": {"endpoint": "http://b/subscribe", "emulated_headers": ["X-Token"]}},
                        "namespaces": [{"name": "x", "subscribe_proxy_enabled": true}]}}"#,
    );
    assert_eq!(
        text,
        "config error in FILE: key \"channel.proxy.subscribe.emulated_headers\": not supported: the hub forwards \
         headers of the client's HTTP request (http_headers), not the headers a client sends in its connect command"
    );
    assert_eq!(
        error("json", r#"{"channel": {"proxy": {"subscribe": {}, "publsh": {}}}}"#),
        "config error in FILE: key \"channel.proxy.publsh\": unknown Centrifugo v6 key, expected one of: subscribe, \
         publish, sub_refresh, subscribe_stream, map_publish, map_remove, shared_poll_refresh"
    );
}

#[test]
fn keys_that_decide_access_are_errors_with_exact_text() {
    let text = error(
        "json",
        r#"{"client": {"token": {"hmac_secret_key": "s", "user_id_claim": "uid", "audience_regex": "^a"}},
            "http_api": {"insecure": true},
            "channel": {"namespaces": [{"name": "chat", "sub_refresh_proxy_enabled": true, "channel_regex": "^[a-z]+$"}],
                        "namespace_boundary": "/"}}"#,
    );
    let expected = [
        "config error in FILE: key \"channel.namespace_boundary\": \"/\": not supported: the hub's is always \":\"",
        "config error in FILE: key \"channel.namespaces[chat].channel_regex\": \"^[a-z]+$\": not supported: the hub \
         cannot check channel names against a regex, so it would take channels Centrifugo refuses",
        "config error in FILE: key \"channel.namespaces[chat].sub_refresh_proxy_enabled\": true: not supported \
         (sub refresh proxy): the hub has none, so a subscription given an expire_at by the subscribe proxy ends \
         when it expires unless the client refreshes with a subscription token",
        "config error in FILE: key \"client.token.audience_regex\": \"^a\": not supported: the hub checks an exact \
         audience (client.token.audience)",
        "config error in FILE: key \"client.token.user_id_claim\": \"uid\": not supported: the hub takes the user \
         from the sub claim",
        "config error in FILE: key \"http_api.insecure\": true: not supported: the hub's server API always needs a \
         key (http_api.key)",
    ];
    assert_eq!(text, expected.join("\n"));
}

#[test]
fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
    let text = error("json", r#"{"client": {"tokn": {}}}"#);
    assert!(text.starts_with("config error in FILE: key \"client.tokn\": unknown Centrifugo v6 key, expected one of: proxy, allowed_origins, token,"), "{text}");
    let text = error("json", r#"{"listen": "0.0.0.0:1"}"#);
    assert!(
        text.starts_with(
            "config error in FILE: key \"listen\": unknown Centrifugo v6 key (a key of the hub's own TOML format, \
             not of Centrifugo's), expected one of: http_server,"
        ),
        "{text}"
    );
    let text = error("yaml", "channel:\n  namespaces:\n    - name: chat\n      presense: true\n");
    assert!(
        text.starts_with("config error in FILE: key \"channel.namespaces[chat].presense\": unknown Centrifugo v6 key"),
        "{text}"
    );
    assert_eq!(
        error("json", r#"{"client": {"ping_interval": "soon", "channel_limit": -1, "allowed_origins": "*"}}"#),
        "config error in FILE: key \"client.allowed_origins\": must be a list of strings\n\
         config error in FILE: key \"client.channel_limit\": must be a whole number, 0 or more\n\
         config error in FILE: key \"client.ping_interval\": must be a duration such as \"25s\", \"500ms\" or \
         \"1h30m\" (Go syntax), 0 or more"
    );
    assert_eq!(
        error("json", r#"{"channel": {"namespaces": [{"name": "a"}, {"name": "a"}, {"presence": true}]}}"#),
        "config error in FILE: key \"channel.namespaces[a]\": this namespace name is used twice\n\
         config error in FILE: key \"channel.namespaces[2].name\": every namespace needs a name"
    );
    assert_eq!(error("json", "[1]"), "config error in FILE: key \".\": must be a table (object) of keys");
    assert_eq!(
        error("json", r#"{"admin": true}"#),
        "config error in FILE: key \"admin\": must be a table (object) of keys"
    );
    assert!(error("json", "{").starts_with("config error in FILE: not valid JSON: "));
    assert!(error("yaml", "a: [").starts_with("config error in FILE: not valid YAML: "));
}

#[test]
fn hub_validation_still_applies_to_mapped_values() {
    let text = error("json", r#"{"client": {"ping_interval": "0s"}}"#);
    assert_eq!(text, "config error in FILE: key \"ping_interval\": must be greater than 0");
}

#[test]
fn environment_and_flags_still_override_a_centrifugo_file() {
    let path = file("json", r#"{"http_api": {"key": "from-file"}, "log": {"level": "debug"}}"#);
    let args = ConfigArgs { config: Some(path), log_level: Some("warn".into()), ..ConfigArgs::default() };
    let env = vec![("HUB_API_KEY".to_owned(), "from-env".to_owned())];
    let (config, _) = Config::load_reporting_from(&args, env).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("from-env"));
    assert_eq!(config.log_level, "warn");
}

#[test]
fn detection_leaves_the_hubs_own_toml_alone() {
    // Keys both formats share (channel, prometheus) in the hub's shape: the hub's format.
    let own = "listen = \"127.0.0.1:9\"\nprometheus = true\n[channel]\npresence = true\n[namespaces.chat]\nhistory_size = 1\nhistory_ttl = \"1s\"\n";
    let (config, lines) = load("toml", own);
    assert!(config.prometheus && config.channel.presence);
    assert!(lines.is_empty());
    // A typo in the hub's format is still the hub's unknown key.
    let text = error("toml", "lisen = \"127.0.0.1:9\"\n");
    assert!(text.starts_with("config error in FILE: key \"lisen\": unknown key, expected one of: listen,"), "{text}");
    // An empty file is the hub's (defaults).
    assert_eq!(load("toml", "").0.listen, Config::default().listen);
}

#[test]
fn detection_recognises_centrifugo_toml_by_its_keys() {
    let (config, _) = load("toml", "[channel.without_namespace]\npresence = true\n");
    assert!(config.channel.presence);
    let (config, _) = load("toml", "[prometheus]\nenabled = true\n");
    assert!(config.prometheus);
    let (config, _) = load("conf", "[client.token]\nhmac_secret_key = \"s\"\n");
    assert_eq!(config.token.hmac_secret.as_deref(), Some("s"));
    // JSON under another name is Centrifugo's too.
    let (config, _) = load("conf", r#"{"log": {"level": "WARN"}}"#);
    assert_eq!(config.log_level, "warn");
    assert_eq!(
        error("toml", "listen = \"127.0.0.1:9\"\n[client]\ninsecure = true\n"),
        "config error in FILE: mixes a Centrifugo key (client) with a hub key (listen): write either a Centrifugo \
         v6 config or the hub's own"
    );
}

#[test]
fn go_durations() {
    assert_eq!(go_duration("0"), Some(Duration::ZERO));
    assert_eq!(go_duration("300s"), Some(Duration::from_secs(300)));
    assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(go_duration("2us"), Some(Duration::from_micros(2)));
    assert_eq!(go_duration("720h"), Some(Duration::from_secs(720 * 3600)));
    for bad in ["", "5", "-1s", "1d", "s", "1.s5", ".s", "abc"] {
        assert_eq!(go_duration(bad), None, "{bad:?}");
    }
    // A whole number in the file is nanoseconds, as Centrifugo reads it.
    let (config, _) = json(r#"{"client": {"ping_interval": 2000000000}}"#);
    assert_eq!(config.ping_interval, Duration::from_secs(2));
}
