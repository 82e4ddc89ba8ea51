//! The visitor API, `/api/widget/{channelInstanceId}/...`: no user token; the [guard](super::guard)
//! has resolved the channel and checked the page's origin; every route but `sessions` takes the
//! visitor token the session issued (`Authorization: Bearer`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{VisitorAuth, VisitorChannel, limited, view};
use crate::auth::tokens::{VISITOR_RESUME_WINDOW, Visitor, VisitorClaims};
use crate::channels::adapter::{Header, ReceiveError, WebhookOutcome, WebhookRequest};
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiMultipart, ApiPath, ApiQuery};
use crate::http::pagination::{self, PageParams};
use crate::inbound::service::receipt_update;
use crate::state::AppState;
use crate::store::{
    Channel, Conversation, ConversationQuery, ConversationStatus, Customer, Ingested, Message, MessageDirection, MessageStatus,
    NewVisitorUpload, PageQuery, ReceiptUpdate, VisitorProfile,
};

/// History pages a visitor reads.
const HISTORY_PAGE: i64 = 50;
/// The most uploads one message may name (the adapter may allow fewer).
const MAX_ATTACHMENT_REFS: usize = 10;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRequest {
    /// A token an earlier session gave (kept by the widget, even expired up to 30 days): the
    /// same visitor resumes.
    pub visitor_token: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Your site's id of a signed-in visitor; counts only with `identifierHash`.
    pub identifier: Option<String>,
    /// Hex HMAC-SHA256 of `identifier` keyed by the channel's `identitySecret`.
    pub identifier_hash: Option<String>,
    pub page_url: Option<String>,
}

/// What the adapter decided of a session.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    external_user_id: String,
    verified: bool,
    name: Option<String>,
    email: Option<String>,
    identifier: Option<String>,
    page_url: Option<String>,
    #[serde(default)]
    settings: Map<String, Value>,
}

/// Opens or resumes a visitor's session: `{visitorToken, expiresAt, visitor, channel,
/// conversation, messages, nextCursor, unreadCount}`.
#[utoipa::path(post, path = "/api/widget/{channelInstanceId}/sessions", tag = "widget",
    params(("channelInstanceId" = Uuid, Path)), request_body = SessionRequest,
    responses((status = 200, description = "the visitor's session", body = Object),
        (status = 401, description = "a wrong identifierHash, or identity_required", body = ApiErrorBody),
        (status = 403, description = "origin_not_allowed", body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 429, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.id = %web.channel.id))]
pub async fn session(
    State(state): State<AppState>,
    Extension(web): Extension<VisitorChannel>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> ApiResult<Json<Value>> {
    limited(&state.visitor_limits.sessions, &web.client, "sessions from this address")?;
    let channel = &web.channel;
    // A token that no longer verifies (another channel's, a rotated key) starts a new visitor. An
    // anonymous visitor resumes for 30 days past its token's expiry; a verified one only while
    // its token is valid (after that the page proves the identity again with setUser).
    let previous = req
        .visitor_token
        .as_deref()
        .and_then(|token| state.tokens.verify_visitor(token, Some(channel.id), VISITOR_RESUME_WINDOW).ok())
        .filter(|claims| !claims.verified || claims.exp >= Utc::now().timestamp());
    let vouched = match &previous {
        Some(claims) => vouched(claims),
        None => json!({"id": format!("v:{}", Uuid::new_v4().simple()), "verified": false}),
    };
    let body = json!({"name": req.name, "email": req.email, "identifier": req.identifier,
        "identifierHash": req.identifier_hash, "pageUrl": req.page_url});
    let outcome = ask(&web, "sessions", &vouched, &headers, body).await?;
    let mut answer: SessionAnswer = outcome
        .response
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .ok_or_else(|| adapter_failed("the channel adapter gave no session answer"))?;
    if answer.page_url.is_none() {
        answer.page_url = previous.as_ref().and_then(|claims| claims.page_url.clone());
    }

    // A page view makes no customer: the first message does. A known visitor's profile is
    // brought up to date.
    let known = state.store.find_customer_by_external_id(channel.tenant_id, channel.id, &answer.external_user_id).await?;
    let customer = match known {
        Some(_)
            if answer.name.is_some()
                || answer.verified
                || answer.email.is_some()
                || answer.identifier.is_some()
                || answer.page_url.is_some() =>
        {
            let metadata = profile_metadata(
                answer.email.as_deref(),
                answer.identifier.as_deref(),
                answer.page_url.as_deref(),
                answer.verified,
            );
            let profile = VisitorProfile { external_id: answer.external_user_id.clone(), name: answer.name.clone(), metadata };
            Some(state.store.upsert_visitor(channel.tenant_id, channel.id, &profile).await?)
        }
        known => known,
    };
    let conversation = match &customer {
        Some(customer) => latest_conversation(&state, customer).await?,
        None => None,
    };
    let (messages, next_cursor) = match &conversation {
        Some(conversation) => history(&state, conversation, PageQuery { after: None, limit: HISTORY_PAGE }).await?,
        None => (Vec::new(), None),
    };
    let unread = messages
        .iter()
        .filter(|m| {
            m.direction == MessageDirection::Outbound && matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered)
        })
        .count();
    let (token, expires_at) = issue(&state, channel, &answer, customer.as_ref().map(|c| c.id))?;
    let mut settings = answer.settings;
    settings.insert("id".into(), json!(channel.id));
    settings.insert("online".into(), json!(state.realtime.tenant_online(channel.tenant_id).await));
    settings.insert("socketPath".into(), json!(state.config.socket_path));
    Ok(Json(json!({
        "visitorToken": token,
        "expiresAt": expires_at,
        "visitor": {"id": answer.external_user_id, "customerId": customer.as_ref().map(|c| c.id), "name": answer.name,
            "email": answer.email, "verified": answer.verified},
        "channel": settings,
        "conversation": conversation.as_ref().map(view::conversation),
        "messages": messages.iter().map(view::message).collect::<Vec<_>>(),
        "nextCursor": next_cursor,
        "unreadCount": unread,
    })))
}

