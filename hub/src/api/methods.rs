//! The server API methods: their requests and results (field for field those of
//! Centrifugo v5's HTTP API), and how each one runs on the [`Node`].
//!
//! Requests ignore unknown fields, as Centrifugo does, so a client library that
//! sends options this hub does not have (`skip_history`, `delta`, `override`,
//! subscribe's `info`/`data`/`recover_since`, ...) still works;
//! the few options whose silent omission would do something else than asked
//! (refresh's `info`) are refused with 107. Publication `data` is kept
//! as the exact JSON text of the request and embedded as is in replies.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use protocol::codes::{self, DisconnectCode};
use protocol::proto;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::{base64, pattern};
use crate::node::{ExpiryRefresh, Node, NodeInfo, Target};
use crate::topic::{HistoryQuery, Position, PublishArgs};

/// Channels of one broadcast published at the same time.
const BROADCAST_CONCURRENCY: usize = 64;

/// A server API method (everything but `batch`, which holds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Publish,
    Broadcast,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Refresh,
    Presence,
    PresenceStats,
    History,
    HistoryRemove,
    Channels,
    Info,
}

impl Method {
    pub const ALL: [Method; 12] = [
        Method::Publish,
        Method::Broadcast,
        Method::Subscribe,
        Method::Unsubscribe,
        Method::Disconnect,
        Method::Refresh,
        Method::Presence,
        Method::PresenceStats,
        Method::History,
        Method::HistoryRemove,
        Method::Channels,
        Method::Info,
    ];

    /// The name in the URL (`/api/<name>`) and in batch commands.
    pub fn name(self) -> &'static str {
        match self {
            Method::Publish => "publish",
            Method::Broadcast => "broadcast",
            Method::Subscribe => "subscribe",
            Method::Unsubscribe => "unsubscribe",
            Method::Disconnect => "disconnect",
            Method::Refresh => "refresh",
            Method::Presence => "presence",
            Method::PresenceStats => "presence_stats",
            Method::History => "history",
            Method::HistoryRemove => "history_remove",
            Method::Channels => "channels",
            Method::Info => "info",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|method| method.name() == name)
    }

    /// The number of the method in Centrifugo's `Command.MethodType` (legacy `/api` format).
    pub fn from_number(number: u64) -> Option<Method> {
        Some(match number {
            0 => Method::Publish,
            1 => Method::Broadcast,
            2 => Method::Unsubscribe,
            3 => Method::Disconnect,
            4 => Method::Presence,
            5 => Method::PresenceStats,
            6 => Method::History,
            7 => Method::HistoryRemove,
            8 => Method::Channels,
            9 => Method::Info,
            11 => Method::Subscribe,
            12 => Method::Refresh,
            _ => return None,
        })
    }
}

// ---- requests -------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct PublishRequest {
    #[schema(min_length = 1)]
    pub channel: String,
    /// Any JSON value, `null` included (kept as its text); required unless
    /// `b64data` is given.
    #[serde(default, deserialize_with = "json_value")]
    #[schema(value_type = Value)]
    pub data: Option<Box<RawValue>>,
    /// Binary data in base64; wins over `data` when not empty. `""` alone
    /// publishes 0 bytes.
    #[schema(pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$")]
    pub b64data: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    /// A repeat within `idempotency_window` is accepted once and answers the first offset.
    pub idempotency_key: Option<String>,
    /// Use delta compression for this publication (Centrifugo's "whether to
    /// use delta"): subscribers that negotiated `delta: "fossil"` get the
    /// Fossil delta from the previous publication instead of the data, where
    /// it is smaller. As in Centrifugo (`internal/api/api.go`), the
    /// namespace's `delta_publish` turns it on for every publication.
    #[serde(default)]
    pub delta: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BroadcastRequest {
    /// A channel that cannot be published to gets its own `error` response.
    #[schema(min_items = 1)]
    pub channels: Vec<String>,
    /// As in [`PublishRequest`].
    #[serde(default, deserialize_with = "json_value")]
    #[schema(value_type = Value)]
    pub data: Option<Box<RawValue>>,
    #[schema(pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$")]
    pub b64data: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    /// Applies per channel.
    pub idempotency_key: Option<String>,
    /// Use delta compression for these publications (Centrifugo's "whether to
    /// use delta"): subscribers that negotiated `delta: "fossil"` get the
    /// Fossil delta from the previous publication instead of the data, where
    /// it is smaller. As in Centrifugo (`internal/api/api.go`), the
    /// namespace's `delta_publish` turns it on for every publication.
    #[serde(default)]
    pub delta: bool,
}

