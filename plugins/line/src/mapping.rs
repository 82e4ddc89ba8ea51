//! LINE webhook events -> normalized messages, stored attachments -> content requests, replies
//! -> push requests, and LINE's answers -> media and send outcomes. Pure: no host calls, so the
//! tests run natively.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::omnichat::channel::host::{FetchError, HttpRequest};
use crate::omnichat::channel::types::{
    Attachment, AttachmentKind, Header, InboundMessage, Media, OutboundMessage, SendError, SendReceipt,
};

/// LINE documents no `Retry-After` for 429: its rate limits are counted per second, so a short
/// pause clears them.
const DEFAULT_RATE_LIMIT_MS: u64 = 5_000;
/// A shorter pause than a second would only earn another 429.
const MIN_RATE_LIMIT_MS: u64 = 1_000;

/// Whether `presented` (the `X-Line-Signature` header: standard base64 with padding) is the MAC
/// the host computed over the raw body.
pub fn signature_matches(presented: &str, expected: &[u8]) -> bool {
    STANDARD.decode(presented.trim()).is_ok_and(|presented| constant_time_eq(&presented, expected))
}

/// Compares without an early exit, so timing does not reveal how much of a forged MAC matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Message events from users, groups and rooms are customer messages; follow, unfollow,
/// postback, unsend, join, member and the other events are acknowledged and give none.
///
/// Standby events (another module holds the chat, so LINE forbids replying) are stored all the
/// same: they are what the customer wrote. Redeliveries map like first deliveries and keep their
/// `webhookEventId`, on which the host dedupes.
pub fn normalize(body: &[u8]) -> Result<Vec<InboundMessage>, String> {
    let body: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let events = body.get("events").and_then(Value::as_array).ok_or("the body is not a LINE webhook (no events array)")?;
    Ok(events.iter().filter(|event| event["type"] == "message").filter_map(customer_message).collect())
}

fn customer_message(event: &Value) -> Option<InboundMessage> {
    let source = &event["source"];
    let conversation = match source["type"].as_str()? {
        "user" => None,
        "group" => Some(source["groupId"].as_str()?),
        "room" => Some(source["roomId"].as_str()?),
        _ => return None,
    };
    // LINE leaves `userId` out for a group or room member who has not agreed to share it (and for
    // clients other than LINE for iOS and Android). The group then stands in for the sender:
    // the message is kept and answered in the group, at the cost of those members sharing one
    // customer record.
    let user = source["userId"].as_str().or(conversation)?;
    let message = event.get("message").filter(|m| m.is_object())?;
    let text = if message["type"] == "text" { message["text"].as_str().map(str::to_owned) } else { None };
    Some(InboundMessage {
        external_user_id: user.to_owned(),
        external_conversation_id: conversation.map(str::to_owned),
        // The event id is the one that survives redelivery; old payloads without it still carry
        // the message id, unique per channel too.
        provider_message_id: event["webhookEventId"].as_str().or_else(|| message["id"].as_str()).map(str::to_owned),
        // Webhooks carry no profile: names come from the profile API, which is not called here.
        sender_name: None,
        sender_username: None,
        text,
        attachments: attachment(message).into_iter().collect(),
        sent_at_ms: event["timestamp"].as_i64(),
        raw: event.to_string(),
    })
}

fn attachment(message: &Value) -> Option<Attachment> {
    let kind = match message["type"].as_str()? {
        "text" => return None,
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::Document,
        "location" => {
            return Some(structured(AttachmentKind::Location, pick(message, &["title", "address", "latitude", "longitude"])));
        }
        "sticker" => {
            return Some(structured(
                AttachmentKind::Sticker,
                pick(message, &["packageId", "stickerId", "stickerResourceType", "keywords", "text"]),
            ));
        }
        // A message type newer than this adapter: kept, so the conversation shows something came.
        _ => return Some(structured(AttachmentKind::Other, pick(message, &["id", "type"]))),
    };
    // Content LINE holds (`contentProvider.type == "line"`) has no public URL: it is fetched later
    // by `messageId` from the content API, which needs the channel access token.
    let provider = &message["contentProvider"];
    let url = if provider["type"] == "external" { provider["originalContentUrl"].as_str().map(str::to_owned) } else { None };
    Some(Attachment {
        kind,
        url,
        // LINE names no type: the content API's answer does.
        mime_type: None,
        file_name: message["fileName"].as_str().map(str::to_owned),
        size: message["fileSize"].as_u64(),
        extra: pick(message, &["id", "contentProvider", "duration", "imageSet"]).to_string(),
    })
}

