//! Messenger webhook events -> routing (the subscription handshake, the pages of a delivery),
//! normalized messages and receipts; downloaded attachments -> media; and Graph failures -> send
//! errors and the reasons `connect` gives.

use serde_json::{Value, json};

use crate::omnichat::channel::host::FetchError;
use crate::omnichat::channel::types::{
    Attachment, AttachmentKind, Header, InboundMessage, Media, Receipt, ReceiptStatus, Routing, SendError, VerifyError,
    WebhookResponse,
};

/// How a request to the shared webhook is routed: Meta's subscription check is the only `GET` it
/// sends, answered here; anything else is a delivery, for the pages of its entries.
pub fn route(
    method: &str,
    query: &str,
    body: &[u8],
    verify_token_matches: impl FnOnce(&str) -> bool,
) -> Result<Routing, VerifyError> {
    if method.eq_ignore_ascii_case("GET") {
        return Ok(Routing::Answer(subscription_answer(query, verify_token_matches)));
    }
    let body: Value = serde_json::from_slice(body).map_err(|e| VerifyError::BadRequest(format!("the body is not JSON: {e}")))?;
    page_ids(&body).map(Routing::Accounts).map_err(VerifyError::BadRequest)
}

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
/// and read receipts (see [`receipts`]), reactions and the like give none.
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

/// Delivery and read receipts for the replies of `page_id`. Messenger names delivered replies by
/// id and adds a watermark; reads come only as a watermark: everything sent to the customer up
/// to then.
pub fn receipts(body: &Value, page_id: &str) -> Vec<Receipt> {
    let mut receipts = Vec::new();
    for entry in body["entry"].as_array().into_iter().flatten() {
        if id_string(&entry["id"]).as_deref() != Some(page_id) {
            continue;
        }
        for event in entry["messaging"].as_array().into_iter().flatten() {
            if let Some(receipt) = receipt(event) {
                receipts.push(receipt);
            }
        }
    }
    receipts
}

