//! The widget's channel semantics, free of host calls so they are tested natively: what a visitor
//! may send, who a visitor is, how a reply must look.

use serde_json::{Map, Value, json};

use crate::omnichat::channel::types::{
    Attachment, AttachmentKind, Header, InboundMessage, OutboundMessage, Receipt, ReceiptStatus, SendError, VerifyError,
};

/// The longest visitor message, in characters (Chatwoot's widget caps at 10,000 bytes; a chat
/// line past this is a paste, better sent as a file).
pub const MAX_TEXT_CHARS: usize = 4000;
/// The longest agent reply the widget shows.
pub const MAX_REPLY_CHARS: usize = 20_000;
pub const MAX_ATTACHMENTS: usize = 5;
const MAX_NAME_CHARS: usize = 100;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_IDENTIFIER_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;
const MAX_CLIENT_ID_CHARS: usize = 64;
pub const DEFAULT_COLOR: &str = "#1f6feb";
const DEFAULT_TITLE: &str = "Chat with us";

/// The header the host's visitor transport sets on every visitor request: the visitor its token
/// names (or, for a new session, a fresh id), as JSON. Never taken from the browser.
pub const VISITOR_HEADER: &str = "x-omnichat-visitor";
/// When the host received the request, in milliseconds since the Unix epoch.
pub const RECEIVED_AT_HEADER: &str = "x-omnichat-received-at-ms";

/// The visitor a request is made for, as the host vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Off,
    Optional,
    Required,
}

impl Ask {
    fn parse(value: &Value) -> Self {
        match value.as_str() {
            Some("required") => Self::Required,
            Some("optional") => Self::Optional,
            _ => match value.as_bool() {
                Some(true) => Self::Optional,
                _ => Self::Off,
            },
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// The channel's configuration as the widget uses it (secrets arrive redacted: only whether
/// one is set is visible).
#[derive(Debug, Clone)]
pub struct Settings {
    pub title: String,
    pub greeting: Option<String>,
    pub color: String,
    pub offline_message: Option<String>,
    pub ask_name: Ask,
    pub ask_email: Ask,
    pub identity_required: bool,
    pub has_identity_secret: bool,
}

impl Settings {
    pub fn from_config(config: &str) -> Self {
        let config: Value = serde_json::from_str(config).unwrap_or(Value::Null);
        let text = |key: &str| config[key].as_str().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        let form = &config["preChatForm"];
        Self {
            title: text("title").unwrap_or_else(|| DEFAULT_TITLE.into()),
            greeting: text("greeting"),
            color: text("color").filter(|c| is_hex_color(c)).unwrap_or_else(|| DEFAULT_COLOR.into()),
            offline_message: text("offlineMessage"),
            ask_name: Ask::parse(&form["name"]),
            ask_email: Ask::parse(&form["email"]),
            identity_required: config["identityRequired"].as_bool().unwrap_or(false),
            has_identity_secret: config["identitySecret"].as_str().is_some_and(|s| !s.is_empty()),
        }
    }

    /// What the widget shows, as the session answer carries it.
    pub fn public(&self) -> Value {
        json!({
            "title": self.title,
            "greeting": self.greeting,
            "color": self.color,
            "offlineMessage": self.offline_message,
            "preChatForm": {"name": self.ask_name.as_str(), "email": self.ask_email.as_str()},
        })
    }
}

/// `#rgb` or `#rrggbb`: anything else could smuggle CSS into the widget.
pub fn is_hex_color(color: &str) -> bool {
    let Some(hex) = color.strip_prefix('#') else { return false };
    matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// `sessions`, `messages` or `read` from `/api/widget/{channelInstanceId}/{action}`: the route
/// only the host's visitor transport serves, so a provider-style webhook cannot pose as a visitor.
pub fn action<'a>(path: &'a str, channel_id: &str) -> Result<&'a str, VerifyError> {
    path.strip_prefix("/api/widget/")
        .and_then(|rest| rest.strip_prefix(channel_id))
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|action| !action.is_empty() && !action.contains('/'))
        .ok_or_else(|| {
            VerifyError::BadRequest("widget channels take visitor requests only, under /api/widget/{channelInstanceId}/".into())
        })
}

pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

pub fn visitor(headers: &[Header]) -> Result<Visitor, VerifyError> {
    let missing =
        || VerifyError::Unauthorized("the request carries no visitor (it did not come through the visitor transport)".into());
    let value: Value = serde_json::from_str(header(headers, VISITOR_HEADER).ok_or_else(missing)?).map_err(|_| missing())?;
    let text = |key: &str| value[key].as_str().map(str::to_owned);
    Ok(Visitor {
        id: text("id").filter(|id| !id.is_empty()).ok_or_else(missing)?,
        name: text("name"),
        email: text("email"),
        verified: value["verified"].as_bool().unwrap_or(false),
    })
}

fn body(raw: &[u8]) -> Result<Map<String, Value>, VerifyError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(raw) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::BadRequest("the body must be a JSON object".into())),
    }
}

