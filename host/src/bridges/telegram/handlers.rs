//! `POST /api/telegram/user/{start,confirm,logout}`: the seed's Telegram user-account login.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, AuthUser};
use crate::state::AppState;
use crate::store::Channel;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    /// International format, like +4915112345678.
    pub phone_number: String,
    /// An existing TELEGRAM_USER channel to log in on; without it the tenant's channel for this
    /// number is reused, or created.
    pub channel_instance_id: Option<Uuid>,
    /// The name of a created channel.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub channel_instance_id: Uuid,
    pub phone_number: String,
    /// Confirm before this; the pending login lives on the server that sent the code.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub channel: Channel,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    pub channel_instance_id: Uuid,
    /// The code Telegram sent (not needed when only the password is being sent).
    pub code: Option<String>,
    /// The two-step verification password, when the account has one.
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmResponse {
    pub channel_instance_id: Uuid,
    pub channel: Channel,
    pub account: TelegramAccount,
}

/// The Telegram account that logged in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramAccount {
    pub id: i64,
    pub name: String,
    pub username: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogoutRequest {
    pub channel_instance_id: Uuid,
}

/// Sends the login code to a Telegram account (needs `TELEGRAM_API_ID`/`TELEGRAM_API_HASH`).
#[utoipa::path(post, path = "/api/telegram/user/start", tag = "telegram", security(("bearer" = [])), request_body = StartRequest,
    responses((status = 200, body = StartResponse), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 502, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()))]
pub async fn start(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<StartRequest>,
) -> ApiResult<Json<StartResponse>> {
    auth.require_manager()?;
    let started = state
        .telegram
        .start_login(&state.bridge_deps, auth.tenant_id(), &req.phone_number, req.channel_instance_id, req.name.as_deref())
        .await?;
    Ok(Json(StartResponse {
        channel_instance_id: started.channel.id,
        phone_number: started.phone_number,
        expires_at: started.expires_at,
        channel: crate::channels::handlers::redacted(started.channel),
    }))
}

/// Completes the login with the code, and the two-step verification password when asked for it
/// (`password_required`, with the account's hint).
#[utoipa::path(post, path = "/api/telegram/user/confirm", tag = "telegram", security(("bearer" = [])), request_body = ConfirmRequest,
    responses((status = 200, body = ConfirmResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %req.channel_instance_id))]
pub async fn confirm(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> ApiResult<Json<ConfirmResponse>> {
    auth.require_manager()?;
    let (channel, account) = state
        .telegram
        .confirm_login(
            &state.bridge_deps,
            auth.tenant_id(),
            req.channel_instance_id,
            req.code.as_deref(),
            req.password.as_deref(),
        )
        .await?;
    Ok(Json(ConfirmResponse {
        channel_instance_id: channel.id,
        channel: crate::channels::handlers::redacted(channel),
        account: TelegramAccount { id: account.user_id, name: account.name, username: account.username, phone: account.phone },
    }))
}

/// Signs the account out at Telegram, stops listening and deletes the stored session.
#[utoipa::path(post, path = "/api/telegram/user/logout", tag = "telegram", security(("bearer" = [])), request_body = LogoutRequest,
    responses((status = 200, body = Channel), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %req.channel_instance_id))]
pub async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<LogoutRequest>,
) -> ApiResult<Json<Channel>> {
    auth.require_manager()?;
    let channel = state.telegram.logout(&state.bridge_deps, auth.tenant_id(), req.channel_instance_id).await?;
    Ok(Json(crate::channels::handlers::redacted(channel)))
}
