//! The secret part of a channel's configuration: sealed, redacted and opened.
//!
//! Which top-level fields are secret is the adapter's word (its config schema): a declared field
//! is sealed whole (an array or object included) when the schema says secret, and kept in clear
//! when it says not. Fields the schema does not declare (every field of a bridge, whose schema is
//! empty) follow one rule at any depth, inside objects and arrays alike: a key whose words name a
//! credential ([`looks_secret`]: `token`, `secret`, `password`, `pass`, `pwd`, `credentials`,
//! `authorization`, `cookie`, `signature`, `...Key`, `auth`) is sealed whole. Sealed values are
//! stored as `enc:v1:...` strings holding the JSON of the original value; the API and the
//! adapters see [`REDACTED`] wherever a sealed value is. A client that sends the redacted
//! placeholder back in an update keeps the stored secret.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::channels::adapter::ConfigField;
use crate::crypto::{CryptoError, SecretBox};

pub const REDACTED: &str = "********";

/// Encrypts the schema's secret fields of `config`, and undeclared values whose key looks secret
/// at any depth; placeholders keep the value found in `previous`, and so does leaving a sealed
/// top-level field out (a client never sees a secret, so it cannot send it back; a generated one
/// would be lost): `null` clears it.
pub fn seal(secrets: &SecretBox, config: Value, previous: Option<&Value>, schema: &[ConfigField]) -> Value {
    let Value::Object(map) = config else { return config };
    let previous = previous.and_then(Value::as_object);
    let mut sealed = Map::with_capacity(map.len());
    for (key, value) in map {
        let before = previous.and_then(|p| p.get(&key));
        let value = match schema.iter().find(|f| f.name == key) {
            Some(field) if field.secret => match seal_value(secrets, value, before) {
                Some(value) => value,
                None => continue,
            },
            // The schema calls it not secret: as it is (a placeholder still keeps what is stored).
            Some(_) => match value {
                Value::String(s) if s == REDACTED => match before {
                    Some(kept) => kept.clone(),
                    None => continue,
                },
                other => other,
            },
            None if looks_secret(&key) => match seal_value(secrets, value, before) {
                Some(value) => value,
                None => continue,
            },
            None => seal_nested(secrets, value, before),
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

/// One secret value sealed whole: the placeholder keeps `before` (`None`: nothing to keep, the
/// key goes), `null` stays `null`, an unchanged sealed value stays as it is.
fn seal_value(secrets: &SecretBox, value: Value, before: Option<&Value>) -> Option<Value> {
    Some(match value {
        Value::String(s) if s == REDACTED => before?.clone(),
        Value::Null => Value::Null,
        Value::String(s) if SecretBox::is_sealed(&s) && before == Some(&Value::String(s.clone())) => Value::String(s),
        other => Value::String(secrets.seal(&other.to_string())),
    })
}

/// An undeclared value: objects and arrays are looked into, secret-looking keys sealed.
fn seal_nested(secrets: &SecretBox, value: Value, before: Option<&Value>) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, item) in map {
                let kept = before.and_then(|b| b.get(&key));
                let item = if looks_secret(&key) {
                    match seal_value(secrets, item, kept) {
                        Some(item) => item,
                        None => continue,
                    }
                } else {
                    seal_nested(secrets, item, kept)
                };
                out.insert(key, item);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items.into_iter().enumerate().map(|(i, item)| seal_nested(secrets, item, before.and_then(|b| b.get(i)))).collect(),
        ),
        other => other,
    }
}

