//! Telegram Bot API adapter: webhook updates in, Bot API calls out.
//!
//! Inbound: `POST /api/telegram/bot/webhook/:channelInstanceId` with an `Update`. When the channel's
//! config holds `secretToken`, the `X-Telegram-Bot-Api-Secret-Token` header must match it.
//! Outbound: `sendMessage`, or `sendPhoto`/`sendVideo`/`sendAudio`/`sendVoice`/`sendDocument` for
//! the first attachment (by URL, Telegram fetches it), with the caption as text. The bot token
//! never enters the sandbox: the URL carries `{{secret:botToken}}` and the host fills it in.

mod mapping;

wit_bindgen::generate!({ world: "adapter", path: "../../wit" });

use exports::omnichat::channel::{describe, inbound, outbound};
use omnichat::channel::host::{self, HttpRequest, LogLevel};
use omnichat::channel::types::{
    AdapterError, AttachmentKind, ChannelContext, Header, InboundMessage, OutboundMessage, PluginInfo, SendError, SendReceipt,
    VerifyError, WebhookRequest,
};
use serde_json::{Value, json};

const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
const DEFAULT_BASE_URL: &str = "https://api.telegram.org";

struct TelegramBot;

impl describe::Guest for TelegramBot {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "telegram-bot".into(),
            name: "Telegram bot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel_type: "TELEGRAM_BOT".into(),
        }
    }
}

impl inbound::Guest for TelegramBot {
    fn accounts(_request: WebhookRequest) -> Result<Vec<String>, VerifyError> {
        // The webhook URL names the channel.
        Ok(Vec::new())
    }

    fn verify(_ctx: ChannelContext, request: WebhookRequest) -> Result<(), VerifyError> {
        let presented = header(&request.headers, SECRET_HEADER).unwrap_or_default();
        match host::secret_equals("secretToken", presented) {
            None | Some(true) => Ok(()),
            Some(false) => Err(VerifyError::Unauthorized("X-Telegram-Bot-Api-Secret-Token does not match".into())),
        }
    }

    fn normalize(_ctx: ChannelContext, request: WebhookRequest) -> Result<Vec<InboundMessage>, AdapterError> {
        let update: Value = serde_json::from_slice(&request.body)
            .map_err(|e| AdapterError { message: format!("the body is not a Telegram update: {e}") })?;
        mapping::normalize_update(&update).map_err(|message| AdapterError { message })
    }
}

impl outbound::Guest for TelegramBot {
    fn send(ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        let base = ctx.api_base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let chat_id = message.recipient.clone();
        let (method, body) = match message.attachments.first() {
            None => {
                let text = message
                    .text
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| SendError::Permanent("nothing to send".into()))?;
                ("sendMessage", json!({"chat_id": chat_id, "text": text}))
            }
            Some(attachment) => {
                let (method, field) = match attachment.kind {
                    AttachmentKind::Image => ("sendPhoto", "photo"),
                    AttachmentKind::Video => ("sendVideo", "video"),
                    AttachmentKind::Audio => ("sendAudio", "audio"),
                    AttachmentKind::Voice => ("sendVoice", "voice"),
                    AttachmentKind::Sticker => ("sendSticker", "sticker"),
                    _ => ("sendDocument", "document"),
                };
                let mut body = json!({"chat_id": chat_id, field: attachment.url});
                if let Some(caption) = message.text.as_ref().filter(|t| !t.is_empty()) {
                    body["caption"] = Value::String(caption.clone());
                }
                (method, body)
            }
        };
        let request = HttpRequest {
            method: "POST".into(),
            url: format!("{base}/bot{{{{secret:botToken}}}}/{method}"),
            headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
            body: Some(body.to_string().into_bytes()),
        };
        let response = host::fetch(&request).map_err(mapping::fetch_failure)?;
        let reply: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if (200..300).contains(&response.status) && reply["ok"] == true {
            let id = &reply["result"]["message_id"];
            let chat = reply["result"]["chat"]["id"].as_i64().map(|c| c.to_string()).unwrap_or(chat_id);
            return Ok(SendReceipt { provider_message_id: format!("{chat}:{id}") });
        }
        let description = reply["description"].as_str().unwrap_or("no description").to_owned();
        host::log(LogLevel::Warn, &format!("{method} answered {}: {description}", response.status));
        Err(mapping::classify_failure(response.status, reply["parameters"]["retry_after"].as_u64(), description))
    }
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

export!(TelegramBot);
