//! Tags filters: a subscriber that sends `tf` with its subscribe gets only the
//! publications whose tags pass it, live and recovered; a namespace without
//! `allow_tags_filter`, or a malformed filter, is refused with 107.

use std::collections::BTreeMap;
use std::time::Duration;

use hub::config::ChannelOptions;
use hub::topic::PublishArgs;
use protocol::proto::{self, FilterNode};
use protocol::Encoding;

use crate::helpers::{data, open_options, spawn_hub, test_config, TestHub};

both_encodings!(
    a_tags_filter_picks_live_and_recovered_publications,
    tags_filters_are_refused_where_not_allowed_or_malformed
);

fn ticker(value: &str) -> FilterNode {
    FilterNode { key: "ticker".into(), cmp: "eq".into(), val: value.into(), ..Default::default() }
}

async fn publish_tagged(hub: &TestHub, channel: &str, n: usize, ticker: &str) -> u64 {
    let tags = BTreeMap::from([("ticker".to_string(), ticker.to_string())]);
    let args = PublishArgs { data: data(n), tags, ..Default::default() };
    hub.node.publish(channel, args).await.expect("published").offset
}

fn config() -> hub::config::Config {
    let mut config = test_config();
    let quiet = ChannelOptions { join_leave: false, ..open_options() };
    config.namespaces.insert("tagged".into(), ChannelOptions { allow_tags_filter: true, ..quiet.clone() });
    config.namespaces.insert("untagged".into(), quiet);
    config
}

async fn a_tags_filter_picks_live_and_recovered_publications(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let (mut filtered, _) = hub.connect(encoding).await;
    let (mut everything, _) = hub.connect(encoding).await;
    let channel = "tagged:prices";
    let request = proto::SubscribeRequest {
        channel: channel.into(),
        recoverable: true,
        tf: Some(ticker("BTC")),
        ..Default::default()
    };
    let sub = filtered.subscribe_with(request.clone()).await.expect("a filter is allowed here");
    let epoch = sub.epoch.clone();
    everything.subscribe(channel).await;
    publish_tagged(&hub, channel, 1, "ETH").await;
    publish_tagged(&hub, channel, 2, "BTC").await;
    hub.publish(channel, data(3)).await;
    let publication = filtered.recv_pub(channel).await;
    assert_eq!((publication.offset, publication.data), (2, data(2)), "only the BTC publication");
    filtered.expect_silence(Duration::from_millis(200)).await;
    for n in 1..=3 {
        assert_eq!(everything.recv_pub(channel).await.offset, n, "the unfiltered subscriber gets all");
    }

    // Recovery applies the filter too: the missed BTC publications only, and
    // the position is the stream's top.
    drop(filtered);
    publish_tagged(&hub, channel, 4, "BTC").await;
    publish_tagged(&hub, channel, 5, "SOL").await;
    let (mut again, _) = hub.connect(encoding).await;
    let resubscribe = proto::SubscribeRequest { recover: true, offset: 2, epoch: epoch.clone(), ..request };
    let sub = again.subscribe_with(resubscribe).await.expect("recovered");
    assert!(sub.recovered, "{sub:?}");
    assert_eq!(sub.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![4]);
    assert_eq!((sub.offset, sub.epoch.as_str()), (5, epoch.as_str()));

    // A filter with logical operators (and, not) and `ex`.
    let (mut ranged, _) = hub.connect(encoding).await;
    let not_eth = FilterNode {
        op: "and".into(),
        nodes: vec![
            FilterNode { op: "not".into(), nodes: vec![ticker("ETH")], ..Default::default() },
            FilterNode { key: "ticker".into(), cmp: "ex".into(), ..Default::default() },
        ],
        ..Default::default()
    };
    let request = proto::SubscribeRequest { channel: "tagged:other".into(), tf: Some(not_eth), ..Default::default() };
    ranged.subscribe_with(request).await.expect("subscribed");
    publish_tagged(&hub, "tagged:other", 1, "ETH").await;
    hub.publish("tagged:other", data(2)).await;
    publish_tagged(&hub, "tagged:other", 3, "SOL").await;
    assert_eq!(ranged.recv_pub("tagged:other").await.data, data(3));
    hub.shutdown().await;
}

async fn tags_filters_are_refused_where_not_allowed_or_malformed(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let with = |channel: &str, tf: FilterNode| proto::SubscribeRequest {
        channel: channel.into(),
        tf: Some(tf),
        ..Default::default()
    };
    let error = client.subscribe_with(with("untagged:x", ticker("BTC"))).await.expect_err("not allowed");
    assert_eq!((error.code, error.message.as_str()), (107, "bad request"));
    let malformed = FilterNode { key: "ticker".into(), cmp: "like".into(), val: "B".into(), ..Default::default() };
    let error = client.subscribe_with(with("tagged:x", malformed)).await.expect_err("malformed");
    assert_eq!((error.code, error.message.as_str()), (107, "bad request"));
    let empty_or = FilterNode { op: "or".into(), ..Default::default() };
    assert_eq!(client.subscribe_with(with("tagged:x", empty_or)).await.expect_err("empty or").code, 107);
    // Refused subscriptions leave the connection usable and the channel free.
    client.subscribe_with(with("tagged:x", ticker("BTC"))).await.expect("a valid filter");
    client.subscribe("untagged:x").await;
    hub.shutdown().await;
}
