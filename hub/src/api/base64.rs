//! Standard base64 (RFC 4648 alphabet `A-Za-z0-9+/`) decoding for the `b64data`
//! field, with or without `=` padding, by the `base64` crate. This module only
//! says which inputs the hub accepts (padding optional but complete when
//! present, trailing bits ignored, as the hand-written decoder it replaced did)
//! and maps the crate's errors to ours. Any other byte is refused with its
//! position; no input panics.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Why a `b64data` value is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("invalid base64 byte at position {0}")]
    InvalidByte(usize),
    #[error("invalid base64 length")]
    InvalidLength,
}

/// The standard alphabet; `=` padding optional; the unused low bits of the
/// last character are not checked (`ab==` is `0x69`).
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes `text`; padding is optional, but only at the end and at most two `=`.
/// The length is checked first, so that a wrong length is reported as such
/// whatever bytes it holds.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    let unpadded = bytes.strip_suffix(b"==").or_else(|| bytes.strip_suffix(b"=")).unwrap_or(bytes);
    let padded = bytes.len() != unpadded.len();
    if (padded && !bytes.len().is_multiple_of(4)) || unpadded.len() % 4 == 1 {
        return Err(Base64Error::InvalidLength);
    }
    ENGINE.decode(text).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            Base64Error::InvalidByte(at)
        }
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => Base64Error::InvalidLength,
    })
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
