//! Channel name patterns for the `channels` method.
//!
//! `*` matches any run of characters (empty included, `:` included), `?`
//! matches exactly one character, every other character matches itself. An
//! empty pattern matches every channel. Matching is linear in memory and at
//! worst quadratic in time; no input panics.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // The last `*` seen and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry after it.
                Some((star_p, star_n)) => {
                    star = Some((star_p, star_n + 1));
                    p = star_p + 1;
                    n = star_n + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
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
