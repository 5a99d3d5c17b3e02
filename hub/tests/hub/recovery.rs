//! Recovery from history after a reconnect, and after a channel's topic actor
//! failed and was restarted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub::config::{ChannelOptions, Config};
use hub::metrics::Metrics;
use hub::node::Node;
use hub::topic::{Position, PublishArgs, TopicMsg};
use protocol::codes;
use protocol::proto::{self, Publication};
use protocol::Encoding;

use crate::helpers::{connect_token_with, data, open_options, spawn_hub, test_config, token_config, SECRET, WAIT};

both_encodings!(
    reconnect_recovers_exactly_the_missed_publications,
    history_expires_after_its_ttl,
    server_side_subscriptions_recover_through_connect,
    server_side_subscription_lost_with_its_topic_reconnects_the_client,
    wrong_epoch_or_lost_position_is_not_recovered,
    the_reject_unrecovered_flag_turns_a_lost_position_into_error_112,
    an_empty_epoch_recovers_from_the_current_stream,
    topic_failure_makes_subscribers_resubscribe_and_recover,
);

fn offsets_and_data(publications: &[Publication]) -> Vec<(u64, Bytes)> {
    publications.iter().map(|p| (p.offset, p.data.clone())).collect()
}

fn expected(range: std::ops::RangeInclusive<usize>) -> Vec<(u64, Bytes)> {
    range.map(|n| (n as u64, data(n))).collect()
}

/// Channels without join/leave, so only publications are pushed.
fn recovery_config() -> Config {
    with_recovery_namespaces(test_config())
}

/// `config` plus `feed:*` (history, no join/leave), `short:*` (history of 3),
/// `forced:*` (force_recovery) and `brief:*` (history TTL of one second).
fn with_recovery_namespaces(mut config: Config) -> Config {
    let quiet = ChannelOptions { join_leave: false, ..open_options() };
    config.namespaces.insert("feed".into(), quiet.clone());
    config.namespaces.insert("short".into(), ChannelOptions { history_size: 3, ..quiet.clone() });
    config.namespaces.insert("forced".into(), ChannelOptions { force_recovery: true, ..quiet.clone() });
    config.namespaces.insert("brief".into(), ChannelOptions { history_ttl: Duration::from_secs(1), ..quiet });
    config
}

async fn reconnect_recovers_exactly_the_missed_publications(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let (mut first, _) = hub.connect(encoding).await;
    let request = proto::SubscribeRequest { channel: "feed:r".into(), recoverable: true, ..Default::default() };
    let sub = first.subscribe_with(request).await.expect("subscribe");
    assert!(sub.recoverable && sub.positioned, "a recoverable subscription is positioned: {sub:?}");
    assert_eq!(sub.offset, 0);
    assert!(!sub.epoch.is_empty(), "the channel has an epoch");
    let epoch = sub.epoch.clone();
    for n in 1..=2 {
        hub.publish("feed:r", data(n)).await;
    }
    let mut last = 0;
    for n in 1..=2 {
        let publication = first.recv_pub("feed:r").await;
        assert_eq!((publication.offset, publication.data), (n as u64, data(n)));
        last = publication.offset;
    }

    // The connection drops; five publications happen meanwhile.
    drop(first);
    hub.assert_no_sessions().await;
    for n in 3..=7 {
        let position = hub.publish("feed:r", data(n)).await;
        assert_eq!(position, Position { offset: n as u64, epoch: epoch.clone() });
    }

    let (mut second, _) = hub.connect(encoding).await;
    let sub = second.subscribe_recover("feed:r", last, &epoch).await;
    assert!(sub.recovered, "recovered: {sub:?}");
    assert!(sub.was_recovering);
    assert_eq!(offsets_and_data(&sub.publications), expected(3..=7), "exactly the five missed, in order");
    assert_eq!((sub.epoch.as_str(), sub.offset), (epoch.as_str(), 7));
    // Live publications continue after the recovered ones, none repeated.
    hub.publish("feed:r", data(8)).await;
    let publication = second.recv_pub("feed:r").await;
    assert_eq!((publication.offset, publication.data), (8, data(8)));
    second.expect_silence(Duration::from_millis(200)).await;

    // Recovering from the top loses nothing and gets nothing.
    let (mut third, _) = hub.connect(encoding).await;
    let sub = third.subscribe_recover("feed:r", 8, &epoch).await;
    assert!(sub.recovered && sub.publications.is_empty(), "{sub:?}");

    // force_recovery makes a plain subscription recoverable.
    let sub = third.subscribe("forced:x").await;
    assert!(sub.recoverable && sub.positioned && !sub.epoch.is_empty(), "{sub:?}");
    hub.shutdown().await;
}