/// The fields of `message` that are present, with LINE's `id` named `messageId`.
fn pick(message: &Value, keys: &[&str]) -> Value {
    let mut extra = Map::new();
    for key in keys {
        if let Some(value) = message.get(*key).filter(|v| !v.is_null()) {
            let name = if *key == "id" { "messageId" } else { *key };
            extra.insert(name.to_owned(), value.clone());
        }
    }
    Value::Object(extra)
}

fn structured(kind: AttachmentKind, extra: Value) -> Attachment {
    Attachment { kind, url: None, mime_type: None, file_name: None, size: None, extra: extra.to_string() }
}

/// The push request's body: the text first, then the first image as an image message (two of
/// the five message objects a push may carry). A LINE video needs a preview image and an audio
/// message its duration, neither of which a reply by URL has, so every other attachment (and
/// any further image) goes as a link in the text.
pub fn push_body(message: &OutboundMessage) -> Result<Value, String> {
    let mut lines: Vec<String> = message.text.iter().filter(|t| !t.trim().is_empty()).cloned().collect();
    let mut image = None;
    for attachment in message.attachments.iter().filter(|a| !a.url.is_empty()) {
        if image.is_none() && matches!(attachment.kind, AttachmentKind::Image) {
            image = Some(json!({"type": "image", "originalContentUrl": attachment.url, "previewImageUrl": attachment.url}));
        } else {
            lines.push(match &attachment.file_name {
                Some(name) => format!("{name}: {}", attachment.url),
                None => attachment.url.clone(),
            });
        }
    }
    let mut messages = Vec::new();
    if !lines.is_empty() {
        messages.push(json!({"type": "text", "text": lines.join("\n")}));
    }
    messages.extend(image);
    if messages.is_empty() {
        return Err("nothing to send: no text and no attachment".into());
    }
    Ok(json!({"to": message.recipient, "messages": messages}))
}

/// What LINE's answer to a push means. `retry_key` is the `X-Line-Retry-Key` sent (OmniChat's
/// message id), the receipt's id of last resort.
pub fn push_outcome(status: u16, headers: &[Header], body: &[u8], retry_key: &str) -> Result<SendReceipt, SendError> {
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let sent = reply["sentMessages"][0]["id"].as_str().map(str::to_owned);
    match status {
        200..=299 => Ok(SendReceipt { provider_message_id: sent.unwrap_or_else(|| retry_key.to_owned()) }),
        // LINE's answer to a retry key it accepted before: an earlier attempt got through (its
        // answer was lost to a timeout or a 5xx), and sending again would duplicate it.
        409 => {
            let accepted = header(headers, "x-line-accepted-request-id").filter(|id| !id.is_empty()).map(str::to_owned);
            Ok(SendReceipt { provider_message_id: sent.or(accepted).unwrap_or_else(|| retry_key.to_owned()) })
        }
        _ => Err(classify_failure(status, retry_after_secs(headers), error_message(&reply))),
    }
}

/// 429 waits (a monthly quota retries with backoff instead, see below); 5xx retries; any other
/// refusal (a bad token, an unknown or blocked recipient, an invalid message) cannot succeed by
/// retrying.
pub fn classify_failure(status: u16, retry_after_secs: Option<u64>, message: &str) -> SendError {
    match status {
        // The monthly message quota: pausing the channel would stall it until next month, but it
        // can also be exhausted only for a while (reserved by a broadcast in progress), so it is
        // retried with the queue's backoff and attempt limit.
        429 if message.contains("monthly limit") => SendError::Transient(format!("LINE 429: {message}")),
        429 => SendError::RateLimited(
            retry_after_secs.map_or(DEFAULT_RATE_LIMIT_MS, |secs| secs.saturating_mul(1000).max(MIN_RATE_LIMIT_MS)),
        ),
        500..=599 => SendError::Transient(format!("LINE {status}: {message}")),
        _ => SendError::Permanent(format!("LINE {status}: {message}")),
    }
}

/// `Retry-After` in seconds; the HTTP-date form is not worth parsing for LINE, which does not
/// document sending the header at all.
fn retry_after_secs(headers: &[Header]) -> Option<u64> {
    header(headers, "retry-after").and_then(|v| v.trim().parse().ok())
}

/// LINE's error bodies are `{"message": "...", "details": [{"message", "property"}]}`.
fn error_message(reply: &Value) -> &str {
    reply["message"].as_str().unwrap_or("no message")
}

