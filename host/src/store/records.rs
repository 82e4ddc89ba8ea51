//! Rows of the data model as the rest of the host sees them. The API serialises the public ones
//! directly (camelCase); anything secret (password hashes, token hashes) lives only in the
//! `*Record` types that never reach a response.
//!
//! `Customer`, `Conversation` and `Message` also decode from PostgreSQL's row types of their
//! tables (the ingest function returns them as such), which go by position: their fields follow
//! the tables' column order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::types::{
    BotStatus, ChannelStatus, ChannelType, ConversationStatus, MessageDirection, MessageStatus, QueueStatus, Role,
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with its password hash: only the login path sees this.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token for rotation led to.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The token was live: it is now spent and `NewRefreshToken` took its place.
    Rotated(User),
    /// The token was spent within the grace window and its successor is still live: nothing
    /// changed, and the successor (sealed, as it was handed over) is given again.
    Repeated { user: User, sealed_successor: String },
    /// The token had already been spent or revoked: its whole family is now revoked (RFC 9700 4.14.2).
    Reused,
    /// Expired, or unknown to this server.
    Invalid,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `WHATSAPP`, `TELEGRAM_USER`, `TELEGRAM_BOT`, `FACEBOOK`, `WIDGET`, or a plugin's own type.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    #[schema(value_type = String, example = "TELEGRAM_BOT")]
    pub channel_type: ChannelType,
    pub status: ChannelStatus,
    /// Why the channel is in its status (an error, a logout), when there is a reason to give.
    pub status_reason: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
    /// Stored with secret values encrypted; the API shows them redacted.
    #[schema(value_type = Object)]
    pub config: Json<Value>,
    #[schema(value_type = Object)]
    pub metadata: Json<Value>,
    /// When `connect` last proved the channel's credentials at the provider (`null`: never, or
    /// its last connect failed). Where several tenants claim one account, shared webhooks go
    /// only to verified channels.
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub channel_type: ChannelType,
    pub name: String,
    pub external_id: Option<String>,
    pub config: Value,
    pub metadata: Value,
}

/// Fields a channel update may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the external id.
    pub external_id: Option<Option<String>>,
    pub config: Option<Value>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, sqlx::Type, ToSchema)]
#[sqlx(type_name = "customers", no_pg_array)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    /// The customer's id at the provider (Telegram user id, PSID, WhatsApp JID).
    pub external_id: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, sqlx::Type, ToSchema)]
#[sqlx(type_name = "conversations", no_pg_array)]
#[serde(rename_all = "camelCase", into = "ConversationJson")]
pub struct Conversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub customer_id: Uuid,
    /// The provider's id of the chat (Telegram chat id, WhatsApp chat JID), when it has one.
    pub external_conversation_id: Option<String>,
    pub status: ConversationStatus,
    pub assignee_id: Option<Uuid>,
    pub last_message_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether the AI agent may answer: PAUSED while a human is assigned, after a human reply
    /// (until `botPausedUntil`), or after a hand-off or an explicit pause (until resumed).
    pub bot_status: BotStatus,
    /// When a timed pause ends (`null`: not paused, or paused until resumed).
    pub bot_paused_until: Option<DateTime<Utc>>,
}

impl Conversation {
    /// Whether the bot holds back now (stored columns are as last written; a timed pause that
    /// ran out reads ACTIVE, an assigned human reads PAUSED).
    pub fn bot_paused_at(&self, now: DateTime<Utc>) -> bool {
        self.assignee_id.is_some() || self.stored_pause_at(now)
    }

    fn stored_pause_at(&self, now: DateTime<Utc>) -> bool {
        self.bot_status == BotStatus::Paused && self.bot_paused_until.is_none_or(|until| until > now)
    }

    /// A conversation from a chat of several people: the provider's chat is not the customer's
    /// own (Telegram and LINE groups, WhatsApp `@g.us`; a 1:1 chat is filed under the customer's id).
    pub fn is_group_of(&self, customer: &Customer) -> bool {
        self.external_conversation_id.as_deref().is_some_and(|chat| chat != customer.external_id)
    }
}

