//! Connection and subscription tokens (HS256), with anonymous connect off.

use std::time::Duration;

use bytes::Bytes;
use hub::auth;
use hub::config::Config;
use protocol::codes;
use protocol::proto::{self, ClientInfo};
use protocol::Encoding;

use crate::helpers::{connect_token, connect_token_with, data, spawn_hub, subscribe_token, token_config, SECRET};

both_encodings!(
    valid_token_connects_with_user_and_info,
    bad_tokens_get_their_codes,
    channels_claim_subscribes_server_side,
    subscription_tokens_gate_private_channels,
);

async fn valid_token_connects_with_user_and_info(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let token = connect_token("alice", Some(r#"{"name":"Alice","roles":["admin"]}"#));
    let (mut alice, connect) = hub.connect_with_token(encoding, &token).await;
    assert!(connect.expires, "the token has an exp: the connection expires");
    assert!((3590..=3600).contains(&connect.ttl), "ttl {} is about an hour", connect.ttl);
    alice.subscribe("chat:who").await;
    let presence = alice.presence("chat:who").await.expect("presence");
    let info = presence.presence.get(&connect.client).expect("alice is present");
    assert_eq!(
        info,
        &ClientInfo {
            user: "alice".into(),
            client: connect.client.clone(),
            conn_info: Bytes::from_static(br#"{"name":"Alice","roles":["admin"]}"#),
            chan_info: Bytes::new(),
        }
    );
    // A token without exp does not expire.
    let forever = connect_token_with(SECRET, "bob", None, &[], None);
    let (_bob, connect) = hub.connect_with_token(encoding, &forever).await;
    assert_eq!((connect.expires, connect.ttl), (false, 0));
    hub.shutdown().await;
}

async fn bad_tokens_get_their_codes(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let hour = Some(auth::expires_in(Duration::from_secs(3600)));

    // Wrong signature: disconnect 3500, do not reconnect.
    let forged = connect_token_with("not-the-secret", "mallory", None, &[], hour);
    let mut client = hub.open(encoding).await;
    let id = client.next_id();
    client.send(&[proto::Command { id, connect: Some(connect_request(&forged)), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3500, "invalid token".to_string()));
    assert!(client.take_inbox().is_empty(), "no reply before the close");

    // Garbage is invalid too.
    let mut client = hub.open(encoding).await;
    let id = client.next_id();
    client.send(&[proto::Command { id, connect: Some(connect_request("a.b.c")), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3500, "invalid token".to_string()));

    // Expired: error 109 in the reply; the connection stays, and a fresh token connects.
    let mut client = hub.open(encoding).await;
    let expired = connect_token_with(SECRET, "alice", None, &[], Some(auth::expires_in(Duration::ZERO) - 10));
    assert_eq!(client.connect(&expired).await.unwrap_err(), codes::TOKEN_EXPIRED.to_proto());
    client.expect_silence(Duration::from_millis(200)).await;
    let connect = client.connect(&connect_token("alice", None)).await.expect("a fresh token connects");
    assert!(!connect.client.is_empty());

    // No token where anonymous connect is off: error 101; the connection stays.
    let mut client = hub.open(encoding).await;
    assert_eq!(client.connect("").await.unwrap_err(), codes::UNAUTHORIZED.to_proto());
    client.expect_silence(Duration::from_millis(200)).await;
    client.connect(&connect_token("bob", None)).await.expect("then a token connects");
    drop(client);
    hub.shutdown().await;
}

fn connect_request(token: &str) -> proto::ConnectRequest {
    proto::ConnectRequest { token: token.into(), ..Default::default() }
}

async fn channels_claim_subscribes_server_side(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let hour = Some(auth::expires_in(Duration::from_secs(3600)));
    hub.publish("private:news", data(1)).await;
    // `private` needs a token to subscribe; the claim is that grant.
    let token = connect_token_with(SECRET, "alice", None, &["private:news", "news", "nope:bad"], hour);
    let (mut alice, connected) = hub.connect_with_token(encoding, &token).await;
    // As Centrifugo: the subscriptions are in the connect reply's `subs`; the
    // unknown channel is skipped.
    assert_eq!(connected.subs.keys().collect::<Vec<_>>(), ["news", "private:news"], "{connected:?}");
    for (channel, offset) in [("private:news", 1), ("news", 0)] {
        let subscribe = &connected.subs[channel];
        assert!(subscribe.recoverable && subscribe.positioned, "history is on: {subscribe:?}");
        assert_eq!(subscribe.offset, offset, "{channel}: the stream top");
        assert!(subscribe.publications.is_empty() && !subscribe.was_recovering, "{subscribe:?}");
    }
    // Then the client's own join where join/leave is on.
    let push = alice.recv_push().await;
    assert_eq!((push.channel.as_str(), push.join.is_some()), ("private:news", true), "{push:?}");
    alice.expect_silence(Duration::from_millis(100)).await;

    for n in 2..=4 {
        hub.publish("private:news", data(n)).await;
    }
    for n in 2..=4 {
        let publication = alice.recv_pub("private:news").await;
        assert_eq!((publication.offset, publication.data), (n as u64, data(n)));
    }
    // Subscribing again on top of the server-side subscription is refused.
    let again = proto::SubscribeRequest { channel: "news".into(), ..Default::default() };
    assert_eq!(alice.subscribe_with(again).await.unwrap_err(), codes::ALREADY_SUBSCRIBED.to_proto());
    hub.shutdown().await;
}

async fn subscription_tokens_gate_private_channels(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut alice, connect) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let request =
        |channel: &str, token: String| proto::SubscribeRequest { channel: channel.into(), token, ..Default::default() };
    // No token: permission denied.
    let refused = alice.subscribe_with(request("private:room", String::new())).await.unwrap_err();
    assert_eq!(refused, codes::PERMISSION_DENIED.to_proto());
    // A token for another channel, or for another user: permission denied.
    let other_channel = subscribe_token("alice", "private:other", None);
    let refused = alice.subscribe_with(request("private:room", other_channel)).await.unwrap_err();
    assert_eq!(refused, codes::PERMISSION_DENIED.to_proto());
    let other_user = subscribe_token("bob", "private:room", None);
    let refused = alice.subscribe_with(request("private:room", other_user)).await.unwrap_err();
    assert_eq!(refused, codes::PERMISSION_DENIED.to_proto());
    // Unknown namespace stays 102 whatever the token.
    let unknown = subscribe_token("alice", "nope:room", None);
    assert_eq!(
        alice.subscribe_with(request("nope:room", unknown)).await.unwrap_err(),
        codes::UNKNOWN_CHANNEL.to_proto()
    );

    // Without a subscription, presence and history of a channel that needs a token are refused.
    assert_eq!(alice.presence("private:room").await.unwrap_err(), codes::PERMISSION_DENIED.to_proto());
    let history = proto::HistoryRequest { channel: "private:room".into(), limit: -1, ..Default::default() };
    assert_eq!(alice.history(history.clone()).await.unwrap_err(), codes::PERMISSION_DENIED.to_proto());

    // The right token: subscribed, with its info as chan_info.
    let token = subscribe_token("alice", "private:room", Some(r#"{"seat":7}"#));
    let sub = alice.subscribe_with(request("private:room", token)).await.expect("a valid subscription token");
    assert!(sub.expires && (3590..=3600).contains(&sub.ttl), "{sub:?}");
    let presence = alice.presence("private:room").await.expect("presence for a subscriber");
    assert_eq!(presence.presence[&connect.client].chan_info, Bytes::from_static(br#"{"seat":7}"#));
    assert!(alice.recv_push().await.join.is_some(), "own join");
    hub.publish("private:room", data(1)).await;
    assert_eq!(alice.recv_pub("private:room").await.data, data(1));

    // An expired subscription token: 109, the connection stays.
    let expired = auth::sign_subscribe_token(
        SECRET,
        &auth::SubscribeClaims {
            user: "alice".into(),
            channel: "private:late".into(),
            expires_at: Some(auth::expires_in(Duration::ZERO) - 10),
            info: None,
        },
    )
    .expect("signs");
    assert_eq!(
        alice.subscribe_with(request("private:late", expired)).await.unwrap_err(),
        codes::TOKEN_EXPIRED.to_proto()
    );
    alice.ping().await.expect("still connected");
    hub.shutdown().await;
}

both_encodings!(expired_connections_and_subscriptions_end_unless_refreshed);

async fn expired_connections_and_subscriptions_end_unless_refreshed(encoding: Encoding) {
    // No grace: closed as soon as `exp` passes (the grace has its own test below).
    let config = Config {
        client_expired_close_delay: Duration::ZERO,
        client_expired_sub_close_delay: Duration::ZERO,
        ..token_config()
    };
    let hub = spawn_hub(config).await;
    let soon = || Some(auth::expires_in(Duration::from_secs(1)));
    let (mut lapsing, connect) =
        hub.connect_with_token(encoding, &connect_token_with(SECRET, "ann", None, &[], soon())).await;
    assert!(connect.expires && connect.ttl <= 1, "{connect:?}");
    let (mut refreshing, _) =
        hub.connect_with_token(encoding, &connect_token_with(SECRET, "ben", None, &[], soon())).await;
    let (mut subscriber, _) = hub.connect_with_token(encoding, &connect_token("cat", None)).await;

    // `ben` refreshes with a token good for an hour.
    let refresh = proto::RefreshRequest { token: connect_token("ben", None) };
    let reply = refreshing.call(proto::Command { refresh: Some(refresh), ..Default::default() }).await;
    let result = reply.refresh.clone().unwrap_or_else(|| panic!("a refresh result, got {reply:?}"));
    assert!(result.expires && (3590..=3600).contains(&result.ttl), "{result:?}");
    // A refresh token of another user is an invalid token.
    let (mut impostor, _) = hub.connect_with_token(encoding, &connect_token("dan", None)).await;
    let refresh = proto::RefreshRequest { token: connect_token("ben", None) };
    let id = impostor.next_id();
    impostor.send(&[proto::Command { id, refresh: Some(refresh), ..Default::default() }]).await;
    assert_eq!(impostor.expect_close().await, (3500, "invalid token".to_string()));

    // `cat` holds a subscription token that expires in a second.
    let token = auth::sign_subscribe_token(
        SECRET,
        &auth::SubscribeClaims { user: "cat".into(), channel: "private:brief".into(), expires_at: soon(), info: None },
    )
    .expect("signs");
    let request = proto::SubscribeRequest { channel: "private:brief".into(), token, ..Default::default() };
    let sub = subscriber.subscribe_with(request).await.expect("a valid subscription token");
    assert!(sub.expires && sub.ttl <= 1, "{sub:?}");
    assert!(subscriber.recv_push().await.join.is_some(), "own join");

    let (closed, (), unsubscribed) = tokio::join!(
        lapsing.expect_close(),
        refreshing.expect_silence(Duration::from_millis(3500)),
        subscriber.recv_push(),
    );
    assert_eq!(closed, (codes::EXPIRED_CONNECTION.code, "connection expired".to_string()));
    assert_eq!(unsubscribed.channel, "private:brief");
    assert_eq!(unsubscribed.unsubscribe, Some(codes::UNSUBSCRIBE_EXPIRED.to_proto()));
    assert_eq!(unsubscribed.unsubscribe.as_ref().map(|u| u.code), Some(2501));
    refreshing.ping().await.expect("the refreshed connection lives on");
    subscriber.ping().await.expect("an expired subscription does not end the connection");
    hub.shutdown().await;
}

both_encodings!(bad_subscription_tokens_refuse_that_subscription_only, subscription_tokens_do_not_connect);

/// Issue 16, fault 2: a subscription token that does not verify (garbage, forged,
/// a connection token) answers 103 to that subscribe or sub_refresh; the
/// connection and its other subscriptions stay (as Centrifugo's subscribe does).
async fn bad_subscription_tokens_refuse_that_subscription_only(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut alice, _) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    alice.subscribe("news").await;
    let request =
        |channel: &str, token: String| proto::SubscribeRequest { channel: channel.into(), token, ..Default::default() };
    let hour = Some(auth::expires_in(Duration::from_secs(3600)));
    let forged = auth::sign_subscribe_token(
        "not-the-secret",
        &auth::SubscribeClaims { user: "alice".into(), channel: "private:room".into(), expires_at: hour, info: None },
    )
    .expect("signs");
    let connection_token = connect_token_with(SECRET, "alice", None, &["private:room"], hour);
    for (what, token) in
        [("garbage", "a.b.c".to_string()), ("forged", forged.clone()), ("a connection token", connection_token)]
    {
        let refused = alice.subscribe_with(request("private:room", token)).await.unwrap_err();
        assert_eq!(refused, codes::PERMISSION_DENIED.to_proto(), "{what}");
    }
    alice.ping().await.expect("still connected");
    hub.publish("news", data(1)).await;
    assert_eq!(alice.recv_pub("news").await.data, data(1), "the other subscription lives on");

    // sub_refresh with a bad token: 103 too; the subscription and the connection stay.
    let token = subscribe_token("alice", "private:room", None);
    alice.subscribe_with(request("private:room", token)).await.expect("a valid subscription token");
    assert!(alice.recv_push().await.join.is_some(), "own join");
    for (what, token) in [("garbage", "a.b.c".to_string()), ("forged", forged)] {
        let sub_refresh = proto::SubRefreshRequest { channel: "private:room".into(), token };
        let reply = alice.call(proto::Command { sub_refresh: Some(sub_refresh), ..Default::default() }).await;
        assert_eq!(reply.error, Some(codes::PERMISSION_DENIED.to_proto()), "{what}: {reply:?}");
    }
    hub.publish("private:room", data(2)).await;
    assert_eq!(alice.recv_pub("private:room").await.data, data(2));
    hub.publish("news", data(3)).await;
    assert_eq!(alice.recv_pub("news").await.data, data(3));
    hub.shutdown().await;
}

/// Issue 16, fault 9: a subscription token (it has a `channel` claim) is not a
/// connection token, on connect, refresh and uni_sse alike: 3500 (401 for uni_sse).
async fn subscription_tokens_do_not_connect(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let forever = auth::sign_subscribe_token(
        SECRET,
        &auth::SubscribeClaims { user: "alice".into(), channel: "private:a".into(), expires_at: None, info: None },
    )
    .expect("signs");
    let mut client = hub.open(encoding).await;
    let id = client.next_id();
    client.send(&[proto::Command { id, connect: Some(connect_request(&forever)), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3500, "invalid token".to_string()));
    assert!(client.take_inbox().is_empty(), "no reply before the close");

    // Nor does it refresh a connection.
    let (mut alice, _) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let id = alice.next_id();
    let refresh = proto::RefreshRequest { token: forever.clone() };
    alice.send(&[proto::Command { id, refresh: Some(refresh), ..Default::default() }]).await;
    assert_eq!(alice.expect_close().await, (3500, "invalid token".to_string()));

    // Nor a one-way SSE stream.
    let addr = hub.addr;
    let request =
        format!("GET /connection/uni_sse?token={forever} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, body) = crate::helpers::raw_request(addr, &request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains(r#""code":101"#) && body.contains("`channel` claim"), "{body}");
    hub.shutdown().await;
}

both_encodings!(tokens_are_honoured_for_the_grace_after_exp);

/// Issue 16, fault 10: a connection or subscription token is honoured for
/// `client_expired_close_delay` / `client_expired_sub_close_delay` after its `exp`
/// (Centrifugo: 25 s by default), so an SDK whose getToken is slow refreshes in
/// time; past the grace the connection closes with 3005, the subscription ends with
/// 2501. Here the graces are 2 s.
async fn tokens_are_honoured_for_the_grace_after_exp(encoding: Encoding) {
    const GRACE: Duration = Duration::from_secs(2);
    let mut config =
        Config { client_expired_close_delay: GRACE, client_expired_sub_close_delay: GRACE, ..token_config() };
    // `private:*` without join/leave pushes, so each client hears only its own events.
    let sealed = hub::config::ChannelOptions { join_leave: false, ..config.namespaces["private"].clone() };
    config.namespaces.insert("private".into(), sealed);
    let hub = spawn_hub(config).await;
    let exp = auth::expires_in(Duration::from_secs(1));
    let at = |offset: Duration| std::time::UNIX_EPOCH + Duration::from_secs(exp) + offset;
    let sub_token = |user: &str| {
        let claims = auth::SubscribeClaims {
            user: user.into(),
            channel: "private:grace".into(),
            expires_at: Some(exp),
            info: None,
        };
        auth::sign_subscribe_token(SECRET, &claims).expect("signs")
    };
    let mut clients = Vec::new();
    // The lapsing connection's token outlives its subscription token by a second,
    // so that the subscription's end is seen before the connection's.
    for (user, conn_exp) in [("slow", exp), ("lapsing", exp + 1)] {
        let (mut client, connect) =
            hub.connect_with_token(encoding, &connect_token_with(SECRET, user, None, &[], Some(conn_exp))).await;
        assert!(connect.expires && connect.ttl <= 2, "the ttl is until exp, without the grace: {connect:?}");
        let request =
            proto::SubscribeRequest { channel: "private:grace".into(), token: sub_token(user), ..Default::default() };
        let sub = client.subscribe_with(request).await.expect("a valid subscription token");
        assert!(sub.expires && sub.ttl <= 1, "{sub:?}");
        clients.push(client);
    }
    let (mut slow, mut lapsing) = (clients.remove(0), clients.remove(0));

    // Well past exp (and past the one second the hub used to allow), within the grace.
    let refresh_at = at(GRACE / 2 + Duration::from_millis(300));
    tokio::time::sleep(refresh_at.duration_since(std::time::SystemTime::now()).unwrap_or_default()).await;
    let refresh = proto::RefreshRequest { token: connect_token("slow", None) };
    let reply = slow.call(proto::Command { refresh: Some(refresh), ..Default::default() }).await;
    let result = reply.refresh.clone().unwrap_or_else(|| panic!("the refresh is taken during the grace: {reply:?}"));
    assert!(result.expires && (3590..=3600).contains(&result.ttl), "{result:?}");
    let sub_refresh = proto::SubRefreshRequest {
        channel: "private:grace".into(),
        token: subscribe_token("slow", "private:grace", None),
    };
    let reply = slow.call(proto::Command { sub_refresh: Some(sub_refresh), ..Default::default() }).await;
    let result = reply.sub_refresh.unwrap_or_else(|| panic!("the sub_refresh is taken during the grace: {reply:?}"));
    assert!(result.expires && (3590..=3600).contains(&result.ttl), "{result:?}");
    lapsing.ping().await.expect("the lapsing connection is still open during the grace");

    // Past the grace: the lapsing subscription ends with 2501, then the connection
    // closes with 3005, neither before its token's exp + grace.
    let push = lapsing.recv_push().await;
    assert!(std::time::SystemTime::now() >= at(GRACE), "unsubscribed only after exp + grace");
    assert_eq!(
        (push.channel.as_str(), push.unsubscribe),
        ("private:grace", Some(codes::UNSUBSCRIBE_EXPIRED.to_proto()))
    );
    lapsing.ping().await.expect("the connection's own token is still in its grace");
    let (code, reason) = lapsing.expect_close().await;
    assert!(std::time::SystemTime::now() >= at(GRACE + Duration::from_secs(1)), "closed only after exp + grace");
    assert_eq!((code, reason.as_str()), (codes::EXPIRED_CONNECTION.code, "connection expired"));
    // The refreshed client lives on, subscribed.
    slow.expect_silence(Duration::from_millis(300)).await;
    hub.publish("private:grace", data(1)).await;
    assert_eq!(slow.recv_pub("private:grace").await.data, data(1));
    slow.ping().await.expect("refreshed during the grace: still connected");
    hub.shutdown().await;
}
