//! Fossil delta encoding: what a delta subscriber receives as `data` when
//! `Publication.delta` is true (Centrifugo's `delta: "fossil"`).
//!
//! The format is the one of the Fossil SCM ("delta_format.wiki"); the SDKs
//! carry a decoder for it (centrifuge-js `applyDelta`). A delta is text when
//! both inputs are text:
//!
//! ```text
//! <target length>\n  then any of  <n>@<offset>,  (copy n bytes of the source from offset)
//!                                <n>:<n bytes>   (insert these n bytes)
//!                    then        <checksum>;     (of the target)
//! ```
//!
//! Numbers are written in base 64 with the digits `0-9 A-Z _ a-z ~`, most
//! significant first. The encoder is the Fossil one (a rolling hash over
//! 16-byte windows of the target, looked up among 16-byte blocks of the
//! source, matches extended both ways, a copy only where it is shorter than
//! the text it replaces); written here from the published description. It
//! never panics, whatever the input; [`apply`] returns an error for any
//! malformed delta.

/// The window of the rolling hash and the block size of the source index.
const NHASH: usize = 16;
/// How many candidate blocks of one hash bucket are tried per position.
const MAX_CANDIDATES: usize = 250;

const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/// Why a delta could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FossilError {
    #[error("delta ends early")]
    Truncated,
    #[error("unexpected byte {0:#04x} in delta")]
    Unexpected(u8),
    #[error("copy outside the source")]
    CopyOutOfRange,
    #[error("output longer than the size the delta announces")]
    TooLong,
    #[error("output size differs from the size the delta announces")]
    SizeMismatch,
    #[error("checksum mismatch")]
    Checksum,
}

/// The delta that turns `source` into `target`.
pub fn delta(source: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() / 4 + 32);
    put_int(&mut out, target.len());
    out.push(b'\n');
    if source.len() <= NHASH {
        // No block of the source to match: the whole target as one insert.
        insert(&mut out, target);
        put_int(&mut out, checksum(target) as usize);
        out.push(b';');
        return out;
    }
    // Index the source: block b covers source[b*NHASH..][..NHASH]. `heads[h]`
    // is the last block with hash h, `chain[b]` the block before b with the
    // same hash (usize::MAX ends a chain).
    let buckets = source.len() / NHASH;
    let mut chain = vec![usize::MAX; buckets];
    let mut heads = vec![usize::MAX; buckets];
    let mut i = 0;
    while i + NHASH < source.len() {
        let h = Rolling::new(&source[i..i + NHASH]).value() as usize % buckets;
        chain[i / NHASH] = heads[h];
        heads[h] = i / NHASH;
        i += NHASH;
    }
    let mut base = 0;
    while base + NHASH < target.len() {
        let mut hash = Rolling::new(&target[base..base + NHASH]);
        let mut i = 0;
        loop {
            // (count, source offset, literal bytes before the copy)
            let mut best: Option<(usize, usize, usize)> = None;
            let mut block = heads[hash.value() as usize % buckets];
            let mut tries = MAX_CANDIDATES;
            while block != usize::MAX && tries > 0 {
                tries -= 1;
                let at = block * NHASH;
                // Forward from the window's start, then backward (not past `base`).
                let forward = source[at..].iter().zip(&target[base + i..]).take_while(|(s, t)| s == t).count();
                let backward = (1..=at.min(i)).take_while(|k| source[at - k] == target[base + i - k]).count();
                if forward > 0 {
                    let offset = at - backward;
                    let count = forward + backward;
                    let literal = i - backward;
                    let cost = digit_count(literal) + digit_count(count) + digit_count(offset) + 3;
                    if count >= cost && best.is_none_or(|(c, _, _)| count > c) {
                        best = Some((count, offset, literal));
                    }
                }
                block = chain[block];
            }
            if let Some((count, offset, literal)) = best {
                if literal > 0 {
                    insert(&mut out, &target[base..base + literal]);
                    base += literal;
                }
                base += count;
                put_int(&mut out, count);
                out.push(b'@');
                put_int(&mut out, offset);
                out.push(b',');
                break;
            }
            if base + i + NHASH >= target.len() {
                insert(&mut out, &target[base..]);
                base = target.len();
                break;
            }
            hash.roll(target[base + i + NHASH]);
            i += 1;
        }
    }
    if base < target.len() {
        insert(&mut out, &target[base..]);
    }
    put_int(&mut out, checksum(target) as usize);
    out.push(b';');
    out
}

