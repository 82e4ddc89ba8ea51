//! Example webhook bodies -> normalized messages, replies -> API requests, and the API's answers
//! -> send outcomes. Pure (no host calls), so `cargo test` runs it natively: keep everything you
//! can test here and leave lib.rs the thin layer that calls the host.

use serde_json::{Value, json};

use crate::omnichat::channel::host::FetchError;
use crate::omnichat::channel::types::{
    Attachment, AttachmentKind, Header, InboundMessage, Media, OutboundAttachment, OutboundMessage, SendError, SendReceipt,
};

/// Used when a 429 says nothing about when to come back.
const DEFAULT_RATE_LIMIT_MS: u64 = 5_000;
/// A shorter pause would only earn another 429.
const MIN_RATE_LIMIT_MS: u64 = 1_000;

/// A body is one message object or an array of them. One malformed message refuses the whole
/// delivery (400), so the provider's dashboard shows the error instead of a message going missing.
pub fn normalize(body: &[u8]) -> Result<Vec<InboundMessage>, String> {
    let body: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match &body {
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, item)| message(item).map_err(|why| format!("message {i}: {why}"))).collect()
        }
        Value::Object(_) => Ok(vec![message(&body)?]),
        _ => Err("the body is neither a message nor an array of messages".into()),
    }
}

fn message(item: &Value) -> Result<InboundMessage, String> {
    let sender = item.get("from").filter(|f| f.is_object()).ok_or("no `from`")?;
    let user = id_string(&sender["id"]).ok_or("no `from.id`")?;
    Ok(InboundMessage {
        external_user_id: user,
        external_conversation_id: id_string(&item["chat"]),
        // The host stores a message once per provider id: redeliveries are harmless.
        provider_message_id: id_string(&item["id"]),
        sender_name: sender["name"].as_str().map(str::to_owned),
        sender_username: None,
        text: item["text"].as_str().map(str::to_owned),
        attachments: Vec::new(),
        sent_at_ms: item["timestamp"].as_i64(),
        raw: item.to_string(),
    })
}

/// Ids as strings or numbers: providers are not consistent about it.
fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The body of `POST /messages`.
pub fn send_body(message: &OutboundMessage) -> Result<Value, String> {
    let text = message.text.as_deref().filter(|t| !t.trim().is_empty());
    if text.is_none() && message.attachments.is_empty() {
        return Err("nothing to send: no text and no attachment".into());
    }
    let attachments: Vec<Value> = message.attachments.iter().map(attachment).collect();
    Ok(json!({"to": message.recipient, "text": text, "attachments": attachments}))
}

fn attachment(attachment: &OutboundAttachment) -> Value {
    json!({
        "kind": kind_name(attachment.kind),
        "url": attachment.url,
        "fileName": attachment.file_name,
        "mimeType": attachment.mime_type,
    })
}

pub fn kind_name(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Image => "image",
        AttachmentKind::Video => "video",
        AttachmentKind::Audio => "audio",
        AttachmentKind::Voice => "voice",
        AttachmentKind::Document => "document",
        AttachmentKind::Sticker => "sticker",
        AttachmentKind::Location => "location",
        AttachmentKind::Contact => "contact",
        AttachmentKind::Other => "other",
    }
}

/// What the API's answer to `POST /messages` means. `idempotency_key` (OmniChat's message id) is
/// the receipt's id when the answer names none.
pub fn send_outcome(status: u16, headers: &[Header], body: &[u8], idempotency_key: &str) -> Result<SendReceipt, SendError> {
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let id = id_string(&reply["id"]).unwrap_or_else(|| idempotency_key.to_owned());
        return Ok(SendReceipt { provider_message_id: id });
    }
    Err(classify_failure(status, retry_after_secs(headers), error_message(&reply)))
}

