//! The channel adapter seam: everything that differs per channel type sits behind
//! [`ChannelAdapter`]. WASM plugins implement it through the plugin runtime, the WhatsApp and
//! Telegram-user bridges natively; the webhook routes, the send API, the outbound worker and the
//! channel handlers hold `Arc<dyn ChannelAdapter>` from the [registry](super::registry) and never
//! look at the channel type themselves.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Channel, ChannelType, NewInboundMessage};

/// Where an adapter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// A sandboxed WebAssembly component loaded from plugins.toml.
    Plugin,
    /// A native session bridge inside the host (WhatsApp, Telegram user accounts).
    Bridge,
}

/// One field of a channel's `config`, as the adapter declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigField {
    pub name: String,
    pub description: String,
    pub required: bool,
    /// Encrypted at rest, never returned, redacted in the adapter's view.
    pub secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookMode {
    /// `/api/webhooks/{channelInstanceId}`
    PerChannel,
    /// `/api/webhooks/shared/{channelType}`
    Shared,
    /// No provider webhooks: browser visitors use the host's visitor transport,
    /// `/api/widget/{channelInstanceId}/...` (granted by `visitor_transport` in plugins.toml).
    Visitor,
}

impl WebhookMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerChannel => "per-channel",
            Self::Shared => "shared",
            Self::Visitor => "visitor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookInfo {
    pub mode: WebhookMode,
    /// The route, with `{channelInstanceId}` left in for per-channel webhooks.
    pub path: String,
}

/// What `GET /api/channel-types` lists for one type.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTypeInfo {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "TELEGRAM_BOT")]
    pub channel_type: ChannelType,
    pub kind: AdapterKind,
    pub plugin_id: String,
    pub name: String,
    pub version: String,
    pub config_schema: Vec<ConfigField>,
    /// `null` for channels that receive no webhooks (the bridges).
    pub webhook: Option<WebhookInfo>,
}

pub fn webhook_info(mode: WebhookMode, channel_type: &ChannelType) -> WebhookInfo {
    let path = match mode {
        WebhookMode::PerChannel => "/api/webhooks/{channelInstanceId}".to_owned(),
        WebhookMode::Shared => format!("/api/webhooks/shared/{channel_type}"),
        WebhookMode::Visitor => "/api/widget/{channelInstanceId}".to_owned(),
    };
    WebhookInfo { mode, path }
}

/// An HTTP header of a webhook request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A webhook exactly as the host received it.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// The answer an adapter gives a webhook (a handshake's challenge, a provider's expected body).
#[derive(Debug, Clone)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    Delivered,
    Read,
}

/// A provider's delivery or read receipt for replies on a channel.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub status: ReceiptStatus,
    pub provider_message_ids: Vec<String>,
    /// With `up_to`: every reply to this customer sent until then.
    pub external_user_id: Option<String>,
    pub up_to: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a shared webhook delivery goes.
#[derive(Debug)]
pub enum Routing {
    /// A handshake: answered as is, nothing stored.
    Answer(WebhookResponse),
    /// The accounts (channel `externalId`s) it is for.
    Accounts(Vec<String>),
}

/// What one webhook delivery carried for one channel.
#[derive(Debug, Default)]
pub struct WebhookOutcome {
    pub messages: Vec<NewInboundMessage>,
    pub receipts: Vec<Receipt>,
    pub response: Option<WebhookResponse>,
}

/// Why a webhook was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not from the provider (a bad signature or secret token).
    #[error("{0}")]
    Unauthorized(String),
    /// Malformed for this channel.
    #[error("{0}")]
    BadRequest(String),
    /// This type of channel takes no webhooks, or not on this route.
    #[error("{0}")]
    NotAccepted(String),
    /// The adapter failed (trapped, timed out): nothing was stored, the provider retries.
    #[error("{0}")]
    Failed(String),
}