/// Whether a config key names a credential: one of its words (split at camelCase, `_`, `-`
/// and `.`, plural or not) is `token`, `secret`, `password`, `passwd`, `passphrase`, `pass`,
/// `pwd`, `credential`, `authorization`, `cookie` or `signature`; or its last word is `key`
/// (`apiKey`, `accessKey`, `signingKey`, not `keywords`); or it is `auth` alone.
pub fn looks_secret(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "credential",
        "authorization",
        "cookie",
        "signature",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    words.extend((!current.is_empty()).then_some(current));
    let singular = |w: &String| w.strip_suffix('s').filter(|_| w.len() > 3 && !w.ends_with("ss")).unwrap_or(w).to_owned();
    let words: Vec<String> = words.iter().map(singular).collect();
    words.iter().any(|w| WORDS.contains(&w.as_str()))
        || words.last().is_some_and(|w| w == "key" || w == "apikey")
        || words == ["auth"]
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

    fn schema(secret: &[&str], plain: &[&str]) -> Vec<ConfigField> {
        let field =
            |name: &&str, secret| ConfigField { name: (*name).to_owned(), description: String::new(), required: false, secret };
        secret.iter().map(|n| field(n, true)).chain(plain.iter().map(|n| field(n, false))).collect()
    }

    #[test]
    fn the_schemas_secret_fields_are_sealed_redacted_and_opened() {
        let secrets = secrets();
        let config = json!({"botToken": "123:ABC", "appSecret": "s3cret", "pageId": "42", "mode": "webhook"});
        let sealed = seal(&secrets, config.clone(), None, &schema(&["botToken", "appSecret"], &["pageId", "mode"]));
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
        let fields = schema(&["botToken", "secretToken"], &[]);
        let stored = seal(&secrets, json!({"botToken": "t0k3n", "secretToken": "generated"}), None, &fields);
        let updated = seal(&secrets, json!({"botToken": REDACTED, "mode": "x"}), Some(&stored), &fields);
        assert_eq!(updated["secretToken"], stored["secretToken"]);
        let cleared = seal(&secrets, json!({"botToken": REDACTED, "secretToken": null}), Some(&stored), &fields);
        assert_eq!(cleared["secretToken"], Value::Null);
        assert!(!open_secrets(&secrets, &cleared).expect("opens").contains_key("secretToken"));
    }

    #[test]
    fn the_schema_decides_for_its_fields_and_the_rule_for_the_rest_at_any_depth() {
        let secrets = secrets();
        let config = json!({
            "passwordHint": "declared plain",
            "accessKey": "AKIA-access", "signingKey": "signing-value", "credentials": [{"user": "u", "secret": "cred-secret"}],
            "authorization": "Bearer x", "pass": "pass-value", "pwd": "pwd-value", "apiKeys": ["api-key-1", "api-key-2"],
            "servers": [{"host": "a", "password": "nested-pw"}, {"host": "b", "nested": {"token": "deep-token"}}],
            "keywords": ["hello"], "greeting": "hi", "auth": {"user": "u", "pass": "p"}
        });
        let sealed = seal(&secrets, config.clone(), None, &schema(&[], &["passwordHint"]));
        let text = sealed.to_string();
        for secret in [
            "AKIA-access",
            "signing-value",
            "pass-value",
            "pwd-value",
            "api-key-1",
            "nested-pw",
            "deep-token",
            "Bearer x",
            "cred-secret",
        ] {
            assert!(!text.contains(secret), "{secret} sealed: {text}");
        }
        let shown = redact(&sealed);
        assert_eq!(shown["passwordHint"], "declared plain", "the schema says it is not secret");
        assert_eq!((shown["accessKey"].clone(), shown["credentials"].clone()), (json!(REDACTED), json!(REDACTED)));
        assert_eq!(shown["servers"][0], json!({"host": "a", "password": REDACTED}));
        assert_eq!(shown["servers"][1]["nested"]["token"], REDACTED);
        assert_eq!((shown["keywords"].clone(), shown["greeting"].clone()), (json!(["hello"]), json!("hi")));
        assert_eq!(open(&secrets, &sealed).expect("opens"), config);

        // The redacted view sent back keeps every secret, nested ones included.
        let resent = seal(&secrets, shown, Some(&sealed), &schema(&[], &["passwordHint"]));
        assert_eq!(open(&secrets, &resent).expect("opens"), config);
    }

    #[test]
    fn secret_looking_keys() {
        for secret in [
            "botToken",
            "api_key",
            "apiKey",
            "ACCESS_KEY",
            "signingKey",
            "credentials",
            "Authorization",
            "pass",
            "pwd",
            "clientSecret",
            "session-cookie",
            "x.signature",
            "auth",
            "privateKey",
            "passphrase",
            "refreshTokens",
        ] {
            assert!(looks_secret(secret), "{secret}");
        }
        for plain in
            ["keywords", "pageId", "mode", "author", "authMode", "passive", "compass", "keyboardLayout", "greeting", "monkey"]
        {
            assert!(!looks_secret(plain), "{plain}");
        }
    }

    #[test]
    fn the_placeholder_keeps_the_stored_secret_and_a_new_value_replaces_it() {
        let secrets = secrets();
        let fields = schema(&["botToken", "secretToken"], &[]);
        let stored = seal(&secrets, json!({"botToken": "old", "secretToken": "hook"}), None, &fields);
        let updated = seal(&secrets, json!({"botToken": REDACTED, "secretToken": "new-hook"}), Some(&stored), &fields);
        assert_eq!(updated["botToken"], stored["botToken"]);
        assert_eq!(open(&secrets, &updated).expect("opens"), json!({"botToken": "old", "secretToken": "new-hook"}));
    }
}
