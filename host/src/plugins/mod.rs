//! The plugin runtime: channel adapters as WebAssembly components (the WIT world in `wit/`).
//!
//! `manifest` reads plugins.toml, `runtime` compiles and runs the components under limits,
//! `host_api` is what a component may call, `fetch` its guarded way out, `adapter` puts a
//! loaded plugin behind the channel seam, and `loader` (re)loads the set named by plugins.toml.

pub mod adapter;
pub mod fetch;
pub mod host_api;
pub mod loader;
pub mod manifest;
pub mod runtime;

pub use loader::PluginHost;
pub use runtime::{ChannelCall, Plugin, PluginError, PluginRuntime};

/// The first-party adapters, built by `build.rs` and embedded so `cargo run` needs no plugin step.
pub mod embedded {
    use super::fetch::ChannelSecrets;
    use super::manifest::PluginEntry;
    use crate::config::ProviderConfig;

    pub const TELEGRAM_BOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/telegram_bot.wasm"));
    pub const FACEBOOK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/facebook.wasm"));
    pub const WIDGET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/widget.wasm"));
    /// A misbehaving adapter for the runtime's own tests (loops, allocates, traps, fetches).
    #[doc(hidden)]
    pub const TEST_FIXTURE_HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/hostile.wasm"));
    /// An adapter built against WIT 0.1.0, for the compatibility tests.
    #[doc(hidden)]
    pub const TEST_FIXTURE_LEGACY_V01: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/legacy_v01.wasm"));

    pub fn by_id(id: &str) -> Option<&'static [u8]> {
        match id {
            "telegram-bot" => Some(TELEGRAM_BOT),
            "facebook" => Some(FACEBOOK),
            "widget" => Some(WIDGET),
            _ => None,
        }
    }

    /// What a built-in plugin takes from the host's configuration unless plugins.toml says
    /// otherwise: its provider's base URL and (Facebook) the app-wide secrets.
    pub fn apply_defaults(entry: &mut PluginEntry, providers: &ProviderConfig, own: &mut ChannelSecrets) {
        match entry.id.as_str() {
            "telegram-bot" => {
                entry.api_base_url.get_or_insert_with(|| providers.telegram_api_base_url.clone());
            }
            "facebook" => {
                entry.api_base_url.get_or_insert_with(|| providers.facebook_graph_base_url.clone());
                for (name, value) in
                    [("appSecret", &providers.facebook_app_secret), ("verifyToken", &providers.facebook_verify_token)]
                {
                    if let Some(value) = value
                        && own.get(name).is_none()
                    {
                        own.insert(name.into(), value.clone());
                    }
                }
            }
            _ => {}
        }
    }
}
