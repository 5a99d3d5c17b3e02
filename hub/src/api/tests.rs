//! Server API tests: the real routes on an in-process app (no socket), a real
//! [`Node`] behind them.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{test as actix_test, web, App};
use serde_json::{json, Value};

use super::methods::{disconnect_code, DisconnectSpec};
use super::MAX_BODY_BYTES;
use crate::config::{ChannelOptions, Config};
use crate::node::Node;
use protocol::codes;

const KEY: &str = "k";

fn config() -> Config {
    let history = ChannelOptions {
        history_size: 10,
        history_ttl: Duration::from_secs(60),
        presence: true,
        allow_subscribe: true,
        ..ChannelOptions::default()
    };
    let mut config = Config { api_key: Some(KEY.into()), channel: history, ..Config::default() };
    // Neither history nor presence.
    config.namespaces.insert("quiet".into(), ChannelOptions { allow_subscribe: true, ..ChannelOptions::default() });
    config
}

async fn node(config: Config) -> Arc<Node> {
    Node::start(config).await.expect("the node starts")
}

/// The hub's routes in an in-process app, with `node` behind them.
macro_rules! app {
    ($node:expr) => {
        actix_test::init_service(App::new().app_data(web::Data::new($node.clone())).configure(crate::api::routes)).await
    };
}

/// Sends `$request` (a `TestRequest`) with body `$body` to `$app`.
macro_rules! send {
    ($app:expr, $request:expr, $body:expr) => {
        answer(actix_test::call_service(&$app, $request.set_payload(String::from($body)).to_request()).await)
    };
}

/// POSTs the JSON `$body` to `$path` with the right key.
macro_rules! post {
    ($app:expr, $path:expr, $body:expr) => {
        send!($app, actix_test::TestRequest::post().uri(&$path).insert_header(("X-API-Key", KEY)), $body.to_string())
    };
}

struct Answer {
    status: StatusCode,
    text: String,
    json: Value,
}

async fn answer<B: MessageBody>(response: ServiceResponse<B>) -> Answer {
    let status = response.status();
    let bytes = actix_test::read_body(response).await;
    let text = String::from_utf8(bytes.to_vec()).expect("replies are UTF-8");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, text, json }
}

fn ok_result(answer: &Answer) -> &Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.json.get("error").is_none(), "unexpected error: {}", answer.text);
    &answer.json["result"]
}

fn error_code(answer: &Answer) -> u64 {
    answer.json["error"]["code"].as_u64().unwrap_or_else(|| panic!("no error code in {}", answer.text))
}

fn offsets(history: &Value) -> Vec<u64> {
    history["publications"].as_array().expect("publications").iter().map(|p| p["offset"].as_u64().unwrap()).collect()
}

#[actix_web::test]
async fn a_missing_or_wrong_key_is_401_with_a_json_error() {
    let node = node(config()).await;
    let app = app!(node);
    let body = r#"{"channel":"news","data":1}"#;
    for request in [
        actix_test::TestRequest::post().uri("/api/publish"),
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", "wrong")),
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", "kk")),
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", "")),
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("Authorization", "apikey wrong")),
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("Authorization", "Bearer k")),
        actix_test::TestRequest::post().uri("/api/unknown"),
        actix_test::TestRequest::post().uri("/api"),
    ] {
        let answer = send!(app, request, body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json, json!({"error": {"code": 101, "message": "unauthorized"}}));
    }
    let via_authorization =
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("Authorization", "apikey k"));
    assert_eq!(send!(app, via_authorization, body).await.status, StatusCode::OK);
    let scheme_any_case =
        actix_test::TestRequest::post().uri("/api/publish").insert_header(("Authorization", "APIKEY k"));
    assert_eq!(send!(app, scheme_any_case, body).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn without_a_configured_key_everything_is_401() {
    let node = node(Config { api_key: None, ..config() }).await;
    let app = app!(node);
    let answer = post!(app, "/api/info", json!({})).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&answer), 101);
}