/// Applies `delta` to `source`: the target it was made from.
pub fn apply(source: &[u8], delta: &[u8]) -> Result<Vec<u8>, FossilError> {
    let mut reader = Reader { bytes: delta, at: 0 };
    let size = reader.int()?;
    reader.expect(b'\n')?;
    let mut out = Vec::with_capacity(size.min(delta.len().saturating_mul(64)).min(1 << 24));
    loop {
        let n = reader.int()?;
        match reader.next()? {
            b'@' => {
                let offset = reader.int()?;
                reader.expect(b',')?;
                let end =
                    offset.checked_add(n).filter(|&end| end <= source.len()).ok_or(FossilError::CopyOutOfRange)?;
                if out.len() + n > size {
                    return Err(FossilError::TooLong);
                }
                out.extend_from_slice(&source[offset..end]);
            }
            b':' => {
                if out.len() + n > size {
                    return Err(FossilError::TooLong);
                }
                out.extend_from_slice(reader.take(n)?);
            }
            b';' => {
                if out.len() != size {
                    return Err(FossilError::SizeMismatch);
                }
                if n != checksum(&out) as usize {
                    return Err(FossilError::Checksum);
                }
                return Ok(out);
            }
            other => return Err(FossilError::Unexpected(other)),
        }
    }
}

fn insert(out: &mut Vec<u8>, bytes: &[u8]) {
    put_int(out, bytes.len());
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, mut value: usize) {
    if value == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [0u8; 11];
    let mut n = 0;
    while value > 0 {
        digits[n] = DIGITS[value & 63];
        value >>= 6;
        n += 1;
    }
    out.extend(digits[..n].iter().rev());
}

/// How many base-64 digits `value` takes.
fn digit_count(value: usize) -> usize {
    let mut digits = 1;
    let mut limit = 64usize;
    while value >= limit && digits < 11 {
        digits += 1;
        limit = limit.saturating_mul(64);
    }
    digits
}