/// An optional text field, trimmed, at most `max` characters.
fn field(body: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, VerifyError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            // PostgreSQL cannot store U+0000; both databases answer the same: refused.
            if text.contains('\0') {
                return Err(VerifyError::BadRequest(format!("{key} contains a NUL character")));
            }
            if text.chars().count() > max {
                return Err(VerifyError::BadRequest(format!("{key} is longer than {max} characters")));
            }
            Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
        }
        Some(_) => Err(VerifyError::BadRequest(format!("{key} must be a string"))),
    }
}

fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Opens or resumes a visitor's session. An `identifier` counts only with a matching
/// `identifierHash` (hex HMAC-SHA256 of the identifier keyed by `identitySecret`); a verified
/// identifier is the customer's id on every device. `hmac` is the host's keyed HMAC.
pub fn session(
    raw: &[u8],
    visitor: &Visitor,
    settings: &Settings,
    hmac: impl Fn(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Value, VerifyError> {
    let body = body(raw)?;
    let name = field(&body, "name", MAX_NAME_CHARS)?.or_else(|| visitor.name.clone());
    let email = field(&body, "email", MAX_EMAIL_CHARS)?;
    if let Some(email) = &email
        && !plausible_email(email)
    {
        return Err(VerifyError::BadRequest("email is not an e-mail address".into()));
    }
    let email = email.or_else(|| visitor.email.clone());
    let page_url = field(&body, "pageUrl", MAX_URL_CHARS)?;
    if page_url.as_deref().is_some_and(|url| !(url.starts_with("https://") || url.starts_with("http://"))) {
        return Err(VerifyError::BadRequest("pageUrl must be an http(s) URL".into()));
    }
    let identifier = field(&body, "identifier", MAX_IDENTIFIER_CHARS)?;
    let presented = field(&body, "identifierHash", 128)?;

    let (id, verified, identifier) = match identifier {
        Some(identifier) => {
            if !settings.has_identity_secret {
                return Err(VerifyError::Unauthorized(
                    "identity_unverifiable: this widget has no identitySecret, so an identifier cannot be verified".into(),
                ));
            }
            let presented =
                presented.ok_or_else(|| VerifyError::Unauthorized("identifierHash is required with identifier".into()))?;
            let expected = hmac(identifier.as_bytes())
                .map_err(|why| VerifyError::Unauthorized(format!("cannot verify the identifier: {why}")))?;
            if !hex_matches(&presented, &expected) {
                return Err(VerifyError::Unauthorized("identifierHash does not match identifier".into()));
            }
            (format!("id:{identifier}"), true, Some(identifier))
        }
        // A visitor verified before keeps its identity while its token lasts.
        None => (visitor.id.clone(), visitor.verified, None),
    };
    if settings.identity_required && !verified {
        return Err(VerifyError::Unauthorized(
            "identity_required: this widget only talks to signed-in visitors (identifier and identifierHash)".into(),
        ));
    }
    Ok(json!({
        "externalUserId": id,
        "verified": verified,
        "name": name,
        "email": email,
        "identifier": identifier,
        "pageUrl": page_url,
        "settings": settings.public(),
    }))
}

/// Lower- or upper-case hex of `expected`, compared without an early exit.
pub fn hex_matches(presented: &str, expected: &[u8]) -> bool {
    let presented = presented.trim().to_ascii_lowercase();
    let expected = to_hex(expected);
    presented.len() == expected.len() && presented.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 0xf)] as char]).collect()
}

