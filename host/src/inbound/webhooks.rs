//! Provider webhooks, for every channel type through its adapter: `/api/webhooks/{channelInstanceId}`
//! for providers whose URL names the channel, `/api/webhooks/shared/{channelType}` for those that
//! post many accounts to one URL, and the seed's Telegram and Facebook routes on the same path.
//! The adapter verifies and maps the delivery and may answer it itself (a handshake); the host
//! answers 2xx only after every message it carried is committed, so an acknowledged message is
//! never lost, and a redelivery is harmless.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::channels::ChannelAdapter;
use crate::channels::adapter::{Header, ReceiveError, Routing, WebhookMode, WebhookOutcome, WebhookRequest, WebhookResponse};
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::ApiPath;
use crate::inbound::service::receipt_update;
use crate::state::AppState;
use crate::store::{Channel, ChannelStatus, ChannelType, Ingested};

/// What a webhook delivery led to.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub ok: bool,
    /// Messages stored by this delivery.
    pub stored: usize,
    /// Messages already stored by an earlier delivery.
    pub duplicates: usize,
    /// Replies moved to DELIVERED or READ by the delivery's receipts.
    pub receipts: usize,
}

/// A webhook for one channel, named by its URL (the Telegram bot, and any plugin whose
/// webhooks are `per-channel`).
#[utoipa::path(post, path = "/api/webhooks/{channelInstanceId}", tag = "webhooks",
    params(("channelInstanceId" = Uuid, Path)), request_body(content = Object, description = "the provider's delivery"),
    responses((status = 200, body = WebhookReceipt, description = "stored (or the adapter's own answer)"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.id = %channel_id))]
pub async fn channel_webhook(
    State(state): State<AppState>,
    ApiPath(channel_id): ApiPath<Uuid>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    per_channel(&state, channel_id, None, webhook_request(&method, &uri, &headers, body)).await
}

/// The same route for providers that verify it with a GET.
#[utoipa::path(get, path = "/api/webhooks/{channelInstanceId}", tag = "webhooks", params(("channelInstanceId" = Uuid, Path)),
    responses((status = 200, description = "the adapter's answer (a handshake's challenge)", content_type = "text/plain",
        body = String, example = json!("1158201444")), (status = 404, body = ApiErrorBody)))]
pub async fn channel_webhook_get(
    state: State<AppState>,
    channel_id: ApiPath<Uuid>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    channel_webhook(state, channel_id, method, uri, headers, body).await
}

/// A webhook shared by every channel of a type (Facebook's one URL per app): the adapter names
/// the accounts it is for, and each goes to the channel with that `externalId`. Handshakes that
/// concern no channel (`hub.challenge`) are the adapter's to answer.
#[utoipa::path(post, path = "/api/webhooks/shared/{channelType}", tag = "webhooks",
    params(("channelType" = String, Path, example = "FACEBOOK")), request_body(content = Object, description = "the provider's delivery"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.kind = %channel_type))]
pub async fn shared_webhook(
    State(state): State<AppState>,
    ApiPath(channel_type): ApiPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let channel_type = ChannelType::parse(&channel_type).map_err(|_| ApiError::not_found("channel type"))?;
    shared(&state, &channel_type, webhook_request(&method, &uri, &headers, body)).await
}

#[utoipa::path(get, path = "/api/webhooks/shared/{channelType}", tag = "webhooks", params(("channelType" = String, Path)),
    responses((status = 200, description = "the adapter's answer to a handshake", content_type = "text/plain", body = String,
        example = json!("1158201444")), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn shared_webhook_get(
    state: State<AppState>,
    channel_type: ApiPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    shared_webhook(state, channel_type, method, uri, headers, body).await
}

/// The seed's Telegram Bot API route: `/api/webhooks/{id}` for TELEGRAM_BOT channels only.
#[utoipa::path(post, path = "/api/telegram/bot/webhook/{channelInstanceId}", tag = "webhooks",
    params(("channelInstanceId" = Uuid, Path)), request_body(content = Object, description = "a Telegram Update"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, description = "no Telegram bot channel with this id", body = ApiErrorBody)))]
