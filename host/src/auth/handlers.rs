//! `/api/auth/*`.

use axum::Json;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::{self, AuthResponse, LoginRequest, RefreshRequest, RegisterRequest};
use crate::error::{ApiErrorBody, ApiResult};
use crate::http::client::ClientAddress;
use crate::http::extract::{ApiJson, AuthUser};
use crate::state::AppState;
use crate::store::User;
use axum::extract::State;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub user: User,
    pub tenant_id: Uuid,
}

/// Creates a tenant and its first user (role `owner`).
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = AuthResponse),
    (status = 409, description = "email already registered", body = ApiErrorBody),
    (status = 422, description = "invalid input", body = ApiErrorBody),
))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    Ok((StatusCode::CREATED, Json(service::register(&state, req).await?)))
}

/// Exchanges e-mail and password for tokens. Repeated failures lock the account for a while, and
/// a client address that fails too often is refused for a while, whatever the account (429).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 401, body = ApiErrorBody),
    (status = 429, description = "too many failed logins; see Retry-After", body = ApiErrorBody),
))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<AuthResponse>> {
    Ok(Json(service::login(&state, req, &client).await?))
}

/// Rotates a refresh token: the presented one is spent, a new pair is returned.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 401, description = "invalid, expired or reused token (reuse revokes the whole family)", body = ApiErrorBody),
))]
#[tracing::instrument(skip_all)]
pub async fn refresh(State(state): State<AppState>, ApiJson(req): ApiJson<RefreshRequest>) -> ApiResult<Json<AuthResponse>> {
    Ok(Json(service::refresh(&state, req).await?))
}

/// Signs out: revokes the refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest, responses(
    (status = 204),
    (status = 401, body = ApiErrorBody),
))]
#[tracing::instrument(skip_all)]
pub async fn logout(State(state): State<AppState>, ApiJson(req): ApiJson<RefreshRequest>) -> ApiResult<StatusCode> {
    service::logout(&state, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller and its tenant.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = MeResponse),
    (status = 401, body = ApiErrorBody),
))]
pub async fn me(auth: AuthUser) -> Json<MeResponse> {
    let tenant_id = auth.tenant_id();
    Json(MeResponse { user: auth.user, tenant_id })
}
