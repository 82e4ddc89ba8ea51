//! Compiles each adapter once (one `Engine`, one `InstancePre` per plugin, pooling allocator,
//! compiled artifacts cached on disk) and runs every call in a fresh `Store` with a memory cap and
//! a wall-clock deadline enforced twice: by epoch interruption while the guest computes, and by a
//! timeout around the whole call while it waits on the host. A plugin that traps, loops or
//! exhausts memory fails that call alone.
//!
//! Components built against WIT 0.2.0 (the current world) and 0.1.0 both load; the host maps the
//! older one onto the same calls (no config schema, no lifecycle, no receipts).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::fetch::{ChannelSecrets, Fetcher};
use super::manifest::PluginEntry;
use crate::channels::adapter::{
    AdapterKind, AttachmentKind, ChannelTypeInfo, ConfigField, Header, Media, OutboundMessage, Receipt, ReceiptStatus,
    ReceiveError, Routing, SendFailure, WebhookMode, WebhookOutcome, WebhookRequest, WebhookResponse, webhook_info,
};
use crate::store::{ChannelType, MessageDirection, NewInboundMessage};

/// Conversions between the seam's types and one contract version's records, which are the same
/// in every version that has them: expanded inside each version's module.
macro_rules! conversions {
    () => {
        use self::omnichat::channel::types as t;
        use crate::channels::adapter as seam;

        pub(super) fn context(api_base_url: Option<String>, call: &super::ChannelCall) -> t::ChannelContext {
            t::ChannelContext {
                channel_instance_id: call.channel_id.to_string(),
                tenant_id: call.tenant_id.to_string(),
                external_id: call.external_id.clone(),
                config: call.config.clone(),
                api_base_url,
            }
        }

        pub(super) fn request(request: &seam::WebhookRequest) -> t::WebhookRequest {
            t::WebhookRequest {
                method: request.method.clone(),
                path: request.path.clone(),
                query: request.query.clone(),
                headers: request.headers.iter().map(|h| t::Header { name: h.name.clone(), value: h.value.clone() }).collect(),
                body: request.body.clone(),
            }
        }

        pub(super) fn refusal(err: t::VerifyError) -> seam::ReceiveError {
            match err {
                t::VerifyError::Unauthorized(why) => seam::ReceiveError::Unauthorized(why),
                t::VerifyError::BadRequest(why) => seam::ReceiveError::BadRequest(why),
            }
        }

        pub(super) fn kind_in(kind: t::AttachmentKind) -> seam::AttachmentKind {
            use seam::AttachmentKind as S;
            use t::AttachmentKind as K;
            match kind {
                K::Image => S::Image,
                K::Video => S::Video,
                K::Audio => S::Audio,
                K::Voice => S::Voice,
                K::Document => S::Document,
                K::Sticker => S::Sticker,
                K::Location => S::Location,
                K::Contact => S::Contact,
                K::Other => S::Other,
            }
        }

        pub(super) fn kind_out(kind: seam::AttachmentKind) -> t::AttachmentKind {
            use seam::AttachmentKind as S;
            use t::AttachmentKind as K;
            match kind {
                S::Image => K::Image,
                S::Video => K::Video,
                S::Audio => K::Audio,
                S::Voice => K::Voice,
                S::Document => K::Document,
                S::Sticker => K::Sticker,
                S::Location => K::Location,
                S::Contact => K::Contact,
                S::Other => K::Other,
            }
        }

        pub(super) fn message_in(
            tenant_id: uuid::Uuid,
            channel_id: uuid::Uuid,
            m: t::InboundMessage,
        ) -> crate::store::NewInboundMessage {
            let attachments = m
                .attachments
                .into_iter()
                .map(|a| super::attachment_json(kind_in(a.kind), a.url, a.mime_type, a.file_name, a.size, &a.extra))
                .collect();
            super::to_payload(
                tenant_id,
                channel_id,
                super::Normalized {
                    external_user_id: m.external_user_id,
                    external_conversation_id: m.external_conversation_id,
                    provider_message_id: m.provider_message_id,
                    sender_name: m.sender_name,
                    sender_username: m.sender_username,
                    text: m.text,
                    attachments,
                    sent_at_ms: m.sent_at_ms,
                    raw: m.raw,
                },
            )
        }

        pub(super) fn outbound(message: &seam::OutboundMessage) -> t::OutboundMessage {
            t::OutboundMessage {
                message_id: message.message_id.clone(),
                recipient: message.recipient.clone(),
                text: message.text.clone(),
                attachments: message
                    .attachments
                    .iter()
                    .map(|a| t::OutboundAttachment {
                        kind: kind_out(a.kind),
                        url: a.url.clone(),
                        file_name: a.file_name.clone(),
                        mime_type: a.mime_type.clone(),
                    })
                    .collect(),
            }
        }

        pub(super) fn send_failure(err: t::SendError) -> seam::SendFailure {
            match err {
                t::SendError::Transient(why) => seam::SendFailure::Transient(why),
                t::SendError::RateLimited(ms) => seam::SendFailure::RateLimited(std::time::Duration::from_millis(ms.max(100))),
                t::SendError::Permanent(why) => seam::SendFailure::Permanent(why),
            }
        }
    };
}