/// A conversation as the API shows it: the bot's state as it is now.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationJson {
    id: Uuid,
    tenant_id: Uuid,
    channel_instance_id: Uuid,
    customer_id: Uuid,
    external_conversation_id: Option<String>,
    status: ConversationStatus,
    assignee_id: Option<Uuid>,
    last_message_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    bot_status: BotStatus,
    bot_paused_until: Option<DateTime<Utc>>,
}

impl From<Conversation> for ConversationJson {
    fn from(c: Conversation) -> Self {
        let now = Utc::now();
        let paused = c.bot_paused_at(now);
        Self {
            bot_status: if paused { BotStatus::Paused } else { BotStatus::Active },
            bot_paused_until: if c.stored_pause_at(now) { c.bot_paused_until } else { None },
            id: c.id,
            tenant_id: c.tenant_id,
            channel_instance_id: c.channel_instance_id,
            customer_id: c.customer_id,
            external_conversation_id: c.external_conversation_id,
            status: c.status,
            assignee_id: c.assignee_id,
            last_message_at: c.last_message_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, sqlx::Type, ToSchema)]
#[sqlx(type_name = "messages", no_pg_array)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub conversation_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub direction: MessageDirection,
    pub status: MessageStatus,
    pub text: Option<String>,
    /// `[{kind, url?, mimeType?, fileName?, size?, extra}]`
    #[schema(value_type = Vec<Object>)]
    pub attachments: Json<Value>,
    /// The provider's event as received.
    #[schema(value_type = Option<Object>)]
    pub raw: Option<Json<Value>>,
    pub provider_message_id: Option<String>,
    /// Why delivery failed, for a FAILED outbound message.
    pub error: Option<String>,
    pub sender_user_id: Option<Uuid>,
    pub sender_agent_id: Option<Uuid>,
    /// When the provider says it was sent (inbound), else when it was stored.
    pub sent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A customer message as the inbound pipeline hands it to the store (the seed's
/// `InboundMessagePayload`, resolved to a channel of a tenant).
#[derive(Debug, Clone)]
pub struct NewInboundMessage {
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub external_user_id: String,
    pub external_conversation_id: Option<String>,
    pub provider_message_id: Option<String>,
    pub sender_name: Option<String>,
    pub sender_username: Option<String>,
    pub text: Option<String>,
    pub attachments: Value,
    pub raw: Value,
    pub sent_at: Option<DateTime<Utc>>,
    /// INBOUND for customer messages; OUTBOUND for what the business wrote from its own phone or app.
    pub direction: MessageDirection,
}

impl NewInboundMessage {
    /// RECEIVED for a customer's message; one the business sent from elsewhere is already SENT.
    pub fn status(&self) -> MessageStatus {
        match self.direction {
            MessageDirection::Inbound => MessageStatus::Received,
            _ => MessageStatus::Sent,
        }
    }
}

/// A delivery or read receipt, for [`Store::apply_receipt`](super::Store::apply_receipt).
#[derive(Debug, Clone, Copy)]
pub struct ReceiptUpdate<'a> {
    /// DELIVERED or READ.
    pub status: MessageStatus,
    /// Replies by the provider's id.
    pub provider_message_ids: &'a [String],
    /// With `up_to`: every reply to this customer (by its provider id) sent until then.
    pub external_user_id: Option<&'a str>,
    pub up_to: Option<DateTime<Utc>>,
}

/// What storing an inbound message did.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, returned once per message
pub enum Ingested {
    Stored {
        customer: Customer,
        conversation: Conversation,
        message: Message,
        conversation_created: bool,
    },
    /// The provider redelivered a message already stored: nothing was written.
    Duplicate,
}

/// Filters and page of the inbox list; newest activity first.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    pub status: Option<ConversationStatus>,
    pub channel_instance_id: Option<Uuid>,
    pub assignee: Option<AssigneeFilter>,
    pub customer_id: Option<Uuid>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum AssigneeFilter {
    Unassigned,
    User(Uuid),
}

#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<Uuid>>,
    /// The bot's state and when a pause ends (`None` inside: until resumed).
    pub bot: Option<(BotStatus, Option<DateTime<Utc>>)>,
}

