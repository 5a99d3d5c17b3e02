//! Slow consumers: a client that stops reading overflows its bounded outbox
//! and is closed with 3008 "slow", while the other subscribers of the same
//! channel keep receiving every publication, in order.

use std::time::Duration;

use bytes::Bytes;
use hub::config::{ChannelOptions, Config};
use hub::metrics::Metrics;
use protocol::codes;
use protocol::Encoding;

use crate::helpers::{open_options, spawn_hub, test_config};

both_encodings!(a_client_that_stops_reading_is_closed_as_slow_and_others_lose_nothing);

/// Outbox bound for this test.
const OUTBOX: usize = 64 * 1024;
/// Size of each publication's data.
const PAYLOAD: usize = 4 * 1024;
/// Publications per round; a round's bytes fit the fast client's outbox.
const ROUND: usize = 8;
/// Give up (fail) after this many publications without a slow disconnect:
/// 40 MiB, far beyond any loopback socket buffering.
const MAX_PUBLICATIONS: usize = 10_000;

fn payload(n: usize) -> Bytes {
    let head = format!(r#"{{"n":{n},"pad":""#);
    let pad = "x".repeat(PAYLOAD - head.len() - 2);
    Bytes::from(format!("{head}{pad}\"}}"))
}

async fn a_client_that_stops_reading_is_closed_as_slow_and_others_lose_nothing(encoding: Encoding) {
    let mut config = Config { client_outbox_bytes: OUTBOX, ..test_config() };
    config.namespaces.insert("firehose".into(), ChannelOptions { join_leave: false, ..open_options() });
    let hub = spawn_hub(config).await;
    let mut slow = crate::ws_client::WsClient::open_small_buffer(hub.addr, encoding, 16 * 1024).await;
    slow.connect("").await.expect("connect");
    slow.subscribe("firehose:x").await;
    let (mut fast, _) = hub.connect(encoding).await;
    fast.subscribe("firehose:x").await;
    assert_eq!(payload(1).len(), PAYLOAD);

    // Both clients get the first publication.
    hub.publish("firehose:x", payload(1)).await;
    for client in [&mut slow, &mut fast] {
        let publication = client.recv_pub("firehose:x").await;
        assert_eq!((publication.offset, &publication.data), (1, &payload(1)));
    }

    // The slow client reads nothing from here on. Publish in rounds and let
    // the fast client read each round completely before the next one.
    let metrics = hub.node.metrics.clone();
    let mut published = 1;
    let mut rounds_after_slow = 0;
    while rounds_after_slow < 10 {
        assert!(published < MAX_PUBLICATIONS, "no slow disconnect after {published} publications of {PAYLOAD} bytes");
        for _ in 0..ROUND {
            published += 1;
            hub.publish("firehose:x", payload(published)).await;
        }
        for n in published - ROUND + 1..=published {
            let publication = fast.recv_pub("firehose:x").await;
            assert_eq!(publication.offset, n as u64, "the fast client gets every publication in order");
            assert_eq!(publication.data, payload(n));
        }
        if Metrics::get(&metrics.slow_disconnects) > 0 {
            rounds_after_slow += 1;
        }
    }
    assert_eq!(Metrics::get(&metrics.slow_disconnects), 1, "only the slow client was slow");
    let stats = hub.node.presence_stats("firehose:x").await.expect("presence is on");
    assert_eq!(stats, (1, 1), "the slow client left the channel, the fast one stayed");

    // The slow client reads again: what was written before the overflow
    // (how much depends on socket buffers and on when its writer last ran),
    // continuing after publication 1 in order without gaps, then the close
    // frame with 3008 "slow".
    let close = slow.expect_close().await;
    assert_eq!(close, (codes::SLOW.code, codes::SLOW.reason.to_string()));
    let received: Vec<_> = slow.take_inbox().into_iter().map(|reply| reply.push.and_then(|p| p.r#pub)).collect();
    assert!(received.len() + 1 < published, "{} of {published} reached the slow client", received.len() + 1);
    for (i, publication) in received.iter().enumerate() {
        let publication = publication.as_ref().expect("only publications were pushed");
        assert_eq!((publication.offset, &publication.data), ((i + 2) as u64, &payload(i + 2)));
    }

    // The fast client is still served.
    hub.publish("firehose:x", payload(published + 1)).await;
    assert_eq!(fast.recv_pub("firehose:x").await.data, payload(published + 1));
    fast.expect_silence(Duration::from_millis(100)).await;
    drop(slow);
    drop(fast);
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}