/// What the customer's metadata keeps of a session: e-mail, identifier, the page, verified.
fn profile_metadata(email: Option<&str>, identifier: Option<&str>, page_url: Option<&str>, verified: bool) -> Map<String, Value> {
    let mut metadata = Map::new();
    for (key, value) in [("email", email), ("identifier", identifier), ("pageUrl", page_url)] {
        if let Some(value) = value {
            metadata.insert(key.into(), Value::String(value.to_owned()));
        }
    }
    if verified {
        metadata.insert("verified".into(), Value::Bool(true));
    }
    metadata
}

fn issue(
    state: &AppState,
    channel: &Channel,
    answer: &SessionAnswer,
    customer_id: Option<Uuid>,
) -> ApiResult<(String, chrono::DateTime<Utc>)> {
    state
        .tokens
        .issue_visitor(Visitor {
            id: answer.external_user_id.clone(),
            channel_id: channel.id,
            tenant_id: channel.tenant_id,
            customer_id,
            name: answer.name.clone(),
            email: answer.email.clone(),
            page_url: answer.page_url.clone(),
            verified: answer.verified,
        })
        .map_err(|_| ApiError::internal("cannot issue a visitor token"))
}

#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    pub cursor: Option<String>,
}

/// Older messages of the visitor's conversation, oldest first: `{messages, nextCursor}`.
#[utoipa::path(get, path = "/api/widget/{channelInstanceId}/messages", tag = "widget",
    params(("channelInstanceId" = Uuid, Path), ("cursor" = Option<String>, Query)), security(("visitor" = [])),
    responses((status = 200, body = Object), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    VisitorAuth(visitor): VisitorAuth,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<Json<Value>> {
    let page = PageParams { limit: Some(HISTORY_PAGE), cursor: params.cursor }.to_query()?;
    let conversation = match visitor_customer(&state, &visitor).await? {
        Some(customer) => latest_conversation(&state, &customer).await?,
        None => None,
    };
    let (messages, next_cursor) = match conversation {
        Some(conversation) => history(&state, &conversation, page).await?,
        None => (Vec::new(), None),
    };
    Ok(Json(json!({"messages": messages.iter().map(view::message).collect::<Vec<_>>(), "nextCursor": next_cursor})))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostMessage {
    /// An id the widget makes for the message and reuses on retries: the message is stored once.
    pub client_message_id: Option<String>,
    pub text: Option<String>,
    /// Files uploaded to `attachments` first.
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    pub upload_id: Uuid,
}

/// A visitor's message, through the channel adapter and `handle_inbound_message`: 201
/// `{message, conversation}`, or 200 with the stored message when `clientMessageId` was posted before.
#[utoipa::path(post, path = "/api/widget/{channelInstanceId}/messages", tag = "widget", params(("channelInstanceId" = Uuid, Path)),
    request_body = PostMessage, security(("visitor" = [])),
    responses((status = 201, body = Object), (status = 200, description = "a retry of a stored message", body = Object),
        (status = 401, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(channel.id = %web.channel.id))]
pub async fn post_message(
    State(state): State<AppState>,
    Extension(web): Extension<VisitorChannel>,
    VisitorAuth(visitor): VisitorAuth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PostMessage>,
) -> ApiResult<Response> {
    limited(&state.visitor_limits.messages, &rate_key(&visitor), "messages")?;
    let mut ids: Vec<Uuid> = req.attachments.iter().map(|a| a.upload_id).collect();
    ids.dedup();
    if ids.len() > MAX_ATTACHMENT_REFS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_attachments",
            format!("at most {MAX_ATTACHMENT_REFS} attachments per message"),
        ));
    }
    let channel = &web.channel;
    let uploads = state.store.visitor_uploads(channel.tenant_id, channel.id, &visitor.sub, &ids).await?;
    let attachments = ids
        .iter()
        .map(|id| {
            let upload = uploads.iter().find(|u| u.id == *id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_upload",
                    format!("attachment {id} is not a file you uploaded here"),
                )
            })?;
            Ok(json!({"id": upload.id, "url": upload_url(&state, channel.id, &upload.token),
                "mimeType": upload.content_type, "fileName": upload.file_name, "size": upload.size}))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let body = json!({"clientMessageId": req.client_message_id, "text": req.text, "attachments": attachments});
    let outcome = ask(&web, "messages", &vouched(&visitor), &headers, body).await?;
    let Some(message) = outcome.messages.into_iter().next() else {
        return Err(adapter_failed("the channel adapter made no message of the visitor's"));
    };
    let provider_id = message.provider_message_id.clone();
    match state.inbound.handle(channel.channel_type.as_str(), message).await? {
        Ingested::Stored { message, conversation, customer, .. } => {
            let mut answer = message_answer(&message, &conversation);
            if visitor.customer_id.is_none() {
                // The first message made the visitor a customer: its profile, its sockets, and a
                // token that names it.
                became_customer(&state, &visitor, &customer).await?;
                name_customer(&state, &visitor, customer.id, &mut answer)?;
            }
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        Ingested::Duplicate => {
            let stored = match provider_id {
                Some(id) => state.store.find_message_by_provider_id(channel.tenant_id, channel.id, &id).await?,
                None => None,
            };
            let stored = stored.ok_or_else(|| ApiError::conflict("this clientMessageId was used for another message"))?;
            let conversation = state
                .store
                .get_conversation(stored.tenant_id, stored.conversation_id)
                .await?
                .ok_or_else(|| ApiError::not_found("conversation"))?;
            let mut answer = message_answer(&stored, &conversation);
            // A retried first message whose answer was lost: the token naming the customer again.
            if visitor.customer_id.is_none() {
                name_customer(&state, &visitor, conversation.customer_id, &mut answer)?;
            }
            Ok((StatusCode::OK, Json(answer)).into_response())
        }
    }
}

