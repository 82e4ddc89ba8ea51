//! Provider webhooks. Each answers 2xx only after every message it carried is committed, so an
//! acknowledged message is never lost, and a redelivery is harmless.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::service::{channel_call, handle_inbound_message, mark_connected};
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::plugins::PluginError;
use crate::plugins::runtime::{AttachmentKind, Header, InboundMessage, VerifyError, WebhookRequest};
use crate::state::AppState;
use crate::store::{Channel, ChannelType, Ingested, MessageDirection, NewInboundMessage};

/// What a webhook delivery led to.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub ok: bool,
    /// Messages stored by this delivery.
    pub stored: usize,
    /// Messages already stored by an earlier delivery.
    pub duplicates: usize,
}

/// Telegram Bot API updates for one TELEGRAM_BOT channel. With `secretToken` in the channel's
/// config, `X-Telegram-Bot-Api-Secret-Token` must match it.
#[utoipa::path(post, path = "/api/telegram/bot/webhook/{channelInstanceId}", tag = "webhooks",
    params(("channelInstanceId" = Uuid, Path)), request_body(content = Object, description = "a Telegram Update"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, description = "no Telegram bot channel with this id", body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.id = %channel_id, channel.kind = "TELEGRAM_BOT"))]
pub async fn telegram_bot(
    State(state): State<AppState>,
    ApiPath(channel_id): ApiPath<Uuid>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookReceipt>> {
    let channel = state
        .store
        .find_channel(channel_id)
        .await?
        .filter(|c| c.channel_type == ChannelType::TelegramBot)
        .ok_or_else(|| ApiError::not_found("Telegram bot channel"))?;
    let request = webhook_request(&method, &uri, &headers, body);
    let mut receipt = WebhookReceipt { ok: true, ..Default::default() };
    receive(&state, &channel, &request, &mut receipt).await?;
    Ok(Json(receipt))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HubChallenge {
    #[serde(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Facebook's webhook verification: echoes `hub.challenge` when `hub.verify_token` equals
/// `FACEBOOK_VERIFY_TOKEN`.
#[utoipa::path(get, path = "/api/facebook/webhook", tag = "webhooks", params(HubChallenge),
    responses((status = 200, description = "the challenge, as text/plain", body = String), (status = 403, body = ApiErrorBody)))]
pub async fn facebook_verify(State(state): State<AppState>, ApiQuery(hub): ApiQuery<HubChallenge>) -> ApiResult<Response> {
    let expected = state.config.providers.facebook_verify_token.as_ref();
    let presented = hub.verify_token.unwrap_or_default();
    let matches = expected.is_some_and(|token| bool::from(token.expose_secret().as_bytes().ct_eq(presented.as_bytes())));
    if hub.mode.as_deref() != Some("subscribe") || !matches {
        return Err(ApiError::forbidden("hub.verify_token does not match FACEBOOK_VERIFY_TOKEN"));
    }
    Ok((StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "text/plain")], hub.challenge.unwrap_or_default()).into_response())
}

