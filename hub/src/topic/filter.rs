//! Tags filters: which publications a subscriber gets, by their tags.
//!
//! A client may send a filter with its subscribe (`SubscribeRequest.tf`, the
//! SDKs' `tagsFilter`) where its namespace has `allow_tags_filter`. The filter
//! is checked once, at subscribe ([`TagsFilter::new`]: a malformed one is
//! refused with 107 by the session); the topic then evaluates it for every
//! publication it fans out or recovers to that subscriber ([`TagsFilter::matches`]),
//! never failing.
//!
//! The operators are Centrifugo's: a leaf (`op` empty) compares the tag `key`
//! with `cmp`: `eq`, `neq`, `in`, `nin` (with `vals`), `ex`, `nex` (the key
//! is there or not), `sw`, `ew`, `ct` (starts with, ends with, contains), `lt`,
//! `lte`, `gt`, `gte` (both sides compared as decimal numbers; a tag that is
//! not a number does not match); `and`/`or` combine one or more child nodes,
//! `not` negates exactly one. A missing tag matches `neq`, `nin` and `nex`
//! only.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use protocol::proto::FilterNode;

/// Deepest nesting accepted (a bound on the work per publication and on recursion).
const MAX_DEPTH: usize = 16;
/// Most nodes in one filter.
const MAX_NODES: usize = 256;

/// A validated tags filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsFilter(Node);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Leaf { key: String, test: Test },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Eq(String),
    Neq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// A numeric comparison: true when `tag <cmp> value` has one of these orderings.
    Number(Decimal, &'static [Ordering]),
}

impl TagsFilter {
    /// Validates a filter from the wire; the error says what is wrong with it.
    pub fn new(node: &FilterNode) -> Result<TagsFilter, String> {
        let mut count = 0;
        build(node, 0, &mut count).map(TagsFilter)
    }

    /// Whether a publication with `tags` passes the filter.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.0.matches(tags)
    }
}

fn build(node: &FilterNode, depth: usize, count: &mut usize) -> Result<Node, String> {
    *count += 1;
    if depth >= MAX_DEPTH || *count > MAX_NODES {
        return Err(format!("a filter may nest {MAX_DEPTH} levels and hold {MAX_NODES} nodes at most"));
    }
    let children = |count: &mut usize| -> Result<Vec<Node>, String> {
        node.nodes.iter().map(|child| build(child, depth + 1, count)).collect()
    };
    match node.op.as_str() {
        "" => leaf(node).map(|test| Node::Leaf { key: node.key.clone(), test }),
        "and" | "or" if node.nodes.is_empty() => Err(format!("`{}` needs at least one child node", node.op)),
        "and" => children(count).map(Node::And),
        "or" => children(count).map(Node::Or),
        "not" if node.nodes.len() != 1 => Err("`not` needs exactly one child node".into()),
        "not" => children(count).map(|mut nodes| Node::Not(Box::new(nodes.remove(0)))),
        op => Err(format!("unknown op `{op}`")),
    }
}

fn leaf(node: &FilterNode) -> Result<Test, String> {
    let cmp = node.cmp.as_str();
    let one = || {
        if node.val.is_empty() {
            Err(format!("`{cmp}` needs `val`"))
        } else if !node.vals.is_empty() {
            Err(format!("`{cmp}` takes `val`, not `vals`"))
        } else {
            Ok(node.val.clone())
        }
    };
    let many = || {
        if node.vals.is_empty() {
            Err(format!("`{cmp}` needs a non-empty `vals`"))
        } else if !node.val.is_empty() {
            Err(format!("`{cmp}` takes `vals`, not `val`"))
        } else {
            Ok(node.vals.clone())
        }
    };
    let number = |orderings: &'static [Ordering]| {
        let value = one()?;
        // A value that is no number matches nothing (as Centrifugo has it).
        Ok::<_, String>(Test::Number(Decimal::parse(&value).unwrap_or(Decimal::NotANumber), orderings))
    };
    let test = match cmp {
        "" => return Err("a leaf node needs `cmp`".into()),
        "eq" => Test::Eq(one()?),
        "neq" => Test::Neq(one()?),
        "in" => Test::In(many()?),
        "nin" => Test::NotIn(many()?),
        "ex" | "nex" => {
            if !node.val.is_empty() || !node.vals.is_empty() {
                return Err(format!("`{cmp}` takes neither `val` nor `vals`"));
            }
            if cmp == "ex" {
                Test::Exists
            } else {
                Test::NotExists
            }
        }
        "sw" => Test::StartsWith(one()?),
        "ew" => Test::EndsWith(one()?),
        "ct" => Test::Contains(one()?),
        "lt" => number(&[Ordering::Less])?,
        "lte" => number(&[Ordering::Less, Ordering::Equal])?,
        "gt" => number(&[Ordering::Greater])?,
        "gte" => number(&[Ordering::Greater, Ordering::Equal])?,
        other => return Err(format!("unknown cmp `{other}`")),
    };
    if node.key.is_empty() && !matches!(test, Test::Exists | Test::NotExists) {
        return Err(format!("`{cmp}` needs `key`"));
    }
    Ok(test)
}

