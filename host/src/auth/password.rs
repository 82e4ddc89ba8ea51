//! Password hashing: argon2id with OWASP's minimum parameters (m = 19456 KiB, t = 2, p = 1),
//! run off the async workers.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds; `DEFAULT` is the same triple.
    let params = Params::new(19_456, 2, 1, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || argon2().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Constant-work check: an unknown user is verified against a dummy hash so timing does not tell.
pub async fn verify(password: String, stored_hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored_hash.is_some();
        let stored = stored_hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = PasswordHash::new(&stored).map(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok());
        known && ok.unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// argon2id(m=19456,t=2,p=1) of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Vg3dlyRTqmPDXTuwPQlazVT7Mv/TLL8Gb9S3f17oDw";

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_uses_owasp_parameters() {
        let hash = super::hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(super::verify("correct horse".into(), Some(hash.clone())).await);
        assert!(!super::verify("wrong horse".into(), Some(hash)).await);
        assert!(!super::verify("anything".into(), None).await);
    }
}
