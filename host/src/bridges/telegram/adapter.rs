//! The Telegram user-account bridge behind the channel seam.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::client::{TelegramError, TelegramMedia, TelegramSend};
use super::{BridgeSendError, TelegramBridge};
use crate::bridges::{BridgeDeps, FetchedMedia, bridge_info, fetch_outbound_media, not_live_here};
use crate::channels::adapter::{
    AttachmentKind, ChannelAdapter, ChannelTypeInfo, ConnectError, Media, MediaError, OutboundMessage, SendFailure,
};
use crate::store::{Channel, ChannelStatus, ChannelType};

pub struct TelegramUserAdapter {
    bridge: Arc<TelegramBridge>,
    deps: BridgeDeps,
    info: ChannelTypeInfo,
}

impl TelegramUserAdapter {
    pub fn new(bridge: Arc<TelegramBridge>, deps: BridgeDeps) -> Self {
        let info = bridge_info(ChannelType::TELEGRAM_USER, "telegram-user", "Telegram user account (MTProto)");
        Self { bridge, deps, info }
    }
}

#[async_trait]
impl ChannelAdapter for TelegramUserAdapter {
    fn info(&self) -> &ChannelTypeInfo {
        &self.info
    }

    /// Text and every attachment, on the live client of the replica that owns the session. Each
    /// attachment is fetched from its URL with the guarded fetcher and uploaded (photos as photos,
    /// anything else as a document), one message each, the text as the first one's caption; the
    /// reply's provider id is the first message's.
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> Result<String, SendFailure> {
        if channel.status != ChannelStatus::Connected {
            return Err(SendFailure::Permanent(format!("the Telegram account is not connected (status {})", channel.status)));
        }
        let mut sends = Vec::with_capacity(message.attachments.len().max(1));
        let mut text = message.text.clone();
        for attachment in &message.attachments {
            let FetchedMedia { bytes, mime_type, file_name } = fetch_outbound_media(&self.deps.fetcher, attachment).await?;
            let photo = attachment.kind == AttachmentKind::Image;
            let file_name = file_name.unwrap_or_else(|| if photo { "photo.jpg".into() } else { "file".into() });
            sends.push(TelegramSend { text: text.take(), media: Some(TelegramMedia { photo, bytes, file_name, mime_type }) });
        }
        if sends.is_empty() {
            sends.push(TelegramSend { text, media: None });
        }
        let mut first = None;
        for send in &sends {
            let id = self.send_one(channel, &message.recipient, send).await?;
            first.get_or_insert(id);
        }
        first.ok_or_else(|| SendFailure::Permanent("nothing to send".into()))
    }

    async fn connect(&self, _channel: &Channel) -> Result<Channel, ConnectError> {
        Err(ConnectError::NotApplicable {
            code: "use_telegram_login",
            message: "a Telegram user account connects by logging in: POST /api/telegram/user/start".into(),
        })
    }

    /// Signs the account out and deletes its session.
    async fn disconnect(&self, channel: &Channel) {
        self.bridge.sign_out_and_forget(&self.deps, channel).await
    }

    /// An inbound photo or document, downloaded by the live client (the file never passes through
    /// a URL the customer or Telegram could see).
    async fn download(&self, channel: &Channel, attachment: &serde_json::Value) -> Result<Media, MediaError> {
        let extra = &attachment["extra"];
        if extra.get("photoId").is_none() && extra.get("documentId").is_none() {
            return Err(MediaError::NotFound("this attachment has no downloadable media".into()));
        }
        let bytes = self.bridge.download(&self.deps, channel, extra).await.map_err(MediaError::from)?;
        Ok(Media::of_attachment(bytes, attachment))
    }
}

impl TelegramUserAdapter {
    async fn send_one(&self, channel: &Channel, recipient: &str, send: &TelegramSend) -> Result<String, SendFailure> {
        match self.bridge.send(channel.id, recipient, send).await {
            Ok(provider_message_id) => Ok(provider_message_id),
            Err(BridgeSendError::NotLiveHere) => {
                let session = self.deps.store.telegram_session_of_channel(channel.tenant_id, channel.id).await.ok().flatten();
                let lease = session.and_then(|s| Some((s.lease_owner?, s.lease_until?)));
                Err(not_live_here(lease, self.bridge.owner(), "Telegram"))
            }
            Err(BridgeSendError::Telegram(TelegramError::FloodWait(seconds))) => {
                Err(SendFailure::RateLimited(Duration::from_secs(u64::from(seconds.max(1)))))
            }
            Err(BridgeSendError::Telegram(err @ (TelegramError::Unauthorized(_) | TelegramError::Refused(_)))) => {
                Err(SendFailure::Permanent(err.to_string()))
            }
            Err(BridgeSendError::Telegram(err)) => Err(SendFailure::Transient(err.to_string())),
        }
    }
}
