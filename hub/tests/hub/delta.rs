//! Delta compression (`delta: "fossil"`, Centrifugo's): the subscribe result
//! says `delta: true` where the namespace allows it; the first publication
//! goes in full, the next ones as Fossil deltas from the one before (applied
//! here with `protocol::fossil::apply`) when the publisher asked for delta and
//! the delta is smaller; JSON subscribers get `data` as a JSON string.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hub::config::{ChannelOptions, DeltaType};
use hub::topic::PublishArgs;
use protocol::codes;
use protocol::fossil;
use protocol::proto::{self, FilterNode};
use protocol::Encoding;

use crate::helpers::{open_options, spawn_hub, test_config, TestHub};
use crate::ws_client::WsClient;

both_encodings!(
    subscribe_result_says_delta_where_the_namespace_allows_it,
    an_unknown_delta_type_is_a_bad_request,
    full_then_deltas_that_apply_to_the_same_data,
    a_delta_that_does_not_pay_goes_in_full,
    deltas_only_for_publications_that_ask_unless_delta_publish,
    a_publication_filtered_out_does_not_break_the_base,
    recovered_publications_are_full_and_the_next_one_a_delta
);

fn config() -> hub::config::Config {
    let mut config = test_config();
    let quiet = ChannelOptions { join_leave: false, ..open_options() };
    let delta =
        ChannelOptions { allowed_delta_types: vec![DeltaType::Fossil], allow_tags_filter: true, ..quiet.clone() };
    config.namespaces.insert("delta".into(), delta.clone());
    config.namespaces.insert("always".into(), ChannelOptions { delta_publish: true, ..delta });
    config.namespaces.insert("nodelta".into(), quiet);
    config
}

