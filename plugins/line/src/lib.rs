//! LINE Messaging API adapter: signed webhooks in, push messages out.
//!
//! Inbound: `POST /api/webhooks/{channelInstanceId}`. `X-Line-Signature` must be the base64
//! HMAC-SHA256 of the raw body keyed by the channel secret, which stays in the host
//! (`channelSecret`); message events from users, groups and rooms become messages.
//! Outbound: `POST /v2/bot/message/push` with `{{secret:channelAccessToken}}` as the bearer token
//! (filled in by the host) and OmniChat's message id as `X-Line-Retry-Key`, so a retried reply is
//! delivered once. Replies are pushed rather than answered with a reply token: a reply token
//! expires within a minute and works once, while an agent's answer may come hours later.
//! Lifecycle: `connect` checks the token (`GET /v2/bot/info`) and sets the webhook endpoint.
//! Media: `download` fetches content LINE holds by its message id from the content API
//! (`api-data.line.me/v2/bot/message/{messageId}/content`, with the token), or content sent with
//! an external URL from that URL.

mod mapping;

wit_bindgen::generate!({ world: "adapter", path: "../../wit" });

use exports::omnichat::channel::{describe, inbound, lifecycle, outbound};
use omnichat::channel::host::{self, HttpRequest, HttpResponse, LogLevel};
use omnichat::channel::types::{
    AdapterError, Attachment, ChannelContext, ConfigField, Header, Media, OutboundMessage, PluginInfo, Routing, SendError,
    SendReceipt, VerifyError, WebhookMode, WebhookOutcome, WebhookRequest,
};
use serde_json::json;

const SIGNATURE_HEADER: &str = "x-line-signature";
const DEFAULT_BASE_URL: &str = "https://api.line.me";
/// Not a format string: the host replaces the placeholder with the token, which never enters
/// the sandbox.
const AUTHORIZATION: &str = "Bearer {{secret:channelAccessToken}}";

struct Line;

impl describe::Guest for Line {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "line".into(),
            name: "LINE".into(),
            // A build may stamp its own version (`OMNICHAT_PLUGIN_VERSION=1.2.3-build.7`).
            version: option_env!("OMNICHAT_PLUGIN_VERSION").unwrap_or(env!("CARGO_PKG_VERSION")).into(),
            channel_type: "LINE".into(),
            config_schema: vec![
                ConfigField {
                    name: "channelSecret".into(),
                    description: "Channel secret from the LINE Developers console, used to verify X-Line-Signature".into(),
                    required: true,
                    secret: true,
                },
                ConfigField {
                    name: "channelAccessToken".into(),
                    description: "Long-lived channel access token from the LINE Developers console, used to send replies".into(),
                    required: true,
                    secret: true,
                },
            ],
            webhook: WebhookMode::PerChannel,
        }
    }
}

impl inbound::Guest for Line {
    fn route(_request: WebhookRequest) -> Result<Routing, VerifyError> {
        // Never asked: the webhook URL names the channel, and LINE has no handshake (the
        // console's "Verify" button posts a signed delivery with no events, which `receive` takes).
        Ok(Routing::Accounts(Vec::new()))
    }

    fn receive(_ctx: ChannelContext, request: WebhookRequest) -> Result<WebhookOutcome, VerifyError> {
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(VerifyError::BadRequest(format!("LINE posts its webhooks; this was a {}", request.method)));
        }
        let mismatch = || VerifyError::Unauthorized("X-Line-Signature does not match".into());
        let presented = mapping::header(&request.headers, SIGNATURE_HEADER).ok_or_else(mismatch)?;
        // Without a channel secret no delivery can be authentic: 401 as for a bad signature.
        let expected = host::hmac_sha256("channelSecret", &request.body)
            .map_err(|why| VerifyError::Unauthorized(format!("cannot check X-Line-Signature: {why}")))?;
        if !mapping::signature_matches(presented, &expected) {
            return Err(mismatch());
        }
        let messages = mapping::normalize(&request.body).map_err(VerifyError::BadRequest)?;
        Ok(WebhookOutcome { messages, receipts: Vec::new(), response: None })
    }

    fn download(ctx: ChannelContext, attachment: Attachment) -> Result<Media, AdapterError> {
        let request = mapping::content_request(&attachment, base_url(&ctx)).map_err(|message| AdapterError { message })?;
        // The error is shown to whoever asked for the media, so the host's fetch error (which may
        // quote the URL) is only logged.
        let response = host::fetch(&request).map_err(|err| {
            host::log(LogLevel::Warn, &format!("a content download did not happen: {err:?}"));
            AdapterError { message: mapping::download_unreachable(&err) }
        })?;
        mapping::content_outcome(response.status, &response.headers, response.body, &attachment)
            .map_err(|message| AdapterError { message })
    }
}

