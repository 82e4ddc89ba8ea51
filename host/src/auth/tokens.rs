//! Access and refresh tokens: HS256 JWTs with the seed's payload `{userId, tenantId, email}`.
//! The two kinds carry different audiences (and may have different secrets), the algorithm is
//! pinned, and expiry is enforced, so neither can stand in for the other.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::JwtConfig;

const ISSUER: &str = "omnichat";
const ACCESS_AUDIENCE: &str = "omnichat:access";
const REFRESH_AUDIENCE: &str = "omnichat:refresh";
const VISITOR_AUDIENCE: &str = "omnichat:visitor";
/// How long after its expiry a visitor token still resumes its visitor (at `sessions`, which
/// issues a fresh one): a returning visitor keeps their conversation for a month.
pub const VISITOR_RESUME_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The rotation family of a refresh token (absent on access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<Uuid>,
}

/// A website visitor of one web channel (the widget): a token of its own audience, never a
/// user's, bound to its channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorClaims {
    /// The visitor's id on the channel: its customer's `externalId`.
    pub sub: String,
    pub channel_id: Uuid,
    pub tenant_id: Uuid,
    /// The visitor's customer, once its first message made one (a page view makes none).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The page the session was opened on.
    #[serde(default)]
    pub page_url: Option<String>,
    /// Signed in on the site, proven by the identifier's HMAC.
    pub verified: bool,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Who a visitor token is for, as `issue_visitor` takes it.
pub struct Visitor {
    pub id: String,
    pub channel_id: Uuid,
    pub tenant_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub page_url: Option<String>,
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// A freshly minted refresh token and what the store keeps of it.
pub struct IssuedRefresh {
    pub token: String,
    pub id: Uuid,
    pub family_id: Uuid,
    pub hash: String,
    pub expires_at: chrono::DateTime<Utc>,
}

#[derive(Clone)]
pub struct TokenService {
    access: (EncodingKey, DecodingKey),
    refresh: (EncodingKey, DecodingKey),
    access_ttl: Duration,
    refresh_ttl: Duration,
    visitor_ttl: Duration,
}

impl TokenService {
    pub fn new(config: &JwtConfig) -> Self {
        let keys = |secret: &secrecy::SecretString| {
            let bytes = secret.expose_secret().as_bytes();
            (EncodingKey::from_secret(bytes), DecodingKey::from_secret(bytes))
        };
        Self {
            access: keys(&config.access_secret),
            refresh: keys(&config.refresh_secret),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            visitor_ttl: config.visitor_ttl,
        }
    }

    /// A visitor token and when it expires. Signed with the access key, told apart by its
    /// audience.
    pub fn issue_visitor(&self, visitor: Visitor) -> Result<(String, chrono::DateTime<Utc>), TokenError> {
        let now = Utc::now().timestamp();
        let exp = now + i64::try_from(self.visitor_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = VisitorClaims {
            sub: visitor.id,
            channel_id: visitor.channel_id,
            tenant_id: visitor.tenant_id,
            customer_id: visitor.customer_id,
            name: visitor.name,
            email: visitor.email,
            page_url: visitor.page_url,
            verified: visitor.verified,
            iss: ISSUER.to_owned(),
            aud: VISITOR_AUDIENCE.to_owned(),
            iat: now,
            exp,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.access.0).map_err(|_| TokenError::Invalid)?;
        Ok((token, chrono::DateTime::from_timestamp(exp, 0).unwrap_or_else(Utc::now)))
    }

    /// A visitor token, of `channel_id` when given. `expired_grace`: how long past its expiry it
    /// still counts (resuming a visitor); `ZERO` everywhere else.
    pub fn verify_visitor(
        &self,
        token: &str,
        channel_id: Option<Uuid>,
        expired_grace: Duration,
    ) -> Result<VisitorClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[VISITOR_AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5 + expired_grace.as_secs();
        let data = jsonwebtoken::decode::<VisitorClaims>(token, &self.access.1, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        if channel_id.is_some_and(|id| id != data.claims.channel_id) {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }

    pub fn issue_access(&self, user_id: Uuid, tenant_id: Uuid, email: &str) -> Result<String, TokenError> {
        let claims = self.claims(user_id, tenant_id, email, TokenKind::Access, None);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.access.0).map_err(|_| TokenError::Invalid)
    }

    /// A refresh token in `family_id` (a new family at login).
    pub fn issue_refresh(
        &self,
        user_id: Uuid,
        tenant_id: Uuid,
        email: &str,
        family_id: Uuid,
    ) -> Result<IssuedRefresh, TokenError> {
        let claims = self.claims(user_id, tenant_id, email, TokenKind::Refresh, Some(family_id));
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.refresh.0).map_err(|_| TokenError::Invalid)?;
        Ok(IssuedRefresh {
            hash: hash_token(&token),
            id: claims.jti,
            family_id,
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
            token,
        })
    }

    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let (key, audience) = match kind {
            TokenKind::Access => (&self.access.1, ACCESS_AUDIENCE),
            TokenKind::Refresh => (&self.refresh.1, REFRESH_AUDIENCE),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        let claims = data.claims;
        if kind == TokenKind::Refresh && claims.fam.is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn claims(&self, user_id: Uuid, tenant_id: Uuid, email: &str, kind: TokenKind, fam: Option<Uuid>) -> Claims {
        let (audience, ttl) = match kind {
            TokenKind::Access => (ACCESS_AUDIENCE, self.access_ttl),
            TokenKind::Refresh => (REFRESH_AUDIENCE, self.refresh_ttl),
        };
        let now = Utc::now().timestamp();
        Claims {
            user_id,
            tenant_id,
            email: email.to_owned(),
            iss: ISSUER.to_owned(),
            aud: audience.to_owned(),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::new_v4(),
            fam,
        }
    }
}

/// What the store keeps of a refresh token: its SHA-256, never the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(access: &str, refresh: &str, ttl: Duration) -> TokenService {
        TokenService::new(&JwtConfig {
            access_secret: access.to_owned().into(),
            refresh_secret: refresh.to_owned().into(),
            access_ttl: ttl,
            refresh_ttl: ttl,
            visitor_ttl: ttl,
        })
    }

