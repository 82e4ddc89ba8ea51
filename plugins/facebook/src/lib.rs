//! Facebook Messenger (Page) adapter: Graph webhooks in, the Send API out.
//!
//! Inbound: `POST /api/facebook/webhook` (one URL for every page of the app). `accounts` names the
//! page ids of the entries so the host finds each page's channel; `verify` checks
//! `X-Hub-Signature-256` against an HMAC-SHA256 of the raw body keyed by the app secret (held by
//! the host: the channel's `appSecret`, else `FACEBOOK_APP_SECRET`).
//! Outbound: `POST /{version}/me/messages` with the page access token (`{{secret:pageAccessToken}}`,
//! filled in by the host); an attachment goes by URL, its text as a separate message first.

mod mapping;

wit_bindgen::generate!({ world: "adapter", path: "../../wit" });

use exports::omnichat::channel::{describe, inbound, outbound};
use omnichat::channel::host::{self, HttpRequest, LogLevel};
use omnichat::channel::types::{
    AdapterError, ChannelContext, Header, InboundMessage, OutboundMessage, PluginInfo, SendError, SendReceipt, VerifyError,
    WebhookRequest,
};
use serde_json::{Value, json};

const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
const DEFAULT_GRAPH_VERSION: &str = "v21.0";

struct Facebook;

impl describe::Guest for Facebook {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "facebook".into(),
            name: "Facebook Messenger".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel_type: "FACEBOOK".into(),
        }
    }
}

impl inbound::Guest for Facebook {
    fn accounts(request: WebhookRequest) -> Result<Vec<String>, VerifyError> {
        let body = parse(&request.body).map_err(VerifyError::BadRequest)?;
        mapping::page_ids(&body).map_err(VerifyError::BadRequest)
    }

    fn verify(_ctx: ChannelContext, request: WebhookRequest) -> Result<(), VerifyError> {
        let presented = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(SIGNATURE_HEADER))
            .map(|h| h.value.as_str())
            .ok_or_else(|| VerifyError::Unauthorized("missing X-Hub-Signature-256".into()))?;
        let presented = presented
            .strip_prefix("sha256=")
            .and_then(mapping::decode_hex)
            .ok_or_else(|| VerifyError::Unauthorized("X-Hub-Signature-256 is not sha256=<hex>".into()))?;
        let expected = host::hmac_sha256("appSecret", &request.body).map_err(VerifyError::Unauthorized)?;
        if mapping::constant_time_eq(&presented, &expected) {
            Ok(())
        } else {
            Err(VerifyError::Unauthorized("X-Hub-Signature-256 does not match the body".into()))
        }
    }

    fn normalize(ctx: ChannelContext, request: WebhookRequest) -> Result<Vec<InboundMessage>, AdapterError> {
        let body = parse(&request.body).map_err(|message| AdapterError { message })?;
        let page_id = ctx.external_id.unwrap_or_default();
        mapping::normalize(&body, &page_id).map_err(|message| AdapterError { message })
    }
}

impl outbound::Guest for Facebook {
    fn send(ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        let base = ctx.api_base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let config: Value = serde_json::from_str(&ctx.config).unwrap_or(Value::Null);
        let version = config["graphApiVersion"].as_str().unwrap_or(DEFAULT_GRAPH_VERSION);
        let url = format!("{base}/{version}/me/messages?access_token={{{{secret:pageAccessToken}}}}");
        let mut payloads = Vec::new();
        if let Some(text) = message.text.as_ref().filter(|t| !t.is_empty()) {
            payloads.push(json!({"text": text}));
        }
        if let Some(attachment) = message.attachments.first() {
            payloads.push(json!({"attachment": {"type": mapping::graph_attachment_type(attachment.kind), "payload": {"url": attachment.url, "is_reusable": true}}}));
        }
        if payloads.is_empty() {
            return Err(SendError::Permanent("nothing to send".into()));
        }
        let mut last = None;
        for payload in payloads {
            let body = json!({"recipient": {"id": message.recipient}, "messaging_type": "RESPONSE", "message": payload});
            let request = HttpRequest {
                method: "POST".into(),
                url: url.clone(),
                headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
                body: Some(body.to_string().into_bytes()),
            };
            let response = host::fetch(&request).map_err(mapping::fetch_failure)?;
            let reply: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            if !(200..300).contains(&response.status) {
                let error = &reply["error"];
                host::log(
                    LogLevel::Warn,
                    &format!("Send API answered {}: {}", response.status, error["message"].as_str().unwrap_or("")),
                );
                return Err(mapping::classify_failure(response.status, error));
            }
            last = reply["message_id"].as_str().map(str::to_owned);
        }
        Ok(SendReceipt { provider_message_id: last.unwrap_or_default() })
    }
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

export!(Facebook);