/// The sum of the input read as big-endian 32-bit words (the last one padded
/// with zeros), wrapping.
fn checksum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(4);
    let mut sum = 0u32;
    for word in &mut chunks {
        sum = sum.wrapping_add(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let mut last = [0u8; 4];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    sum.wrapping_add(u32::from_be_bytes(last))
}

/// Fossil's rolling hash over a window of `NHASH` bytes (two 16-bit sums).
struct Rolling {
    a: u16,
    b: u16,
    window: [u8; NHASH],
    at: usize,
}

impl Rolling {
    /// `bytes` holds exactly `NHASH` bytes.
    fn new(bytes: &[u8]) -> Self {
        let mut window = [0u8; NHASH];
        window.copy_from_slice(&bytes[..NHASH]);
        let mut a = u16::from(window[0]);
        let mut b = a;
        for &byte in &window[1..] {
            a = a.wrapping_add(u16::from(byte));
            b = b.wrapping_add(a);
        }
        Rolling { a, b, window, at: 0 }
    }

    fn roll(&mut self, byte: u8) {
        let old = u16::from(self.window[self.at]);
        self.window[self.at] = byte;
        self.at = (self.at + 1) & (NHASH - 1);
        self.a = self.a.wrapping_sub(old).wrapping_add(u16::from(byte));
        self.b = self.b.wrapping_sub(old.wrapping_mul(NHASH as u16)).wrapping_add(self.a);
    }

    fn value(&self) -> u32 {
        u32::from(self.a) | (u32::from(self.b) << 16)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<u8, FossilError> {
        let byte = *self.bytes.get(self.at).ok_or(FossilError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn expect(&mut self, wanted: u8) -> Result<(), FossilError> {
        match self.next()? {
            byte if byte == wanted => Ok(()),
            byte => Err(FossilError::Unexpected(byte)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FossilError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or(FossilError::Truncated)?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// A base-64 number (at least one digit).
    fn int(&mut self) -> Result<usize, FossilError> {
        let start = self.at;
        let mut value = 0usize;
        while let Some(&byte) = self.bytes.get(self.at) {
            let Some(digit) = DIGITS.iter().position(|&d| d == byte) else { break };
            value = value.checked_mul(64).and_then(|v| v.checked_add(digit)).ok_or(FossilError::TooLong)?;
            self.at += 1;
        }
        if self.at == start {
            return Err(match self.bytes.get(self.at) {
                Some(&byte) => FossilError::Unexpected(byte),
                None => FossilError::Truncated,
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Outputs of the reference JavaScript encoder (npm `fossil-delta` 2.0.0,
    /// a port of Fossil's C; its decoder is the one centrifuge-js uses) for
    /// these inputs: ours must be byte for byte the same.
    const KNOWN: &[(&str, &str, &str)] = &[
        ("abc", "abcdef", "6\n6:abcdef36n6D_;"),
        (
            r#"{"id":1,"name":"Alice","score":100,"tags":["a","b","c"],"text":"lorem ipsum dolor sit amet"}"#,
            r#"{"id":1,"name":"Alice","score":101,"tags":["a","b","c"],"text":"lorem ipsum dolor sit amet"}"#,
            "1S\nX@0,1:1v@Y,_yMM~;",
        ),
        (
            "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.",
            "A quick brown fox jumps over the lazy cat. The quick brown fox jumps over the lazy dog!!",
            "1O\n1:Aa@l,5:cat. g@0,2:!!vOdDN;",
        ),
        ("0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "zyx", "3\n3:zyx1vUNW0;"),
    ];

    #[test]
    fn known_vectors() {
        for (source, target, expected) in KNOWN {
            let made = delta(source.as_bytes(), target.as_bytes());
            assert_eq!(String::from_utf8_lossy(&made), *expected, "{source} -> {target}");
            assert_eq!(apply(source.as_bytes(), expected.as_bytes()).unwrap(), target.as_bytes());
        }
    }

    #[test]
    fn numbers_are_base_64() {
        let mut out = Vec::new();
        for n in [0, 9, 10, 63, 64, 4095, 4096] {
            put_int(&mut out, n);
            out.push(b' ');
        }
        assert_eq!(out, b"0 9 A ~ 10 ~~ 100 ");
        assert_eq!((digit_count(0), digit_count(63), digit_count(64), digit_count(4096)), (1, 1, 2, 3));
    }

    #[test]
    fn checksum_pads_the_last_word() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(b"\x00\x00\x00\x01\x02"), 1 + 0x0200_0000);
        assert_eq!(checksum(&[0xff; 8]), 0xffff_fffe);
    }

    #[test]
    fn malformed_deltas_are_errors() {
        let source = b"0123456789abcdefghijklmnopqrstuvwxyz";
        assert_eq!(apply(source, b""), Err(FossilError::Truncated));
        assert_eq!(apply(source, b"3\n"), Err(FossilError::Truncated));
        assert_eq!(apply(source, b"3\n3:ab"), Err(FossilError::Truncated));
        assert_eq!(apply(source, b"3\n3@100,0;"), Err(FossilError::CopyOutOfRange));
        assert_eq!(apply(source, b"3\n4:abcd0;"), Err(FossilError::TooLong));
        assert_eq!(apply(source, b"3\n2:ab0;"), Err(FossilError::SizeMismatch));
        assert_eq!(apply(source, b"3\n3:abc0;"), Err(FossilError::Checksum));
        assert_eq!(apply(source, b"3\n3!"), Err(FossilError::Unexpected(b'!')));
        assert_eq!(apply(source, b"~~~~~~~~~~~~~~~~\n"), Err(FossilError::TooLong));
    }

    proptest! {
        #[test]
        fn delta_applies_back(source in proptest::collection::vec(any::<u8>(), 0..600), edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8)) {
            let mut target = source.clone();
            for (at, byte) in edits {
                if target.is_empty() { target.push(byte); continue; }
                let at = at as usize % target.len();
                match byte % 3 { 0 => target[at] = byte, 1 => target.insert(at, byte), _ => { target.remove(at); } }
            }
            let d = delta(&source, &target);
            prop_assert_eq!(apply(&source, &d).unwrap(), target);
        }

        #[test]
        fn apply_never_panics(source in proptest::collection::vec(any::<u8>(), 0..64), d in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = apply(&source, &d);
        }
    }
}
