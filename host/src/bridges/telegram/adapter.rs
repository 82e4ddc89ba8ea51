//! The Telegram user-account bridge behind the channel seam.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::client::{TelegramError, TelegramMedia, TelegramSend};
use super::{BridgeSendError, TelegramBridge};
use crate::bridges::{BridgeDeps, bridge_info, not_live_here};
use crate::channels::adapter::{AttachmentKind, ChannelAdapter, ChannelTypeInfo, ConnectError, OutboundMessage, SendFailure};
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

    /// Text, with the first attachment by URL (Telegram fetches it): photos as photos, anything
    /// else as a document; on the live client of the replica that owns the session.
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> Result<String, SendFailure> {
        if channel.status != ChannelStatus::Connected {
            return Err(SendFailure::Permanent(format!("the Telegram account is not connected (status {})", channel.status)));
        }
        let media = message.attachments.first().map(|a| match a.kind {
            AttachmentKind::Image => TelegramMedia::PhotoUrl(a.url.clone()),
            _ => TelegramMedia::DocumentUrl(a.url.clone()),
        });
        let send = TelegramSend { text: message.text.clone(), media };
        match self.bridge.send(channel.id, &message.recipient, &send).await {
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
}
