//! The EXAMPLE channel: a template for OmniChat channel adapters (see README.md).
//!
//! Inbound: the provider posts `{"id", "from": {"id", "name"}, "chat", "text", "timestamp"}` (or
//! an array of them) to `/api/webhooks/{channelInstanceId}` with the channel's shared secret in
//! `X-Example-Token`. Outbound: `POST {api_base_url}/messages` with the API token as bearer and
//! OmniChat's message id as `Idempotency-Key`. Lifecycle: `connect` checks the token with
//! `GET /me` and pushes the optional greeting. Media: the provider sends media as URLs, which
//! `download` fetches (their hosts must be in `allowed_hosts`).
//!
//! This file is the thin layer that talks to the host; everything testable lives in mapping.rs.

mod mapping;

// The contract, from the copy in wit/ so this folder builds on its own.
wit_bindgen::generate!({ world: "adapter", path: "wit" });

use exports::omnichat::channel::{describe, inbound, lifecycle, outbound};
use omnichat::channel::host::{self, HttpRequest, HttpResponse, LogLevel};
use omnichat::channel::types::{
    AdapterError, Attachment, ChannelContext, ConfigField, Header, Media, OutboundMessage, PluginInfo, Routing, SendError,
    SendReceipt, VerifyError, WebhookMode, WebhookOutcome, WebhookRequest,
};
use serde_json::json;

const TOKEN_HEADER: &str = "x-example-token";
/// Not a format string: the host replaces the placeholder with the secret, which never enters
/// the sandbox.
const AUTHORIZATION: &str = "Bearer {{secret:apiToken}}";

/// The adapter: the generated `Guest` traits are implemented on it and `export!` exports it.
pub struct Example;

impl describe::Guest for Example {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "example".into(),
            name: "Example".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel_type: "EXAMPLE".into(),
            config_schema: vec![
                ConfigField {
                    name: "webhookToken".into(),
                    description: "Shared secret the provider sends in X-Example-Token with every webhook".into(),
                    required: true,
                    secret: true,
                },
                ConfigField {
                    name: "apiToken".into(),
                    description: "API token used as the bearer token when sending replies".into(),
                    required: true,
                    secret: true,
                },
                ConfigField {
                    name: "greeting".into(),
                    description: "Optional text the provider shows new contacts, set when the channel connects".into(),
                    required: false,
                    secret: false,
                },
            ],
            webhook: WebhookMode::PerChannel,
        }
    }
}

impl inbound::Guest for Example {
    fn route(_request: WebhookRequest) -> Result<Routing, VerifyError> {
        // Only called for `shared` webhooks (one URL for every channel of the type): answer a
        // handshake with `Routing::Answer`, or name the accounts with `Routing::Accounts`.
        // Per-channel webhooks, as here, are never routed: the URL names the channel.
        Ok(Routing::Accounts(Vec::new()))
    }

    fn receive(_ctx: ChannelContext, request: WebhookRequest) -> Result<WebhookOutcome, VerifyError> {
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(VerifyError::BadRequest(format!("webhooks are POSTed; this was a {}", request.method)));
        }
        // Authenticate before reading the body: an unauthenticated body is not worth parsing.
        let presented = mapping::header(&request.headers, TOKEN_HEADER)
            .ok_or_else(|| VerifyError::Unauthorized("missing X-Example-Token".into()))?;
        // The host compares in constant time; the adapter never sees the secret.
        match host::secret_equals("webhookToken", presented) {
            Some(true) => {}
            Some(false) => return Err(VerifyError::Unauthorized("X-Example-Token does not match".into())),
            None => return Err(VerifyError::Unauthorized("the channel has no webhookToken".into())),
        }
        let messages = mapping::normalize(&request.body).map_err(VerifyError::BadRequest)?;
        Ok(WebhookOutcome { messages, receipts: Vec::new(), response: None })
    }

    fn download(_ctx: ChannelContext, attachment: Attachment) -> Result<Media, AdapterError> {
        // `attachment` is what `receive` gave, as the host stored it. A provider that holds media
        // by id would read that id from `attachment.extra` and call its API with a
        // `{{secret:..}}` token; the Example provider sends public URLs, fetched as they are.
        let url = mapping::media_url(&attachment).map_err(|message| AdapterError { message })?;
        let request = HttpRequest { method: "GET".into(), url: url.to_owned(), headers: Vec::new(), body: None };
        // The error is shown to whoever asked for the media, so the host's own text (which may
        // quote the URL) is only logged.
        let response = host::fetch(&request).map_err(|err| {
            host::log(LogLevel::Warn, &format!("a media download did not happen: {err:?}"));
            AdapterError { message: mapping::download_unreachable(&err) }
        })?;
        mapping::downloaded(response.status, &response.headers, response.body, &attachment)
            .map_err(|message| AdapterError { message })
    }
}

