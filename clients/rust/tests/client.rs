//! hub_client against a real hub started in-process on port 0: subscribe and
//! publish in both encodings, recovery across a reconnect (exactly the missed
//! publications, in order), server-requested resubscribe, and a final
//! disconnect code that stops the client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hub::config::{ChannelOptions, Config};
use hub::server::{self, ServerHandle};
use hub::topic::PublishArgs;
use hub_client::{Client, Config as ClientConfig, Encoding, Error, Event, SubscribeOptions};
use protocol::codes;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn spawn_hub() -> ServerHandle {
    let channel = ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        allow_publish: true,
        allow_subscribe: true,
        force_recovery: true,
        ..Default::default()
    };
    let config =
        Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), allow_anonymous: true, channel, ..Config::default() };
    server::start(config).await.expect("the hub starts")
}

fn client_config(hub: &ServerHandle, encoding: Encoding) -> ClientConfig {
    ClientConfig {
        encoding,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ClientConfig::new(format!("ws://{}/connection/websocket", hub.addr))
    }
}

async fn next(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(WAIT, events.recv()).await.expect("an event in time").expect("the client is running")
}

/// Skips events until one matches.
async fn until(events: &mut mpsc::Receiver<Event>, mut wanted: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let event = next(events).await;
        if wanted(&event) {
            return event;
        }
    }
}

async fn publish(hub: &ServerHandle, channel: &str, data: &'static str) -> u64 {
    let args = PublishArgs { data: Bytes::from_static(data.as_bytes()), ..Default::default() };
    hub.node.publish(channel, args).await.expect("publish").offset
}

async fn subscribe_and_publish(encoding: Encoding) {
    let hub = spawn_hub().await;
    let (client, mut events) = Client::connect(client_config(&hub, encoding));
    let subscribed = client.subscribe("news", SubscribeOptions::default()).await.expect("subscribed");
    assert!(subscribed.recoverable, "force_recovery makes it recoverable");
    assert!(matches!(next(&mut events).await, Event::Connected { .. }));
    assert!(matches!(next(&mut events).await, Event::Subscribed { ref channel, .. } if channel == "news"));
    client.publish("news", Bytes::from_static(br#"{"n":1}"#)).await.expect("client publish");
    publish(&hub, "news", r#"{"n":2}"#).await;
    for (n, offset) in [(1, 1), (2, 2)] {
        match next(&mut events).await {
            Event::Publication { channel, data, offset: got } => {
                assert_eq!(channel, "news");
                assert_eq!(got, offset);
                let expected = format!(r#"{{"n":{n}}}"#);
                assert_eq!(&data[..], expected.as_bytes());
            }
            other => panic!("expected a publication, got {other:?}"),
        }
    }
    assert_eq!(
        client.subscribe("news", SubscribeOptions::default()).await,
        Err(Error::Server { code: 105, message: "already subscribed".into(), temporary: false })
    );
    client.close().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_publish_json() {
    subscribe_and_publish(Encoding::Json).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_publish_protobuf() {
    subscribe_and_publish(Encoding::Protobuf).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_recovers_exactly_what_was_missed() {
    let hub = spawn_hub().await;
    let (client, mut events) = Client::connect(client_config(&hub, Encoding::Json));
    client.subscribe("news", SubscribeOptions::default()).await.expect("subscribed");
    publish(&hub, "news", "1").await;
    until(&mut events, |e| matches!(e, Event::Publication { offset: 1, .. })).await;

    client.reconnect();
    until(&mut events, |e| matches!(e, Event::Disconnected { reconnect: true, .. })).await;
    // Published while the client is away (its session may still be closing:
    // either way the client must see each exactly once).
    for data in ["2", "3", "4"] {
        publish(&hub, "news", data).await;
    }
    match until(&mut events, |e| matches!(e, Event::Subscribed { .. })).await {
        Event::Subscribed { was_recovering, recovered, .. } => assert!(was_recovering && recovered),
        _ => unreachable!(),
    }
    let mut offsets = Vec::new();
    while offsets.len() < 3 {
        if let Event::Publication { offset, .. } = next(&mut events).await {
            offsets.push(offset);
        }
    }
    publish(&hub, "news", "5").await;
    until(&mut events, |e| matches!(e, Event::Publication { .. })).await;
    assert_eq!(offsets, vec![2, 3, 4], "every missed publication once, in order");
    client.close().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_since_a_position_recovers_on_first_subscribe() {
    let hub = spawn_hub().await;
    publish(&hub, "news", "1").await;
    publish(&hub, "news", "2").await;
    let epoch = hub.node.history("news", Default::default()).await.expect("history").epoch;
    let (client, mut events) = Client::connect(client_config(&hub, Encoding::Json));
    let options = SubscribeOptions { since: Some((1, epoch)), ..Default::default() };
    let subscribed = client.subscribe("news", options).await.expect("subscribed");
    assert!(subscribed.was_recovering && subscribed.recovered);
    match until(&mut events, |e| matches!(e, Event::Publication { .. })).await {
        Event::Publication { offset, data, .. } => assert_eq!((offset, &data[..]), (2, &b"2"[..])),
        _ => unreachable!(),
    }
    client.close().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reconnect_code_reconnects_and_final_code_stops() {
    let hub = spawn_hub().await;
    let (client, mut events) = Client::connect(client_config(&hub, Encoding::Json));
    client.subscribe("news", SubscribeOptions::default()).await.expect("subscribed");

    hub.node.disconnect_user("", hub::node::Target::default(), Vec::new(), codes::FORCE_RECONNECT);
    match until(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { code, reconnect, .. } => assert_eq!((code, reconnect), (3011, true)),
        _ => unreachable!(),
    }
    until(&mut events, |e| matches!(e, Event::Subscribed { was_recovering: true, recovered: true, .. })).await;

    hub.node.disconnect_user("", hub::node::Target::default(), Vec::new(), codes::FORCE_NO_RECONNECT);
    match until(&mut events, |e| matches!(e, Event::Disconnected { .. })).await {
        Event::Disconnected { code, reconnect, .. } => assert_eq!((code, reconnect), (3503, false)),
        _ => unreachable!(),
    }
    let ended = tokio::time::timeout(WAIT, events.recv()).await.expect("the channel ends in time");
    assert_eq!(ended, None, "no events after a final disconnect");
    assert_eq!(client.publish("news", Bytes::from_static(b"1")).await, Err(Error::Closed));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_while_the_hub_is_down_wait_or_fail_typed() {
    // Nothing listens on this port: the client keeps retrying.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = ClientConfig {
        request_timeout: Duration::from_millis(300),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(50),
        ..ClientConfig::new(format!("ws://{addr}/connection/websocket"))
    };
    let (client, mut events) = Client::connect(config);
    assert!(matches!(next(&mut events).await, Event::Disconnected { reconnect: true, .. }));
    assert_eq!(client.subscribe("news", SubscribeOptions::default()).await, Err(Error::Timeout));
    assert_eq!(client.publish("news", Bytes::from_static(b"1")).await, Err(Error::NotConnected));
    client.close().await;
}
