//! A Centrifugo v6 config file, as is: the `hub` binary serves with what it maps
//! (`testdata/centrifugo/config.json`, a file shaped like the ones Centrifugo users
//! have), and `hub checkconfig` prints the lines for the keys it does not support and the
//! hub config to migrate to.

use std::process::Command;
use std::time::Duration;

use hub::auth;
use hub::config::{Config, ConfigArgs};
use protocol::codes;
use protocol::Encoding;

use crate::helpers::{connect_token_with, raw_response};
use crate::logging::HubProcess;
use crate::ws_client::WsClient;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hub/testdata/centrifugo/config.json");
/// `client.token.hmac_secret_key` and `http_api.key` of the fixture.
const SECRET: &str = "centrifugo-migration-secret";
const API_KEY: &str = "centrifugo-migration-api-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_serves_a_centrifugo_json_config_as_is() {
    let args = ["--config", FIXTURE, "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "hub=info"];
    let (mut hub, addr) = HubProcess::start_exact(&args, &[]);
    let hour = Some(auth::expires_in(Duration::from_secs(3600)));

    // A token signed with the mapped HMAC secret connects, subscribes to a namespace
    // open to clients (allow_subscribe_for_client) and publishes as its subscriber.
    let mut client = WsClient::open(addr, Encoding::Json).await;
    client.connect(&connect_token_with(SECRET, "alice", None, &[], hour)).await.expect("the token connects");
    client.subscribe("chat:room").await;
    // join_leave is on in the namespace: the subscriber hears its own join.
    assert_eq!(
        client.recv_push().await.join.and_then(|join| join.info).map(|info| info.user).as_deref(),
        Some("alice")
    );
    client.publish("chat:room", &br#"{"text":"hi"}"#[..]).await.expect("a subscriber publishes");
    assert_eq!(&client.recv_pub("chat:room").await.data[..], br#"{"text":"hi"}"#);

    // allow_anonymous_connect_without_token is false: no token, error 101.
    let mut anonymous = WsClient::open(addr, Encoding::Json).await;
    assert_eq!(anonymous.connect("").await.unwrap_err(), codes::UNAUTHORIZED.to_proto());
    // Another secret: 3500.
    let mut forged = WsClient::open(addr, Encoding::Json).await;
    let id = forged.next_id();
    let token = connect_token_with("not-the-secret", "mallory", None, &[], hour);
    let connect = protocol::proto::ConnectRequest { token, ..Default::default() };
    forged.send(&[protocol::proto::Command { id, connect: Some(connect), ..Default::default() }]).await;
    assert_eq!(forged.expect_close().await, (3500, "invalid token".to_string()));

    // http_api.key is the server API key.
    let body = r#"{"channel":"chat:room","data":{"text":"from the API"}}"#;
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = raw_response(addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(&client.recv_pub("chat:room").await.data[..], br#"{"text":"from the API"}"#);
    hub.terminate();
}

#[test]
fn checkconfig_prints_the_lines_and_the_hub_config_to_migrate_to() {
    let output = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["checkconfig", "--show-secrets", "--config", FIXTURE])
        .env_remove("RUST_LOG")
        .output()
        .expect("the hub binary runs");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    let lines: Vec<&str> = stderr.lines().collect();
    // One line per key the hub does not take as is (delta compression maps now).
    assert_eq!(lines.len(), 9, "{stderr}");
    assert!(lines.iter().all(|line| line.starts_with(&format!("warning: {FIXTURE}: "))), "{stderr}");
    assert!(
        lines.contains(&format!("warning: {FIXTURE}: admin: not supported: the hub has no admin console yet").as_str()),
        "{stderr}"
    );
    // The TOML on stdout is a hub config that loads back to the same settings.
    let dir = std::env::temp_dir().join(format!("hub-checkconfig-centrifugo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let migrated = dir.join("hub.toml");
    std::fs::write(&migrated, &output.stdout).expect("write the TOML");
    let load = |path: &std::path::Path| {
        let args = ConfigArgs { config: Some(path.to_owned()), ..ConfigArgs::default() };
        Config::load_reporting_from(&args, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    };
    let (from_toml, warnings) = load(&migrated);
    assert!(warnings.is_empty(), "the migrated file is the hub's own format");
    let (from_centrifugo, _) = load(std::path::Path::new(FIXTURE));
    assert_eq!(from_toml, Config { node_name: from_toml.node_name.clone(), ..from_centrifugo });
    let _ = std::fs::remove_dir_all(&dir);
}
