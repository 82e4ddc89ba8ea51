//! Which configuration values are secret, and how they are sealed, redacted and opened.
//!
//! A key is secret when its name says so (`botToken`, `pageAccessToken`, `appSecret`,
//! `secretToken`, `password`, `apiKey`, ...), at any depth. Sealed values are stored as
//! `enc:v1:...` strings holding the JSON of the original value; the API shows [`REDACTED`].
//! A client that sends the redacted placeholder back in an update keeps the stored secret.

use serde_json::{Map, Value};

use crate::crypto::{CryptoError, SecretBox};

pub const REDACTED: &str = "********";

pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['_', '-'], "");
    ["token", "secret", "password", "apikey", "privatekey", "accesshash"].iter().any(|word| key.contains(word))
}

/// Encrypts every secret value of `config`; placeholders keep the value found in `previous`.
pub fn seal(secrets: &SecretBox, config: Value, previous: Option<&Value>) -> Value {
    match config {
        Value::Object(map) => {
            let previous = previous.and_then(Value::as_object);
            let mut sealed = Map::with_capacity(map.len());
            for (key, value) in map {
                let before = previous.and_then(|p| p.get(&key));
                let value = if is_secret_key(&key) {
                    match value {
                        Value::Null => Value::Null,
                        Value::String(s) if s == REDACTED => match before {
                            Some(kept) => kept.clone(),
                            None => continue,
                        },
                        Value::String(s) if SecretBox::is_sealed(&s) && before == Some(&Value::String(s.clone())) => {
                            Value::String(s)
                        }
                        other => Value::String(secrets.seal(&other.to_string())),
                    }
                } else {
                    seal(secrets, value, before)
                };
                sealed.insert(key, value);
            }
            Value::Object(sealed)
        }
        other => other,
    }
}

/// The stored configuration as the API shows it.
pub fn redact(config: &Value) -> Value {
    map_secrets(config, &mut |_| Ok(Value::String(REDACTED.to_owned()))).unwrap_or(Value::Null)
}

/// The configuration with every secret decrypted, for the adapters that use it.
pub fn open(secrets: &SecretBox, config: &Value) -> Result<Value, CryptoError> {
    map_secrets(config, &mut |sealed| {
        let json = secrets.open(sealed)?;
        serde_json::from_str(&json).map_err(|_| CryptoError::Undecryptable)
    })
}

fn map_secrets(config: &Value, f: &mut impl FnMut(&str) -> Result<Value, CryptoError>) -> Result<Value, CryptoError> {
    Ok(match config {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                let value = match value {
                    Value::String(s) if is_secret_key(key) && SecretBox::is_sealed(s) => f(s)?,
                    other => map_secrets(other, f)?,
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| map_secrets(v, f)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crypto::SecretKey;

    fn secrets() -> SecretBox {
        SecretBox::new(&SecretKey::parse(&hex::encode([3u8; 32])).expect("key"))
    }

    #[test]
    fn secret_values_are_sealed_redacted_and_opened() {
        let secrets = secrets();
        let config = json!({"botToken": "123:ABC", "nested": {"appSecret": "s3cret", "pageId": "42"}, "mode": "webhook"});
        let sealed = seal(&secrets, config.clone(), None);
        let text = sealed.to_string();
        assert!(!text.contains("123:ABC") && !text.contains("s3cret"), "{text}");
        assert_eq!(sealed["mode"], "webhook");
        assert_eq!(sealed["nested"]["pageId"], "42");
        assert_eq!(
            redact(&sealed),
            json!({"botToken": REDACTED, "nested": {"appSecret": REDACTED, "pageId": "42"}, "mode": "webhook"})
        );
        assert_eq!(open(&secrets, &sealed).expect("opens"), config);
    }

    #[test]
    fn the_placeholder_keeps_the_stored_secret_and_a_new_value_replaces_it() {
        let secrets = secrets();
        let stored = seal(&secrets, json!({"botToken": "old", "secretToken": "hook"}), None);
        let updated = seal(&secrets, json!({"botToken": REDACTED, "secretToken": "new-hook"}), Some(&stored));
        assert_eq!(updated["botToken"], stored["botToken"]);
        assert_eq!(open(&secrets, &updated).expect("opens"), json!({"botToken": "old", "secretToken": "new-hook"}));
    }

    #[test]
    fn names_that_say_secret_are_secret() {
        for key in ["botToken", "pageAccessToken", "appSecret", "secretToken", "password", "api_key", "apiKey"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["pageId", "mode", "webhookUrl", "phoneNumber"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
