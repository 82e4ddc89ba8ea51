//! The `omnichat` binary: `serve` (the default) and `migrate`.

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
            let runtime = omnichat::load_plugins(&config).await?;
            let mut plugins: Vec<_> = runtime.plugins().collect();
            plugins.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
            println!(
                "{:<16} {:<14} {:<9} {:<10} {:>7} {:>8}  allowed hosts",
                "id", "channel type", "version", "source", "memory", "time"
            );
            for plugin in plugins {
                let entry = &plugin.entry;
                println!(
                    "{:<16} {:<14} {:<9} {:<10} {:>5}MiB {:>6}ms  {}",
                    entry.id,
                    entry.channel_type,
                    plugin.info.version,
                    if entry.source == "builtin" { "builtin" } else { "file" },
                    entry.memory_limit_mb,
                    entry.time_limit_ms,
                    plugin.grants.join(", ")
                );
            }
        }
        Command::Serve => {
            let addr = (config.host, config.port);
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {}:{}", addr.0, addr.1))?;
            let state = omnichat::build(config).await?;
            omnichat::serve(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
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
