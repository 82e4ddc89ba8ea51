//! `GET /api/channels/:id/whatsapp/qr`, `POST /api/channels/:id/whatsapp/pair-code`: pairing a
//! WhatsApp channel (connect, disconnect and media go through the channel seam). Both work on
//! any replica: the QR is read from the database, the pair code asked of the replica running the
//! session.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::bridges::handover::Refusal;
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

async fn channel_of(state: &AppState, auth: &AuthUser, id: Uuid) -> ApiResult<Channel> {
    state.store.get_channel(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("channel"))
}

fn whatsapp_only(channel: &Channel) -> ApiResult<()> {
    if channel.channel_type != ChannelType::WHATSAPP {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_channel_type",
            format!("channel {} is a {} channel, not WHATSAPP", channel.id, channel.channel_type),
        ));
    }
    Ok(())
}

/// The session runs nowhere now: starting, or moving between replicas.
pub(crate) fn not_running(refusal: &Refusal) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "session_not_running", refusal.to_string())
}

/// The current pairing QR code, for a UI that joined after it was emitted.
#[utoipa::path(get, path = "/api/channels/{id}/whatsapp/qr", tag = "whatsapp", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = QrResponse), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn qr(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<QrResponse>> {
    Ok(Json(current_qr(&state, &auth, id).await?))
}

/// The channel's QR code while one is there to scan (404 `no_qr_code` otherwise).
async fn current_qr(state: &AppState, auth: &AuthUser, id: Uuid) -> ApiResult<QrResponse> {
    let channel = channel_of(state, auth, id).await?;
    whatsapp_only(&channel)?;
    let session = state.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await?;
    let current = session.and_then(|s| Some((s.qr?, s.qr_expires_at?))).filter(|(_, expires)| *expires > chrono::Utc::now());
    let (qr, expires_at) = current.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_qr_code", format!("no QR code to scan: the channel is {}", channel.status))
    })?;
    Ok(QrResponse { channel_instance_id: channel.id, qr, expires_at })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QrImageQuery {
    /// `svg` (the default) or `png`.
    pub format: Option<String>,
}

/// The current pairing QR code rendered as an image (`<img src>` it, with the token sent as a
/// bearer header by the page's fetch): SVG, or PNG with `?format=png`. Never cached; the code
/// changes with each `whatsapp-qr` event.
#[utoipa::path(get, path = "/api/channels/{id}/whatsapp/qr.svg", tag = "whatsapp", security(("bearer" = [])),
    params(("id" = Uuid, Path), QrImageQuery),
    responses(
        (status = 200, description = "the QR code (image/svg+xml, or image/png with format=png)", content_type = "image/svg+xml",
            body = String, example = json!("<svg xmlns=\"http://www.w3.org/2000/svg\" ...>")),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn qr_image(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<QrImageQuery>,
) -> ApiResult<Response> {
    let format = query.format.as_deref().map(str::trim).map(str::to_ascii_lowercase);
    let png = match format.as_deref() {
        None | Some("" | "svg") => false,
        Some("png") => true,
        Some(_) => return Err(ApiError::validation("format must be svg or png")),
    };
    let current = current_qr(&state, &auth, id).await?;
    let (content_type, body) = if png {
        ("image/png", super::qr::png(&current.qr).map_err(ApiError::internal)?)
    } else {
        ("image/svg+xml", super::qr::svg(&current.qr).map_err(ApiError::internal)?.into_bytes())
    };
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-store"),
        // Opened on its own, the image may not run anything.
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
    ];
    Ok((headers, body).into_response())
}

/// Pairs by phone number instead of QR: answers the code to enter on the phone.
#[utoipa::path(post, path = "/api/channels/{id}/whatsapp/pair-code", tag = "whatsapp", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PairCodeRequest,
    responses((status = 200, body = PairCodeResponse), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody), (status = 502, body = ApiErrorBody),
        (status = 503, description = "the session is starting: try again shortly", body = ApiErrorBody)))]
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
    let code = state.whatsapp.pair_code(&state.bridge_deps, &channel, &digits).await.map_err(|err| match err {
        Refusal::NotLive | Refusal::NoAnswer => not_running(&err),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", other.to_string()),
    })?;
    Ok(Json(PairCodeResponse { channel_instance_id: channel.id, code }))
}
