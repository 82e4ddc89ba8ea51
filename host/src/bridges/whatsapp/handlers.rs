//! `POST /api/channels/:id/connect|disconnect`, `GET /api/channels/:id/whatsapp/qr`,
//! `POST /api/channels/:id/whatsapp/pair-code`, `GET /api/messages/:id/media`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::WhatsAppSendError;
use super::client::WaSendError;
use crate::channels::handlers::redacted;
use crate::channels::set_status;
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
use crate::store::{Channel, ChannelStatus, ChannelType};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrResponse {
    pub channel_instance_id: Uuid,
    /// The string to render as a QR code (WhatsApp > Linked devices > Link a device).
    pub qr: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairCodeRequest {
    /// The business's WhatsApp number in international format.
    pub phone_number: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairCodeResponse {
    pub channel_instance_id: Uuid,
    /// Enter it on the phone: WhatsApp > Linked devices > Link with phone number.
    pub code: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MediaQuery {
    /// Which attachment of the message (0 by default).
    pub index: Option<usize>,
}

async fn channel_of(state: &AppState, auth: &AuthUser, id: Uuid) -> ApiResult<Channel> {
    state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))
}

fn whatsapp_only(channel: &Channel) -> ApiResult<()> {
    if channel.channel_type != ChannelType::Whatsapp {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_channel_type",
            format!("channel {} is a {} channel, not WHATSAPP", channel.id, channel.channel_type),
        ));
    }
    Ok(())
}

fn not_here() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "session_not_running_here",
        "the WhatsApp session is not running on this server (it is starting, or another replica runs it): try again shortly",
    )
}

/// Starts a channel's provider session: a WHATSAPP channel becomes CONNECTING and its client
/// starts (QR codes follow as `whatsapp-qr`). Telegram user accounts log in through
/// `/api/telegram/user/start`; webhook channels need no connection.
#[utoipa::path(post, path = "/api/channels/{id}/connect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 202, body = Channel), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    auth.require_manager()?;
    let channel = channel_of(&state, &auth, id).await?;
    match channel.channel_type {
        ChannelType::Whatsapp => {
            let channel = state.whatsapp.connect(&state, &channel).await?;
            Ok((StatusCode::ACCEPTED, Json(redacted(channel))))
        }
        ChannelType::TelegramUser => Err(ApiError::new(
            StatusCode::CONFLICT,
            "use_telegram_login",
            "a Telegram user account connects by logging in: POST /api/telegram/user/start",
        )),
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_connect",
            format!("{other} channels receive webhooks and have no session to connect"),
        )),
    }
}

/// Ends a channel's provider session: logs the WhatsApp device (or Telegram account) out, stops
/// its client and clears its keys; the channel becomes DISCONNECTED.
#[utoipa::path(post, path = "/api/channels/{id}/disconnect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Channel), (status = 404, body = ApiErrorBody)))]
pub async fn disconnect(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<Channel>> {
    auth.require_manager()?;
    let channel = channel_of(&state, &auth, id).await?;
    match channel.channel_type {
        ChannelType::Whatsapp => state.whatsapp.disconnect(&state, &channel).await,
        ChannelType::TelegramUser => state.telegram.sign_out_and_forget(&state, &channel).await,
        _ => {}
    }
    let channel = set_status(&state, channel.tenant_id, channel.id, ChannelStatus::Disconnected, Some("disconnected"))
        .await
        .unwrap_or(channel);
    Ok(Json(redacted(channel)))
}

/// The current pairing QR code, for a UI that joined after it was emitted.
#[utoipa::path(get, path = "/api/channels/{id}/whatsapp/qr", tag = "whatsapp", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = QrResponse), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn qr(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<QrResponse>> {
    let channel = channel_of(&state, &auth, id).await?;
    whatsapp_only(&channel)?;
    let session = state.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await?;
    let current = session.and_then(|s| Some((s.qr?, s.qr_expires_at?))).filter(|(_, expires)| *expires > chrono::Utc::now());
    let (qr, expires_at) = current.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_qr_code", format!("no QR code to scan: the channel is {}", channel.status))
    })?;
    Ok(Json(QrResponse { channel_instance_id: channel.id, qr, expires_at }))
}

/// Pairs by phone number instead of QR: answers the code to enter on the phone.
#[utoipa::path(post, path = "/api/channels/{id}/whatsapp/pair-code", tag = "whatsapp", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PairCodeRequest,
    responses((status = 200, body = PairCodeResponse), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody), (status = 502, body = ApiErrorBody)))]
pub async fn pair_code(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PairCodeRequest>,
) -> ApiResult<Json<PairCodeResponse>> {
    auth.require_manager()?;
    let channel = channel_of(&state, &auth, id).await?;
    whatsapp_only(&channel)?;
    let digits: String = req.phone_number.chars().filter(char::is_ascii_digit).collect();
    let valid = req.phone_number.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !valid || !(7..=15).contains(&digits.len()) {
        return Err(ApiError::validation("phoneNumber must be a phone number in international format, like +4915112345678"));
    }
    if channel.status == ChannelStatus::Connected {
        return Err(ApiError::conflict("the channel is already paired"));
    }
    let code = state.whatsapp.pair_code(channel.id, &digits).await.map_err(|err| match err {
        WhatsAppSendError::NotLiveHere => not_here(),
        WhatsAppSendError::WhatsApp(err) => ApiError::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", err.to_string()),
    })?;
    Ok(Json(PairCodeResponse { channel_instance_id: channel.id, code }))
}

/// Streams an inbound WhatsApp attachment, downloaded (and decrypted) through the live client.
#[utoipa::path(get, path = "/api/messages/{id}/media", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), MediaQuery),
    responses((status = 200, description = "the media bytes"), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 502, body = ApiErrorBody)))]
pub async fn media(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<MediaQuery>,
) -> ApiResult<Response> {
    let message = state.store.get_message(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("message"))?;
    let channel = channel_of(&state, &auth, message.channel_instance_id).await?;
    whatsapp_only(&channel)?;
    let index = query.index.unwrap_or(0);
    let attachment = message.attachments.0.get(index).filter(|a| a["extra"]["download"].is_object()).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_media", format!("message {id} has no downloadable attachment {index}"))
    })?;
    let bytes = state.whatsapp.download(channel.id, &attachment["extra"]).await.map_err(|err| match err {
        WhatsAppSendError::NotLiveHere => not_here(),
        WhatsAppSendError::WhatsApp(WaSendError::Refused(why) | WaSendError::Unavailable(why)) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "media_unavailable", why)
        }
    })?;
    // The sender chose the type: served as a download, never rendered inline by a browser.
    let mime = attachment["mimeType"].as_str().unwrap_or("application/octet-stream");
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let name = attachment["fileName"].as_str().map(|n| n.replace(|c: char| c == '"' || c == '\\' || c.is_control(), "_"));
    let disposition = name
        .and_then(|name| HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).ok())
        .unwrap_or(HeaderValue::from_static("attachment"));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}
