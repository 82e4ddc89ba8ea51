//! `GET /api/messages/:id/media`: an inbound attachment's bytes, fetched through the channel's
//! adapter (a WhatsApp attachment is downloaded and decrypted by the live client).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::channels::adapter::MediaError;
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct MediaQuery {
    /// Which attachment of the message (0 by default).
    pub index: Option<usize>,
}

/// Streams an inbound attachment, served as a download (never rendered inline by a browser).
#[utoipa::path(get, path = "/api/messages/{id}/media", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), MediaQuery),
    responses((status = 200, description = "the media bytes", content_type = "application/octet-stream", body = String,
        example = json!("(the file's bytes)")), (status = 404, body = ApiErrorBody),
        (status = 502, body = ApiErrorBody),
        (status = 503, description = "the session that can fetch it is starting: try again shortly", body = ApiErrorBody)))]
pub async fn media(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<MediaQuery>,
) -> ApiResult<Response> {
    let message = state.store.get_message(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("message"))?;
    let channel = state
        .store
        .get_channel(auth.tenant_id(), message.channel_instance_id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let index = query.index.unwrap_or(0);
    let no_media = |why: String| ApiError::new(StatusCode::NOT_FOUND, "no_media", why);
    let attachment =
        message.attachments.0.get(index).ok_or_else(|| no_media(format!("message {id} has no attachment {index}")))?;
    let adapter = state
        .channels
        .get(&channel.channel_type)
        .ok_or_else(|| no_media(format!("no adapter serves {}", channel.channel_type)))?;
    let media = adapter.download(&channel, attachment).await.map_err(|err| match err {
        MediaError::Unsupported(why) | MediaError::NotFound(why) => no_media(why),
        MediaError::NotRunning => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "session_not_running", err.to_string()),
        MediaError::Unavailable(why) => ApiError::new(StatusCode::BAD_GATEWAY, "media_unavailable", why),
    })?;
    // The sender chose the type: served as a download, never rendered inline by a browser.
    let mime = media.mime_type.as_deref().unwrap_or("application/octet-stream");
    let mut response = media.bytes.into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let name = media.file_name.map(|n| n.replace(|c: char| c == '"' || c == '\\' || c.is_control(), "_"));
    let disposition = name
        .and_then(|name| HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).ok())
        .unwrap_or(HeaderValue::from_static("attachment"));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}
