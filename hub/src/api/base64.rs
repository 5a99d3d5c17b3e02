//! Standard base64 (RFC 4648 alphabet `A-Za-z0-9+/`) decoding for the `b64data`
//! field, with or without `=` padding. Any other byte is refused with its
//! position; no input panics.

/// Why a `b64data` value is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("invalid base64 byte at position {0}")]
    InvalidByte(usize),
    #[error("invalid base64 length")]
    InvalidLength,
}

fn sextet(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Decodes `text`; padding is optional, but only at the end and at most two `=`.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    let unpadded = bytes.strip_suffix(b"==").or_else(|| bytes.strip_suffix(b"=")).unwrap_or(bytes);
    if bytes.len() != unpadded.len() && !bytes.len().is_multiple_of(4) {
        return Err(Base64Error::InvalidLength);
    }
    if unpadded.len() % 4 == 1 {
        return Err(Base64Error::InvalidLength);
    }
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for (at, &byte) in unpadded.iter().enumerate() {
        buffer = (buffer << 6) | sextet(byte).ok_or(Base64Error::InvalidByte(at))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // The mask keeps exactly the byte just completed.
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_padded_and_unpadded() {
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("Zg==").unwrap(), b"f");
        assert_eq!(decode("Zg").unwrap(), b"f");
        assert_eq!(decode("Zm8=").unwrap(), b"fo");
        assert_eq!(decode("Zm9v").unwrap(), b"foo");
        assert_eq!(decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(decode("//+/").unwrap(), [0xff, 0xff, 0xbf]);
    }

    #[test]
    fn refuses_what_is_not_base64() {
        assert_eq!(decode("Zm9v!A"), Err(Base64Error::InvalidByte(4)));
        assert_eq!(decode("Zm9v!"), Err(Base64Error::InvalidLength));
        assert_eq!(decode("Z"), Err(Base64Error::InvalidLength));
        assert_eq!(decode("Zg=a"), Err(Base64Error::InvalidByte(2)));
        assert_eq!(decode("Zm9=="), Err(Base64Error::InvalidLength));
        assert_eq!(decode("==="), Err(Base64Error::InvalidLength));
        assert_eq!(decode("====="), Err(Base64Error::InvalidLength));
        assert_eq!(decode("a==="), Err(Base64Error::InvalidByte(1)));
        assert_eq!(decode("ab=="), Ok(vec![0x69]));
        assert_eq!(decode("é"), Err(Base64Error::InvalidByte(0)));
    }
}
