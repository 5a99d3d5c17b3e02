//! Server-side operations on connected users, through the node (the server
//! API calls them): subscribe, unsubscribe (2000), disconnect.

use std::time::Duration;

use protocol::codes;
use protocol::Encoding;

use crate::helpers::{connect_token, data, eventually, spawn_hub, token_config};

both_encodings!(server_subscribe_unsubscribe_and_disconnect_users);

async fn server_subscribe_unsubscribe_and_disconnect_users(encoding: Encoding) {
    let mut config = token_config();
    config
        .namespaces
        .insert("feed".into(), hub::config::ChannelOptions { join_leave: false, ..crate::helpers::open_options() });
    let hub = spawn_hub(config).await;
    let (mut alice, _) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut alice2, alice2_connect) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut bob, _) = hub.connect_with_token(encoding, &connect_token("bob", None)).await;
    hub.publish("feed:ops", data(1)).await;

    // Subscribe every connection of alice; private channels included.
    hub.node.subscribe_user("alice", "feed:ops", None).expect("a valid channel");
    for client in [&mut alice, &mut alice2] {
        let push = client.recv_push().await;
        assert_eq!(push.channel, "feed:ops");
        let subscribe = push.subscribe.clone().unwrap_or_else(|| panic!("a subscribe push, got {push:?}"));
        assert_eq!((subscribe.recoverable, subscribe.offset), (true, 1));
    }
    assert_eq!(hub.node.subscribe_user("alice", "nope:x", None), Err(codes::UNKNOWN_CHANNEL));
    hub.publish("feed:ops", data(2)).await;
    for client in [&mut alice, &mut alice2] {
        assert_eq!(client.recv_pub("feed:ops").await.data, data(2));
    }
    bob.expect_silence(Duration::from_millis(100)).await;

    // Unsubscribe one of alice's connections: code 2000, nothing more arrives there.
    hub.node.unsubscribe_user("alice", "feed:ops", Some(&alice2_connect.client)).expect("a valid channel");
    let push = alice2.recv_push().await;
    assert_eq!(push.channel, "feed:ops");
    assert_eq!(push.unsubscribe, Some(codes::UNSUBSCRIBE_SERVER.to_proto()));
    assert_eq!(push.unsubscribe.as_ref().map(|u| u.code), Some(2000));
    hub.publish("feed:ops", data(3)).await;
    assert_eq!(alice.recv_pub("feed:ops").await.data, data(3));
    alice2.expect_silence(Duration::from_millis(200)).await;
    // The client may subscribe again by itself.
    alice2.subscribe("feed:ops").await;

    // Disconnect: the code and reason reach the client; others stay.
    hub.node.disconnect_user("alice", None, codes::FORCE_NO_RECONNECT);
    for client in [&mut alice, &mut alice2] {
        assert_eq!(client.expect_close().await, (3503, "force disconnect".to_string()));
    }
    bob.ping().await.expect("bob is not affected");
    hub.node.disconnect_user("bob", None, codes::FORCE_RECONNECT);
    assert_eq!(bob.expect_close().await, (3011, "force reconnect".to_string()));
    hub.assert_no_sessions().await;
    let node = hub.node.clone();
    eventually("disconnected clients to leave the channel", Ok((0, 0)), || node.presence_stats("feed:ops")).await;
    hub.shutdown().await;
}