/// A visitor's message: text and attachments within the caps, the client's id (scoped to the
/// visitor, so one visitor cannot shadow another's message) as the provider message id.
pub fn message(
    raw: &[u8],
    visitor: &Visitor,
    settings: &Settings,
    received_at_ms: Option<i64>,
) -> Result<InboundMessage, VerifyError> {
    let body = body(raw)?;
    let client_id = field(&body, "clientMessageId", MAX_CLIENT_ID_CHARS)?.ok_or_else(|| {
        VerifyError::BadRequest("clientMessageId is required (an id the widget makes, reused on retries)".into())
    })?;
    if !client_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(VerifyError::BadRequest("clientMessageId may hold letters, digits, '-' and '_' only".into()));
    }
    let text = field(&body, "text", MAX_TEXT_CHARS)?;
    let attachments = match body.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_ATTACHMENTS => items.iter().map(attachment).collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => {
            return Err(VerifyError::BadRequest(format!("at most {MAX_ATTACHMENTS} attachments per message")));
        }
        Some(_) => return Err(VerifyError::BadRequest("attachments must be a list".into())),
    };
    if text.is_none() && attachments.is_empty() {
        return Err(VerifyError::BadRequest("a message needs text or an attachment".into()));
    }
    for (ask, present, what) in
        [(settings.ask_name, visitor.name.is_some(), "name"), (settings.ask_email, visitor.email.is_some(), "email")]
    {
        if ask == Ask::Required && !present {
            return Err(VerifyError::BadRequest(format!("prechat_required: this widget asks for the visitor's {what} first")));
        }
    }
    Ok(InboundMessage {
        external_user_id: visitor.id.clone(),
        external_conversation_id: None,
        provider_message_id: Some(format!("{}:{client_id}", visitor.id)),
        sender_name: visitor.name.clone(),
        sender_username: visitor.email.clone(),
        text,
        attachments,
        sent_at_ms: received_at_ms,
        raw: json!({"clientMessageId": client_id, "widget": true}).to_string(),
    })
}

/// An uploaded file the host stored (`{id, url, mimeType, fileName, size}`; the URL is absolute
/// under the host's public URL, else relative to the host).
fn attachment(item: &Value) -> Result<Attachment, VerifyError> {
    let url =
        item["url"].as_str().filter(|u| u.starts_with("https://") || u.starts_with("http://") || u.starts_with("/api/widget/"));
    let url = url.ok_or_else(|| VerifyError::BadRequest("an attachment must be a file uploaded to this widget".into()))?;
    let mime = item["mimeType"].as_str().map(str::to_owned);
    let kind = kind_of(mime.as_deref().unwrap_or_default());
    Ok(Attachment {
        kind,
        url: Some(url.to_owned()),
        mime_type: mime,
        file_name: item["fileName"].as_str().map(str::to_owned),
        size: item["size"].as_u64(),
        extra: json!({"uploadId": item["id"]}).to_string(),
    })
}

pub fn kind_of(mime: &str) -> AttachmentKind {
    match mime.split('/').next().unwrap_or_default() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        _ => AttachmentKind::Document,
    }
}

/// The visitor saw every reply up to when the host received the request.
pub fn read_receipt(visitor: &Visitor, received_at_ms: Option<i64>) -> Receipt {
    Receipt {
        status: ReceiptStatus::Read,
        provider_message_ids: Vec::new(),
        external_user_id: Some(visitor.id.clone()),
        up_to_ms: received_at_ms,
    }
}