    #[test]
    fn access_and_refresh_tokens_are_not_interchangeable_even_with_one_secret() {
        let tokens = service("same-secret", "same-secret", Duration::from_secs(60));
        let (user, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        let access = tokens.issue_access(user, tenant, "a@b.c").expect("issue");
        let refresh = tokens.issue_refresh(user, tenant, "a@b.c", Uuid::new_v4()).expect("issue");
        assert_eq!(tokens.verify(&access, TokenKind::Access).expect("valid").user_id, user);
        assert!(tokens.verify(&access, TokenKind::Refresh).is_err());
        assert!(tokens.verify(&refresh.token, TokenKind::Access).is_err());
        assert!(tokens.verify(&refresh.token, TokenKind::Refresh).is_ok());
    }

    #[test]
    fn a_token_signed_with_another_algorithm_or_key_is_refused() {
        let tokens = service("secret-a", "secret-a", Duration::from_secs(60));
        let other = service("secret-b", "secret-b", Duration::from_secs(60));
        let forged = other.issue_access(Uuid::new_v4(), Uuid::new_v4(), "x@y.z").expect("issue");
        assert!(tokens.verify(&forged, TokenKind::Access).is_err());

        let claims = tokens.claims(Uuid::new_v4(), Uuid::new_v4(), "x@y.z", TokenKind::Access, None);
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(b"secret-a"))
            .expect("encode");
        assert!(tokens.verify(&hs512, TokenKind::Access).is_err(), "the algorithm is pinned to HS256");
    }

    fn visitor(channel_id: Uuid) -> Visitor {
        Visitor {
            id: "v:1".into(),
            channel_id,
            tenant_id: Uuid::new_v4(),
            customer_id: None,
            name: None,
            email: None,
            page_url: None,
            verified: false,
        }
    }

    #[test]
    fn visitor_tokens_are_bound_to_their_channel_and_never_user_tokens() {
        let tokens = service("same-secret", "same-secret", Duration::from_secs(60));
        let channel = Uuid::new_v4();
        let (token, _) = tokens.issue_visitor(visitor(channel)).expect("issue");
        assert_eq!(tokens.verify_visitor(&token, Some(channel), Duration::ZERO).expect("valid").sub, "v:1");
        assert!(tokens.verify_visitor(&token, Some(Uuid::new_v4()), Duration::ZERO).is_err(), "another channel");
        assert!(tokens.verify(&token, TokenKind::Access).is_err(), "a visitor token is no access token");
        let access = tokens.issue_access(Uuid::new_v4(), Uuid::new_v4(), "a@b.c").expect("issue");
        assert!(tokens.verify_visitor(&access, None, Duration::ZERO).is_err(), "an access token is no visitor token");
    }

    #[test]
    fn an_expired_visitor_token_counts_only_within_the_grace_given() {
        let tokens = service("s", "s", Duration::from_secs(60));
        let channel = Uuid::new_v4();
        let (token, _) = tokens.issue_visitor(visitor(channel)).expect("issue");
        let mut claims = tokens.verify_visitor(&token, Some(channel), Duration::ZERO).expect("valid");
        claims.exp = Utc::now().timestamp() - 3600;
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.access.0).expect("encode");
        assert!(matches!(tokens.verify_visitor(&expired, Some(channel), Duration::ZERO), Err(TokenError::Expired)));
        assert!(tokens.verify_visitor(&expired, Some(channel), VISITOR_RESUME_WINDOW).is_ok());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let tokens = service("s", "s", Duration::from_secs(60));
        let mut claims = tokens.claims(Uuid::new_v4(), Uuid::new_v4(), "x@y.z", TokenKind::Access, None);
        claims.exp = Utc::now().timestamp() - 60;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.access.0).expect("encode");
        assert!(matches!(tokens.verify(&token, TokenKind::Access), Err(TokenError::Expired)));
    }
}
