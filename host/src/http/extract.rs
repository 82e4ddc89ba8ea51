//! Extractors: JSON, path and query with JSON errors, and [`AuthUser`], the one place that
//! reads who is calling and for which tenant.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::auth::tokens::{TokenError, TokenKind};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Role, User};

/// `axum::Json` whose rejections are our JSON errors, refusing NUL characters anywhere in the
/// document (a string or a key) with a 422 naming the field: PostgreSQL cannot store them, and
/// both databases answer alike.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::Bytes::from_request(axum::extract::Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(rejection.status(), "payload_too_large", rejection.body_text()),
                status => ApiError::new(status, "bad_request", rejection.body_text()),
            })?;
        // JSON can carry a NUL only as the escape `\u0000`: the document is looked into only then.
        if bytes.windows(6).any(|w| w == b"\\u0000")
            && let Ok(document) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(field) = crate::validate::nul_field(&document)
        {
            return Err(ApiError::validation(format!("{field}: must not contain NUL characters")));
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` whose rejections (a malformed id) are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejections are our JSON errors; a NUL character in a parameter
/// is a 422 naming it, as in [`ApiJson`].
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00"))
            && let Ok(axum::extract::Query(pairs)) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            && let Some((name, _)) = pairs.iter().find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::validation(format!("{name}: must not contain NUL characters")));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Multipart` whose rejections (not multipart, no boundary) are our JSON errors.
pub struct ApiMultipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(axum::extract::Multipart::from_request(request, state).await?))
    }
}

/// The authenticated caller: a valid access token whose user still exists. The user is read
/// fresh on every request, so a removed user or a changed role takes effect at once.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
}

impl AuthUser {
    pub fn tenant_id(&self) -> Uuid {
        self.user.tenant_id
    }

    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Owners and admins manage users, channels and agents; agents only work the inbox.
    pub fn require_manager(&self) -> Result<(), ApiError> {
        if self.user.role.can_manage() { Ok(()) } else { Err(ApiError::forbidden("this needs the owner or admin role")) }
    }
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let claims = state.tokens.verify(token, TokenKind::Access).map_err(|e| match e {
            TokenError::Expired => ApiError::unauthorized("access token expired"),
            TokenError::Invalid => ApiError::unauthorized("invalid access token"),
        })?;
        let user = state
            .store
            .get_user(claims.tenant_id, claims.user_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
        tracing::Span::current().record("tenant.id", tracing::field::display(user.tenant_id));
        Ok(AuthUser { user })
    }
}
