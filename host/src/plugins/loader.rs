//! Loads the plugins plugins.toml names (or the built-ins) into the channel registry, and
//! reloads them without a restart when plugins.toml or a component file changes, or on SIGHUP.
//!
//! A reload compiles only what changed (an unchanged component keeps its compiled instance);
//! calls in flight finish on the version they started with, new calls get the new one; a
//! manifest or component that does not load is refused with a log line and the old version
//! keeps serving. At start, by contrast, a plugin that does not load is fatal.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::adapter::{PluginDeps, WasmAdapter};
use super::fetch::ChannelSecrets;
use super::manifest::{Manifest, PluginEntry};
use super::runtime::{Plugin, PluginRuntime};
use crate::channels::ChannelRegistry;
use crate::channels::adapter::ChannelAdapter;
use crate::config::ProviderConfig;

/// How often the watcher looks at plugins.toml and the component files.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

pub struct PluginHost {
    runtime: Arc<PluginRuntime>,
    manifest_path: Option<PathBuf>,
    providers: ProviderConfig,
    registry: Arc<ChannelRegistry>,
    deps: PluginDeps,
    /// By plugin id: the loaded plugin and the digest of what it was compiled from.
    loaded: Mutex<HashMap<String, Compiled>>,
    /// One load at a time.
    loading: tokio::sync::Mutex<()>,
    /// The component files of the manifest last loaded (plugins.toml itself is always watched:
    /// a change to it reloads, which renews this list).
    components: Mutex<Vec<PathBuf>>,
}

/// A compiled plugin and the digest of what it was compiled from.
type Compiled = (Arc<Plugin>, [u8; 32]);

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Plugin id (or `plugins.toml`) and why it was refused; the old version kept serving.
    pub refused: Vec<(String, String)>,
}

impl PluginHost {
    pub fn new(
        runtime: Arc<PluginRuntime>,
        manifest_path: Option<PathBuf>,
        providers: ProviderConfig,
        registry: Arc<ChannelRegistry>,
        deps: PluginDeps,
    ) -> Self {
        Self {
            runtime,
            manifest_path,
            providers,
            registry,
            deps,
            loaded: Default::default(),
            loading: Default::default(),
            components: Default::default(),
        }
    }

    fn manifest(&self) -> anyhow::Result<Manifest> {
        manifest(self.manifest_path.as_deref())
    }

    /// Start-up: every plugin must load.
    pub async fn load(&self) -> anyhow::Result<()> {
        let _loading = self.loading.lock().await;
        let manifest = self.manifest()?;
        let plugins = compile_all(&self.runtime, &manifest, &self.providers).await?;
        self.remember_components(&manifest);
        self.install(plugins.into_iter().map(|(plugin, digest)| (plugin.entry.id.clone(), (plugin, digest))).collect());
        Ok(())
    }