impl Node {
    fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.matches(tags)),
            Node::Or(nodes) => nodes.iter().any(|n| n.matches(tags)),
            Node::Not(node) => !node.matches(tags),
            Node::Leaf { key, test } => {
                let tag = tags.get(key).map(String::as_str);
                match test {
                    Test::Eq(v) => tag == Some(v.as_str()),
                    Test::Neq(v) => tag != Some(v.as_str()),
                    // A missing tag compares as the empty string, as in Centrifugo.
                    Test::In(vs) => vs.iter().any(|v| v == tag.unwrap_or_default()),
                    Test::NotIn(vs) => !vs.iter().any(|v| v == tag.unwrap_or_default()),
                    Test::Exists => tag.is_some(),
                    Test::NotExists => tag.is_none(),
                    Test::StartsWith(v) => tag.is_some_and(|t| t.starts_with(v.as_str())),
                    Test::EndsWith(v) => tag.is_some_and(|t| t.ends_with(v.as_str())),
                    Test::Contains(v) => tag.is_some_and(|t| t.contains(v.as_str())),
                    Test::Number(value, orderings) => tag
                        .and_then(Decimal::parse)
                        .and_then(|t| t.compare(value))
                        .is_some_and(|ordering| orderings.contains(&ordering)),
                }
            }
        }
    }
}

/// A decimal number as text (`-12.50`), compared exactly, digit by digit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decimal {
    Number {
        negative: bool,
        /// Integer digits without leading zeros.
        integer: String,
        /// Fraction digits without trailing zeros.
        fraction: String,
    },
    /// A comparison value that is not a number: nothing compares with it.
    NotANumber,
}

