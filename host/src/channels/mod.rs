//! Channel instances of a tenant: CRUD, and the secret part of their configuration, which is
//! encrypted at rest and shown redacted.

pub mod handlers;
pub mod secrets;

use uuid::Uuid;

use crate::state::AppState;
use crate::store::{Channel, ChannelStatus};

/// Moves a channel to `status` (with the reason, when there is one) and tells its rooms
/// (`channel-status`). A store failure is logged: the status is advisory, the caller goes on.
pub async fn set_status(
    state: &AppState,
    tenant_id: Uuid,
    channel_id: Uuid,
    status: ChannelStatus,
    reason: Option<&str>,
) -> Option<Channel> {
    match state.store.set_channel_status(tenant_id, channel_id, status, reason).await {
        Ok(Some(channel)) => {
            state.realtime.channel_status(tenant_id, channel_id, status).await;
            Some(channel)
        }
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(channel.id = %channel_id, %status, error = %err, "cannot record the channel status");
            None
        }
    }
}
