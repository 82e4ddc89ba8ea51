//! `/api/conversations` and `/api/customers`. Everything is scoped to the caller's tenant.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::http::pagination::{Page, PageParams, page};
use crate::state::AppState;
use crate::store::{
    AssigneeFilter, BotStatus, Conversation, ConversationPatch, ConversationQuery, ConversationStatus, Customer, Message,
    ReadState,
};
use crate::validate;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub channel_instance_id: Option<Uuid>,
    /// A user id, `me`, or `none` for unassigned conversations.
    pub assignee_id: Option<String>,
    pub customer_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConversationRequest {
    pub status: Option<ConversationStatus>,
    /// A user of the tenant, or `null` to unassign.
    #[serde(default, deserialize_with = "validate::double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    /// ACTIVE resumes the AI agent on this conversation; PAUSED stops it (until `botPausedUntil`
    /// when given, else until resumed).
    pub bot_status: Option<BotStatus>,
    /// With `botStatus: PAUSED`: when the pause ends (RFC 3339, in the future).
    pub bot_paused_until: Option<DateTime<Utc>>,
}

/// A conversation as the calling user sees it in the inbox: with its own read state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxConversation {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// INBOUND messages after the caller's read mark (all of them before the first mark).
    pub unread_count: i64,
    /// The caller's read mark (`POST /api/conversations/:id/read`); `null`: never read.
    pub last_read_at: Option<DateTime<Utc>>,
}

/// `POST /api/conversations/:id/read` answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadMark {
    pub conversation_id: Uuid,
    pub last_read_at: DateTime<Utc>,
    pub unread_count: i64,
}

