//! Channel instances of a tenant: CRUD, the adapter seam every channel type sits behind, the
//! registry of available types, and the secret part of their configuration, which is encrypted
//! at rest and shown redacted.

pub mod adapter;
pub mod handlers;
pub mod registry;
pub mod secrets;

use std::sync::Arc;

use uuid::Uuid;

use crate::realtime::Realtime;
use crate::store::{Channel, ChannelStatus, Store};

pub use adapter::ChannelAdapter;
pub use registry::ChannelRegistry;

/// Where a channel's status changes go: the store, then its rooms (`channel-status`).
#[derive(Clone)]
pub struct StatusSink {
    store: Arc<dyn Store>,
    realtime: Realtime,
}

impl StatusSink {
    pub fn new(store: Arc<dyn Store>, realtime: Realtime) -> Self {
        Self { store, realtime }
    }

    /// Moves a channel to `status` (with the reason, when there is one) and tells its rooms. A
    /// store failure is logged: the status is advisory, the caller goes on.
    pub async fn set(&self, tenant_id: Uuid, channel_id: Uuid, status: ChannelStatus, reason: Option<&str>) -> Option<Channel> {
        match self.store.set_channel_status(tenant_id, channel_id, status, reason).await {
            Ok(Some(channel)) => {
                self.realtime.channel_status(tenant_id, channel_id, status).await;
                Some(channel)
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(channel.id = %channel_id, %status, error = %err, "cannot record the channel status");
                None
            }
        }
    }
}
