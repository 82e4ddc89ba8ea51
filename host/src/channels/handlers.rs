//! `/api/channels`: every tenant's channel instances. Agents may read them; owners and admins
//! create, change and delete them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::secrets;
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, AuthUser};
use crate::state::AppState;
use crate::store::{Channel, ChannelPatch, ChannelType, NewChannel, StoreError};
use crate::validate;

const MAX_EXTERNAL_ID_LEN: usize = 255;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChannelRequest {
    pub name: String,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// Free-form data for the UI.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Adapter settings; secret values (tokens, app secrets) are encrypted and shown redacted.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// The provider's id of the account (a Facebook page id, a phone number).
    pub external_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateChannelRequest {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Replaces the configuration; a secret sent back as `"********"` keeps its stored value.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
}

/// Creates a channel instance (status `DISCONNECTED`; a WHATSAPP channel starts pairing: `CONNECTING`).
#[utoipa::path(post, path = "/api/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannelRequest,
    responses((status = 201, body = Channel), (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.kind = %req.channel_type))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    auth.require_manager()?;
    let config = object("config", req.config)?;
    let channel = NewChannel {
        channel_type: req.channel_type,
        name: validate::name("name", &req.name)?,
        external_id: external_id(req.external_id)?,
        config: secrets::seal(&state.secrets, config, None),
        metadata: object("metadata", req.metadata)?,
    };
    let mut channel = state.store.create_channel(auth.tenant_id(), channel).await.map_err(external_id_conflict)?;
    tracing::info!(channel.id = %channel.id, "channel created");
    // A WhatsApp channel starts pairing at once: QR codes follow as `whatsapp-qr`.
    if channel.channel_type == ChannelType::Whatsapp {
        channel = state.whatsapp.connect(&state, &channel).await?;
    }
    Ok((StatusCode::CREATED, Json(redacted(channel))))
}

/// The tenant's channel instances, oldest first.
#[utoipa::path(get, path = "/api/channels", tag = "channels", security(("bearer" = [])), responses((status = 200, body = Vec<Channel>)))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Vec<Channel>>> {
    let channels = state.store.list_channels(auth.tenant_id()).await?;
    Ok(Json(channels.into_iter().map(redacted).collect()))
}

#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Channel), (status = 404, body = ApiErrorBody)))]
pub async fn get(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<Channel>> {
    let channel = state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    Ok(Json(redacted(channel)))
}

#[utoipa::path(patch, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateChannelRequest,
    responses((status = 200, body = Channel), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %id))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateChannelRequest>,
) -> ApiResult<Json<Channel>> {
    auth.require_manager()?;
    let current = state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    let config = match req.config {
        Some(config) => Some(secrets::seal(&state.secrets, object("config", Some(config))?, Some(&current.config.0))),
        None => None,
    };
    let patch = ChannelPatch {
        name: req.name.as_deref().map(|n| validate::name("name", n)).transpose()?,
        external_id: req.external_id.map(external_id).transpose()?,
        config,
        metadata: req.metadata.map(|m| object("metadata", Some(m))).transpose()?,
    };
    let channel = state
        .store
        .update_channel(auth.tenant_id(), id, patch)
        .await
        .map_err(external_id_conflict)?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    Ok(Json(redacted(channel)))
}

/// Deletes a channel with its customers, conversations and messages; a WhatsApp device or
/// Telegram user account is logged out first.
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %id))]
pub async fn remove(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    auth.require_manager()?;
    let channel = state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    // A live provider session is ended first (logged out, keys deleted), not left running.
    match channel.channel_type {
        ChannelType::TelegramUser => state.telegram.sign_out_and_forget(&state, &channel).await,
        ChannelType::Whatsapp => state.whatsapp.disconnect(&state, &channel).await,
        _ => {}
    }
    if !state.store.delete_channel(auth.tenant_id(), id).await? {
        return Err(ApiError::not_found("channel"));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn redacted(mut channel: Channel) -> Channel {
    channel.config.0 = secrets::redact(&channel.config.0);
    channel
}

fn object(field: &str, value: Option<Value>) -> ApiResult<Value> {
    match value {
        None | Some(Value::Null) => Ok(json!({})),
        Some(value @ Value::Object(_)) => Ok(value),
        Some(_) => Err(ApiError::validation(format!("{field}: must be a JSON object"))),
    }
}

fn external_id(value: Option<String>) -> ApiResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) if id.chars().count() > MAX_EXTERNAL_ID_LEN => {
            Err(ApiError::validation(format!("externalId: at most {MAX_EXTERNAL_ID_LEN} characters")))
        }
        Some(id) => Ok(Some(id.to_owned())),
    }
}

fn external_id_conflict(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => ApiError::conflict("another channel of this type already has this externalId"),
        other => other.into(),
    }
}
