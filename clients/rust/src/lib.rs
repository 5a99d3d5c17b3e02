//! hub_client: a small async client for the hub (Centrifugo client protocol v2
//! over WebSocket), for Rust backends and the load generator.
//!
//! The parts:
//! - [`Config`]: where to connect, with which encoding, token, source address
//!   and reconnect backoff.
//! - [`Client`]: a cheap handle to one connection: [`Client::subscribe`],
//!   [`Client::publish`], [`Client::unsubscribe`], [`Client::reconnect`],
//!   [`Client::close`].
//! - [`Event`]: what the connection reports (connected, subscribed with the
//!   recovery outcome, publications, disconnects), through a **bounded**
//!   channel: when the application reads events slower than they arrive, the
//!   connection stops reading its socket (TCP backpressure); the hub then
//!   closes it with 3008 "slow" once its outbox is full, and the client
//!   reconnects and recovers from history. Nothing is dropped silently.
//!
//! Guarantees: publications of one channel are delivered in offset order. On
//! every reconnect each subscription is renewed with `recover` and the last
//! offset and epoch seen, so a channel with history delivers exactly what was
//! missed ([`Event::Subscribed`] says `recovered: true`), or says
//! `recovered: false` when it cannot. Reconnects wait a jittered, exponentially
//! growing delay; a disconnect code in 3500-3999 / 4500-4999 ends the client.

mod client;
mod run;

pub use client::{Client, Config, Error, SubscribeOptions, Subscribed};
pub use protocol::Encoding;

use bytes::Bytes;

/// What a connection reports to its application, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The connect command succeeded (after every (re)connect).
    Connected { client: String },
    /// The connection ended. `reconnect` says whether the client will try again.
    Disconnected { code: u16, reason: String, reconnect: bool },
    /// A subscription is (again) in place; after a reconnect `was_recovering`
    /// is true and `recovered` says whether nothing was missed.
    Subscribed { channel: String, recovered: bool, was_recovering: bool, epoch: String, offset: u64 },
    /// The server ended a subscription (`resubscribe`: the client renews it).
    Unsubscribed { channel: String, code: u32, reason: String, resubscribe: bool },
    /// A publication, live or recovered.
    Publication { channel: String, data: Bytes, offset: u64 },
    /// A join or leave push (channels with `join_leave`).
    Presence { channel: String, joined: bool, client: String, user: String },
}