/// A receipt that names no reply, or a watermark without the customer it is for, covers nothing
/// and is dropped.
fn receipt(event: &Value) -> Option<Receipt> {
    let customer = id_string(&event["sender"]["id"]);
    if let Some(delivery) = event.get("delivery").filter(|d| d.is_object()) {
        let ids: Vec<String> =
            delivery["mids"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        let watermark = delivery["watermark"].as_i64();
        if ids.is_empty() && (watermark.is_none() || customer.is_none()) {
            return None;
        }
        Some(Receipt {
            status: ReceiptStatus::Delivered,
            provider_message_ids: ids,
            external_user_id: customer,
            up_to_ms: watermark,
        })
    } else if let Some(read) = event.get("read").filter(|r| r.is_object()) {
        let watermark = read["watermark"].as_i64()?;
        let customer = customer?;
        Some(Receipt {
            status: ReceiptStatus::Read,
            provider_message_ids: Vec::new(),
            external_user_id: Some(customer),
            up_to_ms: Some(watermark),
        })
    } else {
        None
    }
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

/// The answer to Meta's subscription check, `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`:
/// the challenge, as text, when the mode is `subscribe` and the token matches; any other GET gets
/// a 403 in the host's error shape.
pub fn subscription_answer(query: &str, verify_token_matches: impl FnOnce(&str) -> bool) -> WebhookResponse {
    let subscribing = query_value(query, "hub.mode").as_deref() == Some("subscribe");
    if subscribing && query_value(query, "hub.verify_token").is_some_and(|token| verify_token_matches(token.as_str())) {
        return WebhookResponse {
            status: 200,
            headers: vec![content_type("text/plain")],
            body: query_value(query, "hub.challenge").unwrap_or_default().into_bytes(),
        };
    }
    let error = json!({"error": {"code": "forbidden", "message": "hub.verify_token does not match FACEBOOK_VERIFY_TOKEN"}});
    WebhookResponse { status: 403, headers: vec![content_type("application/json")], body: error.to_string().into_bytes() }
}

fn content_type(value: &str) -> Header {
    Header { name: "content-type".into(), value: value.into() }
}

/// The first value of `name` in a raw query string, decoded.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// Decodes one query-string component: `%XX` escapes, and `+` as a space. A `%` without two hex
/// digits after it stays as it is and bytes that are not UTF-8 become U+FFFD, so a malformed query
/// only fails to match.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (bytes.get(i + 1).and_then(hex_digit), bytes.get(i + 2).and_then(hex_digit)) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: &u8) -> Option<u8> {
    char::from(*byte).to_digit(16).and_then(|d| u8::try_from(d).ok())
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

/// Why a Graph call failed, in Graph's words (`error.message`), or `None` on a 2xx.
pub fn graph_refusal(status: u16, body: &[u8]) -> Option<String> {
    if (200..300).contains(&status) {
        return None;
    }
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    Some(match reply["error"]["message"].as_str() {
        Some(message) => message.to_owned(),
        None => format!("HTTP {status} without an error message"),
    })
}

/// Whether the page access token is the channel's page: `GET /me` with a page token answers the
/// page itself, so a token of another page (or a user token) cannot claim this page id.
pub fn page_ownership(body: &[u8], page_id: Option<&str>) -> Result<(), String> {
    let Some(page_id) = page_id.filter(|id| !id.is_empty()) else {
        return Err("the channel needs its page id as externalId".into());
    };
    let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match reply["id"].as_str() {
        Some(id) if id == page_id => Ok(()),
        Some(_) => Err(format!("the page access token is not a token of page {page_id}")),
        None => Err("the Graph API did not say which page the token is for".into()),
    }
}

/// A short reason for a call that never got an answer. The host's own text is left out: it may
/// name the URL, and this reason becomes the channel's `statusReason`.
pub fn unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the request to the Graph API (not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the Graph API request as invalid".into(),
        FetchError::Timeout => "the Graph API did not answer in time".into(),
        FetchError::TooLarge => "the Graph API answer was too large".into(),
        FetchError::Failed(_) => "the Graph API could not be reached".into(),
    }
}

/// The URL of a stored attachment (Messenger gives one for media, none for a location).
pub fn media_url(attachment: &Attachment) -> Result<&str, String> {
    attachment.url.as_deref().filter(|url| !url.is_empty()).ok_or_else(|| "this attachment has no URL".to_owned())
}

/// The answer to an attachment's URL: its body, typed by the CDN's `content-type` (Messenger's
/// webhooks name no type), named as `receive` named it, else by the URL's last path segment.
pub fn downloaded(status: u16, headers: &[Header], body: Vec<u8>, attachment: &Attachment) -> Result<Media, String> {
    if !(200..300).contains(&status) {
        // Signed CDN URLs expire: a 403 or 404 usually means this one has.
        return Err(format!("Facebook answered HTTP {status} for this attachment"));
    }
    let header_type = headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-type")).map(|h| h.value.clone());
    let url_name = attachment.url.as_deref().and_then(url_file_name);
    Ok(Media {
        content_type: header_type.or_else(|| attachment.mime_type.clone()),
        file_name: attachment.file_name.clone().or(url_name),
        body,
    })
}

/// The last segment of a URL's path (`.../123_456_n.jpg?oh=..` -> `123_456_n.jpg`), when it
/// looks like a file name.
fn url_file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (name.contains('.') && !name.starts_with('.')).then(|| percent_decode(name))
}