/// What a session knew of the visitor goes into its new customer (the ingest stored the name),
/// and its sockets move to the customer's room.
async fn became_customer(state: &AppState, visitor: &VisitorClaims, customer: &Customer) -> ApiResult<()> {
    let identifier = visitor.sub.strip_prefix("id:").filter(|_| visitor.verified);
    let metadata = profile_metadata(visitor.email.as_deref(), identifier, visitor.page_url.as_deref(), visitor.verified);
    if !metadata.is_empty() {
        let profile = VisitorProfile { external_id: visitor.sub.clone(), name: None, metadata };
        state.store.upsert_visitor(customer.tenant_id, customer.channel_instance_id, &profile).await?;
    }
    state.realtime.visitor_became_customer(visitor.channel_id, &visitor.sub, customer.id).await;
    Ok(())
}

/// A fresh token for the visitor that names its customer, into a message answer.
fn name_customer(state: &AppState, visitor: &VisitorClaims, customer_id: Uuid, answer: &mut Value) -> ApiResult<()> {
    let (token, expires_at) = state
        .tokens
        .issue_visitor(Visitor { customer_id: Some(customer_id), ..visitor_of(visitor) })
        .map_err(|_| ApiError::internal("cannot issue a visitor token"))?;
    answer["visitorToken"] = json!(token);
    answer["expiresAt"] = json!(expires_at);
    Ok(())
}

