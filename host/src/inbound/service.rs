//! `handle_inbound_message` (the seed's `handleInboundMessage`): the one way a customer message
//! enters the store, whichever channel it came by; and receipts, which move replies forward.

use std::sync::Arc;

use serde_json::Value;
use tracing::Instrument;

use crate::agents::AutoReply;
use crate::channels::adapter::{Receipt, ReceiptStatus};
use crate::realtime::Realtime;
use crate::state::AppState;
use crate::store::{Channel, Ingested, MessageDirection, MessageStatus, NewInboundMessage, ReceiptUpdate, Store, StoreError};

/// The inbound pipeline after an adapter: the store's one transaction, then the events and the
/// auto-reply hook. Cheap to clone; the bridges hold one.
#[derive(Clone)]
pub struct Inbound {
    store: Arc<dyn Store>,
    realtime: Realtime,
    auto_reply: Arc<dyn AutoReply>,
}

impl Inbound {
    pub fn new(store: Arc<dyn Store>, realtime: Realtime, auto_reply: Arc<dyn AutoReply>) -> Self {
        Self { store, realtime, auto_reply }
    }

    /// Stores one message in one transaction, then (only after the commit) emits
    /// `message-created` and `conversation-updated` to the channel's and the tenant's rooms and
    /// calls the auto-reply hook. A redelivered message writes and emits nothing.
    ///
    /// All of it runs in a task of its own: a caller that goes away meanwhile (a webhook whose
    /// client hung up) does not leave a stored message without its events and auto-reply.
    pub async fn handle(&self, channel_type: &str, message: NewInboundMessage) -> Result<Ingested, StoreError> {
        let span = tracing::info_span!("inbound", tenant.id = %message.tenant_id, channel.id = %message.channel_instance_id);
        let (inbound, channel_type) = (self.clone(), channel_type.to_owned());
        let task = tokio::spawn(async move { inbound.store_and_emit(&channel_type, message).await }.instrument(span));
        match task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Only when the runtime shuts down: the message may or may not be stored.
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)),
        }
    }

    async fn store_and_emit(&self, channel_type: &str, mut message: NewInboundMessage) -> Result<Ingested, StoreError> {
        without_nul(&mut message);
        let ingested = self.store.ingest_message(&message).await?;
        let result = if matches!(ingested, Ingested::Stored { .. }) { "stored" } else { "duplicate" };
        metrics::counter!("omnichat_inbound_messages_total", "channel_type" => channel_type.to_owned(), "result" => result)
            .increment(1);
        match &ingested {
            Ingested::Stored { conversation, message: stored, conversation_created, .. } => {
                tracing::debug!(message.id = %stored.id, conversation.id = %conversation.id, new_conversation = conversation_created, "message stored");
                self.realtime.message_created(message.tenant_id, stored).await;
                self.realtime.conversation_updated(message.tenant_id, conversation).await;
                if stored.direction == MessageDirection::Inbound {
                    self.auto_reply.on_inbound_message(conversation, stored).await;
                }
            }
            Ingested::Duplicate => {
                tracing::debug!(provider_message_id = ?message.provider_message_id, "duplicate delivery ignored")
            }
        }
        Ok(ingested)
    }

    /// Moves the replies a receipt names to DELIVERED or READ (never backwards) and emits
    /// `message-updated` for each one that moved. Returns how many moved.
    pub async fn apply_receipt(&self, channel: &Channel, receipt: &ReceiptUpdate<'_>) -> Result<usize, StoreError> {
        let moved = self.store.apply_receipt(channel.tenant_id, channel.id, receipt).await?;
        for message in &moved {
            self.realtime.message_updated(channel.tenant_id, message).await;
        }
        Ok(moved.len())
    }
}

/// An adapter's receipt as the store applies it.
pub fn receipt_update(receipt: &Receipt) -> ReceiptUpdate<'_> {
    ReceiptUpdate {
        status: match receipt.status {
            ReceiptStatus::Delivered => MessageStatus::Delivered,
            ReceiptStatus::Read => MessageStatus::Read,
        },
        provider_message_ids: &receipt.provider_message_ids,
        external_user_id: receipt.external_user_id.as_deref(),
        up_to: receipt.up_to,
    }
}

/// [`Inbound::handle`] on the application's pipeline.
pub async fn handle_inbound_message(
    state: &AppState,
    channel_type: &str,
    message: NewInboundMessage,
) -> Result<Ingested, StoreError> {
    state.inbound.handle(channel_type, message).await
}

/// PostgreSQL's TEXT and JSONB refuse U+0000 (SQLite takes it): a NUL in a provider's text or
/// name would make a message impossible to store on one database only. It is dropped.
fn without_nul(message: &mut NewInboundMessage) {
    fn strip(text: &mut String) {
        if text.contains('\0') {
            text.retain(|c| c != '\0');
        }
    }
    fn strip_json(value: &mut Value) {
        match value {
            Value::String(text) => strip(text),
            Value::Array(items) => items.iter_mut().for_each(strip_json),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    let cleaned = std::mem::take(map).into_iter().map(|(k, v)| (k.replace('\0', ""), v)).collect();
                    *map = cleaned;
                }
                map.values_mut().for_each(strip_json);
            }
            _ => {}
        }
    }
    strip(&mut message.external_user_id);
    let optional = [
        &mut message.external_conversation_id,
        &mut message.provider_message_id,
        &mut message.sender_name,
        &mut message.sender_username,
        &mut message.text,
    ];
    for text in optional.into_iter().flatten() {
        strip(text);
    }
    strip_json(&mut message.attachments);
    strip_json(&mut message.raw);
}