/// A document of ~300 bytes whose versions differ in one number.
fn document(version: usize) -> Bytes {
    let items: Vec<String> = (0..12).map(|i| format!(r#"{{"item":{i},"label":"position {i}"}}"#)).collect();
    Bytes::from(format!(r#"{{"version":{version},"items":[{}]}}"#, items.join(",")))
}

async fn publish(hub: &TestHub, channel: &str, data: Bytes, delta: bool) -> u64 {
    let args = PublishArgs { data, delta, ..Default::default() };
    hub.node.publish(channel, args).await.expect("published").offset
}

fn subscribe_request(channel: &str) -> proto::SubscribeRequest {
    proto::SubscribeRequest { channel: channel.into(), delta: "fossil".into(), ..Default::default() }
}

async fn delta_subscriber(hub: &TestHub, encoding: Encoding, channel: &str) -> WsClient {
    let (mut client, _) = hub.connect(encoding).await;
    let result = client.subscribe_with(subscribe_request(channel)).await.expect("subscribed");
    assert!(result.delta, "{result:?}");
    client
}

/// The bytes a delta subscriber was sent as `data`: JSON carries them as a
/// JSON string (centrifuge-js reads the string's UTF-8 bytes), Protobuf as is.
fn wire_bytes(encoding: Encoding, data: &Bytes) -> Vec<u8> {
    match encoding {
        Encoding::Json => serde_json::from_slice::<String>(data)
            .unwrap_or_else(|e| panic!("JSON data of a delta subscriber is a string ({e}): {data:?}"))
            .into_bytes(),
        Encoding::Protobuf => data.to_vec(),
    }
}

/// What a client does: keeps the last payload and applies deltas to it.
struct Applier {
    encoding: Encoding,
    last: Option<Vec<u8>>,
}

impl Applier {
    fn new(encoding: Encoding) -> Self {
        Applier { encoding, last: None }
    }

    fn apply(&mut self, publication: &proto::Publication) -> Vec<u8> {
        let bytes = wire_bytes(self.encoding, &publication.data);
        let full = if publication.delta {
            let base = self.last.as_ref().expect("a delta comes after a base");
            fossil::apply(base, &bytes).expect("the delta applies")
        } else {
            bytes
        };
        self.last = Some(full.clone());
        full
    }
}

async fn subscribe_result_says_delta_where_the_namespace_allows_it(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let allowed = client.subscribe_with(subscribe_request("delta:doc")).await.expect("subscribed");
    assert!(allowed.delta);
    // Not allowed: subscribed all the same, without delta (as Centrifugo).
    let refused = client.subscribe_with(subscribe_request("nodelta:doc")).await.expect("subscribed");
    assert!(!refused.delta, "{refused:?}");
    let plain = client.subscribe("delta:other").await;
    assert!(!plain.delta, "not asked, not negotiated");
    // A subscriber without delta gets plain publications (JSON data embedded).
    publish(&hub, "nodelta:doc", document(1), true).await;
    publish(&hub, "nodelta:doc", document(2), true).await;
    for version in 1..=2 {
        let publication = client.recv_pub("nodelta:doc").await;
        assert!(!publication.delta);
        assert_eq!(publication.data, document(version));
    }
    hub.shutdown().await;
}

async fn an_unknown_delta_type_is_a_bad_request(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let request = proto::SubscribeRequest { delta: "vcdiff".into(), ..subscribe_request("delta:doc") };
    let id = client.next_id();
    client.send(&[proto::Command { id, subscribe: Some(request), ..Default::default() }]).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (codes::BAD_REQUEST_DISCONNECT.code, "bad request"));
    hub.shutdown().await;
}

async fn full_then_deltas_that_apply_to_the_same_data(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let channel = "delta:doc";
    let mut delta = delta_subscriber(&hub, encoding, channel).await;
    let (mut plain, _) = hub.connect(encoding).await;
    plain.subscribe(channel).await;
    for version in 1..=4 {
        publish(&hub, channel, document(version), true).await;
    }
    let mut applier = Applier::new(encoding);
    for version in 1..=4 {
        let publication = delta.recv_pub(channel).await;
        assert_eq!(publication.delta, version > 1, "full first, deltas next: {publication:?}");
        assert_eq!(publication.offset, version as u64);
        if publication.delta {
            assert!(publication.data.len() < document(version).len() / 2, "a delta is small: {publication:?}");
        }
        assert_eq!(applier.apply(&publication), document(version).to_vec());
        let same = plain.recv_pub(channel).await;
        assert!(!same.delta);
        assert_eq!(same.data, document(version), "a subscriber without delta gets plain data");
    }
    // A subscriber that joins now gets its first publication in full.
    let mut late = delta_subscriber(&hub, encoding, channel).await;
    publish(&hub, channel, document(5), true).await;
    let first = late.recv_pub(channel).await;
    assert!(!first.delta);
    assert_eq!(wire_bytes(encoding, &first.data), document(5).to_vec());
    let next = delta.recv_pub(channel).await;
    assert!(next.delta);
    assert_eq!(applier.apply(&next), document(5).to_vec());
    hub.shutdown().await;
}

async fn a_delta_that_does_not_pay_goes_in_full(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let channel = "delta:small";
    let mut client = delta_subscriber(&hub, encoding, channel).await;
    let mut applier = Applier::new(encoding);
    publish(&hub, channel, document(1), true).await;
    publish(&hub, channel, Bytes::from_static(br#"{"other":true}"#), true).await;
    let first = client.recv_pub(channel).await;
    applier.apply(&first);
    let unlike = client.recv_pub(channel).await;
    assert!(!unlike.delta, "a delta longer than the data is not sent: {unlike:?}");
    assert_eq!(applier.apply(&unlike), br#"{"other":true}"#.to_vec());
    hub.shutdown().await;
}

async fn deltas_only_for_publications_that_ask_unless_delta_publish(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let mut client = delta_subscriber(&hub, encoding, "delta:doc").await;
    let mut applier = Applier::new(encoding);
    for version in 1..=3 {
        publish(&hub, "delta:doc", document(version), false).await;
    }
    for version in 1..=3 {
        let publication = client.recv_pub("delta:doc").await;
        assert!(!publication.delta, "the publisher did not ask: full");
        assert_eq!(applier.apply(&publication), document(version).to_vec());
    }
    // `delta_publish`: every publication asks.
    let mut always = delta_subscriber(&hub, encoding, "always:doc").await;
    let mut applier = Applier::new(encoding);
    for version in 1..=3 {
        publish(&hub, "always:doc", document(version), false).await;
    }
    for version in 1..=3 {
        let publication = always.recv_pub("always:doc").await;
        assert_eq!(publication.delta, version > 1);
        assert_eq!(applier.apply(&publication), document(version).to_vec());
    }
    hub.shutdown().await;
}

/// A publication that the subscriber's tags filter keeps from it would leave
/// its base behind the channel's: the next one it gets goes in full.
async fn a_publication_filtered_out_does_not_break_the_base(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let channel = "delta:tagged";
    let (mut client, _) = hub.connect(encoding).await;
    let not_skip = FilterNode { key: "skip".into(), cmp: "nex".into(), ..Default::default() };
    let request = proto::SubscribeRequest { tf: Some(not_skip), ..subscribe_request(channel) };
    assert!(client.subscribe_with(request).await.expect("subscribed").delta);
    let mut applier = Applier::new(encoding);
    let tagged = |version| PublishArgs {
        data: document(version),
        delta: true,
        tags: BTreeMap::from([("skip".to_string(), "yes".to_string())]),
        ..Default::default()
    };
    publish(&hub, channel, document(1), true).await;
    publish(&hub, channel, document(2), true).await;
    hub.node.publish(channel, tagged(3)).await.expect("published");
    publish(&hub, channel, document(4), true).await;
    publish(&hub, channel, document(5), true).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let publication = client.recv_pub(channel).await;
        let full = applier.apply(&publication);
        seen.push((publication.offset, publication.delta));
        assert_eq!(full, document(publication.offset as usize).to_vec());
    }
    assert_eq!(seen, vec![(1, false), (2, true), (4, false), (5, true)]);
    client.expect_silence(Duration::from_millis(100)).await;
    hub.shutdown().await;
}

async fn recovered_publications_are_full_and_the_next_one_a_delta(encoding: Encoding) {
    let hub = spawn_hub(config()).await;
    let channel = "delta:recover";
    let (mut first, _) = hub.connect(encoding).await;
    let request = proto::SubscribeRequest { recoverable: true, ..subscribe_request(channel) };
    let result = first.subscribe_with(request.clone()).await.expect("subscribed");
    publish(&hub, channel, document(1), true).await;
    let mut applier = Applier::new(encoding);
    applier.apply(&first.recv_pub(channel).await);
    drop(first);
    publish(&hub, channel, document(2), true).await;
    publish(&hub, channel, document(3), true).await;
    let (mut again, _) = hub.connect(encoding).await;
    let resubscribe = proto::SubscribeRequest { recover: true, offset: 1, epoch: result.epoch.clone(), ..request };
    let recovered = again.subscribe_with(resubscribe).await.expect("recovered");
    assert!(recovered.recovered && recovered.delta, "{recovered:?}");
    assert_eq!(recovered.publications.len(), 2);
    for (publication, version) in recovered.publications.iter().zip(2..) {
        assert!(!publication.delta, "recovered publications are full");
        assert_eq!(applier.apply(publication), document(version).to_vec());
    }
    // The recovery ended at the channel's last publication: the next is a delta.
    publish(&hub, channel, document(4), true).await;
    let next = again.recv_pub(channel).await;
    assert!(next.delta, "{next:?}");
    assert_eq!(applier.apply(&next), document(4).to_vec());
    hub.shutdown().await;
}