/// `subscribe` and `unsubscribe`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChannelRequest {
    pub user: String,
    #[schema(min_length = 1)]
    pub channel: String,
    /// Only this connection of the user.
    pub client: Option<String>,
    /// Only the connection with this session id: the `session` of an SSE or
    /// HTTP-stream connection's connect reply (WebSocket connections have none).
    pub session: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DisconnectRequest {
    pub user: String,
    /// Only this connection of the user.
    pub client: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub disconnect: Option<DisconnectSpec>,
    /// Only the connection with this session id (see `subscribe`).
    pub session: Option<String>,
    /// Client ids that stay connected.
    pub whitelist: Option<Vec<String>>,
}

/// `refresh`: the expiry of a user's connections, set by the backend (for
/// connections whose token expires, or to end them as expired).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub user: String,
    /// Only this connection of the user.
    pub client: Option<String>,
    /// Only the connection with this session id (see `subscribe`).
    pub session: Option<String>,
    /// `true`: close the connections now with 3005 "connection expired".
    pub expired: Option<bool>,
    /// Unix time (seconds) at which the connections expire (then closed with
    /// 3005 after `client_expired_close_delay` unless refreshed again); a time
    /// already past closes them now; 0 or absent: they no longer expire. The
    /// clients get a `refresh` push with the new `ttl`. Negative: refused (107).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0)]
    pub expire_at: Option<i64>,
    /// Centrifugo's new connection info: not supported here, refused (107)
    /// whenever given, so it is left out of the document.
    #[schema(ignore)]
    #[serde(default, deserialize_with = "json_value")]
    pub info: Option<Box<RawValue>>,
}

/// The close code a disconnect asks for. A `reason` may be sent but the hub
/// closes with its own ("force reconnect" or "force disconnect").
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisconnectSpec {
    /// 0 or absent: 3503 "force disconnect"; otherwise 3000-4999 ([`disconnect_code`]).
    #[serde(default, deserialize_with = "integer")]
    #[schema(schema_with = disconnect_code_schema)]
    pub code: Option<u32>,
}

