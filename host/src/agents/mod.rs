//! The auto-reply seam: called after every stored inbound message. The AI agent runner plugs in
//! here; until then the hook does nothing.

use async_trait::async_trait;

use crate::store::{Conversation, Message};

#[async_trait]
pub trait AutoReply: Send + Sync + 'static {
    async fn on_inbound_message(&self, conversation: &Conversation, message: &Message);
}

/// No agent runs.
pub struct NoAutoReply;

#[async_trait]
impl AutoReply for NoAutoReply {
    async fn on_inbound_message(&self, _conversation: &Conversation, _message: &Message) {}
}
