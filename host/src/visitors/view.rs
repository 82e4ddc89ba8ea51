//! What a visitor sees of its conversation: its own messages and the replies that reached it,
//! without anything internal (the provider's raw event, errors, who sent a reply).

use serde_json::{Value, json};

use crate::store::{Conversation, Message, MessageDirection, MessageStatus};

/// Whether the visitor sees this message: its own, and replies handed to it (a reply still
/// queued or given up on is not there yet).
pub fn visible(message: &Message) -> bool {
    match message.direction {
        MessageDirection::Inbound => true,
        MessageDirection::Outbound => {
            matches!(message.status, MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read)
        }
        MessageDirection::System => false,
    }
}

/// A message as the widget shows it (`VisitorMessage` in the README).
pub fn message(message: &Message) -> Value {
    let from = if message.direction == MessageDirection::Inbound { "visitor" } else { "agent" };
    let client_id = message.raw.as_ref().and_then(|raw| raw.0.get("clientMessageId")).and_then(Value::as_str);
    let attachments: Vec<Value> = message
        .attachments
        .0
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|a| a["url"].is_string())
                .map(|a| {
                    json!({"kind": a["kind"], "url": a["url"], "mimeType": a["mimeType"], "fileName": a["fileName"], "size": a["size"]})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": message.id,
        "conversationId": message.conversation_id,
        "clientMessageId": client_id.filter(|_| from == "visitor"),
        "from": from,
        "text": message.text,
        "attachments": attachments,
        "status": message.status,
        "createdAt": message.created_at,
    })
}

pub fn conversation(conversation: &Conversation) -> Value {
    json!({"id": conversation.id, "status": conversation.status, "lastMessageAt": conversation.last_message_at})
}
