//! `handle_inbound_message` (the seed's `handleInboundMessage`) and what a plugin call needs to
//! know about a channel.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::Value;

use crate::channels::secrets;
use crate::error::ApiError;
use crate::plugins::fetch::ChannelSecrets;
use crate::plugins::{ChannelCall, runtime::ChannelContext};
use crate::state::AppState;
use crate::store::{Channel, ChannelStatus, ChannelType, Ingested, MessageDirection, NewInboundMessage, StoreError};

/// Stores one message in one transaction, then (only after the commit) emits `message-created`
/// and `conversation-updated` to the channel's and the tenant's rooms and calls the auto-reply
/// hook. A redelivered message writes and emits nothing.
#[tracing::instrument(skip_all, fields(tenant.id = %message.tenant_id, channel.id = %message.channel_instance_id))]
pub async fn handle_inbound_message(state: &AppState, mut message: NewInboundMessage) -> Result<Ingested, StoreError> {
    without_nul(&mut message);
    let ingested = state.store.ingest_message(&message).await?;
    match &ingested {
        Ingested::Stored { conversation, message: stored, conversation_created, .. } => {
            tracing::debug!(message.id = %stored.id, conversation.id = %conversation.id, new_conversation = conversation_created, "message stored");
            state.realtime.message_created(message.tenant_id, stored).await;
            state.realtime.conversation_updated(message.tenant_id, conversation).await;
            if stored.direction == MessageDirection::Inbound {
                state.auto_reply.on_inbound_message(conversation, stored).await;
            }
        }
        Ingested::Duplicate => tracing::debug!(provider_message_id = ?message.provider_message_id, "duplicate delivery ignored"),
    }
    Ok(ingested)
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

/// The context a plugin sees (config with secrets redacted) and the secrets the host keeps for it.
pub fn channel_call(state: &AppState, channel: &Channel) -> Result<ChannelCall, ApiError> {
    let opened = secrets::open(&state.secrets, &channel.config.0).map_err(|e| {
        ApiError::internal(format!("channel {}: cannot decrypt its config ({e}); was OMNICHAT_SECRET_KEY changed?", channel.id))
    })?;
    let mut values = HashMap::new();
    if let Value::Object(map) = &opened {
        for (key, value) in map {
            if !secrets::is_secret_key(key) {
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            values.insert(key.clone(), SecretString::from(text));
        }
    }
    let providers = &state.config.providers;
    if channel.channel_type == ChannelType::Facebook
        && !values.contains_key("appSecret")
        && let Some(app_secret) = &providers.facebook_app_secret
    {
        values.insert("appSecret".into(), app_secret.clone());
    }
    let api_base_url = match channel.channel_type {
        ChannelType::TelegramBot => Some(providers.telegram_api_base_url.clone()),
        ChannelType::Facebook => Some(providers.facebook_graph_base_url.clone()),
        _ => None,
    };
    Ok(ChannelCall {
        context: ChannelContext {
            channel_instance_id: channel.id.to_string(),
            tenant_id: channel.tenant_id.to_string(),
            external_id: channel.external_id.clone(),
            config: secrets::redact(&channel.config.0).to_string(),
            api_base_url,
        },
        secrets: ChannelSecrets::new(values),
    })
}

/// A channel that receives its first verified webhook is evidently connected.
pub async fn mark_connected(state: &AppState, channel: &Channel) {
    if channel.status == ChannelStatus::Connected {
        return;
    }
    crate::channels::set_status(state, channel.tenant_id, channel.id, ChannelStatus::Connected, None).await;
}