/// What the widget can show of a reply: text, images and files by URL.
pub fn check_reply(message: &OutboundMessage) -> Result<(), SendError> {
    if let Some(text) = &message.text
        && text.chars().count() > MAX_REPLY_CHARS
    {
        return Err(SendError::Permanent(format!("the widget shows replies of at most {MAX_REPLY_CHARS} characters")));
    }
    for attachment in &message.attachments {
        if matches!(attachment.kind, AttachmentKind::Location | AttachmentKind::Contact) {
            return Err(SendError::Permanent("the widget shows text, images and files; not locations or contacts".into()));
        }
        if !(attachment.url.starts_with("https://") || attachment.url.starts_with("http://")) {
            return Err(SendError::Permanent("a widget attachment needs an http(s) URL the visitor's browser can open".into()));
        }
    }
    if message.text.as_deref().is_none_or(|t| t.trim().is_empty()) && message.attachments.is_empty() {
        return Err(SendError::Permanent("an empty reply".into()));
    }
    Ok(())
}

/// `connect`'s check of the configuration: allowed origins that can match a browser's
/// `Origin`, and a color the widget can use.
pub fn check_config(config: &str) -> Result<(), String> {
    let config: Value = serde_json::from_str(config).map_err(|_| "the configuration is not a JSON object".to_owned())?;
    let origins: Vec<&str> = match &config["allowedOrigins"] {
        Value::Null => Vec::new(),
        Value::Array(origins) => {
            origins.iter().map(|o| o.as_str().ok_or("allowedOrigins must hold strings")).collect::<Result<_, _>>()?
        }
        // The host reads one comma-separated string too.
        Value::String(list) => list.split(',').map(str::trim).filter(|o| !o.is_empty()).collect(),
        _ => return Err("allowedOrigins must be a list of origins".into()),
    };
    if let Some(origin) = origins.iter().find(|o| !valid_origin_pattern(o.trim_end_matches('/'))) {
        return Err(format!("allowedOrigins: {origin:?} is not an origin like https://www.example.com or https://*.example.com"));
    }
    if let Some(color) = config["color"].as_str()
        && !is_hex_color(color)
    {
        return Err(format!("color: {color:?} is not a #rgb or #rrggbb color"));
    }
    for key in ["name", "email"] {
        let ask = &config["preChatForm"][key];
        if !(ask.is_null() || ask.is_boolean() || matches!(ask.as_str(), Some("off" | "optional" | "required"))) {
            return Err(format!("preChatForm.{key} must be \"off\", \"optional\" or \"required\""));
        }
    }
    Ok(())
}

