//! Heartbeats with short intervals: a client that never answers the server's
//! ping is closed with 3012 "no pong"; one that answers stays connected.

use std::time::Duration;

use hub::config::Config;
use protocol::codes;
use protocol::Encoding;

use crate::helpers::{spawn_hub, test_config};

both_encodings!(a_client_that_never_pongs_is_closed_and_one_that_does_stays);

async fn a_client_that_never_pongs_is_closed_and_one_that_does_stays(encoding: Encoding) {
    let config =
        Config { ping_interval: Duration::from_millis(200), pong_timeout: Duration::from_millis(200), ..test_config() };
    let hub = spawn_hub(config).await;
    let (mut mute, connect) = hub.connect(encoding).await;
    assert_eq!((connect.ping, connect.pong), (1, true), "ping interval rounded up to a second; pong requested");
    let (mut polite, _) = hub.connect(encoding).await;
    polite.auto_pong = true;
    polite.subscribe("news").await;

    // Both read at once: the mute one ignores the pings, the polite one answers
    // every ping with `{}` while several intervals pass.
    let (close, ()) = tokio::join!(mute.expect_close(), polite.expect_silence(Duration::from_millis(1500)));
    assert_eq!(close, (codes::NO_PONG.code, codes::NO_PONG.reason.to_string()));
    assert!(mute.pings >= 1, "the server pinged before it gave up");
    assert!(mute.take_inbox().is_empty(), "pings are empty replies, nothing else came");
    assert!(polite.pings >= 4, "a ping every 200 ms, {} seen in 1.5 s", polite.pings);
    polite.ping().await.expect("still connected and served");
    hub.publish("news", crate::helpers::data(1)).await;
    assert_eq!(polite.recv_pub("news").await.data, crate::helpers::data(1));
    drop(polite);
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}
