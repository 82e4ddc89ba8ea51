//! AI agents: auto-replies through any OpenAI-compatible model, with tools, hand-off to humans
//! and teams. The decision to answer is durable: the store writes an agent job in the inbound
//! message's own transaction (when the tenant has an active agent); the [runner] claims it.

pub mod handlers;
pub mod llm;
pub mod model;
pub mod runner;
pub mod tools;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::Notify;

use crate::realtime::Realtime;
use crate::store::{Conversation, Message, Store, StoreError};

#[async_trait]
pub trait AutoReply: Send + Sync + 'static {
    async fn on_inbound_message(&self, conversation: &Conversation, message: &Message);
}

/// Wakes the runner after an inbound commit, so a turn does not wait for the next poll (the job
/// itself is already in the database).
pub struct WakeRunner(pub Arc<Notify>);

#[async_trait]
impl AutoReply for WakeRunner {
    async fn on_inbound_message(&self, _conversation: &Conversation, _message: &Message) {
        self.0.notify_one();
    }
}

/// A human replied on a conversation: its bot pauses for the answering agent's
/// `humanPauseMinutes`, then resumes by itself (an explicit pause or a hand-off is kept).
pub async fn pause_after_human_reply(
    store: &Arc<dyn Store>,
    realtime: &Realtime,
    conversation: &Conversation,
) -> Result<(), StoreError> {
    let agents = store.list_agents(conversation.tenant_id).await?;
    let Some(minutes) = agents
        .iter()
        .map(model::Agent::from_row)
        .find(|a| a.active && a.covers_channel(conversation.channel_instance_id))
        .map(|a| a.settings.human_pause_minutes)
        .filter(|m| *m > 0)
    else {
        return Ok(());
    };
    let until = Utc::now() + chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(i64::MAX / 120_000));
    if let Some(paused) = store.pause_bot_until(conversation.tenant_id, conversation.id, until).await? {
        realtime.conversation_updated(conversation.tenant_id, &paused).await;
    }
    Ok(())
}
