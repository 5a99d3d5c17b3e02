//! Channel name patterns for the `channels` method.
//!
//! `*` matches any run of characters (empty included, `:` included), `?`
//! matches exactly one character, every other character matches itself
//! (case-sensitive, no escapes). An empty pattern matches every channel.
//! The matching is the `wildmatch` crate's (linear in memory, at worst
//! quadratic in time, no panics); this module adds only the empty-pattern rule.

use wildmatch::WildMatch;

/// A compiled pattern: built once per request, tested against every channel.
pub struct ChannelPattern(Option<WildMatch>);

impl ChannelPattern {
    pub fn new(pattern: &str) -> Self {
        Self((!pattern.is_empty()).then(|| WildMatch::new(pattern)))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|pattern| pattern.matches(name))
    }
}

/// Whether `name` matches `pattern`.
#[cfg(test)]
fn matches(pattern: &str, name: &str) -> bool {
    ChannelPattern::new(pattern).matches(name)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("", "anything"));
        assert!(matches("*", ""));
        assert!(matches("*", "chat:room"));
        assert!(matches("chat:*", "chat:room"));
        assert!(matches("chat:*", "chat:"));
        assert!(!matches("chat:*", "chats"));
        assert!(matches("*:room", "chat:room"));
        assert!(matches("c*t:r*m", "chat:room"));
        assert!(matches("c*t:r*m", "cat:rm"));
        assert!(!matches("c*t:r*m", "chat:rooms"));
        assert!(matches("room?", "room1"));
        assert!(!matches("room?", "room"));
        assert!(!matches("room?", "room12"));
        assert!(matches("news", "news"));
        assert!(!matches("news", "news2"));
        assert!(matches("**a**", "bab"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(matches("é*", "été"));
    }
}
