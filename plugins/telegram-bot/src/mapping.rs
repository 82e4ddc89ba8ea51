//! Telegram `Update` -> normalized messages, stored attachments -> Bot API file URLs, and Bot API
//! failures -> send errors and the reasons `connect`, `disconnect` and `download` give.

use serde_json::{Map, Value, json};

use crate::omnichat::channel::host::FetchError;
use crate::omnichat::channel::types::{Attachment, AttachmentKind, Header, InboundMessage, Media, SendError};

/// The bot's path prefix, as a placeholder the host fills in with the token: `{{secret:botToken}}`.
const BOT: &str = "bot{{secret:botToken}}";

/// Only `message` updates are customer messages; edits, callbacks, member changes and channel
/// posts are acknowledged and give none.
pub fn normalize_update(update: &Value) -> Result<Vec<InboundMessage>, String> {
    if !update.is_object() || !update["update_id"].is_i64() {
        return Err("the body is not a Telegram update (no update_id)".into());
    }
    let Some(message) = update.get("message").filter(|m| m.is_object()) else {
        return Ok(Vec::new());
    };
    let chat_id = message["chat"]["id"].as_i64().ok_or("message without chat.id")?;
    let message_id = message["message_id"].as_i64().ok_or("message without message_id")?;
    // A message sent on behalf of a chat (anonymous admins, linked channels) has no `from`.
    let sender =
        message.get("from").filter(|f| f.is_object()).or_else(|| message.get("sender_chat")).ok_or("message without sender")?;
    let sender_id = sender["id"].as_i64().ok_or("sender without id")?;

    let text = message["text"].as_str().or_else(|| message["caption"].as_str()).map(str::to_owned);
    let attachments = attachments(message);
    if text.is_none() && attachments.is_empty() {
        // Service messages (members joining, pinned messages, ...) carry no customer content.
        return Ok(Vec::new());
    }
    Ok(vec![InboundMessage {
        external_user_id: sender_id.to_string(),
        external_conversation_id: Some(chat_id.to_string()),
        provider_message_id: Some(format!("{chat_id}:{message_id}")),
        sender_name: display_name(sender),
        sender_username: sender["username"].as_str().map(str::to_owned),
        text,
        attachments,
        sent_at_ms: message["date"].as_i64().map(|d| d * 1000),
        raw: update.to_string(),
    }])
}

