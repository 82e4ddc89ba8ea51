//! Work only a session's live client can do (a WhatsApp pair code or logout, a media download),
//! asked on a replica that does not run the session. The asking replica writes a
//! `bridge_requests` row addressed to the replica holding the session's lease ([`ask`]); that
//! replica's supervisor claims it within `OMNICHAT_BRIDGE_REQUEST_POLL`, does it on its client
//! and stores the answer ([`serve_round`]); the asking replica takes the answer (deleting the
//! row) and answers its HTTP request. Through the database, so replicas need nothing else shared
//! and no address of each other.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::BridgeDeps;
use super::telegram::TelegramBridge;
use super::whatsapp::WhatsAppBridge;
use crate::store::BridgeRequest;

/// The largest answer handed over (a downloaded file): 64 MiB, Telegram's download cap.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;
/// How often the asking replica looks for the answer.
const ANSWER_POLL: Duration = Duration::from_millis(50);

/// What the owner is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// `{"phone": digits}` -> the code's UTF-8.
    WhatsAppPairCode,
    /// `{"extra": attachment extra}` -> the file.
    WhatsAppDownload,
    /// Unlink the device and stop the client -> nothing.
    WhatsAppLogout,
    /// `{"extra": attachment extra}` -> the file.
    TelegramDownload,
}

impl Task {
    const ALL: [Task; 4] = [Task::WhatsAppPairCode, Task::WhatsAppDownload, Task::WhatsAppLogout, Task::TelegramDownload];

    fn name(self) -> &'static str {
        match self {
            Task::WhatsAppPairCode => "whatsapp.pair-code",
            Task::WhatsAppDownload => "whatsapp.download",
            Task::WhatsAppLogout => "whatsapp.logout",
            Task::TelegramDownload => "telegram.download",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|task| task.name() == name)
    }
}

/// Why the owner could not do the work; the code travels through the database with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The session does not run there (any more): it moved, or is restarting.
    #[error("the session is not running (it is starting, or moving to another server): try again shortly")]
    NotLive,
    /// The provider refused: retrying does not help.
    #[error("{0}")]
    Refused(String),
    /// The provider (or the network) failed: retrying later may.
    #[error("{0}")]
    Unavailable(String),
    /// Telegram's flood control: wait this many seconds.
    #[error("Telegram asks to wait {0} s (flood control)")]
    FloodWait(u32),
    /// The replica running the session did not answer in time, or the database could not be
    /// reached to ask it: try again shortly.
    #[error("the server running the session did not answer: try again shortly")]
    NoAnswer,
}

impl Refusal {
    fn code(&self) -> String {
        match self {
            Refusal::NotLive => "not_live".into(),
            Refusal::Refused(_) => "refused".into(),
            Refusal::Unavailable(_) => "unavailable".into(),
            Refusal::FloodWait(seconds) => format!("flood_wait:{seconds}"),
            Refusal::NoAnswer => "no_answer".into(),
        }
    }

    fn from_row(code: &str, message: String) -> Self {
        match code {
            "not_live" => Refusal::NotLive,
            "no_answer" => Refusal::NoAnswer,
            "refused" => Refusal::Refused(message),
            other => match other.strip_prefix("flood_wait:").and_then(|s| s.parse().ok()) {
                Some(seconds) => Refusal::FloodWait(seconds),
                None => Refusal::Unavailable(message),
            },
        }
    }
}

/// The replica running a session, from its lease: another replica whose lease is live.
pub(crate) fn running_elsewhere(lease: Option<(String, DateTime<Utc>)>, ours: &str) -> Option<String> {
    lease.filter(|(owner, until)| owner != ours && *until > Utc::now()).map(|(owner, _)| owner)
}

/// Asks `owner` to do `task` for a channel and waits (at most `wait`) for its answer.
pub(crate) async fn ask(
    deps: &BridgeDeps,
    owner: String,
    channel_id: Uuid,
    task: Task,
    payload: Value,
    wait: Duration,
) -> Result<Vec<u8>, Refusal> {
    let now = Utc::now();
    let request = BridgeRequest {
        id: Uuid::now_v7(),
        owner,
        channel_instance_id: channel_id,
        kind: task.name().into(),
        payload: sqlx::types::Json(payload),
        status: "PENDING".into(),
        result: None,
        error_code: None,
        error: None,
        created_at: now,
        expires_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
    };
    if let Err(err) = deps.store.insert_bridge_request(&request).await {
        tracing::warn!(channel.id = %channel_id, task = task.name(), error = %err, "handover: cannot ask the replica running the session");
        return Err(Refusal::NoAnswer);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::time::sleep(ANSWER_POLL).await;
        match deps.store.take_bridge_request(request.id).await {
            Ok(Some(done)) if done.status == "DONE" => return Ok(done.result.unwrap_or_default()),
            Ok(Some(failed)) => {
                let code = failed.error_code.unwrap_or_default();
                return Err(Refusal::from_row(&code, failed.error.unwrap_or_default()));
            }
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "handover: cannot read the answer yet"),
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = deps.store.delete_bridge_request(request.id).await;
            tracing::warn!(channel.id = %channel_id, task = task.name(), "handover: the replica running the session did not answer");
            return Err(Refusal::NoAnswer);
        }
    }
}