/// Bindings of the current contract, `omnichat:channel@0.2.0`.
pub mod v2 {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit/adapter.wit",
        imports: { default: async },
        exports: { default: async },
    });
    conversions!();
}

/// Bindings of the first contract, `omnichat:channel@0.1.0`, still loaded.
pub mod v1 {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit/v0.1.0/adapter.wit",
        imports: { default: async },
        exports: { default: async },
    });
    conversions!();
}

/// The contract versions this host loads, newest first.
pub const WIT_VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];

/// How often the epoch ticks: the granularity of deadlines and of yielding to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Calls that may run at once; more wait for a slot.
const CONCURRENT_CALLS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin} exceeded its time limit of {limit_ms} ms")]
    Timeout { plugin: String, limit_ms: u64 },
    #[error("plugin {plugin} exceeded its memory limit of {limit_mb} MiB")]
    OutOfMemory { plugin: String, limit_mb: u64 },
    #[error("plugin {plugin} trapped: {message}")]
    Trap { plugin: String, message: String },
    /// The adapter ran and answered with an error of its own.
    #[error("plugin {plugin}: {message}")]
    Adapter { plugin: String, message: String },
}

enum Pre {
    V2(v2::AdapterPre<CallState>),
    V1(v1::AdapterPre<CallState>),
}

/// A loaded adapter.
pub struct Plugin {
    pub entry: PluginEntry,
    pub info: ChannelTypeInfo,
    /// The WIT package version it was built against.
    pub wit_version: &'static str,
    /// `allowed_hosts` plus the host of the provider base URL.
    pub grants: Vec<String>,
    pub api_base_url: Option<String>,
    /// The plugin's own secrets (`env_secrets`), behind every channel's.
    pub own_secrets: ChannelSecrets,
    /// What the component imports, for `omnichat plugins check`.
    pub imports: Vec<String>,
    pre: Pre,
}

/// The channel a call is made for: its context for the guest, its secrets for the host.
#[derive(Clone)]
pub struct ChannelCall {
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
    pub external_id: Option<String>,
    /// The configuration with every secret replaced by `"********"`.
    pub config: String,
    pub secrets: ChannelSecrets,
}

pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<CallState>,
    fetcher: Arc<Fetcher>,
    slots: Arc<Semaphore>,
    max_memory_mb: u64,
}

/// Per-call state of a `Store`.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    pub(super) plugin_id: String,
    pub(super) grants: Arc<[String]>,
    pub(super) secrets: ChannelSecrets,
    pub(super) fetcher: Arc<Fetcher>,
    pub(super) deadline: Instant,
    pub(super) channel_id: Option<String>,
    /// Secrets `generate-secret` made in this call (only `connect` may).
    pub(super) generated: Option<Vec<(String, SecretString)>>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and remembers whether the cap was hit, to tell OOM from other traps.
