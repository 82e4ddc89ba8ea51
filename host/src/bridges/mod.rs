//! Native bridges: provider sessions too stateful for a sandboxed adapter, run inside the host.
//! Their auth state lives in the database (never on local disk), and each live session has one
//! owner across replicas, by a lease row renewed while it runs (see [`supervise`]).

pub mod handover;
pub mod telegram;
pub mod whatsapp;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::channels::StatusSink;
use crate::channels::adapter::{AdapterKind, ChannelTypeInfo, SendFailure};
use crate::config::BridgeConfig;
use crate::crypto::SecretBox;
use crate::inbound::service::Inbound;
use crate::plugins::fetch::Fetcher;
use crate::realtime::Realtime;
use crate::store::{ChannelType, NewInboundMessage, SessionKind, Store};

/// What the bridges use of the host: the store, the realtime rooms, the inbound pipeline, the
/// status sink, the secret box (sessions are sealed at rest), the guarded fetcher (media by URL)
/// and their own configuration. Never the whole application state.
#[derive(Clone)]
pub struct BridgeDeps {
    pub store: Arc<dyn Store>,
    pub secrets: SecretBox,
    pub realtime: Realtime,
    pub status: StatusSink,
    pub inbound: Inbound,
    pub fetcher: Arc<Fetcher>,
    pub config: BridgeConfig,
}

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

pub(crate) fn lease_duration(state: &BridgeDeps) -> chrono::Duration {
    chrono::Duration::from_std(state.config.lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Takes or renews a session's lease for this replica and says what follows for its client.
/// `running_until`: the lease a local client holds, when one runs here.
pub(crate) async fn lease_round(
    state: &BridgeDeps,
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

/// Stores a message a bridge received. While the database is unavailable or busy it retries every second
/// until `stopped` completes (then `false`): a message must not be passed over for a passing
/// outage. A message the database refuses outright is logged and skipped, so one bad message does
/// not stall the account.
pub(crate) async fn store_received(
    state: &BridgeDeps,
    bridge: &str,
    channel_type: &str,
    channel_id: Uuid,
    payload: NewInboundMessage,
    stopped: impl Future,
) -> bool {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        match state.inbound.handle(channel_type, payload.clone()).await {
            Ok(_) => return true,
            Err(err) if err.is_transient() => {
                tracing::warn!(channel.id = %channel_id, bridge, error = %err, "database unavailable or busy; retrying a received message");
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

/// How a bridge describes its channel type in `GET /api/channel-types`.
pub(crate) fn bridge_info(channel_type: ChannelType, id: &str, name: &str) -> ChannelTypeInfo {
    ChannelTypeInfo {
        channel_type,
        kind: AdapterKind::Bridge,
        plugin_id: id.into(),
        name: name.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config_schema: Vec::new(),
        webhook: None,
    }
}

/// A bridged session that does not run here: another replica holding a live lease sends it (the
/// job goes back without counting an attempt); otherwise nobody can now (ours is reconnecting, or
/// no replica runs it): a retry that counts.
pub(crate) fn not_live_here(lease: Option<(String, DateTime<Utc>)>, ours: &str, bridge: &str) -> SendFailure {
    match lease {
        Some((owner, until)) if owner != ours && until > Utc::now() => SendFailure::SessionElsewhere,
        _ => SendFailure::Transient(format!("the {bridge} session is not running (reconnecting, or no server runs it)")),
    }
}

/// The longest a bridge send may take: well inside the queue's job lease, so a job still being
/// sent is never claimed (and sent) again.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A reply's attachment, fetched for a bridge to upload.
pub(crate) struct FetchedMedia {
    pub bytes: Vec<u8>,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
}

/// Fetches a user-given attachment URL through the guarded fetcher (never the host's own
/// network; 8 MiB at most): a 4xx or a refused URL fails the send for good, anything else may
/// be retried.
pub(crate) async fn fetch_outbound_media(
    fetcher: &Fetcher,
    attachment: &crate::channels::adapter::OutboundAttachment,
) -> Result<FetchedMedia, SendFailure> {
    use crate::plugins::fetch::{FetchFailure, FetchRequest};
    let request = FetchRequest { method: "GET".into(), url: attachment.url.clone(), headers: Vec::new(), body: None };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let response = match fetcher.fetch(request, None, &Default::default(), deadline).await {
        Ok(response) if (200..300).contains(&response.status) => response,
        Ok(response) if (400..500).contains(&response.status) => {
            return Err(SendFailure::Permanent(format!("the media URL answered {}", response.status)));
        }
        Ok(response) => return Err(SendFailure::Transient(format!("the media URL answered {}", response.status))),
        Err(FetchFailure::Timeout) => return Err(SendFailure::Transient("fetching the media timed out".into())),
        Err(FetchFailure::Failed(why)) => return Err(SendFailure::Transient(format!("cannot fetch the media: {why}"))),
        Err(FetchFailure::TooLarge) => return Err(SendFailure::Permanent("the media is larger than the 8 MiB limit".into())),
        Err(FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why)) => {
            return Err(SendFailure::Permanent(format!("the media URL is refused: {why}")));
        }
    };
    let mime_type = attachment.mime_type.clone().or_else(|| {
        response.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-type")).map(|(_, value)| value.clone())
    });
    let file_name = attachment
        .file_name
        .clone()
        .or_else(|| attachment.url.split(['?', '#']).next()?.rsplit('/').next().filter(|n| !n.is_empty()).map(str::to_owned));
    Ok(FetchedMedia { bytes: response.body, mime_type, file_name })
}

/// This process's name on the session leases it holds.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "omnichat".into());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the bridges' supervisors, and serves what other replicas ask of this one's sessions
/// ([`handover`]), until `shutdown` turns true; then stops every local session and hands its
/// lease back. `owner`: this replica's name on its leases (both bridges share it).
pub async fn supervise(
    deps: BridgeDeps,
    owner: String,
    telegram: Arc<telegram::TelegramBridge>,
    whatsapp: Arc<whatsapp::WhatsAppBridge>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let serving = tokio::spawn(handover::serve(deps.clone(), owner, telegram.clone(), whatsapp.clone(), shutdown.clone()));
    let mut tick = tokio::time::interval(deps.config.supervise_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                telegram.reconcile(&deps).await;
                whatsapp.reconcile(&deps).await;
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = serving.await;
    telegram.stop_all(&deps).await;
    whatsapp.stop_all(&deps).await;
}
