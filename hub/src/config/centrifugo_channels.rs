//! Centrifugo's `channel` table: `without_namespace` becomes `[channel]`, each entry of
//! `namespaces` becomes `[namespaces.<name>]`, `max_length` becomes `max_channel_length`.
//!
//! Centrifugo's permission keys are finer than the hub's two (`allow_subscribe`,
//! `allow_publish`): the `_for_client` keys map exactly, and a `_for_subscriber` or
//! `_for_anonymous` key that the nearest hub key widens is named in a warning saying how.

use serde_json::{Map, Value as Json};

use super::keys::{MAP_SUBSCRIPTIONS, POSITIONING};
use super::proxies::ChannelProxyUse;
use super::Mapper;
use super::Rule::{self, Refuse, Silent, Warn};

const MAP: Rule = Rule::Map;
const SHARED_POLL: &str = "not supported (shared poll subscriptions); the namespace is served as a stream namespace";
const READERS: &str = "partly supported: the hub lets subscribers, and clients that may subscribe, read it";

/// The keys of one namespace's options (Centrifugo's `ChannelOptions`), and `name`.
const OPTIONS: &[(&str, Rule)] = &[
    ("name", Silent),
    ("presence", MAP),
    ("join_leave", MAP),
    // The hub pushes joins and leaves to every subscriber, which is what this asks.
    ("force_push_join_leave", Silent),
    ("map_clients_presence_channel_prefix", Warn(MAP_SUBSCRIPTIONS)),
    ("map_users_presence_channel_prefix", Warn(MAP_SUBSCRIPTIONS)),
    ("history_size", MAP),
    ("history_ttl", MAP),
    ("history_meta_ttl", Warn("not supported: the hub keeps a channel's epoch and offset as long as its history")),
    ("force_positioning", Warn(POSITIONING)),
    ("allow_positioning", Warn(POSITIONING)),
    ("force_recovery", MAP),
    // The hub lets a client recover wherever history is on.
    ("allow_recovery", Silent),
    ("force_recovery_mode", MAP),
    ("auto_cache_recover", Warn("not supported (cache recovery mode)")),
    ("allowed_delta_types", MAP),
    ("allow_tags_filter", MAP),
    ("delta_publish", MAP),
    ("allow_subscribe_for_anonymous", MAP),
    ("allow_subscribe_for_client", MAP),
    ("allow_publish_for_anonymous", MAP),
    ("allow_publish_for_subscriber", MAP),
    ("allow_publish_for_client", MAP),
    ("allow_presence_for_anonymous", Warn(READERS)),
    // Subscribers may read presence and history wherever they are on: what these ask.
    ("allow_presence_for_subscriber", Silent),
    ("allow_presence_for_client", Warn(READERS)),
    ("allow_history_for_anonymous", Warn(READERS)),
    ("allow_history_for_subscriber", Silent),
    ("allow_history_for_client", Warn(READERS)),
    ("allow_user_limited_channels", MAP),
    (
        "channel_regex",
        Refuse("not supported: the hub cannot check channel names against a regex, so it would take channels Centrifugo refuses"),
    ),
    ("publication_data_format", Warn("not supported: the hub does not check the format of publication data")),
    ("subscribe_proxy_enabled", MAP),
    ("subscribe_proxy_name", MAP),
    ("publish_proxy_enabled", MAP),
    ("publish_proxy_name", MAP),
    (
        "sub_refresh_proxy_enabled",
        Refuse(
            "not supported (sub refresh proxy): the hub has none, so a subscription given an expire_at by the \
             subscribe proxy ends when it expires unless the client refreshes with a subscription token",
        ),
    ),
    ("sub_refresh_proxy_name", Silent),
    ("subscribe_stream_proxy_enabled", Refuse("not supported (subscribe stream proxy)")),
    ("subscribe_stream_proxy_name", Silent),
    ("subscribe_stream_proxy_bidirectional", Silent),
    ("subscription_type", MAP),
    ("map", Warn(MAP_SUBSCRIPTIONS)),
    ("shared_poll", Warn(SHARED_POLL)),
    // Not in Centrifugo v6.9's ChannelOptions; the development builds that centrifuge-js
    // tests against accept it for map subscriptions.
    ("client_publish_debounce_interval", Warn(MAP_SUBSCRIPTIONS)),
];

pub(super) fn channel(m: &mut Mapper, key: &str, value: &Json) {
    let rules = [
        ("proxy", MAP),
        ("without_namespace", MAP),
        ("namespaces", MAP),
        ("history_meta_ttl", Warn("not supported: the hub keeps a channel's epoch and offset as long as its history")),
        ("publication_data_format", Warn("not supported: the hub does not check the format of publication data")),
        ("max_length", MAP),
        ("private_prefix", MAP),
        ("namespace_boundary", MAP),
        ("user_boundary", MAP),
        ("user_separator", MAP),
    ];
    m.walk(key, value, &rules, |m, name, key, value| match name {
        "proxy" => super::proxies::channel_proxy(m, key, value),
        "without_namespace" => options(m, key, value, &["channel"]),
        "namespaces" => namespaces(m, key, value),
        "max_length" => m.set_uint(&["max_channel_length"], key, value),
        "private_prefix" => fixed(m, key, value, "$", false),
        "namespace_boundary" => fixed(m, key, value, ":", true),
        "user_boundary" => fixed(m, key, value, "#", true),
        _ => fixed(m, key, value, ",", true),
    });
}