pub async fn telegram_bot(
    State(state): State<AppState>,
    ApiPath(channel_id): ApiPath<Uuid>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let request = webhook_request(&method, &uri, &headers, body);
    per_channel(&state, channel_id, Some(&ChannelType::TELEGRAM_BOT), request).await
}

/// The seed's Facebook route: `/api/webhooks/shared/FACEBOOK`.
#[utoipa::path(post, path = "/api/facebook/webhook", tag = "webhooks", request_body(content = Object, description = "a Messenger webhook delivery"),
    responses((status = 200, body = WebhookReceipt), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, description = "no FACEBOOK channel for any page of the delivery", body = ApiErrorBody)))]
pub async fn facebook(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    shared(&state, &ChannelType::FACEBOOK, webhook_request(&method, &uri, &headers, body)).await
}

/// Facebook's webhook verification (`hub.challenge` with `FACEBOOK_VERIFY_TOKEN`), answered by the plugin.
#[utoipa::path(get, path = "/api/facebook/webhook", tag = "webhooks",
    responses((status = 200, description = "the challenge, as text/plain", body = String), (status = 403, body = ApiErrorBody)))]
pub async fn facebook_verify(
    state: State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    facebook(state, method, uri, headers, body).await
}

async fn per_channel(
    state: &AppState,
    channel_id: Uuid,
    expected: Option<&ChannelType>,
    request: WebhookRequest,
) -> ApiResult<Response> {
    let channel = state
        .store
        .find_channel(channel_id)
        .await?
        .filter(|c| expected.is_none_or(|t| &c.channel_type == t))
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let adapter = adapter_for(state, &channel.channel_type, WebhookMode::PerChannel)?;
    let outcome = adapter.receive(&channel, &request).await.map_err(receive_failure)?;
    let mut receipt = WebhookReceipt { ok: true, ..Default::default() };
    let response = take_outcome(state, &channel, outcome, &mut receipt).await?;
    Ok(respond(response, receipt))
}

async fn shared(state: &AppState, channel_type: &ChannelType, request: WebhookRequest) -> ApiResult<Response> {
    let adapter = adapter_for(state, channel_type, WebhookMode::Shared)?;
    let accounts = match adapter.route(&request).await.map_err(receive_failure)? {
        Routing::Answer(answer) => return Ok(respond(Some(answer), WebhookReceipt::default())),
        Routing::Accounts(accounts) => accounts,
    };
    // An account claimed by several tenants goes only to the channels whose `connect` proved
    // the account's credentials: a tenant that merely typed another's page id gets nothing.
    let mut channels: Vec<Channel> = Vec::new();
    for account in &accounts {
        let claims = state.store.find_channels_by_external_id(channel_type, account).await?;
        let claimed = claims.len();
        let owners: Vec<Channel> =
            if claimed > 1 { claims.into_iter().filter(|c| c.verified_at.is_some()).collect() } else { claims };
        if owners.is_empty() {
            tracing::warn!(account, channel.kind = %channel_type, claimed, "webhook for an account no (verified) channel connects");
        }
        channels.extend(owners);
    }
    // Whether a delivery names a known account is told only to a delivery that proves itself:
    // an unknown account gets the same answer as a refused signature.
    if channels.is_empty() {
        return Err(not_accepted());
    }
    // Every account's part is verified (and read) before anything is stored. One channel that
    // refuses the delivery (another tenant's wrong app secret, say) does not hold back the
    // others: it is skipped and logged; only when none accepts is the delivery refused.
    let mut verified = Vec::with_capacity(channels.len());
    let mut refused = None;
    for channel in channels {
        match adapter.receive(&channel, &request).await {
            Ok(outcome) => verified.push((channel, outcome)),
            Err(err @ (ReceiveError::Unauthorized(_) | ReceiveError::BadRequest(_))) => {
                tracing::warn!(channel.id = %channel.id, tenant.id = %channel.tenant_id, error = %err, "a channel refused its part of a shared webhook");
                refused.get_or_insert(err);
            }
            Err(err) => return Err(receive_failure(err)),
        }
    }
    if verified.is_empty()
        && let Some(err) = refused
    {
        return Err(match err {
            ReceiveError::Unauthorized(_) => not_accepted(),
            other => receive_failure(other),
        });
    }
    let mut receipt = WebhookReceipt { ok: true, ..Default::default() };
    let mut answer = None;
    for (channel, outcome) in verified {
        let response = take_outcome(state, &channel, outcome, &mut receipt).await?;
        answer = answer.or(response);
    }
    Ok(respond(answer, receipt))
}

