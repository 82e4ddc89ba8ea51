//! Facebook Messenger (Page) adapter: Graph webhooks in, the Send API out.
//!
//! Inbound: one URL for every page of the app, `/api/webhooks/shared/FACEBOOK` (the seed's
//! `/api/facebook/webhook` still works). `route` answers the `GET` subscription check
//! (`hub.verify_token` against the host's `FACEBOOK_VERIFY_TOKEN`, secret `verifyToken`) and,
//! for a delivery, names the page ids of its entries so the host finds each page's channel;
//! `receive` checks `X-Hub-Signature-256` against an HMAC-SHA256 of the raw body keyed by the app
//! secret (held by the host: the channel's `appSecret`, else `FACEBOOK_APP_SECRET`), then reads
//! the page's messages and its delivery and read receipts.
//! Media: Messenger attachments carry a URL on Facebook's CDN; `download` fetches it.
//! Outbound: `POST /{version}/me/messages` with the page access token (`{{secret:pageAccessToken}}`,
//! filled in by the host); an attachment goes by URL, its text as a separate message first.
//! Lifecycle: `connect` checks the page access token (`GET /{version}/me`) and that it is the
//! channel's own page (its `id` is the channel's `externalId`): a tenant proves it holds the page
//! it claims, and only proven channels get a page's webhooks when several claim it. It does not
//! subscribe the app to the page's webhooks: the callback URL and verify token belong to the app's
//! settings (Meta's developer console), not to one page's channel, so that step stays manual.

mod mapping;

wit_bindgen::generate!({ world: "adapter", path: "../../wit" });

use exports::omnichat::channel::{describe, inbound, lifecycle, outbound};
use omnichat::channel::host::{self, HttpRequest, LogLevel};
use omnichat::channel::types::{
    AdapterError, Attachment, ChannelContext, ConfigField, Header, Media, OutboundMessage, PluginInfo, Routing, SendError,
    SendReceipt, VerifyError, WebhookMode, WebhookOutcome, WebhookRequest,
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
            config_schema: vec![
                ConfigField {
                    name: "pageAccessToken".into(),
                    description: "Page access token used to send replies".into(),
                    required: true,
                    secret: true,
                },
                ConfigField {
                    name: "appSecret".into(),
                    description: "The app secret that signs X-Hub-Signature-256; defaults to the host's FACEBOOK_APP_SECRET"
                        .into(),
                    required: false,
                    secret: true,
                },
                ConfigField {
                    name: "graphApiVersion".into(),
                    description: "Graph API version, default v21.0".into(),
                    required: false,
                    secret: false,
                },
            ],
            webhook: WebhookMode::Shared,
        }
    }
}

impl inbound::Guest for Facebook {
    fn route(request: WebhookRequest) -> Result<Routing, VerifyError> {
        mapping::route(&request.method, &request.query, &request.body, |token| {
            host::secret_equals("verifyToken", token) == Some(true)
        })
    }

    fn receive(ctx: ChannelContext, request: WebhookRequest) -> Result<WebhookOutcome, VerifyError> {
        verify(&request)?;
        let body = parse(&request.body).map_err(VerifyError::BadRequest)?;
        // One delivery can carry entries of several pages: only this channel's page counts here.
        let page_id = ctx.external_id.unwrap_or_default();
        let messages = mapping::normalize(&body, &page_id).map_err(VerifyError::BadRequest)?;
        let receipts = mapping::receipts(&body, &page_id);
        Ok(WebhookOutcome { messages, receipts, response: None })
    }

    fn download(_ctx: ChannelContext, attachment: Attachment) -> Result<Media, AdapterError> {
        let url = mapping::media_url(&attachment).map_err(|message| AdapterError { message })?;
        // Messenger's attachment URLs point at Facebook's CDN (`*.fbcdn.net`, some at
        // `*.facebook.com`), both granted in plugins.toml; files may come from `cdn.fbsbx.com`,
        // which a deployment has to add to `allowed_hosts`. They are signed and expire after a
        // while, so an old attachment may be gone. No token: the signed URL is the credential.
        let request = HttpRequest { method: "GET".into(), url: url.to_owned(), headers: Vec::new(), body: None };
        // The error is shown to whoever asked for the media, so the host's fetch error (which
        // quotes the signed URL) is only logged.
        let response = host::fetch(&request).map_err(|err| {
            host::log(LogLevel::Warn, &format!("an attachment download did not happen: {err:?}"));
            AdapterError { message: mapping::download_unreachable(&err) }
        })?;
        mapping::downloaded(response.status, &response.headers, response.body, &attachment)
            .map_err(|message| AdapterError { message })
    }
}

/// The signature covers the raw bytes, so it is checked before the body is parsed.
fn verify(request: &WebhookRequest) -> Result<(), VerifyError> {
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

impl outbound::Guest for Facebook {
    fn send(ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        let url = format!("{}/me/messages?access_token={{{{secret:pageAccessToken}}}}", graph_base(&ctx));
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

impl lifecycle::Guest for Facebook {
    fn connect(ctx: ChannelContext, _webhook_url: Option<String>) -> Result<(), AdapterError> {
        let request = HttpRequest {
            method: "GET".into(),
            url: format!("{}/me?fields=id,name&access_token={{{{secret:pageAccessToken}}}}", graph_base(&ctx)),
            headers: Vec::new(),
            body: None,
        };
        // The error becomes the channel's `statusReason`, which every agent of the tenant can
        // read, so the host's fetch error (which may quote the URL) is only logged.
        let response = host::fetch(&request).map_err(|err| {
            host::log(LogLevel::Warn, &format!("the token check did not happen: {err:?}"));
            AdapterError { message: mapping::unreachable(&err) }
        })?;
        if let Some(reason) = mapping::graph_refusal(response.status, &response.body) {
            return Err(AdapterError { message: format!("Facebook rejected the page access token: {reason}") });
        }
        mapping::page_ownership(&response.body, ctx.external_id.as_deref()).map_err(|message| AdapterError { message })
    }

    fn disconnect(_ctx: ChannelContext) -> Result<(), AdapterError> {
        // `connect` registered nothing at Facebook, so there is nothing to undo.
        Ok(())
    }
}

/// `{api base}/{graph version}`, the version from the channel's `graphApiVersion`.
fn graph_base(ctx: &ChannelContext) -> String {
    let base = ctx.api_base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
    let config: Value = serde_json::from_str(&ctx.config).unwrap_or(Value::Null);
    let version = config["graphApiVersion"].as_str().filter(|v| !v.is_empty()).unwrap_or(DEFAULT_GRAPH_VERSION);
    format!("{base}/{version}")
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

export!(Facebook);