async fn wrong_epoch_or_lost_position_is_not_recovered(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = hub.publish("feed:w", data(n)).await.epoch;
        hub.publish("short:w", data(n)).await;
    }
    let (mut client, _) = hub.connect(encoding).await;
    let sub = client.subscribe_recover("feed:w", 2, "another-epoch").await;
    assert!(!sub.recovered, "a different epoch is not recovered: {sub:?}");
    assert!(sub.publications.is_empty(), "nothing from another epoch is passed off as recovered");
    assert_eq!((sub.epoch.as_str(), sub.offset), (epoch.as_str(), 5), "the client learns the current position");

    let sub = client.subscribe_recover("feed:x", 9, &epoch).await;
    assert!(!sub.recovered, "a position from another channel's epoch: {sub:?}");

    // Publications 2 and 3 were evicted (history_size 3): a gap, not recovered.
    let short_epoch = client
        .history(proto::HistoryRequest { channel: "short:w".into(), limit: 0, ..Default::default() })
        .await
        .expect("history")
        .epoch;
    let sub = client.subscribe_recover("short:w", 1, &short_epoch).await;
    assert!(!sub.recovered, "evicted publications cannot be recovered: {sub:?}");

    // A position past the top is not the channel's either.
    let (mut other, _) = hub.connect(encoding).await;
    let sub = other.subscribe_recover("feed:w", 6, &epoch).await;
    assert!(!sub.recovered, "an offset beyond the top: {sub:?}");
    hub.shutdown().await;
}

/// Subscribe flag 2 (`reject_unrecovered`, sent by centrifuge-js when a
/// subscription has `getState`): a recovery that fails is refused with 112
/// "unrecoverable position", and the client is not subscribed; a recovery that
/// succeeds is answered as without the flag.
async fn the_reject_unrecovered_flag_turns_a_lost_position_into_error_112(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = hub.publish("short:f", data(n)).await.epoch;
        hub.publish("feed:f", data(n)).await;
    }
    let (mut client, _) = hub.connect(encoding).await;
    let with_flag = |channel: &str, offset: u64, epoch: &str| proto::SubscribeRequest {
        channel: channel.into(),
        recover: true,
        recoverable: true,
        offset,
        epoch: epoch.into(),
        flag: protocol::subscribe_flags::CHANNEL_COMPACTION | protocol::subscribe_flags::REJECT_UNRECOVERED,
        ..Default::default()
    };
    // Publications 2 and 3 were evicted (history_size 3).
    let error = client.subscribe_with(with_flag("short:f", 1, &epoch)).await.expect_err("unrecoverable");
    assert_eq!((error.code, error.message.as_str()), (112, "unrecoverable position"));
    assert!(!error.temporary);
    // Another epoch is just as unrecoverable.
    let error = client.subscribe_with(with_flag("feed:f", 2, "another-epoch")).await.expect_err("other epoch");
    assert_eq!((error.code, error.message.as_str()), (112, "unrecoverable position"));
    // Not subscribed: publications do not arrive, and the channel can be subscribed again.
    hub.publish("short:f", data(6)).await;
    client.expect_silence(Duration::from_millis(200)).await;
    let sub = client.subscribe_with(with_flag("short:f", 4, &epoch)).await.expect("recoverable position");
    assert!(sub.recovered && sub.was_recovering, "{sub:?}");
    assert_eq!(offsets_and_data(&sub.publications), expected(5..=6));
    // Without the flag the same lost position is `recovered: false`.
    let sub = client.subscribe_recover("feed:f", 2, "another-epoch").await;
    assert!(!sub.recovered && sub.publications.is_empty(), "{sub:?}");
    // The flag only matters when recovering: a plain subscribe with it succeeds.
    let plain = proto::SubscribeRequest {
        channel: "short:plain".into(),
        flag: protocol::subscribe_flags::REJECT_UNRECOVERED,
        ..Default::default()
    };
    client.subscribe_with(plain).await.expect("no recovery asked");
    hub.shutdown().await;
}

