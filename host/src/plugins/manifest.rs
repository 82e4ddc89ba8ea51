//! `plugins.toml`: which adapters load, from where, with what grants and limits.
//!
//! ```toml
//! [[plugin]]
//! id = "telegram-bot"
//! channel_type = "TELEGRAM_BOT"
//! source = "builtin"              # or a path to a .wasm component, relative to plugins.toml
//! allowed_hosts = ["api.telegram.org"]
//! memory_limit_mb = 32
//! time_limit_ms = 10000
//! api_base_url = "https://api.telegram.org"   # optional: the provider API the plugin calls
//! env_secrets = { verifyToken = "FACEBOOK_VERIFY_TOKEN" }   # optional: plugin-wide secrets
//! ```
//!
//! Unknown keys are errors that name the key. Without a plugins.toml the built-in adapters load
//! with their defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::ChannelType;

pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 32;
pub const DEFAULT_TIME_LIMIT_MS: u64 = 10_000;
/// The largest `memory_limit_mb`: the runtime's pool slots are sized for it, so a reload may
/// raise a plugin's limit up to here without a restart.
pub const MAX_MEMORY_LIMIT_MB: u64 = 256;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    pub id: String,
    pub channel_type: ChannelType,
    /// `builtin`, or a path to a `.wasm` component.
    #[serde(default = "builtin")]
    pub source: String,
    /// Hosts `fetch` may reach: `api.example.com`, `*.example.com`, or `host:port`. The provider
    /// base URL configured for the plugin's channel type is always granted.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default = "default_memory")]
    pub memory_limit_mb: u64,
    /// Wall-clock limit of one call, fetches included.
    #[serde(default = "default_time")]
    pub time_limit_ms: u64,
    /// The provider API's base URL, passed to every call and always granted. Built-ins default
    /// to the host's configured one (`TELEGRAM_API_BASE_URL`, `FACEBOOK_GRAPH_BASE_URL`).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Plugin-wide secrets, by name, read from the environment variables named here; a
    /// channel's own config value of the same name wins.
    #[serde(default)]
    pub env_secrets: BTreeMap<String, String>,
    /// For components built against WIT 0.1.0, which declare no config schema: the config
    /// fields that are secret (encrypted at rest, redacted, usable by name).
    #[serde(default)]
    pub secret_fields: Vec<String>,
    /// Serves browser visitors through the host's visitor transport (`/api/widget/{id}/...` and
    /// the `/widget` Socket.IO namespace) instead of provider webhooks: the WIDGET plugin, or any
    /// other web-based channel.
    #[serde(default)]
    pub visitor_transport: bool,
}

fn builtin() -> String {
    "builtin".into()
}

fn default_memory() -> u64 {
    DEFAULT_MEMORY_LIMIT_MB
}

fn default_time() -> u64 {
    DEFAULT_TIME_LIMIT_MS
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// The first-party adapters with their default grants.
    pub fn builtin() -> Self {
        let entry = |id: &str, channel_type, hosts: &[&str]| PluginEntry {
            id: id.into(),
            channel_type,
            source: builtin(),
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            memory_limit_mb: DEFAULT_MEMORY_LIMIT_MB,
            time_limit_ms: DEFAULT_TIME_LIMIT_MS,
            api_base_url: None,
            env_secrets: BTreeMap::new(),
            secret_fields: Vec::new(),
            visitor_transport: false,
        };
        Self {
            plugins: vec![
                entry("telegram-bot", ChannelType::TELEGRAM_BOT, &["api.telegram.org"]),
                // Messenger attachments are served from Facebook's CDN.
                entry("facebook", ChannelType::FACEBOOK, &["graph.facebook.com", "*.fbcdn.net", "*.fbsbx.com", "*.facebook.com"]),
                // The widget fetches nothing: its visitors come to the host.
                PluginEntry {
                    visitor_transport: true,
                    memory_limit_mb: 16,
                    time_limit_ms: 2000,
                    ..entry("widget", ChannelType::WIDGET, &[])
                },
            ],
        }
    }

    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        let mut manifest = Self::parse(&text).map_err(|message| ManifestError::Invalid { path: path.into(), message })?;
        // Relative component paths are relative to the manifest.
        let base = path.parent().unwrap_or(Path::new("."));
        for plugin in &mut manifest.plugins {
            if plugin.source != "builtin" && Path::new(&plugin.source).is_relative() {
                plugin.source = base.join(&plugin.source).display().to_string();
            }
        }
        Ok(manifest)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for plugin in &manifest.plugins {
            if !ids.insert(plugin.id.as_str()) {
                return Err(format!("two plugins have the id {}: ids are unique", plugin.id));
            }
            if !seen.insert(plugin.channel_type.clone()) {
                return Err(format!("two plugins serve {}: one adapter per channel type", plugin.channel_type));
            }
            if plugin.memory_limit_mb == 0 || plugin.memory_limit_mb > MAX_MEMORY_LIMIT_MB {
                return Err(format!("plugin {}: memory_limit_mb must be 1..={MAX_MEMORY_LIMIT_MB}", plugin.id));
            }
            if plugin.time_limit_ms == 0 || plugin.time_limit_ms > 300_000 {
                return Err(format!("plugin {}: time_limit_ms must be 1..=300000", plugin.id));
            }
            if let Some(url) = &plugin.api_base_url
                && !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            {
                return Err(format!("plugin {}: api_base_url {url:?} is not an http(s) URL", plugin.id));
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err =
            Manifest::parse("[[plugin]]\nid = \"x\"\nchannel_type = \"WIDGET\"\nmemory_limit = 3\n").expect_err("unknown key");
        assert!(err.contains("memory_limit"), "{err}");
        let err = Manifest::parse("[[plugins]]\nid = \"x\"\n").expect_err("unknown table");
        assert!(err.contains("plugins"), "{err}");
    }

    #[test]
    fn defaults_fill_what_an_entry_leaves_out() {
        let manifest = Manifest::parse("[[plugin]]\nid = \"fb\"\nchannel_type = \"FACEBOOK\"\n").expect("parses");
        let plugin = &manifest.plugins[0];
        assert_eq!(plugin.source, "builtin");
        assert_eq!(plugin.memory_limit_mb, DEFAULT_MEMORY_LIMIT_MB);
        assert_eq!(plugin.time_limit_ms, DEFAULT_TIME_LIMIT_MS);
    }

    #[test]
    fn one_adapter_per_channel_type() {
        let text = "[[plugin]]\nid = \"a\"\nchannel_type = \"WIDGET\"\n[[plugin]]\nid = \"b\"\nchannel_type = \"WIDGET\"\n";
        assert!(Manifest::parse(text).is_err());
    }
}