struct MemoryCap {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl PluginRuntime {
    /// One engine for every plugin. `max_memory_mb` bounds any plugin's `memory_limit_mb` (the
    /// pool's slots are sized for it); `cache_dir` holds compiled components across restarts.
    pub fn new(fetcher: Arc<Fetcher>, max_memory_mb: u64, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        let max_memory = usize::try_from(max_memory_mb * 1024 * 1024).unwrap_or(usize::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(CONCURRENT_CALLS)
            .total_core_instances(CONCURRENT_CALLS * 8)
            .total_memories(CONCURRENT_CALLS * 4)
            .total_tables(CONCURRENT_CALLS * 8)
            .total_stacks(CONCURRENT_CALLS)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(max_memory)
            // Resetting the pages a call dirtied is cheaper than faulting them in again on every
            // call (a fresh instance touches its stack and heap at once). With PAGEMAP_SCAN (Linux
            // 6.7+) only the dirty pages of the resident window are reset; elsewhere the whole
            // window is re-zeroed, so it stays small.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(512 * 1024)
            .table_keep_resident(64 * 1024)
            .async_stack_keep_resident(128 * 1024);
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Adapters use no component-model async: skip its per-store bookkeeping.
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = cache_dir {
            // wasmtime's own cache: keyed by the component's bytes, the engine's settings and
            // wasmtime's version, so a stale artifact is never loaded.
            match std::fs::create_dir_all(dir).and_then(|()| std::path::absolute(dir)).map_err(anyhow::Error::from).and_then(
                |dir| {
                    let mut cache = wasmtime::CacheConfig::new();
                    cache.with_directory(dir);
                    wasmtime::Cache::new(cache).map_err(|e| anyhow::anyhow!("{e:#}"))
                },
            ) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "plugin compile cache unavailable; compiling at every start")
                }
            }
        }
        let engine = Engine::new(&config).map_err(|e| wasm_error(e, "cannot start the WebAssembly engine"))?;
        start_epoch_ticker(&engine);

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| wasm_error(e, "cannot link WASI"))?;
        v2::Adapter::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| wasm_error(e, "cannot link the host API"))?;
        v1::Adapter::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| wasm_error(e, "cannot link the 0.1 host API"))?;
        Ok(Self { engine, linker, fetcher, slots: Arc::new(Semaphore::new(CONCURRENT_CALLS as usize)), max_memory_mb })
    }

    /// Compiles (or takes from the cache) and checks a component: it must implement the adapter
    /// world of a version this host loads, and serve the channel type its entry says.
    pub async fn compile(&self, entry: PluginEntry, bytes: &[u8], own_secrets: ChannelSecrets) -> anyhow::Result<Arc<Plugin>> {
        let plugin = self.load_component(entry, bytes, own_secrets).await?;
        if plugin.info.channel_type != plugin.entry.channel_type {
            anyhow::bail!(
                "plugin {} says it serves {} but plugins.toml assigns it {}",
                plugin.entry.id,
                plugin.info.channel_type,
                plugin.entry.channel_type
            );
        }
        tracing::info!(plugin.id = %plugin.entry.id, channel.kind = %plugin.info.channel_type, version = %plugin.info.version,
            wit = plugin.wit_version, "plugin loaded");
        Ok(plugin)
    }

    /// A component as it is, for `omnichat plugins check`: whatever channel type it declares.
    pub async fn inspect(&self, bytes: &[u8]) -> anyhow::Result<Arc<Plugin>> {
        let entry = PluginEntry {
            id: "check".into(),
            channel_type: ChannelType::parse("UNKNOWN")?,
            source: "check".into(),
            allowed_hosts: Vec::new(),
            memory_limit_mb: super::manifest::DEFAULT_MEMORY_LIMIT_MB,
            time_limit_ms: super::manifest::DEFAULT_TIME_LIMIT_MS,
            api_base_url: None,
            env_secrets: Default::default(),
            secret_fields: Vec::new(),
            visitor_transport: false,
        };
        self.load_component(entry, bytes, ChannelSecrets::default()).await
    }

    async fn load_component(&self, entry: PluginEntry, bytes: &[u8], own_secrets: ChannelSecrets) -> anyhow::Result<Arc<Plugin>> {
        let started = Instant::now();
        let id = entry.id.clone();
        let api_base_url = entry.api_base_url.clone();
        if entry.memory_limit_mb > self.max_memory_mb {
            anyhow::bail!(
                "plugin {id}: memory_limit_mb {} is above the {} MiB this process was started with (restart to raise it)",
                entry.memory_limit_mb,
                self.max_memory_mb
            );
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| wasm_error(e, &format!("plugin {id}: not a valid component")))?;
        let imports = component_imports(&self.engine, &component);
        let pre = self.linker.instantiate_pre(&component).map_err(|e| wasm_error(e, &format!("plugin {id}: cannot link")))?;
        let (pre, wit_version) = match v2::AdapterPre::new(pre.clone()) {
            Ok(pre) => (Pre::V2(pre), WIT_VERSIONS[0]),
            Err(current) => match v1::AdapterPre::new(pre) {
                Ok(pre) => (Pre::V1(pre), WIT_VERSIONS[1]),
                Err(_) => {
                    anyhow::bail!(
                        "plugin {id}: does not implement the adapter world of omnichat:channel@{} ({current:#})",
                        WIT_VERSIONS.join(" or @")
                    )
                }
            },
        };
        let mut grants = entry.allowed_hosts.clone();
        if let Some(grant) = api_base_url.as_deref().and_then(base_url_grant) {
            grants.push(grant);
        }
        let placeholder = ChannelTypeInfo {
            channel_type: entry.channel_type.clone(),
            kind: AdapterKind::Plugin,
            plugin_id: id.clone(),
            name: String::new(),
            version: String::new(),
            config_schema: Vec::new(),
            webhook: None,
        };
        let mut plugin = Plugin { entry, info: placeholder, wit_version, grants, api_base_url, own_secrets, imports, pre };
        let info = self.describe(&plugin).await.map_err(|e| anyhow::anyhow!("plugin {id}: describe failed: {e}"))?;
        tracing::debug!(plugin.id = %id, load_ms = started.elapsed().as_millis() as u64, "component compiled and described");
        plugin.info = info;
        Ok(Arc::new(plugin))
    }

    async fn describe(&self, plugin: &Plugin) -> Result<ChannelTypeInfo, anyhow::Error> {
        let entry = &plugin.entry;
        let (name, version, channel_type, schema, mode) = match &plugin.pre {
            Pre::V2(_) => {
                let info = self.call(plugin, None, async |a, s| a.v2().omnichat_channel_describe().call_info(s).await).await?;
                let schema = info
                    .config_schema
                    .into_iter()
                    .map(|f| ConfigField { name: f.name, description: f.description, required: f.required, secret: f.secret })
                    .collect();
                let mode = match info.webhook {
                    v2::omnichat::channel::types::WebhookMode::PerChannel => WebhookMode::PerChannel,
                    v2::omnichat::channel::types::WebhookMode::Shared => WebhookMode::Shared,
                };
                (info.name, info.version, info.channel_type, schema, mode)
            }
            Pre::V1(_) => {
                let info = self.call(plugin, None, async |a, s| a.v1().omnichat_channel_describe().call_info(s).await).await?;
                // 0.1 declares no schema: the manifest names its secret fields.
                let schema = entry
                    .secret_fields
                    .iter()
                    .map(|name| ConfigField { name: name.clone(), description: String::new(), required: false, secret: true })
                    .collect();
                (info.name, info.version, info.channel_type, schema, WebhookMode::PerChannel)
            }
        };
        let channel_type = ChannelType::parse(&channel_type)?;
        // A visitor-transport channel takes no provider webhooks: its visitors use the host's routes.
        let mode = if entry.visitor_transport { WebhookMode::Visitor } else { mode };
        Ok(ChannelTypeInfo {
            webhook: Some(webhook_info(mode, &channel_type)),
            channel_type,
            kind: AdapterKind::Plugin,
            plugin_id: entry.id.clone(),
            name,
            version,
            config_schema: schema,
        })
    }

    /// Shared webhooks: a handshake to answer, or the accounts (channel `externalId`s) a
    /// delivery is for. Only the plugin's own secrets are at hand.
    pub async fn route(&self, plugin: &Plugin, request: &WebhookRequest) -> Result<Result<Routing, ReceiveError>, PluginError> {
        let call = ChannelCall::plugin_only(plugin);
        Ok(match &plugin.pre {
            Pre::V2(_) => {
                use v2::omnichat::channel::types::Routing as R;
                let request = v2::request(request);
                let routed = self
                    .call(plugin, Some(call), async |a, s| a.v2().omnichat_channel_inbound().call_route(s, &request).await)
                    .await?;
                routed.map_err(v2::refusal).map(|routing| match routing {
                    R::Answer(r) => Routing::Answer(WebhookResponse {
                        status: r.status,
                        headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
                        body: r.body,
                    }),
                    R::Accounts(accounts) => Routing::Accounts(accounts),
                })
            }
            Pre::V1(_) => {
                let request = v1::request(request);
                let accounts = self
                    .call(plugin, Some(call), async |a, s| a.v1().omnichat_channel_inbound().call_accounts(s, &request).await)
                    .await?;
                accounts.map(Routing::Accounts).map_err(v1::refusal)
            }
        })
    }

    /// Verifies a webhook for a channel and maps it, in ONE fresh instance.
    pub async fn receive(
        &self,
        plugin: &Plugin,
        call: ChannelCall,
        request: &WebhookRequest,
    ) -> Result<Result<WebhookOutcome, ReceiveError>, PluginError> {
        let (tenant_id, channel_id) = (call.tenant_id, call.channel_id);
        match &plugin.pre {
            Pre::V2(_) => {
                let context = v2::context(plugin.api_base_url.clone(), &call);
                let request = v2::request(request);
                let result = self
                    .call(plugin, Some(call), async |a, s| {
                        a.v2().omnichat_channel_inbound().call_receive(s, &context, &request).await
                    })
                    .await?;
                Ok(result.map_err(v2::refusal).map(|outcome| WebhookOutcome {
                    messages: outcome.messages.into_iter().map(|m| v2::message_in(tenant_id, channel_id, m)).collect(),
                    receipts: outcome.receipts.into_iter().map(v2_receipt).collect(),
                    response: outcome.response.map(|r| WebhookResponse {
                        status: r.status,
                        headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
                        body: r.body,
                    }),
                }))
            }
            Pre::V1(_) => {
                let context = v1::context(plugin.api_base_url.clone(), &call);
                let request = v1::request(request);
                let result = self
                    .call(plugin, Some(call), async |a, s| {
                        let inbound = a.v1().omnichat_channel_inbound();
                        if let Err(refused) = inbound.call_verify(&mut *s, &context, &request).await? {
                            return Ok(Err(v1::refusal(refused)));
                        }
                        Ok(match inbound.call_normalize(s, &context, &request).await? {
                            Ok(messages) => Ok(messages),
                            Err(e) => Err(ReceiveError::BadRequest(e.message)),
                        })
                    })
                    .await?;
                Ok(result.map(|messages| WebhookOutcome {
                    messages: messages.into_iter().map(|m| v1::message_in(tenant_id, channel_id, m)).collect(),
                    ..Default::default()
                }))
            }
        }
    }

    /// The content of an inbound attachment (the stored JSON `{kind, url, mimeType, fileName,
    /// size, extra}`), fetched by the plugin; the adapter's reason (scrubbed) when it cannot.
    pub async fn download(
        &self,
        plugin: &Plugin,
        call: ChannelCall,
        attachment: &Value,
    ) -> Result<Result<Media, String>, PluginError> {
        let Pre::V2(_) = &plugin.pre else {
            return Ok(Err(format!("plugin {} (WIT 0.1.0) cannot download media", plugin.entry.id)));
        };
        use v2::omnichat::channel::types as t;
        let secrets = call.secrets.clone();
        let context = v2::context(plugin.api_base_url.clone(), &call);
        let text = |key: &str| attachment[key].as_str().map(str::to_owned);
        let attachment = t::Attachment {
            kind: v2::kind_out(AttachmentKind::parse(attachment["kind"].as_str().unwrap_or_default())),
            url: text("url"),
            mime_type: text("mimeType"),
            file_name: text("fileName"),
            size: attachment["size"].as_u64(),
            extra: attachment.get("extra").filter(|e| !e.is_null()).map(Value::to_string).unwrap_or_else(|| "{}".into()),
        };
        let result = self
            .call(plugin, Some(call), async |a, s| {
                a.v2().omnichat_channel_inbound().call_download(s, &context, &attachment).await
            })
            .await?;
        Ok(result
            .map(|m| Media { bytes: m.body, mime_type: m.content_type, file_name: m.file_name })
            .map_err(|e| secrets.scrub(&e.message)))
    }

    /// Delivers one reply: the provider's id, or why not. Error texts are scrubbed of secrets.
    pub async fn send(
        &self,
        plugin: &Plugin,
        call: ChannelCall,
        message: &OutboundMessage,
    ) -> Result<Result<String, SendFailure>, PluginError> {
        let secrets = call.secrets.clone();
        let result = match &plugin.pre {
            Pre::V2(_) => {
                let context = v2::context(plugin.api_base_url.clone(), &call);
                let message = v2::outbound(message);
                self.call(plugin, Some(call), async |a, s| {
                    a.v2().omnichat_channel_outbound().call_send(s, &context, &message).await
                })
                .await?
                .map(|r| r.provider_message_id)
                .map_err(v2::send_failure)
            }
            Pre::V1(_) => {
                let context = v1::context(plugin.api_base_url.clone(), &call);
                let message = v1::outbound(message);
                self.call(plugin, Some(call), async |a, s| {
                    a.v1().omnichat_channel_outbound().call_send(s, &context, &message).await
                })
                .await?
                .map(|r| r.provider_message_id)
                .map_err(v1::send_failure)
            }
        };
        Ok(result.map_err(|failure| match failure {
            SendFailure::Transient(why) => SendFailure::Transient(secrets.scrub(&why)),
            SendFailure::Permanent(why) => SendFailure::Permanent(secrets.scrub(&why)),
            other => other,
        }))
    }

    /// `connect`: `Ok(generated secrets)` or the adapter's reason (scrubbed).
    pub async fn connect(
        &self,
        plugin: &Plugin,
        call: ChannelCall,
        webhook_url: Option<&str>,
    ) -> Result<Result<Vec<(String, SecretString)>, String>, PluginError> {
        let Pre::V2(_) = &plugin.pre else { return Ok(Ok(Vec::new())) };
        let secrets = call.secrets.clone();
        let context = v2::context(plugin.api_base_url.clone(), &call);
        let url = webhook_url.map(str::to_owned);
        let (result, generated) = self
            .call_generating(plugin, call, async |a, s| {
                a.v2().omnichat_channel_lifecycle().call_connect(s, &context, url.as_deref()).await
            })
            .await?;
        Ok(result.map(|()| generated).map_err(|e| secrets.scrub(&e.message)))
    }

    pub async fn disconnect(&self, plugin: &Plugin, call: ChannelCall) -> Result<Result<(), String>, PluginError> {
        let Pre::V2(_) = &plugin.pre else { return Ok(Ok(())) };
        let secrets = call.secrets.clone();
        let context = v2::context(plugin.api_base_url.clone(), &call);
        let result = self
            .call(plugin, Some(call), async |a, s| a.v2().omnichat_channel_lifecycle().call_disconnect(s, &context).await)
            .await?;
        Ok(result.map_err(|e| secrets.scrub(&e.message)))
    }

    async fn call<R>(
        &self,
        plugin: &Plugin,
        channel: Option<ChannelCall>,
        f: impl AsyncFnOnce(&Instance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.run(plugin, channel, false, f).await.map(|(value, _)| value)
    }

    async fn call_generating<R>(
        &self,
        plugin: &Plugin,
        channel: ChannelCall,
        f: impl AsyncFnOnce(&Instance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Vec<(String, SecretString)>), PluginError> {
        self.run(plugin, Some(channel), true, f).await
    }

    /// One call in a fresh store, under the plugin's limits.
    async fn run<R>(
        &self,
        plugin: &Plugin,
        channel: Option<ChannelCall>,
        may_generate: bool,
        f: impl AsyncFnOnce(&Instance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Vec<(String, SecretString)>), PluginError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| PluginError::Trap { plugin: plugin.entry.id.clone(), message: "runtime closed".into() })?;
        let limit = Duration::from_millis(plugin.entry.time_limit_ms);
        let deadline = Instant::now() + limit;
        let channel_id = channel.as_ref().map(|c| c.channel_id.to_string());
        let state = CallState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: (plugin.entry.memory_limit_mb * 1024 * 1024) as usize, hit: false },
            plugin_id: plugin.entry.id.clone(),
            grants: plugin.grants.clone().into(),
            secrets: channel.map(|c| c.secrets).unwrap_or_default(),
            fetcher: self.fetcher.clone(),
            deadline,
            channel_id,
            generated: may_generate.then(Vec::new),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield each tick so a long guest shares its worker thread.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let run = async {
            let instance = match &plugin.pre {
                Pre::V2(pre) => Instance::V2(pre.instantiate_async(&mut store).await?),
                Pre::V1(pre) => Instance::V1(pre.instantiate_async(&mut store).await?),
            };
            f(&instance, &mut store).await
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(limit, run).await;
        let id = plugin.entry.id.clone();
        metrics::histogram!("omnichat_plugin_call_duration_seconds", "plugin" => id.clone())
            .record(started.elapsed().as_secs_f64());
        let ok = matches!(outcome, Ok(Ok(_)));
        metrics::counter!("omnichat_plugin_calls_total", "plugin" => id.clone(), "outcome" => if ok { "ok" } else { "error" })
            .increment(1);
        let error = match outcome {
            Ok(Ok(value)) => return Ok((value, store.data_mut().generated.take().unwrap_or_default())),
            Err(_) => PluginError::Timeout { plugin: id, limit_ms: plugin.entry.time_limit_ms },
            Ok(Err(err)) if store.data().limiter.hit => {
                tracing::debug!(error = %err, "trap after memory cap");
                PluginError::OutOfMemory { plugin: id, limit_mb: plugin.entry.memory_limit_mb }
            }
            Ok(Err(err)) if matches!(err.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) => {
                PluginError::Timeout { plugin: id, limit_ms: plugin.entry.time_limit_ms }
            }
            Ok(Err(err)) => PluginError::Trap { plugin: id, message: store.data().secrets.scrub(&format!("{err:#}")) },
        };
        tracing::warn!(plugin.id = %plugin.entry.id, error = %error, "plugin call failed");
        Err(error)
    }
}

