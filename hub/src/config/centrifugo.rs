//! Centrifugo v6 configuration files, read as they are: detection, parsing (JSON, YAML,
//! TOML) and the walk that maps each Centrifugo key onto the hub's own keys.
//!
//! **Detection** ([`detect`]): a `.json`, `.yaml` or `.yml` file is always a Centrifugo
//! file (the hub's own format is TOML only), and so is a JSON object under any other name. A TOML file is a Centrifugo file when one of
//! its top-level keys is Centrifugo's and not the hub's (`client`, `http_api`, `log`,
//! `engine`, ...), when its `channel` table holds one of Centrifugo's channel keys
//! (`without_namespace`, `namespaces`, `max_length`, ...), or when `prometheus` is a table.
//! A TOML file that holds keys of both formats is refused, naming one key of each.
//! Anything else is the hub's own format, read exactly as before.
//!
//! **Mapping** ([`map`]): every key of the file is either mapped onto a hub key, or named
//! in one line with the reason, or refused. The rule for the severity:
//!
//! * an **error** when the hub cannot honour a setting that decides who may connect or
//!   which tokens are valid (token claims and algorithms it cannot check, proxy settings
//!   that change what a connect, subscribe or publish proxy decides, refresh proxies, TLS,
//!   an open server API, channel-name rules), since going on without it would open access
//!   or lock users out; unknown keys (typos) and values of
//!   the wrong type are errors too, as in the hub's own format;
//! * a **warning** when the hub lacks a feature or a tuning knob (Redis engine, admin
//!   console, map subscriptions, ...) or maps a key onto a nearby hub
//!   key that differs (the line says how): the hub starts and the line says what to expect.
//!
//! A key whose value is its zero value (`false`, `0`, `""`, `[]`, `{}`), or a feature
//! table whose `enabled` is not `true`, asks for nothing and gets no line.
//!
//! Guarantees: never panics on any input; every error names the file and the Centrifugo
//! key path (`channel.namespaces[chat].history_ttl`).

use std::path::Path;
use std::time::Duration;

use figment::value::{Dict, Value};
use figment::{Metadata, Source};
use serde_json::{Map, Value as Json};

use super::sources::{Layer, TOP_LEVEL_KEYS};
use super::ConfigError;

#[path = "centrifugo_channels.rs"]
mod channels;
#[path = "centrifugo_keys.rs"]
mod keys;
#[path = "centrifugo_proxies.rs"]
mod proxies;

/// Centrifugo v6's top-level keys (its `Config` struct).
pub(super) const CENTRIFUGO_TOP_LEVEL_KEYS: &[&str] = &[
    "http_server",
    "log",
    "engine",
    "broker",
    "presence_manager",
    "map_broker",
    "controller",
    "shared_poll",
    "client",
    "channel",
    "rpc",
    "proxies",
    "http_api",
    "grpc_api",
    "consumers",
    "websocket",
    "sse",
    "http_stream",
    "webtransport",
    "uni_sse",
    "uni_http_stream",
    "uni_websocket",
    "uni_grpc",
    "emulation",
    "admin",
    "prometheus",
    "health",
    "swagger",
    "debug",
    "init",
    "opentelemetry",
    "graphite",
    "usage_stats",
    "node",
    "shutdown",
    "pid_file",
    "enable_unreleased_features",
];

/// Keys of Centrifugo's `channel` table that the hub's `[channel]` does not have.
const CENTRIFUGO_CHANNEL_KEYS: &[&str] = &[
    "proxy",
    "without_namespace",
    "namespaces",
    "history_meta_ttl",
    "publication_data_format",
    "max_length",
    "private_prefix",
    "namespace_boundary",
    "user_boundary",
    "user_separator",
];

/// A Centrifugo key the hub supports only partly or not at all, in a file it still
/// accepts: `file: key = value: reason`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub origin: String,
    /// The Centrifugo key path, with ` = value` when the value is a scalar.
    pub setting: String,
    /// What the hub does instead.
    pub reason: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.setting, self.reason)
    }
}

/// What `--config FILE` holds.
pub(super) enum FileFormat {
    /// The hub's own TOML: figment reads it as before.
    Hub,
    /// A Centrifugo v6 file, already parsed.
    Centrifugo(Json),
}