/// A short reason for a download that never got an answer; the host's own text may quote the
/// signed URL.
pub fn download_unreachable(err: &FetchError) -> String {
    match err {
        FetchError::Denied(_) => "the host denied the download (its host is not in allowed_hosts?)".into(),
        FetchError::InvalidRequest(_) => "the host refused the download request as invalid".into(),
        FetchError::Timeout => "the download did not finish in time".into(),
        FetchError::TooLarge => "the file is larger than the host accepts".into(),
        FetchError::Failed(_) => "Facebook's CDN could not be reached".into(),
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

    /// Two pages: a text, an image and an echo on page 1; a delivery and a read on page 2.
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

    #[test]
    fn receipts_report_deliveries_and_reads_for_their_page() {
        let found = receipts(&delivery(), "PAGE2");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].status, ReceiptStatus::Delivered);
        assert_eq!(found[0].provider_message_ids, ["m_0"]);
        assert_eq!(found[0].external_user_id.as_deref(), Some("PSID9"));
        assert_eq!(found[0].up_to_ms, Some(1458668856253));
        assert_eq!(found[1].status, ReceiptStatus::Read);
        assert!(found[1].provider_message_ids.is_empty());
        assert_eq!(found[1].external_user_id.as_deref(), Some("PSID9"));
        assert_eq!(found[1].up_to_ms, Some(1458668856253));
        assert!(receipts(&delivery(), "PAGE1").is_empty(), "messages and echoes are not receipts");
        assert!(receipts(&delivery(), "PAGE3").is_empty(), "another page's receipts are not this channel's");
    }

    #[test]
    fn receipts_that_cover_nothing_are_dropped() {
        let body = json!({"object": "page", "entry": [{"id": "P", "messaging": [
            {"sender": {"id": "U"}, "delivery": {"mids": []}},
            {"sender": {"id": "U"}, "read": {}},
            {"recipient": {"id": "P"}, "read": {"watermark": 5}},
            {"delivery": {"mids": ["m_7"]}}
        ]}]});
        let found = receipts(&body, "P");
        assert_eq!(found.len(), 1, "only the delivery naming a reply is kept");
        assert_eq!(found[0].provider_message_ids, ["m_7"]);
        assert_eq!(found[0].external_user_id, None);
    }

    #[test]
    fn percent_decoding_reads_escapes_and_plus_and_keeps_malformed_input() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%E2%9c%93"), "\u{2713}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+f"), "% f");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn query_values_are_found_by_their_decoded_name() {
        let query = "hub.mode=subscribe&hub%2Everify_token=my+token%21&hub.challenge=1158201444&flag";
        assert_eq!(query_value(query, "hub.mode").as_deref(), Some("subscribe"));
        assert_eq!(query_value(query, "hub.verify_token").as_deref(), Some("my token!"));
        assert_eq!(query_value(query, "flag").as_deref(), Some(""));
        assert_eq!(query_value(query, "hub.topic"), None);
        assert_eq!(query_value("", "hub.mode"), None);
    }

    #[test]
    fn the_right_verify_token_gets_the_challenge_back() {
        let answer = subscription_answer("hub.mode=subscribe&hub.verify_token=verify+me&hub.challenge=1158201444", |token| {
            token == "verify me"
        });
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"1158201444");
        assert_eq!(answer.headers[0].value, "text/plain");
    }

    #[test]
    fn any_other_get_is_forbidden_in_the_hosts_error_shape() {
        for query in [
            "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            "hub.mode=subscribe&hub.challenge=1",
            "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
            "",
        ] {
            let answer = subscription_answer(query, |token| token == "verify-me");
            assert_eq!(answer.status, 403, "{query}");
            assert_eq!(answer.headers[0].value, "application/json");
            let body: Value = serde_json::from_slice(&answer.body).expect("JSON");
            assert_eq!(body["error"]["code"], "forbidden");
            assert_eq!(body["error"]["message"], "hub.verify_token does not match FACEBOOK_VERIFY_TOKEN");
        }
    }

    #[test]
    fn graph_refusals_name_graphs_reason() {
        let invalid = br#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbC"}}"#;
        assert_eq!(graph_refusal(400, invalid).as_deref(), Some("Invalid OAuth access token - Cannot parse access token"));
        assert_eq!(graph_refusal(502, b"<html>Bad Gateway</html>").as_deref(), Some("HTTP 502 without an error message"));
        assert_eq!(graph_refusal(200, br#"{"id":"PAGE1","name":"Support"}"#), None);
    }

    #[test]
    fn only_the_pages_own_token_proves_the_page() {
        assert_eq!(page_ownership(br#"{"id":"PAGE1","name":"Support"}"#, Some("PAGE1")), Ok(()));
        assert!(
            page_ownership(br#"{"id":"OTHER","name":"Theirs"}"#, Some("PAGE1"))
                .is_err_and(|e| e.contains("not a token of page PAGE1"))
        );
        assert!(page_ownership(br#"{"name":"no id"}"#, Some("PAGE1")).is_err());
        assert!(page_ownership(br#"{"id":"PAGE1"}"#, None).is_err_and(|e| e.contains("externalId")));
    }

    #[test]
    fn unreachable_calls_never_repeat_the_hosts_text() {
        let url = "https://graph.facebook.com/v21.0/me?access_token={{secret:pageAccessToken}}";
        for err in [
            FetchError::Denied(format!("{url} is not in allowed_hosts")),
            FetchError::InvalidRequest(format!("{url}: unknown secret")),
            FetchError::Failed(format!("{url}: connection refused")),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let reason = unreachable(&err);
            assert!(!reason.is_empty());
            assert!(!reason.contains("graph.facebook.com") && !reason.contains("access_token"), "{reason}");
        }
    }

    fn stored(url: Option<&str>, file_name: Option<&str>) -> Attachment {
        Attachment {
            kind: AttachmentKind::Image,
            url: url.map(str::to_owned),
            mime_type: None,
            file_name: file_name.map(str::to_owned),
            size: None,
            extra: json!({"type": "image"}).to_string(),
        }
    }

    #[test]
    fn a_get_is_answered_and_any_other_method_names_the_pages() {
        let query = "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444";
        match route("GET", query, b"", |token| token == "verify-me") {
            Ok(Routing::Answer(answer)) => {
                assert_eq!(answer.status, 200);
                assert_eq!(answer.body, b"1158201444");
            }
            other => panic!("expected an answer, got {other:?}"),
        }
        match route("get", "", b"", |_| true) {
            Ok(Routing::Answer(answer)) => assert_eq!(answer.status, 403),
            other => panic!("expected a 403 answer, got {other:?}"),
        }
        let body = delivery().to_string();
        match route("POST", "", body.as_bytes(), |_| panic!("a delivery checks no verify token")) {
            Ok(Routing::Accounts(ids)) => assert_eq!(ids, ["PAGE1", "PAGE2"]),
            other => panic!("expected the pages, got {other:?}"),
        }
    }

    #[test]
    fn a_delivery_that_is_not_a_page_webhook_is_a_bad_request() {
        assert!(matches!(route("POST", "", b"not json", |_| true), Err(VerifyError::BadRequest(_))));
        assert!(matches!(
            route("POST", "", br#"{"object": "instagram", "entry": []}"#, |_| true),
            Err(VerifyError::BadRequest(_))
        ));
    }

    #[test]
    fn an_attachment_is_downloaded_from_its_url() {
        let image = stored(Some("https://scontent.xx.fbcdn.net/v/t1.15752-9/123_456_n.jpg?_nc_cat=1&oh=abc"), None);
        assert_eq!(media_url(&image), Ok("https://scontent.xx.fbcdn.net/v/t1.15752-9/123_456_n.jpg?_nc_cat=1&oh=abc"));
        let headers = vec![Header { name: "Content-Type".into(), value: "image/jpeg".into() }];
        let media = downloaded(200, &headers, b"jpeg".to_vec(), &image).expect("downloaded");
        assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(media.file_name.as_deref(), Some("123_456_n.jpg"));
        assert_eq!(media.body, b"jpeg");

        let file = stored(Some("https://cdn.fbsbx.com/v/t59/menu.pdf?dl=1"), Some("Menu 2024.pdf"));
        let media = downloaded(200, &[], Vec::new(), &file).expect("downloaded");
        assert_eq!(media.content_type, None);
        assert_eq!(media.file_name.as_deref(), Some("Menu 2024.pdf"));
    }

    #[test]
    fn an_attachment_without_a_url_or_with_an_expired_one_is_an_error() {
        assert_eq!(media_url(&stored(None, None)), Err("this attachment has no URL".to_owned()));
        assert_eq!(media_url(&stored(Some(""), None)), Err("this attachment has no URL".to_owned()));
        let image = stored(Some("https://scontent.xx.fbcdn.net/v/a.jpg"), None);
        let why = downloaded(403, &[], b"URL signature expired".to_vec(), &image).expect_err("refused");
        assert_eq!(why, "Facebook answered HTTP 403 for this attachment");
        assert!(downloaded(500, &[], Vec::new(), &image).is_err());
    }

    #[test]
    fn download_failures_never_repeat_the_signed_url() {
        let url = "https://scontent.xx.fbcdn.net/v/a.jpg?oh=signature";
        for err in [
            FetchError::Denied(format!("{url} is not in allowed_hosts")),
            FetchError::InvalidRequest(format!("{url}: bad")),
            FetchError::Failed(format!("{url}: connection refused")),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let reason = download_unreachable(&err);
            assert!(!reason.is_empty());
            assert!(!reason.contains("fbcdn.net/") && !reason.contains("signature"), "{reason}");
        }
    }

    #[test]
    fn url_file_names_are_the_last_path_segment() {
        assert_eq!(url_file_name("https://cdn.example/a/b/photo%201.png?x=1#f").as_deref(), Some("photo 1.png"));
        assert_eq!(url_file_name("https://cdn.example/a/b/"), None);
        assert_eq!(url_file_name("https://cdn.example"), None);
        assert_eq!(url_file_name("https://cdn.example/download?id=1.2"), None);
    }
}
