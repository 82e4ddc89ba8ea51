//! The website chat widget's channel (`WIDGET`).
//!
//! The host's visitor transport (`/api/widget/{channelInstanceId}/...`, granted by
//! `visitor_transport = true` in plugins.toml) authenticates visitors, enforces origins and rate
//! limits, stores uploads and carries events; it hands each visitor request to `receive` with the
//! visitor it vouches for in the `x-omnichat-visitor` header. This adapter owns what a widget
//! conversation is:
//! - `sessions`: who the visitor is. An `identifier` counts only with its `identifierHash` (hex
//!   HMAC-SHA256 keyed by the channel's `identitySecret`, computed by the host: the secret never
//!   enters the sandbox) and makes the same customer on every device; `identityRequired` refuses
//!   anonymous visitors. The answer (the webhook response) carries the visitor and the widget's
//!   public settings.
//! - `messages`: a visitor message within the caps, its client id (scoped to the visitor) as the
//!   provider message id, so a retried post is stored once.
//! - `read`: a read receipt for every reply the visitor has seen.
//! - `send`: checks that the widget can show a reply; the host then hands it to the visitor's
//!   sockets, and a visitor who is offline gets it with the history of the next session.

mod mapping;

wit_bindgen::generate!({ world: "adapter", path: "../../wit" });

use exports::omnichat::channel::{describe, inbound, lifecycle, outbound};
use omnichat::channel::host;
use omnichat::channel::types::{
    AdapterError, Attachment, ChannelContext, ConfigField, Header, Media, OutboundMessage, PluginInfo, Routing, SendError,
    SendReceipt, VerifyError, WebhookMode, WebhookOutcome, WebhookRequest, WebhookResponse,
};

struct Widget;

fn field(name: &str, description: &str, required: bool, secret: bool) -> ConfigField {
    ConfigField { name: name.into(), description: description.into(), required, secret }
}

impl describe::Guest for Widget {
    fn info() -> PluginInfo {
        PluginInfo {
            id: "widget".into(),
            name: "Website widget".into(),
            version: option_env!("OMNICHAT_PLUGIN_VERSION").unwrap_or(env!("CARGO_PKG_VERSION")).into(),
            channel_type: "WIDGET".into(),
            config_schema: vec![
                field(
                    "allowedOrigins",
                    "Origins of the sites that embed the widget: exact (https://www.example.com) or one wildcard label (https://*.example.com)",
                    false,
                    false,
                ),
                field(
                    "identitySecret",
                    "Key of the identifierHash HMAC-SHA256 your server computes for signed-in visitors",
                    false,
                    true,
                ),
                field("identityRequired", "true: only visitors with a verified identifier may chat", false, false),
                field("title", "The widget's header", false, false),
                field("greeting", "The first line visitors see", false, false),
                field("color", "The widget's color, #rgb or #rrggbb", false, false),
                field(
                    "preChatForm",
                    "{\"name\": \"off\"|\"optional\"|\"required\", \"email\": ...}: what to ask before the first message",
                    false,
                    false,
                ),
                field("offlineMessage", "Shown when no agent is online", false, false),
            ],
            webhook: WebhookMode::PerChannel,
        }
    }
}

impl inbound::Guest for Widget {
    fn route(_request: WebhookRequest) -> Result<Routing, VerifyError> {
        Ok(Routing::Accounts(Vec::new()))
    }

    fn receive(ctx: ChannelContext, request: WebhookRequest) -> Result<WebhookOutcome, VerifyError> {
        let action = mapping::action(&request.path, &ctx.channel_instance_id)?;
        let visitor = mapping::visitor(&request.headers)?;
        let settings = mapping::Settings::from_config(&ctx.config);
        let received_at = mapping::header(&request.headers, mapping::RECEIVED_AT_HEADER).and_then(|t| t.parse().ok());
        let mut outcome = WebhookOutcome { messages: Vec::new(), receipts: Vec::new(), response: None };
        match action {
            "sessions" => {
                let answer =
                    mapping::session(&request.body, &visitor, &settings, |data| host::hmac_sha256("identitySecret", data))?;
                outcome.response = Some(WebhookResponse {
                    status: 200,
                    headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
                    body: answer.to_string().into_bytes(),
                });
            }
            "messages" => outcome.messages.push(mapping::message(&request.body, &visitor, &settings, received_at)?),
            "read" => outcome.receipts.push(mapping::read_receipt(&visitor, received_at)),
            other => return Err(VerifyError::BadRequest(format!("the widget has no {other:?} request"))),
        }
        Ok(outcome)
    }

    fn download(_ctx: ChannelContext, _attachment: Attachment) -> Result<Media, AdapterError> {
        Err(AdapterError { message: "widget attachments are files the host stored: open their url".into() })
    }
}

impl outbound::Guest for Widget {
    fn send(_ctx: ChannelContext, message: OutboundMessage) -> Result<SendReceipt, SendError> {
        mapping::check_reply(&message)?;
        // The visitor transport delivers it; OmniChat's own id is the only one it has.
        Ok(SendReceipt { provider_message_id: message.message_id })
    }
}

impl lifecycle::Guest for Widget {
    fn connect(ctx: ChannelContext, _webhook_url: Option<String>) -> Result<(), AdapterError> {
        mapping::check_config(&ctx.config).map_err(|message| AdapterError { message })
    }

    fn disconnect(_ctx: ChannelContext) -> Result<(), AdapterError> {
        Ok(())
    }
}

export!(Widget);