impl ChannelCall {
    /// A call about no channel: only the plugin's own secrets.
    fn plugin_only(plugin: &Plugin) -> Self {
        Self {
            tenant_id: Uuid::nil(),
            channel_id: Uuid::nil(),
            external_id: None,
            config: "{}".into(),
            secrets: plugin.own_secrets.clone(),
        }
    }
}

/// An instance of either contract version.
enum Instance {
    V2(v2::Adapter),
    V1(v1::Adapter),
}

impl Instance {
    /// Only called on the version the plugin was loaded as.
    fn v2(&self) -> &v2::Adapter {
        match self {
            Instance::V2(adapter) => adapter,
            Instance::V1(_) => unreachable!("a 0.1 plugin is never called through the 0.2 bindings"),
        }
    }

    fn v1(&self) -> &v1::Adapter {
        match self {
            Instance::V1(adapter) => adapter,
            Instance::V2(_) => unreachable!("a 0.2 plugin is never called through the 0.1 bindings"),
        }
    }
}

fn v2_receipt(receipt: v2::omnichat::channel::types::Receipt) -> Receipt {
    use v2::omnichat::channel::types::ReceiptStatus as S;
    Receipt {
        status: match receipt.status {
            S::Delivered => ReceiptStatus::Delivered,
            S::Read => ReceiptStatus::Read,
        },
        provider_message_ids: receipt.provider_message_ids,
        external_user_id: receipt.external_user_id,
        up_to: receipt.up_to_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
    }
}