/// `presence`, `presence_stats` and `history_remove`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChannelRequest {
    #[schema(min_length = 1)]
    pub channel: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HistoryRequest {
    #[schema(min_length = 1)]
    pub channel: String,
    /// 0 or absent: no publications, the stream position only; negative: all.
    #[serde(default, deserialize_with = "integer")]
    pub limit: Option<i32>,
    #[serde(default, deserialize_with = "object")]
    pub since: Option<StreamPosition>,
    pub reverse: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamPosition {
    #[serde(default, deserialize_with = "integer")]
    #[schema(schema_with = offset_schema)]
    pub offset: Option<u64>,
    /// Empty or absent: the stream's current epoch.
    pub epoch: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChannelsRequest {
    /// `*` and `?` wildcards; absent or empty: every channel.
    pub pattern: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InfoRequest {}

/// One decoded call, ready to run.
#[derive(Debug)]
pub enum Call {
    Publish(PublishRequest),
    Broadcast(BroadcastRequest),
    Subscribe(UserChannelRequest),
    Unsubscribe(UserChannelRequest),
    Disconnect(DisconnectRequest),
    Refresh(RefreshRequest),
    Presence(ChannelRequest),
    PresenceStats(ChannelRequest),
    History(HistoryRequest),
    HistoryRemove(ChannelRequest),
    Channels(ChannelsRequest),
    Info(InfoRequest),
}

/// Parses a JSON object body; an empty body (no byte at all) counts as `{}`.
/// A body of whitespace only is not JSON, and is refused like any other.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}").map_err(ApiError::bad_request);
    }
    // serde would also fill a struct from an array, by position.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_slice(body).map_err(ApiError::bad_request)
}

impl Call {
    /// Decodes the body of a call to `method`.
    pub fn decode(method: Method, body: &[u8]) -> Result<Call, ApiError> {
        Ok(match method {
            Method::Publish => Call::Publish(parse(body)?),
            Method::Broadcast => Call::Broadcast(parse(body)?),
            Method::Subscribe => Call::Subscribe(parse(body)?),
            Method::Unsubscribe => Call::Unsubscribe(parse(body)?),
            Method::Disconnect => Call::Disconnect(parse(body)?),
            Method::Refresh => Call::Refresh(parse(body)?),
            Method::Presence => Call::Presence(parse(body)?),
            Method::PresenceStats => Call::PresenceStats(parse(body)?),
            Method::History => Call::History(parse(body)?),
            Method::HistoryRemove => Call::HistoryRemove(parse(body)?),
            Method::Channels => Call::Channels(parse(body)?),
            Method::Info => Call::Info(parse(body)?),
        })
    }

    pub fn method(&self) -> Method {
        match self {
            Call::Publish(_) => Method::Publish,
            Call::Broadcast(_) => Method::Broadcast,
            Call::Subscribe(_) => Method::Subscribe,
            Call::Unsubscribe(_) => Method::Unsubscribe,
            Call::Disconnect(_) => Method::Disconnect,
            Call::Refresh(_) => Method::Refresh,
            Call::Presence(_) => Method::Presence,
            Call::PresenceStats(_) => Method::PresenceStats,
            Call::History(_) => Method::History,
            Call::HistoryRemove(_) => Method::HistoryRemove,
            Call::Channels(_) => Method::Channels,
            Call::Info(_) => Method::Info,
        }
    }

    /// Runs the call; an internal failure is logged.
    pub async fn execute(self, node: &Node) -> Result<MethodResult, ApiError> {
        let method = self.method();
        self.run(node).await.inspect_err(|error| {
            if error.code() == codes::INTERNAL.code {
                tracing::warn!(method = method.name(), %error, "server API call failed");
            }
        })
    }

    async fn run(self, node: &Node) -> Result<MethodResult, ApiError> {
        Ok(match self {
            Call::Publish(request) => MethodResult::Publish(publish(node, request).await?),
            Call::Broadcast(request) => MethodResult::Broadcast(broadcast(node, request).await?),
            Call::Subscribe(request) => {
                let (user, channel, target) = user_channel(&request)?;
                node.subscribe_user(user, channel, target)?;
                MethodResult::Empty(Empty {})
            }
            Call::Unsubscribe(request) => {
                let (user, channel, target) = user_channel(&request)?;
                node.unsubscribe_user(user, channel, target)?;
                MethodResult::Empty(Empty {})
            }
            Call::Disconnect(request) => {
                let code = disconnect_code(request.disconnect.as_ref())?;
                let target = Target { client: non_empty(&request.client), session: non_empty(&request.session) };
                let whitelist = request.whitelist.unwrap_or_default().into_iter().filter(|c| !c.is_empty()).collect();
                node.disconnect_user(&request.user, target, whitelist, code);
                MethodResult::Empty(Empty {})
            }
            Call::Refresh(request) => {
                refuse_unsupported("info", request.info.is_some())?;
                let refresh = expiry_refresh(&request)?;
                let target = Target { client: non_empty(&request.client), session: non_empty(&request.session) };
                node.refresh_user(&request.user, target, refresh);
                MethodResult::Empty(Empty {})
            }
            Call::Presence(request) => {
                let presence = node.presence(required_channel(&request.channel)?).await?;
                let presence = presence.into_iter().map(|(client, info)| (client, ClientInfo::from(info))).collect();
                MethodResult::Presence(PresenceResult { presence })
            }
            Call::PresenceStats(request) => {
                let (num_clients, num_users) = node.presence_stats(required_channel(&request.channel)?).await?;
                MethodResult::PresenceStats(PresenceStatsResult { num_clients, num_users })
            }
            Call::History(request) => MethodResult::History(history(node, request).await?),
            Call::HistoryRemove(request) => {
                node.history_remove(required_channel(&request.channel)?).await?;
                MethodResult::Empty(Empty {})
            }
            Call::Channels(request) => {
                let pattern = pattern::ChannelPattern::new(request.pattern.as_deref().unwrap_or_default());
                let channels = node
                    .channels()
                    .await?
                    .into_iter()
                    .filter(|(name, _)| pattern.matches(name))
                    .map(|(name, num_clients)| (name, ChannelInfo { num_clients }))
                    .collect();
                MethodResult::Channels(ChannelsResult { channels })
            }
            Call::Info(InfoRequest {}) => MethodResult::Info(InfoResult { nodes: node.nodes() }),
        })
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn required_channel(channel: &str) -> Result<&str, ApiError> {
    if channel.is_empty() {
        return Err(ApiError::bad_request("`channel` must not be empty"));
    }
    Ok(channel)
}

fn refuse_unsupported(field: &str, given: bool) -> Result<(), ApiError> {
    if given {
        return Err(ApiError::BadRequest(format!("`{field}` is not supported by this server")));
    }
    Ok(())
}

fn user_channel(request: &UserChannelRequest) -> Result<(&str, &str, Target<'_>), ApiError> {
    let target = Target { client: non_empty(&request.client), session: non_empty(&request.session) };
    Ok((&request.user, required_channel(&request.channel)?, target))
}

/// What a `refresh` asks: `expired` wins; then a positive `expire_at`; 0 or
/// none means no expiry. A negative `expire_at` is refused, `expired` or not.
fn expiry_refresh(request: &RefreshRequest) -> Result<ExpiryRefresh, ApiError> {
    let expire_at = match request.expire_at {
        Some(at) if at < 0 => return Err(ApiError::BadRequest(format!("`expire_at` {at} is negative"))),
        at => at.unwrap_or(0).unsigned_abs(),
    };
    Ok(match (request.expired, expire_at) {
        (Some(true), _) => ExpiryRefresh::Expired,
        (_, 0) => ExpiryRefresh::Never,
        (_, at) => ExpiryRefresh::ExpireAt(at),
    })
}

/// The close code of an API disconnect: 3503 "force disconnect" by default; a
/// code in 3000-4999 is used as given, its reason telling whether the client
/// SDKs reconnect (3000-3499 and 4000-4499) or not.
pub fn disconnect_code(spec: Option<&DisconnectSpec>) -> Result<DisconnectCode, ApiError> {
    let code = match spec.and_then(|s| s.code) {
        None | Some(0) => return Ok(codes::FORCE_NO_RECONNECT),
        Some(code @ 3000..=4999) => code as u16,
        Some(code) => return Err(ApiError::BadRequest(format!("disconnect code {code} is not in 3000-4999"))),
    };
    let reconnect = code < 3500 || (4000..4500).contains(&code);
    let reason = if reconnect { codes::FORCE_RECONNECT.reason } else { codes::FORCE_NO_RECONNECT.reason };
    Ok(DisconnectCode { code, reason })
}

/// The schema of [`DisconnectSpec::code`]: what [`disconnect_code`] accepts,
/// `null`, 0 or 3000-4999.
fn disconnect_code_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
    let any_of = AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)).enum_values(Some([0])))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)).minimum(Some(3000)).maximum(Some(4999)))
        .build();
    Schema::AnyOf(any_of)
}

