//! Ordering at the edges of a subscription while publications keep flowing:
//! a subscribe (with recovery) joins the stream without a gap or a repeat, and
//! nothing of a channel follows its unsubscribe reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub::topic::HistoryQuery;
use protocol::proto::{self, Command};
use protocol::Encoding;

use crate::helpers::{data, spawn_hub, test_config, wait_until, TestHub};

both_encodings!(subscribe_with_recovery_joins_a_live_stream_exactly, nothing_follows_the_unsubscribe_reply);

/// Publishes `from..=to` into `channel` from a task, one every `pause`;
/// `published` holds the last offset published.
fn publisher(
    hub: &TestHub,
    channel: &'static str,
    from: usize,
    to: usize,
    pause: Duration,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let node = hub.node.clone();
    let published = Arc::new(AtomicU64::new(0));
    let last = published.clone();
    let task = tokio::spawn(async move {
        for n in from..=to {
            let args = hub::topic::PublishArgs { data: data(n), ..Default::default() };
            let position = node.publish(channel, args).await.expect("publish");
            assert_eq!(position.offset, n as u64);
            last.store(position.offset, Ordering::Release);
            tokio::time::sleep(pause).await;
        }
    });
    (task, published)
}

async fn subscribe_with_recovery_joins_a_live_stream_exactly(encoding: Encoding) {
    // History holds everything this test publishes.
    let mut config = test_config();
    config.channel.history_size = 1000;
    let hub = spawn_hub(config).await;
    let epoch = hub.publish("news", data(1)).await.epoch;
    const LAST: usize = 300;
    let (task, published) = publisher(&hub, "news", 2, LAST, Duration::from_millis(1));
    wait_until("50 publications", || published.load(Ordering::Acquire) >= 50).await;

    // A client recovering from offset 0 while publications flow: recovered
    // ones and live ones together are every publication exactly once, in order.
    let (mut client, _) = hub.connect(encoding).await;
    let sub = client.subscribe_recover("news", 0, &epoch).await;
    assert!(sub.recovered, "{sub:?}");
    let mut offsets: Vec<u64> = sub.publications.iter().map(|p| p.offset).collect();
    assert!(offsets.len() >= 50, "the 50 first publications were recovered: {offsets:?}");
    assert_eq!(sub.offset, *offsets.last().expect("not empty"), "the reported top is the last recovered");
    while offsets.len() < LAST {
        let publication = client.recv_pub("news").await;
        assert_eq!(publication.data, data(publication.offset as usize));
        offsets.push(publication.offset);
    }
    assert_eq!(offsets, (1..=LAST as u64).collect::<Vec<_>>(), "no gap, no repeat");
    task.await.expect("the publisher finished");
    client.expect_silence(Duration::from_millis(100)).await;
    hub.shutdown().await;
}

async fn nothing_follows_the_unsubscribe_reply(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("news").await;
    let (task, published) = publisher(&hub, "news", 1, 1000, Duration::from_millis(1));
    wait_until("20 publications", || published.load(Ordering::Acquire) >= 20).await;

    let id = client.next_id();
    let request = proto::UnsubscribeRequest { channel: "news".into() };
    client.send(&[Command { id, unsubscribe: Some(request), ..Default::default() }]).await;
    let mut offsets = Vec::new();
    loop {
        let reply = client.recv_any().await;
        if reply.id == id {
            assert_eq!(reply.unsubscribe, Some(proto::UnsubscribeResult {}));
            break;
        }
        let publication = reply.push.and_then(|p| p.r#pub).expect("only publications before the reply");
        offsets.push(publication.offset);
    }
    assert!(offsets.len() >= 20, "{offsets:?}");
    assert_eq!(offsets, (1..=offsets.len() as u64).collect::<Vec<_>>(), "everything up to the unsubscribe, in order");
    // Publications go on; none reach the client any more.
    let before = published.load(Ordering::Acquire);
    client.expect_silence(Duration::from_millis(300)).await;
    assert!(published.load(Ordering::Acquire) > before, "the publisher kept publishing meanwhile");
    task.abort();
    let page = hub.node.history("news", HistoryQuery { limit: 0, ..Default::default() }).await.expect("history");
    assert!(page.offset > offsets.len() as u64);
    hub.shutdown().await;
}
