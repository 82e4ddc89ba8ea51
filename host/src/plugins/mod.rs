//! The plugin runtime: channel adapters as WebAssembly components (the WIT world in `wit/`).
//!
//! `manifest` reads plugins.toml, `runtime` compiles and runs the components under limits,
//! `host_api` is what a component may call, `fetch` its guarded way out.

pub mod fetch;
pub mod host_api;
pub mod manifest;
pub mod runtime;

pub use runtime::{ChannelCall, PluginError, PluginRuntime};

/// The first-party adapters, built by `build.rs` and embedded so `cargo run` needs no plugin step.
pub mod embedded {
    pub const TELEGRAM_BOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/telegram_bot.wasm"));
    pub const FACEBOOK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/facebook.wasm"));
    /// A misbehaving adapter for the runtime's own tests (loops, allocates, traps, fetches).
    #[doc(hidden)]
    pub const TEST_FIXTURE_HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/hostile.wasm"));

    pub fn by_id(id: &str) -> Option<&'static [u8]> {
        match id {
            "telegram-bot" => Some(TELEGRAM_BOT),
            "facebook" => Some(FACEBOOK),
            _ => None,
        }
    }
}