pub fn fetch_failure(err: FetchError) -> SendError {
    match err {
        FetchError::Timeout => SendError::Transient("LINE did not answer in time".into()),
        FetchError::Failed(why) => SendError::Transient(why),
        FetchError::Denied(why) => SendError::Permanent(format!("fetch denied: {why}")),
        FetchError::InvalidRequest(why) => SendError::Permanent(format!("invalid request: {why}")),
        // LINE's answers are small JSON: one too large for the host will be too large again.
        FetchError::TooLarge => SendError::Permanent("LINE's answer was too large".into()),
    }
}

/// A short reason for a call that never got an answer. The host's own text is left out (it may
/// name the URL): this reason becomes the channel's `statusReason`, which the tenant's agents see.
pub fn unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the request to LINE (not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the request to LINE as invalid".into(),
        FetchError::Timeout => "LINE did not answer in time".into(),
        FetchError::TooLarge => "LINE's answer was too large".into(),
        FetchError::Failed(_) => "LINE could not be reached".into(),
    }
}

/// The answer to `GET /v2/bot/info`: the bot's display name when the token works.
pub fn check_bot_info(status: u16, body: &[u8]) -> Result<Option<String>, String> {
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(reply["displayName"].as_str().map(str::to_owned)),
        401 | 403 => Err(format!("LINE rejected the channel access token: {}", error_message(&reply))),
        _ => Err(format!("LINE answered {status} to GET /v2/bot/info: {}", error_message(&reply))),
    }
}

/// The answer to `PUT /v2/bot/channel/webhook/endpoint`.
pub fn check_webhook_endpoint(status: u16, body: &[u8]) -> Result<(), String> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    Err(format!("LINE refused the webhook endpoint ({status}): {}", error_message(&reply)))
}

/// The request for a stored attachment's content. Content sent with an external URL
/// (`contentProvider.type == "external"`, the attachment's `url`) is fetched from there, without
/// the token, and its host has to be in `allowed_hosts`; content LINE holds is fetched by
/// `messageId` from the content API, which LINE serves from `api-data.line.me`.
pub fn content_request(attachment: &Attachment, api_base: &str) -> Result<HttpRequest, String> {
    if !matches!(
        attachment.kind,
        AttachmentKind::Image | AttachmentKind::Video | AttachmentKind::Audio | AttachmentKind::Voice | AttachmentKind::Document
    ) {
        // Locations, stickers and message types newer than the adapter: nothing to download.
        return Err("this LINE attachment has no content to download".into());
    }
    if let Some(url) = external_url(attachment) {
        return Ok(HttpRequest { method: "GET".into(), url: url.to_owned(), headers: Vec::new(), body: None });
    }
    let id = message_id(&attachment.extra).ok_or("this attachment has no LINE message id")?;
    Ok(HttpRequest {
        method: "GET".into(),
        url: content_url(&data_base_url(api_base), &id),
        headers: vec![Header { name: "authorization".into(), value: crate::AUTHORIZATION.into() }],
        body: None,
    })
}

fn external_url(attachment: &Attachment) -> Option<&str> {
    attachment.url.as_deref().filter(|url| !url.is_empty())
}

/// The `messageId` `receive` put in `extra` (LINE's message id, a string of digits).
pub fn message_id(extra: &str) -> Option<String> {
    let extra: Value = serde_json::from_str(extra).ok()?;
    match &extra["messageId"] {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The content API's base for `api_base`: LINE's own API host becomes `api-data.line.me`; any
/// other base (a test server, a proxy) serves both and is used as it is.
pub fn data_base_url(api_base: &str) -> String {
    let api_base = api_base.trim_end_matches('/');
    match api_base.split_once("://api.line.me") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric())
                && (rest.is_empty() || rest.starts_with(['/', ':'])) =>
        {
            format!("{scheme}://api-data.line.me{rest}")
        }
        _ => api_base.to_owned(),
    }
}

/// `GET {data_base}/v2/bot/message/{messageId}/content`.
pub fn content_url(data_base: &str, message_id: &str) -> String {
    format!("{data_base}/v2/bot/message/{}/content", percent_encode(message_id))
}