/// Decides whether `text` (the content of `path`) is a Centrifugo file, and parses it if so.
pub(super) fn detect(path: &Path, text: &str) -> Result<FileFormat, ConfigError> {
    let origin = path.display().to_string();
    let syntax = |reason: String| ConfigError::Syntax { origin: origin.clone(), reason };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "json" => serde_json::from_str::<Json>(text)
            .map(FileFormat::Centrifugo)
            .map_err(|e| syntax(format!("not valid JSON: {e}"))),
        "yaml" | "yml" => {
            // An empty YAML document is null: no keys.
            let value =
                yaml_serde::from_str::<Option<Json>>(text).map_err(|e| syntax(format!("not valid YAML: {e}")))?;
            Ok(FileFormat::Centrifugo(value.unwrap_or_else(|| Json::Object(Map::new()))))
        }
        _ => {
            let Ok(value) = toml::from_str::<Json>(text) else {
                // A JSON object under another name (`--config centrifugo.conf`).
                if text.trim_start().starts_with('{') {
                    if let Ok(value) = serde_json::from_str::<Json>(text) {
                        return Ok(FileFormat::Centrifugo(value));
                    }
                }
                // Not TOML at all: figment reports the syntax error as it always did.
                return Ok(FileFormat::Hub);
            };
            let Json::Object(top) = &value else {
                return Ok(FileFormat::Hub);
            };
            let centrifugo = top.iter().find_map(|(key, value)| centrifugo_signal(key, value));
            let hub = top.keys().find(|key| {
                TOP_LEVEL_KEYS.contains(&key.as_str()) && !CENTRIFUGO_TOP_LEVEL_KEYS.contains(&key.as_str())
            });
            match (centrifugo, hub) {
                (Some(c), Some(h)) => Err(syntax(format!(
                    "mixes a Centrifugo key ({c}) with a hub key ({h}): write either a Centrifugo v6 config or the hub's own"
                ))),
                (Some(_), None) => Ok(FileFormat::Centrifugo(value)),
                (None, _) => Ok(FileFormat::Hub),
            }
        }
    }
}

/// The key path that makes a top-level entry Centrifugo's, if it does.
fn centrifugo_signal(key: &str, value: &Json) -> Option<String> {
    match key {
        "channel" => value
            .as_object()?
            .keys()
            .find(|k| CENTRIFUGO_CHANNEL_KEYS.contains(&k.as_str()))
            .map(|k| format!("channel.{k}")),
        "prometheus" => value.is_object().then(|| "prometheus".to_owned()),
        _ if CENTRIFUGO_TOP_LEVEL_KEYS.contains(&key) && !TOP_LEVEL_KEYS.contains(&key) => Some(key.to_owned()),
        _ => None,
    }
}

/// The outcome of mapping a Centrifugo file.
pub(super) struct Mapped {
    /// The hub keys, as one figment layer named after the file.
    pub layer: Layer,
    pub warnings: Vec<ConfigWarning>,
}

/// Maps a parsed Centrifugo file onto hub keys; `Err` lists every refused or bad key.
pub(super) fn map(path: &Path, value: &Json) -> Result<Mapped, ConfigError> {
    let origin = path.display().to_string();
    let mut mapper = Mapper::new(&origin);
    mapper.top(value);
    let Mapper { hub, warnings, errors, .. } = mapper;
    if !errors.is_empty() {
        return Err(ConfigError::from_list(errors));
    }
    let dict = match Value::serialize(Json::Object(hub)) {
        Ok(Value::Dict(_, dict)) => dict,
        // A JSON object always serializes to a dictionary; an empty one if not.
        _ => Dict::new(),
    };
    let metadata = Metadata::from("Centrifugo config", Source::File(path.to_owned()));
    Ok(Mapped { layer: Layer::new(metadata, dict), warnings })
}

/// Walks a Centrifugo document: the hub keys it builds, the lines it reports.
pub(super) struct Mapper<'a> {
    origin: &'a str,
    /// Hub keys, nested as in the hub's TOML.
    pub(super) hub: Map<String, Json>,
    pub(super) warnings: Vec<ConfigWarning>,
    pub(super) errors: Vec<ConfigError>,
    /// `client.insecure` is on: channels open to every client (applied after the walk).
    pub(super) insecure: bool,
    /// The channel proxies the namespaces turn on (resolved after the walk).
    pub(super) channel_proxies: Vec<proxies::ChannelProxyUse>,
}

