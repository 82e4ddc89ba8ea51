//! Native bridges: provider sessions too stateful for a sandboxed adapter, run inside the host.
//! Their auth state lives in the database (never on local disk), and each live session has one
//! owner across replicas, by a lease row renewed while it runs (see [`supervise`]).

pub mod telegram;
pub mod whatsapp;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::AppState;
use crate::inbound::service::handle_inbound_message;
use crate::store::{NewInboundMessage, SessionKind, StoreError};

/// What a supervisor round does about one session that should run somewhere.
pub(crate) enum LeaseRound {
    /// The lease is ours (until `until`) and nothing runs here yet: start the client.
    Start { until: DateTime<Utc> },
    /// Ours and running: renewed until `until`.
    Renewed { until: DateTime<Utc> },
    /// Stop the local client: another replica holds the lease now, or ours could not be renewed
    /// and runs out within a third of a lease (so it never runs beside the replica taking over).
    Stop,
    /// Nothing to do: another replica runs it, or ours is still good while the database is away.
    Keep,
}

pub(crate) fn lease_duration(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.bridges.lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Takes or renews a session's lease for this replica and says what follows for its client.
/// `running_until`: the lease a local client holds, when one runs here.
pub(crate) async fn lease_round(
    state: &AppState,
    kind: SessionKind,
    session_id: Uuid,
    owner: &str,
    running_until: Option<DateTime<Utc>>,
) -> LeaseRound {
    let until = Utc::now() + lease_duration(state);
    match (state.store.acquire_session_lease(kind, session_id, owner, until).await, running_until) {
        (Ok(true), None) => LeaseRound::Start { until },
        (Ok(true), Some(_)) => LeaseRound::Renewed { until },
        (Ok(false), Some(_)) => {
            tracing::warn!(session.id = %session_id, ?kind, "lost the session lease to another replica; stopping here");
            LeaseRound::Stop
        }
        (Ok(false), None) => LeaseRound::Keep,
        (Err(err), running_until) => {
            tracing::warn!(session.id = %session_id, ?kind, error = %err, "cannot renew the session lease");
            match running_until {
                Some(held) if held - lease_duration(state) / 3 <= Utc::now() => LeaseRound::Stop,
                _ => LeaseRound::Keep,
            }
        }
    }
}

/// Stores a message a bridge received. While the database is unavailable it retries every second
/// until `stopped` completes (then `false`): a message must not be passed over for a passing
/// outage. A message the database refuses outright is logged and skipped, so one bad message does
/// not stall the account.
pub(crate) async fn store_received(
    state: &AppState,
    bridge: &str,
    channel_id: Uuid,
    payload: NewInboundMessage,
    stopped: impl Future,
) -> bool {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        match handle_inbound_message(state, payload.clone()).await {
            Ok(_) => return true,
            Err(err @ StoreError::Unavailable(_)) => {
                tracing::warn!(channel.id = %channel_id, bridge, error = %err, "database unavailable; retrying a received message");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = &mut stopped => return false,
                }
            }
            Err(err) => {
                tracing::error!(channel.id = %channel_id, bridge, error = %err, provider_message_id = ?payload.provider_message_id,
                    "a received message cannot be stored; skipped");
                return true;
            }
        }
    }
}

/// The longest a bridge send may take: well inside the queue's job lease, so a job still being
/// sent is never claimed (and sent) again.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// This process's name on the session leases it holds.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "omnichat".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the bridges' supervisors until `shutdown` turns true, then stops every local session
/// and hands its lease back.
pub async fn supervise(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.bridges.supervise_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.telegram.reconcile(&state).await;
                state.whatsapp.reconcile(&state).await;
            }
            _ = shutdown.changed() => break,
        }
    }
    state.telegram.stop_all(&state).await;
    state.whatsapp.stop_all(&state).await;
}