fn display_name(sender: &Value) -> Option<String> {
    let parts: Vec<&str> =
        [&sender["first_name"], &sender["last_name"], &sender["title"]].iter().filter_map(|v| v.as_str()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn attachments(message: &Value) -> Vec<Attachment> {
    let mut found = Vec::new();
    if let Some(largest) = message["photo"].as_array().and_then(|sizes| {
        sizes.iter().max_by_key(|p| {
            p["file_size"].as_u64().unwrap_or_else(|| p["width"].as_u64().unwrap_or(0) * p["height"].as_u64().unwrap_or(0))
        })
    }) {
        found.push(file(AttachmentKind::Image, largest, Some("image/jpeg"), &["width", "height"]));
    }
    for (field, kind, default_mime, details) in [
        ("video", AttachmentKind::Video, None, &["width", "height", "duration"][..]),
        ("audio", AttachmentKind::Audio, None, &["duration", "performer", "title"][..]),
        ("voice", AttachmentKind::Voice, Some("audio/ogg"), &["duration"][..]),
        ("document", AttachmentKind::Document, None, &[][..]),
        ("video_note", AttachmentKind::Video, Some("video/mp4"), &["duration", "length"][..]),
    ] {
        if let Some(media) = message.get(field).filter(|m| m.is_object()) {
            found.push(file(kind, media, default_mime, details));
        }
    }
    if let Some(sticker) = message.get("sticker").filter(|m| m.is_object()) {
        let mime = if sticker["is_animated"] == true {
            "application/x-tgsticker"
        } else if sticker["is_video"] == true {
            "video/webm"
        } else {
            "image/webp"
        };
        found.push(file(AttachmentKind::Sticker, sticker, Some(mime), &["emoji", "set_name", "width", "height"]));
    }
    if let Some(location) = message.get("location").filter(|m| m.is_object()) {
        found.push(structured(
            AttachmentKind::Location,
            json!({"latitude": location["latitude"], "longitude": location["longitude"]}),
        ));
    }
    if let Some(contact) = message.get("contact").filter(|m| m.is_object()) {
        found.push(structured(
            AttachmentKind::Contact,
            json!({"phoneNumber": contact["phone_number"], "firstName": contact["first_name"], "lastName": contact["last_name"], "userId": contact["user_id"]}),
        ));
    }
    found
}

/// A file Telegram holds: its `file_id` (fetched later through `getFile`) and details in `extra`.
fn file(kind: AttachmentKind, media: &Value, default_mime: Option<&str>, details: &[&str]) -> Attachment {
    let mut extra = Map::new();
    extra.insert("fileId".into(), media["file_id"].clone());
    extra.insert("fileUniqueId".into(), media["file_unique_id"].clone());
    for key in details {
        if let Some(value) = media.get(*key) {
            extra.insert(camel(key), value.clone());
        }
    }
    Attachment {
        kind,
        url: None,
        mime_type: media["mime_type"].as_str().or(default_mime).map(str::to_owned),
        file_name: media["file_name"].as_str().map(str::to_owned),
        size: media["file_size"].as_u64(),
        extra: Value::Object(extra).to_string(),
    }
}

fn structured(kind: AttachmentKind, extra: Value) -> Attachment {
    Attachment { kind, url: None, mime_type: None, file_name: None, size: None, extra: extra.to_string() }
}

fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub fn fetch_failure(err: FetchError) -> SendError {
    match err {
        FetchError::Denied(why) | FetchError::InvalidRequest(why) => SendError::Permanent(why),
        FetchError::Timeout => SendError::Transient("the Bot API did not answer in time".into()),
        FetchError::TooLarge => SendError::Transient("the Bot API answer was too large".into()),
        FetchError::Failed(why) => SendError::Transient(why),
    }
}

/// 429 waits as told; 5xx retries; any other refusal (bad token, blocked by the user, chat not
/// found) cannot succeed by retrying.
pub fn classify_failure(status: u16, retry_after_secs: Option<u64>, description: String) -> SendError {
    match status {
        429 => SendError::RateLimited(retry_after_secs.unwrap_or(1).saturating_mul(1000)),
        500..=599 => SendError::Transient(format!("Telegram {status}: {description}")),
        _ => SendError::Permanent(format!("Telegram {status}: {description}")),
    }
}

/// Why a Bot API call failed, in Telegram's words (`description`, e.g. `Unauthorized`), or `None`
/// when it succeeded. A success needs both a 2xx and `"ok": true`: Telegram reports refusals in
/// the body, and a proxy in between may answer 200 with something else.
pub fn refusal(status: u16, body: &[u8]) -> Option<String> {
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) && reply["ok"] == true {
        return None;
    }
    Some(match reply["description"].as_str() {
        Some(description) => description.to_owned(),
        None => format!("HTTP {status} without a description"),
    })
}

/// A short reason for a call that never got an answer. The host's own text is left out: it may
/// name the URL, and this reason becomes the channel's `statusReason`.
pub fn unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the request to the Bot API (not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the Bot API request as invalid".into(),
        FetchError::Timeout => "the Bot API did not answer in time".into(),
        FetchError::TooLarge => "the Bot API answer was too large".into(),
        FetchError::Failed(_) => "the Bot API could not be reached".into(),
    }
}

/// The Telegram file id `receive` put in an attachment's `extra` (`fileId`). Locations and
/// contacts have none.
pub fn file_id(extra: &str) -> Option<String> {
    let extra: Value = serde_json::from_str(extra).ok()?;
    extra["fileId"].as_str().or_else(|| extra["file_id"].as_str()).filter(|id| !id.is_empty()).map(str::to_owned)
}

/// `getFile` for `file_id`, which names where the file can be downloaded.
pub fn get_file_url(base: &str, file_id: &str) -> String {
    format!("{base}/{BOT}/getFile?file_id={}", percent_encode(file_id))
}

/// The download URL of a `file_path` from `getFile` (`photos/file_1.jpg`), each segment encoded.
pub fn file_url(base: &str, file_path: &str) -> String {
    let path: Vec<String> = file_path.trim_start_matches('/').split('/').map(percent_encode).collect();
    format!("{base}/file/{BOT}/{}", path.join("/"))
}

/// `result.file_path` of `getFile`'s answer, or why Telegram refused (its `description`: a file
/// over 20 MB, a file id of another bot).
pub fn file_path(status: u16, body: &[u8]) -> Result<String, String> {
    if let Some(description) = refusal(status, body) {
        return Err(format!("Telegram refused the file: {description}"));
    }
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    reply["result"]["file_path"]
        .as_str()
        .filter(|path| !path.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "Telegram gave no file path for this attachment".to_owned())
}