/// The schema of [`StreamPosition::offset`]: `null` or any u64 (the default
/// `int64` format would stop at `i64::MAX`, but the hub takes every u64).
fn offset_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    // A usize is 64 bits on the targets the hub builds for.
    let max = usize::try_from(u64::MAX).map_or(utoipa::Number::Float(u64::MAX as f64), utoipa::Number::UInt);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(max))
        .build()
}

/// An optional nested object (`since`, `disconnect`): `null` or a JSON object.
/// serde's derived `Deserialize` would also fill a struct from an array, by
/// position (`"since": [5, "epoch"]`), which the document does not allow.
fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNull<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOrNull<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an object or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_option(ObjectOrNull(std::marker::PhantomData))
}

/// An optional integer field: `null`, or a JSON number whose value is an integer
/// in `T`'s range, however it is written. JSON Schema (and so OpenAPI 3.1)
/// counts `10.0` and `1e1` as the integer 10, so a client may send them.
fn integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    use serde::de::{Error, Unexpected};
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let expected = std::any::type_name::<T>();
    let out_of_range = || D::Error::invalid_value(Unexpected::Other(&format!("number {number}")), &expected);
    if let Some(value) = number.as_u64() {
        return T::try_from(value).map(Some).map_err(|_| out_of_range());
    }
    if let Some(value) = number.as_i64() {
        return T::try_from(value).map(Some).map_err(|_| out_of_range());
    }
    // A float: whole, and within u64 or i64, it converts exactly (`as` only drops
    // the fraction, which is zero here).
    let value = number.as_f64().unwrap_or(f64::NAN);
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const MINUS_TWO_POW_63: f64 = -9_223_372_036_854_775_808.0;
    if value.fract() != 0.0 || !value.is_finite() {
        return Err(D::Error::invalid_type(Unexpected::Float(value), &expected));
    }
    let converted = if (0.0..TWO_POW_64).contains(&value) {
        T::try_from(value as u64).ok()
    } else if (MINUS_TWO_POW_63..0.0).contains(&value) {
        T::try_from(value as i64).ok()
    } else {
        None
    };
    converted.map(Some).ok_or_else(out_of_range)
}

