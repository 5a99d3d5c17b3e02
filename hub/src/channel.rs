//! Channel names: validation and namespace resolution.
//!
//! A channel `ns:rest` belongs to namespace `ns` and takes its options from
//! `[namespaces.ns]`; a channel without `:` takes the top-level `[channel]`
//! options. An unknown namespace, an empty or over-long name, or a name with
//! control characters is refused with error 102 "unknown channel".

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
}
