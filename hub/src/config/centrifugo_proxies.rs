//! Centrifugo's proxies and what the hub makes of them: it has one endpoint per kind,
//! `[proxy.connect]`, `[proxy.subscribe]`, `[proxy.publish]` and `[proxy.rpc]`.
//!
//! * `client.proxy.connect` (enabled) becomes `[proxy.connect]`;
//! * a namespace's `subscribe_proxy_enabled` / `publish_proxy_enabled` becomes its
//!   `subscribe_proxy` / `publish_proxy = true`, and the proxy it names (`*_proxy_name`:
//!   `"default"`, Centrifugo's default, is `channel.proxy.subscribe` / `.publish`; any
//!   other name is an entry of `proxies`) becomes `[proxy.subscribe]` / `[proxy.publish]`;
//! * the RPC namespaces' `proxy_enabled` + `proxy_name` (`"default"`: `rpc.proxy`) become
//!   `[proxy.rpc]`.
//!
//! Namespaces of one kind that use proxies with different settings are an error: the
//! hub would send some of them to the wrong backend.

use serde_json::{Map, Value as Json};

use super::Mapper;
use super::Rule::{self, Refuse, Silent, Warn};

const MAP: Rule = Rule::Map;

/// A namespace (or `channel.without_namespace`) that turns a channel proxy on.
pub(in crate::config) struct ChannelProxyUse {
    /// `"subscribe"` or `"publish"`.
    pub kind: &'static str,
    /// The Centrifugo key that turns it on (`channel.namespaces[chat].subscribe_proxy_enabled`).
    pub key: String,
    /// The proxy's name (`"default"` unless `*_proxy_name` says otherwise).
    pub name: String,
    /// The hub table of the namespace (`["namespaces", "chat"]` or `["channel"]`).
    pub path: Vec<String>,
}

/// `client.proxy`: `connect` and `refresh` map onto `[proxy.connect]` and `[proxy.refresh]`.
pub(super) fn client_proxy(m: &mut Mapper, key: &str, value: &Json) {
    m.walk(key, value, &[("connect", MAP), ("refresh", MAP)], |m, name, key, value| {
        let Some(table) = m.table(key, value) else {
            return;
        };
        if table.get("enabled").and_then(Json::as_bool) != Some(true) {
            return;
        }
        endpoint(m, key, value, if name == "connect" { "connect" } else { "refresh" });
    });
}

/// `channel.proxy`: the `"default"` channel proxies, read in [`all`] when a namespace uses them.
pub(super) fn channel_proxy(m: &mut Mapper, key: &str, value: &Json) {
    // Each is refused or warned by the namespace option that uses it.
    let rules = [
        ("subscribe", Silent),
        ("publish", Silent),
        ("sub_refresh", Silent),
        ("subscribe_stream", Silent),
        ("map_publish", Silent),
        ("map_remove", Silent),
        ("shared_poll_refresh", Silent),
    ];
    m.walk(key, value, &rules, |_, _, _, _| {});
}