/// What the answer to a content request means. LINE names the type in `content-type`; content
/// LINE held but has deleted (it keeps it for a limited time) is a 404.
pub fn content_outcome(status: u16, headers: &[Header], body: Vec<u8>, attachment: &Attachment) -> Result<Media, String> {
    let external = external_url(attachment).is_some();
    match status {
        // A video or audio LINE is still preparing: nothing to serve yet.
        202 if !external && body.is_empty() => Err("LINE is still preparing this content; try again shortly".into()),
        200..=299 => Ok(Media {
            content_type: header(headers, "content-type").map(str::to_owned).or_else(|| attachment.mime_type.clone()),
            file_name: attachment.file_name.clone(),
            body,
        }),
        _ if external => Err(format!("the content's own server answered HTTP {status}")),
        404 => Err("LINE no longer has this content (it keeps it for a limited time)".into()),
        _ => {
            let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Err(format!("LINE answered HTTP {status} to the content request: {}", error_message(&reply)))
        }
    }
}

/// A short reason for a download that never got an answer; the host's own text may name the URL.
pub fn download_unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the download (its host is not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the download request as invalid".into(),
        FetchError::Timeout => "the download did not finish in time".into(),
        FetchError::TooLarge => "the content is larger than the host accepts".into(),
        FetchError::Failed(_) => "the content could not be fetched".into(),
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

pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omnichat::channel::types::OutboundAttachment;

    const USER: &str = "U4af4980629c1b5f6d4b0c8b1d2e3f4a5";
    const GROUP: &str = "Ca56f94637c8a1b2c3d4e5f6a7b8c9d0e";

    fn delivery(fixture: &str) -> Vec<InboundMessage> {
        normalize(fixture.as_bytes()).expect("a LINE webhook")
    }

    fn one(fixture: &str) -> InboundMessage {
        let mut all = delivery(fixture);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn only_attachment(message: &InboundMessage) -> &Attachment {
        assert_eq!(message.attachments.len(), 1);
        &message.attachments[0]
    }

    fn extra(attachment: &Attachment) -> Value {
        serde_json::from_str(&attachment.extra).expect("extra is JSON")
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(name, value)| Header { name: (*name).into(), value: (*value).into() }).collect()
    }

    fn reply(text: Option<&str>, attachments: Vec<OutboundAttachment>) -> OutboundMessage {
        OutboundMessage {
            message_id: "0190f5e2-7c1a-7d3e-9b8f-2a4c6e8f0a1b".into(),
            recipient: USER.into(),
            text: text.map(str::to_owned),
            attachments,
        }
    }

    fn outbound(kind: AttachmentKind, url: &str, file_name: Option<&str>) -> OutboundAttachment {
        OutboundAttachment { kind, url: url.into(), file_name: file_name.map(str::to_owned), mime_type: None }
    }

    #[test]
    fn a_text_message_from_a_user_is_a_one_to_one_message() {
        let m = one(include_str!("../fixtures/text.json"));
        assert_eq!(m.external_user_id, USER);
        assert_eq!(m.external_conversation_id, None);
        assert_eq!(m.provider_message_id.as_deref(), Some("01FZ74A0TDDPYRVKNK77XKC3ZR"));
        assert_eq!(m.text.as_deref(), Some("Hello, I ordered a jacket last week"));
        assert_eq!(m.sent_at_ms, Some(1462629479859));
        assert!(m.attachments.is_empty());
        assert_eq!(m.sender_name, None);
        let raw: Value = serde_json::from_str(&m.raw).expect("raw is JSON");
        assert_eq!(raw["replyToken"], "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA");
    }

    #[test]
    fn an_image_held_by_line_has_no_url_but_its_message_id() {
        let m = one(include_str!("../fixtures/image_line.json"));
        assert_eq!(m.text, None);
        let image = only_attachment(&m);
        assert!(matches!(image.kind, AttachmentKind::Image));
        assert_eq!(image.url, None);
        assert_eq!(extra(image)["messageId"], "354718705033693859");
        assert_eq!(extra(image)["contentProvider"]["type"], "line");
        assert_eq!(extra(image)["imageSet"]["total"], 2);
    }

    #[test]
    fn an_image_from_an_external_provider_keeps_its_original_url() {
        let m = one(include_str!("../fixtures/image_external.json"));
        let image = only_attachment(&m);
        assert!(matches!(image.kind, AttachmentKind::Image));
        assert_eq!(image.url.as_deref(), Some("https://example.com/photos/original.jpg"));
        assert_eq!(extra(image)["contentProvider"]["previewImageUrl"], "https://example.com/photos/preview.jpg");
    }

    #[test]
    fn a_video_and_an_audio_message_carry_their_duration() {
        let video = one(include_str!("../fixtures/video.json"));
        let attachment = only_attachment(&video);
        assert!(matches!(attachment.kind, AttachmentKind::Video));
        assert_eq!(attachment.url.as_deref(), Some("https://example.com/videos/original.mp4"));
        assert_eq!(extra(attachment)["duration"], 60000);

        let audio = one(include_str!("../fixtures/audio.json"));
        let attachment = only_attachment(&audio);
        assert!(matches!(attachment.kind, AttachmentKind::Audio));
        assert_eq!(attachment.url, None);
        assert_eq!(extra(attachment)["duration"], 9470);
        assert_eq!(extra(attachment)["messageId"], "325708444573844084");
    }

    #[test]
    fn a_file_is_a_document_with_its_name_and_size() {
        let m = one(include_str!("../fixtures/file.json"));
        let file = only_attachment(&m);
        assert!(matches!(file.kind, AttachmentKind::Document));
        assert_eq!(file.file_name.as_deref(), Some("invoice-2024-118.pdf"));
        assert_eq!(file.size, Some(2138));
        assert_eq!(extra(file)["messageId"], "325708444573844085");
    }

    #[test]
    fn a_location_is_an_attachment_with_its_place_and_coordinates() {
        let m = one(include_str!("../fixtures/location.json"));
        assert_eq!(m.text, None);
        let location = only_attachment(&m);
        assert!(matches!(location.kind, AttachmentKind::Location));
        let extra = extra(location);
        assert_eq!(extra["title"], "my location");
        assert_eq!(extra["address"], "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan");
        assert_eq!(extra["latitude"], 35.67966);
        assert_eq!(extra["longitude"], 139.73669);
    }

    #[test]
    fn a_sticker_is_an_attachment_with_its_package_and_sticker_ids() {
        let m = one(include_str!("../fixtures/sticker.json"));
        let sticker = only_attachment(&m);
        assert!(matches!(sticker.kind, AttachmentKind::Sticker));
        let extra = extra(sticker);
        assert_eq!(extra["packageId"], "11537");
        assert_eq!(extra["stickerId"], "52002738");
        assert_eq!(extra["stickerResourceType"], "ANIMATION");
    }

    #[test]
    fn a_group_message_puts_the_group_in_the_conversation() {
        let m = one(include_str!("../fixtures/group.json"));
        assert_eq!(m.external_user_id, USER);
        assert_eq!(m.external_conversation_id.as_deref(), Some(GROUP));
        assert_eq!(m.provider_message_id.as_deref(), Some("01GAPCSJ09J4D5P3V5GM2P1X6N"));
        assert_eq!(m.text.as_deref(), Some("@example Does the store open on Sunday?"));
    }

    #[test]
    fn a_room_message_puts_the_room_in_the_conversation() {
        let m = one(include_str!("../fixtures/room.json"));
        assert_eq!(m.external_user_id, USER);
        assert_eq!(m.external_conversation_id.as_deref(), Some("Ra8dbf4673c4c5d6e7f8a9b0c1d2e3f4a"));
    }

    #[test]
    fn a_group_member_without_a_user_id_is_known_by_the_group() {
        let m = one(include_str!("../fixtures/group_without_user.json"));
        assert_eq!(m.external_user_id, GROUP);
        assert_eq!(m.external_conversation_id.as_deref(), Some(GROUP));
        assert_eq!(m.text.as_deref(), Some("Is anyone there?"));
    }

    #[test]
    fn follow_unfollow_postback_and_verification_deliveries_give_no_messages() {
        for fixture in [
            include_str!("../fixtures/follow.json"),
            include_str!("../fixtures/unfollow.json"),
            include_str!("../fixtures/postback.json"),
            include_str!("../fixtures/verify.json"),
        ] {
            assert!(delivery(fixture).is_empty(), "{fixture}");
        }
    }

    #[test]
    fn redelivered_and_standby_messages_are_kept_among_other_events() {
        let all = delivery(include_str!("../fixtures/mixed.json"));
        let ids: Vec<_> = all.iter().map(|m| m.provider_message_id.as_deref()).collect();
        assert_eq!(ids, [Some("01HMQGW40RZJPJM3RAJP7BHC2S"), Some("01HMQGW40RZJPJM3RAJP7BHC2T")]);
        assert_eq!(all[0].text.as_deref(), Some("Thanks for adding me back"));
        assert_eq!(all[1].text.as_deref(), Some("Sent while another module holds the chat"));
    }

    #[test]
    fn an_event_without_a_webhook_event_id_falls_back_to_the_message_id() {
        let mut body: Value = serde_json::from_str(include_str!("../fixtures/text.json")).expect("fixture is JSON");
        if let Some(event) = body["events"][0].as_object_mut() {
            event.remove("webhookEventId");
        }
        let m = one(&body.to_string());
        assert_eq!(m.provider_message_id.as_deref(), Some("444573844083572737"));
    }

    #[test]
    fn a_message_type_newer_than_the_adapter_is_kept_as_other() {
        let mut body: Value = serde_json::from_str(include_str!("../fixtures/text.json")).expect("fixture is JSON");
        body["events"][0]["message"] = json!({"type": "hologram", "id": "1234"});
        let m = one(&body.to_string());
        let other = only_attachment(&m);
        assert!(matches!(other.kind, AttachmentKind::Other));
        assert_eq!(extra(other)["type"], "hologram");
        assert_eq!(m.text, None);
    }

    #[test]
    fn a_body_that_is_not_a_line_webhook_is_an_error() {
        assert!(normalize(b"not json").is_err());
        assert!(normalize(br#"{"update_id": 1}"#).is_err());
        assert!(normalize(b"[1, 2]").is_err());
    }

    #[test]
    fn a_signature_matches_only_the_exact_mac() {
        // RFC 4231 test case 2 (key "Jefe", data "what do ya want for nothing?") and its standard
        // base64, the form LINE puts in X-Line-Signature.
        let mac = hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let header = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";
        assert!(signature_matches(header, &mac));
        assert!(signature_matches(&format!(" {header}\t"), &mac));

        let mut tampered = mac.clone();
        tampered[31] ^= 1;
        assert!(!signature_matches(header, &tampered));
        assert!(!signature_matches(header, &mac[..31]));
        assert!(!signature_matches("W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM", &mac), "padding is required");
        assert!(!signature_matches("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", &mac));
        assert!(!signature_matches("", &mac));
    }

    #[test]
    fn constant_time_comparison_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_push_sends_the_text_then_the_first_image_and_links_the_rest() {
        let body = push_body(&reply(
            Some("Here is your receipt"),
            vec![
                outbound(AttachmentKind::Image, "https://cdn.example.com/a.jpg", None),
                outbound(AttachmentKind::Document, "https://cdn.example.com/r.pdf", Some("receipt.pdf")),
                outbound(AttachmentKind::Image, "https://cdn.example.com/b.jpg", None),
            ],
        ))
        .expect("something to send");
        assert_eq!(
            body,
            json!({"to": USER, "messages": [
                {"type": "text", "text": "Here is your receipt\nreceipt.pdf: https://cdn.example.com/r.pdf\nhttps://cdn.example.com/b.jpg"},
                {"type": "image", "originalContentUrl": "https://cdn.example.com/a.jpg", "previewImageUrl": "https://cdn.example.com/a.jpg"},
            ]})
        );
    }

    #[test]
    fn a_push_of_an_image_alone_has_no_text_message() {
        let image = outbound(AttachmentKind::Image, "https://cdn.example.com/a.jpg", None);
        let body = push_body(&reply(Some("  "), vec![image])).expect("something to send");
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["messages"][0]["type"], "image");
    }

    #[test]
    fn a_reply_with_nothing_to_send_is_refused() {
        assert!(push_body(&reply(None, Vec::new())).is_err());
        assert!(push_body(&reply(Some(""), vec![outbound(AttachmentKind::Image, "", None)])).is_err());
    }

    #[test]
    fn an_accepted_push_gives_the_sent_message_id() {
        let body = br#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}"#;
        let receipt = push_outcome(200, &[], body, "retry-key").expect("delivered");
        assert_eq!(receipt.provider_message_id, "461230966842064897");

        let receipt = push_outcome(200, &[], b"{}", "retry-key").expect("delivered");
        assert_eq!(receipt.provider_message_id, "retry-key");
    }

    #[test]
    fn a_conflict_on_the_retry_key_counts_as_delivered() {
        let accepted = headers(&[("x-line-accepted-request-id", "123e4567-e89b-12d3-a456-426614174000")]);
        let body = br#"{"message":"The retry key is already accepted"}"#;
        let receipt = push_outcome(409, &accepted, body, "retry-key").expect("delivered before");
        assert_eq!(receipt.provider_message_id, "123e4567-e89b-12d3-a456-426614174000");

        let receipt = push_outcome(409, &[], body, "retry-key").expect("delivered before");
        assert_eq!(receipt.provider_message_id, "retry-key");
    }

    #[test]
    fn push_failures_are_classified_for_the_queue() {
        let too_many = br#"{"message":"The API rate limit has been exceeded. Try again later."}"#;
        assert!(matches!(push_outcome(429, &headers(&[("Retry-After", "3")]), too_many, "k"), Err(SendError::RateLimited(3000))));
        assert!(matches!(push_outcome(429, &headers(&[("retry-after", "0")]), too_many, "k"), Err(SendError::RateLimited(1000))));
        assert!(matches!(push_outcome(429, &[], too_many, "k"), Err(SendError::RateLimited(DEFAULT_RATE_LIMIT_MS))));

        let quota = br#"{"message":"You have reached your monthly limit."}"#;
        assert!(matches!(push_outcome(429, &[], quota, "k"), Err(SendError::Transient(_))));

        let invalid = br#"{"message":"The request body has 1 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"}]}"#;
        match push_outcome(400, &[], invalid, "k") {
            Err(SendError::Permanent(why)) => assert_eq!(why, "LINE 400: The request body has 1 error(s)"),
            other => panic!("expected a permanent failure, got {other:?}"),
        }
        let token =
            br#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#;
        assert!(matches!(push_outcome(401, &[], token, "k"), Err(SendError::Permanent(_))));
        assert!(matches!(push_outcome(500, &[], b"", "k"), Err(SendError::Transient(_))));
        assert!(matches!(push_outcome(503, &[], b"<html>", "k"), Err(SendError::Transient(_))));
    }

    #[test]
    fn fetch_failures_are_classified_for_the_queue() {
        assert!(matches!(fetch_failure(FetchError::Timeout), SendError::Transient(_)));
        assert!(matches!(fetch_failure(FetchError::Failed("reset".into())), SendError::Transient(_)));
        assert!(matches!(fetch_failure(FetchError::Denied("api.line.me".into())), SendError::Permanent(_)));
        assert!(matches!(fetch_failure(FetchError::InvalidRequest("secret".into())), SendError::Permanent(_)));
        assert!(matches!(fetch_failure(FetchError::TooLarge), SendError::Permanent(_)));
    }

    #[test]
    fn unreachable_calls_never_repeat_the_hosts_text() {
        let url = "https://api.line.me/v2/bot/info";
        for err in [
            FetchError::Denied(format!("{url} is not in allowed_hosts")),
            FetchError::InvalidRequest(format!("{url}: unknown secret channelAccessToken")),
            FetchError::Failed(format!("{url}: connection refused")),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let reason = unreachable(&err);
            assert!(!reason.contains("/v2/bot") && !reason.contains("channelAccessToken"), "{reason}");
        }
    }

    #[test]
    fn connecting_names_a_rejected_token() {
        let info = br#"{"userId":"U8e13c7ad5a46ab7d1d5e6d0e7e0f3c21","basicId":"@216ru...","displayName":"Example shop","chatMode":"chat","markAsReadMode":"manual"}"#;
        assert_eq!(check_bot_info(200, info), Ok(Some("Example shop".to_owned())));

        let rejected =
            br#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#;
        let why = check_bot_info(401, rejected).expect_err("rejected");
        assert!(why.starts_with("LINE rejected the channel access token: Authentication failed"), "{why}");
        let why = check_bot_info(500, b"").expect_err("failed");
        assert!(why.contains("500"), "{why}");

        assert_eq!(check_webhook_endpoint(200, b"{}"), Ok(()));
        let why = check_webhook_endpoint(400, br#"{"message":"Invalid webhook endpoint URL"}"#).expect_err("refused");
        assert!(why.contains("Invalid webhook endpoint URL"), "{why}");
    }

    fn stored(fixture: &str) -> Attachment {
        let mut message = one(fixture);
        assert_eq!(message.attachments.len(), 1);
        message.attachments.remove(0)
    }

    #[test]
    fn download_urls_use_the_data_api_host() {
        assert_eq!(data_base_url("https://api.line.me"), "https://api-data.line.me");
        assert_eq!(data_base_url("https://api.line.me/"), "https://api-data.line.me");
        assert_eq!(data_base_url("https://api.line.me:443"), "https://api-data.line.me:443");
        let request =
            content_request(&stored(include_str!("../fixtures/image_line.json")), "https://api.line.me").expect("a request");
        assert_eq!(request.method, "GET");
        assert_eq!(request.url, "https://api-data.line.me/v2/bot/message/354718705033693859/content");
        assert_eq!(header(&request.headers, "authorization"), Some("Bearer {{secret:channelAccessToken}}"));
        assert_eq!(request.body, None);
    }

    #[test]
    fn a_custom_api_base_serves_content_as_it_is() {
        assert_eq!(data_base_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(data_base_url("https://api.line.me.example.com"), "https://api.line.me.example.com");
        assert_eq!(
            data_base_url("https://proxy.example/?to=https://api.line.me"),
            "https://proxy.example/?to=https://api.line.me"
        );
        let file = stored(include_str!("../fixtures/file.json"));
        let request = content_request(&file, "http://127.0.0.1:8080/").expect("a request");
        assert_eq!(request.url, "http://127.0.0.1:8080/v2/bot/message/325708444573844085/content");
        assert_eq!(
            content_url("https://api-data.line.me", "12/../34"),
            "https://api-data.line.me/v2/bot/message/12%2F..%2F34/content"
        );
    }

    #[test]
    fn external_content_is_fetched_from_its_url_without_the_token() {
        let image = stored(include_str!("../fixtures/image_external.json"));
        let request = content_request(&image, "https://api.line.me").expect("a request");
        assert_eq!(request.url, "https://example.com/photos/original.jpg");
        assert!(request.headers.is_empty(), "the access token never leaves for another host");
    }

    #[test]
    fn an_attachment_without_content_cannot_be_downloaded() {
        let sticker = stored(include_str!("../fixtures/sticker.json"));
        let why = content_request(&sticker, "https://api.line.me").map(|r| r.url);
        assert_eq!(why, Err("this LINE attachment has no content to download".to_owned()));
        let mut other = stored(include_str!("../fixtures/image_line.json"));
        other.kind = AttachmentKind::Other;
        assert!(content_request(&other, "https://api.line.me").is_err(), "a newer message type is not fetched");
        let mut location = stored(include_str!("../fixtures/location.json"));
        location.kind = AttachmentKind::Document;
        assert_eq!(
            content_request(&location, "https://api.line.me").map(|r| r.url),
            Err("this attachment has no LINE message id".to_owned())
        );
        assert_eq!(message_id(r#"{"messageId": 325708444573844085}"#).as_deref(), Some("325708444573844085"));
        assert_eq!(message_id("not json"), None);
    }

    #[test]
    fn content_is_typed_by_lines_answer() {
        let file = stored(include_str!("../fixtures/file.json"));
        let media =
            content_outcome(200, &headers(&[("Content-Type", "application/pdf")]), b"%PDF".to_vec(), &file).expect("content");
        assert_eq!(media.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(media.file_name.as_deref(), Some("invoice-2024-118.pdf"));
        assert_eq!(media.body, b"%PDF");
        let media = content_outcome(200, &[], Vec::new(), &file).expect("content");
        assert_eq!(media.content_type, None);
    }

    #[test]
    fn content_line_no_longer_has_or_has_not_prepared_is_an_error() {
        let image = stored(include_str!("../fixtures/image_line.json"));
        let gone = br#"{"message":"Not found"}"#.to_vec();
        assert_eq!(
            content_outcome(404, &[], gone, &image).map(|m| m.body),
            Err("LINE no longer has this content (it keeps it for a limited time)".to_owned())
        );
        assert!(content_outcome(202, &[], Vec::new(), &image).expect_err("not ready").contains("preparing"));
        let token =
            br#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#;
        let why = content_outcome(401, &[], token.to_vec(), &image).expect_err("refused");
        assert!(why.starts_with("LINE answered HTTP 401 to the content request: Authentication failed"), "{why}");

        let external = stored(include_str!("../fixtures/image_external.json"));
        let why = content_outcome(404, &[], Vec::new(), &external).expect_err("gone");
        assert_eq!(why, "the content's own server answered HTTP 404");
    }

    #[test]
    fn download_failures_never_repeat_the_hosts_text() {
        let url = "https://api-data.line.me/v2/bot/message/1/content";
        for err in [
            FetchError::Denied(format!("{url} is not in allowed_hosts")),
            FetchError::InvalidRequest(format!("{url}: unknown secret channelAccessToken")),
            FetchError::Failed(format!("{url}: connection refused")),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let reason = download_unreachable(&err);
            assert!(!reason.contains("/v2/bot") && !reason.contains("channelAccessToken"), "{reason}");
        }
    }
}