/// A present field as its JSON text, `null` included (serde's `Option` would
/// read `null` as absent); an absent field is `None` through `#[serde(default)]`.
fn json_value<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// The bytes to publish: `b64data` decoded when not empty, else `data`'s JSON
/// text (`null` is the 4 bytes `null`), else 0 bytes for an empty `b64data`.
/// Neither field: 107 "missing field `data`".
fn payload(data: Option<Box<RawValue>>, b64data: Option<String>) -> Result<Bytes, ApiError> {
    match (b64data, data) {
        (Some(text), _) if !text.is_empty() => {
            base64::decode(&text).map(Bytes::from).map_err(|e| ApiError::BadRequest(format!("`b64data`: {e}")))
        }
        (_, Some(raw)) => Ok(Bytes::copy_from_slice(raw.get().as_bytes())),
        (Some(_), None) => Ok(Bytes::new()),
        (None, None) => Err(ApiError::bad_request("missing field `data`")),
    }
}

async fn publish(node: &Node, request: PublishRequest) -> Result<PublishResult, ApiError> {
    let channel = required_channel(&request.channel)?;
    let args = PublishArgs {
        data: payload(request.data, request.b64data)?,
        info: None,
        tags: request.tags.unwrap_or_default(),
        idempotency_key: request.idempotency_key.filter(|k| !k.is_empty()),
        delta: request.delta,
        // The engine continues the request's span (and its `traceparent`).
        ..Default::default()
    };
    Ok(node.publish(channel, args).await?.into())
}

async fn broadcast(node: &Node, request: BroadcastRequest) -> Result<BroadcastResult, ApiError> {
    if request.channels.is_empty() {
        return Err(ApiError::bad_request("`channels` must not be empty"));
    }
    let args = PublishArgs {
        data: payload(request.data, request.b64data)?,
        info: None,
        tags: request.tags.unwrap_or_default(),
        idempotency_key: request.idempotency_key.filter(|k| !k.is_empty()),
        delta: request.delta,
        // The engine continues the request's span (and its `traceparent`).
        ..Default::default()
    };
    let responses = stream::iter(request.channels.iter())
        .map(|channel| {
            let args = args.clone();
            async move {
                let published = match required_channel(channel) {
                    Ok(channel) => node.publish(channel, args).await.map_err(ApiError::from),
                    Err(error) => Err(error),
                };
                match published {
                    Ok(position) => Outcome::Result(PublishResult::from(position)),
                    Err(error) => Outcome::Error(error.body()),
                }
            }
        })
        .buffered(BROADCAST_CONCURRENCY)
        .collect()
        .await;
    Ok(BroadcastResult { responses })
}

