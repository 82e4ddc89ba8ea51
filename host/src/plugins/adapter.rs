//! A loaded WASM plugin behind the channel seam: it opens the channel's secrets for the call
//! (the guest sees them redacted), runs the call in the runtime, and maps the outcome onto the
//! seam's types. Every error text it returns is scrubbed of the channel's secrets.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::fetch::ChannelSecrets;
use super::runtime::{ChannelCall, Plugin, PluginRuntime};
use crate::channels::adapter::{
    ChannelAdapter, ChannelTypeInfo, ConfigField, ConnectError, Media, MediaError, OutboundMessage, ReceiveError, Routing,
    SendFailure, WebhookOutcome, WebhookRequest,
};
use crate::channels::{StatusSink, secrets};
use crate::crypto::SecretBox;
use crate::store::{Channel, ChannelPatch, ChannelStatus, Store};

/// What plugin adapters use of the host besides the runtime.
#[derive(Clone)]
pub struct PluginDeps {
    pub store: Arc<dyn Store>,
    pub secrets: SecretBox,
    pub status: StatusSink,
    /// `OMNICHAT_PUBLIC_URL`: where providers reach this host, for webhook registration.
    pub public_url: Option<String>,
}

pub struct WasmAdapter {
    plugin: Arc<Plugin>,
    runtime: Arc<PluginRuntime>,
    deps: PluginDeps,
}

impl WasmAdapter {
    pub fn new(plugin: Arc<Plugin>, runtime: Arc<PluginRuntime>, deps: PluginDeps) -> Self {
        Self { plugin, runtime, deps }
    }

    /// The channel as the guest sees it, with its secrets held by the host for the call.
    fn call(&self, channel: &Channel) -> Result<ChannelCall, String> {
        let values = secrets::open_secrets(&self.deps.secrets, &channel.config.0).map_err(|e| {
            tracing::error!(channel.id = %channel.id, error = %e, "cannot decrypt a channel's config; was OMNICHAT_SECRET_KEY changed?");
            format!("cannot decrypt the channel's config ({e})")
        })?;
        Ok(ChannelCall {
            tenant_id: channel.tenant_id,
            channel_id: channel.id,
            external_id: channel.external_id.clone(),
            config: secrets::redact(&channel.config.0).to_string(),
            secrets: ChannelSecrets::new(values).with_fallbacks(&self.plugin.own_secrets),
        })
    }

    /// The public URL of the channel's webhook: its type's route (`webhook_info`), with the id in.
    fn webhook_url(&self, channel: &Channel) -> Option<String> {
        let base = self.deps.public_url.as_deref()?.trim_end_matches('/');
        let path = self.plugin.info.webhook.as_ref()?.path.replace("{channelInstanceId}", &channel.id.to_string());
        Some(format!("{base}{path}"))
    }

    /// Secrets the plugin generated in `connect`, sealed into the channel's config as it is now
    /// (re-read, so an update made while the provider was called is kept).
    async fn keep_generated(&self, channel: &Channel, generated: Vec<(String, secrecy::SecretString)>) -> Result<(), String> {
        if generated.is_empty() {
            return Ok(());
        }
        let unsaved = || "the provider accepted a generated secret, but it cannot be stored: connect again".to_owned();
        let channel = match self.deps.store.get_channel(channel.tenant_id, channel.id).await {
            Ok(Some(current)) => current,
            Ok(None) => return Err("the channel was deleted meanwhile".into()),
            Err(err) => {
                tracing::warn!(channel.id = %channel.id, error = %err, "cannot re-read the channel to store a generated secret");
                return Err(unsaved());
            }
        };
        let mut config = channel.config.0.clone();
        let Value::Object(map) = &mut config else { return Err("the channel's config is not an object".into()) };
        // The schema, and every generated value as a secret field of it.
        let mut schema = self.plugin.info.config_schema.clone();
        for (name, value) in generated {
            schema.retain(|field| field.name != name);
            schema.push(ConfigField { name: name.clone(), description: String::new(), required: false, secret: true });
            map.insert(name, Value::String(secrecy::ExposeSecret::expose_secret(&value).to_owned()));
        }
        let sealed = secrets::seal(&self.deps.secrets, config, Some(&channel.config.0), &schema);
        let patch = ChannelPatch { config: Some(sealed), ..Default::default() };
        match self.deps.store.update_channel(channel.tenant_id, channel.id, patch).await {
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::warn!(channel.id = %channel.id, error = %err, "cannot store a generated secret");
                Err(unsaved())
            }
        }
    }
}