/// Issue 16, fault 3: `recover` with an empty epoch means the stream's current
/// epoch (Centrifugo; the SDKs' `since: {offset: 0, epoch: ''}`), for
/// subscriptions and for history `since`.
async fn an_empty_epoch_recovers_from_the_current_stream(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let mut epoch = String::new();
    for n in 1..=3 {
        epoch = hub.publish("feed:e", data(n)).await.epoch;
        hub.publish("short:e", data(n)).await;
    }
    let (mut client, _) = hub.connect(encoding).await;
    let sub = client.subscribe_recover("feed:e", 0, "").await;
    assert!(sub.was_recovering && sub.recovered, "from the start of the current stream: {sub:?}");
    assert_eq!(offsets_and_data(&sub.publications), expected(1..=3));
    assert_eq!((sub.epoch.as_str(), sub.offset), (epoch.as_str(), 3), "the client learns the real epoch");
    hub.publish("feed:e", data(4)).await;
    let publication = client.recv_pub("feed:e").await;
    assert_eq!((publication.offset, publication.data), (4, data(4)), "live after the recovered, none repeated");

    // From the middle, and from the top.
    let (mut other, _) = hub.connect(encoding).await;
    let sub = other.subscribe_recover("feed:e", 2, "").await;
    assert!(sub.recovered, "{sub:?}");
    assert_eq!(offsets_and_data(&sub.publications), expected(3..=4));
    let sub = other.subscribe_recover("short:e", 3, "").await;
    assert!(sub.recovered && sub.publications.is_empty(), "{sub:?}");

    // Still not recovered when publications are gone (short: history of 3).
    for n in 4..=6 {
        hub.publish("short:e", data(n)).await;
    }
    let (mut late, _) = hub.connect(encoding).await;
    let sub = late.subscribe_recover("short:e", 0, "").await;
    assert!(sub.was_recovering && !sub.recovered, "offsets 1-3 were evicted: {sub:?}");

    // History `since` an empty epoch: the current one.
    let since = proto::StreamPosition { offset: 1, epoch: String::new() };
    let history = proto::HistoryRequest { channel: "feed:e".into(), limit: -1, since: Some(since), reverse: false };
    let page = late.history(history).await.expect("history since an empty epoch");
    assert_eq!(offsets_and_data(&page.publications), expected(2..=4));
    hub.shutdown().await;
}

/// Publishes through the node, retrying while the channel's topic restarts
/// (a temporary error means the publication did not take effect).
async fn publish_through_restart(node: Arc<Node>, channel: &str, data: Bytes) -> Position {
    let deadline = Instant::now() + WAIT;
    loop {
        match node.publish(channel, PublishArgs { data: data.clone(), ..Default::default() }).await {
            Ok(position) => return position,
            Err(error) if error.temporary && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(error) => panic!("publish into {channel} failed: {error:?}"),
        }
    }
}

