//! Small helpers shared by the mechanisms.

use base64::Engine as _;

use super::{Result, SaslError};

/// Random bytes in a nonce: 24 bytes = 192 bits, 32 base64 characters.
const NONCE_BYTES: usize = 24;

/// A fresh random nonce: standard base64, so printable and free of `,` and `"`
/// (RFC 5802 `c-nonce`, RFC 2831 `cnonce`).
pub(crate) fn random_nonce() -> Result<String> {
    let mut raw = [0u8; NONCE_BYTES];
    getrandom::fill(&mut raw).map_err(|e| SaslError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Lower-case hexadecimal, as CRAM-MD5 and DIGEST-MD5 write digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The ISO 8859-1 bytes of `s`, or `None` if a character lies outside it.
pub(crate) fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}