impl outbound::Guest for Example {
    fn send(ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        let base = api_base_url(&ctx).map_err(SendError::Permanent)?;
        let body = mapping::send_body(&message).map_err(SendError::Permanent)?;
        let request = HttpRequest {
            method: "POST".into(),
            url: format!("{base}/messages"),
            headers: vec![
                header("content-type", "application/json"),
                header("authorization", AUTHORIZATION),
                // Stable across the queue's retries, so the provider can drop a duplicate.
                header("idempotency-key", &message.message_id),
            ],
            body: Some(body.to_string().into_bytes()),
        };
        let response = host::fetch(&request).map_err(mapping::fetch_failure)?;
        let outcome = mapping::send_outcome(response.status, &response.headers, &response.body, &message.message_id);
        if let Err(error) = &outcome {
            let why = match error {
                SendError::Transient(why) | SendError::Permanent(why) => why.clone(),
                SendError::RateLimited(ms) => format!("rate limited, pausing {ms} ms"),
            };
            host::log(LogLevel::Warn, &format!("POST /messages answered {}: {why}", response.status));
        }
        outcome
    }
}

impl lifecycle::Guest for Example {
    fn connect(ctx: ChannelContext, webhook_url: Option<String>) -> Result<(), AdapterError> {
        let base = api_base_url(&ctx).map_err(|message| AdapterError { message })?;
        let me = call("GET", format!("{base}/me"), None)?;
        let name = mapping::check_me(me.status, &me.body).map_err(|message| AdapterError { message })?;
        host::log(LogLevel::Info, &format!("connected as {}", name.as_deref().unwrap_or("(unnamed)")));

        if let Some(greeting) = mapping::config_text(&ctx.config, "greeting") {
            let body = json!({"text": greeting}).to_string().into_bytes();
            let response = call("PUT", format!("{base}/me/greeting"), Some(body))?;
            mapping::check_ok("PUT /me/greeting", response.status, &response.body).map_err(|message| AdapterError { message })?;
        }

        // A provider with a webhook API would register `webhook_url` here (and maybe a webhook
        // secret made with `host::generate_secret`); the Example provider is set up by hand.
        if let Some(url) = webhook_url {
            host::log(LogLevel::Info, &format!("set the provider's webhook URL to {url}"));
        }
        Ok(())
    }

    fn disconnect(_ctx: ChannelContext) -> Result<(), AdapterError> {
        // Nothing was registered at the provider, so nothing to undo.
        Ok(())
    }
}

/// `api_base_url` from plugins.toml: the provider has no public default, so without it the
/// adapter cannot reach it.
fn api_base_url(ctx: &ChannelContext) -> Result<&str, String> {
    ctx.api_base_url
        .as_deref()
        .map(|url| url.trim_end_matches('/'))
        .ok_or_else(|| "no api_base_url for the EXAMPLE channel type: set it in plugins.toml".to_owned())
}

/// A request to the provider with the API token. A fetch failure becomes the channel's status
/// reason in a short form; the host's own text goes to the log.
fn call(method: &str, url: String, body: Option<Vec<u8>>) -> Result<HttpResponse, AdapterError> {
    let mut headers = vec![header("authorization", AUTHORIZATION)];
    if body.is_some() {
        headers.push(header("content-type", "application/json"));
    }
    let request = HttpRequest { method: method.into(), url, headers, body };
    host::fetch(&request).map_err(|err| {
        host::log(LogLevel::Warn, &format!("an Example API call did not happen: {err:?}"));
        AdapterError { message: mapping::unreachable(&err) }
    })
}

fn header(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: value.into() }
}

// Only the component exports anything. The export names (`omnichat:channel/inbound@0.2.0#receive`)
// are not symbols a native linker accepts, and `cargo test` also links the native cdylib.
#[cfg(target_arch = "wasm32")]
export!(Example);
// Natively the generated `export` macro then goes unused; this keeps that from being a warning.
#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_imports)]
use export as _;