/// Every proxy a namespace or RPC uses, read after the walk: the named `proxies`, the
/// channel proxies the namespaces turned on, `rpc` and `rpc.proxy`.
pub(super) fn all(m: &mut Mapper, document: &Json) {
    let proxies: Vec<(String, &Json)> = match document.get("proxies") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.get("name").and_then(Json::as_str) {
                Some(name) if !name.is_empty() => Some((name.to_owned(), item)),
                _ => {
                    m.bad(&format!("proxies[{i}].name"), "every named proxy needs a name");
                    None
                }
            })
            .collect(),
        Some(_) => {
            m.bad("proxies", "must be a list of named proxies");
            Vec::new()
        }
    };
    let mut used_names: Vec<String> = Vec::new();
    let channel_defaults = document.get("channel").and_then(|channel| channel.get("proxy"));
    let uses = std::mem::take(&mut m.channel_proxies);
    for kind in ["subscribe", "publish"] {
        let kind_uses: Vec<&ChannelProxyUse> = uses.iter().filter(|u| u.kind == kind).collect();
        let named: Vec<(String, String)> = kind_uses.iter().map(|u| (u.key.clone(), u.name.clone())).collect();
        let default = channel_defaults.and_then(|proxy| proxy.get(kind)).map(|p| (format!("channel.proxy.{kind}"), p));
        if one_endpoint(m, kind, kind, &named, default, &proxies) {
            let field = format!("{kind}_proxy");
            for found in &kind_uses {
                let path: Vec<&str> = found.path.iter().map(String::as_str).chain([field.as_str()]).collect();
                m.set(&path, Json::from(true));
            }
        }
        used_names.extend(named.into_iter().map(|(_, name)| name));
    }
    let rpc_uses = rpc(m, document);
    let default = document.get("rpc").and_then(|rpc| rpc.get("proxy")).map(|p| ("rpc.proxy".to_owned(), p));
    if one_endpoint(m, "rpc", "RPC", &rpc_uses, default, &proxies)
        && rpc_uses.iter().any(|(key, _)| key.starts_with("rpc.namespaces"))
    {
        let line = "partly supported: every RPC method, namespaced or not, goes to [proxy.rpc]";
        m.warn("rpc.namespaces", &Json::Null, line);
    }
    used_names.extend(rpc_uses.into_iter().map(|(_, name)| name));
    for (name, _) in &proxies {
        if !used_names.contains(name) {
            let reason = "not supported: the hub uses a named proxy only as its subscribe, publish or RPC proxy, \
                          and no namespace or RPC uses this one";
            m.warn(&format!("proxies[{name}]"), &Json::Null, reason);
        }
    }
}

/// Resolves the proxies that `uses` (key, proxy name) name onto `[proxy.<kind>]`; true
/// when one was mapped. `default` is the proxy named `"default"` (with its key).
fn one_endpoint(
    m: &mut Mapper,
    kind: &str,
    label: &str,
    uses: &[(String, String)],
    default: Option<(String, &Json)>,
    proxies: &[(String, &Json)],
) -> bool {
    let mut chosen: Option<(String, &Json)> = None;
    for (key, name) in uses {
        let proxy = if name == "default" {
            default.clone().filter(|(_, proxy)| proxy.get("endpoint").is_some_and(|e| !super::is_zero(e)))
        } else {
            proxies.iter().find(|(n, _)| n == name).map(|(n, proxy)| (format!("proxies[{n}]"), *proxy))
        };
        let Some((source, proxy)) = proxy else {
            let reason = match (name.as_str(), &default) {
                ("default", Some((source, _))) => {
                    format!("uses the proxy \"default\", whose endpoint ({source}.endpoint) is not set")
                }
                ("default", None) if kind != "rpc" => {
                    format!("uses the proxy \"default\", which is not defined (channel.proxy.{kind})")
                }
                _ => format!("uses the proxy {name:?}, which is not defined"),
            };
            m.bad(key, reason);
            continue;
        };
        match &chosen {
            Some((_, first)) if without_name(first) != without_name(proxy) => {
                let reason =
                    format!("not supported: the hub has one {label} proxy ([proxy.{kind}]) and this file uses several");
                m.refuse(key, &Json::Null, &reason);
            }
            Some(_) => {}
            None => chosen = Some((source, proxy)),
        }
    }
    match chosen {
        Some((source, proxy)) => {
            endpoint(m, &source, proxy, kind);
            true
        }
        None => false,
    }
}

/// A proxy's settings, its name left out (two names for one backend are one proxy).
fn without_name(proxy: &Json) -> Option<Map<String, Json>> {
    let mut table = proxy.as_object()?.clone();
    table.remove("name");
    Some(table)
}

/// `rpc`: the (key, proxy name) of each RPC namespace whose proxy is on.
fn rpc(m: &mut Mapper, document: &Json) -> Vec<(String, String)> {
    let mut used: Vec<(String, String)> = Vec::new();
    let Some(rpc) = document.get("rpc") else {
        return used;
    };
    let rules = [
        ("proxy", MAP),
        ("without_namespace", MAP),
        ("namespaces", MAP),
        ("ping", Rule::Feature("not supported: the hub has no built-in RPC ping method")),
        ("namespace_boundary", MAP),
    ];
    m.walk("rpc", rpc, &rules, |m, name, key, value| match name {
        "proxy" => {}
        "without_namespace" => {
            if let Some(proxy) = rpc_options(m, key, value) {
                used.push((key.to_owned(), proxy));
            }
        }
        "namespaces" => {
            let Some(items) = value.as_array() else {
                return m.bad(key, "must be a list of RPC namespaces");
            };
            for (i, item) in items.iter().enumerate() {
                let label = match item.get("name").and_then(Json::as_str) {
                    Some(name) if !name.is_empty() => format!("{key}[{name}]"),
                    _ => {
                        m.bad(&format!("{key}[{i}].name"), "every RPC namespace needs a name");
                        continue;
                    }
                };
                if let Some(proxy) = rpc_options(m, &label, item) {
                    used.push((label, proxy));
                }
            }
        }
        _ => {
            if m.string(key, value).is_some_and(|b| !matches!(b.as_str(), "" | ":")) {
                m.warn(key, value, "not supported: the hub sends every RPC method, whatever its name, to [proxy.rpc]");
            }
        }
    });
    used
}