fn adapter_for(state: &AppState, channel_type: &ChannelType, mode: WebhookMode) -> ApiResult<std::sync::Arc<dyn ChannelAdapter>> {
    let adapter = state
        .channels
        .get(channel_type)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_adapter", format!("no adapter is loaded for {channel_type}")))?;
    match adapter.info().webhook.as_ref() {
        Some(webhook) if webhook.mode == mode => Ok(adapter),
        Some(webhook) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "wrong_webhook_route",
            format!("{channel_type} webhooks go to {}", webhook.path),
        )),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no_webhooks", format!("{channel_type} channels take no webhooks"))),
    }
}

/// Stores what a delivery carried for one channel; answers the adapter's own response, if any.
async fn take_outcome(
    state: &AppState,
    channel: &Channel,
    outcome: WebhookOutcome,
    receipt: &mut WebhookReceipt,
) -> ApiResult<Option<WebhookResponse>> {
    // A verified webhook shows a channel that was never connected (or is connecting) works. A
    // channel disconnected on purpose, or in ERROR, keeps its status: its messages are still
    // stored, but only `connect` changes what an operator decided or the provider reported.
    let never_connected = channel.status == ChannelStatus::Disconnected && channel.status_reason.is_none();
    if never_connected || channel.status == ChannelStatus::Connecting {
        state.status.set(channel.tenant_id, channel.id, ChannelStatus::Connected, None).await;
    }
    for message in outcome.messages {
        match state.inbound.handle(channel.channel_type.as_str(), message).await? {
            Ingested::Stored { .. } => receipt.stored += 1,
            Ingested::Duplicate => receipt.duplicates += 1,
        }
    }
    for delivered in &outcome.receipts {
        receipt.receipts += state.inbound.apply_receipt(channel, &receipt_update(delivered)).await?;
    }
    Ok(outcome.response)
}

/// Headers an adapter may not set on its answer: the connection's and the host's own.
const RESERVED_HEADERS: [&str; 6] = ["connection", "content-length", "transfer-encoding", "set-cookie", "upgrade", "keep-alive"];

fn respond(answer: Option<WebhookResponse>, receipt: WebhookReceipt) -> Response {
    let Some(answer) = answer else { return Json(receipt).into_response() };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for Header { name, value } in answer.headers {
        if RESERVED_HEADERS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    response
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

/// A shared webhook that no connected channel accepts: an unknown account and a bad signature
/// look alike (the details are logged).
fn not_accepted() -> ApiError {
    ApiError::unauthorized("no connected channel accepts this delivery (unknown account or bad signature)")
}

/// An adapter refusing the delivery is the caller's problem (401, 400); an adapter failing is
/// ours: 503 without storing anything, so the provider delivers again later.
fn receive_failure(err: ReceiveError) -> ApiError {
    match err {
        ReceiveError::Unauthorized(why) => ApiError::unauthorized(why),
        ReceiveError::BadRequest(why) => ApiError::new(StatusCode::BAD_REQUEST, "unrecognized_payload", why),
        ReceiveError::NotAccepted(why) => ApiError::new(StatusCode::NOT_FOUND, "no_webhooks", why),
        ReceiveError::Failed(why) => {
            tracing::error!(error = %why, "adapter failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "adapter_failed", "the channel adapter failed; deliver again later")
        }
    }
}
