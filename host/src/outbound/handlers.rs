//! `POST /api/messages/send`, `GET /api/queue`, `POST /api/queue/:id/retry`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::plugins::fetch::{FetchFailure, check_target};
use crate::state::AppState;
use crate::store::{Enqueued, Message, NewOutboundMessage, QueueJob, QueueStatus};

const MAX_TEXT_CHARS: usize = 4096;
const MAX_ATTACHMENTS: usize = 10;
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Attachment types a reply may carry.
const ATTACHMENT_TYPES: [&str; 6] = ["image", "video", "audio", "voice", "document", "sticker"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    /// The conversation to reply in; or
    pub conversation_id: Option<Uuid>,
    /// the customer to write to (their open conversation, created if needed).
    pub customer_id: Option<Uuid>,
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<SendAttachment>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendAttachment {
    /// An http(s) URL the provider (or the adapter) fetches.
    pub url: String,
    /// image, video, audio, voice, document or sticker.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub mime_type: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QueueFilter {
    pub status: Option<QueueStatus>,
    /// 1 to 500; 100 by default.
    pub limit: Option<i64>,
}

/// Queues a reply: the OUTBOUND message (PENDING) and its queue row are written in one
/// transaction and the message is returned at once; the worker delivers it. With an
/// `Idempotency-Key` header, a retried request returns the first result instead of sending twice.
#[utoipa::path(post, path = "/api/messages/send", tag = "messages", security(("bearer" = [])), request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried request return the first result")),
    responses((status = 202, body = Message), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendRequest>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let tenant_id = auth.tenant_id();
    let idempotency_key = idempotency_key(&headers)?;
    let text = req.text.filter(|t| !t.trim().is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
        return Err(ApiError::validation(format!("text: at most {MAX_TEXT_CHARS} characters")));
    }
    let attachments = attachments(req.attachments, state.config.providers.allow_private_fetch)?;
    if text.is_none() && attachments.is_empty() {
        return Err(ApiError::validation("text or at least one attachment is required"));
    }
    let conversation = match (req.conversation_id, req.customer_id) {
        (Some(id), _) => state.store.get_conversation(tenant_id, id).await?.ok_or_else(|| ApiError::not_found("conversation"))?,
        (None, Some(id)) => {
            let customer = state.store.get_customer(tenant_id, id).await?.ok_or_else(|| ApiError::not_found("customer"))?;
            state.store.open_conversation_for(tenant_id, &customer).await?
        }
        (None, None) => return Err(ApiError::validation("conversationId or customerId is required")),
    };
    let channel = state
        .store
        .get_channel(tenant_id, conversation.channel_instance_id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    if state.channels.get(&channel.channel_type).is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "channel_cannot_send",
            format!("no adapter sends on {} channels", channel.channel_type),
        ));
    }
    let new = NewOutboundMessage {
        tenant_id,
        conversation,
        sender_user_id: Some(auth.id()),
        sender_agent_id: None,
        text,
        attachments: Value::Array(attachments),
        idempotency_key,
        max_attempts: state.config.queue.max_attempts,
    };
    match state.store.enqueue_outbound(&new).await? {
        Enqueued::Queued { message, conversation } => {
            state.realtime.message_created(tenant_id, &message).await;
            state.realtime.conversation_updated(tenant_id, &conversation).await;
            state.queue.wake();
            // The reply is queued whatever happens here; a failed pause is only logged.
            if let Err(err) = crate::agents::pause_after_human_reply(&state.store, &state.realtime, &conversation).await {
                tracing::warn!(error = %err, "cannot pause the bot after a human reply");
            }
            Ok((StatusCode::ACCEPTED, Json(message)))
        }
        Enqueued::Replayed(message) => Ok((StatusCode::ACCEPTED, Json(message))),
    }
}

/// The tenant's queue, newest first; `?status=DEAD` for the dead letters.
#[utoipa::path(get, path = "/api/queue", tag = "messages", security(("bearer" = [])), params(QueueFilter),
    responses((status = 200, body = Vec<QueueJob>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(filter): ApiQuery<QueueFilter>,
) -> ApiResult<Json<Vec<QueueJob>>> {
    let limit = filter.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "limit: 1 to 500"));
    }
    Ok(Json(state.store.list_jobs(auth.tenant_id(), filter.status, limit).await?))
}

/// Requeues a DEAD (or FAILED) job with its attempts reset.
#[utoipa::path(post, path = "/api/queue/{id}/retry", tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = QueueJob), (status = 404, body = ApiErrorBody), (status = 409, description = "the job is not dead", body = ApiErrorBody)))]
pub async fn retry(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<QueueJob>> {
    match state.store.requeue_job(auth.tenant_id(), id).await? {
        Some((job, message)) => {
            state.realtime.message_updated(auth.tenant_id(), &message).await;
            state.queue.wake();
            Ok(Json(job))
        }
        None => match state.store.get_job(auth.tenant_id(), id).await? {
            Some(job) => Err(ApiError::conflict(format!("only a DEAD or FAILED job can be retried; this one is {}", job.status))),
            None => Err(ApiError::not_found("queue job")),
        },
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let key = value.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key: not visible ASCII"))?.trim();
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::bad_request(format!("Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} characters")));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

/// The attachments as stored: each a URL the guarded fetcher could fetch (a reply whose media
/// can never be fetched is refused now, not dead-lettered later).
fn attachments(items: Vec<SendAttachment>, allow_private: bool) -> ApiResult<Vec<Value>> {
    if items.len() > MAX_ATTACHMENTS {
        return Err(ApiError::validation(format!("attachments: at most {MAX_ATTACHMENTS}")));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let kind = a.kind.trim().to_ascii_lowercase();
            let kind = if kind == "file" { "document".to_owned() } else { kind };
            if !ATTACHMENT_TYPES.contains(&kind.as_str()) {
                return Err(ApiError::validation(format!(
                    "attachments[{i}].type: {:?} is not one of {}",
                    a.kind,
                    ATTACHMENT_TYPES.join(", ")
                )));
            }
            let url = reqwest::Url::parse(a.url.trim())
                .map_err(|_| ApiError::validation(format!("attachments[{i}].url: not a URL")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ApiError::validation(format!("attachments[{i}].url: only http(s) URLs")));
            }
            if let Err(FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why)) = check_target(&url, allow_private) {
                return Err(ApiError::validation(format!("attachments[{i}].url: {why}")));
            }
            Ok(json!({"kind": kind, "url": url.as_str(), "fileName": a.name, "mimeType": a.mime_type}))
        })
        .collect()
}
