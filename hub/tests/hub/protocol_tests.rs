//! The wire protocol over WebSocket, in both encodings: connect, subscribe,
//! publications, several commands per frame, client publish, presence,
//! join/leave, history, error codes, and the disconnects for malformed input.

use std::time::Duration;

use bytes::Bytes;
use hub::config::Config;
use protocol::codes;
use protocol::proto::{self, ClientInfo, Command, HistoryRequest, StreamPosition};
use protocol::Encoding;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{connect_token, data, spawn_hub, test_config, token_config};

both_encodings!(
    connect_reply_carries_client_and_heartbeat_fields,
    subscribe_and_receive_exact_publications_in_order,
    several_commands_in_one_frame_get_replies_in_order,
    server_batches_several_replies_per_frame,
    client_publish_is_seen_by_others_with_info,
    presence_and_presence_stats,
    join_and_leave_pushes,
    history_limit_since_reverse,
    command_errors_have_exact_codes,
    malformed_frame_closes_with_bad_request_and_the_hub_serves_others,
    command_before_connect_is_a_bad_request,
    connection_without_connect_goes_stale,
);

async fn connect_reply_carries_client_and_heartbeat_fields(encoding: Encoding) {
    let hub = spawn_hub(Config { node_name: "node-under-test".into(), ..test_config() }).await;
    let (_a, first) = hub.connect(encoding).await;
    let (_b, second) = hub.connect(encoding).await;
    assert!(uuid_like(&first.client), "client id {:?} is a UUID", first.client);
    assert_ne!(first.client, second.client, "every connection gets its own client id");
    assert_eq!(first.version, hub::VERSION);
    assert_eq!(first.node, "node-under-test");
    assert_eq!((first.ping, first.pong), (25, true), "default ping interval 25 s, pong requested");
    assert_eq!((first.expires, first.ttl), (false, 0), "an anonymous connection does not expire");
    assert_eq!(hub.node.client_count(), 2);
    hub.shutdown().await;
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

async fn subscribe_and_receive_exact_publications_in_order(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let sub = client.subscribe("news").await;
    // History is on but recovery was not asked for: no position is reported.
    assert_eq!((sub.recoverable, sub.recovered, sub.offset, sub.epoch.as_str()), (false, false, 0, ""));
    assert!(sub.publications.is_empty());

    let mut epoch = None;
    for n in 1..=50 {
        let position = hub.publish("news", data(n)).await;
        assert_eq!(position.offset, n as u64, "offsets increase by one");
        assert_eq!(epoch.get_or_insert(position.epoch.clone()), &position.epoch, "one epoch");
    }
    for n in 1..=50 {
        let publication = client.recv_pub("news").await;
        assert_eq!(publication.data, data(n), "publication {n} carries its exact data");
        assert_eq!(publication.offset, n as u64);
        assert_eq!(publication.info, None, "an API publication has no client info");
    }
    client.expect_silence(Duration::from_millis(200)).await;

    // Non-ASCII text and escapes pass through untouched.
    let unicode = Bytes::from(r#"{"t":"héllo ✓ 日本 \u00e9 \n \"q\""}"#);
    hub.publish("news", unicode.clone()).await;
    assert_eq!(client.recv_pub("news").await.data, unicode);

    // Both encodings on one channel: each subscriber gets the same data.
    let other = if encoding == Encoding::Json { Encoding::Protobuf } else { Encoding::Json };
    let (mut peer, _) = hub.connect(other).await;
    peer.subscribe("news").await;
    hub.publish("news", Bytes::from_static(br#"{"text":"hello, \"world\"","list":[1,2.5,null]}"#)).await;
    for c in [&mut client, &mut peer] {
        let publication = c.recv_pub("news").await;
        assert_eq!(&publication.data[..], br#"{"text":"hello, \"world\"","list":[1,2.5,null]}"#);
        assert_eq!(publication.offset, 52);
    }
    hub.shutdown().await;
}

async fn several_commands_in_one_frame_get_replies_in_order(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let mut client = hub.open(encoding).await;
    let commands = vec![
        Command { id: 1, connect: Some(proto::ConnectRequest::default()), ..Default::default() },
        Command { id: 2, subscribe: Some(sub_request("chat:batch")), ..Default::default() },
        Command {
            id: 3,
            publish: Some(proto::PublishRequest { channel: "chat:batch".into(), data: data(1) }),
            ..Default::default()
        },
        Command {
            id: 4,
            presence_stats: Some(proto::PresenceStatsRequest { channel: "chat:batch".into() }),
            ..Default::default()
        },
        Command {
            id: 5,
            history: Some(HistoryRequest { channel: "chat:batch".into(), limit: -1, ..Default::default() }),
            ..Default::default()
        },
        Command { id: 6, ping: Some(proto::PingRequest {}), ..Default::default() },
        Command { id: 7, rpc: Some(proto::RpcRequest { method: "m".into(), data: data(0) }), ..Default::default() },
        Command {
            id: 8,
            unsubscribe: Some(proto::UnsubscribeRequest { channel: "chat:batch".into() }),
            ..Default::default()
        },
    ];
    client.send(&commands).await;

    // Replies come back in command order; the publication of command 3 comes
    // after the subscribe reply (and the client's own join push).
    let mut replies = Vec::new();
    let mut pushes = Vec::new();
    while replies.len() < commands.len() {
        let reply = client.recv_any().await;
        if reply.id == 0 {
            pushes.push(reply.push.expect("a reply with id 0 is a push"));
        } else {
            replies.push(reply);
        }
    }
    let ids: Vec<u32> = replies.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<u32>>(), "one reply per command, in order");
    let connect = replies[0].connect.as_ref().expect("reply 1 is the connect result");
    assert!(uuid_like(&connect.client));
    assert!(replies[1].subscribe.is_some(), "reply 2 is the subscribe result: {:?}", replies[1]);
    assert!(replies[2].publish.is_some(), "reply 3 is the publish result: {:?}", replies[2]);
    assert_eq!(replies[3].presence_stats, Some(proto::PresenceStatsResult { num_clients: 1, num_users: 1 }));
    let history = replies[4].history.as_ref().expect("reply 5 is the history result");
    assert_eq!(history.publications.len(), 1);
    assert_eq!((history.publications[0].data.clone(), history.offset), (data(1), 1));
    assert_eq!(replies[5].ping, Some(proto::PingResult {}));
    assert_eq!(replies[6].error, Some(codes::NOT_AVAILABLE.to_proto()), "no RPC handler: 108, as Centrifugo");
    assert_eq!(replies[7].unsubscribe, Some(proto::UnsubscribeResult {}));

    let kinds: Vec<&str> = pushes.iter().map(push_kind).collect();
    assert_eq!(kinds, vec!["join", "pub"], "own join, then the client's publication");
    assert_eq!(pushes[1].r#pub.as_ref().map(|p| p.data.clone()), Some(data(1)));
    client.expect_silence(Duration::from_millis(200)).await;
    hub.shutdown().await;
}

async fn server_batches_several_replies_per_frame(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let before = client.frame_sizes.len();
    let commands: Vec<Command> =
        (100..300).map(|id| Command { id, ping: Some(proto::PingRequest {}), ..Default::default() }).collect();
    client.send(&commands).await;
    for id in 100..300 {
        let reply = client.recv_any().await;
        assert_eq!(reply.id, id, "replies in command order");
        assert_eq!(reply.ping, Some(proto::PingResult {}));
    }
    let frames = &client.frame_sizes[before..];
    assert_eq!(frames.iter().sum::<usize>(), 200);
    // The session handles one frame's commands in one go and the writer
    // drains everything queued per wake-up: replies share frames.
    assert!(frames.len() < 200 && frames.iter().any(|&n| n > 1), "replies batched into frames: {frames:?}");
    hub.shutdown().await;
}

async fn client_publish_is_seen_by_others_with_info(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut alice, alice_connect) =
        hub.connect_with_token(encoding, &connect_token("alice", Some(r#"{"name":"Alice"}"#))).await;
    let other = if encoding == Encoding::Json { Encoding::Protobuf } else { Encoding::Json };
    let (mut bob, _) = hub.connect_with_token(other, &connect_token("bob", None)).await;
    let (mut carol, _) = hub.connect_with_token(encoding, &connect_token("carol", None)).await;
    bob.subscribe("chat:talk").await;
    carol.subscribe("chat:talk").await;
    // Join pushes of bob's and carol's subscriptions.
    assert_eq!(push_kind(&bob.recv_push().await), "join");
    assert_eq!(push_kind(&bob.recv_push().await), "join");
    assert_eq!(push_kind(&carol.recv_push().await), "join");

    alice.publish("chat:talk", Bytes::from_static(br#"{"input":"hello"}"#)).await.expect("alice may publish");
    let expected_info = ClientInfo {
        user: "alice".into(),
        client: alice_connect.client.clone(),
        conn_info: Bytes::from_static(br#"{"name":"Alice"}"#),
        chan_info: Bytes::new(),
    };
    for c in [&mut bob, &mut carol] {
        let publication = c.recv_pub("chat:talk").await;
        assert_eq!(&publication.data[..], br#"{"input":"hello"}"#);
        assert_eq!(publication.info.as_ref(), Some(&expected_info));
        assert_eq!(publication.offset, 1);
    }
    alice.expect_silence(Duration::from_millis(100)).await;
    // Publishing needs `allow_publish`: refused in `plain`, whose data is also not sent.
    assert_eq!(alice.publish("plain:x", data(1)).await.unwrap_err(), codes::PERMISSION_DENIED.to_proto());
    // 0 bytes of data are a publication (issue 16; Centrifugo 6.5.2+), not a bad request.
    alice.publish("chat:talk", Bytes::new()).await.expect("0 bytes are a publication");
    for c in [&mut bob, &mut carol] {
        let publication = c.recv_pub("chat:talk").await;
        assert_eq!((publication.offset, &publication.data[..]), (2, &b""[..]));
    }
    hub.shutdown().await;
}

async fn presence_and_presence_stats(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut alice, alice_connect) =
        hub.connect_with_token(encoding, &connect_token("alice", Some(r#"{"a":1}"#))).await;
    let (mut alice2, alice2_connect) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut bob, bob_connect) = hub.connect_with_token(encoding, &connect_token("bob", None)).await;
    for c in [&mut alice, &mut alice2, &mut bob] {
        c.subscribe("chat:lobby").await;
    }
    let presence = bob.presence("chat:lobby").await.expect("presence is on in chat");
    let mut expected = std::collections::BTreeMap::new();
    for (user, client, conn_info) in [
        ("alice", &alice_connect.client, Bytes::from_static(br#"{"a":1}"#)),
        ("alice", &alice2_connect.client, Bytes::new()),
        ("bob", &bob_connect.client, Bytes::new()),
    ] {
        let info = ClientInfo { user: user.into(), client: client.clone(), conn_info, chan_info: Bytes::new() };
        expected.insert(client.clone(), info);
    }
    assert_eq!(presence.presence, expected);
    let stats = alice.presence_stats("chat:lobby").await.expect("presence stats are on in chat");
    assert_eq!((stats.num_clients, stats.num_users), (3, 2));

    bob.unsubscribe("chat:lobby").await.expect("unsubscribe succeeds");
    let stats = alice.presence_stats("chat:lobby").await.unwrap();
    assert_eq!((stats.num_clients, stats.num_users), (2, 1));
    alice2.close().await;
    // The departed session leaves its channels by a message: poll.
    let node = hub.node.clone();
    let only_alice = vec![alice_connect.client.clone()];
    crate::helpers::eventually("alice2 to leave the presence", only_alice.clone(), || async {
        node.presence("chat:lobby").await.expect("presence").into_keys().collect::<Vec<_>>()
    })
    .await;
    let presence = alice.presence("chat:lobby").await.unwrap();
    assert_eq!(presence.presence.into_keys().collect::<Vec<_>>(), only_alice);

    // Presence is a channel option: `plain` does not track it.
    bob.subscribe("plain:x").await;
    assert_eq!(bob.presence("plain:x").await.unwrap_err(), codes::NOT_AVAILABLE.to_proto());
    assert_eq!(bob.presence_stats("plain:x").await.unwrap_err(), codes::NOT_AVAILABLE.to_proto());
    hub.shutdown().await;
}

async fn join_and_leave_pushes(encoding: Encoding) {
    let hub = spawn_hub(token_config()).await;
    let (mut alice, alice_connect) = hub.connect_with_token(encoding, &connect_token("alice", None)).await;
    let (mut bob, bob_connect) = hub.connect_with_token(encoding, &connect_token("bob", Some(r#"{"b":true}"#))).await;
    alice.subscribe("chat:room").await;
    let alice_info = ClientInfo { user: "alice".into(), client: alice_connect.client.clone(), ..Default::default() };
    let bob_info = ClientInfo {
        user: "bob".into(),
        client: bob_connect.client.clone(),
        conn_info: Bytes::from_static(br#"{"b":true}"#),
        ..Default::default()
    };
    // As in Centrifugo, the joining client is a subscriber when its join goes out.
    assert_eq!(alice.recv_push().await, join("chat:room", &alice_info));

    bob.subscribe("chat:room").await;
    assert_eq!(alice.recv_push().await, join("chat:room", &bob_info));
    assert_eq!(bob.recv_push().await, join("chat:room", &bob_info));

    bob.unsubscribe("chat:room").await.unwrap();
    let leave = alice.recv_push().await;
    assert_eq!(leave.channel, "chat:room");
    assert_eq!(leave.leave, Some(proto::Leave { info: Some(bob_info.clone()) }));
    bob.expect_silence(Duration::from_millis(100)).await;

    // A client that goes away leaves too.
    bob.subscribe("chat:room").await;
    assert_eq!(alice.recv_push().await, join("chat:room", &bob_info));
    drop(bob);
    let leave = alice.recv_push().await;
    assert_eq!(leave.leave, Some(proto::Leave { info: Some(bob_info) }));

    // `plain` has no join/leave.
    let (mut carol, _) = hub.connect_with_token(encoding, &connect_token("carol", None)).await;
    alice.subscribe("plain:quiet").await;
    carol.subscribe("plain:quiet").await;
    alice.expect_silence(Duration::from_millis(200)).await;
    hub.shutdown().await;
}

fn join(channel: &str, info: &ClientInfo) -> proto::Push {
    proto::Push { channel: channel.into(), join: Some(proto::Join { info: Some(info.clone()) }), ..Default::default() }
}

async fn history_limit_since_reverse(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = hub.publish("chat:log", data(n)).await.epoch;
    }
    let history = |limit: i32, since: Option<(u64, &str)>, reverse: bool| HistoryRequest {
        channel: "chat:log".into(),
        limit,
        since: since.map(|(offset, epoch)| StreamPosition { offset, epoch: epoch.into() }),
        reverse,
    };
    let cases: Vec<(HistoryRequest, Vec<usize>)> = vec![
        (history(0, None, false), vec![]),
        (history(-1, None, false), vec![1, 2, 3, 4, 5]),
        (history(2, None, false), vec![1, 2]),
        (history(2, None, true), vec![5, 4]),
        (history(1000, None, true), vec![5, 4, 3, 2, 1]),
        (history(2, Some((2, &epoch)), false), vec![3, 4]),
        (history(-1, Some((2, &epoch)), false), vec![3, 4, 5]),
        (history(-1, Some((4, &epoch)), true), vec![3, 2, 1]),
        (history(-1, Some((5, &epoch)), false), vec![]),
    ];
    for (request, want) in cases {
        let text = format!("{request:?}");
        let result = client.history(request).await.unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let got: Vec<Bytes> = result.publications.iter().map(|p| p.data.clone()).collect();
        let offsets: Vec<u64> = result.publications.iter().map(|p| p.offset).collect();
        assert_eq!(got, want.iter().map(|&n| data(n)).collect::<Vec<_>>(), "{text}");
        assert_eq!(offsets, want.iter().map(|&n| n as u64).collect::<Vec<_>>(), "{text}");
        assert_eq!((result.offset, result.epoch.as_str()), (5, epoch.as_str()), "{text}: stream top");
    }
    let wrong_epoch = history(-1, Some((2, "not-the-epoch")), false);
    assert_eq!(client.history(wrong_epoch).await.unwrap_err(), codes::UNRECOVERABLE_POSITION.to_proto());
    let no_history = HistoryRequest { channel: "plain:x".into(), limit: -1, ..Default::default() };
    assert_eq!(client.history(no_history).await.unwrap_err(), codes::NOT_AVAILABLE.to_proto());
    hub.shutdown().await;
}

async fn command_errors_have_exact_codes(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut client, _) = hub.connect(encoding).await;
    let refused = |channel: &str| sub_request(channel);
    assert_eq!(client.subscribe_with(refused("nope:room")).await.unwrap_err(), codes::UNKNOWN_CHANNEL.to_proto());
    let long = "x".repeat(hub.node.config.max_channel_length + 1);
    assert_eq!(client.subscribe_with(refused(&long)).await.unwrap_err(), codes::UNKNOWN_CHANNEL.to_proto());
    assert_eq!(client.subscribe_with(refused("")).await.unwrap_err(), codes::UNKNOWN_CHANNEL.to_proto());
    client.subscribe("news").await;
    assert_eq!(client.subscribe_with(refused("news")).await.unwrap_err(), codes::ALREADY_SUBSCRIBED.to_proto());
    assert_eq!(client.subscribe_with(refused("private:x")).await.unwrap_err(), codes::PERMISSION_DENIED.to_proto());
    let rpc = client
        .call(Command { rpc: Some(proto::RpcRequest { method: "sum".into(), data: data(1) }), ..Default::default() })
        .await;
    // Issue 16, fault 4: no RPC handler is 108 "not available" (Centrifugo's answer,
    // asserted by centrifuge-js's suite), not 104; so is `send` with an id.
    assert_eq!(rpc.error, Some(proto::Error { code: 108, message: "not available".into(), temporary: false }));
    let send = client.call(Command { send: Some(proto::SendRequest { data: data(1) }), ..Default::default() }).await;
    assert_eq!(send.error, Some(codes::NOT_AVAILABLE.to_proto()), "send with an id: no message handler");
    // An async `send` (no id) needs no reply and gets none; the connection stays.
    client.send(&[Command { send: Some(proto::SendRequest { data: data(1) }), ..Default::default() }]).await;
    assert_eq!(client.publish("nope:x", data(1)).await.unwrap_err(), codes::UNKNOWN_CHANNEL.to_proto());
    client.expect_silence(Duration::from_millis(100)).await;
    client.ping().await.expect("the connection still works");
    // The subscription survived the errors around it.
    hub.publish("news", data(7)).await;
    assert_eq!(client.recv_pub("news").await.data, data(7));
    hub.shutdown().await;
}

async fn malformed_frame_closes_with_bad_request_and_the_hub_serves_others(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let (mut bystander, _) = hub.connect(encoding).await;
    bystander.subscribe("chat:calm").await;
    assert_eq!(push_kind(&bystander.recv_push().await), "join");

    let garbage: Vec<Message> = match encoding {
        Encoding::Json => vec![
            Message::Text("{not json".into()),
            Message::Text("{\"id\":1,\"connect\":{}}\n{\"id\":2,".into()),
            Message::Text("\"a string, not a command\"".into()),
        ],
        Encoding::Protobuf => vec![
            // Says 5 bytes follow; 1 does.
            Message::Binary(Bytes::from_static(&[0x05, 0x08])),
            // A varint that never ends.
            Message::Binary(Bytes::from_static(&[0xff; 11])),
            // A whole message whose field has a wire type that does not fit.
            Message::Binary(Bytes::from_static(&[0x02, 0x0b, 0x01])),
        ],
    };
    for frame in garbage {
        let text = format!("{frame:?}");
        let (mut client, _) = hub.connect(encoding).await;
        client.send_raw(frame).await;
        assert_eq!(client.expect_close().await, (3501, "bad request".to_string()), "after {text}");
        // Also before connect.
        let mut fresh = hub.open(encoding).await;
        fresh.send_raw(Message::Binary(Bytes::from_static(b"\xff\xfe\x00"))).await;
        assert_eq!(fresh.expect_close().await, (3501, "bad request".to_string()), "undecodable frame before connect");
    }

    // The hub keeps serving: the bystander still gets publications and new
    // clients connect.
    hub.publish("chat:calm", data(1)).await;
    assert_eq!(bystander.recv_pub("chat:calm").await.data, data(1));
    let (mut newcomer, _) = hub.connect(encoding).await;
    newcomer.ping().await.expect("a new client is served");
    drop(newcomer);
    drop(bystander);
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

async fn command_before_connect_is_a_bad_request(encoding: Encoding) {
    let hub = spawn_hub(test_config()).await;
    let mut client = hub.open(encoding).await;
    client.send(&[Command { id: 1, subscribe: Some(sub_request("chat:x")), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3501, "bad request".to_string()));
    assert!(client.take_inbox().is_empty(), "no reply before the close");

    // A command without an id (other than the pong and `send`) is malformed too.
    let (mut client, _) = hub.connect(encoding).await;
    client.send(&[Command { id: 0, ping: Some(proto::PingRequest {}), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3501, "bad request".to_string()));

    // A command with an id that names no method this hub knows (here: none at
    // all) is malformed too, as in Centrifugo (issue 16, fault 4).
    let (mut client, _) = hub.connect(encoding).await;
    client.send(&[Command { id: 5, ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (3501, "bad request".to_string()));
    assert!(client.take_inbox().is_empty(), "no reply before the close");

    // A second connect on a connected session as well.
    let (mut client, _) = hub.connect(encoding).await;
    let reply_id = client.next_id();
    client
        .send(&[Command { id: reply_id, connect: Some(proto::ConnectRequest::default()), ..Default::default() }])
        .await;
    assert_eq!(client.expect_close().await, (3501, "bad request".to_string()));
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

async fn connection_without_connect_goes_stale(encoding: Encoding) {
    let hub = spawn_hub(Config { connect_timeout: Duration::from_millis(300), ..test_config() }).await;
    let mut idle = hub.open(encoding).await;
    let mut prompt = hub.open(encoding).await;
    prompt.connect("").await.expect("connect in time");
    assert_eq!(idle.expect_close().await, (3502, "stale".to_string()));
    // The connected client is not affected by the connect timeout.
    prompt.expect_silence(Duration::from_millis(300)).await;
    prompt.ping().await.unwrap();
    drop(prompt);
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

// ---- Protobuf-only ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_carries_binary_data_exactly() {
    let hub = spawn_hub(test_config()).await;
    let (mut sender, _) = hub.connect(Encoding::Protobuf).await;
    let (mut receiver, _) = hub.connect(Encoding::Protobuf).await;
    receiver.subscribe("news").await;
    let binary = Bytes::from_static(b"\x00\x01\xff\xfe not JSON \n\r\x7f");
    sender.publish("news", binary.clone()).await.expect("protobuf clients may publish bytes");
    let publication = receiver.recv_pub("news").await;
    assert_eq!(publication.data, binary);
    let history =
        receiver.history(HistoryRequest { channel: "news".into(), limit: -1, ..Default::default() }).await.unwrap();
    assert_eq!(history.publications[0].data, binary);

    // A JSON subscriber of the same channel still gets a well-formed frame:
    // non-JSON bytes arrive as a JSON string.
    let (mut json, _) = hub.connect(Encoding::Json).await;
    json.subscribe("news").await;
    sender.publish("news", Bytes::from_static(b"plain text")).await.unwrap();
    assert_eq!(&json.recv_pub("news").await.data[..], b"\"plain text\"");
    hub.shutdown().await;
}

// ---- helpers ------------------------------------------------------------------------------

fn sub_request(channel: &str) -> proto::SubscribeRequest {
    proto::SubscribeRequest { channel: channel.into(), ..Default::default() }
}

/// The kind of a push, for compact assertions.
pub fn push_kind(push: &proto::Push) -> &'static str {
    match push {
        p if p.r#pub.is_some() => "pub",
        p if p.join.is_some() => "join",
        p if p.leave.is_some() => "leave",
        p if p.unsubscribe.is_some() => "unsubscribe",
        p if p.subscribe.is_some() => "subscribe",
        p if p.disconnect.is_some() => "disconnect",
        p if p.message.is_some() => "message",
        _ => "other",
    }
}

both_encodings!(limits_are_enforced);

async fn limits_are_enforced(encoding: Encoding) {
    let hub = spawn_hub(Config { max_channels_per_client: 2, ..test_config() }).await;
    let (mut client, _) = hub.connect(encoding).await;
    client.subscribe("news").await;
    client.subscribe("plain:a").await;
    let third = client.subscribe_with(sub_request("plain:b")).await.unwrap_err();
    assert_eq!(third, codes::LIMIT_EXCEEDED.to_proto());
    client.unsubscribe("plain:a").await.unwrap();
    client.subscribe("plain:b").await;

    // A frame larger than max_frame_bytes is refused with 3501; others go on.
    let (mut big, _) = hub.connect(encoding).await;
    let limit = hub.node.config.max_frame_bytes;
    let data = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(limit)));
    let command =
        Command { id: 9, publish: Some(proto::PublishRequest { channel: "news".into(), data }), ..Default::default() };
    big.send(&[command]).await;
    assert_eq!(big.expect_close().await, (3501, "bad request".to_string()));
    client.expect_silence(Duration::from_millis(100)).await;
    client.ping().await.expect("others are served");
    hub.shutdown().await;
}

both_encodings!(a_flood_of_frames_is_handled_in_order);

async fn a_flood_of_frames_is_handled_in_order(encoding: Encoding) {
    const FRAMES: u32 = 3000;
    let hub = spawn_hub(test_config()).await;
    let (mut sender, _) = hub.connect(encoding).await;
    let (mut receiver, _) = hub.connect(encoding).await;
    receiver.subscribe("news").await;
    // Frames far faster than the session handles them: the hub stops reading
    // while too many are in flight, and loses none.
    let first = sender.next_id();
    for n in 0..FRAMES {
        let publish = proto::PublishRequest { channel: "news".into(), data: data(n as usize) };
        sender.send(&[Command { id: first + n, publish: Some(publish), ..Default::default() }]).await;
    }
    for n in 0..FRAMES {
        let reply = sender.recv_any().await;
        assert_eq!((reply.id, reply.publish.is_some()), (first + n, true), "reply {n}: {reply:?}");
    }
    for n in 0..FRAMES {
        let publication = receiver.recv_pub("news").await;
        assert_eq!((publication.offset, publication.data), (n as u64 + 1, data(n as usize)));
    }
    receiver.expect_silence(Duration::from_millis(100)).await;
    hub.shutdown().await;
}
