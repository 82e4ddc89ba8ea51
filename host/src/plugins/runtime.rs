//! Compiles each adapter once (one `Engine`, one `InstancePre` per plugin, pooling allocator) and
//! runs every call in a fresh `Store` with a memory cap and a wall-clock deadline enforced twice:
//! by epoch interruption while the guest computes, and by a timeout around the whole call while
//! it waits on the host. A plugin that traps, loops or exhausts memory fails that call alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::fetch::{ChannelSecrets, Fetcher};
use super::manifest::{Manifest, PluginEntry};
use crate::store::ChannelType;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

pub use exports::omnichat::channel::inbound::{InboundMessage, VerifyError};
pub use omnichat::channel::types::{
    Attachment, AttachmentKind, ChannelContext, Header, OutboundAttachment, OutboundMessage, PluginInfo, SendError, SendReceipt,
    WebhookRequest,
};

/// How often the epoch ticks: the granularity of deadlines and of yielding to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Calls that may run at once; more wait for a slot.
const CONCURRENT_CALLS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin serves channel type {0}")]
    NoPlugin(ChannelType),
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

/// A loaded adapter.
pub struct Plugin {
    pub entry: PluginEntry,
    pub info: PluginInfo,
    /// `allowed_hosts` plus the host of the configured provider base URL.
    pub grants: Vec<String>,
    pub api_base_url: Option<String>,
    pre: AdapterPre<CallState>,
}

pub struct PluginRuntime {
    engine: Engine,
    plugins: HashMap<ChannelType, Arc<Plugin>>,
    fetcher: Arc<Fetcher>,
    slots: Arc<Semaphore>,
}

impl PluginRuntime {
    /// The guarded HTTP client (no private addresses unless allowed, no redirects, size cap),
    /// also used by the native bridges to fetch media from user-given URLs.
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }
}

/// Per-call state of a `Store`.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    pub(super) plugin: Arc<Plugin>,
    pub(super) secrets: ChannelSecrets,
    pub(super) fetcher: Arc<Fetcher>,
    pub(super) deadline: Instant,
    pub(super) channel_id: Option<String>,
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

/// The channel a call is made for: its context for the guest, its secrets for the host.
#[derive(Clone)]
pub struct ChannelCall {
    pub context: ChannelContext,
    pub secrets: ChannelSecrets,
}

