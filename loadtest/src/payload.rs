//! Payloads that measure themselves, and the scanner that finds them in
//! whatever framing a server wraps them in.
//!
//! A payload is a JSON array of integers: `[7777,seq,sent_us,channel,0,0,...]`
//! padded with `,0` to the wanted size. Integers only, so it survives every
//! peer unchanged: embedded raw (hub), re-serialized by `JSON.parse` /
//! `JSON.stringify` (Node, Socket.IO), or quoted inside a JSON string (Pusher).
//! `seq` counts publications per channel from 1, `sent_us` is the publisher's
//! wall clock in microseconds (same machine, so one clock), `channel` is the
//! channel index.

use std::time::{SystemTime, UNIX_EPOCH};

const MARKER: &[u8] = b"[7777,";

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A payload of about `size` bytes (at least the header).
pub fn make(seq: u64, channel: u32, size: usize) -> String {
    let mut text = format!("[7777,{seq},{},{channel}", now_us());
    // Room left before the closing bracket, filled with ",0" pairs; an odd
    // room starts with ",10" (three bytes) so the size comes out exact.
    let mut room = size.saturating_sub(text.len() + 1);
    if room % 2 == 1 && room >= 3 {
        text.push_str(",10");
        room -= 3;
    }
    for _ in 0..room / 2 {
        text.push_str(",0");
    }
    text.push(']');
    text
}

/// One payload found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub seq: u64,
    pub sent_us: u64,
    pub channel: u32,
}

/// Finds payloads in a byte stream. Frames of stream protocols (NATS) may cut
/// a payload in two: the unfinished tail is kept and joined to the next frame.
#[derive(Debug, Default)]
pub struct Scanner {
    carry: Vec<u8>,
}

impl Scanner {
    pub fn scan(&mut self, data: &[u8], mut found: impl FnMut(Sample)) {
        if self.carry.is_empty() {
            if let Some(tail) = scan_complete(data, &mut found) {
                self.carry.extend_from_slice(&data[tail..]);
            }
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(data);
            if let Some(tail) = scan_complete(&joined, &mut found) {
                self.carry.extend_from_slice(&joined[tail..]);
            }
        }
    }
}

/// Scans `data`; returns where an unfinished payload starts, if one does.
fn scan_complete(data: &[u8], found: &mut impl FnMut(Sample)) -> Option<usize> {
    let finder = memchr::memmem::find_iter(data, MARKER);
    for start in finder {
        let mut at = start + MARKER.len();
        let mut fields = [0u64; 3];
        let mut parsed = 0;
        let mut complete = true;
        while parsed < 3 {
            let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            let end = at + digits;
            if end >= data.len() {
                complete = false;
                break;
            }
            let terminator = data[end] == b',' || (parsed == 2 && data[end] == b']');
            if digits == 0 || !terminator {
                break;
            }
            fields[parsed] = std::str::from_utf8(&data[at..end]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            parsed += 1;
            at = end + 1;
        }
        if parsed == 3 {
            found(Sample { seq: fields[0], sent_us: fields[1], channel: fields[2] as u32 });
        }
        if !complete {
            return Some(start);
        }
    }
    // A marker cut at the very end of the frame.
    let keep = MARKER.len() - 1;
    let tail_from = data.len().saturating_sub(keep);
    (tail_from..data.len()).find(|&i| MARKER.starts_with(&data[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(scanner: &mut Scanner, data: &[u8]) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        scanner.scan(data, |s| out.push((s.seq, s.channel)));
        out
    }

    #[test]
    fn payloads_have_the_size_asked_and_are_json() {
        for size in [20, 99, 100, 101, 256] {
            let text = make(12345, 7, size);
            assert!(text.len() == size || size < 30, "{size}: {}", text.len());
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value[1], 12345);
            assert_eq!(value[3], 7);
        }
    }

    #[test]
    fn finds_payloads_in_every_framing() {
        let p1 = make(1, 3, 100);
        let p2 = make(2, 3, 100);
        let hub = format!("{{\"push\":{{\"channel\":\"c\",\"pub\":{{\"data\":{p1},\"offset\":1}}}}}}\n{{}}\n{{\"push\":{{\"pub\":{{\"data\":{p2}}}}}}}");
        assert_eq!(all(&mut Scanner::default(), hub.as_bytes()), vec![(1, 3), (2, 3)]);
        let pusher = format!("{{\"event\":\"m\",\"data\":\"{p1}\"}}");
        assert_eq!(all(&mut Scanner::default(), pusher.as_bytes()), vec![(1, 3)]);
    }

    #[test]
    fn joins_payloads_cut_across_frames() {
        let stream = format!("MSG c 1 100\r\n{}\r\nMSG c 1 100\r\n{}\r\n", make(1, 0, 100), make(2, 0, 100));
        for cut in 0..stream.len() {
            let mut scanner = Scanner::default();
            let mut got = all(&mut scanner, &stream.as_bytes()[..cut]);
            got.extend(all(&mut scanner, &stream.as_bytes()[cut..]));
            assert_eq!(got, vec![(1, 0), (2, 0)], "cut at {cut}");
        }
    }
}