async fn topic_failure_makes_subscribers_resubscribe_and_recover(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let (mut observer, _) = hub.connect(encoding).await;
    let request = proto::SubscribeRequest { channel: "feed:fragile".into(), recoverable: true, ..Default::default() };
    let sub = client.subscribe_with(request).await.expect("subscribe");
    let epoch = sub.epoch.clone();
    client.subscribe("feed:steady").await;
    observer.subscribe("feed:steady").await;

    // Three publishers publish without pause while the topic actor fails, so
    // some publications race the restart (the supervisor may not have handled
    // the failure yet when a publisher finds the old mailbox closed).
    // The first one makes the actor fail halfway through its publications.
    let racers: Vec<_> = (0..RACERS).map(|racer| tokio::spawn(race(hub.node.clone(), racer))).collect();
    let metrics = hub.node.metrics.clone();
    let mut published = BTreeMap::new();
    for racer in racers {
        for (position, data) in racer.await.expect("the publisher task ran") {
            assert_eq!(position.epoch, epoch, "the restarted topic keeps its stream and epoch");
            assert!(published.insert(position.offset, data).is_none(), "offset {} given twice", position.offset);
        }
    }
    let top = (RACERS * PER_RACER) as u64;
    assert_eq!(published.keys().copied().collect::<Vec<_>>(), (1..=top).collect::<Vec<_>>(), "one stream, no gap");
    assert_eq!(Metrics::get(&metrics.topic_restarts), 1, "the failure was noticed");
    for n in 1..=3 {
        hub.publish("feed:steady", data(n)).await;
    }

    // The client got the publications made before the failure, then is told
    // to resubscribe (2500); its steady channel is untouched.
    let mut steady = Vec::new();
    let mut last = 0;
    loop {
        let push = client.recv_push().await;
        if push.channel == "feed:steady" {
            steady.push(push.r#pub.expect("only publications on the steady channel").data);
            continue;
        }
        assert_eq!(push.channel, "feed:fragile");
        if let Some(publication) = push.r#pub {
            assert_eq!(publication.offset, last + 1, "live publications in order");
            assert_eq!(Some(&publication.data), published.get(&publication.offset));
            last = publication.offset;
            continue;
        }
        assert_eq!(push.unsubscribe, Some(codes::UNSUBSCRIBE_INSUFFICIENT_STATE.to_proto()), "got {push:?}");
        break;
    }
    let sub = client.subscribe_recover("feed:fragile", last, &epoch).await;
    assert!(sub.recovered, "recovered after the restart: {sub:?}");
    assert_eq!((sub.epoch.as_str(), sub.offset), (epoch.as_str(), top), "same epoch, same stream");
    let missed: Vec<(u64, Bytes)> = published.range(last + 1..).map(|(o, d)| (*o, d.clone())).collect();
    assert_eq!(offsets_and_data(&sub.publications), missed, "exactly what was published after the last one received");

    while steady.len() < 3 {
        steady.push(client.recv_pub("feed:steady").await.data);
    }
    assert_eq!(steady, (1..=3).map(data).collect::<Vec<_>>(), "the other channel lost nothing");
    for n in 1..=3 {
        assert_eq!(observer.recv_pub("feed:steady").await.data, data(n));
    }
    observer.expect_silence(Duration::from_millis(100)).await;

    // The restarted channel delivers live again.
    hub.publish("feed:fragile", data(0)).await;
    let publication = client.recv_pub("feed:fragile").await;
    assert_eq!((publication.offset, publication.data), (top + 1, data(0)));
    client.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(Metrics::get(&hub.node.metrics.topic_restarts), 1);
    hub.shutdown().await;
}

/// Publishers in [`topic_failure_makes_subscribers_resubscribe_and_recover`].
const RACERS: usize = 3;
/// Publications per publisher (all of them fit the `feed` history).
const PER_RACER: usize = 30;

