//! Graceful shutdown (3001 after what was queued) and session lifetimes: every
//! way a connection ends leaves no session actor, registration or subscriber.

use std::time::Duration;

use hub::metrics::Metrics;
use protocol::codes;
use protocol::proto::Command;
use protocol::Encoding;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{data, eventually, spawn_hub, test_config, wait_until, WAIT};
use crate::ws_client::WsClient;

both_encodings!(shutdown_flushes_queued_messages_then_closes_with_3001, every_way_of_leaving_frees_the_session);

async fn shutdown_flushes_queued_messages_then_closes_with_3001(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let addr = hub.addr;
    let node = hub.node.clone();
    let (mut subscriber, _) = hub.connect(encoding).await;
    subscriber.subscribe("plain:last-words").await;
    let (mut idle, _) = hub.connect(encoding).await;
    let mut unconnected = hub.open(encoding).await;
    for n in 1..=3 {
        hub.publish("plain:last-words", data(n)).await;
    }

    let shutdown = tokio::spawn(hub.shutdown());
    let shutdown_close = (codes::SHUTDOWN.code, codes::SHUTDOWN.reason.to_string());
    assert_eq!(subscriber.expect_close().await, shutdown_close);
    let delivered: Vec<_> =
        subscriber.take_inbox().into_iter().map(|r| r.push.and_then(|p| p.r#pub).map(|p| p.data)).collect();
    assert_eq!(
        delivered,
        (1..=3).map(|n| Some(data(n))).collect::<Vec<_>>(),
        "queued publications go out before the close"
    );
    assert_eq!(idle.expect_close().await, shutdown_close);
    assert_eq!(unconnected.expect_close().await, shutdown_close, "a connection without connect is closed too");
    tokio::time::timeout(WAIT * 2, shutdown).await.expect("shutdown finishes").expect("the shutdown task ran");
    assert_eq!(node.live_session_count(), 0, "every session ended before shutdown returned");
    assert_eq!(node.client_count(), 0);

    // The server no longer accepts connections.
    let refused = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await.expect("connect attempt ends");
    assert!(refused.is_err(), "the listener is closed after shutdown");
}

async fn every_way_of_leaving_frees_the_session(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut watcher, _) = hub.connect(encoding).await;
    watcher.subscribe("plain:lifetimes").await;

    // A clean close after subscribing.
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("chat:a").await;
    client.subscribe("plain:lifetimes").await;
    client.close().await;
    // An abrupt drop (no close frame) after subscribing.
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("chat:a").await;
    drop(client);
    // A close before connecting; a drop before connecting.
    hub.open(encoding).await.close().await;
    drop(hub.open(encoding).await);
    // A drop in the middle of a frame of commands that is still being handled.
    let mut client = hub.open(encoding).await;
    let mut commands = vec![Command { id: 1, connect: Some(Default::default()), ..Default::default() }];
    for id in 2..50 {
        let channel = format!("chat:burst-{id}");
        commands.push(Command {
            id,
            subscribe: Some(protocol::proto::SubscribeRequest { channel, ..Default::default() }),
            ..Default::default()
        });
    }
    client.send(&commands).await;
    drop(client);
    // A client closed by the server (bad frame).
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("chat:a").await;
    client.send_raw(Message::Text("}{".into())).await;
    assert_eq!(client.expect_close().await, (3501, "bad request".to_string()));
    drop(client);

    let node = hub.node.clone();
    wait_until("only the watcher's session to remain", || node.live_session_count() == 1 && node.client_count() == 1)
        .await;
    // Every subscription of the departed clients is gone from the channels and the gauge.
    wait_until("the subscription gauge to count the watcher's only", || Metrics::get(&node.metrics.subscriptions) == 1)
        .await;
    eventually("the departed clients to leave chat:a", Ok((0, 0)), || node.presence_stats("chat:a")).await;
    assert_eq!(node.presence_stats("plain:lifetimes").await, Err(codes::NOT_AVAILABLE), "no presence in plain");
    let only_the_watcher = vec![("plain:lifetimes".to_string(), 1)];
    eventually("only the watcher's channel to have subscribers", only_the_watcher, || async {
        node.channels().await.expect("a single node answers channels").into_iter().collect::<Vec<_>>()
    })
    .await;

    // The watcher saw nothing of all this (no join/leave in plain) and still works.
    watcher.expect_silence(Duration::from_millis(100)).await;
    hub.publish("plain:lifetimes", data(1)).await;
    assert_eq!(watcher.recv_pub("plain:lifetimes").await.data, data(1));
    watcher.close().await;
    hub.assert_no_sessions().await;
    assert_eq!(Metrics::get(&node.metrics.subscriptions), 0);
    assert_eq!(Metrics::get(&node.metrics.session_failures), 0, "no session actor failed");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_connections_leave_nothing_behind() {
    let hub = spawn_hub(test_config()).await;
    let mut clients: Vec<WsClient> = Vec::new();
    for i in 0..40 {
        let encoding = if i % 2 == 0 { Encoding::Json } else { Encoding::Protobuf };
        let (mut client, _) = hub.connect(encoding).await;
        client.subscribe("chat:crowd").await;
        clients.push(client);
    }
    assert_eq!(hub.node.presence_stats("chat:crowd").await, Ok((40, 1)), "anonymous clients share the empty user");
    for (i, client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            client.close().await;
        } else {
            drop(client);
        }
    }
    hub.assert_no_sessions().await;
    let node = hub.node.clone();
    eventually("every client to leave chat:crowd", Ok((0, 0)), || node.presence_stats("chat:crowd")).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_a_client_that_does_not_read() {
    let config = hub::config::Config { shutdown_timeout: Duration::from_secs(1), ..test_config() };
    let hub = spawn_hub(config).await;
    let mut stuck = WsClient::open_small_buffer(hub.addr, Encoding::Json, 4096).await;
    stuck.connect("").await.expect("connect");
    stuck.subscribe("plain:bulk").await;
    let (mut reader, _) = hub.connect(Encoding::Json).await;
    // Enough to fill the stuck client's socket buffers (the writer blocks), not its 1 MiB outbox.
    let chunk = bytes::Bytes::from(format!(r#"{{"pad":"{}"}}"#, "y".repeat(16 * 1024)));
    for _ in 0..48 {
        hub.publish("plain:bulk", chunk.clone()).await;
    }
    let node = hub.node.clone();
    let shutdown = tokio::spawn(hub.shutdown());
    assert_eq!(reader.expect_close().await, (codes::SHUTDOWN.code, codes::SHUTDOWN.reason.to_string()));
    // shutdown_timeout bounds the wait for the stuck session.
    tokio::time::timeout(WAIT, shutdown).await.expect("shutdown is bounded").expect("the shutdown task ran");
    wait_until("the stuck session to end too", || node.live_session_count() == 0).await;
    // Reading at last, the stuck client finds everything queued, then 3001.
    assert_eq!(stuck.expect_close().await, (codes::SHUTDOWN.code, codes::SHUTDOWN.reason.to_string()));
    let received: Vec<_> =
        stuck.take_inbox().into_iter().map(|r| r.push.and_then(|p| p.r#pub).map(|p| p.data)).collect();
    assert_eq!(received, vec![Some(chunk); 48]);
}