/// What to do with one Centrifugo key.
#[derive(Clone, Copy)]
pub(super) enum Rule {
    /// The family's own code maps it.
    Map,
    /// Not supported (or partly): a warning with this reason, unless the value is zero.
    Warn(&'static str),
    /// A feature table: a warning with this reason when its `enabled` is `true`.
    Feature(&'static str),
    /// Not supported and matters for access: an error with this reason, unless zero.
    Refuse(&'static str),
    /// Known and without effect on the hub: no line.
    Silent,
}

impl<'a> Mapper<'a> {
    pub(super) fn new(origin: &'a str) -> Mapper<'a> {
        Mapper {
            origin,
            hub: Map::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            insecure: false,
            channel_proxies: Vec::new(),
        }
    }

    /// Sets the hub key `path` (nested tables created on the way).
    pub(super) fn set(&mut self, path: &[&str], value: Json) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut table = &mut self.hub;
        for part in parents {
            let entry = table.entry((*part).to_owned()).or_insert_with(|| Json::Object(Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(Map::new());
            }
            let Json::Object(inner) = entry else {
                return;
            };
            table = inner;
        }
        table.insert((*last).to_owned(), value);
    }

    /// The hub key `path` as set so far.
    pub(super) fn get(&self, path: &[&str]) -> Option<&Json> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.hub.get(*first)?, |value, part| value.get(part))
    }

    /// A warning line: `file: key = value: reason`.
    pub(super) fn warn(&mut self, key: &str, value: &Json, reason: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            origin: self.origin.to_owned(),
            setting: setting(key, value),
            reason: reason.into(),
        });
    }

    /// An error for a key the hub cannot honour.
    pub(super) fn refuse(&mut self, key: &str, value: &Json, reason: &str) {
        let reason = match shown(value) {
            Some(shown) => format!("{shown}: {reason}"),
            None => reason.to_owned(),
        };
        self.bad(key, reason);
    }

    /// An error for a bad value.
    pub(super) fn bad(&mut self, key: &str, reason: impl Into<String>) {
        self.errors.push(ConfigError::Key {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        });
    }

    /// Walks `value`, which must be a table, key by key with `rules`; `map` gets the
    /// entries whose rule is [`Rule::Map`] as (name, full key, value).
    pub(super) fn walk(
        &mut self,
        prefix: &str,
        value: &Json,
        rules: &[(&str, Rule)],
        mut map: impl FnMut(&mut Self, &str, &str, &Json),
    ) {
        let Some(table) = self.table(prefix, value) else {
            return;
        };
        for (name, value) in table {
            let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            match rules.iter().find(|(known, _)| known == name).map(|(_, rule)| *rule) {
                None => {
                    let expected: Vec<&str> = rules.iter().map(|(known, _)| *known).collect();
                    let hint = if prefix.is_empty() && TOP_LEVEL_KEYS.contains(&name.as_str()) {
                        " (a key of the hub's own TOML format, not of Centrifugo's)"
                    } else {
                        ""
                    };
                    self.bad(
                        &key,
                        format!("unknown Centrifugo v6 key{hint}, expected one of: {}", expected.join(", ")),
                    );
                }
                Some(Rule::Map) => map(self, name, &key, value),
                Some(Rule::Warn(reason)) => {
                    if !is_zero(value) {
                        self.warn(&key, value, reason);
                    }
                }
                Some(Rule::Feature(reason)) => {
                    if self.table(&key, value).is_some() && value.get("enabled").and_then(Json::as_bool) == Some(true) {
                        self.warn(&key, &Json::Null, reason);
                    }
                }
                Some(Rule::Refuse(reason)) => {
                    if !is_zero(value) {
                        self.refuse(&key, value, reason);
                    }
                }
                Some(Rule::Silent) => {}
            }
        }
    }