/// The host's queue acts on the kind: `RateLimited` pauses the channel for that long, `Transient`
/// retries with backoff up to its attempt limit, `Permanent` fails the message at once.
pub fn classify_failure(status: u16, retry_after_secs: Option<u64>, message: &str) -> SendError {
    match status {
        429 => SendError::RateLimited(
            retry_after_secs.map_or(DEFAULT_RATE_LIMIT_MS, |secs| secs.saturating_mul(1000).max(MIN_RATE_LIMIT_MS)),
        ),
        500..=599 => SendError::Transient(format!("Example API {status}: {message}")),
        _ => SendError::Permanent(format!("Example API {status}: {message}")),
    }
}

fn retry_after_secs(headers: &[Header]) -> Option<u64> {
    header(headers, "retry-after").and_then(|v| v.trim().parse().ok())
}

fn error_message(reply: &Value) -> &str {
    reply["error"].as_str().or_else(|| reply["message"].as_str()).unwrap_or("no message")
}

/// A request that did not happen or did not finish. Timeouts and connection failures may pass;
/// a denied host or a malformed request will fail the same way next time.
pub fn fetch_failure(err: FetchError) -> SendError {
    match err {
        FetchError::Timeout => SendError::Transient("the Example API did not answer in time".into()),
        FetchError::Failed(why) => SendError::Transient(why),
        FetchError::Denied(why) => SendError::Permanent(format!("fetch denied: {why}")),
        FetchError::InvalidRequest(why) => SendError::Permanent(format!("invalid request: {why}")),
        FetchError::TooLarge => SendError::Permanent("the Example API's answer was too large".into()),
    }
}

/// A short reason for a call that never got an answer. The host's own text is left out (it may
/// name the URL): this reason becomes the channel's `statusReason`, which the tenant's agents see.
pub fn unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the request to the Example API (not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the request to the Example API as invalid".into(),
        FetchError::Timeout => "the Example API did not answer in time".into(),
        FetchError::TooLarge => "the Example API's answer was too large".into(),
        FetchError::Failed(_) => "the Example API could not be reached".into(),
    }
}

/// The answer to `GET /me`: the account's name when the token works.
pub fn check_me(status: u16, body: &[u8]) -> Result<Option<String>, String> {
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(reply["name"].as_str().map(str::to_owned)),
        401 | 403 => Err(format!("the Example API rejected apiToken: {}", error_message(&reply))),
        _ => Err(format!("the Example API answered {status} to GET /me: {}", error_message(&reply))),
    }
}

/// Any other answer that should be a 2xx, as the channel's status reason when it is not.
pub fn check_ok(what: &str, status: u16, body: &[u8]) -> Result<(), String> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    Err(format!("the Example API answered {status} to {what}: {}", error_message(&reply)))
}

/// Where a stored attachment's content is: the Example provider sends media as URLs.
pub fn media_url(attachment: &Attachment) -> Result<&str, String> {
    attachment
        .url
        .as_deref()
        .filter(|url| !url.is_empty())
        .ok_or_else(|| "the EXAMPLE provider sends media as URLs; this attachment has none".to_owned())
}

/// The answer to a media URL: its body, typed by the answer's `content-type`, else by what
/// `receive` recorded.
pub fn downloaded(status: u16, headers: &[Header], body: Vec<u8>, attachment: &Attachment) -> Result<Media, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the media URL answered HTTP {status}"));
    }
    Ok(Media {
        content_type: header(headers, "content-type").map(str::to_owned).or_else(|| attachment.mime_type.clone()),
        file_name: attachment.file_name.clone(),
        body,
    })
}

/// A short reason for a download that never got an answer; the host's own text may name the URL.
pub fn download_unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the download (its host is not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the download request as invalid".into(),
        FetchError::Timeout => "the download did not finish in time".into(),
        FetchError::TooLarge => "the media is larger than the host accepts".into(),
        FetchError::Failed(_) => "the media could not be fetched".into(),
    }
}