async fn history(node: &Node, request: HistoryRequest) -> Result<HistoryResult, ApiError> {
    let channel = required_channel(&request.channel)?;
    let size = node.config.channel_options(channel).map_or(0, |o| o.history_size);
    let cap = i32::try_from(size).unwrap_or(i32::MAX);
    let limit = match request.limit.unwrap_or(0) {
        limit if limit < 0 => -1,
        limit => limit.min(cap),
    };
    let since = match request.since {
        None => None,
        Some(position) => {
            let epoch = match position.epoch.filter(|e| !e.is_empty()) {
                Some(epoch) => epoch,
                // As Centrifugo: a position without an epoch means the current one.
                None => node.history(channel, HistoryQuery::default()).await?.epoch,
            };
            Some((position.offset.unwrap_or(0), epoch))
        }
    };
    let query = HistoryQuery { limit, since, reverse: request.reverse.unwrap_or(false) };
    let page = node.history(channel, query).await?;
    Ok(HistoryResult {
        publications: page.publications.into_iter().map(Publication::from).collect(),
        epoch: page.epoch,
        offset: page.offset,
    })
}

// ---- results --------------------------------------------------------------------------

/// `{"result": ...}` or `{"error": ...}`: the body of a call, and each broadcast response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome<T> {
    Result(T),
    Error(ErrorBody),
}

/// The result of any method.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MethodResult {
    Publish(PublishResult),
    Broadcast(BroadcastResult),
    Presence(PresenceResult),
    PresenceStats(PresenceStatsResult),
    History(HistoryResult),
    Channels(ChannelsResult),
    Info(InfoResult),
    /// `{}`: subscribe, unsubscribe, disconnect, refresh, history_remove.
    Empty(Empty),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

/// Offset 0 and an empty epoch (a namespace without history) are left out.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResult {
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub offset: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub epoch: String,
}

impl From<Position> for PublishResult {
    fn from(position: Position) -> Self {
        PublishResult { offset: position.offset, epoch: position.epoch }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResult {
    pub responses: Vec<Outcome<PublishResult>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceResult {
    pub presence: BTreeMap<String, ClientInfo>,
}

/// `user` and `client` always; `conn_info` and `chan_info` as embedded JSON when set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientInfo {
    pub client: String,
    pub user: String,
    #[serde(serialize_with = "protocol::json::raw::serialize", skip_serializing_if = "Bytes::is_empty")]
    #[schema(value_type = Value, required = false)]
    pub conn_info: Bytes,
    #[serde(serialize_with = "protocol::json::raw::serialize", skip_serializing_if = "Bytes::is_empty")]
    #[schema(value_type = Value, required = false)]
    pub chan_info: Bytes,
}

impl From<proto::ClientInfo> for ClientInfo {
    fn from(info: proto::ClientInfo) -> Self {
        ClientInfo { client: info.client, user: info.user, conn_info: info.conn_info, chan_info: info.chan_info }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceStatsResult {
    pub num_clients: u32,
    pub num_users: u32,
}

/// `publications`, `epoch` and `offset` are always present.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResult {
    pub publications: Vec<Publication>,
    pub epoch: String,
    pub offset: u64,
}

/// `data` is the publication's JSON embedded as it was published (binary data
/// that is not JSON appears as a string of its lossy UTF-8 text); 0 bytes of
/// data leave `data` out, as the client protocol does.
#[derive(Debug, Serialize, ToSchema)]
pub struct Publication {
    #[serde(serialize_with = "protocol::json::raw::serialize", skip_serializing_if = "Bytes::is_empty")]
    #[schema(value_type = Value, required = false)]
    pub data: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub offset: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(required = false)]
    pub tags: BTreeMap<String, String>,
}

impl From<proto::Publication> for Publication {
    fn from(publication: proto::Publication) -> Self {
        Publication {
            data: publication.data,
            info: publication.info.map(ClientInfo::from),
            offset: publication.offset,
            tags: publication.tags,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsResult {
    pub channels: BTreeMap<String, ChannelInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelInfo {
    pub num_clients: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InfoResult {
    pub nodes: Vec<NodeInfo>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}
