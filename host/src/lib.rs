//! OmniChat: a multi-tenant omnichannel messaging gateway.
//!
//! [`build`] turns a [`Config`] into an [`App`] (database connected and migrated); [`serve`]
//! runs it on an already-bound listener until the shutdown future resolves.
#![forbid(unsafe_code)]

pub mod agents;
pub mod auth;
pub mod bridges;
pub mod channels;
pub mod config;
pub mod conversations;
pub mod crypto;
pub mod error;
pub mod http;
pub mod inbound;
pub mod outbound;
pub mod plugins;
pub mod realtime;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod validate;
pub mod visitors;
pub mod webhooks;

/// The allocator the `omnichat` binary and the benchmarks run on: glibc's malloc and free were
/// about 12% of the host's CPU on the inbound webhook path (BENCHMARKS.md).
pub use mimalloc::MiMalloc as Allocator;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::{App, AppState};

/// How the native bridges reach their providers: the real clients, or a test's scripted ones.
pub struct Connectors {
    pub telegram: Arc<dyn bridges::telegram::client::TelegramConnector>,
    pub whatsapp: Arc<dyn bridges::whatsapp::client::WhatsAppConnector>,
}

impl Default for Connectors {
    fn default() -> Self {
        Self {
            telegram: Arc::new(bridges::telegram::client::GrammersConnector),
            whatsapp: Arc::new(bridges::whatsapp::client::RustConnector),
        }
    }
}

/// Connects the store, runs migrations and assembles the application.
pub async fn build(config: Config) -> anyhow::Result<AppState> {
    build_with(config, Connectors::default()).await
}

/// [`build`] with the bridges' provider clients given.
pub async fn build_with(config: Config, connectors: Connectors) -> anyhow::Result<AppState> {
    let store = store::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", config::redact_url(&config.database_url)))?;
    store.migrate().await.context("cannot migrate the database")?;
    // The metrics recorder, before anything records.
    http::metrics::handle();
    if config.public_url.as_deref().is_some_and(|url| url.starts_with("https://")) && !config.visitors.trust_forwarded_for {
        tracing::warn!(
            "OMNICHAT_PUBLIC_URL is https but OMNICHAT_TRUST_FORWARDED_FOR is off: behind a TLS proxy every widget visitor shares the proxy's address and its rate limits"
        );
    }
    let tokens = auth::tokens::TokenService::new(&config.jwt);
    let webhooks = webhooks::Webhooks::default();
    let bus = match &config.redis_url {
        Some(url) => realtime::bus::Bus::redis(url.expose_secret()).await?,
        None => realtime::bus::Bus::default(),
    };
    let realtime = realtime::Realtime::new(
        realtime::RealtimeConfig {
            socket_path: &config.socket_path,
            buffer: config.socket_buffer,
            ping_interval: config.socket_ping_interval,
            ping_timeout: config.socket_ping_timeout,
            bus,
            prefix: config.redis_prefix.clone(),
        },
        tokens.clone(),
        store.clone(),
        config.public_url.clone(),
        webhooks.waker(),
    )
    .await?;
    let secrets = crypto::SecretBox::new(&config.secret_key);
    let status = channels::StatusSink::new(store.clone(), realtime.clone());
    let agent_wake = Arc::new(tokio::sync::Notify::new());
    let inbound =
        inbound::service::Inbound::new(store.clone(), realtime.clone(), Arc::new(agents::WakeRunner(agent_wake.clone())));
    let fetcher = plugins::fetch::Fetcher::new(config.providers.allow_private_fetch)?;
    let models = agents::llm::ModelClient::new(&config.agents, fetcher.http_client())?;

    let registry = Arc::new(channels::ChannelRegistry::default());
    let bridge_deps = bridges::BridgeDeps {
        store: store.clone(),
        secrets: secrets.clone(),
        realtime: realtime.clone(),
        status: status.clone(),
        inbound: inbound.clone(),
        fetcher: fetcher.clone(),
        config: config.bridges.clone(),
    };
    let replica = bridges::replica_id();
    let telegram = Arc::new(bridges::telegram::TelegramBridge::new(connectors.telegram, replica.clone()));
    let whatsapp = Arc::new(bridges::whatsapp::WhatsAppBridge::new(connectors.whatsapp, replica));
    registry.add_bridge(Arc::new(bridges::telegram::adapter::TelegramUserAdapter::new(telegram.clone(), bridge_deps.clone())));
    registry.add_bridge(Arc::new(bridges::whatsapp::adapter::WhatsAppAdapter::new(whatsapp.clone(), bridge_deps.clone())));

    let plugin_deps = plugins::adapter::PluginDeps {
        store: store.clone(),
        secrets: secrets.clone(),
        status: status.clone(),
        public_url: config.public_url.clone(),
    };
    let plugins = Arc::new(plugin_host(&config, fetcher, registry.clone(), plugin_deps)?);
    plugins.load().await.context("cannot load the plugins")?;
    Ok(AppState(Arc::new(App {
        tokens,
        realtime,
        channels: registry,
        plugins,
        inbound,
        status,
        queue: Default::default(),
        webhooks,
        agent_wake,
        models,
        telegram,
        whatsapp,
        bridge_deps,
        secrets,
        login_throttle: Default::default(),
        visitor_limits: visitors::VisitorLimits::new(&config.visitors),
        started_at: Instant::now(),
        store,
        config,
    })))
}

