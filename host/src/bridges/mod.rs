//! Native bridges: provider sessions too stateful for a sandboxed adapter, run inside the host.
//! Their auth state lives in the database (never on local disk), and each live session has one
//! owner across replicas, by a lease row renewed while it runs (see [`supervise`]).

pub mod telegram;
pub mod whatsapp;

/// This process's name on the session leases it holds.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "omnichat".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the bridges' supervisors until `shutdown` turns true, then stops every local session
/// and hands its lease back.
pub async fn supervise(state: crate::AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
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