/// A page of a list ordered by (time, id) descending: the rows after `after`.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A row of the outbound queue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub message_id: Uuid,
    pub status: QueueStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_retry_at: DateTime<Utc>,
    /// The lease of the worker sending it; past it, the job is due again.
    pub locked_until: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An outbound message to store and queue.
#[derive(Debug, Clone)]
pub struct NewOutboundMessage {
    pub tenant_id: Uuid,
    pub conversation: Conversation,
    pub sender_user_id: Option<Uuid>,
    pub sender_agent_id: Option<Uuid>,
    pub text: Option<String>,
    pub attachments: Value,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
}

#[derive(Debug, Clone)]
pub enum Enqueued {
    Queued {
        message: Message,
        conversation: Conversation,
    },
    /// The idempotency key was used before: the first request's message.
    Replayed(Message),
}

/// Everything a dispatch needs about a job.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub message: Message,
    pub conversation: Conversation,
    pub customer: Customer,
    pub channel: Channel,
}

/// A Telegram MTProto session (the seed's `TelegramSession`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TelegramSessionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub session_type: String,
    pub phone_number: Option<String>,
    /// Home DC and DC options; auth keys inside are sealed with the secret key.
    pub data: Json<Value>,
    pub update_state: Option<Json<Value>>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A login waiting for its code or password (sealed: the phone code hash, the password step).
    pub pending_login: Option<String>,
    pub login_expires_at: Option<DateTime<Utc>>,
}

/// Work for a session's live client asked on another replica (see `bridges::handover`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BridgeRequest {
    pub id: Uuid,
    /// The replica asked: the holder of the session's lease when it was asked.
    pub owner: String,
    pub channel_instance_id: Uuid,
    pub kind: String,
    pub payload: Json<Value>,
    /// `PENDING`, `RUNNING` (claimed by the owner), `DONE` or `FAILED`.
    pub status: String,
    pub result: Option<Vec<u8>>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Past it nobody waits for the answer: the owner skips it and a sweep deletes it.
    pub expires_at: DateTime<Utc>,
}

/// One user's read state of one conversation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReadState {
    pub conversation_id: Uuid,
    pub last_read_at: Option<DateTime<Utc>>,
    pub unread_count: i64,
}

/// A WhatsApp session (the seed's `WhatsAppSession`); its keys live in `whatsapp_keys`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WhatsAppSessionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    /// The paired device (keys and identity), sealed; `None` until paired.
    pub device: Option<Vec<u8>>,
    pub qr: Option<String>,
    pub qr_expires_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One cached Telegram peer: without its access hash a user cannot be messaged by id.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TelegramPeerRow {
    /// The Bot API style dialog id (users positive, groups and channels negative).
    pub peer_id: i64,
    /// `self`, `user`, `bot`, `chat` or `channel`.
    pub peer_kind: String,
    pub access_hash: Option<i64>,
    pub data: Json<Value>,
}

/// Which bridge's session table a lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Telegram,
    WhatsApp,
}

/// A visitor, as a web channel's session names it: upserted as the channel's customer.
#[derive(Debug, Clone)]
pub struct VisitorProfile {
    pub external_id: String,
    pub name: Option<String>,
    /// Merged into the customer's metadata (e-mail, identifier, the page they came from).
    pub metadata: serde_json::Map<String, Value>,
}

/// A file a visitor uploaded, without its content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisitorUpload {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub visitor_id: String,
    /// Unguessable: the only way to address the file.
    pub token: String,
    pub content_type: String,
    pub file_name: Option<String>,
    pub size: i64,
    pub created_at: DateTime<Utc>,
}

/// A stored file with its content.
#[derive(sqlx::FromRow)]
pub struct VisitorUploadContent {
    #[sqlx(flatten)]
    pub upload: VisitorUpload,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct NewVisitorUpload {
    pub tenant_id: Uuid,
    pub channel_instance_id: Uuid,
    pub visitor_id: String,
    pub token: String,
    pub content_type: String,
    pub file_name: Option<String>,
    pub body: Vec<u8>,
}
