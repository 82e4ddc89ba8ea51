//! The auth flows. Refresh tokens rotate on every use; presenting a spent one revokes its whole
//! family (RFC 9700 section 4.14.2), so a stolen token dies the moment both parties use it.
//! Except within [`REFRESH_GRACE`] of its rotation, while its successor is unused: a client
//! that retried a refresh or sent a few at once gets that same successor again instead of being
//! signed out.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::password;
use super::throttle::Throttled;
use super::tokens::{Claims, TokenError, TokenKind, hash_token};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{NewRefreshToken, NewUser, Role, Rotation, Tenant, User};
use crate::validate;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    /// Name of the new tenant; defaults to the user's name or e-mail.
    pub tenant_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub user: User,
    pub tenant: Tenant,
}

/// How long a rotated refresh token still yields its (unused) successor.
pub const REFRESH_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn register(state: &AppState, req: RegisterRequest) -> ApiResult<AuthResponse> {
    let email = validate::email(&req.email)?;
    validate::password(&req.password)?;
    let name = validate::optional_name("name", req.name.as_deref())?;
    let tenant_name = match validate::optional_name("tenantName", req.tenant_name.as_deref())? {
        Some(tenant_name) => tenant_name,
        None => name.clone().unwrap_or_else(|| email.clone()),
    };
    if state.store.find_user_by_email(&email).await?.is_some() {
        return Err(email_taken());
    }
    let password_hash = password::hash(req.password).await?;
    let owner = NewUser { email, name, role: Role::Owner, password_hash };
    let (tenant, user) = state.store.create_tenant_with_owner(&tenant_name, owner).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => email_taken(),
        other => other.into(),
    })?;
    tracing::info!(tenant.id = %tenant.id, user.id = %user.id, "tenant registered");
    start_session(state, user, tenant, Uuid::new_v4()).await
}

/// `client`: the caller's address, whose failures are limited across accounts.
pub async fn login(state: &AppState, req: LoginRequest, client: &str) -> ApiResult<AuthResponse> {
    let account = validate::normalized_email(&req.email);
    match state.login_throttle.check(&account, client) {
        Ok(()) => {}
        Err(Throttled::Account(wait)) => return Err(throttled(wait)),
        Err(Throttled::Client(wait)) => {
            let secs = wait.as_secs().max(1);
            return Err(ApiError::too_many_requests(
                format!("too many failed logins from this address: retry in {secs} s"),
                secs,
            ));
        }
    }
    let record = state.store.find_user_by_email(&account).await?;
    let valid = password::verify(req.password, record.as_ref().map(|r| r.password_hash.clone())).await;
    let Some(record) = record.filter(|_| valid) else {
        if let Some(wait) = state.login_throttle.failed(&account, client) {
            tracing::warn!("login locked after repeated failures");
            return Err(throttled(wait));
        }
        return Err(ApiError::unauthorized("invalid email or password"));
    };
    state.login_throttle.succeeded(&account);
    let tenant = tenant_of(state, &record.user).await?;
    start_session(state, record.user, tenant, Uuid::new_v4()).await
}

pub async fn refresh(state: &AppState, req: RefreshRequest) -> ApiResult<AuthResponse> {
    let claims = verify_refresh(state, &req.refresh_token)?;
    let family_id = claims.fam.ok_or_else(invalid_refresh)?;
    let next =
        state.tokens.issue_refresh(claims.user_id, claims.tenant_id, &claims.email, family_id).map_err(ApiError::internal)?;
    let new = NewRefreshToken {
        id: next.id,
        tenant_id: claims.tenant_id,
        user_id: claims.user_id,
        family_id,
        token_hash: next.hash.clone(),
        expires_at: next.expires_at,
    };
    let sealed = state.secrets.seal(&next.token);
    match state.store.rotate_refresh_token(&hash_token(&req.refresh_token), new, &sealed, REFRESH_GRACE).await? {
        Rotation::Rotated(user) => {
            let tenant = tenant_of(state, &user).await?;
            let access_token = state.tokens.issue_access(user.id, user.tenant_id, &user.email).map_err(ApiError::internal)?;
            Ok(AuthResponse { access_token, refresh_token: next.token, user, tenant })
        }
        Rotation::Repeated { user, sealed_successor } => {
            let refresh_token = state.secrets.open(&sealed_successor).map_err(ApiError::internal)?;
            let tenant = tenant_of(state, &user).await?;
            let access_token = state.tokens.issue_access(user.id, user.tenant_id, &user.email).map_err(ApiError::internal)?;
            Ok(AuthResponse { access_token, refresh_token, user, tenant })
        }
        Rotation::Reused => {
            tracing::warn!(tenant.id = %claims.tenant_id, user.id = %claims.user_id, family = %family_id,
                "refresh token reused: family revoked");
            Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "refresh token already used: every session of this login is revoked, sign in again",
            ))
        }
        Rotation::Invalid => Err(invalid_refresh()),
    }
}

/// Revokes the family of the presented refresh token: every token of that login.
pub async fn logout(state: &AppState, req: RefreshRequest) -> ApiResult<()> {
    let claims = verify_refresh(state, &req.refresh_token)?;
    let family_id = claims.fam.ok_or_else(invalid_refresh)?;
    state.store.revoke_refresh_family(claims.tenant_id, family_id).await?;
    Ok(())
}

async fn start_session(state: &AppState, user: User, tenant: Tenant, family_id: Uuid) -> ApiResult<AuthResponse> {
    let access_token = state.tokens.issue_access(user.id, tenant.id, &user.email).map_err(ApiError::internal)?;
    let refresh = state.tokens.issue_refresh(user.id, tenant.id, &user.email, family_id).map_err(ApiError::internal)?;
    state
        .store
        .insert_refresh_token(NewRefreshToken {
            id: refresh.id,
            tenant_id: tenant.id,
            user_id: user.id,
            family_id: refresh.family_id,
            token_hash: refresh.hash,
            expires_at: refresh.expires_at,
        })
        .await?;
    Ok(AuthResponse { access_token, refresh_token: refresh.token, user, tenant })
}

async fn tenant_of(state: &AppState, user: &User) -> ApiResult<Tenant> {
    state.store.get_tenant(user.tenant_id).await?.ok_or_else(|| ApiError::unauthorized("the user's tenant no longer exists"))
}

fn verify_refresh(state: &AppState, token: &str) -> ApiResult<Claims> {
    state.tokens.verify(token, TokenKind::Refresh).map_err(|e| match e {
        TokenError::Expired => {
            ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "invalid_refresh_token", "refresh token expired")
        }
        TokenError::Invalid => invalid_refresh(),
    })
}

fn invalid_refresh() -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "invalid_refresh_token", "invalid refresh token")
}

fn email_taken() -> ApiError {
    ApiError::conflict("a user with this email already exists")
}

fn throttled(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs().max(1);
    ApiError::too_many_requests(format!("too many failed logins for this account: retry in {secs} s"), secs)
}