/// The plugin runtime (compiled components cached under the data dir) and the loader of the
/// plugins plugins.toml names.
pub fn plugin_host(
    config: &Config,
    fetcher: Arc<plugins::fetch::Fetcher>,
    registry: Arc<channels::ChannelRegistry>,
    deps: plugins::adapter::PluginDeps,
) -> anyhow::Result<plugins::PluginHost> {
    let runtime = plugin_runtime(config, fetcher)?;
    Ok(plugins::PluginHost::new(Arc::new(runtime), config.plugins_manifest.clone(), config.providers.clone(), registry, deps))
}

/// The plugin runtime, its compiled components cached in the data dir (shared by the server and
/// the `plugins` commands).
pub fn plugin_runtime(config: &Config, fetcher: Arc<plugins::fetch::Fetcher>) -> anyhow::Result<plugins::PluginRuntime> {
    let cache = config.data_dir.join("plugin-cache");
    plugins::PluginRuntime::new(fetcher, plugins::manifest::MAX_MEMORY_LIMIT_MB, Some(&cache))
}

/// Connections waiting to be accepted. std and tokio's `bind` ask for 128, too few when
/// thousands of Socket.IO clients reconnect at once (after a deploy): past it the kernel drops
/// their SYNs and each waits for a retransmit (1 s, 3 s, 7 s...). The kernel caps it at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// The server's listening socket on `host:port`.
pub fn listen(host: std::net::IpAddr, port: u16) -> std::io::Result<TcpListener> {
    let addr = std::net::SocketAddr::new(host, port);
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As std's `bind`: a restarted server may listen while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves HTTP on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = http::router::router(state.clone());
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = state.config.queue.worker.then(|| tokio::spawn(outbound::worker::run(state.clone(), worker_stopped.clone())));
    let agents = state
        .config
        .agents
        .runner
        .then(|| tokio::spawn(agents::runner::run(state.clone(), state.models.clone(), worker_stopped.clone())));
    let webhooks =
        state.config.webhooks.worker.then(|| tokio::spawn(webhooks::dispatcher::run(state.clone(), worker_stopped.clone())));
    let watcher = tokio::spawn(state.plugins.clone().watch(worker_stopped.clone()));
    let bridges = state.config.bridges.enabled.then(|| {
        tokio::spawn(bridges::supervise(
            state.bridge_deps.clone(),
            state.telegram.owner().to_owned(),
            state.telegram.clone(),
            state.whatsapp.clone(),
            worker_stopped,
        ))
    });
    tracing::info!(addr = %listener.local_addr()?, "omnichat listening");
    let served = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("http server failed");
    // The worker finishes or hands back its claimed jobs, and the bridges their sessions, before the pool closes.
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(bridges) = bridges {
        let _ = bridges.await;
    }
    if let Some(agents) = agents {
        let _ = agents.await;
    }
    if let Some(webhooks) = webhooks {
        let _ = webhooks.await;
    }
    let _ = watcher.await;
    state.store.close().await;
    served
}