/// `scheme://host[:port]`, with `*.` allowed as the host's first label.
fn valid_origin_pattern(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return false;
    }
    let (wildcard, host) = match rest.strip_prefix("*.") {
        Some(host) => (true, host),
        None => (false, rest),
    };
    // `*.com` would be every site: a wildcard needs a registrable domain under it.
    let labels = host.split(':').next().unwrap_or_default().split('.').count();
    let well_formed = !host.is_empty()
        && !host.contains('*')
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    well_formed && (!wildcard || labels >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANNEL: &str = "0190f5e2-7c1a-7d3e-9b8f-2a4c6e8f0a1b";

    fn visitor() -> Visitor {
        Visitor { id: "v:123".into(), name: None, email: None, verified: false }
    }

    fn settings(config: Value) -> Settings {
        Settings::from_config(&config.to_string())
    }

    /// HMAC-SHA256 stand-in: the host computes the real one; here a fixed "MAC" per input.
    fn fake_hmac(data: &[u8]) -> Result<Vec<u8>, String> {
        Ok(data.iter().map(|b| b.wrapping_mul(7)).collect())
    }

    #[test]
    fn only_the_visitor_routes_are_actions() {
        assert_eq!(action(&format!("/api/widget/{CHANNEL}/messages"), CHANNEL).ok(), Some("messages"));
        assert!(action(&format!("/api/webhooks/{CHANNEL}"), CHANNEL).is_err(), "a webhook cannot pose as a visitor");
        assert!(action("/api/widget/another/messages", CHANNEL).is_err());
        assert!(action(&format!("/api/widget/{CHANNEL}/a/b"), CHANNEL).is_err());
    }

    #[test]
    fn a_request_without_the_hosts_visitor_header_is_refused() {
        assert!(matches!(visitor_of(&[]), Err(VerifyError::Unauthorized(_))));
        let headers = [Header { name: VISITOR_HEADER.into(), value: r#"{"id":"v:1","name":"Ann","verified":false}"#.into() }];
        assert_eq!(visitor_of(&headers).ok().map(|v| v.name), Some(Some("Ann".into())));
    }

    fn visitor_of(headers: &[Header]) -> Result<Visitor, VerifyError> {
        super::visitor(headers)
    }

    #[test]
    fn an_identifier_counts_only_with_its_hash() {
        let settings = settings(json!({"identitySecret": "********"}));
        let hash = to_hex(&fake_hmac(b"alice").unwrap_or_default());
        let body = json!({"identifier": "alice", "identifierHash": hash.to_uppercase()}).to_string();
        let answer = session(body.as_bytes(), &visitor(), &settings, fake_hmac).expect("verified");
        assert_eq!(answer["externalUserId"], "id:alice");
        assert_eq!(answer["verified"], true);

        let forged = json!({"identifier": "alice", "identifierHash": "00".repeat(5)}).to_string();
        assert!(matches!(session(forged.as_bytes(), &visitor(), &settings, fake_hmac), Err(VerifyError::Unauthorized(_))));
        let bare = json!({"identifier": "alice"}).to_string();
        assert!(matches!(session(bare.as_bytes(), &visitor(), &settings, fake_hmac), Err(VerifyError::Unauthorized(_))));
    }

    #[test]
    fn without_an_identity_secret_an_identifier_is_refused_not_trusted() {
        let body = json!({"identifier": "alice", "identifierHash": "ab"}).to_string();
        assert!(matches!(
            session(body.as_bytes(), &visitor(), &settings(json!({})), fake_hmac),
            Err(VerifyError::Unauthorized(_))
        ));
    }

    #[test]
    fn identity_required_refuses_anonymous_visitors_and_keeps_verified_ones() {
        let settings = settings(json!({"identitySecret": "********", "identityRequired": true}));
        assert!(session(b"{}", &visitor(), &settings, fake_hmac).is_err());
        let verified = Visitor { id: "id:alice".into(), verified: true, ..visitor() };
        assert_eq!(session(b"{}", &verified, &settings, fake_hmac).expect("resumed")["externalUserId"], "id:alice");
    }

    #[test]
    fn session_answers_carry_the_public_settings_only() {
        let settings = settings(json!({"title": "Help", "color": "red;background:url(x)", "identitySecret": "********",
            "preChatForm": {"name": "required", "email": true}}));
        let answer = session(br#"{"name":" Ann ","email":"ann@example.com"}"#, &visitor(), &settings, fake_hmac).expect("ok");
        assert_eq!(answer["name"], "Ann");
        assert_eq!(answer["settings"]["color"], DEFAULT_COLOR, "a color that is not #hex is not passed on");
        assert_eq!(answer["settings"]["preChatForm"], json!({"name": "required", "email": "optional"}));
        assert!(!answer.to_string().contains("identitySecret"));
        assert!(session(br#"{"email":"not an email"}"#, &visitor(), &settings, fake_hmac).is_err());
        assert!(session(br#"{"name":"a\u0000b"}"#, &visitor(), &settings, fake_hmac).is_err(), "NUL is refused");
        assert!(session(br#"{"pageUrl":"javascript:alert(1)"}"#, &visitor(), &settings, fake_hmac).is_err());
    }

    #[test]
    fn messages_are_capped_and_scoped_to_the_visitor() {
        let plain = settings(json!({}));
        let message = message(br#"{"clientMessageId":"c-1","text":" hi "}"#, &visitor(), &plain, Some(5)).expect("ok");
        assert_eq!(message.provider_message_id.as_deref(), Some("v:123:c-1"));
        assert_eq!(message.text.as_deref(), Some("hi"));
        assert_eq!(message.sent_at_ms, Some(5));

        let long = json!({"clientMessageId": "c-2", "text": "x".repeat(MAX_TEXT_CHARS + 1)}).to_string();
        assert!(super::message(long.as_bytes(), &visitor(), &plain, None).is_err());
        assert!(super::message(br#"{"text":"no id"}"#, &visitor(), &plain, None).is_err());
        assert!(super::message(br#"{"clientMessageId":"c 3","text":"x"}"#, &visitor(), &plain, None).is_err());
        assert!(super::message(br#"{"clientMessageId":"c-4"}"#, &visitor(), &plain, None).is_err(), "empty");
        let too_many = json!({"clientMessageId": "c-5", "attachments": vec![json!({"url": "https://h/x"}); MAX_ATTACHMENTS + 1]});
        assert!(super::message(too_many.to_string().as_bytes(), &visitor(), &plain, None).is_err());
    }

    #[test]
    fn attachments_take_their_kind_from_the_stored_type() {
        let body = json!({"clientMessageId": "c", "attachments": [
            {"id": "u1", "url": "https://h/a", "mimeType": "image/png", "fileName": "a.png", "size": 3},
            {"id": "u2", "url": "https://h/b", "mimeType": "application/pdf"}]});
        let message = message(body.to_string().as_bytes(), &visitor(), &settings(json!({})), None).expect("ok");
        assert_eq!(message.attachments.len(), 2);
        assert!(matches!(message.attachments[0].kind, AttachmentKind::Image));
        assert!(matches!(message.attachments[1].kind, AttachmentKind::Document));
        let javascript = json!({"clientMessageId": "c", "attachments": [{"url": "javascript:alert(1)"}]});
        assert!(super::message(javascript.to_string().as_bytes(), &visitor(), &settings(json!({})), None).is_err());
    }

    #[test]
    fn a_required_prechat_field_must_be_given_before_messages() {
        let settings = settings(json!({"preChatForm": {"email": "required"}}));
        let body = br#"{"clientMessageId":"c","text":"hi"}"#;
        assert!(message(body, &visitor(), &settings, None).is_err());
        let known = Visitor { email: Some("a@b.co".into()), ..visitor() };
        assert!(message(body, &known, &settings, None).is_ok());
    }

    #[test]
    fn replies_the_widget_cannot_show_are_permanent_failures() {
        use crate::omnichat::channel::types::OutboundAttachment;
        let reply = |text: Option<&str>, attachments| OutboundMessage {
            message_id: "m".into(),
            recipient: "v:1".into(),
            text: text.map(str::to_owned),
            attachments,
        };
        assert!(check_reply(&reply(Some("hello"), vec![])).is_ok());
        assert!(check_reply(&reply(None, vec![])).is_err());
        let location =
            OutboundAttachment { kind: AttachmentKind::Location, url: "https://maps/x".into(), file_name: None, mime_type: None };
        assert!(matches!(check_reply(&reply(Some("x"), vec![location])), Err(SendError::Permanent(_))));
    }

    #[test]
    fn config_checks_origins_colors_and_the_form() {
        assert!(
            check_config(r#"{"allowedOrigins":["https://shop.example.com","https://*.example.com","http://127.0.0.1:8080"]}"#)
                .is_ok()
        );
        assert!(check_config(r#"{"allowedOrigins":["https://example.com/path"]}"#).is_err());
        assert!(check_config(r#"{"allowedOrigins":["*"]}"#).is_err());
        assert!(check_config(r#"{"allowedOrigins":"https://a.example.com, https://b.example.com"}"#).is_ok());
        assert!(check_config(r#"{"allowedOrigins":["https://*.com"]}"#).is_err(), "a wildcard over a TLD");
        assert!(check_config(r#"{"allowedOrigins":{"a":1}}"#).is_err());
        assert!(check_config(r#"{"color":"blue"}"#).is_err());
        assert!(check_config(r#"{"preChatForm":{"name":"maybe"}}"#).is_err());
    }
}