/// Messenger events for any page of the app. Each entry goes to the FACEBOOK channel whose
/// `externalId` is the page id; `X-Hub-Signature-256` must sign the raw body with the app secret.
#[utoipa::path(post, path = "/api/facebook/webhook", tag = "webhooks", request_body(content = Object, description = "a Messenger webhook delivery"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, description = "no FACEBOOK channel for any page of the delivery", body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.kind = "FACEBOOK"))]
pub async fn facebook(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookReceipt>> {
    let request = webhook_request(&method, &uri, &headers, body);
    let pages = state.plugins.accounts(ChannelType::Facebook, &request).await.map_err(plugin_failure)?.map_err(verify_failure)?;
    let mut channels: Vec<Channel> = Vec::new();
    for page in &pages {
        match state.store.find_channel_by_external_id(ChannelType::Facebook, page).await? {
            Some(channel) => channels.push(channel),
            None => tracing::warn!(page, "Messenger delivery for a page no channel connects"),
        }
    }
    if channels.is_empty() {
        return Err(ApiError::not_found("FACEBOOK channel for these pages"));
    }
    // Every page's signature is checked (and its messages read) before anything is stored.
    let mut verified = Vec::with_capacity(channels.len());
    for channel in channels {
        let call = channel_call(&state, &channel)?;
        let messages =
            state.plugins.receive(channel.channel_type, call, &request).await.map_err(plugin_failure)?.map_err(verify_failure)?;
        verified.push((channel, messages));
    }
    let mut receipt = WebhookReceipt { ok: true, ..Default::default() };
    for (channel, messages) in verified {
        store_messages(&state, &channel, messages, &mut receipt).await?;
    }
    Ok(Json(receipt))
}

/// Verify, normalize and store one delivery for one channel.
async fn receive(state: &AppState, channel: &Channel, request: &WebhookRequest, receipt: &mut WebhookReceipt) -> ApiResult<()> {
    let call = channel_call(state, channel)?;
    let messages =
        state.plugins.receive(channel.channel_type, call, request).await.map_err(plugin_failure)?.map_err(verify_failure)?;
    store_messages(state, channel, messages, receipt).await
}

async fn store_messages(
    state: &AppState,
    channel: &Channel,
    messages: Vec<InboundMessage>,
    receipt: &mut WebhookReceipt,
) -> ApiResult<()> {
    mark_connected(state, channel).await;
    for message in messages {
        match handle_inbound_message(state, to_payload(channel, message)).await? {
            Ingested::Stored { .. } => receipt.stored += 1,
            Ingested::Duplicate => receipt.duplicates += 1,
        }
    }
    Ok(())
}

fn webhook_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> WebhookRequest {
    WebhookRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some(Header { name: name.as_str().to_owned(), value: value.to_str().ok()?.to_owned() }))
            .collect(),
        body: body.to_vec(),
    }
}

/// The seed's `InboundMessagePayload`, from an adapter's normalized message.
pub fn to_payload(channel: &Channel, message: InboundMessage) -> NewInboundMessage {
    let attachments: Vec<Value> = message
        .attachments
        .into_iter()
        .map(|a| {
            json!({
                "kind": kind_name(a.kind),
                "url": a.url,
                "mimeType": a.mime_type,
                "fileName": a.file_name,
                "size": a.size,
                "extra": serde_json::from_str::<Value>(&a.extra).unwrap_or(Value::Null),
            })
        })
        .collect();
    NewInboundMessage {
        tenant_id: channel.tenant_id,
        channel_instance_id: channel.id,
        external_user_id: message.external_user_id,
        external_conversation_id: message.external_conversation_id,
        provider_message_id: message.provider_message_id,
        sender_name: message.sender_name,
        sender_username: message.sender_username,
        text: message.text,
        attachments: Value::Array(attachments),
        raw: serde_json::from_str(&message.raw).unwrap_or(Value::String(message.raw)),
        sent_at: message.sent_at_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        direction: MessageDirection::Inbound,
    }
}

pub fn kind_name(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Image => "image",
        AttachmentKind::Video => "video",
        AttachmentKind::Audio => "audio",
        AttachmentKind::Voice => "voice",
        AttachmentKind::Document => "document",
        AttachmentKind::Sticker => "sticker",
        AttachmentKind::Location => "location",
        AttachmentKind::Contact => "contact",
        AttachmentKind::Other => "other",
    }
}

fn verify_failure(err: VerifyError) -> ApiError {
    match err {
        VerifyError::Unauthorized(why) => ApiError::unauthorized(why),
        VerifyError::BadRequest(why) => ApiError::bad_request(why),
    }
}

/// An adapter refusing the payload is the caller's problem (400); an adapter failing is ours:
/// 503 without storing anything, so the provider delivers again later.
fn plugin_failure(err: PluginError) -> ApiError {
    match err {
        PluginError::Adapter { message, .. } => ApiError::new(StatusCode::BAD_REQUEST, "unrecognized_payload", message),
        PluginError::NoPlugin(kind) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_adapter", format!("no adapter is loaded for {kind}"))
        }
        other => {
            tracing::error!(error = %other, "adapter failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "adapter_failed", "the channel adapter failed; deliver again later")
        }
    }
}