    /// Loads what changed; anything that fails keeps its old version.
    pub async fn reload(&self) -> ReloadReport {
        let _loading = self.loading.lock().await;
        let mut report = ReloadReport::default();
        let manifest = match self.manifest() {
            Ok(manifest) => manifest,
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "plugins.toml refused; the loaded plugins keep serving");
                report.refused.push(("plugins.toml".into(), format!("{err:#}")));
                return report;
            }
        };
        self.remember_components(&manifest);
        let previous = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut next = BTreeMap::new();
        for entry in manifest.plugins {
            let id = entry.id.clone();
            let compiled = async {
                let (entry, bytes, own) = resolve(entry, &self.providers)?;
                let digest = digest(&entry, &bytes);
                if let Some((plugin, old)) = previous.get(&id)
                    && *old == digest
                {
                    return Ok::<_, anyhow::Error>((plugin.clone(), digest, false));
                }
                Ok((self.runtime.compile(entry, &bytes, own).await?, digest, true))
            };
            match compiled.await {
                Ok((plugin, digest, changed)) => {
                    if changed {
                        report.loaded.push(id.clone())
                    } else {
                        report.unchanged.push(id.clone())
                    }
                    next.insert(id, (plugin, digest));
                }
                Err(err) => {
                    let why = format!("{err:#}");
                    tracing::error!(plugin.id = %id, error = %why, "plugin refused on reload; its loaded version keeps serving");
                    report.refused.push((id.clone(), why));
                    if let Some(kept) = previous.get(&id) {
                        next.insert(id, kept.clone());
                    }
                }
            }
        }
        report.removed = previous.keys().filter(|id| !next.contains_key(*id)).cloned().collect();
        // Two entries may now claim one type (a rename in flight): the first keeps it.
        let mut types = std::collections::HashSet::new();
        next.retain(|id, (plugin, _)| {
            let fresh = types.insert(plugin.info.channel_type.clone());
            if !fresh {
                report.refused.push((id.clone(), format!("another plugin already serves {}", plugin.info.channel_type)));
            }
            fresh
        });
        tracing::info!(loaded = ?report.loaded, removed = ?report.removed, refused = report.refused.len(), "plugins reloaded");
        self.install(next);
        report
    }

    fn install(&self, plugins: BTreeMap<String, Compiled>) {
        let adapters = plugins
            .values()
            .map(|(plugin, _)| {
                let adapter: Arc<dyn ChannelAdapter> =
                    Arc::new(WasmAdapter::new(plugin.clone(), self.runtime.clone(), self.deps.clone()));
                (plugin.info.channel_type.clone(), adapter)
            })
            .collect();
        self.registry.set_plugins(adapters);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = plugins.into_iter().collect();
    }

    /// The files whose change means a reload: plugins.toml and every component it names.
    fn watched(&self) -> Vec<PathBuf> {
        let Some(path) = &self.manifest_path else { return Vec::new() };
        let mut files = vec![path.clone()];
        files.extend(self.components.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned());
        files
    }

    fn remember_components(&self, manifest: &Manifest) {
        let files = manifest.plugins.iter().filter(|p| p.source != "builtin").map(|p| PathBuf::from(&p.source)).collect();
        *self.components.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    /// Reloads on SIGHUP and whenever a watched file changes, until `shutdown` turns true.
    pub async fn watch(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = fingerprint(&self.watched());
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {
                    let now = fingerprint(&self.watched());
                    if now == seen {
                        continue;
                    }
                    // Taken before reading, so a write still under way shows as another change.
                    seen = now;
                    tracing::info!("plugin files changed; reloading");
                }
                _ = hup => tracing::info!("SIGHUP: reloading plugins"),
                _ = shutdown.changed() => return,
            }
            self.reload().await;
        }
    }
}

/// plugins.toml, or the built-in plugins without one.
pub fn manifest(path: Option<&Path>) -> anyhow::Result<Manifest> {
    Ok(match path {
        Some(path) => Manifest::load(path)?,
        None => Manifest::builtin(),
    })
}

/// Compiles every plugin of a manifest (start-up and `omnichat plugins list`): all or an error.
pub async fn compile_all(
    runtime: &PluginRuntime,
    manifest: &Manifest,
    providers: &ProviderConfig,
) -> anyhow::Result<Vec<Compiled>> {
    let mut plugins = Vec::with_capacity(manifest.plugins.len());
    for entry in &manifest.plugins {
        let (entry, bytes, own) = resolve(entry.clone(), providers)?;
        let digest = digest(&entry, &bytes);
        plugins.push((runtime.compile(entry, &bytes, own).await?, digest));
    }
    Ok(plugins)
}

/// The entry with the host's defaults applied, the component's bytes and the plugin's own
/// secrets from the environment.
fn resolve(mut entry: PluginEntry, providers: &ProviderConfig) -> anyhow::Result<(PluginEntry, Vec<u8>, ChannelSecrets)> {
    let bytes = match entry.source.as_str() {
        "builtin" => super::embedded::by_id(&entry.id)
            .with_context(|| format!("plugin {}: there is no built-in plugin with this id", entry.id))?
            .to_vec(),
        path => std::fs::read(path).with_context(|| format!("plugin {}: cannot read {path}", entry.id))?,
    };
    let mut own = ChannelSecrets::default();
    for (name, var) in &entry.env_secrets {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => own.insert(name.clone(), value.into()),
            _ => {
                tracing::warn!(plugin.id = %entry.id, secret = %name, env = %var, "the environment variable of a plugin secret is not set")
            }
        }
    }
    if entry.source == "builtin" {
        super::embedded::apply_defaults(&mut entry, providers, &mut own);
    }
    if let Some(url) = &mut entry.api_base_url {
        *url = url.trim_end_matches('/').to_owned();
    }
    Ok((entry, bytes, own))
}

/// Identity of a set of files: size, modification time and inode of each (a replaced file gets
/// a new inode even within one mtime tick).
fn fingerprint(files: &[PathBuf]) -> Vec<Option<(u64, i64, i64, u64)>> {
    files
        .iter()
        .map(|path| std::fs::metadata(Path::new(path)).ok().map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino())))
        .collect()
}

/// What a compiled plugin depends on: its bytes and its manifest entry.
fn digest(entry: &PluginEntry, bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hasher.update(format!("{entry:?}").as_bytes());
    hasher.finalize().into()
}