#[async_trait]
impl ChannelAdapter for WasmAdapter {
    fn info(&self) -> &ChannelTypeInfo {
        &self.plugin.info
    }

    async fn route(&self, request: &WebhookRequest) -> Result<Routing, ReceiveError> {
        self.runtime.route(&self.plugin, request).await.map_err(|e| ReceiveError::Failed(e.to_string()))?
    }

    async fn receive(&self, channel: &Channel, request: &WebhookRequest) -> Result<WebhookOutcome, ReceiveError> {
        let call = self.call(channel).map_err(ReceiveError::Failed)?;
        self.runtime.receive(&self.plugin, call, request).await.map_err(|e| ReceiveError::Failed(e.to_string()))?
    }

    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> Result<String, SendFailure> {
        let call = self.call(channel).map_err(SendFailure::Transient)?;
        let secrets = call.secrets.clone();
        match self.runtime.send(&self.plugin, call, message).await {
            Ok(result) => result,
            Err(err) => Err(SendFailure::Transient(secrets.scrub(&err.to_string()))),
        }
    }

    /// A web channel (visitor transport) registers nothing at a provider: it is checked and
    /// connected as soon as it exists, so a bad config shows at once as ERROR with the reason.
    async fn created(&self, channel: Channel) -> Result<Channel, ConnectError> {
        if self.plugin.entry.visitor_transport { self.connect(&channel).await } else { Ok(channel) }
    }

    /// CONNECTED when the plugin's `connect` passes (the provider accepted the credentials and,
    /// with a public URL, the webhook), else ERROR with its reason.
    async fn connect(&self, channel: &Channel) -> Result<Channel, ConnectError> {
        let (tenant_id, channel_id) = (channel.tenant_id, channel.id);
        let outcome = match self.call(channel) {
            Ok(call) => match self.runtime.connect(&self.plugin, call, self.webhook_url(channel).as_deref()).await {
                Ok(Ok(generated)) => self.keep_generated(channel, generated).await,
                Ok(Err(reason)) => Err(reason),
                Err(err) => Err(err.to_string()),
            },
            Err(reason) => Err(reason),
        };
        if let Err(err) = self.deps.store.set_channel_verified(tenant_id, channel_id, outcome.is_ok()).await {
            tracing::warn!(channel.id = %channel_id, error = %err, "cannot record the connect outcome");
        }
        let updated = match outcome {
            Ok(()) => self.deps.status.set(tenant_id, channel_id, ChannelStatus::Connected, None).await,
            Err(reason) => {
                tracing::info!(channel.id = %channel_id, reason, "channel connect refused");
                self.deps.status.set(tenant_id, channel_id, ChannelStatus::Error, Some(&reason)).await
            }
        };
        match updated {
            Some(channel) => Ok(channel),
            None => Ok(self.deps.store.get_channel(tenant_id, channel_id).await?.unwrap_or_else(|| channel.clone())),
        }
    }

    async fn download(&self, channel: &Channel, attachment: &Value) -> Result<Media, MediaError> {
        let call = self.call(channel).map_err(MediaError::Unavailable)?;
        match self.runtime.download(&self.plugin, call, attachment).await {
            Ok(Ok(media)) => Ok(media),
            Ok(Err(reason)) => Err(MediaError::Unavailable(reason)),
            Err(err) => Err(MediaError::Unavailable(err.to_string())),
        }
    }

    async fn disconnect(&self, channel: &Channel) {
        let result = match self.call(channel) {
            Ok(call) => self.runtime.disconnect(&self.plugin, call).await.map_err(|e| e.to_string()).and_then(|r| r),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = result {
            tracing::warn!(channel.id = %channel.id, plugin.id = %self.plugin.entry.id, reason, "plugin disconnect failed");
        }
    }
}