    pub(super) fn table<'v>(&mut self, key: &str, value: &'v Json) -> Option<&'v Map<String, Json>> {
        let table = value.as_object();
        if table.is_none() {
            self.bad(if key.is_empty() { "." } else { key }, "must be a table (object) of keys");
        }
        table
    }

    pub(super) fn boolean(&mut self, key: &str, value: &Json) -> Option<bool> {
        let found = value.as_bool();
        if found.is_none() {
            self.bad(key, "must be true or false");
        }
        found
    }

    pub(super) fn string(&mut self, key: &str, value: &Json) -> Option<String> {
        let found = value.as_str().map(str::to_owned);
        if found.is_none() {
            self.bad(key, "must be a string");
        }
        found
    }

    pub(super) fn uint(&mut self, key: &str, value: &Json) -> Option<u64> {
        let found = value.as_u64();
        if found.is_none() {
            self.bad(key, "must be a whole number, 0 or more");
        }
        found
    }

    pub(super) fn strings(&mut self, key: &str, value: &Json) -> Option<Vec<String>> {
        let found: Option<Vec<String>> =
            value.as_array().and_then(|items| items.iter().map(|item| item.as_str().map(str::to_owned)).collect());
        if found.is_none() {
            self.bad(key, "must be a list of strings");
        }
        found
    }

    /// A Go duration string (`"25s"`, `"1h30m"`, `"1.5s"`) or a whole number of nanoseconds.
    pub(super) fn duration(&mut self, key: &str, value: &Json) -> Option<Duration> {
        let found = match value {
            Json::String(text) => go_duration(text),
            Json::Number(n) => n.as_u64().map(Duration::from_nanos),
            _ => None,
        };
        if found.is_none() {
            self.bad(key, "must be a duration such as \"25s\", \"500ms\" or \"1h30m\" (Go syntax), 0 or more");
        }
        found
    }

    /// Maps a duration onto the hub key `path` (in the hub's humantime syntax).
    pub(super) fn set_duration(&mut self, path: &[&str], key: &str, value: &Json) {
        if let Some(d) = self.duration(key, value) {
            self.set(path, Json::from(humantime::format_duration(d).to_string()));
        }
    }

    pub(super) fn set_bool(&mut self, path: &[&str], key: &str, value: &Json) {
        if let Some(on) = self.boolean(key, value) {
            self.set(path, Json::from(on));
        }
    }

    pub(super) fn set_uint(&mut self, path: &[&str], key: &str, value: &Json) {
        if let Some(n) = self.uint(key, value) {
            self.set(path, Json::from(n));
        }
    }

    /// A non-empty string onto `path`; an empty one leaves the hub's default.
    pub(super) fn set_string(&mut self, path: &[&str], key: &str, value: &Json) {
        if let Some(text) = self.string(key, value) {
            if !text.is_empty() {
                self.set(path, Json::from(text));
            }
        }
    }

    fn top(&mut self, value: &Json) {
        self.walk("", value, keys::TOP, |m, name, key, value| keys::top(m, name, key, value));
        if value.is_object() {
            proxies::all(self, value);
        }
        if self.insecure {
            self.set(&["allow_anonymous"], Json::from(true));
            let mut namespaces: Vec<String> = Vec::new();
            if let Some(Json::Object(table)) = self.get(&["namespaces"]) {
                namespaces = table.keys().cloned().collect();
            }
            let paths =
                std::iter::once(vec!["channel"]).chain(namespaces.iter().map(|name| vec!["namespaces", name.as_str()]));
            for path in paths.collect::<Vec<_>>() {
                for option in ["allow_subscribe", "allow_publish"] {
                    let full: Vec<&str> = path.iter().copied().chain([option]).collect();
                    self.set(&full, Json::from(true));
                }
            }
        }
        // Centrifugo listens on every interface, port 8000, unless told otherwise.
        if self.get(&["listen"]).is_none() {
            self.set(&["listen"], Json::from("0.0.0.0:8000"));
        }
    }
}

/// `key = value` for scalars, `key` alone for tables and lists.
fn setting(key: &str, value: &Json) -> String {
    match shown(value) {
        Some(shown) => format!("{key} = {shown}"),
        None => key.to_owned(),
    }
}

fn shown(value: &Json) -> Option<String> {
    match value {
        Json::Bool(_) | Json::Number(_) | Json::String(_) => Some(value.to_string()),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

/// `false`, `0`, `""`, `[]`, `{}`, or a table of those: asks for nothing.
pub(super) fn is_zero(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::Bool(on) => !on,
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::String(text) => text.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(table) => table.values().all(is_zero),
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`, `1.5s`, `300ms`; `0` alone.
/// Negative durations are refused (no Centrifugo duration may be negative).
pub(super) fn go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return None;
        }
        let number: f64 = number.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * nanos_per_unit;
        rest = tail;
    }
    // Go's limit: about 292 years in nanoseconds.
    (total.is_finite() && total <= i64::MAX as f64).then(|| Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
#[path = "centrifugo_tests.rs"]
mod tests;
