//! Native bridges: provider sessions too stateful for a sandboxed adapter, run inside the host.
//! Their auth state lives in the database (never on local disk), and each live session has one
//! owner across replicas, by a lease row renewed while it runs (see [`supervise`]).

pub mod telegram;
pub mod whatsapp;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::AppState;
use crate::store::SessionKind;

/// What a supervisor round does about one session that should run somewhere.
pub(crate) enum LeaseRound {
    /// The lease is ours (until `until`) and nothing runs here yet: start the client.
    Start { until: DateTime<Utc> },
    /// Ours and running: renewed until `until`.
    Renewed { until: DateTime<Utc> },
    /// Running here, but another replica holds the lease now: stop.
    Lost,
    /// Another replica runs it.
    HeldElsewhere,
}

pub(crate) fn lease_duration(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.bridges.lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Takes or renews a session's lease for this replica and says what follows for its client;
/// `None` when the database did not answer (the client, if any, keeps running until its lease is
/// taken).
pub(crate) async fn lease_round(
    state: &AppState,
    kind: SessionKind,
    session_id: Uuid,
    owner: &str,
    running: bool,
) -> Option<LeaseRound> {
    let until = Utc::now() + lease_duration(state);
    match state.store.acquire_session_lease(kind, session_id, owner, until).await {
        Ok(true) => Some(if running { LeaseRound::Renewed { until } } else { LeaseRound::Start { until } }),
        Ok(false) if running => {
            tracing::warn!(session.id = %session_id, ?kind, "lost the session lease to another replica; stopping here");
            Some(LeaseRound::Lost)
        }
        Ok(false) => Some(LeaseRound::HeldElsewhere),
        Err(err) => {
            tracing::warn!(session.id = %session_id, ?kind, error = %err, "cannot renew the session lease");
            None
        }
    }
}

/// A client whose lease could not be renewed stops a third of a lease before it runs out, so it
/// never runs beside the replica that takes the session over.
pub(crate) fn lease_running_out(lease_until: DateTime<Utc>, state: &AppState) -> bool {
    lease_until - lease_duration(state) / 3 <= Utc::now()
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
