//! Input rules shared by the handlers: each returns the cleaned value or a 422 naming the field.

use crate::error::ApiError;

pub const MAX_NAME_LEN: usize = 200;

/// Trimmed, lower-cased, and shaped like an address (`local@domain.tld`).
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if valid { Ok(email) } else { Err(ApiError::validation("email: not a valid e-mail address")) }
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
    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(super::email("  Ann@Example.COM ").ok().as_deref(), Some("ann@example.com"));
        for bad in ["", "ann", "ann@", "@x.io", "ann@x", "a b@x.io", "ann@x.io."] {
            assert!(super::email(bad).is_err(), "{bad:?}");
        }
    }
}
