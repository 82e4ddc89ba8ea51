//! Encryption at rest for secret channel configuration (bot tokens, page tokens, app secrets):
//! XChaCha20-Poly1305 with a random nonce per value, stored as `enc:v1:<base64url>`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "enc:v1:";
/// Sealed binary values: this prefix, the nonce, the ciphertext (raw bytes).
const BYTES_PREFIX: &[u8] = b"enc:b1:";
const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct SecretKey([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("a key is 32 bytes, given as base64 or 64 hex digits")]
    BadKey,
    #[error("value cannot be decrypted with this key")]
    Undecryptable,
}

impl SecretKey {
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).or_else(|_| URL_SAFE_NO_PAD.decode(text)).ok()
        };
        bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).map(SecretKey).ok_or(CryptoError::BadKey)
    }
}

/// Seals and opens secret values with the configured key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    pub fn new(key: &SecretKey) -> Self {
        Self { cipher: XChaCha20Poly1305::new(&key.0.into()) }
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    pub fn seal(&self, plaintext: &str) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(self.encrypt(plaintext.as_bytes(), b"")))
    }

    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(CryptoError::Undecryptable)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(self.decrypt(&bytes, b"")?).map_err(|_| CryptoError::Undecryptable)
    }

    /// Whether `value` is a [sealed binary value](Self::seal_bytes).
    pub fn is_sealed_bytes(value: &[u8]) -> bool {
        value.starts_with(BYTES_PREFIX)
    }

    /// Seals binary data bound to `context` (the row it is stored as): it opens only with the
    /// same key and the same context, so a sealed value moved to another row does not open.
    pub fn seal_bytes(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        [BYTES_PREFIX, &self.encrypt(plaintext, context)].concat()
    }

    pub fn open_bytes(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.decrypt(sealed.strip_prefix(BYTES_PREFIX).ok_or(CryptoError::Undecryptable)?, context)
    }

    /// A random nonce followed by the ciphertext of `plaintext` with `aad` authenticated.
    fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        // Encrypting into a Vec cannot fail for inputs of this size.
        let ciphertext = self.cipher.encrypt(&XNonce::from(nonce_bytes), Payload { msg: plaintext, aad }).unwrap_or_default();
        [&nonce_bytes[..], &ciphertext].concat()
    }

    fn decrypt(&self, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Undecryptable)?;
        self.cipher.decrypt(&nonce, Payload { msg: ciphertext, aad }).map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let a = SecretBox::new(&SecretKey([1; 32]));
        let b = SecretBox::new(&SecretKey([2; 32]));
        let sealed = a.seal("123456:ABC-bot-token");
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!sealed.contains("ABC-bot-token"));
        assert_ne!(sealed, a.seal("123456:ABC-bot-token"), "nonces are random");
        assert_eq!(a.open(&sealed).ok().as_deref(), Some("123456:ABC-bot-token"));
        assert!(b.open(&sealed).is_err());
    }

    #[test]
    fn sealed_bytes_open_with_the_same_key_and_context_only() {
        let a = SecretBox::new(&SecretKey([1; 32]));
        let b = SecretBox::new(&SecretKey([2; 32]));
        let sealed = a.seal_bytes(b"signal session", b"s|session|1555");
        assert!(SecretBox::is_sealed_bytes(&sealed));
        assert!(!sealed.windows(14).any(|w| w == b"signal session"));
        assert_eq!(a.open_bytes(&sealed, b"s|session|1555").ok().as_deref(), Some(&b"signal session"[..]));
        assert!(a.open_bytes(&sealed, b"s|session|1666").is_err(), "bound to its row");
        assert!(b.open_bytes(&sealed, b"s|session|1555").is_err());
        assert!(a.open_bytes(b"plain", b"").is_err());
    }

    #[test]
    fn keys_parse_from_base64_and_hex() {
        assert!(SecretKey::parse(&STANDARD.encode([9u8; 32])).is_ok());
        assert!(SecretKey::parse(&hex::encode([9u8; 32])).is_ok());
        assert!(SecretKey::parse("too-short").is_err());
    }
}
