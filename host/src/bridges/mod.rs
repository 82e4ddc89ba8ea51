//! Native bridges: provider sessions too stateful for a sandboxed adapter, run inside the host.
//! Their auth state lives in the database (never on local disk), and each live session has one
//! owner across replicas, by a lease row renewed while it runs.

pub mod telegram;

/// This process's name on the session leases it holds.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "omnichat".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}