impl PluginRuntime {
    /// Compiles every plugin of the manifest. `api_base_urls` are the configured provider base
    /// URLs; each is granted to the plugin of its channel type and passed to it.
    pub async fn load(
        manifest: &Manifest,
        api_base_urls: &HashMap<ChannelType, String>,
        fetcher: Arc<Fetcher>,
    ) -> anyhow::Result<Self> {
        let max_memory_mb = manifest.plugins.iter().map(|p| p.memory_limit_mb).max().unwrap_or(32);
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
        let engine = Engine::new(&config).map_err(|e| wasm_error(e, "cannot start the WebAssembly engine"))?;
        start_epoch_ticker(&engine);

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| wasm_error(e, "cannot link WASI"))?;
        Adapter::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| wasm_error(e, "cannot link the host API"))?;

        let mut runtime =
            Self { engine, plugins: HashMap::new(), fetcher, slots: Arc::new(Semaphore::new(CONCURRENT_CALLS as usize)) };
        for entry in &manifest.plugins {
            let bytes = match entry.source.as_str() {
                "builtin" => super::embedded::by_id(&entry.id)
                    .with_context(|| format!("plugin {}: there is no built-in plugin with this id", entry.id))?
                    .to_vec(),
                path => std::fs::read(path).with_context(|| format!("plugin {}: cannot read {path}", entry.id))?,
            };
            let api_base_url = api_base_urls.get(&entry.channel_type).map(|u| u.trim_end_matches('/').to_owned());
            runtime.add(entry.clone(), &bytes, api_base_url, &linker).await?;
        }
        Ok(runtime)
    }

    async fn add(
        &mut self,
        entry: PluginEntry,
        bytes: &[u8],
        api_base_url: Option<String>,
        linker: &Linker<CallState>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let id = entry.id.as_str();
        let component =
            Component::new(&self.engine, bytes).map_err(|e| wasm_error(e, &format!("plugin {id}: not a valid component")))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| wasm_error(e, &format!("plugin {id}: cannot link")))?;
        let pre =
            AdapterPre::new(pre).map_err(|e| wasm_error(e, &format!("plugin {id}: does not implement the adapter world")))?;
        let mut grants = entry.allowed_hosts.clone();
        if let Some(grant) = api_base_url.as_deref().and_then(base_url_grant) {
            grants.push(grant);
        }
        let placeholder =
            PluginInfo { id: entry.id.clone(), name: String::new(), version: String::new(), channel_type: String::new() };
        let mut plugin = Plugin { entry, info: placeholder, grants, api_base_url, pre };
        let describing = Arc::new(Plugin {
            pre: plugin.pre.clone(),
            entry: plugin.entry.clone(),
            info: plugin.info.clone(),
            grants: Vec::new(),
            api_base_url: None,
        });
        let info = self
            .call(describing, None, async |adapter, store| adapter.omnichat_channel_describe().call_info(store).await)
            .await
            .with_context(|| format!("plugin {}: describe failed", plugin.entry.id))?;
        if info.channel_type != plugin.entry.channel_type.as_str() {
            anyhow::bail!(
                "plugin {} says it serves {} but plugins.toml assigns it {}",
                plugin.entry.id,
                info.channel_type,
                plugin.entry.channel_type
            );
        }
        tracing::info!(plugin.id = %plugin.entry.id, channel.kind = %plugin.entry.channel_type, version = %info.version,
            compile_ms = started.elapsed().as_millis() as u64, "plugin loaded");
        plugin.info = info;
        self.plugins.insert(plugin.entry.channel_type, Arc::new(plugin));
        Ok(())
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    pub fn plugin(&self, channel_type: ChannelType) -> Result<&Arc<Plugin>, PluginError> {
        self.plugins.get(&channel_type).ok_or(PluginError::NoPlugin(channel_type))
    }

    pub async fn accounts(
        &self,
        channel_type: ChannelType,
        request: &WebhookRequest,
    ) -> Result<Result<Vec<String>, VerifyError>, PluginError> {
        let plugin = self.plugin(channel_type)?.clone();
        self.call(plugin, None, async |adapter, store| adapter.omnichat_channel_inbound().call_accounts(store, request).await)
            .await
    }

    pub async fn normalize(
        &self,
        channel_type: ChannelType,
        call: ChannelCall,
        request: &WebhookRequest,
    ) -> Result<Vec<InboundMessage>, PluginError> {
        let plugin = self.plugin(channel_type)?.clone();
        let id = plugin.entry.id.clone();
        let context = call.context.clone();
        let result = self
            .call(plugin, Some(call), async |adapter, store| {
                adapter.omnichat_channel_inbound().call_normalize(store, &context, request).await
            })
            .await?;
        result.map_err(|e| PluginError::Adapter { plugin: id, message: e.message })
    }

    /// `verify`, then (when it passes) `normalize`, in ONE fresh instance: the webhook path of a
    /// channel whose request is its own (one instantiation per delivery, not two).
    pub async fn receive(
        &self,
        channel_type: ChannelType,
        call: ChannelCall,
        request: &WebhookRequest,
    ) -> Result<Result<Vec<InboundMessage>, VerifyError>, PluginError> {
        let plugin = self.plugin(channel_type)?.clone();
        let id = plugin.entry.id.clone();
        let context = call.context.clone();
        let result = self
            .call(plugin, Some(call), async |adapter, store| {
                let inbound = adapter.omnichat_channel_inbound();
                if let Err(refused) = inbound.call_verify(&mut *store, &context, request).await? {
                    return Ok(Err(refused));
                }
                Ok(Ok(inbound.call_normalize(store, &context, request).await?))
            })
            .await?;
        match result {
            Err(refused) => Ok(Err(refused)),
            Ok(normalized) => normalized.map(Ok).map_err(|e| PluginError::Adapter { plugin: id, message: e.message }),
        }
    }

    pub async fn send(
        &self,
        channel_type: ChannelType,
        call: ChannelCall,
        message: &OutboundMessage,
    ) -> Result<Result<SendReceipt, SendError>, PluginError> {
        let plugin = self.plugin(channel_type)?.clone();
        let context = call.context.clone();
        self.call(plugin, Some(call), async |adapter, store| {
            adapter.omnichat_channel_outbound().call_send(store, &context, message).await
        })
        .await
    }

    /// One call in a fresh store, under the plugin's limits.
    async fn call<R>(
        &self,
        plugin: Arc<Plugin>,
        channel: Option<ChannelCall>,
        f: impl AsyncFnOnce(&Adapter, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| PluginError::Trap { plugin: plugin.entry.id.clone(), message: "runtime closed".into() })?;
        let limit = Duration::from_millis(plugin.entry.time_limit_ms);
        let deadline = Instant::now() + limit;
        let channel_id = channel.as_ref().map(|c| c.context.channel_instance_id.clone());
        let state = CallState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: (plugin.entry.memory_limit_mb * 1024 * 1024) as usize, hit: false },
            plugin: plugin.clone(),
            secrets: channel.map(|c| c.secrets).unwrap_or_default(),
            fetcher: self.fetcher.clone(),
            deadline,
            channel_id,
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
            let adapter = plugin.pre.instantiate_async(&mut store).await?;
            f(&adapter, &mut store).await
        };
        let outcome = tokio::time::timeout(limit, run).await;
        let id = plugin.entry.id.clone();
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => PluginError::Timeout { plugin: id, limit_ms: plugin.entry.time_limit_ms },
            Ok(Err(err)) if store.data().limiter.hit => {
                tracing::debug!(error = %err, "trap after memory cap");
                PluginError::OutOfMemory { plugin: id, limit_mb: plugin.entry.memory_limit_mb }
            }
            Ok(Err(err)) if matches!(err.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) => {
                PluginError::Timeout { plugin: id, limit_ms: plugin.entry.time_limit_ms }
            }
            Ok(Err(err)) => PluginError::Trap { plugin: id, message: format!("{err:#}") },
        };
        tracing::warn!(plugin.id = %plugin.entry.id, error = %error, "plugin call failed");
        Err(error)
    }
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