impl outbound::Guest for Line {
    fn send(ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        let body = mapping::push_body(&message).map_err(SendError::Permanent)?;
        let request = HttpRequest {
            method: "POST".into(),
            url: format!("{}/v2/bot/message/push", base_url(&ctx)),
            headers: vec![
                header("content-type", "application/json"),
                header("authorization", AUTHORIZATION),
                // OmniChat's message id is a UUID, the form LINE requires of a retry key, and it
                // stays the same across the queue's retries.
                header("x-line-retry-key", &message.message_id),
            ],
            body: Some(body.to_string().into_bytes()),
        };
        let response = host::fetch(&request).map_err(mapping::fetch_failure)?;
        let outcome = mapping::push_outcome(response.status, &response.headers, &response.body, &message.message_id);
        if let Err(error) = &outcome {
            let why = match error {
                SendError::Transient(why) | SendError::Permanent(why) => why.clone(),
                SendError::RateLimited(ms) => format!("rate limited, pausing {ms} ms"),
            };
            host::log(LogLevel::Warn, &format!("push answered {}: {why}", response.status));
        }
        outcome
    }
}

impl lifecycle::Guest for Line {
    fn connect(ctx: ChannelContext, webhook_url: Option<String>) -> Result<(), AdapterError> {
        let base = base_url(&ctx);
        let info = call("GET", format!("{base}/v2/bot/info"), None)?;
        let name = mapping::check_bot_info(info.status, &info.body).map_err(|message| AdapterError { message })?;
        host::log(LogLevel::Info, &format!("connected to the LINE bot {}", name.as_deref().unwrap_or("(unnamed)")));
        if let Some(endpoint) = webhook_url {
            // LINE only accepts an HTTPS endpoint; its refusal says so and becomes the channel's
            // status reason. "Use webhook" stays a switch in the console: no API turns it on.
            let body = json!({"endpoint": endpoint}).to_string().into_bytes();
            let response = call("PUT", format!("{base}/v2/bot/channel/webhook/endpoint"), Some(body))?;
            mapping::check_webhook_endpoint(response.status, &response.body).map_err(|message| AdapterError { message })?;
        }
        Ok(())
    }

    fn disconnect(_ctx: ChannelContext) -> Result<(), AdapterError> {
        // LINE has no API to remove a webhook endpoint (only to set one): it stays until it is
        // changed in the console or by a later `connect`. Turn off "Use webhook" in the console to
        // stop deliveries.
        Ok(())
    }
}

/// A request to LINE's API with the channel access token. A fetch failure becomes the channel's
/// status reason in a short form; the host's own text goes to the log.
fn call(method: &str, url: String, body: Option<Vec<u8>>) -> Result<HttpResponse, AdapterError> {
    let mut headers = vec![header("authorization", AUTHORIZATION)];
    if body.is_some() {
        headers.push(header("content-type", "application/json"));
    }
    let request = HttpRequest { method: method.into(), url, headers, body };
    host::fetch(&request).map_err(|err| {
        host::log(LogLevel::Warn, &format!("a LINE API call did not happen: {err:?}"));
        AdapterError { message: mapping::unreachable(&err) }
    })
}

fn base_url(ctx: &ChannelContext) -> &str {
    ctx.api_base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/')
}

fn header(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: value.into() }
}

export!(Line);
