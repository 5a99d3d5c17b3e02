//! Topic lifetimes: a channel nobody uses and that keeps nothing retires
//! (topics do not accumulate), and coming back to it later just works.

use std::time::Duration;

use protocol::Encoding;

use crate::helpers::{data, spawn_hub, test_config, wait_until};

/// A little more than the topic's idle check period (10 s).
const IDLE: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_topics_without_history_retire_and_come_back() {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(Encoding::Json).await;
    client.subscribe("plain:transient").await;
    client.subscribe("news").await;
    hub.publish("plain:transient", data(1)).await;
    assert_eq!(client.recv_pub("plain:transient").await.data, data(1));
    client.unsubscribe("plain:transient").await.expect("unsubscribe");
    assert!(hub.node.topics.lookup("plain:transient").is_some());

    // No subscriber and no history: the topic goes away. `news` has a
    // subscriber (and history) and stays.
    let node = hub.node.clone();
    tokio::time::sleep(IDLE).await;
    wait_until("plain:transient to retire", || node.topics.lookup("plain:transient").is_none()).await;
    assert!(node.topics.lookup("news").is_some(), "a topic with subscribers stays");

    // Coming back creates it anew; publications flow as before.
    client.subscribe("plain:transient").await;
    hub.publish("plain:transient", data(2)).await;
    assert_eq!(client.recv_pub("plain:transient").await.data, data(2));
    hub.publish("news", data(3)).await;
    assert_eq!(client.recv_pub("news").await.data, data(3));
    client.expect_silence(Duration::from_millis(100)).await;
    hub.shutdown().await;
}
