//! Channel type -> adapter. Bridges are registered once at start; the plugin part is swapped
//! whole on a reload, so a call that took an adapter finishes on it while new calls get the new
//! set. A lookup is a read lock and an `Arc` clone.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::adapter::{ChannelAdapter, ChannelTypeInfo};
use crate::store::ChannelType;

pub type AdapterSet = BTreeMap<ChannelType, Arc<dyn ChannelAdapter>>;

#[derive(Default)]
pub struct ChannelRegistry {
    bridges: RwLock<AdapterSet>,
    plugins: RwLock<Arc<AdapterSet>>,
}

impl ChannelRegistry {
    pub fn add_bridge(&self, adapter: Arc<dyn ChannelAdapter>) {
        let channel_type = adapter.info().channel_type.clone();
        self.bridges.write().unwrap_or_else(|e| e.into_inner()).insert(channel_type, adapter);
    }

    /// Replaces every plugin adapter at once. A plugin never shadows a bridge's type.
    pub fn set_plugins(&self, mut plugins: AdapterSet) {
        let bridges = self.bridges.read().unwrap_or_else(|e| e.into_inner());
        plugins.retain(|channel_type, _| {
            let shadowed = bridges.contains_key(channel_type);
            if shadowed {
                tracing::warn!(channel.kind = %channel_type, "a plugin declares a bridge's channel type; ignored");
            }
            !shadowed
        });
        *self.plugins.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(plugins);
    }

    pub fn get(&self, channel_type: &ChannelType) -> Option<Arc<dyn ChannelAdapter>> {
        if let Some(bridge) = self.bridges.read().unwrap_or_else(|e| e.into_inner()).get(channel_type) {
            return Some(bridge.clone());
        }
        self.plugins.read().unwrap_or_else(|e| e.into_inner()).get(channel_type).cloned()
    }

    /// Every available type, by name.
    pub fn types(&self) -> Vec<ChannelTypeInfo> {
        let mut all: Vec<ChannelTypeInfo> =
            self.bridges.read().unwrap_or_else(|e| e.into_inner()).values().map(|a| a.info().clone()).collect();
        all.extend(self.plugins.read().unwrap_or_else(|e| e.into_inner()).values().map(|a| a.info().clone()));
        all.sort_by(|a, b| a.channel_type.cmp(&b.channel_type));
        all
    }

    /// `A, B, C`: for messages that say what is available.
    pub fn type_names(&self) -> String {
        self.types().iter().map(|t| t.channel_type.to_string()).collect::<Vec<_>>().join(", ")
    }
}
