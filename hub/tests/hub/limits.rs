//! What is accepted is deliverable: a publication no client could be sent is
//! refused at publish (106), a client that reads is never closed as "slow"
//! because one message is large, a recovery or a reply too large for the
//! outbox is answered `recovered: false` or paged, never a 3008 loop; and
//! empty or `null` payloads are publications like any other.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hub::config::Config;
use hub::metrics::Metrics;
use protocol::proto::{self, Command, HistoryRequest, StreamPosition};
use protocol::Encoding;

use crate::helpers::{connect_token, connect_token_with, raw_request, spawn_hub, test_config, token_config, SECRET};

both_encodings!(
    a_publication_no_client_could_receive_is_refused_and_subscribers_keep_reading,
    a_recovery_larger_than_the_outbox_is_recovered_false_and_history_pages,
    a_server_side_recovery_larger_than_the_outbox_is_recovered_false,
    recovery_past_the_publication_limit_is_recovered_false,
    a_presence_reply_larger_than_the_outbox_is_error_106,
);

const KEY: &str = "k";
const MIB: usize = 1024 * 1024;

/// `data` as a JSON string of `len` bytes (quotes included).
fn json_string(len: usize, fill: char) -> Bytes {
    Bytes::from(format!("\"{}\"", fill.to_string().repeat(len - 2)))
}

fn api_publish(channel: &str, data: &str) -> String {
    let body = format!(r#"{{"channel":"{channel}","data":{data}}}"#);
    format!(
        "POST /api/publish HTTP/1.1\r\nHost: hub\r\nX-API-Key: {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn a_publication_no_client_could_receive_is_refused_and_subscribers_keep_reading(encoding: Encoding) {
    let hub = spawn_hub(Config { api_key: Some(KEY.into()), ..test_config() }).await;
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("news").await;

    // A body just under the API's 1 MiB: accepted by the API, but its push is
    // larger than client_outbox_bytes (1 MiB) once framed.
    let data = json_string(MIB - 40, 'x');
    let request = api_publish("news", std::str::from_utf8(&data).expect("ASCII"));
    assert!(request.len() - request.find("\r\n\r\n").expect("a body") - 4 <= MIB);
    let (status, body) = raw_request(hub.addr, &request).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"error":{"code":106,"message":"limit exceeded: publication larger than client_outbox_bytes once encoded"}}"#
    );

    // The largest publications that fit, in a burst with small ones around
    // them: the client that reads gets every one, in order, and stays.
    let big = json_string(MIB - 200, 'y');
    hub.publish("news", Bytes::from_static(b"1")).await;
    hub.publish("news", big.clone()).await;
    hub.publish("news", Bytes::from_static(b"3")).await;
    hub.publish("news", big.clone()).await;
    let got: Vec<(u64, usize)> = {
        let mut got = Vec::new();
        for _ in 0..4 {
            let publication = client.recv_pub("news").await;
            got.push((publication.offset, publication.data.len()));
        }
        got
    };
    assert_eq!(got, vec![(1, 1), (2, big.len()), (3, 1), (4, big.len())]);
    client.ping().await.expect("the connection is still open");
    assert_eq!(Metrics::get(&hub.node.metrics.slow_disconnects), 0);
    hub.shutdown().await;
}

/// 30 publications of 60 KB (each legal): 1.8 MB, more than one 1 MiB outbox.
async fn publish_30_of_60kb(hub: &crate::helpers::TestHub, channel: &str) {
    for n in 1..=30u8 {
        hub.publish(channel, json_string(60_000, char::from(b'a' + n % 26))).await;
    }
}