/// A non-secret text field of the channel's config (`ctx.config`, a JSON object in which secret
/// values read `"********"`).
pub fn config_text(config: &str, field: &str) -> Option<String> {
    let config: Value = serde_json::from_str(config).ok()?;
    config[field].as_str().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(fixture: &str) -> Vec<InboundMessage> {
        normalize(fixture.as_bytes()).expect("an Example webhook")
    }

    fn reply(text: Option<&str>, attachments: Vec<OutboundAttachment>) -> OutboundMessage {
        OutboundMessage {
            message_id: "0190f5e2-7c1a-7d3e-9b8f-2a4c6e8f0a1b".into(),
            recipient: "user-42".into(),
            text: text.map(str::to_owned),
            attachments,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(name, value)| Header { name: (*name).into(), value: (*value).into() }).collect()
    }

    #[test]
    fn a_direct_message_maps_its_sender_text_and_time() {
        let all = delivery(include_str!("../fixtures/message.json"));
        assert_eq!(all.len(), 1);
        let m = &all[0];
        assert_eq!(m.external_user_id, "user-42");
        assert_eq!(m.external_conversation_id, None);
        assert_eq!(m.provider_message_id.as_deref(), Some("msg-1001"));
        assert_eq!(m.sender_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(m.text.as_deref(), Some("Hello, is my order on its way?"));
        assert_eq!(m.sent_at_ms, Some(1700000000000));
        let raw: Value = serde_json::from_str(&m.raw).expect("raw is JSON");
        assert_eq!(raw["id"], "msg-1001");
    }

    #[test]
    fn a_message_in_a_chat_puts_the_chat_in_the_conversation() {
        let all = delivery(include_str!("../fixtures/group_message.json"));
        assert_eq!(all[0].external_conversation_id.as_deref(), Some("room-7"));
        assert_eq!(all[0].external_user_id, "user-43");
    }

    #[test]
    fn an_array_of_messages_maps_each_in_order() {
        let all = delivery(include_str!("../fixtures/batch.json"));
        let ids: Vec<_> = all.iter().map(|m| m.provider_message_id.as_deref()).collect();
        assert_eq!(ids, [Some("msg-1003"), Some("msg-1004")]);
        assert_eq!(all[1].sender_name, None);
        assert!(delivery("[]").is_empty());
    }

    #[test]
    fn a_message_without_a_sender_refuses_the_delivery() {
        let why = normalize(include_str!("../fixtures/no_sender.json").as_bytes()).expect_err("refused");
        assert!(why.contains("from"), "{why}");
        assert!(normalize(b"not json").is_err());
        assert!(normalize(b"42").is_err());
        let why = normalize(br#"[{"from": {"id": "a"}}, {"text": "no sender"}]"#).expect_err("refused");
        assert!(why.starts_with("message 1"), "{why}");
    }

    #[test]
    fn a_reply_carries_its_text_and_attachments() {
        let body = send_body(&reply(
            Some("Your invoice"),
            vec![OutboundAttachment {
                kind: AttachmentKind::Document,
                url: "https://cdn.example.com/invoice.pdf".into(),
                file_name: Some("invoice.pdf".into()),
                mime_type: Some("application/pdf".into()),
            }],
        ))
        .expect("something to send");
        assert_eq!(
            body,
            json!({"to": "user-42", "text": "Your invoice", "attachments": [
                {"kind": "document", "url": "https://cdn.example.com/invoice.pdf", "fileName": "invoice.pdf", "mimeType": "application/pdf"}
            ]})
        );
    }

    #[test]
    fn a_reply_with_nothing_to_send_is_refused() {
        assert!(send_body(&reply(None, Vec::new())).is_err());
        assert!(send_body(&reply(Some(" "), Vec::new())).is_err());
    }

    #[test]
    fn an_accepted_reply_gives_the_provider_id_or_the_idempotency_key() {
        let receipt = send_outcome(201, &[], br#"{"id": "out-9"}"#, "key").expect("delivered");
        assert_eq!(receipt.provider_message_id, "out-9");
        let receipt = send_outcome(200, &[], b"", "key").expect("delivered");
        assert_eq!(receipt.provider_message_id, "key");
    }

    #[test]
    fn send_failures_are_classified_for_the_queue() {
        assert!(matches!(send_outcome(429, &headers(&[("Retry-After", "7")]), b"", "k"), Err(SendError::RateLimited(7000))));
        assert!(matches!(send_outcome(429, &[], b"", "k"), Err(SendError::RateLimited(DEFAULT_RATE_LIMIT_MS))));
        match send_outcome(400, &[], br#"{"error": "unknown recipient"}"#, "k") {
            Err(SendError::Permanent(why)) => assert_eq!(why, "Example API 400: unknown recipient"),
            other => panic!("expected a permanent failure, got {other:?}"),
        }
        assert!(matches!(send_outcome(401, &[], b"", "k"), Err(SendError::Permanent(_))));
        assert!(matches!(send_outcome(502, &[], b"<html>", "k"), Err(SendError::Transient(_))));
        assert!(matches!(fetch_failure(FetchError::Timeout), SendError::Transient(_)));
        assert!(matches!(fetch_failure(FetchError::Denied("api.example.com".into())), SendError::Permanent(_)));
    }

    #[test]
    fn connecting_names_a_rejected_token() {
        assert_eq!(check_me(200, br#"{"id": "acct-1", "name": "Example shop"}"#), Ok(Some("Example shop".to_owned())));
        let why = check_me(401, br#"{"error": "invalid token"}"#).expect_err("rejected");
        assert_eq!(why, "the Example API rejected apiToken: invalid token");
        assert!(check_ok("PUT /me/greeting", 204, b"").is_ok());
        assert!(check_ok("PUT /me/greeting", 422, b"").is_err());
    }

    #[test]
    fn non_secret_config_is_read_by_name() {
        let config = r#"{"webhookToken": "********", "apiToken": "********", "greeting": " Hi there! "}"#;
        assert_eq!(config_text(config, "greeting").as_deref(), Some("Hi there!"));
        assert_eq!(config_text(r#"{"greeting": ""}"#, "greeting"), None);
        assert_eq!(config_text("{}", "greeting"), None);
        assert_eq!(config_text("not json", "greeting"), None);
    }

    fn stored(url: Option<&str>) -> Attachment {
        Attachment {
            kind: AttachmentKind::Image,
            url: url.map(str::to_owned),
            mime_type: Some("image/png".into()),
            file_name: Some("photo.png".into()),
            size: None,
            extra: "{}".into(),
        }
    }

    #[test]
    fn media_is_downloaded_from_the_attachments_url() {
        let image = stored(Some("https://media.example.com/p/1.png"));
        assert_eq!(media_url(&image), Ok("https://media.example.com/p/1.png"));
        let media = downloaded(200, &headers(&[("Content-Type", "image/webp")]), b"webp".to_vec(), &image).expect("media");
        assert_eq!(media.content_type.as_deref(), Some("image/webp"));
        assert_eq!(media.file_name.as_deref(), Some("photo.png"));
        assert_eq!(media.body, b"webp");
        let media = downloaded(200, &[], Vec::new(), &image).expect("media");
        assert_eq!(media.content_type.as_deref(), Some("image/png"));
    }

    #[test]
    fn media_without_a_url_or_that_is_gone_is_an_error() {
        let why = media_url(&stored(None)).expect_err("no URL");
        assert_eq!(why, "the EXAMPLE provider sends media as URLs; this attachment has none");
        assert!(media_url(&stored(Some(""))).is_err());
        let why = downloaded(404, &[], Vec::new(), &stored(Some("https://media.example.com/gone"))).expect_err("gone");
        assert_eq!(why, "the media URL answered HTTP 404");
        let reason = download_unreachable(&FetchError::Denied("https://media.example.com/gone is not granted".into()));
        assert!(!reason.contains("media.example.com"), "{reason}");
    }
}
