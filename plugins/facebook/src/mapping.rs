//! Messenger webhook events -> normalized messages, and Send API failures -> send errors.

use serde_json::{Value, json};

use crate::omnichat::channel::host::FetchError;
use crate::omnichat::channel::types::{Attachment, AttachmentKind, InboundMessage, SendError};

/// The page ids a `{"object": "page", "entry": [...]}` delivery is for, without repeats.
pub fn page_ids(body: &Value) -> Result<Vec<String>, String> {
    if body["object"] != "page" {
        return Err("not a page webhook (object != \"page\")".into());
    }
    let entries = body["entry"].as_array().ok_or("no entry array")?;
    let mut ids: Vec<String> = Vec::new();
    for entry in entries {
        let id = id_string(&entry["id"]).ok_or("an entry without id")?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Customer messages and postbacks for `page_id`; echoes of the page's own messages, delivery
/// and read receipts, reactions and the like give none.
pub fn normalize(body: &Value, page_id: &str) -> Result<Vec<InboundMessage>, String> {
    let mut messages = Vec::new();
    for entry in body["entry"].as_array().ok_or("no entry array")? {
        if id_string(&entry["id"]).as_deref() != Some(page_id) {
            continue;
        }
        for event in entry["messaging"].as_array().into_iter().flatten() {
            if let Some(message) = customer_message(event) {
                messages.push(message);
            }
        }
    }
    Ok(messages)
}

fn customer_message(event: &Value) -> Option<InboundMessage> {
    let psid = id_string(&event["sender"]["id"])?;
    let (text, attachments, mid) = if let Some(message) = event.get("message").filter(|m| m.is_object()) {
        if message["is_echo"] == true {
            return None;
        }
        let attachments: Vec<Attachment> = message["attachments"].as_array().into_iter().flatten().map(attachment).collect();
        (message["text"].as_str().map(str::to_owned), attachments, message["mid"].as_str().map(str::to_owned))
    } else if let Some(postback) = event.get("postback").filter(|p| p.is_object()) {
        // A button tap: the customer "says" the button's title.
        let text = postback["title"].as_str().or(postback["payload"].as_str()).map(str::to_owned);
        (text, Vec::new(), postback["mid"].as_str().map(str::to_owned))
    } else {
        return None;
    };
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    Some(InboundMessage {
        external_user_id: psid.clone(),
        external_conversation_id: Some(psid),
        provider_message_id: mid,
        sender_name: None,
        sender_username: None,
        text,
        attachments,
        sent_at_ms: event["timestamp"].as_i64(),
        raw: event.to_string(),
    })
}

fn attachment(item: &Value) -> Attachment {
    let payload = &item["payload"];
    let kind = match item["type"].as_str().unwrap_or_default() {
        "image" if payload.get("sticker_id").is_some() => AttachmentKind::Sticker,
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::Document,
        "location" => AttachmentKind::Location,
        _ => AttachmentKind::Other,
    };
    let mut extra = json!({"type": item["type"]});
    for key in ["sticker_id", "title", "coordinates"] {
        if let Some(value) = payload.get(key) {
            extra[camel(key)] = value.clone();
        }
    }
    Attachment {
        kind,
        url: payload["url"].as_str().map(str::to_owned),
        mime_type: None,
        file_name: item["title"]
            .as_str()
            .or(payload["title"].as_str())
            .map(str::to_owned)
            .filter(|_| matches!(kind, AttachmentKind::Document)),
        size: None,
        extra: extra.to_string(),
    }
}

fn camel(key: &str) -> String {
    match key {
        "sticker_id" => "stickerId".into(),
        other => other.into(),
    }
}

/// Graph ids arrive as strings, and in some test tools as numbers.
fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn graph_attachment_type(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Image | AttachmentKind::Sticker => "image",
        AttachmentKind::Video => "video",
        AttachmentKind::Audio | AttachmentKind::Voice => "audio",
        _ => "file",
    }
}

pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Compares without an early exit, so timing does not reveal how much of a forged MAC matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn fetch_failure(err: FetchError) -> SendError {
    match err {
        FetchError::Denied(why) | FetchError::InvalidRequest(why) => SendError::Permanent(why),
        FetchError::Timeout => SendError::Transient("the Graph API did not answer in time".into()),
        FetchError::TooLarge => SendError::Transient("the Graph API answer was too large".into()),
        FetchError::Failed(why) => SendError::Transient(why),
    }
}

/// Graph error codes 4, 17, 32 and 613 are rate limits; 5xx and `is_transient` retry; the rest
/// (an invalid token, a user who cannot be messaged) is permanent.
pub fn classify_failure(status: u16, error: &Value) -> SendError {
    let code = error["code"].as_i64().unwrap_or_default();
    let message = format!("Graph {status} (code {code}): {}", error["message"].as_str().unwrap_or("no message"));
    if status == 429 || matches!(code, 4 | 17 | 32 | 613) {
        SendError::RateLimited(60_000)
    } else if status >= 500 || error["is_transient"] == true {
        SendError::Transient(message)
    } else {
        SendError::Permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pages, three events: a text, an image and an echo on page 1; a delivery on page 2.
    fn delivery() -> Value {
        json!({
            "object": "page",
            "entry": [
                {"id": "PAGE1", "time": 1458692752478u64, "messaging": [
                    {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1458692752478u64,
                     "message": {"mid": "m_1", "text": "hello, world!"}},
                    {"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE1"}, "timestamp": 1458692752479u64,
                     "message": {"mid": "m_2", "attachments": [{"type": "image", "payload": {"url": "https://scontent.example/img.jpg"}}]}},
                    {"sender": {"id": "PAGE1"}, "recipient": {"id": "PSID1"}, "timestamp": 1458692752480u64,
                     "message": {"mid": "m_3", "is_echo": true, "app_id": 1, "text": "our reply"}}
                ]},
                {"id": "PAGE2", "time": 1458692752478u64, "messaging": [
                    {"sender": {"id": "PSID9"}, "recipient": {"id": "PAGE2"}, "delivery": {"mids": ["m_0"], "watermark": 1458668856253u64}},
                    {"sender": {"id": "PSID9"}, "recipient": {"id": "PAGE2"}, "read": {"watermark": 1458668856253u64}}
                ]}
            ]
        })
    }

    #[test]
    fn page_ids_name_every_entry_once() {
        assert_eq!(page_ids(&delivery()).expect("ids"), ["PAGE1", "PAGE2"]);
        assert!(page_ids(&json!({"object": "instagram", "entry": []})).is_err());
        assert!(page_ids(&json!({"object": "page"})).is_err());
    }

    #[test]
    fn several_events_map_for_their_page_and_echoes_are_skipped() {
        let messages = normalize(&delivery(), "PAGE1").expect("normalizes");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].external_user_id, "PSID1");
        assert_eq!(messages[0].text.as_deref(), Some("hello, world!"));
        assert_eq!(messages[0].provider_message_id.as_deref(), Some("m_1"));
        assert_eq!(messages[0].sent_at_ms, Some(1458692752478));
        assert_eq!(messages[1].attachments[0].url.as_deref(), Some("https://scontent.example/img.jpg"));
        assert!(matches!(messages[1].attachments[0].kind, AttachmentKind::Image));
        assert!(normalize(&delivery(), "PAGE2").expect("normalizes").is_empty(), "deliveries and reads are not messages");
    }

    #[test]
    fn locations_files_stickers_and_postbacks_map() {
        let body = json!({"object": "page", "entry": [{"id": "P", "messaging": [
            {"sender": {"id": "U"}, "timestamp": 1, "message": {"mid": "a", "attachments": [
                {"type": "location", "payload": {"coordinates": {"lat": 52.5, "long": 13.4}}, "title": "Pin"},
                {"type": "file", "title": "menu.pdf", "payload": {"url": "https://cdn.example/menu.pdf"}},
                {"type": "image", "payload": {"url": "https://cdn.example/sticker.png", "sticker_id": 369239263222822u64}}
            ]}},
            {"sender": {"id": "U"}, "timestamp": 2, "postback": {"mid": "b", "title": "Get started", "payload": "START"}}
        ]}]});
        let messages = normalize(&body, "P").expect("normalizes");
        let kinds: Vec<_> = messages[0].attachments.iter().map(|a| a.kind).collect();
        assert!(matches!(kinds[..], [AttachmentKind::Location, AttachmentKind::Document, AttachmentKind::Sticker]));
        let location: Value = serde_json::from_str(&messages[0].attachments[0].extra).expect("json");
        assert_eq!(location["coordinates"]["lat"], 52.5);
        assert_eq!(messages[0].attachments[1].file_name.as_deref(), Some("menu.pdf"));
        assert_eq!(messages[1].text.as_deref(), Some("Get started"));
    }

    #[test]
    fn signatures_compare_whole() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0g"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn send_failures_are_classified() {
        assert!(matches!(classify_failure(400, &json!({"code": 613})), SendError::RateLimited(_)));
        assert!(matches!(classify_failure(500, &json!({"code": 2})), SendError::Transient(_)));
        assert!(matches!(
            classify_failure(400, &json!({"code": 190, "message": "Invalid OAuth access token"})),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            classify_failure(400, &json!({"code": 551, "message": "This person isn't available right now."})),
            SendError::Permanent(_)
        ));
    }
}