/// The owner's side, on a task of its own (a long supervisor round must not hold up the
/// answers): claims requests every `OMNICHAT_BRIDGE_REQUEST_POLL` until `shutdown`.
pub(crate) async fn serve(
    deps: BridgeDeps,
    owner: String,
    telegram: Arc<TelegramBridge>,
    whatsapp: Arc<WhatsAppBridge>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(deps.config.request_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeps = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => serve_round(&deps, &owner, &telegram, &whatsapp).await,
            _ = sweeps.tick() => sweep(&deps).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// One round of the owner's side: claims the requests addressed to this replica and does each
/// on its own task. A replica that runs no session is never asked, and does not look.
async fn serve_round(deps: &BridgeDeps, owner: &str, telegram: &Arc<TelegramBridge>, whatsapp: &Arc<WhatsAppBridge>) {
    if !telegram.runs_any() && !whatsapp.runs_any() {
        return;
    }
    let requests = match deps.store.claim_bridge_requests(owner).await {
        Ok(requests) => requests,
        Err(err) => return tracing::debug!(error = %err, "handover: cannot claim requests"),
    };
    for request in requests {
        let (deps, telegram, whatsapp) = (deps.clone(), telegram.clone(), whatsapp.clone());
        tokio::spawn(async move {
            let wait = (request.expires_at - Utc::now()).to_std().unwrap_or_default();
            let answer = match tokio::time::timeout(wait, perform(&deps, &request, &telegram, &whatsapp)).await {
                Ok(answer) => answer,
                Err(_) => return, // nobody waits any more; the sweep deletes the row
            };
            let outcome = match &answer {
                Ok(bytes) if bytes.len() > MAX_ANSWER_BYTES => Err(Refusal::Refused(format!(
                    "the file is larger than the {} MiB that can be handed between servers",
                    MAX_ANSWER_BYTES >> 20
                ))),
                other => other.clone(),
            };
            let stored = match &outcome {
                Ok(bytes) => deps.store.finish_bridge_request(request.id, Ok(bytes)).await,
                Err(refusal) => deps.store.finish_bridge_request(request.id, Err((&refusal.code(), &refusal.to_string()))).await,
            };
            if let Err(err) = stored {
                tracing::warn!(request.id = %request.id, error = %err, "handover: cannot store the answer");
            }
        });
    }
}

async fn perform(
    deps: &BridgeDeps,
    request: &BridgeRequest,
    telegram: &TelegramBridge,
    whatsapp: &WhatsAppBridge,
) -> Result<Vec<u8>, Refusal> {
    let channel_id = request.channel_instance_id;
    let payload = &request.payload.0;
    match Task::parse(&request.kind) {
        Some(Task::WhatsAppPairCode) => {
            let phone = payload["phone"].as_str().unwrap_or_default();
            whatsapp.pair_code_here(channel_id, phone).await.map(String::into_bytes)
        }
        Some(Task::WhatsAppDownload) => whatsapp.download_here(channel_id, &payload["extra"]).await,
        Some(Task::WhatsAppLogout) => whatsapp.logout_here(deps, channel_id).await.map(|()| Vec::new()),
        Some(Task::TelegramDownload) => telegram.download_here(channel_id, &payload["extra"]).await,
        None => Err(Refusal::Refused(format!("unknown request {:?}", request.kind))),
    }
}

/// Deletes requests nobody waits for any more (their asker gave up, or died).
async fn sweep(deps: &BridgeDeps) {
    match deps.store.purge_bridge_requests(Utc::now() - chrono::Duration::minutes(1)).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "handover: expired requests deleted"),
        Err(err) => tracing::debug!(error = %err, "handover: cannot delete expired requests"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_and_refusals_survive_the_database() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.name()), Some(task));
        }
        assert_eq!(Task::parse("telegram.sign-in"), None);
        for refusal in [
            Refusal::NotLive,
            Refusal::Refused("bad media".into()),
            Refusal::Unavailable("timeout".into()),
            Refusal::FloodWait(42),
            Refusal::NoAnswer,
        ] {
            let message = match &refusal {
                Refusal::NotLive | Refusal::FloodWait(_) | Refusal::NoAnswer => String::new(),
                other => other.to_string(),
            };
            assert_eq!(Refusal::from_row(&refusal.code(), message), refusal);
        }
    }

    #[test]
    fn only_a_live_lease_of_another_replica_runs_elsewhere() {
        let soon = Utc::now() + chrono::Duration::seconds(10);
        let past = Utc::now() - chrono::Duration::seconds(1);
        assert_eq!(running_elsewhere(Some(("b".into(), soon)), "a"), Some("b".into()));
        assert_eq!(running_elsewhere(Some(("a".into(), soon)), "a"), None);
        assert_eq!(running_elsewhere(Some(("b".into(), past)), "a"), None);
        assert_eq!(running_elsewhere(None, "a"), None);
    }
}