/// The content kinds of attachments, as the WIT names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Other,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contact => "contact",
            Self::Other => "other",
        }
    }

    pub fn parse(kind: &str) -> Self {
        match kind {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "voice" => Self::Voice,
            "document" => Self::Document,
            "sticker" => Self::Sticker,
            "location" => Self::Location,
            "contact" => Self::Contact,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboundAttachment {
    pub kind: AttachmentKind,
    pub url: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
}

/// A reply to deliver on a channel.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// OmniChat's message id: stable across retries, the idempotency key where a provider takes one.
    pub message_id: String,
    /// The conversation's provider id, else the customer's.
    pub recipient: String,
    pub text: Option<String>,
    pub attachments: Vec<OutboundAttachment>,
}

/// Why a reply was not delivered: the queue decides what follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Worth retrying with backoff.
    #[error("{0}")]
    Transient(String),
    /// Retry after this long; the channel pauses meanwhile.
    #[error("rate limited by the provider")]
    RateLimited(Duration),
    /// Retrying cannot help: the message is DEAD.
    #[error("{0}")]
    Permanent(String),
    /// The channel's session runs on another replica: hand the job back without an attempt.
    #[error("the session runs on another server")]
    SessionElsewhere,
}

/// Why a connect was not attempted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// This type of channel connects another way (said how).
    #[error("{message}")]
    NotApplicable { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Media of an inbound message, fetched from the provider.
pub struct Media {
    pub bytes: Vec<u8>,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
}

impl Media {
    /// Downloaded bytes of a stored attachment, typed and named as the attachment says.
    pub fn of_attachment(bytes: Vec<u8>, attachment: &serde_json::Value) -> Self {
        Self {
            bytes,
            mime_type: attachment["mimeType"].as_str().map(str::to_owned),
            file_name: attachment["fileName"].as_str().map(str::to_owned),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// This channel type keeps no media the host can fetch.
    #[error("{0}")]
    Unsupported(String),
    /// The provider refused or the session is not running: retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    /// No replica runs the session that can fetch it now (it is starting, or moving).
    #[error("the session is not running (it is starting, or moving to another server): try again shortly")]
    NotRunning,
}

impl From<crate::bridges::handover::Refusal> for MediaError {
    fn from(refusal: crate::bridges::handover::Refusal) -> Self {
        match refusal {
            crate::bridges::handover::Refusal::NotLive | crate::bridges::handover::Refusal::NoAnswer => MediaError::NotRunning,
            other => MediaError::Unavailable(other.to_string()),
        }
    }
}

/// Everything that differs per channel type. Defaults describe a channel with no webhooks, no
/// session and no media; an adapter overrides what it does.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + 'static {
    fn info(&self) -> &ChannelTypeInfo;

    /// Shared webhooks: a handshake to answer (no channel concerned), or the channels'
    /// `externalId`s a delivery is for.
    async fn route(&self, _request: &WebhookRequest) -> Result<Routing, ReceiveError> {
        Ok(Routing::Accounts(Vec::new()))
    }

    /// Verifies a webhook for `channel` and turns it into messages and receipts.
    async fn receive(&self, channel: &Channel, _request: &WebhookRequest) -> Result<WebhookOutcome, ReceiveError> {
        Err(ReceiveError::NotAccepted(format!("{} channels take no webhooks", channel.channel_type)))
    }

    /// Delivers one reply; `Ok` is the provider's message id.
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> Result<String, SendFailure>;

    /// Called once a channel is stored; a bridge may start pairing (WhatsApp's QR codes).
    async fn created(&self, channel: Channel) -> Result<Channel, ConnectError> {
        Ok(channel)
    }

    /// Connects the channel at the provider; the returned channel carries its new status.
    async fn connect(&self, channel: &Channel) -> Result<Channel, ConnectError>;

    /// Ends the provider session or registration; the caller marks the channel DISCONNECTED.
    async fn disconnect(&self, channel: &Channel);

    /// Before a channel is deleted: a live session is logged out, not left running.
    async fn remove(&self, channel: &Channel) {
        self.disconnect(channel).await
    }

    /// The media of an attachment (`{kind, url, mimeType, fileName, size, extra}`, as stored on
    /// an inbound message).
    async fn download(&self, channel: &Channel, _attachment: &serde_json::Value) -> Result<Media, MediaError> {
        Err(MediaError::Unsupported(format!("{} channels keep no media to download", channel.channel_type)))
    }
}