/// The downloaded file. Telegram serves every file as `application/octet-stream` or close to
/// it, so the type `receive` recorded wins; the name falls back to the path's last segment.
pub fn downloaded(
    status: u16,
    headers: &[Header],
    body: Vec<u8>,
    attachment: &Attachment,
    file_path: &str,
) -> Result<Media, String> {
    if !(200..300).contains(&status) {
        return Err(format!("Telegram answered HTTP {status} to the file download"));
    }
    let header_type = headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-type")).map(|h| h.value.clone());
    let last_segment = file_path.rsplit('/').next().filter(|name| !name.is_empty()).map(str::to_owned);
    Ok(Media {
        content_type: attachment.mime_type.clone().or(header_type),
        file_name: attachment.file_name.clone().or(last_segment),
        body,
    })
}

/// A short reason for a download that never got an answer; the host's own text may name the URL.
pub fn download_unreachable(err: &FetchError) -> String {
    match err {
        FetchError::TooLarge => "the file is larger than the host accepts".into(),
        other => unreachable(other),
    }
}

/// Encodes everything but RFC 3986's unreserved characters, as UTF-8 `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(message: Value) -> Value {
        json!({"update_id": 10000, "message": message})
    }

    fn base(extra: Value) -> Value {
        let mut message = json!({
            "message_id": 1365,
            "date": 1441645532,
            "chat": {"id": 1111111, "type": "private", "first_name": "Test", "last_name": "Lastname", "username": "Testusername"},
            "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "last_name": "Lastname", "username": "Testusername"},
        });
        if let (Some(m), Some(e)) = (message.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        message
    }

    fn one(message: Value) -> InboundMessage {
        let mut all = normalize_update(&update(message)).expect("normalizes");
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn extra(attachment: &Attachment) -> Value {
        serde_json::from_str(&attachment.extra).expect("extra is JSON")
    }

    #[test]
    fn a_text_message_maps_per_the_seed() {
        let m = one(base(json!({"text": "/start"})));
        assert_eq!(m.external_user_id, "1111111");
        assert_eq!(m.external_conversation_id.as_deref(), Some("1111111"));
        assert_eq!(m.provider_message_id.as_deref(), Some("1111111:1365"));
        assert_eq!(m.text.as_deref(), Some("/start"));
        assert_eq!(m.sender_name.as_deref(), Some("Test Lastname"));
        assert_eq!(m.sender_username.as_deref(), Some("Testusername"));
        assert_eq!(m.sent_at_ms, Some(1441645532000));
        assert!(m.attachments.is_empty());
    }

    #[test]
    fn a_photo_with_caption_keeps_the_largest_size() {
        let m = one(base(json!({"caption": "look", "photo": [
            {"file_id": "small", "file_unique_id": "s", "file_size": 1200, "width": 90, "height": 60},
            {"file_id": "large", "file_unique_id": "l", "file_size": 52000, "width": 1280, "height": 853},
            {"file_id": "medium", "file_unique_id": "m", "file_size": 9000, "width": 320, "height": 213}
        ]})));
        assert_eq!(m.text.as_deref(), Some("look"));
        let photo = &m.attachments[0];
        assert!(matches!(photo.kind, AttachmentKind::Image));
        assert_eq!(extra(photo)["fileId"], "large");
        assert_eq!(photo.size, Some(52000));
        assert_eq!(photo.mime_type.as_deref(), Some("image/jpeg"));
    }

    #[test]
    fn a_document_carries_its_name_and_mime() {
        let m = one(base(
            json!({"document": {"file_id": "doc1", "file_unique_id": "d", "file_name": "invoice.pdf", "mime_type": "application/pdf", "file_size": 12345}}),
        ));
        let doc = &m.attachments[0];
        assert!(matches!(doc.kind, AttachmentKind::Document));
        assert_eq!(doc.file_name.as_deref(), Some("invoice.pdf"));
        assert_eq!(doc.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(extra(doc)["fileId"], "doc1");
        assert_eq!(m.text, None);
    }

    #[test]
    fn a_location_and_a_sticker_and_a_voice_note_are_attachments() {
        let location = one(base(json!({"location": {"latitude": 52.52, "longitude": 13.405}})));
        assert!(matches!(location.attachments[0].kind, AttachmentKind::Location));
        assert_eq!(extra(&location.attachments[0])["latitude"], 52.52);

        let sticker = one(base(
            json!({"sticker": {"file_id": "st", "file_unique_id": "u", "width": 512, "height": 512, "is_animated": false, "is_video": false, "emoji": "😀", "set_name": "Pack", "type": "regular"}}),
        ));
        assert!(matches!(sticker.attachments[0].kind, AttachmentKind::Sticker));
        assert_eq!(sticker.attachments[0].mime_type.as_deref(), Some("image/webp"));
        assert_eq!(extra(&sticker.attachments[0])["emoji"], "😀");

        let voice = one(base(
            json!({"voice": {"file_id": "v", "file_unique_id": "vu", "duration": 3, "mime_type": "audio/ogg", "file_size": 2000}}),
        ));
        assert!(matches!(voice.attachments[0].kind, AttachmentKind::Voice));
        assert_eq!(extra(&voice.attachments[0])["duration"], 3);
    }

    #[test]
    fn group_messages_put_the_group_in_the_conversation() {
        let m = one(base(json!({"chat": {"id": -100123, "type": "supergroup", "title": "Support"}, "text": "hi"})));
        assert_eq!(m.external_conversation_id.as_deref(), Some("-100123"));
        assert_eq!(m.external_user_id, "1111111");
        assert_eq!(m.provider_message_id.as_deref(), Some("-100123:1365"));
    }

    #[test]
    fn updates_without_a_customer_message_give_none() {
        for other in [
            json!({"update_id": 1, "edited_message": base(json!({"text": "edited"}))}),
            json!({"update_id": 2, "callback_query": {"id": "4382", "from": {"id": 1}, "data": "x"}}),
            json!({"update_id": 3, "my_chat_member": {"chat": {"id": 1}}}),
            json!({"update_id": 4, "channel_post": {"message_id": 1, "chat": {"id": -1}, "text": "post"}}),
            update(base(json!({"new_chat_members": [{"id": 5, "first_name": "New"}]}))),
        ] {
            assert!(normalize_update(&other).expect("acknowledged").is_empty(), "{other}");
        }
    }

    #[test]
    fn a_body_that_is_not_an_update_is_an_error() {
        assert!(normalize_update(&json!({"hello": "world"})).is_err());
        assert!(normalize_update(&json!([1, 2])).is_err());
    }

    #[test]
    fn failures_are_classified_for_the_queue() {
        assert!(matches!(classify_failure(429, Some(7), String::new()), SendError::RateLimited(7000)));
        assert!(matches!(classify_failure(502, None, String::new()), SendError::Transient(_)));
        assert!(matches!(classify_failure(403, None, "bot was blocked by the user".into()), SendError::Permanent(_)));
        assert!(matches!(classify_failure(401, None, "Unauthorized".into()), SendError::Permanent(_)));
    }

    #[test]
    fn getme_failures_name_telegrams_reason() {
        let body = br#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#;
        assert_eq!(refusal(401, body).as_deref(), Some("Unauthorized"));
    }

    #[test]
    fn a_successful_call_is_no_refusal() {
        let body = br#"{"ok":true,"result":{"id":123456789,"is_bot":true,"first_name":"Support","username":"support_bot"}}"#;
        assert_eq!(refusal(200, body), None);
        assert_eq!(refusal(200, br#"{"ok":true,"result":true,"description":"Webhook was set"}"#), None);
    }

    #[test]
    fn a_refusal_in_a_200_or_without_json_still_fails() {
        assert_eq!(
            refusal(200, br#"{"ok":false,"description":"Bad Request: bad webhook: HTTPS url must be provided for webhook"}"#)
                .as_deref(),
            Some("Bad Request: bad webhook: HTTPS url must be provided for webhook")
        );
        assert_eq!(refusal(502, b"<html>Bad Gateway</html>").as_deref(), Some("HTTP 502 without a description"));
        assert_eq!(refusal(200, b"").as_deref(), Some("HTTP 200 without a description"));
    }

    #[test]
    fn unreachable_calls_never_repeat_the_hosts_text() {
        let url = "https://api.telegram.org/bot{{secret:botToken}}/getMe";
        for err in [
            FetchError::Denied(format!("{url} is not in allowed_hosts")),
            FetchError::InvalidRequest(format!("{url}: unknown secret")),
            FetchError::Failed(format!("{url}: connection refused")),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let reason = unreachable(&err);
            assert!(!reason.contains("api.telegram.org") && !reason.contains("secret:"), "{reason}");
            assert!(!reason.is_empty());
        }
    }

    fn stored(extra: Value, mime_type: Option<&str>, file_name: Option<&str>) -> Attachment {
        Attachment {
            kind: AttachmentKind::Document,
            url: None,
            mime_type: mime_type.map(str::to_owned),
            file_name: file_name.map(str::to_owned),
            size: None,
            extra: extra.to_string(),
        }
    }

    #[test]
    fn the_file_id_comes_from_what_receive_stored() {
        let m = one(base(json!({"document": {"file_id": "BQACAgIAAxk", "file_unique_id": "d", "file_name": "a.pdf"}})));
        assert_eq!(file_id(&m.attachments[0].extra).as_deref(), Some("BQACAgIAAxk"));
        assert_eq!(file_id(r#"{"file_id": "legacy"}"#).as_deref(), Some("legacy"));
        assert_eq!(file_id(r#"{"latitude": 52.52, "longitude": 13.405}"#), None);
        assert_eq!(file_id(r#"{"fileId": ""}"#), None);
        assert_eq!(file_id("not json"), None);
    }

    #[test]
    fn file_urls_keep_the_token_placeholder_and_encode_the_rest() {
        assert_eq!(
            get_file_url("https://api.telegram.org", "AgAC/+x y"),
            "https://api.telegram.org/bot{{secret:botToken}}/getFile?file_id=AgAC%2F%2Bx%20y"
        );
        assert_eq!(
            get_file_url("http://127.0.0.1:9000", "AgACAgIAAxk"),
            "http://127.0.0.1:9000/bot{{secret:botToken}}/getFile?file_id=AgACAgIAAxk"
        );
        assert_eq!(
            file_url("https://api.telegram.org", "photos/file 1.jpg"),
            "https://api.telegram.org/file/bot{{secret:botToken}}/photos/file%201.jpg"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("a/b?c&d=e#f%"), "a%2Fb%3Fc%26d%3De%23f%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn get_file_gives_the_file_path_or_telegrams_reason() {
        let ok =
            br#"{"ok":true,"result":{"file_id":"AgAC","file_unique_id":"u","file_size":1200,"file_path":"photos/file_1.jpg"}}"#;
        assert_eq!(file_path(200, ok).as_deref(), Ok("photos/file_1.jpg"));
        let big = br#"{"ok":false,"error_code":400,"description":"Bad Request: file is too big"}"#;
        assert_eq!(file_path(400, big), Err("Telegram refused the file: Bad Request: file is too big".to_owned()));
        assert!(file_path(200, br#"{"ok":true,"result":{"file_id":"AgAC"}}"#).is_err());
        assert!(file_path(502, b"<html>").is_err());
    }

    #[test]
    fn a_downloaded_file_keeps_the_type_and_name_receive_recorded() {
        let headers = vec![Header { name: "Content-Type".into(), value: "application/octet-stream".into() }];
        let photo = stored(json!({"fileId": "AgAC"}), Some("image/jpeg"), None);
        let media = downloaded(200, &headers, b"jpeg".to_vec(), &photo, "photos/file_1.jpg").expect("downloaded");
        assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(media.file_name.as_deref(), Some("file_1.jpg"));
        assert_eq!(media.body, b"jpeg");

        let doc = stored(json!({"fileId": "BQAC"}), None, Some("invoice.pdf"));
        let media = downloaded(200, &headers, Vec::new(), &doc, "documents/file_2.pdf").expect("downloaded");
        assert_eq!(media.content_type.as_deref(), Some("application/octet-stream"));
        assert_eq!(media.file_name.as_deref(), Some("invoice.pdf"));

        let why = downloaded(404, &[], Vec::new(), &doc, "documents/file_2.pdf").expect_err("not found");
        assert_eq!(why, "Telegram answered HTTP 404 to the file download");
    }

    #[test]
    fn download_failures_never_repeat_the_hosts_text() {
        let url = "https://api.telegram.org/file/bot{{secret:botToken}}/photos/file_1.jpg";
        assert_eq!(download_unreachable(&FetchError::TooLarge), "the file is larger than the host accepts");
        let reason = download_unreachable(&FetchError::Failed(format!("{url}: connection reset")));
        assert!(!reason.contains("api.telegram.org") && !reason.contains("secret:"), "{reason}");
    }
}
