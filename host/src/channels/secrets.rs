//! The secret part of a channel's configuration: sealed, redacted and opened.
//!
//! Which top-level fields are secret is the adapter's word (its config schema), never a list of
//! names here. Sealed values are stored as `enc:v1:...` strings holding the JSON of the original
//! value; the API and the adapters see [`REDACTED`] wherever a sealed value is. A client that
//! sends the redacted placeholder back in an update keeps the stored secret.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::crypto::{CryptoError, SecretBox};

pub const REDACTED: &str = "********";

/// Encrypts the `secret_fields` of `config`; placeholders keep the value found in `previous`,
/// and so does leaving a sealed field out (a client never sees a secret, so it cannot send it
/// back; a generated one would be lost): `null` clears it.
pub fn seal<'a>(
    secrets: &SecretBox,
    config: Value,
    previous: Option<&Value>,
    secret_fields: impl IntoIterator<Item = &'a str>,
) -> Value {
    let secret_fields: Vec<&str> = secret_fields.into_iter().collect();
    let Value::Object(map) = config else { return config };
    let previous = previous.and_then(Value::as_object);
    let mut sealed = Map::with_capacity(map.len());
    for (key, value) in map {
        let before = previous.and_then(|p| p.get(&key));
        let value = match value {
            // The placeholder (of any field that was sealed) keeps what is stored.
            Value::String(s) if s == REDACTED => match before {
                Some(kept) => kept.clone(),
                None => continue,
            },
            Value::Null => Value::Null,
            value if secret_fields.contains(&key.as_str()) => match value {
                Value::String(s) if SecretBox::is_sealed(&s) && before == Some(&Value::String(s.clone())) => Value::String(s),
                other => Value::String(secrets.seal(&other.to_string())),
            },
            other => other,
        };
        sealed.insert(key, value);
    }
    for (key, kept) in previous.into_iter().flatten() {
        if let Value::String(text) = kept
            && SecretBox::is_sealed(text)
            && !sealed.contains_key(key)
        {
            sealed.insert(key.clone(), kept.clone());
        }
    }
    Value::Object(sealed)
}

/// The sealed top-level values of a stored config, opened: the secrets an adapter uses by name.
pub fn open_secrets(secrets: &SecretBox, config: &Value) -> Result<HashMap<String, SecretString>, CryptoError> {
    let mut values = HashMap::new();
    if let Value::Object(map) = config {
        for (key, value) in map {
            let Value::String(sealed) = value else { continue };
            if !SecretBox::is_sealed(sealed) {
                continue;
            }
            let opened: Value = serde_json::from_str(&secrets.open(sealed)?).map_err(|_| CryptoError::Undecryptable)?;
            let text = match opened {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            values.insert(key.clone(), SecretString::from(text));
        }
    }
    Ok(values)
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
                    Value::String(s) if SecretBox::is_sealed(s) => f(s)?,
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
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;
    use crate::crypto::SecretKey;

    fn secrets() -> SecretBox {
        SecretBox::new(&SecretKey::parse(&hex::encode([3u8; 32])).expect("key"))
    }

    #[test]
    fn the_schemas_secret_fields_are_sealed_redacted_and_opened() {
        let secrets = secrets();
        let config = json!({"botToken": "123:ABC", "appSecret": "s3cret", "pageId": "42", "mode": "webhook"});
        let sealed = seal(&secrets, config.clone(), None, ["botToken", "appSecret"]);
        let text = sealed.to_string();
        assert!(!text.contains("123:ABC") && !text.contains("s3cret"), "{text}");
        assert_eq!(sealed["mode"], "webhook");
        assert_eq!(sealed["pageId"], "42");
        assert_eq!(redact(&sealed), json!({"botToken": REDACTED, "appSecret": REDACTED, "pageId": "42", "mode": "webhook"}));
        assert_eq!(open(&secrets, &sealed).expect("opens"), config);
        let opened = open_secrets(&secrets, &sealed).expect("opens");
        assert_eq!(opened.get("botToken").map(|s| s.expose_secret().to_owned()).as_deref(), Some("123:ABC"));
        assert!(!opened.contains_key("pageId"));
    }

    #[test]
    fn a_sealed_field_left_out_of_an_update_is_kept_and_null_clears_it() {
        let secrets = secrets();
        let stored = seal(&secrets, json!({"botToken": "t0k3n", "secretToken": "generated"}), None, ["botToken", "secretToken"]);
        let updated = seal(&secrets, json!({"botToken": REDACTED, "mode": "x"}), Some(&stored), ["botToken", "secretToken"]);
        assert_eq!(updated["secretToken"], stored["secretToken"]);
        let cleared =
            seal(&secrets, json!({"botToken": REDACTED, "secretToken": null}), Some(&stored), ["botToken", "secretToken"]);
        assert_eq!(cleared["secretToken"], Value::Null);
        assert!(!open_secrets(&secrets, &cleared).expect("opens").contains_key("secretToken"));
    }

    #[test]
    fn fields_the_schema_does_not_name_stay_in_clear() {
        let sealed = seal(&secrets(), json!({"password": "not-declared"}), None, ["botToken"]);
        assert_eq!(sealed, json!({"password": "not-declared"}));
    }

    #[test]
    fn the_placeholder_keeps_the_stored_secret_and_a_new_value_replaces_it() {
        let secrets = secrets();
        let fields = ["botToken", "secretToken"];
        let stored = seal(&secrets, json!({"botToken": "old", "secretToken": "hook"}), None, fields);
        let updated = seal(&secrets, json!({"botToken": REDACTED, "secretToken": "new-hook"}), Some(&stored), fields);
        assert_eq!(updated["botToken"], stored["botToken"]);
        assert_eq!(open(&secrets, &updated).expect("opens"), json!({"botToken": "old", "secretToken": "new-hook"}));
    }
}