/// The fields of a normalized message, whichever contract version produced it.
pub(super) struct Normalized {
    external_user_id: String,
    external_conversation_id: Option<String>,
    provider_message_id: Option<String>,
    sender_name: Option<String>,
    sender_username: Option<String>,
    text: Option<String>,
    attachments: Vec<Value>,
    sent_at_ms: Option<i64>,
    raw: String,
}

pub(super) fn attachment_json(
    kind: AttachmentKind,
    url: Option<String>,
    mime_type: Option<String>,
    file_name: Option<String>,
    size: Option<u64>,
    extra: &str,
) -> Value {
    json!({
        "kind": kind.as_str(),
        "url": url,
        "mimeType": mime_type,
        "fileName": file_name,
        "size": size,
        "extra": serde_json::from_str::<Value>(extra).unwrap_or(Value::Null),
    })
}

/// The seed's `InboundMessagePayload`, from an adapter's normalized message.
pub(super) fn to_payload(tenant_id: Uuid, channel_id: Uuid, m: Normalized) -> NewInboundMessage {
    NewInboundMessage {
        tenant_id,
        channel_instance_id: channel_id,
        external_user_id: m.external_user_id,
        external_conversation_id: m.external_conversation_id,
        provider_message_id: m.provider_message_id,
        sender_name: m.sender_name,
        sender_username: m.sender_username,
        text: m.text,
        attachments: Value::Array(m.attachments),
        raw: serde_json::from_str(&m.raw).unwrap_or(Value::String(m.raw)),
        sent_at: m.sent_at_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        direction: MessageDirection::Inbound,
    }
}

/// The names of what a component imports (`omnichat:channel/host@0.2.0`, `wasi:io/...`).
fn component_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component.component_type().imports(engine).map(|(name, _)| name.to_owned()).collect()
}

fn wasm_error(err: wasmtime::Error, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {err:#}")
}

/// `https://api.telegram.org` -> `api.telegram.org:443`.
fn base_url_grant(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

/// Advances the engine's epoch from a thread of its own, so a guest spinning on every async
/// worker still meets its deadline. The thread ends with the engine.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .ok();
}
