//! User channels: the user-limited boundary (`dialog#42,43` only for users 42
//! and 43) and the automatic server-side subscription of every user to its
//! personal channel (`[personal_channel]`), with `single_connection`.

use std::time::Duration;

use hub::config::{ChannelOptions, Config, PersonalChannelConfig};
use protocol::proto;
use protocol::Encoding;

use crate::helpers::{connect_token, data, open_options, spawn_hub, subscribe_token, token_config};

both_encodings!(
    a_user_limited_channel_admits_only_the_users_it_lists,
    every_user_is_subscribed_to_its_personal_channel,
    single_connection_closes_the_users_other_connections,
    the_connect_reply_recovers_the_personal_channel,
);

/// `dialog:*` has user-limited channels (and `allow_subscribe`, which does not
/// open them to others); `personal:*` keeps history for personal channels.
fn user_channels_config(single_connection: bool) -> Config {
    let mut config = token_config();
    let limited = ChannelOptions { allow_user_limited_channels: true, join_leave: false, ..open_options() };
    config.namespaces.insert("dialog".into(), limited.clone());
    config.namespaces.insert("personal".into(), limited);
    config.personal_channel = PersonalChannelConfig { enabled: true, namespace: "personal".into(), single_connection };
    config
}

async fn a_user_limited_channel_admits_only_the_users_it_lists(encoding: Encoding) {
    let hub = spawn_hub(user_channels_config(false)).await;
    let channel = "dialog:talk#42,43";
    let (mut u42, r42) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    let (mut u43, r43) = hub.connect_with_token(encoding, &connect_token("43", None)).await;
    let (mut u44, r44) = hub.connect_with_token(encoding, &connect_token("44", None)).await;
    // Each got its personal channel in the connect reply.
    for (user, result) in [("42", &r42), ("43", &r43), ("44", &r44)] {
        assert_eq!(result.subs.keys().collect::<Vec<_>>(), [&format!("personal:#{user}")]);
    }
    u42.subscribe(channel).await;
    u43.subscribe(channel).await;
    let request = || proto::SubscribeRequest { channel: channel.into(), ..Default::default() };
    let error = u44.subscribe_with(request()).await.expect_err("44 is not listed");
    assert_eq!((error.code, error.message.as_str()), (103, "permission denied"));
    // Nor may 44 read its presence or history.
    let error = u44.presence(channel).await.expect_err("presence");
    assert_eq!(error.code, 103);
    let history = proto::HistoryRequest { channel: channel.into(), ..Default::default() };
    assert_eq!(u44.history(history).await.expect_err("history").code, 103);
    // A subscription token still admits anyone it names.
    let with_token = proto::SubscribeRequest { token: subscribe_token("44", channel, None), ..request() };
    u44.subscribe_with(with_token).await.expect("a token opens the channel");
    hub.publish(channel, data(1)).await;
    for client in [&mut u42, &mut u43, &mut u44] {
        assert_eq!(client.recv_pub(channel).await.data, data(1));
    }
    // Without `#`, the namespace's allow_subscribe applies as usual.
    u44.subscribe("dialog:lobby").await;
    hub.shutdown().await;
}

async fn every_user_is_subscribed_to_its_personal_channel(encoding: Encoding) {
    let hub = spawn_hub(user_channels_config(false)).await;
    let (mut first, first_result) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    let (mut second, second_result) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    let (mut other, other_result) = hub.connect_with_token(encoding, &connect_token("43", None)).await;
    // As Centrifugo: the server-side subscription is in the connect reply's
    // `subs`, not a separate push.
    for result in [&first_result, &second_result] {
        assert_eq!(result.subs.len(), 1, "{result:?}");
        let subscribed = &result.subs["personal:#42"];
        assert!(subscribed.recoverable && subscribed.positioned, "{subscribed:?}");
        assert_eq!((subscribed.offset, subscribed.was_recovering, subscribed.recovered), (0, false, false));
        assert!(!subscribed.epoch.is_empty());
    }
    assert_eq!(other_result.subs.keys().collect::<Vec<_>>(), ["personal:#43"]);
    for client in [&mut first, &mut second, &mut other] {
        client.expect_silence(Duration::from_millis(100)).await;
    }

    hub.publish("personal:#42", data(1)).await;
    for client in [&mut first, &mut second] {
        let publication = client.recv_pub("personal:#42").await;
        assert_eq!((publication.offset, publication.data), (1, data(1)));
    }
    other.expect_silence(Duration::from_millis(200)).await;

    // Another user may not subscribe to it; its owner is subscribed already.
    let request = proto::SubscribeRequest { channel: "personal:#42".into(), ..Default::default() };
    let error = other.subscribe_with(request.clone()).await.expect_err("not 43's channel");
    assert_eq!((error.code, error.message.as_str()), (103, "permission denied"));
    let error = first.subscribe_with(request).await.expect_err("already subscribed server-side");
    assert_eq!(error.code, 105);
    hub.shutdown().await;
}

async fn single_connection_closes_the_users_other_connections(encoding: Encoding) {
    let hub = spawn_hub(user_channels_config(true)).await;
    let (mut first, first_result) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    let (mut other, other_result) = hub.connect_with_token(encoding, &connect_token("43", None)).await;
    assert!(first_result.subs.contains_key("personal:#42"));
    let (mut second, second_result) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    assert_eq!(first.expect_close().await, (3504, "connection limit".to_string()));
    assert!(second_result.subs.contains_key("personal:#42"));
    hub.publish("personal:#42", data(1)).await;
    assert_eq!(second.recv_pub("personal:#42").await.data, data(1));
    // Other users keep their connections.
    assert!(other_result.subs.contains_key("personal:#43"));
    other.ping().await.expect("43 stays connected");
    hub.shutdown().await;
}

/// A reconnecting client names its server-side channel's position in the
/// connect `subs`; the connect reply carries what it missed (Centrifugo's
/// server-side recovery), and publications made afterwards follow that reply.
async fn the_connect_reply_recovers_the_personal_channel(encoding: Encoding) {
    let hub = spawn_hub(user_channels_config(false)).await;
    let (client, result) = hub.connect_with_token(encoding, &connect_token("42", None)).await;
    let epoch = result.subs["personal:#42"].epoch.clone();
    client.close().await;
    hub.publish("personal:#42", data(1)).await;
    hub.publish("personal:#42", data(2)).await;

    let mut client = hub.open(encoding).await;
    let position = proto::SubscribeRequest { recover: true, offset: 0, epoch: epoch.clone(), ..Default::default() };
    let request = proto::ConnectRequest {
        token: connect_token("42", None),
        subs: [("personal:#42".to_string(), position)].into(),
        ..Default::default()
    };
    client.send(&[proto::Command { id: 1, connect: Some(request), ..Default::default() }]).await;
    // The first message on the socket is the connect reply.
    let reply = client.recv_any().await;
    assert_eq!(reply.id, 1, "{reply:?}");
    let subscribed = &reply.connect.as_ref().expect("a connect result").subs["personal:#42"];
    assert!(subscribed.was_recovering && subscribed.recovered, "{subscribed:?}");
    assert_eq!((subscribed.epoch.as_str(), subscribed.offset), (epoch.as_str(), 2));
    let recovered: Vec<_> = subscribed.publications.iter().map(|p| (p.offset, p.data.clone())).collect();
    assert_eq!(recovered, [(1, data(1)), (2, data(2))]);
    hub.publish("personal:#42", data(3)).await;
    let publication = client.recv_pub("personal:#42").await;
    assert_eq!((publication.offset, publication.data), (3, data(3)));
    hub.shutdown().await;
}
