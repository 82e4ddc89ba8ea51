//! The `omnichat` binary: `serve` (the default), `migrate`, and `plugins list|check`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use omnichat::Config;

#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

#[derive(Parser)]
#[command(name = "omnichat", version, about = "Multi-tenant omnichannel messaging gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// The channel adapter plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Compile the plugins of plugins.toml (or the built-in ones) and show what loaded.
    List,
    /// Load a component, check it implements the adapter world (0.1 or 0.2), and show what it
    /// declares: its info, config schema, webhook route and imports.
    Check {
        /// The `.wasm` component.
        file: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let purge_delay = purge_freed_memory_at_once();
    omnichat::telemetry::init();
    let cli = Cli::parse();
    let config = Config::load()?;
    tracing::info!(?config, "configuration loaded");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            omnichat::build(config).await?;
            tracing::info!("migrations applied");
        }
        Command::Plugins { command: PluginsCommand::List } => {
            let runtime = plugin_runtime(&config)?;
            let manifest = omnichat::plugins::loader::manifest(config.plugins_manifest.as_deref())?;
            let mut plugins = omnichat::plugins::loader::compile_all(&runtime, &manifest, &config.providers).await?;
            plugins.sort_by(|a, b| a.0.entry.id.cmp(&b.0.entry.id));
            println!(
                "{:<16} {:<14} {:<9} {:<5} {:<10} {:>7} {:>8}  allowed hosts",
                "id", "channel type", "version", "wit", "source", "memory", "time"
            );
            for (plugin, _) in plugins {
                let entry = &plugin.entry;
                println!(
                    "{:<16} {:<14} {:<9} {:<5} {:<10} {:>5}MiB {:>6}ms  {}",
                    entry.id,
                    entry.channel_type,
                    plugin.info.version,
                    plugin.wit_version,
                    if entry.source == "builtin" { "builtin" } else { "file" },
                    entry.memory_limit_mb,
                    entry.time_limit_ms,
                    plugin.grants.join(", ")
                );
            }
        }
        Command::Plugins { command: PluginsCommand::Check { file } } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let runtime = plugin_runtime(&config)?;
            let plugin = runtime.inspect(&bytes).await.with_context(|| format!("{} is not a usable adapter", file.display()))?;
            let info = &plugin.info;
            println!("{}: an OmniChat channel adapter (omnichat:channel@{})", file.display(), plugin.wit_version);
            println!("  id:           {}", info.plugin_id);
            println!("  name:         {}", info.name);
            println!("  version:      {}", info.version);
            println!("  channel type: {}", info.channel_type);
            match &info.webhook {
                Some(webhook) => println!("  webhook:      {} at {}", webhook.mode.as_str(), webhook.path),
                None => println!("  webhook:      none"),
            }
            println!("  config schema:");
            if info.config_schema.is_empty() {
                println!("    (none declared)");
            }
            for field in &info.config_schema {
                let flags = match (field.required, field.secret) {
                    (true, true) => "required, secret",
                    (true, false) => "required",
                    (false, true) => "optional, secret",
                    (false, false) => "optional",
                };
                println!("    {:<24} {:<18} {}", field.name, flags, field.description);
            }
            println!("  imports:");
            for import in &plugin.imports {
                println!("    {import}");
            }
        }
        Command::Serve => {
            let listener = omnichat::listen(config.host, config.port)
                .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
            let state = omnichat::build(config).await?;
            started(purge_delay);
            omnichat::serve(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// While starting, memory is freed at once instead of after mimalloc's purge delay: what start-up
/// frees (loading the plugins, building the routes and the OpenAPI document) would otherwise stay
/// resident while the server idles, since mimalloc purges lazily, on later allocations (about
/// 4 MB; BENCHMARKS.md, idle memory). Returns the delay to restore.
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() -> std::os::raw::c_long {
    // SAFETY: reading and setting one of mimalloc's options; no pointers involved.
    unsafe {
        let delay = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        delay
    }
}

/// `mi_option_purge_delay` of mimalloc.h's `mi_option_e` (the same in mimalloc 2 and 3; the
/// -sys crate does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Start-up is over: freed memory goes back after the usual delay again, so that memory freed and
/// soon reused under load is not returned and faulted back in each time.
#[allow(unsafe_code)]
fn started(purge_delay: std::os::raw::c_long) {
    // SAFETY: as in `purge_freed_memory_at_once`; `mi_collect` walks only mimalloc's own state.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, purge_delay);
    }
}

/// A plugin runtime sharing the server's compile cache.
fn plugin_runtime(config: &Config) -> anyhow::Result<omnichat::plugins::PluginRuntime> {
    let fetcher = omnichat::plugins::fetch::Fetcher::new(config.providers.allow_private_fetch)?;
    omnichat::plugin_runtime(config, fetcher)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
