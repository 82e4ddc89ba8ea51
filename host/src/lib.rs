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

/// The allocator the `omnichat` binary and the benchmarks run on: glibc's malloc and free were
/// about 12% of the host's CPU on the inbound webhook path (BENCHMARKS.md).
pub use mimalloc::MiMalloc as Allocator;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
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
    let plugins = load_plugins(&config).await?;
    let tokens = auth::tokens::TokenService::new(&config.jwt);
    let realtime = realtime::Realtime::new(&config.socket_path, tokens.clone(), store.clone());
    Ok(AppState(Arc::new(App {
        tokens,
        realtime,
        plugins: Arc::new(plugins),
        auto_reply: Arc::new(agents::NoAutoReply),
        queue: Default::default(),
        telegram: bridges::telegram::TelegramBridge::new(connectors.telegram),
        whatsapp: bridges::whatsapp::WhatsAppBridge::new(connectors.whatsapp),
        secrets: crypto::SecretBox::new(&config.secret_key),
        login_throttle: Default::default(),
        started_at: Instant::now(),
        store,
        config,
    })))
}

/// Compiles the adapters named by plugins.toml (or the built-in ones).
pub async fn load_plugins(config: &Config) -> anyhow::Result<plugins::PluginRuntime> {
    let manifest = match &config.plugins_manifest {
        Some(path) => plugins::manifest::Manifest::load(path)?,
        None => plugins::manifest::Manifest::builtin(),
    };
    let providers = &config.providers;
    let base_urls = std::collections::HashMap::from([
        (store::ChannelType::TelegramBot, providers.telegram_api_base_url.clone()),
        (store::ChannelType::Facebook, providers.facebook_graph_base_url.clone()),
    ]);
    let fetcher = plugins::fetch::Fetcher::new(providers.allow_private_fetch)?;
    plugins::PluginRuntime::load(&manifest, &base_urls, fetcher).await.context("cannot load the plugins")
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
    let bridges = state.config.bridges.enabled.then(|| tokio::spawn(bridges::supervise(state.clone(), worker_stopped)));
    tracing::info!(addr = %listener.local_addr()?, "omnichat listening");
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("http server failed");
    // The worker finishes or hands back its claimed jobs, and the bridges their sessions, before the pool closes.
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(bridges) = bridges {
        let _ = bridges.await;
    }
    state.store.close().await;
    served
}
