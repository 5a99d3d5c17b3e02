//! Server-side operations on connected users, through the node (the server
//! API calls them): subscribe, unsubscribe (2000), disconnect (with its
//! whitelist), refresh, each narrowed by client or session id.

use std::time::Duration;

use protocol::codes;
use protocol::Encoding;

use hub::node::{ExpiryRefresh, Target};

use crate::helpers::{connect_token, data, eventually, spawn_hub, test_config, token_config, wait_until};
use crate::http_transports::{open_stream, StreamTransport};

both_encodings!(
    server_subscribe_unsubscribe_and_disconnect_users,
    disconnect_keeps_the_whitelist_and_refresh_sets_the_expiry,
    session_narrows_a_command_to_one_streaming_connection,
);

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
    hub.node.subscribe_user("alice", "feed:ops", Target::default()).expect("a valid channel");
    for client in [&mut alice, &mut alice2] {
        let push = client.recv_push().await;
        assert_eq!(push.channel, "feed:ops");
        let subscribe = push.subscribe.clone().unwrap_or_else(|| panic!("a subscribe push, got {push:?}"));
        assert_eq!((subscribe.recoverable, subscribe.offset), (true, 1));
    }
    assert_eq!(hub.node.subscribe_user("alice", "nope:x", Target::default()), Err(codes::UNKNOWN_CHANNEL));
    hub.publish("feed:ops", data(2)).await;
    for client in [&mut alice, &mut alice2] {
        assert_eq!(client.recv_pub("feed:ops").await.data, data(2));
    }
    bob.expect_silence(Duration::from_millis(100)).await;

    // Unsubscribe one of alice's connections: code 2000, nothing more arrives there.
    hub.node
        .unsubscribe_user("alice", "feed:ops", Target { client: Some(&alice2_connect.client), session: None })
        .expect("a valid channel");
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
    hub.node.disconnect_user("alice", Target::default(), Vec::new(), codes::FORCE_NO_RECONNECT);
    for client in [&mut alice, &mut alice2] {
        assert_eq!(client.expect_close().await, (3503, "force disconnect".to_string()));
    }
    bob.ping().await.expect("bob is not affected");
    hub.node.disconnect_user("bob", Target::default(), Vec::new(), codes::FORCE_RECONNECT);
    assert_eq!(bob.expect_close().await, (3011, "force reconnect".to_string()));
    hub.assert_no_sessions().await;
    let node = hub.node.clone();
    eventually("disconnected clients to leave the channel", Ok((0, 0)), || node.presence_stats("feed:ops")).await;
    hub.shutdown().await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

async fn disconnect_keeps_the_whitelist_and_refresh_sets_the_expiry(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut first, _) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut second, _) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut kept, kept_connect) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;

    // Whitelisted clients stay connected; the others are closed.
    let whitelist = vec![kept_connect.client.clone(), "someone-else".to_string()];
    hub.node.disconnect_user("alice", Target::default(), whitelist, codes::FORCE_NO_RECONNECT);
    for client in [&mut first, &mut second] {
        assert_eq!(client.expect_close().await, (3503, "force disconnect".to_string()));
    }
    kept.ping().await.expect("the whitelisted client stays");

    // refresh with a future expire_at: a refresh push with the new ttl.
    let target = Target { client: Some(&kept_connect.client), session: None };
    hub.node.refresh_user("alice", target, ExpiryRefresh::ExpireAt(unix_now() + 100));
    let push = kept.recv_push().await;
    let refresh = push.refresh.unwrap_or_else(|| panic!("a refresh push, got {push:?}"));
    assert!(refresh.expires && (98..=100).contains(&refresh.ttl), "{refresh:?}");
    // No expiry any more.
    hub.node.refresh_user("alice", target, ExpiryRefresh::Never);
    let push = kept.recv_push().await;
    assert_eq!(push.refresh, Some(protocol::proto::Refresh { expires: false, ttl: 0 }));
    // A time already past, or `expired`: closed as expired.
    hub.node.refresh_user("alice", target, ExpiryRefresh::ExpireAt(unix_now() - 1));
    assert_eq!(kept.expect_close().await, (3005, "connection expired".to_string()));
    let (mut bob, _) = hub.connect_with_token(encoding, &connect_token("bob", None)).await;
    hub.node.refresh_user("bob", Target::default(), ExpiryRefresh::Expired);
    assert_eq!(bob.expect_close().await, (3005, "connection expired".to_string()));
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

/// A WebSocket connection has no session id; an HTTP-stream one has the id of
/// its connect reply, and a command naming it reaches that connection only.
async fn session_narrows_a_command_to_one_streaming_connection(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut ws, _) = hub.connect(encoding).await;
    let (_stream, session) = open_stream(hub.addr, StreamTransport::HttpStream).await;
    let (_other, other_session) = open_stream(hub.addr, StreamTransport::HttpStream).await;
    assert_ne!(session, other_session);
    assert_eq!(hub.node.client_count(), 3);

    // A subscribe for another session reaches no WebSocket connection.
    hub.node.subscribe_user("", "news", Target { client: None, session: Some(&session) }).expect("a valid channel");
    ws.expect_silence(Duration::from_millis(200)).await;

    hub.node.disconnect_user(
        "",
        Target { client: None, session: Some(&session) },
        Vec::new(),
        codes::FORCE_NO_RECONNECT,
    );
    let node = hub.node.clone();
    wait_until("the one streaming connection to end", || node.client_count() == 2).await;
    ws.ping().await.expect("the WebSocket connection stays");
    // A whitelist that does not name the connection does not keep it.
    hub.node.disconnect_user(
        "",
        Target { client: None, session: Some(&other_session) },
        vec!["not-it".into()],
        codes::FORCE_NO_RECONNECT,
    );
    wait_until("the other streaming connection to end", || node.client_count() == 1).await;
    ws.ping().await.expect("the WebSocket connection stays");
    hub.shutdown().await;
}