/// An RPC namespace's options: the proxy name it uses, when its proxy is on.
fn rpc_options(m: &mut Mapper, key: &str, value: &Json) -> Option<String> {
    let mut enabled = false;
    let mut name = "default".to_owned();
    let rules = [("name", Silent), ("proxy_enabled", MAP), ("proxy_name", MAP)];
    m.walk(key, value, &rules, |m, field, key, value| match field {
        "proxy_enabled" => enabled = m.boolean(key, value).unwrap_or(false),
        _ => {
            if let Some(given) = m.string(key, value).filter(|n| !n.is_empty()) {
                name = given;
            }
        }
    });
    enabled.then_some(name)
}

/// One Centrifugo proxy (`key`, its table `proxy`) onto `[proxy.<kind>]`.
fn endpoint(m: &mut Mapper, key: &str, proxy: &Json, kind: &str) {
    // For the RPC proxy these only change what a backend sees of a call; for the others
    // they change who may connect, subscribe or publish, so the hub refuses them.
    let access = kind != "rpc";
    const EMULATED: &str = "not supported: the hub forwards headers of the client's HTTP request \
                            (http_headers), not the headers a client sends in its connect command";
    let mut rules = vec![
        ("name", Silent),
        ("endpoint", MAP),
        ("timeout", MAP),
        ("http_headers", MAP),
        // gRPC metadata comes with gRPC client connections, which the hub does not serve.
        ("grpc_metadata", Silent),
        ("emulated_headers", if access { Refuse(EMULATED) } else { Warn(EMULATED) }),
        (
            "binary_encoding",
            Refuse("not supported: the hub sends a payload as data when it is JSON, as b64data only otherwise"),
        ),
        // The hub always sends the connect proxy's meta with the other proxies' requests.
        ("include_connection_meta", Silent),
        ("http", MAP),
        ("grpc", Silent),
    ];
    if kind == "connect" || kind == "refresh" {
        rules.push(("enabled", Silent));
    }
    let hub = |field| ["proxy", kind, field];
    let mut address = String::new();
    m.walk(key, proxy, &rules, |m, name, key, value| match name {
        "endpoint" => address = m.string(key, value).unwrap_or_default(),
        "timeout" => {
            // Zero is Centrifugo's default, 1 s, which is the hub's too.
            if m.duration(key, value).is_some_and(|d| !d.is_zero()) {
                m.set_duration(&hub("timeout"), key, value);
            }
        }
        "http_headers" => {
            if let Some(headers) = m.strings(key, value) {
                if !headers.is_empty() {
                    m.set(&hub("http_headers"), Json::from(headers));
                }
            }
        }
        _ => {
            if let Some(http) = m.table(key, value) {
                let http: Map<String, Json> = http.clone();
                for (field, value) in &http {
                    if !super::is_zero(value) {
                        let reason = "not supported: the hub's proxy requests carry no static headers, TLS \
                                      settings or status transforms";
                        m.refuse(&format!("{key}.{field}"), value, reason);
                    }
                }
            }
        }
    });
    if address.starts_with("grpc://") {
        return m.refuse(
            &format!("{key}.endpoint"),
            &Json::from(address),
            "not supported: the hub calls backends over HTTP only",
        );
    }
    if address.is_empty() {
        return m.bad(&format!("{key}.endpoint"), "must be set: the http:// or https:// URL of the backend");
    }
    m.set(&hub("endpoint"), Json::from(address));
}