/// Publishes [`PER_RACER`] distinct publications into `feed:fragile` without
/// pause; returns each one's position and data. Racer 0 makes the topic actor
/// fail (the test hook) halfway.
async fn race(node: Arc<Node>, racer: usize) -> Vec<(Position, Bytes)> {
    let mut out = Vec::new();
    for i in 0..PER_RACER {
        if racer == 0 && i == PER_RACER / 2 {
            let topic = node.topics.lookup("feed:fragile").expect("the topic is live");
            topic.cast(TopicMsg::InjectPanic).expect("the topic takes the message");
        }
        let data = Bytes::from(format!(r#"{{"racer":{racer},"i":{i}}}"#));
        out.push((publish_through_restart(node.clone(), "feed:fragile", data.clone()).await, data));
        tokio::task::yield_now().await;
    }
    out
}

async fn history_expires_after_its_ttl(encoding: Encoding) {
    let hub = spawn_hub(recovery_config()).await;
    let mut epoch = String::new();
    for n in 1..=3 {
        epoch = hub.publish("brief:x", data(n)).await.epoch;
    }
    let (mut client, _) = hub.connect(encoding).await;
    let all = || proto::HistoryRequest { channel: "brief:x".into(), limit: -1, ..Default::default() };
    assert_eq!(client.history(all()).await.expect("history").publications.len(), 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let history = client.history(all()).await.expect("history");
    assert!(history.publications.is_empty(), "publications older than the TTL are gone: {history:?}");
    assert_eq!((history.offset, history.epoch.as_str()), (3, epoch.as_str()), "the position stays");
    let sub = client.subscribe_recover("brief:x", 1, &epoch).await;
    assert!(!sub.recovered && sub.publications.is_empty(), "expired publications cannot be recovered: {sub:?}");
    hub.shutdown().await;
}

async fn server_side_subscriptions_recover_through_connect(encoding: Encoding) {
    let hub = spawn_hub(with_recovery_namespaces(token_config())).await;
    let mut epoch = String::new();
    for n in 1..=4 {
        epoch = hub.publish("feed:srv", data(n)).await.epoch;
    }
    // A reconnecting client names its last position of a server-side
    // subscription in the connect command's `subs`.
    let token = connect_token_with(SECRET, "alice", None, &["feed:srv"], None);
    let mut subs = std::collections::BTreeMap::new();
    subs.insert(
        "feed:srv".to_string(),
        proto::SubscribeRequest { recover: true, offset: 1, epoch: epoch.clone(), ..Default::default() },
    );
    let mut client = hub.open(encoding).await;
    let request = proto::ConnectRequest { token, subs, ..Default::default() };
    let reply = client.call(proto::Command { connect: Some(request), ..Default::default() }).await;
    let connected = reply.connect.clone().unwrap_or_else(|| panic!("connected: {reply:?}"));
    // As Centrifugo: the recovery is in the connect reply's `subs`.
    assert_eq!(connected.subs.keys().collect::<Vec<_>>(), ["feed:srv"]);
    let subscribed = &connected.subs["feed:srv"];
    assert!(subscribed.recoverable && subscribed.positioned, "{subscribed:?}");
    assert!(subscribed.was_recovering && subscribed.recovered, "{subscribed:?}");
    assert_eq!((subscribed.epoch.as_str(), subscribed.offset), (epoch.as_str(), 4));
    let recovered: Vec<_> = subscribed.publications.iter().map(|p| (p.offset, p.data.clone())).collect();
    assert_eq!(recovered, (2..=4).map(|n| (n as u64, data(n))).collect::<Vec<_>>());
    hub.publish("feed:srv", data(5)).await;
    assert_eq!(client.recv_pub("feed:srv").await.offset, 5);
    client.expect_silence(Duration::from_millis(100)).await;
    hub.shutdown().await;
}

async fn server_side_subscription_lost_with_its_topic_reconnects_the_client(encoding: Encoding) {
    let hub = spawn_hub(with_recovery_namespaces(token_config())).await;
    let token = connect_token_with(SECRET, "alice", None, &["feed:srv"], None);
    let (mut client, connected) = hub.connect_with_token(encoding, &token).await;
    assert!(connected.subs.contains_key("feed:srv"), "the server-side subscription: {connected:?}");
    let topic = hub.node.topics.lookup("feed:srv").expect("the topic is live");
    topic.cast(TopicMsg::InjectPanic).expect("the topic takes the message");
    // The client cannot resubscribe a server-side subscription by itself:
    // it reconnects (and recovers through `subs`).
    assert_eq!(client.expect_close().await, (codes::INSUFFICIENT_STATE.code, "insufficient state".to_string()));
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}