impl Decimal {
    /// `[+-]digits[.digits]` (at least one digit); anything else is `None`.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (integer, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.len() + fraction.len() == 0 || !digits(integer) || !digits(fraction) {
            return None;
        }
        let integer = integer.trim_start_matches('0').to_string();
        let fraction = fraction.trim_end_matches('0').to_string();
        let zero = integer.is_empty() && fraction.is_empty();
        Some(Decimal::Number { negative: negative && !zero, integer, fraction })
    }

    fn compare(&self, other: &Decimal) -> Option<Ordering> {
        let (
            Decimal::Number { negative: a_neg, integer: a_int, fraction: a_frac },
            Decimal::Number { negative: b_neg, integer: b_int, fraction: b_frac },
        ) = (self, other)
        else {
            return None;
        };
        let magnitude = a_int.len().cmp(&b_int.len()).then_with(|| a_int.cmp(b_int)).then_with(|| a_frac.cmp(b_frac));
        Some(match (a_neg, b_neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(key: &str, cmp: &str, val: &str) -> FilterNode {
        FilterNode { key: key.into(), cmp: cmp.into(), val: val.into(), ..Default::default() }
    }

    fn set(key: &str, cmp: &str, vals: &[&str]) -> FilterNode {
        FilterNode {
            key: key.into(),
            cmp: cmp.into(),
            vals: vals.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }

    fn op(op: &str, nodes: Vec<FilterNode>) -> FilterNode {
        FilterNode { op: op.into(), nodes, ..Default::default() }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn passes(filter: &FilterNode, pairs: &[(&str, &str)]) -> bool {
        TagsFilter::new(filter).expect("a valid filter").matches(&tags(pairs))
    }

    #[test]
    fn leaves_compare_one_tag() {
        let btc = [("ticker", "BTC"), ("price", "50000.5")];
        assert!(passes(&leaf("ticker", "eq", "BTC"), &btc));
        assert!(!passes(&leaf("ticker", "eq", "ETH"), &btc));
        assert!(passes(&leaf("ticker", "neq", "ETH"), &btc));
        assert!(passes(&leaf("missing", "neq", "x"), &btc), "a missing tag is not equal");
        assert!(passes(&set("ticker", "in", &["ETH", "BTC"]), &btc));
        assert!(!passes(&set("ticker", "nin", &["ETH", "BTC"]), &btc));
        assert!(passes(&FilterNode { key: "price".into(), cmp: "ex".into(), ..Default::default() }, &btc));
        assert!(passes(&FilterNode { key: "volume".into(), cmp: "nex".into(), ..Default::default() }, &btc));
        assert!(passes(&leaf("ticker", "sw", "B"), &btc) && passes(&leaf("ticker", "ew", "TC"), &btc));
        assert!(passes(&leaf("ticker", "ct", "T"), &btc) && !passes(&leaf("missing", "ct", "T"), &btc));
        assert!(passes(&leaf("price", "gt", "50000"), &btc));
        assert!(passes(&leaf("price", "gte", "50000.50"), &btc), "trailing zeros do not count");
        assert!(!passes(&leaf("price", "lt", "50000.5"), &btc));
        assert!(passes(&leaf("price", "lte", "50000.5"), &btc));
        assert!(passes(&leaf("price", "lt", "100000"), &btc), "by value, not as text");
        assert!(passes(&leaf("price", "gt", "-1"), &btc));
        assert!(!passes(&leaf("ticker", "gt", "1"), &btc), "a tag that is no number does not match");
        assert!(!passes(&leaf("price", "gt", "abc"), &btc), "nor does a value that is no number");
        assert!(!passes(&leaf("missing", "lt", "1"), &btc));
    }

    #[test]
    fn decimals_compare_exactly() {
        let d = |s: &str| Decimal::parse(s).expect("a number");
        assert_eq!(d("-0").compare(&d("0.000")), Some(Ordering::Equal));
        assert_eq!(d("007.10").compare(&d("7.1")), Some(Ordering::Equal));
        assert_eq!(d("-2").compare(&d("-10")), Some(Ordering::Greater));
        assert_eq!(d("0.1").compare(&d("0.09")), Some(Ordering::Greater));
        assert_eq!(d("12345678901234567890.1").compare(&d("12345678901234567890.01")), Some(Ordering::Greater));
        assert_eq!(d(".5").compare(&d("0.5")), Some(Ordering::Equal));
        for bad in ["", "-", ".", "1e5", "1.2.3", "NaN", "inf", " 1"] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn and_or_not_combine_nodes() {
        let filter = op(
            "and",
            vec![
                leaf("ticker", "eq", "BTC"),
                op("not", vec![leaf("price", "lt", "100")]),
                op("or", vec![leaf("side", "eq", "buy"), leaf("side", "eq", "sell")]),
            ],
        );
        assert!(passes(&filter, &[("ticker", "BTC"), ("price", "150"), ("side", "buy")]));
        assert!(!passes(&filter, &[("ticker", "BTC"), ("price", "50"), ("side", "buy")]));
        assert!(!passes(&filter, &[("ticker", "BTC"), ("price", "150"), ("side", "hold")]));
    }

    #[test]
    fn malformed_filters_are_refused_with_a_reason() {
        let deep = (0..MAX_DEPTH).fold(leaf("a", "eq", "b"), |node, _| op("not", vec![node]));
        for (filter, reason) in [
            (FilterNode::default(), "a leaf node needs `cmp`"),
            (leaf("a", "eq", ""), "`eq` needs `val`"),
            (leaf("", "eq", "b"), "`eq` needs `key`"),
            (FilterNode { vals: vec!["x".into()], ..leaf("a", "eq", "b") }, "takes `val`, not `vals`"),
            (set("a", "in", &[]), "`in` needs a non-empty `vals`"),
            (FilterNode { val: "x".into(), ..set("a", "nin", &["y"]) }, "takes `vals`, not `val`"),
            (FilterNode { val: "x".into(), ..leaf("a", "ex", "") }, "takes neither"),
            (leaf("a", "like", "b"), "unknown cmp `like`"),
            (op("xor", vec![leaf("a", "eq", "b")]), "unknown op `xor`"),
            (op("and", vec![]), "`and` needs at least one child"),
            (op("not", vec![leaf("a", "eq", "b"), leaf("a", "eq", "c")]), "`not` needs exactly one"),
            (op("or", vec![leaf("a", "bad", "b")]), "unknown cmp `bad`"),
            (deep, "may nest"),
        ] {
            let error = TagsFilter::new(&filter).expect_err(reason);
            assert!(error.contains(reason), "{error} / {reason}");
        }
        // `ex`/`nex` need no key.
        assert!(TagsFilter::new(&FilterNode { cmp: "ex".into(), ..Default::default() }).is_ok());
    }
}