/// The conversations with the caller's read state of each.
async fn with_read_states(state: &AppState, auth: &AuthUser, rows: Vec<Conversation>) -> ApiResult<Vec<InboxConversation>> {
    let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
    let states: std::collections::HashMap<Uuid, ReadState> =
        state.store.read_states(auth.id(), &ids).await?.into_iter().map(|s| (s.conversation_id, s)).collect();
    Ok(rows
        .into_iter()
        .map(|conversation| {
            let read = states.get(&conversation.id);
            InboxConversation {
                unread_count: read.map_or(0, |r| r.unread_count),
                last_read_at: read.and_then(|r| r.last_read_at),
                conversation,
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct CustomerFilter {
    pub channel_instance_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The inbox: newest activity first, filtered by status, channel, assignee or customer; each
/// with the caller's `unreadCount` and `lastReadAt`.
#[utoipa::path(get, path = "/api/conversations", tag = "inbox", security(("bearer" = [])), params(ConversationFilter),
    responses((status = 200, body = Page<InboxConversation>), (status = 400, body = ApiErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(filter): ApiQuery<ConversationFilter>,
) -> ApiResult<Json<Page<InboxConversation>>> {
    let paging = PageParams { limit: filter.limit, cursor: filter.cursor }.to_query()?;
    let assignee = match filter.assignee_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("none") => Some(AssigneeFilter::Unassigned),
        Some("me") => Some(AssigneeFilter::User(auth.id())),
        Some(id) => Some(AssigneeFilter::User(id.parse().map_err(|_| {
            ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", "assigneeId: a user id, me or none")
        })?)),
    };
    let query = ConversationQuery {
        status: filter.status,
        channel_instance_id: filter.channel_instance_id,
        assignee,
        customer_id: filter.customer_id,
        after: paging.after,
        limit: paging.limit,
    };
    let rows = state.store.list_conversations(auth.tenant_id(), &query).await?;
    let page = page(rows, paging.limit, |c| (c.last_message_at, c.id));
    let data = with_read_states(&state, &auth, page.data).await?;
    Ok(Json(Page { data, next_cursor: page.next_cursor }))
}

#[utoipa::path(get, path = "/api/conversations/{id}", tag = "inbox", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = InboxConversation), (status = 404, body = ApiErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<InboxConversation>> {
    let conversation =
        state.store.get_conversation(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
    let mut one = with_read_states(&state, &auth, vec![conversation]).await?;
    Ok(Json(one.remove(0)))
}

/// Marks the conversation read for the caller (its read mark moves to now, its unread count to
/// 0) and tells the caller's other sockets (`conversation-read`), so every tab clears it.
#[utoipa::path(post, path = "/api/conversations/{id}/read", tag = "inbox", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ReadMark), (status = 404, body = ApiErrorBody)))]
pub async fn read(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<ReadMark>> {
    // Microseconds, as PostgreSQL keeps them: the answer equals what a later read returns.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    if !state.store.mark_conversation_read(auth.tenant_id(), auth.id(), id, at).await? {
        return Err(ApiError::not_found("conversation"));
    }
    let mark = ReadMark { conversation_id: id, last_read_at: at, unread_count: 0 };
    state.realtime.conversation_read(auth.id(), &mark).await;
    Ok(Json(mark))
}

/// Changes status (OPEN, CLOSED, SNOOZED), assignee or the AI agent's `botStatus`; emits
/// `conversation-updated`. Any user may pause or resume the bot.
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "inbox", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateConversationRequest,
    responses((status = 200, body = Conversation), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), conversation.id = %id))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateConversationRequest>,
) -> ApiResult<Json<Conversation>> {
    if let Some(Some(assignee)) = req.assignee_id
        && state.store.get_user(auth.tenant_id(), assignee).await?.is_none()
    {
        return Err(ApiError::validation("assigneeId: no such user in this tenant"));
    }
    let bot = match (req.bot_status, req.bot_paused_until) {
        (None, None) => None,
        (None, Some(_)) => return Err(ApiError::validation("botPausedUntil: only with botStatus PAUSED")),
        (Some(BotStatus::Active), Some(_)) => return Err(ApiError::validation("botPausedUntil: only with botStatus PAUSED")),
        (Some(BotStatus::Active), None) => Some((BotStatus::Active, None)),
        (Some(BotStatus::Paused), until) => {
            if until.is_some_and(|u| u <= Utc::now()) {
                return Err(ApiError::validation("botPausedUntil: must be in the future"));
            }
            Some((BotStatus::Paused, until))
        }
    };
    let patch = ConversationPatch { status: req.status, assignee_id: req.assignee_id, bot };
    let conversation = state
        .store
        .update_conversation(auth.tenant_id(), id, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    state.realtime.conversation_updated(auth.tenant_id(), &conversation).await;
    Ok(Json(conversation))
}

/// Messages of a conversation, newest first.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "inbox", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<Message>), (status = 404, body = ApiErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Message>>> {
    let paging = params.to_query()?;
    state.store.get_conversation(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
    let rows = state.store.list_messages(auth.tenant_id(), id, &paging).await?;
    Ok(Json(page(rows, paging.limit, |m| (m.created_at, m.id))))
}

/// Customers, newest first, optionally of one channel.
#[utoipa::path(get, path = "/api/customers", tag = "inbox", security(("bearer" = [])), params(CustomerFilter),
    responses((status = 200, body = Page<Customer>)))]
pub async fn customers(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(filter): ApiQuery<CustomerFilter>,
) -> ApiResult<Json<Page<Customer>>> {
    let paging = PageParams { limit: filter.limit, cursor: filter.cursor }.to_query()?;
    let rows = state.store.list_customers(auth.tenant_id(), filter.channel_instance_id, &paging).await?;
    Ok(Json(page(rows, paging.limit, |c| (c.created_at, c.id))))
}

#[utoipa::path(get, path = "/api/customers/{id}", tag = "inbox", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Customer), (status = 404, body = ApiErrorBody)))]
pub async fn customer(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<Customer>> {
    let customer = state.store.get_customer(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("customer"))?;
    Ok(Json(customer))
}