/// A separator the hub has fixed: another one is refused (`refuse`) or a warning.
fn fixed(m: &mut Mapper, key: &str, value: &Json, ours: &str, refuse: bool) {
    let Some(given) = m.string(key, value) else {
        return;
    };
    if given.is_empty() || given == ours {
        return;
    }
    let reason = format!("not supported: the hub's is always {ours:?}");
    if refuse {
        m.refuse(key, value, &reason);
    } else {
        m.warn(key, value, reason);
    }
}

fn namespaces(m: &mut Mapper, key: &str, value: &Json) {
    let Some(items) = value.as_array() else {
        return m.bad(key, "must be a list of namespaces (each with a name)");
    };
    let mut seen: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.get("name").and_then(Json::as_str).filter(|n| !n.is_empty()) else {
            m.bad(&format!("{key}[{i}].name"), "every namespace needs a name");
            continue;
        };
        let label = format!("{key}[{name}]");
        if seen.contains(&name) {
            m.bad(&label, "this namespace name is used twice");
            continue;
        }
        seen.push(name);
        // The namespace exists even when it sets no option.
        m.set(&["namespaces", name], Json::Object(Map::new()));
        options(m, &label, item, &["namespaces", name]);
    }
}

/// One namespace's options onto the hub table at `path`.
fn options(m: &mut Mapper, key: &str, value: &Json, path: &[&str]) {
    let mut flags: Map<String, Json> = Map::new();
    let (mut subscribe_proxy, mut publish_proxy) = ("default".to_owned(), "default".to_owned());
    m.walk(key, value, OPTIONS, |m, name, key, value| {
        let at = |field| join(path, field);
        match name {
            "presence"
            | "join_leave"
            | "force_recovery"
            | "allow_tags_filter"
            | "allow_user_limited_channels"
            | "delta_publish" => m.set_bool(&at(name), key, value),
            "allowed_delta_types" => {
                // The hub's own check names an unknown type ("fossil" only).
                if let Some(types) = m.strings(key, value) {
                    m.set(&at(name), Json::from(types));
                }
            }
            "history_size" => m.set_uint(&at("history_size"), key, value),
            "history_ttl" => m.set_duration(&at("history_ttl"), key, value),
            "force_recovery_mode" => {
                if m.string(key, value).is_some_and(|mode| !matches!(mode.as_str(), "" | "stream")) {
                    m.warn(key, value, "not supported (cache recovery mode): the hub recovers from the stream");
                }
            }
            "subscription_type" => match m.string(key, value).as_deref() {
                None | Some("" | "stream") => {}
                Some("shared_poll") => m.warn(key, value, SHARED_POLL),
                Some(_) => m.warn(key, value, MAP_SUBSCRIPTIONS),
            },
            "subscribe_proxy_name" | "publish_proxy_name" => {
                if let Some(given) = m.string(key, value).filter(|n| !n.is_empty()) {
                    if name == "subscribe_proxy_name" {
                        subscribe_proxy = given;
                    } else {
                        publish_proxy = given;
                    }
                }
            }
            _ => {
                // The allow_subscribe_*, allow_publish_* and *_proxy_enabled keys, used below.
                if let Some(on) = m.boolean(key, value) {
                    flags.insert(name.to_owned(), Json::from(on));
                }
            }
        }
    });
    let on = |name: &str| flags.get(name).and_then(Json::as_bool) == Some(true);
    let at = |field| join(path, field);
    for (kind, name) in [("subscribe", subscribe_proxy), ("publish", publish_proxy)] {
        let enabled = format!("{kind}_proxy_enabled");
        if on(&enabled) {
            m.channel_proxies.push(ChannelProxyUse {
                kind,
                key: format!("{key}.{enabled}"),
                name,
                path: path.iter().map(|part| (*part).to_owned()).collect(),
            });
        }
    }
    let (sub_client, sub_anonymous) = (on("allow_subscribe_for_client"), on("allow_subscribe_for_anonymous"));
    if sub_client || sub_anonymous {
        m.set(&at("allow_subscribe"), Json::from(true));
    }
    if sub_anonymous && !sub_client {
        let line = "partly supported: mapped to allow_subscribe, which lets every connected client subscribe";
        m.warn(&format!("{key}.allow_subscribe_for_anonymous"), &Json::from(true), line);
    }
    let pub_client = on("allow_publish_for_client");
    if pub_client || on("allow_publish_for_subscriber") || on("allow_publish_for_anonymous") {
        m.set(&at("allow_publish"), Json::from(true));
    }
    for (name, how) in [
        ("allow_publish_for_subscriber", "which also lets connected clients that are not subscribed publish"),
        ("allow_publish_for_anonymous", "which lets every connected client publish"),
    ] {
        if on(name) && !pub_client {
            m.warn(
                &format!("{key}.{name}"),
                &Json::from(true),
                format!("partly supported: mapped to allow_publish, {how}"),
            );
        }
    }
}

fn join<'a>(path: &[&'a str], field: &'a str) -> Vec<&'a str> {
    path.iter().copied().chain([field]).collect()
}
