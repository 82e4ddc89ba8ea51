//! Input rules shared by the handlers: each returns the cleaned value or a 422 naming the field.

use crate::error::ApiError;

pub const MAX_NAME_LEN: usize = 200;

/// How an e-mail address is compared: trimmed, Unicode NFKC (full-width and other compatibility
/// forms fold to their plain letters) and lower case. Login looks accounts up by this.
pub fn normalized_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.trim().nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

/// A new account's address: [`normalized_email`], then a plausible `local@domain.tld` made of
/// letters, digits and the few punctuation marks real addresses use. Invisible characters
/// (zero-width spaces, joiners, soft hyphens), bidirectional controls and markup are refused, so
/// no look-alike of an existing address can register.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = normalized_email(raw);
    if email.chars().any(|c| c.is_control() || is_invisible_or_bidi(c)) {
        return Err(ApiError::validation("email: must not contain invisible, control or bidirectional formatting characters"));
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            let labels: Vec<&str> = domain.split('.').collect();
            (1..=64).contains(&local.len())
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..")
                && local.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\''))
                && labels.len() >= 2
                && labels.iter().all(|label| label_ok(label))
                && labels.last().is_some_and(|tld| tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
        });
    if valid { Ok(email) } else { Err(ApiError::validation("email: not a valid e-mail address")) }
}

/// Format characters that render as nothing or reorder text (Unicode category Cf, the ones seen
/// in spoofing): zero-width spaces and joiners, word joiners, BOMs, soft hyphens, the
/// bidirectional embeddings, overrides, isolates and marks, and tag characters.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Where a JSON document holds a NUL character (in a string or a key), as a field path such as
/// `text`, `metadata.note` or `attachments[0].url`.
pub fn nul_field(document: &serde_json::Value) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &mut String) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            serde_json::Value::Object(map) => map.iter().any(|(key, item)| {
                if key.contains('\0') {
                    return true;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(document, &mut path).then(|| if path.is_empty() { "body".to_owned() } else { path })
}

pub fn password(raw: &str) -> Result<(), ApiError> {
    match raw.chars().count() {
        0..8 => Err(ApiError::validation("password: at least 8 characters")),
        257.. => Err(ApiError::validation("password: at most 256 characters")),
        _ => Ok(()),
    }
}

/// A required display name: trimmed, non-empty, bounded.
pub fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::validation(format!("{field}: must not be empty")));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::validation(format!("{field}: at most {MAX_NAME_LEN} characters")));
    }
    Ok(name.to_owned())
}

/// An optional display name: blank means absent.
pub fn optional_name(field: &str, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => self::name(field, name).map(Some),
    }
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(super::email("  Ann@Example.COM ").ok().as_deref(), Some("ann@example.com"));
        assert_eq!(super::email("ａｌｉｃｅ@ａ.test").ok().as_deref(), Some("alice@a.test"), "full-width folds");
        assert_eq!(super::email("ALICE@A.TEST").ok().as_deref(), Some("alice@a.test"));
        assert_eq!(super::email("o'brien+tag@mail.example.co").ok().as_deref(), Some("o'brien+tag@mail.example.co"));
        assert_eq!(super::email("jörg@münchen.de").ok().as_deref(), Some("jörg@münchen.de"), "internationalised");
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.io",
            "ann@x",
            "a b@x.io",
            "ann@x.io.",
            "al\u{200b}ice@a.test",
            "alice\u{202e}@a.test",
            "al\u{00ad}ice@a.test",
            "\u{feff}alice@a.test",
            "<script>@a.test",
            "a\"b@a.test",
            "alice@a.test>",
            "a..b@a.test",
            ".a@a.test",
            "a@-a.test",
            "a@a.1",
            "a@@a.test",
            "a\u{0}b@a.test",
            "a@a_b.test",
        ] {
            assert!(super::email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nul_characters_are_found_with_their_field() {
        assert_eq!(super::nul_field(&json!({"text": "a\u{0}b"})).as_deref(), Some("text"));
        assert_eq!(super::nul_field(&json!({"metadata": {"ok": 1, "bad\u{0}": 2}})).as_deref(), Some("metadata"));
        assert_eq!(
            super::nul_field(&json!({"attachments": [{"url": "x"}, {"url": "y\u{0}"}]})).as_deref(),
            Some("attachments[1].url")
        );
        assert_eq!(super::nul_field(&json!({"text": "fine", "n": [1, "\\u0000"]})), None, "an escaped backslash is no NUL");
        assert_eq!(super::nul_field(&json!("\u{0}")).as_deref(), Some("body"));
    }
}
