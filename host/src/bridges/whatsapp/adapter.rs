//! The WhatsApp bridge behind the channel seam.

use std::sync::Arc;

use async_trait::async_trait;

use super::client::{WaMedia, WaMediaKind, WaSendError};
use super::{WhatsAppBridge, WhatsAppSendError};
use crate::bridges::{BridgeDeps, FetchedMedia, bridge_info, fetch_outbound_media, not_live_here};
use crate::channels::adapter::{
    AttachmentKind, ChannelAdapter, ChannelTypeInfo, ConnectError, Media, MediaError, OutboundAttachment, OutboundMessage,
    SendFailure,
};
use crate::store::{Channel, ChannelStatus, ChannelType};

pub struct WhatsAppAdapter {
    bridge: Arc<WhatsAppBridge>,
    deps: BridgeDeps,
    info: ChannelTypeInfo,
}

impl WhatsAppAdapter {
    pub fn new(bridge: Arc<WhatsAppBridge>, deps: BridgeDeps) -> Self {
        let info = bridge_info(ChannelType::WHATSAPP, "whatsapp", "WhatsApp (linked device)");
        Self { bridge, deps, info }
    }

    /// Fetches a user-given media URL through the guarded fetcher (never the host's own network).
    async fn fetch_media(
        &self,
        attachment: &OutboundAttachment,
        kind: WaMediaKind,
        caption: Option<String>,
    ) -> Result<WaMedia, SendFailure> {
        let FetchedMedia { bytes, mime_type, file_name } = fetch_outbound_media(&self.deps.fetcher, attachment).await?;
        Ok(WaMedia { kind, bytes, mime_type, file_name, caption })
    }
}

fn media_kind(kind: AttachmentKind) -> Option<WaMediaKind> {
    match kind {
        AttachmentKind::Image => Some(WaMediaKind::Image),
        AttachmentKind::Video => Some(WaMediaKind::Video),
        AttachmentKind::Audio => Some(WaMediaKind::Audio),
        AttachmentKind::Voice => Some(WaMediaKind::Voice),
        AttachmentKind::Document => Some(WaMediaKind::Document),
        _ => None,
    }
}

#[async_trait]
impl ChannelAdapter for WhatsAppAdapter {
    fn info(&self) -> &ChannelTypeInfo {
        &self.info
    }

    /// Through the live client (paced per number): the first attachment is fetched from its URL
    /// with the guarded fetcher, uploaded and sent with the text as caption; a kind WhatsApp
    /// cannot send this way (a sticker) falls back to the text with the link.
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> Result<String, SendFailure> {
        match channel.status {
            ChannelStatus::Connected => {}
            ChannelStatus::Connecting => return Err(SendFailure::Transient("the WhatsApp channel is not paired yet".into())),
            other => return Err(SendFailure::Permanent(format!("the WhatsApp channel is not connected (status {other})"))),
        }
        let mut text = message.text.clone();
        let media = match message.attachments.first() {
            None => None,
            Some(attachment) => match media_kind(attachment.kind) {
                Some(kind) => Some(self.fetch_media(attachment, kind, text.take()).await?),
                None => {
                    text = Some(format!("{}{}", text.map(|t| format!("{t}\n")).unwrap_or_default(), attachment.url));
                    None
                }
            },
        };
        match self.bridge.send(channel.id, &message.recipient, text.as_deref(), media).await {
            Ok(id) => Ok(id),
            Err(WhatsAppSendError::NotLiveHere) => {
                let session = self.deps.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await.ok().flatten();
                let lease = session.and_then(|s| Some((s.lease_owner?, s.lease_until?)));
                Err(not_live_here(lease, self.bridge.owner(), "WhatsApp"))
            }
            Err(WhatsAppSendError::WhatsApp(WaSendError::Refused(why))) => Err(SendFailure::Permanent(why)),
            Err(WhatsAppSendError::WhatsApp(WaSendError::Unavailable(why))) => Err(SendFailure::Transient(why)),
        }
    }

    /// A new WhatsApp channel starts pairing at once: QR codes follow as `whatsapp-qr`.
    async fn created(&self, channel: Channel) -> Result<Channel, ConnectError> {
        Ok(self.bridge.connect(&self.deps, &channel).await?)
    }

    async fn connect(&self, channel: &Channel) -> Result<Channel, ConnectError> {
        Ok(self.bridge.connect(&self.deps, channel).await?)
    }

    async fn disconnect(&self, channel: &Channel) {
        self.bridge.disconnect(&self.deps, channel).await
    }

    async fn download(&self, channel: &Channel, attachment: &serde_json::Value) -> Result<Media, MediaError> {
        let extra = &attachment["extra"];
        if !extra["download"].is_object() {
            return Err(MediaError::NotFound("this attachment has no downloadable media".into()));
        }
        let bytes = self.bridge.download(&self.deps, channel, extra).await.map_err(MediaError::from)?;
        Ok(Media::of_attachment(bytes, attachment))
    }
}