async fn a_recovery_larger_than_the_outbox_is_recovered_false_and_history_pages(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut first, _) = hub.connect(encoding).await;
    let position = first.subscribe_recover("big", 0, "").await;
    first.close().await;
    publish_30_of_60kb(&hub, "big").await;

    // The client comes back: no 3008, a subscription at the top that says
    // what it could not recover.
    let (mut client, _) = hub.connect(encoding).await;
    let result = client.subscribe_recover("big", position.offset, &position.epoch).await;
    assert!(result.was_recovering && result.recoverable);
    assert!(!result.recovered, "1.8 MB cannot be recovered in one reply");
    assert_eq!((result.publications.len(), result.offset, &result.epoch), (0, 30, &position.epoch));
    hub.publish("big", Bytes::from_static(b"31")).await;
    assert_eq!(client.recv_pub("big").await.offset, 31);

    // What it missed is in history, page by page: each page as much as fits.
    let mut offsets = Vec::new();
    let mut pages = 0;
    while offsets.last() != Some(&31) {
        let since = offsets.last().map(|&offset| StreamPosition { offset, epoch: position.epoch.clone() });
        let request = HistoryRequest { channel: "big".into(), limit: -1, since, ..Default::default() };
        let page = client.history(request).await.expect("history");
        assert!(!page.publications.is_empty(), "every page makes progress");
        offsets.extend(page.publications.iter().map(|p| p.offset));
        pages += 1;
    }
    assert_eq!(offsets, (1..=31).collect::<Vec<u64>>());
    assert!(pages >= 2, "1.8 MB of history came in {pages} page(s)");
    assert_eq!(Metrics::get(&hub.node.metrics.slow_disconnects), 0);
    hub.shutdown().await;
}

async fn a_server_side_recovery_larger_than_the_outbox_is_recovered_false(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let token = connect_token_with(SECRET, "42", None, &["side"], None);
    let (first, connected) = hub.connect_with_token(encoding, &token).await;
    let subscribed = connected.subs["side"].clone();
    first.close().await;
    publish_30_of_60kb(&hub, "side").await;

    // Reconnect asking to recover the token's channel (`subs` of connect).
    let mut client = hub.open(encoding).await;
    let sub = proto::SubscribeRequest {
        recover: true,
        offset: subscribed.offset,
        epoch: subscribed.epoch.clone(),
        ..Default::default()
    };
    let mut subs = BTreeMap::new();
    subs.insert("side".to_string(), sub);
    let connect = proto::ConnectRequest { token, subs, ..Default::default() };
    let reply = client.call(Command { connect: Some(connect), ..Default::default() }).await;
    let connected = reply.connect.clone().unwrap_or_else(|| panic!("connected: {reply:?}"));
    let subscribe = &connected.subs["side"];
    assert_eq!((subscribe.was_recovering, subscribe.recovered, subscribe.offset), (true, false, 30));
    assert!(subscribe.publications.is_empty(), "{} publications", subscribe.publications.len());
    hub.publish("side", Bytes::from_static(b"31")).await;
    assert_eq!(client.recv_pub("side").await.offset, 31, "no recovered publication before the live one");
    hub.shutdown().await;
}

async fn recovery_past_the_publication_limit_is_recovered_false(encoding: Encoding) {
    let hub = spawn_hub(Config { client_recovery_max_publication_limit: 3, ..test_config() }).await;
    let (mut client, _) = hub.connect(encoding).await;
    let position = client.subscribe_recover("counted", 0, "").await;
    client.unsubscribe("counted").await.expect("unsubscribe");
    for n in 1..=3 {
        hub.publish("counted", crate::helpers::data(n)).await;
    }
    let three = client.subscribe_recover("counted", position.offset, &position.epoch).await;
    assert!(three.recovered);
    assert_eq!(three.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2, 3]);
    client.unsubscribe("counted").await.expect("unsubscribe");
    hub.publish("counted", crate::helpers::data(4)).await;
    let four = client.subscribe_recover("counted", position.offset, &position.epoch).await;
    assert_eq!((four.recovered, four.publications.len(), four.offset), (false, 0, 4));
    hub.shutdown().await;
}

