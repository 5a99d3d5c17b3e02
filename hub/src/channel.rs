//! Channel names: validation and namespace resolution.
//!
//! A channel `ns:rest` belongs to namespace `ns` and takes its options from
//! `[namespaces.ns]`; a channel without `:` takes the top-level `[channel]`
//! options. An unknown namespace, an empty or over-long name, or a name with
//! control characters is refused with error 102 "unknown channel".
//!
//! User-limited channels (namespaces with `allow_user_limited_channels`): a
//! name holding `#` is for the users listed after its last `#`, separated by
//! `,` (`dialog#42,43`: users 42 and 43), as Centrifugo's user boundary and
//! separator. [`Channel::client_may_subscribe`] is the one rule for a client
//! subscribing (or reading presence and history) without a token.

use std::fmt;
use std::sync::Arc;

use protocol::codes::{self, ErrorCode};

use crate::config::{ChannelOptions, Config};

/// A validated channel name; cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Arc<str>);

impl Channel {
    /// Validates `name` against the configuration and returns it with its options.
    pub fn parse<'c>(name: &str, config: &'c Config) -> Result<(Channel, &'c ChannelOptions), ErrorCode> {
        if name.is_empty() || name.len() > config.max_channel_length || name.chars().any(char::is_control) {
            return Err(codes::UNKNOWN_CHANNEL);
        }
        let namespace = name.split_once(':').map(|(ns, _)| ns);
        let options = config.namespace(namespace).ok_or(codes::UNKNOWN_CHANNEL)?;
        Ok((Channel(Arc::from(name)), options))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// The users of a user-limited channel (the part after its last `#`,
    /// split at `,`); `None` when the name holds no `#`.
    pub fn limited_to(&self) -> Option<impl Iterator<Item = &str>> {
        self.0.rsplit_once('#').map(|(_, users)| users.split(','))
    }

    /// Whether a client of `user` may subscribe to this channel by itself
    /// (no subscription token): in a namespace with user-limited channels, a
    /// name with `#` only for the users it lists (never anonymous ones); any
    /// other channel when the namespace has `allow_subscribe`.
    pub fn client_may_subscribe(&self, options: &ChannelOptions, user: &str) -> bool {
        match self.limited_to() {
            Some(mut users) if options.allow_user_limited_channels => {
                !user.is_empty() && users.any(|allowed| allowed == user)
            }
            _ => options.allow_subscribe,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_resolve_and_unknown_ones_are_refused() {
        let mut config = Config::default();
        let chat = ChannelOptions { presence: true, ..ChannelOptions::default() };
        config.namespaces.insert("chat".into(), chat.clone());
        assert_eq!(Channel::parse("chat:room", &config).unwrap().1, &chat);
        assert_eq!(Channel::parse("news", &config).unwrap().1, &config.channel);
        assert_eq!(Channel::parse("nope:room", &config).unwrap_err(), codes::UNKNOWN_CHANNEL);
        assert_eq!(Channel::parse("", &config).unwrap_err(), codes::UNKNOWN_CHANNEL);
        assert_eq!(Channel::parse("a\nb", &config).unwrap_err(), codes::UNKNOWN_CHANNEL);
        let long = "x".repeat(config.max_channel_length + 1);
        assert_eq!(Channel::parse(&long, &config).unwrap_err(), codes::UNKNOWN_CHANNEL);
    }

    #[test]
    fn user_limited_channels_admit_the_users_they_list() {
        let limited = ChannelOptions { allow_user_limited_channels: true, allow_subscribe: true, ..Default::default() };
        let plain = ChannelOptions { allow_subscribe: true, ..Default::default() };
        let closed = ChannelOptions::default();
        let dialog = Channel(Arc::from("dialog:chat#42,43"));
        assert_eq!(dialog.limited_to().map(|u| u.collect::<Vec<_>>()), Some(vec!["42", "43"]));
        assert!(dialog.client_may_subscribe(&limited, "42"));
        assert!(dialog.client_may_subscribe(&limited, "43"));
        assert!(!dialog.client_may_subscribe(&limited, "4"), "whole ids only");
        assert!(!dialog.client_may_subscribe(&limited, "44"), "allow_subscribe does not open it");
        assert!(!dialog.client_may_subscribe(&limited, ""), "never anonymous");
        // The last `#` counts: `a#1#2` is for user 2.
        let twice = Channel(Arc::from("a#1#2"));
        assert!(twice.client_may_subscribe(&limited, "2") && !twice.client_may_subscribe(&limited, "1"));
        // `#` has no meaning where the namespace does not allow user-limited channels.
        assert!(dialog.client_may_subscribe(&plain, "44"));
        assert!(!dialog.client_may_subscribe(&closed, "42"));
        let news = Channel(Arc::from("news"));
        assert_eq!(news.limited_to().map(|u| u.count()), None);
        assert!(news.client_may_subscribe(&limited, "") && !news.client_may_subscribe(&closed, "42"));
    }
}