fn visitor_of(claims: &VisitorClaims) -> Visitor {
    Visitor {
        id: claims.sub.clone(),
        channel_id: claims.channel_id,
        tenant_id: claims.tenant_id,
        customer_id: claims.customer_id,
        name: claims.name.clone(),
        email: claims.email.clone(),
        page_url: claims.page_url.clone(),
        verified: claims.verified,
    }
}

/// Per-visitor limits are per channel: `id:42` on one tenant's widget is not `id:42` on another's.
fn rate_key(visitor: &VisitorClaims) -> String {
    format!("{}:{}", visitor.channel_id, visitor.sub)
}

fn message_answer(message: &Message, conversation: &Conversation) -> Value {
    json!({"message": view::message(message), "conversation": view::conversation(conversation)})
}

/// The file types a visitor may upload, with the extension that names each when the browser
/// gives no type. No SVG or HTML: nothing that runs script when opened.
const UPLOAD_TYPES: &[(&str, &[&str])] = &[
    ("image/png", &["png"]),
    ("image/jpeg", &["jpg", "jpeg"]),
    ("image/gif", &["gif"]),
    ("image/webp", &["webp"]),
    ("application/pdf", &["pdf"]),
    ("text/plain", &["txt", "log"]),
    ("text/csv", &["csv"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/ogg", &["ogg", "oga"]),
    ("audio/wav", &["wav"]),
    ("audio/webm", &["weba"]),
    ("video/mp4", &["mp4"]),
    ("video/webm", &["webm"]),
    ("application/zip", &["zip"]),
    ("application/msword", &["doc"]),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", &["docx"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", &["xlsx"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation", &["pptx"]),
];

fn upload_type(declared: Option<&str>, file_name: Option<&str>) -> Option<&'static str> {
    let declared = declared.map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if let Some(known) = declared.as_deref().and_then(|d| UPLOAD_TYPES.iter().find(|(t, _)| *t == d)) {
        return Some(known.0);
    }
    // Browsers send application/octet-stream (or nothing) for types they do not know.
    if declared.as_deref().is_some_and(|d| d != "application/octet-stream") {
        return None;
    }
    let extension = file_name?.rsplit_once('.')?.1.to_ascii_lowercase();
    UPLOAD_TYPES.iter().find(|(_, exts)| exts.contains(&extension.as_str())).map(|(t, _)| *t)
}

/// Uploads one file (multipart field `file`): 201 `{id, url, kind, mimeType, fileName, size}`;
/// attach it by `id` to a message. 413 past the size limit, 415 for a type the widget refuses.
/// The upload form: one file.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the multipart body; the handler reads the field itself
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/widget/{channelInstanceId}/attachments", tag = "widget", params(("channelInstanceId" = Uuid, Path)),
    request_body(content_type = "multipart/form-data", content = UploadForm, description = "one field `file`"), security(("visitor" = [])),
    responses((status = 201, body = Object), (status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody),
        (status = 429, body = ApiErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(web): Extension<VisitorChannel>,
    VisitorAuth(visitor): VisitorAuth,
    ApiMultipart(mut form): ApiMultipart,
) -> ApiResult<(StatusCode, Json<Value>)> {
    limited(&state.visitor_limits.uploads, &web.client, "uploads from this address")?;
    limited(&state.visitor_limits.messages, &rate_key(&visitor), "uploads")?;
    let max = state.config.visitors.max_upload_bytes;
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", format!("files up to {} MB", max / (1024 * 1024)));
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(format!("malformed upload: {e}"))
        }
    };
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = field.file_name().map(sanitize_file_name).filter(|n| !n.is_empty());
        let content_type = upload_type(field.content_type(), file_name.as_deref()).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_file_type",
                "images, PDF, text, audio, video, office documents and zip files only",
            )
        })?;
        let mut body = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if body.is_empty() {
            return Err(ApiError::validation("the file is empty"));
        }
        let upload = state
            .store
            .insert_visitor_upload(&NewVisitorUpload {
                tenant_id: web.channel.tenant_id,
                channel_instance_id: web.channel.id,
                visitor_id: visitor.sub.clone(),
                token: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()),
                content_type: content_type.to_owned(),
                file_name,
                body,
            })
            .await?;
        tracing::debug!(upload.id = %upload.id, size = upload.size, "visitor upload stored");
        let kind = content_type.split('/').next().filter(|k| matches!(*k, "image" | "video" | "audio")).unwrap_or("document");
        return Ok((
            StatusCode::CREATED,
            Json(json!({"id": upload.id, "url": upload_url(&state, web.channel.id, &upload.token), "kind": kind,
                "mimeType": upload.content_type, "fileName": upload.file_name, "size": upload.size})),
        ));
    }
    Err(ApiError::validation("a multipart field named file is required"))
}

fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    base.chars().filter(|c| !c.is_control() && !matches!(c, '"' | '\\')).take(200).collect::<String>().trim().to_owned()
}

/// Where an upload is served: under `OMNICHAT_PUBLIC_URL`, else relative to this host (never
/// a host the request named: a visitor's `Host` header must not pick where agents' inboxes load
/// images from).
fn upload_url(state: &AppState, channel_id: Uuid, token: &str) -> String {
    let base = state.config.public_url.as_deref().map(|url| url.trim_end_matches('/')).unwrap_or_default();
    format!("{base}/api/widget/{channel_id}/attachments/{token}")
}

/// An uploaded file, by its unguessable token (no origin check: images load in `<img>`).
/// Served so it cannot run as a page of this host: its stored type, `nosniff`, a sandboxing CSP,
/// and a download for anything but media.
#[utoipa::path(get, path = "/api/widget/{channelInstanceId}/attachments/{token}", tag = "widget",
    params(("channelInstanceId" = Uuid, Path), ("token" = String, Path)),
    responses((status = 200, description = "the file", content_type = "application/octet-stream", body = String,
        example = json!("(the file's bytes)")), (status = 404, body = ApiErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    ApiPath((channel_id, token)): ApiPath<(Uuid, String)>,
) -> ApiResult<Response> {
    let (upload, body) = state
        .store
        .visitor_upload_content(&token)
        .await?
        .filter(|(upload, _)| upload.channel_instance_id == channel_id)
        .ok_or_else(|| ApiError::not_found("file"))?;
    let inline = ["image/", "audio/", "video/"].iter().any(|p| upload.content_type.starts_with(p));
    let disposition = match (&upload.file_name, inline) {
        (_, true) => "inline".to_owned(),
        (Some(name), false) => format!("attachment; filename=\"{}\"", name.replace(|c: char| !c.is_ascii() || c == '"', "_")),
        (None, false) => "attachment".to_owned(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, upload.content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, max-age=31536000, immutable".to_owned()),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".to_owned()),
            (header::HeaderName::from_static("cross-origin-resource-policy"), "cross-origin".to_owned()),
        ],
        Bytes::from(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Typing {
    /// `false` when the visitor stopped.
    #[serde(default = "yes")]
    pub typing: bool,
}

fn yes() -> bool {
    true
}

/// The visitor is typing (or stopped): a `typing` event `{from: "visitor"}` to the inbox.
#[utoipa::path(post, path = "/api/widget/{channelInstanceId}/typing", tag = "widget", params(("channelInstanceId" = Uuid, Path)),
    request_body = Typing, security(("visitor" = [])), responses((status = 204), (status = 429, body = ApiErrorBody)))]
pub async fn typing(
    State(state): State<AppState>,
    VisitorAuth(visitor): VisitorAuth,
    ApiJson(req): ApiJson<Typing>,
) -> ApiResult<StatusCode> {
    limited(&state.visitor_limits.typing, &rate_key(&visitor), "typing signals")?;
    let Some(customer) = visitor_customer(&state, &visitor).await? else { return Ok(StatusCode::NO_CONTENT) };
    if let Some(conversation) = latest_conversation(&state, &customer).await?.filter(|c| c.status != ConversationStatus::Closed) {
        state.realtime.visitor_typing(&conversation, req.typing).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The visitor has seen every reply so far: they become READ (`message-updated` to the inbox).
#[utoipa::path(post, path = "/api/widget/{channelInstanceId}/read", tag = "widget", params(("channelInstanceId" = Uuid, Path)),
    security(("visitor" = [])), responses((status = 200, body = Object), (status = 401, body = ApiErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Extension(web): Extension<VisitorChannel>,
    VisitorAuth(visitor): VisitorAuth,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let outcome = ask(&web, "read", &vouched(&visitor), &headers, json!({})).await?;
    let mut read = 0;
    for receipt in &outcome.receipts {
        // A receipt speaks for the visitor whose token came with it, whatever it names: only
        // its own replies, up to a time, never replies picked by id.
        let update = ReceiptUpdate { provider_message_ids: &[], external_user_id: Some(&visitor.sub), ..receipt_update(receipt) };
        if update.up_to.is_some() {
            read += state.inbound.apply_receipt(&web.channel, &update).await?;
        }
    }
    Ok(Json(json!({"read": read})))
}

/// The visitor's token as the adapter sees it (`x-omnichat-visitor`).
fn vouched(visitor: &VisitorClaims) -> Value {
    json!({"id": visitor.sub, "name": visitor.name, "email": visitor.email, "verified": visitor.verified})
}

/// One visitor request to the channel's adapter, on its own route: only the host's own headers
/// and the page's origin go in, never the browser's token.
async fn ask(web: &VisitorChannel, action: &str, visitor: &Value, headers: &HeaderMap, body: Value) -> ApiResult<WebhookOutcome> {
    let mut forwarded = vec![
        Header { name: "x-omnichat-visitor".into(), value: visitor.to_string() },
        Header { name: "x-omnichat-received-at-ms".into(), value: Utc::now().timestamp_millis().to_string() },
        Header { name: "origin".into(), value: web.origin.clone() },
    ];
    if let Some(agent) = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        forwarded.push(Header { name: "user-agent".into(), value: agent.to_owned() });
    }
    let request = WebhookRequest {
        method: "POST".into(),
        path: format!("/api/widget/{}/{action}", web.channel.id),
        query: String::new(),
        headers: forwarded,
        body: body.to_string().into_bytes(),
    };
    web.adapter.receive(&web.channel, &request).await.map_err(refusal)
}

fn refusal(err: ReceiveError) -> ApiError {
    let coded = |why: &str, known: &[&'static str], fallback: &'static str| {
        let code = known.iter().copied().find(|code| why.starts_with(code)).unwrap_or(fallback);
        (code, why.split_once(": ").filter(|(c, _)| *c == code).map(|(_, m)| m.to_owned()).unwrap_or_else(|| why.to_owned()))
    };
    match err {
        ReceiveError::Unauthorized(why) => {
            let (code, message) = coded(&why, &["identity_required", "identity_unverifiable"], "identity_rejected");
            ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        }
        ReceiveError::BadRequest(why) => {
            let (code, message) = coded(&why, &["prechat_required"], "invalid_visitor_request");
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
        ReceiveError::NotAccepted(why) => ApiError::new(StatusCode::NOT_FOUND, "not_a_web_channel", why),
        ReceiveError::Failed(why) => adapter_failed(&why),
    }
}

fn adapter_failed(why: &str) -> ApiError {
    tracing::error!(error = why, "widget adapter failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "adapter_failed", "the widget is unavailable; try again shortly")
}

/// The visitor's customer, if its first message made one yet.
async fn visitor_customer(state: &AppState, visitor: &VisitorClaims) -> ApiResult<Option<Customer>> {
    let customer = match visitor.customer_id {
        Some(id) => state.store.get_customer(visitor.tenant_id, id).await?,
        None => state.store.find_customer_by_external_id(visitor.tenant_id, visitor.channel_id, &visitor.sub).await?,
    };
    Ok(customer.filter(|c| c.channel_instance_id == visitor.channel_id && c.external_id == visitor.sub))
}

/// The visitor's latest conversation, open or not: its history is what the widget shows.
async fn latest_conversation(state: &AppState, customer: &Customer) -> ApiResult<Option<Conversation>> {
    let query = ConversationQuery { customer_id: Some(customer.id), limit: 1, ..Default::default() };
    Ok(state.store.list_conversations(customer.tenant_id, &query).await?.into_iter().next())
}

/// A page of the conversation the visitor sees, oldest first, and the cursor of older ones.
async fn history(state: &AppState, conversation: &Conversation, page: PageQuery) -> ApiResult<(Vec<Message>, Option<String>)> {
    let limit = page.limit;
    let rows = state.store.list_messages(conversation.tenant_id, conversation.id, &page).await?;
    let page = pagination::page(rows, limit, |m| (m.created_at, m.id));
    let mut messages: Vec<Message> = page.data.into_iter().filter(view::visible).collect();
    messages.reverse();
    Ok((messages, page.next_cursor))
}