async fn a_presence_reply_larger_than_the_outbox_is_error_106(encoding: Encoding) {
    let hub = spawn_hub(Config { client_outbox_bytes: 8 * 1024, ..token_config() }).await;
    // Two clients whose connection info is 3 KB each: presence is over 6 KB.
    let info = format!(r#"{{"bio":"{}"}}"#, "b".repeat(3000));
    let (mut a, _) = hub.connect_with_token(encoding, &connect_token("a", Some(&info))).await;
    let (mut b, _) = hub.connect_with_token(encoding, &connect_token("b", Some(&info))).await;
    a.subscribe("chat:p").await;
    b.subscribe("chat:p").await;
    // 6 KB fits in 8 KB: a reply that fits is sent whole.
    assert_eq!(a.presence("chat:p").await.expect("presence fits").presence.len(), 2);
    let (mut c, _) = hub.connect_with_token(encoding, &connect_token("c", Some(&info))).await;
    c.subscribe("chat:p").await;
    let error = a.presence("chat:p").await.expect_err("9 KB of presence does not fit in 8 KB");
    assert_eq!((error.code, error.message.as_str()), (106, "limit exceeded: reply larger than client_outbox_bytes"));
    a.ping().await.expect("the connection stays open");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_null_payloads_reach_json_and_protobuf_subscribers() {
    let hub = spawn_hub(test_config()).await;
    let (mut json, _) = hub.connect(Encoding::Json).await;
    let (mut protobuf, _) = hub.connect(Encoding::Protobuf).await;
    json.subscribe("empty").await;
    protobuf.subscribe("empty").await;
    // A Protobuf client publishes 0 bytes, a JSON client the JSON value null.
    protobuf.publish("empty", Bytes::new()).await.expect("0 bytes are a publication");
    json.publish("empty", Bytes::from_static(b"null")).await.expect("null is a publication");
    for client in [&mut json, &mut protobuf] {
        let empty = client.recv_pub("empty").await;
        assert_eq!((empty.offset, &empty.data[..]), (1, &b""[..]));
        let null = client.recv_pub("empty").await;
        assert_eq!((null.offset, &null.data[..]), (2, &b"null"[..]));
        let history = client.history(HistoryRequest { channel: "empty".into(), limit: -1, ..Default::default() }).await;
        let data: Vec<Bytes> = history.expect("history").publications.into_iter().map(|p| p.data).collect();
        assert_eq!(data, vec![Bytes::new(), Bytes::from_static(b"null")]);
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_subscriber_gets_no_data_key_for_0_bytes_and_null_for_null() {
    let hub = spawn_hub(test_config()).await;
    let mut client = tokio_tungstenite::connect_async(format!("ws://{}/connection/websocket", hub.addr))
        .await
        .expect("a WebSocket")
        .0;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let frame = "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"raw\"}}\n\
                 {\"id\":3,\"publish\":{\"channel\":\"raw\",\"data\":null}}";
    client.send(Message::text(frame)).await.expect("send");
    let mut lines: Vec<String> = Vec::new();
    let mut published = false;
    while lines.iter().filter(|line| line.contains("\"pub\"")).count() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("a frame in time");
        let text = message.expect("open").expect("a message").into_text().expect("text").to_string();
        lines.extend(text.lines().map(str::to_owned));
        if !published && lines.iter().any(|line| line.starts_with("{\"id\":3")) {
            // The client's publication is in: now 0 bytes through the node.
            hub.publish("raw", Bytes::new()).await;
            published = true;
        }
    }
    let pushes: Vec<&String> = lines.iter().filter(|line| line.contains("\"pub\"")).collect();
    // The client's publication carries its publisher's info after `data`.
    assert!(pushes[0].starts_with(r#"{"push":{"channel":"raw","pub":{"data":null,"info":{"#), "{}", pushes[0]);
    assert_eq!(pushes[1], r#"{"push":{"channel":"raw","pub":{"offset":2}}}"#);
    hub.shutdown().await;
}
