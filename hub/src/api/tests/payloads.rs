//! Payloads at their edges (empty, `null`, too large to deliver) and the
//! batch rule: each command's failure is its own reply.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use super::{answer, config, error_code, node, ok_result, Answer, KEY};
use crate::config::Config;
use actix_web::{test as actix_test, web, App};

fn history_data(history: &Value) -> Vec<Option<Value>> {
    history["publications"].as_array().expect("publications").iter().map(|p| p.get("data").cloned()).collect()
}

#[actix_web::test]
async fn empty_and_null_payloads_are_publications_on_every_api_path() {
    let node = node(config()).await;
    let app = app!(node);
    // publish: `null` is the JSON value null; `b64data: ""` is 0 bytes.
    assert_eq!(ok_result(&post!(app, "/api/publish", json!({"channel": "news", "data": null})).await)["offset"], 1);
    assert_eq!(ok_result(&post!(app, "/api/publish", json!({"channel": "news", "b64data": ""})).await)["offset"], 2);
    // broadcast, batch and the older POST /api take the same payloads.
    let broadcast = post!(app, "/api/broadcast", json!({"channels": ["news"], "b64data": ""})).await;
    assert_eq!(ok_result(&broadcast)["responses"][0]["result"]["offset"], 3);
    let broadcast = post!(app, "/api/broadcast", json!({"channels": ["news"], "data": null})).await;
    assert_eq!(ok_result(&broadcast)["responses"][0]["result"]["offset"], 4);
    let batch = post!(
        app,
        "/api/batch",
        json!({"commands": [{"publish": {"channel": "news", "data": null}}, {"publish": {"channel": "news", "b64data": ""}}]})
    )
    .await;
    assert_eq!(
        batch.json["replies"],
        json!([{"publish": {"offset": 5, "epoch": batch.json["replies"][0]["publish"]["epoch"]}}, {"publish": {"offset": 6, "epoch": batch.json["replies"][0]["publish"]["epoch"]}}])
    );
    let request = actix_test::TestRequest::post().uri("/api").insert_header(("X-API-Key", KEY));
    let legacy = send!(app, request, r#"{"id":1,"method":"publish","params":{"channel":"news","b64data":""}}"#).await;
    assert_eq!(legacy.status, StatusCode::OK, "{}", legacy.text);
    assert!(legacy.text.starts_with(r#"{"id":1,"result":{"offset":7"#), "{}", legacy.text);
    // History: `null` comes back as null, 0 bytes without `data` (as the
    // client protocol writes them, and Centrifugo).
    let history = post!(app, "/api/history", json!({"channel": "news", "limit": -1})).await;
    let null = Some(Value::Null);
    assert_eq!(history_data(ok_result(&history)), vec![null.clone(), None, None, null.clone(), null, None, None]);
    // Neither `data` nor `b64data`: still a bad request.
    let missing = post!(app, "/api/publish", json!({"channel": "news"})).await;
    assert_eq!((missing.status, error_code(&missing)), (StatusCode::BAD_REQUEST, 107));
}

#[actix_web::test]
async fn a_publication_no_client_could_receive_is_refused_with_106_naming_the_limit() {
    let node = node(Config { client_outbox_bytes: 4096, ..config() }).await;
    let app = app!(node);
    let refused =
        json!({"code": 106, "message": "limit exceeded: publication larger than client_outbox_bytes once encoded"});
    // JSON data of 4,052 bytes plus the push around it: over 4,096.
    let big = "x".repeat(4050);
    let answer = post!(app, "/api/publish", json!({"channel": "news", "data": big})).await;
    assert_eq!((answer.status, &answer.json), (StatusCode::OK, &json!({"error": refused})));
    // 1,000 control bytes are 6,000 bytes in a JSON string.
    let b64 = base64_of(&[1u8; 1000]);
    let answer = post!(app, "/api/publish", json!({"channel": "news", "b64data": b64})).await;
    assert_eq!(answer.json, json!({"error": refused}));
    let answer = post!(app, "/api/broadcast", json!({"channels": ["news", "other"], "data": big})).await;
    assert_eq!(ok_result(&answer)["responses"], json!([{"error": refused}, {"error": refused}]));
    // Nothing was published; a publication that fits still is.
    let fits = "x".repeat(3000);
    assert_eq!(ok_result(&post!(app, "/api/publish", json!({"channel": "news", "data": fits})).await)["offset"], 1);
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[actix_web::test]
async fn each_batch_command_that_does_not_decode_gets_its_own_error_and_the_others_run() {
    let node = node(config()).await;
    let app = app!(node);
    let body = json!({"commands": [
        {"publish": {"channel": "news", "data": 1}},
        {"publish": {"channel": 1, "data": 1}},
        {"publish": {"channel": "news"}},
        {"publish": {"channel": "news", "data": 2}, "history": {"channel": "news"}},
        7,
        {"rpc": {"method": "x"}},
        {"history": {"channel": "news", "limit": -1}},
    ]});
    let answer: Answer = post!(app, "/api/batch", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let replies = answer.json["replies"].as_array().expect("replies").clone();
    assert_eq!(replies.len(), 7);
    assert_eq!(replies[0]["publish"]["offset"], 1);
    assert_eq!(
        replies[1],
        json!({"error": {"code": 107, "message": "bad request: invalid type: integer `1`, expected a string at line 1 column 12"}})
    );
    assert_eq!(replies[2], json!({"error": {"code": 107, "message": "bad request: missing field `data`"}}));
    assert_eq!(
        replies[3],
        json!({"error": {"code": 107, "message": "bad request: a command names more than one method: publish, history"}})
    );
    assert_eq!(
        replies[4],
        json!({"error": {"code": 107, "message": "bad request: a command must be an object naming one method"}})
    );
    assert_eq!(replies[5], json!({"error": {"code": 104, "message": "method not found"}}));
    // Only the first command published.
    assert_eq!(history_data(&replies[6]["history"]), vec![Some(json!(1))]);
    // A body that is not a batch is still 400, and nothing runs.
    for body in [json!({"commands": {"publish": {}}}), json!([1])] {
        let answer = post!(app, "/api/batch", body).await;
        assert_eq!((answer.status, error_code(&answer)), (StatusCode::BAD_REQUEST, 107), "{}", answer.text);
    }
}