#[actix_web::test]
async fn bad_bodies_are_400_with_serdes_reason() {
    let node = node(config()).await;
    let app = app!(node);
    let request = || actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", KEY));
    for (body, reason) in [
        ("{not json", "key must be a string"),
        (r#"{"channel": 5, "data": 1}"#, "invalid type: integer `5`, expected a string"),
        (r#"{"data": 1}"#, "missing field `channel`"),
        (r#"{"channel": "news"}"#, "missing field `data`"),
        (r#"{"channel": "", "data": 1}"#, "`channel` must not be empty"),
        (r#"{"channel": "news", "b64data": "%%"}"#, "`b64data`: invalid base64"),
        (r#"{"channel": "news", "data": 1, "tags": {"a": 1}}"#, "invalid type: integer `1`, expected a string"),
        ("[\"news\", 1]", "the body must be a JSON object"),
        ("\"news\"", "the body must be a JSON object"),
    ] {
        let answer = send!(app, request(), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&answer), 107, "{body}");
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("bad request: "), "{message}");
        assert!(message.contains(reason), "{body}: {message}");
    }
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": "ten"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = post!(app, "/api/broadcast", json!({"channels": [], "data": 1})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = post!(app, "/api/disconnect", json!({"user": "u", "disconnect": {"code": 1000}})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = post!(app, "/api/disconnect", json!({"user": "u", "whitelist": "c1"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = post!(app, "/api/refresh", json!({"user": "u", "expire_at": -5})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text.contains("`expire_at` -5 is negative"), "{}", answer.text);
    let answer = post!(app, "/api/refresh", json!({"user": "u", "expired": true, "expire_at": -1})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "negative even with expired: {}", answer.text);
    let answer = post!(app, "/api/refresh", json!({"user": "u", "info": {"a": 1}})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text.contains("`info` is not supported"), "{}", answer.text);
    let answer = post!(app, "/api/refresh", json!({"expire_at": 5})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text.contains("missing field `user`"), "{}", answer.text);
    // session, whitelist and refresh are accepted.
    for (method, body) in [
        ("subscribe", json!({"user": "u", "channel": "news", "session": "s"})),
        ("unsubscribe", json!({"user": "u", "channel": "news", "session": "s", "client": "c"})),
        ("disconnect", json!({"user": "u", "whitelist": ["c1"], "session": "s"})),
        ("refresh", json!({"user": "u", "expire_at": 2_000_000_000u64})),
        ("refresh", json!({"user": "u", "expired": true, "client": "c"})),
    ] {
        let answer = post!(app, &format!("/api/{method}"), body.clone()).await;
        assert_eq!(answer.json, json!({"result": {}}), "{method} {body}");
    }
}

#[actix_web::test]
async fn unknown_method_is_404_and_oversized_body_is_413() {
    let node = node(config()).await;
    let app = app!(node);
    let answer = post!(app, "/api/rpc", json!({})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json, json!({"error": {"code": 104, "message": "method not found"}}));

    let big = format!(r#"{{"channel":"news","data":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let request = actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", KEY));
    let answer = send!(app, request, &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&answer), 106);
    // Nothing was published.
    let history = post!(app, "/api/history", json!({"channel": "news", "limit": -1})).await;
    assert_eq!(ok_result(&history)["offset"], 0);
}

#[actix_web::test]
async fn publish_answers_increasing_offsets_in_one_epoch() {
    let node = node(config()).await;
    let app = app!(node);
    let first = post!(app, "/api/publish", json!({"channel": "news", "data": {"n": 1}})).await;
    let second = post!(app, "/api/publish", json!({"channel": "news", "data": {"n": 2}, "tags": {"k": "v"}})).await;
    let (first, second) = (ok_result(&first), ok_result(&second));
    assert_eq!(first["offset"], 1);
    assert_eq!(second["offset"], 2);
    assert!(first["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(first["epoch"], second["epoch"]);

    // Without history there is no position: `{}` as Centrifugo answers.
    let quiet = post!(app, "/api/publish", json!({"channel": "quiet:room", "data": 1})).await;
    assert_eq!(ok_result(&quiet), &json!({}));

    // Binary data in base64, and options this hub ignores.
    let binary =
        post!(app, "/api/publish", json!({"channel": "news", "b64data": "aGk=", "skip_history": false, "delta": true}))
            .await;
    assert_eq!(ok_result(&binary)["offset"], 3);
    let history = post!(app, "/api/history", json!({"channel": "news", "limit": 10})).await;
    let history = ok_result(&history);
    assert_eq!(history["publications"][1]["tags"], json!({"k": "v"}));
    assert_eq!(history["publications"][2]["data"], "hi");
}

#[actix_web::test]
async fn a_repeated_idempotency_key_publishes_once() {
    let node = node(config()).await;
    let app = app!(node);
    let body = json!({"channel": "news", "data": {"once": true}, "idempotency_key": "key-1"});
    let first = post!(app, "/api/publish", body.clone()).await;
    let again = post!(app, "/api/publish", body).await;
    assert_eq!(ok_result(&first), ok_result(&again));
    assert_eq!(ok_result(&first)["offset"], 1);
    let other = post!(app, "/api/publish", json!({"channel": "news", "data": 2, "idempotency_key": "key-2"})).await;
    assert_eq!(ok_result(&other)["offset"], 2);
    let history = post!(app, "/api/history", json!({"channel": "news", "limit": 10})).await;
    assert_eq!(offsets(ok_result(&history)), [1, 2]);
}

#[actix_web::test]
async fn history_embeds_the_published_json_byte_for_byte() {
    let node = node(config()).await;
    let app = app!(node);
    let data = r#"{"b":1,"a":[1.50,2e3,"\u00e9",null],"z":{"y":"x"}}"#;
    let request = actix_test::TestRequest::post().uri("/api/publish").insert_header(("X-API-Key", KEY));
    let published = send!(app, request, &format!(r#"{{"channel":"news","data":{data}}}"#)).await;
    ok_result(&published);
    let history = post!(app, "/api/history", json!({"channel": "news", "limit": 1})).await;
    assert!(history.text.contains(&format!(r#""data":{data}"#)), "{}", history.text);
    assert_eq!(ok_result(&history)["publications"][0]["data"]["a"][0], 1.5);
}

#[actix_web::test]
async fn history_honours_limit_reverse_and_since() {
    let node = node(config()).await;
    let app = app!(node);
    let mut epoch = String::new();
    for n in 1..=4 {
        let answer = post!(app, "/api/publish", json!({"channel": "news", "data": {"n": n}})).await;
        epoch = ok_result(&answer)["epoch"].as_str().unwrap().to_owned();
    }

    // No limit: the position only (Centrifugo's default).
    let answer = post!(app, "/api/history", json!({"channel": "news"})).await;
    assert_eq!(ok_result(&answer), &json!({"publications": [], "epoch": epoch, "offset": 4}));

    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": 2})).await;
    assert_eq!(offsets(ok_result(&answer)), [1, 2]);
    assert_eq!(ok_result(&answer)["publications"][0]["data"], json!({"n": 1}));
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": -1})).await;
    assert_eq!(offsets(ok_result(&answer)), [1, 2, 3, 4]);
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": 1000})).await;
    assert_eq!(offsets(ok_result(&answer)), [1, 2, 3, 4]);
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": 2, "reverse": true})).await;
    assert_eq!(offsets(ok_result(&answer)), [4, 3]);
    let answer =
        post!(app, "/api/history", json!({"channel": "news", "limit": 10, "since": {"offset": 2, "epoch": epoch}}))
            .await;
    assert_eq!(offsets(ok_result(&answer)), [3, 4]);
    let answer = post!(
        app,
        "/api/history",
        json!({"channel": "news", "limit": 10, "since": {"offset": 3, "epoch": epoch}, "reverse": true})
    )
    .await;
    assert_eq!(offsets(ok_result(&answer)), [2, 1]);
    // A position without an epoch means the current epoch.
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": 10, "since": {"offset": 3}})).await;
    assert_eq!(offsets(ok_result(&answer)), [4]);

    let answer =
        post!(app, "/api/history", json!({"channel": "news", "limit": 10, "since": {"offset": 2, "epoch": "other"}}))
            .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(error_code(&answer), u64::from(codes::UNRECOVERABLE_POSITION.code));

    let removed = post!(app, "/api/history_remove", json!({"channel": "news"})).await;
    assert_eq!(ok_result(&removed), &json!({}));
    let answer = post!(app, "/api/history", json!({"channel": "news", "limit": 10})).await;
    assert_eq!(ok_result(&answer), &json!({"publications": [], "epoch": epoch, "offset": 4}));
}

#[actix_web::test]
async fn operation_errors_are_200_with_the_error() {
    let node = node(config()).await;
    let app = app!(node);
    let answer = post!(app, "/api/publish", json!({"channel": "nope:room", "data": 1})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({"error": {"code": 102, "message": "unknown channel"}}));
    for method in ["presence", "presence_stats", "history", "history_remove"] {
        let answer = post!(app, &format!("/api/{method}"), json!({"channel": "quiet:room"})).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}");
        assert_eq!(answer.json, json!({"error": {"code": 108, "message": "not available"}}), "{method}");
    }
    let long = "x".repeat(node.config.max_channel_length + 1);
    let answer = post!(app, "/api/subscribe", json!({"user": "u", "channel": long})).await;
    assert_eq!(error_code(&answer), 102);
}

#[actix_web::test]
async fn broadcast_answers_per_channel() {
    let node = node(config()).await;
    let app = app!(node);
    ok_result(&post!(app, "/api/publish", json!({"channel": "b", "data": 0})).await);
    let answer = post!(app, "/api/broadcast", json!({"channels": ["a", "b", "nope:c", ""], "data": {"x": 1}})).await;
    let responses = ok_result(&answer)["responses"].as_array().expect("responses").clone();
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0]["result"]["offset"], 1);
    assert_eq!(responses[1]["result"]["offset"], 2);
    assert_eq!(responses[2], json!({"error": {"code": 102, "message": "unknown channel"}}));
    assert_eq!(responses[3]["error"]["code"], 107);
    for channel in ["a", "b"] {
        let history = post!(app, "/api/history", json!({"channel": channel, "limit": 1, "reverse": true})).await;
        assert_eq!(ok_result(&history)["publications"][0]["data"], json!({"x": 1}));
    }
}

#[actix_web::test]
async fn batch_replies_in_order_keyed_by_method() {
    let node = node(config()).await;
    let app = app!(node);
    for parallel in [false, true] {
        let channel = format!("batch{parallel}");
        let body = json!({
            "commands": [
                {"publish": {"channel": channel, "data": {"first": true}}},
                {"presence_stats": {"channel": channel}},
                {"publish": {"channel": "nope:x", "data": 1}},
                {"rpc": {"method": "x"}},
                {"info": {}},
                {"history_remove": {"channel": channel}},
            ],
            "parallel": parallel,
        });
        let answer = post!(app, "/api/batch", body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let replies = answer.json["replies"].as_array().unwrap_or_else(|| panic!("no replies: {}", answer.text));
        assert_eq!(replies.len(), 6);
        assert_eq!(replies[0]["publish"]["offset"], 1);
        assert_eq!(replies[1], json!({"presence_stats": {"num_clients": 0, "num_users": 0}}));
        assert_eq!(replies[2], json!({"error": {"code": 102, "message": "unknown channel"}}));
        assert_eq!(replies[3], json!({"error": {"code": 104, "message": "method not found"}}));
        assert_eq!(replies[4]["info"]["nodes"][0]["uid"], node.uid.as_str());
        assert_eq!(replies[5], json!({"history_remove": {}}));
    }
    // refresh and the session/whitelist fields in a batch.
    let body = json!({"commands": [
        {"refresh": {"user": "u", "expired": true, "session": "s"}},
        {"disconnect": {"user": "u", "whitelist": ["c1"]}},
        {"refresh": {"user": "u", "expire_at": -1}},
    ]});
    let answer = post!(app, "/api/batch", body).await;
    let replies = &answer.json["replies"];
    assert_eq!(replies[0], json!({"refresh": {}}), "{}", answer.text);
    assert_eq!(replies[1], json!({"disconnect": {}}));
    assert_eq!(replies[2]["error"]["code"], 107);
    // Sequential: a publish then the history that sees it.
    let body = json!({"commands": [
        {"publish": {"channel": "seq", "data": "one"}},
        {"history": {"channel": "seq", "limit": 10}},
    ]});
    let answer = post!(app, "/api/batch", body).await;
    let replies = &answer.json["replies"];
    assert_eq!(replies[1]["history"]["publications"][0]["data"], "one");
    assert_eq!(replies[1]["history"]["offset"], 1);
    // A command that does not decode gets its own error (the rule: tests/payloads.rs).
    let answer = post!(app, "/api/batch", json!({"commands": [{"publish": {"channel": 1}}]})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["replies"][0]["error"]["code"], 107);
    // An empty batch.
    let answer = post!(app, "/api/batch", json!({"commands": []})).await;
    assert_eq!(answer.json, json!({"replies": []}));
}

#[actix_web::test]
async fn channels_info_presence_and_user_methods_have_centrifugos_shapes() {
    let node = node(Config { node_name: "hub-test".into(), ..config() }).await;
    let app = app!(node);
    let channels = post!(app, "/api/channels", json!({})).await;
    assert_eq!(ok_result(&channels), &json!({"channels": {}}));
    let channels = post!(app, "/api/channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(ok_result(&channels), &json!({"channels": {}}));

    let info = post!(app, "/api/info", json!({})).await;
    let nodes = ok_result(&info)["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 1);
    let info = nodes[0].as_object().expect("a node object");
    for key in ["uid", "name", "version", "num_clients", "num_users", "num_channels", "num_subs", "uptime"] {
        assert!(info.contains_key(key), "info lacks {key}");
    }
    assert_eq!(info["name"], "hub-test");
    assert_eq!(info["version"], crate::VERSION);
    // An empty body counts as `{}`.
    let request = actix_test::TestRequest::post().uri("/api/info").insert_header(("X-API-Key", KEY));
    assert_eq!(send!(app, request, "").await.status, StatusCode::OK);

    let presence = post!(app, "/api/presence", json!({"channel": "news"})).await;
    assert_eq!(ok_result(&presence), &json!({"presence": {}}));
    let stats = post!(app, "/api/presence_stats", json!({"channel": "news"})).await;
    assert_eq!(ok_result(&stats), &json!({"num_clients": 0, "num_users": 0}));

    for (method, body) in [
        ("subscribe", json!({"user": "u", "channel": "news"})),
        (
            "subscribe",
            json!({"user": "u", "channel": "news", "client": "c", "info": {"a": 1}, "recover_since": {"offset": 1}}),
        ),
        ("unsubscribe", json!({"user": "u", "channel": "news", "client": ""})),
        ("disconnect", json!({"user": "u"})),
        ("disconnect", json!({"user": "", "client": "c", "disconnect": {"code": 4000, "reason": "bye"}})),
    ] {
        let answer = post!(app, &format!("/api/{method}"), body).await;
        assert_eq!(ok_result(&answer), &json!({}), "{method}");
    }
}

#[actix_web::test]
async fn the_single_endpoint_format_answers_one_line_per_command() {
    let node = node(config()).await;
    let app = app!(node);
    let body = [
        r#"{"id":1,"method":"publish","params":{"channel":"news","data":{"a":1}}}"#,
        r#"{"method":"PUBLISH","params":{"channel":"nope:x","data":1}}"#,
        r#"{"id":3,"method":6,"params":{"channel":"news","limit":10}}"#,
        r#"{"id":4,"method":"rpc","params":{}}"#,
        r#"{"id":5,"method":"publish","params":{"channel":"news"}}"#,
        r#"{"id":6,"method":"info"}"#,
        r#"{"id":7,"method":12,"params":{"user":"u","expire_at":2000000000,"session":"s"}}"#,
        r#"{"id":8,"method":"disconnect","params":{"user":"u","whitelist":["c1"],"session":"s"}}"#,
    ]
    .join("\n");
    let request = actix_test::TestRequest::post().uri("/api").insert_header(("X-API-Key", KEY));
    let answer = send!(app, request, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let lines: Vec<Value> = answer.text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 8, "{}", answer.text);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["result"]["offset"], 1);
    assert_eq!(lines[1], json!({"error": {"code": 102, "message": "unknown channel"}}));
    assert_eq!(lines[2]["result"]["publications"][0]["data"], json!({"a": 1}));
    assert_eq!(lines[3]["error"]["code"], 104);
    assert_eq!(lines[4]["error"]["code"], 107);
    assert!(lines[5]["result"]["nodes"].is_array());
    assert_eq!(lines[6], json!({"id": 7, "result": {}}), "refresh is Centrifugo's method 12");
    assert_eq!(lines[7], json!({"id": 8, "result": {}}));

    // A body that is not a JSON sequence runs nothing.
    let request = actix_test::TestRequest::post().uri("/api").insert_header(("X-API-Key", KEY));
    let body = r#"{"method":"publish","params":{"channel":"news","data":2}} {broken"#;
    assert_eq!(send!(app, request, body).await.status, StatusCode::BAD_REQUEST);
    let history = post!(app, "/api/history", json!({"channel": "news"})).await;
    assert_eq!(ok_result(&history)["offset"], 1);
}

#[actix_web::test]
async fn no_input_makes_a_handler_fail_badly() {
    let node = node(config()).await;
    let app = app!(node);
    let bodies = [
        "",
        " ",
        "null",
        "0",
        "\"s\"",
        "[]",
        "{}",
        "{\"channel\":null}",
        "{\"channel\":\"\u{0}\",\"data\":1}",
        "{\"channels\":[null]}",
        "{\"commands\":[{}]}",
        "{\"commands\":{}}",
        "{\"limit\":-2147483648,\"channel\":\"news\"}",
        "{\"channel\":\"news\",\"since\":{\"offset\":18446744073709551615}}",
        "{\"pattern\":\"**?*\"}",
        "\u{feff}{}",
        "{\"user\":\"u\",\"disconnect\":{\"code\":4294967295}}",
        "{\"channel\":\"news\",\"data\":1e999}",
    ];
    let paths = ["/api", "/api/batch"].into_iter().map(str::to_owned);
    let paths: Vec<String> = paths.chain(super::Method::ALL.iter().map(|m| format!("/api/{}", m.name()))).collect();
    for path in &paths {
        for body in bodies {
            let request = actix_test::TestRequest::post().uri(path).insert_header(("X-API-Key", KEY));
            let answer = send!(app, request, body).await;
            assert!(
                [StatusCode::OK, StatusCode::BAD_REQUEST].contains(&answer.status),
                "{path} {body:?}: {} {}",
                answer.status,
                answer.text
            );
            // Not parsed: published data such as `1e999` is valid JSON that serde_json cannot hold.
            assert!(answer.text.starts_with('{') && answer.text.ends_with('}'), "{path} {body:?}: {}", answer.text);
        }
    }
}

// Found by schemathesis (scripts/openapi-check.sh): serde's derived decoding
// filled `since` and `disconnect` from an array, by position.
#[actix_web::test]
async fn nested_objects_are_objects_or_null() {
    let node = node(config()).await;
    let app = app!(node);
    for (path, body) in [
        ("/api/history", json!({"channel": "news", "since": [null, null]})),
        ("/api/history", json!({"channel": "news", "since": [1, ""]})),
        ("/api/history", json!({"channel": "news", "since": 1})),
        ("/api/disconnect", json!({"user": "u", "disconnect": [3000]})),
        ("/api/disconnect", json!({"user": "u", "disconnect": "3000"})),
    ] {
        let answer = post!(app, path, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", answer.text);
        assert_eq!(error_code(&answer), 107);
        assert!(answer.text.contains("expected an object or null"), "{path} {body}: {}", answer.text);
    }
    // In a batch the command gets the error; the batch itself answers 200.
    let answer =
        post!(app, "/api/batch", json!({"commands": [{"history": {"channel": "news", "since": [1, ""]}}]})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["replies"][0]["error"]["code"], 107, "{}", answer.text);
    for (path, body) in [
        ("/api/history", json!({"channel": "news", "since": null})),
        ("/api/history", json!({"channel": "news", "since": {}})),
        ("/api/disconnect", json!({"user": "u", "disconnect": null})),
        ("/api/disconnect", json!({"user": "u", "disconnect": {}})),
    ] {
        ok_result(&post!(app, path, body).await);
    }
}

// Found by schemathesis: JSON Schema, so OpenAPI 3.1, counts `2.0` as an
// integer, and the document's integer fields were refused in that spelling.
#[actix_web::test]
async fn integer_fields_take_whole_numbers_in_any_spelling() {
    let node = node(config()).await;
    let app = app!(node);
    let mut epoch = String::new();
    for n in 1..=3 {
        let answer = post!(app, "/api/publish", json!({"channel": "news", "data": n})).await;
        epoch = ok_result(&answer)["epoch"].as_str().unwrap().to_owned();
    }
    let history = |body: &str| {
        actix_test::TestRequest::post()
            .uri("/api/history")
            .insert_header(("X-API-Key", KEY))
            .set_payload(body.to_owned())
    };
    for (body, expected) in [
        (r#"{"channel":"news","limit":2.0}"#, vec![1, 2]),
        (r#"{"channel":"news","limit":2e0}"#, vec![1, 2]),
        (r#"{"channel":"news","limit":-1.0}"#, vec![1, 2, 3]),
        (r#"{"channel":"news","limit":1e1,"since":{"offset":1.0}}"#, vec![2, 3]),
        (r#"{"channel":"news","limit":10,"since":{"offset":-0.0}}"#, vec![1, 2, 3]),
    ] {
        let answer = answer(actix_test::call_service(&app, history(body).to_request()).await).await;
        assert_eq!(offsets(ok_result(&answer)), expected, "{body}");
    }
    let since = format!(r#"{{"channel":"news","limit":10,"since":{{"offset":2.0,"epoch":"{epoch}"}}}}"#);
    let reply = answer(actix_test::call_service(&app, history(&since).to_request()).await).await;
    assert_eq!(offsets(ok_result(&reply)), [3]);
    for (body, reason) in [
        (r#"{"channel":"news","limit":2.5}"#, "invalid type: floating point `2.5`, expected i32"),
        (r#"{"channel":"news","limit":3e9}"#, "expected i32"),
        (r#"{"channel":"news","limit":2147483648}"#, "invalid value: number 2147483648, expected i32"),
        (r#"{"channel":"news","limit":"2"}"#, "invalid type: string"),
        (r#"{"channel":"news","since":{"offset":-1.0}}"#, "expected u64"),
        (r#"{"channel":"news","since":{"offset":1.8446744073709552e19}}"#, "expected u64"),
    ] {
        let answer = answer(actix_test::call_service(&app, history(body).to_request()).await).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text);
        assert!(answer.text.contains(reason), "{body}: {}", answer.text);
    }
    let answer = post!(app, "/api/disconnect", json!({"user": "u", "disconnect": {"code": 3000.0}})).await;
    assert_eq!(ok_result(&answer), &json!({}));
    let answer = post!(app, "/api/disconnect", json!({"user": "u", "disconnect": {"code": 3000.5}})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

// Found by schemathesis: a body of whitespace was taken for an empty one.
#[actix_web::test]
async fn only_an_empty_body_counts_as_an_empty_object() {
    let node = node(config()).await;
    let app = app!(node);
    let request = || actix_test::TestRequest::post().uri("/api/info").insert_header(("X-API-Key", KEY));
    assert_eq!(send!(app, request(), "").await.status, StatusCode::OK);
    assert_eq!(send!(app, request(), " \r\n{}\n").await.status, StatusCode::OK);
    for body in ["\r", " ", "\n\t"] {
        let answer = send!(app, request(), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}: {}", answer.text);
        assert_eq!(error_code(&answer), 107);
    }
}

#[test]
fn disconnect_codes_map_to_reconnect_or_not() {
    let spec = |code| DisconnectSpec { code: Some(code) };
    assert_eq!(disconnect_code(None).unwrap(), codes::FORCE_NO_RECONNECT);
    assert_eq!(disconnect_code(Some(&DisconnectSpec { code: None })).unwrap(), codes::FORCE_NO_RECONNECT);
    assert_eq!(disconnect_code(Some(&spec(0))).unwrap(), codes::FORCE_NO_RECONNECT);
    assert_eq!(disconnect_code(Some(&spec(3011))).unwrap(), codes::FORCE_RECONNECT);
    assert_eq!(disconnect_code(Some(&spec(3503))).unwrap(), codes::FORCE_NO_RECONNECT);
    let custom = disconnect_code(Some(&spec(4000))).unwrap();
    assert_eq!((custom.code, custom.reason), (4000, "force reconnect"));
    let custom = disconnect_code(Some(&spec(4500))).unwrap();
    assert_eq!((custom.code, custom.reason), (4500, "force disconnect"));
    assert!(disconnect_code(Some(&spec(2999))).is_err());
    assert!(disconnect_code(Some(&spec(5000))).is_err());
}

#[test]
fn keys_compare_whole() {
    assert!(super::keys_equal(b"secret", b"secret"));
    assert!(!super::keys_equal(b"secre", b"secret"));
    assert!(!super::keys_equal(b"secrets", b"secret"));
    assert!(!super::keys_equal(b"secreT", b"secret"));
    assert!(!super::keys_equal(b"", b"secret"));
}

mod payloads;
