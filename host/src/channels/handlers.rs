//! `/api/channels`: every tenant's channel instances, and `/api/channel-types`: what can be
//! created. Agents may read them; owners and admins create, change, connect and delete them.
//! Whatever differs per type is the adapter's: its config schema, its connect and disconnect.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::adapter::{ChannelAdapter, ChannelTypeInfo, ConnectError};
use super::secrets;
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, AuthUser};
use crate::state::AppState;
use crate::store::{Channel, ChannelPatch, ChannelStatus, ChannelType, NewChannel, StoreError};
use crate::validate;

const MAX_EXTERNAL_ID_LEN: usize = 255;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChannelRequest {
    pub name: String,
    /// One of `GET /api/channel-types`.
    #[serde(rename = "type")]
    pub channel_type: String,
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

/// The channel types this server can create: the built-in plugins, the bridges and any plugin
/// loaded from plugins.toml, each with its config schema and webhook route.
#[utoipa::path(get, path = "/api/channel-types", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChannelTypeInfo>)))]
pub async fn types(State(state): State<AppState>, _auth: AuthUser) -> Json<Vec<ChannelTypeInfo>> {
    Json(state.channels.types())
}

/// Creates a channel instance of an available type (status `DISCONNECTED`; a WHATSAPP channel
/// starts pairing: `CONNECTING`). `config` is checked against the type's schema.
#[utoipa::path(post, path = "/api/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannelRequest,
    responses((status = 201, body = Channel), (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, description = "unknown_channel_type, or a config field missing", body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.kind = %req.channel_type))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    auth.require_manager()?;
    let adapter = adapter_of_type(&state, &req.channel_type)?;
    let info = adapter.info();
    let config = object("config", req.config)?;
    check_config(info, &config, None)?;
    let channel = NewChannel {
        channel_type: info.channel_type.clone(),
        name: validate::name("name", &req.name)?,
        external_id: external_id(req.external_id)?,
        config: secrets::seal(&state.secrets, config, None, &info.config_schema),
        metadata: object("metadata", req.metadata)?,
    };
    let channel = state.store.create_channel(auth.tenant_id(), channel).await.map_err(external_id_conflict)?;
    tracing::info!(channel.id = %channel.id, "channel created");
    let channel = adapter.created(channel).await.map_err(connect_failure)?;
    Ok((StatusCode::CREATED, Json(redacted(channel))))
}

/// Connects a channel at its provider: a webhook channel checks its credentials (and, with
/// `OMNICHAT_PUBLIC_URL`, registers its webhook) and becomes CONNECTED, or ERROR with the
/// provider's reason; a WHATSAPP channel becomes CONNECTING and its client starts (QR codes
/// follow as `whatsapp-qr`). Telegram user accounts log in through `/api/telegram/user/start`.
#[utoipa::path(post, path = "/api/channels/{id}/connect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 202, body = Channel), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %id))]
pub async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    auth.require_manager()?;
    let channel = state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    let adapter = adapter_of(&state, &channel)?;
    let channel = adapter.connect(&channel).await.map_err(connect_failure)?;
    Ok((StatusCode::ACCEPTED, Json(redacted(channel))))
}

/// Ends a channel's provider session or registration (a WhatsApp device or Telegram account is
/// logged out and its keys cleared; a bot's webhook is deleted); the channel becomes DISCONNECTED.
#[utoipa::path(post, path = "/api/channels/{id}/disconnect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Channel), (status = 404, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), channel.id = %id))]
pub async fn disconnect(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<Channel>> {
    auth.require_manager()?;
    let channel = state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    if let Some(adapter) = state.channels.get(&channel.channel_type) {
        adapter.disconnect(&channel).await;
    }
    let channel = state
        .status
        .set(channel.tenant_id, channel.id, ChannelStatus::Disconnected, Some("disconnected"))
        .await
        .unwrap_or(channel);
    Ok(Json(redacted(channel)))
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
        Some(config) => {
            let config = object("config", Some(config))?;
            let previous = Some(&current.config.0);
            match state.channels.get(&current.channel_type) {
                Some(adapter) => {
                    check_config(adapter.info(), &config, previous)?;
                    Some(secrets::seal(&state.secrets, config, previous, &adapter.info().config_schema))
                }
                // No adapter serves the type any more (its plugin was removed): keep what was
                // sealed; only the rule for undeclared fields applies.
                None => Some(secrets::seal(&state.secrets, config, previous, &[])),
            }
        }
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
    if let Some(adapter) = state.channels.get(&channel.channel_type) {
        adapter.remove(&channel).await;
    }
    if !state.store.delete_channel(auth.tenant_id(), id).await? {
        return Err(ApiError::not_found("channel"));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn adapter_of_type(state: &AppState, name: &str) -> ApiResult<Arc<dyn ChannelAdapter>> {
    ChannelType::parse(name).ok().and_then(|t| state.channels.get(&t)).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_channel_type",
            format!("type: unknown channel type {name:?}; available: {}", state.channels.type_names()),
        )
    })
}

fn adapter_of(state: &AppState, channel: &Channel) -> ApiResult<Arc<dyn ChannelAdapter>> {
    state.channels.get(&channel.channel_type).ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "no_adapter", format!("no adapter is loaded for {} channels", channel.channel_type))
    })
}

/// Every required field of the type's schema is there (on an update, the redacted placeholder
/// of a stored secret counts).
fn check_config(info: &ChannelTypeInfo, config: &Value, previous: Option<&Value>) -> ApiResult<()> {
    for field in info.config_schema.iter().filter(|f| f.required) {
        let given = match config.get(&field.name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == secrets::REDACTED => previous.and_then(|p| p.get(&field.name)).is_some(),
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        if !given {
            let what = if field.description.is_empty() { String::new() } else { format!(" ({})", field.description) };
            return Err(ApiError::validation(format!(
                "config.{}: required for {} channels{what}",
                field.name, info.channel_type
            )));
        }
    }
    Ok(())
}

fn connect_failure(err: ConnectError) -> ApiError {
    match err {
        ConnectError::NotApplicable { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
        ConnectError::Store(err) => err.into(),
    }
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
        StoreError::Conflict(_) => ApiError::conflict("another of your channels of this type already has this externalId"),
        other => other.into(),
    }
}
