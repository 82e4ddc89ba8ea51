//! The queue worker: claims due jobs (leased, so a crashed worker's jobs come back), delivers them
//! concurrently through the channel's adapter with a cap per channel, and records the outcome:
//! SENT, a retry with exponential backoff and jitter (or the provider's own `retry_after`), or DEAD.
//! Delivery is at-least-once: a crash between the provider's 200 and our commit re-sends that job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use uuid::Uuid;

use crate::bridges::telegram::BridgeSendError;
use crate::bridges::telegram::client::{TelegramError, TelegramMedia, TelegramSend};
use crate::bridges::whatsapp::WhatsAppSendError;
use crate::bridges::whatsapp::client::{WaMedia, WaMediaKind, WaSendError};
use crate::config::QueueConfig;
use crate::inbound::service::channel_call;
use crate::plugins::PluginError;
use crate::plugins::fetch::{FetchFailure, FetchRequest};
use crate::plugins::runtime::{AttachmentKind, OutboundAttachment, OutboundMessage, SendError};
use crate::state::AppState;
use crate::store::{ChannelStatus, ChannelType, Dispatch, QueueJob, StoreError};

/// Wakes the worker when a job is queued, so delivery does not wait for the next poll.
#[derive(Default)]
pub struct QueueWorker {
    notify: Notify,
}

impl QueueWorker {
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// One channel's share of the worker: a cap on deliveries in flight, a cap on jobs waiting for
/// them (so one slow channel cannot hold every worker slot), and a pause after a 429.
struct ChannelGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    paused_until: Mutex<Option<Instant>>,
}

/// The most jobs one completion commit records.
const COMPLETION_BATCH: usize = 256;

/// Runs until `shutdown` turns true, then finishes what is in flight (or hands it back).
///
/// Jobs are claimed in batches (one statement) and loaded in batches (four queries per batch);
/// deliveries run concurrently; successes are recorded by one completer task that commits every
/// delivery that finished while its previous commit ran, so a commit (a WAL flush) is shared by
/// many jobs. Until that commit a delivered job stays SENDING under its lease: a crash in between
/// re-sends it, as any at-least-once queue does.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let config = state.config.queue.clone();
    let worker_id = format!("worker-{}", Uuid::new_v4());
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let gates: Arc<Mutex<HashMap<Uuid, Arc<ChannelGate>>>> = Default::default();
    let lease = chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::seconds(60));
    let (completed, completions) = mpsc::unbounded_channel();
    let completer = tokio::spawn(complete_deliveries(state.clone(), completions));
    // Claim once a quarter of the slots is free (or shortly after any is), not per freed slot.
    let batch_floor = (config.concurrency / 4).max(1);
    tracing::info!(worker = %worker_id, concurrency = config.concurrency, per_channel = config.per_channel, "queue worker started");

    while !*shutdown.borrow() {
        if slots.available_permits() < batch_floor {
            let floor = u32::try_from(batch_floor).unwrap_or(u32::MAX);
            tokio::select! {
                permits = slots.acquire_many(floor) => drop(permits),
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                _ = shutdown.changed() => continue,
            }
            if slots.available_permits() == 0 {
                tokio::select! {
                    permit = slots.acquire() => drop(permit),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        let claimed = match state.store.claim_due_jobs(&worker_id, lease, slots.available_permits() as i64).await {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(error = %err, "queue: cannot claim jobs");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = state.queue.notify.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let dispatches = match state.store.load_dispatches(&claimed).await {
            Ok(dispatches) => dispatches,
            Err(err) => {
                tracing::warn!(error = %err, "queue: cannot load the claimed jobs; handing them back");
                for job in &claimed {
                    record(state.store.retry_job(job, Utc::now() + backoff(&config, job.attempts + 1), None).await);
                }
                continue;
            }
        };
        for (job, dispatch) in claimed.into_iter().zip(dispatches) {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let gate = gates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(job.channel_instance_id)
                .or_insert_with(|| {
                    Arc::new(ChannelGate {
                        slots: Arc::new(Semaphore::new(config.per_channel)),
                        waiting: AtomicUsize::new(0),
                        paused_until: Mutex::new(None),
                    })
                })
                .clone();
            let state = state.clone();
            let config = config.clone();
            let completed = completed.clone();
            tokio::spawn(async move {
                let _slot: OwnedSemaphorePermit = slot;
                deliver(&state, &config, &gate, &completed, job, dispatch).await;
            });
        }
    }

    // Shutdown: wait a while for deliveries in flight, record what they delivered, then hand back
    // whatever is still claimed.
    let all = u32::try_from(config.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    drop(completed);
    // Deliveries still running past the wait hold the completer open; give them a little longer.
    let _ = tokio::time::timeout(Duration::from_secs(5), completer).await;
    match state.store.release_jobs(&worker_id).await {
        Ok(released) => tracing::info!(worker = %worker_id, released, "queue worker stopped"),
        Err(err) => tracing::warn!(error = %err, "queue: cannot release claimed jobs; their lease will"),
    }
}

/// A delivery the provider accepted, waiting for its commit.
type Delivered = (QueueJob, String);

/// Records deliveries in batches: every one that arrived while the previous commit ran goes into
/// the next. While the database is unreachable the batch is retried for a while (each job left
/// unrecorded would be sent again when its lease runs out); a batch the database refuses (say,
/// two re-sends given one provider id) is recorded job by job, so one bad row does not hold back
/// the rest. Ends when every sender is gone.
async fn complete_deliveries(state: AppState, mut completions: mpsc::UnboundedReceiver<Delivered>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while completions.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        let mut outcome = state.store.complete_jobs(&batch).await;
        let mut wait = Duration::from_millis(250);
        while matches!(outcome, Err(StoreError::Unavailable(_))) && wait <= Duration::from_secs(8) {
            tracing::warn!(
                jobs = batch.len(),
                retry_in_ms = wait.as_millis() as u64,
                "queue: the database is unavailable; deliveries wait to be recorded"
            );
            tokio::time::sleep(wait).await;
            wait *= 2;
            outcome = state.store.complete_jobs(&batch).await;
        }
        let recorded = match outcome {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, jobs = batch.len(), "queue: cannot record a batch of deliveries; recording them one by one");
                let mut messages = Vec::new();
                for delivered in batch.chunks(1) {
                    match state.store.complete_jobs(delivered).await {
                        Ok(mut one) => messages.append(&mut one),
                        Err(err) => {
                            tracing::error!(job.id = %delivered[0].0.id, error = %err, "queue: delivered but cannot record it")
                        }
                    }
                }
                messages
            }
        };
        for message in &recorded {
            state.realtime.message_updated(message.tenant_id, message).await;
        }
        batch.clear();
    }
}

async fn deliver(
    state: &AppState,
    config: &QueueConfig,
    gate: &ChannelGate,
    completed: &mpsc::UnboundedSender<Delivered>,
    job: QueueJob,
    dispatch: Option<Dispatch>,
) {
    // A busy or paused channel hands the job back rather than holding a worker slot.
    let paused = *gate.paused_until.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(until) = paused.filter(|until| *until > Instant::now()) {
        let at = Utc::now() + chrono::Duration::from_std(until - Instant::now()).unwrap_or_default();
        return record(state.store.retry_job(&job, at, None).await);
    }
    if gate.waiting.fetch_add(1, Ordering::SeqCst) >= config.per_channel * 2 {
        gate.waiting.fetch_sub(1, Ordering::SeqCst);
        return record(state.store.retry_job(&job, Utc::now() + chrono::Duration::milliseconds(100), None).await);
    }
    let channel_slot = gate.slots.clone().acquire_owned().await;
    gate.waiting.fetch_sub(1, Ordering::SeqCst);
    let Ok(_channel_slot) = channel_slot else { return };

    let Some(dispatch) = dispatch else {
        return fail(state, &job, "the message, its conversation or its channel no longer exists").await;
    };
    match send(state, &dispatch).await {
        Ok(provider_message_id) => {
            if let Err(mpsc::error::SendError((job, _))) = completed.send((job, provider_message_id)) {
                tracing::error!(job.id = %job.id, "queue: delivered after the completer stopped; its lease will re-send it");
            }
        }
        Err(Failure::Permanent(error)) => fail(state, &job, &error).await,
        Err(Failure::Transient(error)) if job.attempts + 1 >= job.max_attempts => {
            fail(state, &job, &format!("gave up after {} attempts: {error}", job.attempts + 1)).await
        }
        Err(Failure::Transient(error)) => {
            tracing::info!(job.id = %job.id, attempt = job.attempts + 1, error = %error, "queue: delivery failed, will retry");
            record(state.store.retry_job(&job, Utc::now() + backoff(config, job.attempts + 1), Some(&error)).await)
        }
        Err(Failure::Elsewhere) => {
            // Another replica runs this channel's session: hand the job back for its worker.
            record(state.store.retry_job(&job, Utc::now() + chrono::Duration::seconds(1), None).await)
        }
        Err(Failure::RateLimited(wait)) => {
            *gate.paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + wait);
            tracing::info!(job.id = %job.id, wait_ms = wait.as_millis() as u64, "queue: provider rate limit, pausing the channel");
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            record(state.store.retry_job(&job, at, Some("rate limited by the provider")).await)
        }
    }
}

enum Failure {
    Transient(String),
    /// The channel's session runs on another replica (native bridges).
    Elsewhere,
    RateLimited(Duration),
    Permanent(String),
}

/// One delivery through the channel's adapter: the provider's message id, or why not.
async fn send(state: &AppState, dispatch: &Dispatch) -> Result<String, Failure> {
    let recipient =
        dispatch.conversation.external_conversation_id.clone().unwrap_or_else(|| dispatch.customer.external_id.clone());
    let attachments = dispatch
        .message
        .attachments
        .0
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|a| {
                    Some(OutboundAttachment {
                        kind: attachment_kind(a["kind"].as_str()?),
                        url: a["url"].as_str()?.to_owned(),
                        file_name: a["fileName"].as_str().map(str::to_owned),
                        mime_type: a["mimeType"].as_str().map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let message = OutboundMessage {
        message_id: dispatch.message.id.to_string(),
        recipient,
        text: dispatch.message.text.clone(),
        attachments,
    };
    match dispatch.channel.channel_type {
        ChannelType::TelegramUser => return send_telegram_user(state, dispatch, &message).await,
        ChannelType::Whatsapp => return send_whatsapp(state, dispatch, &message).await,
        _ => {}
    }
    let call = channel_call(state, &dispatch.channel).map_err(|e| Failure::Transient(e.message))?;
    match state.plugins.send(dispatch.channel.channel_type, call, &message).await {
        Ok(Ok(receipt)) => Ok(receipt.provider_message_id),
        Ok(Err(SendError::Transient(why))) => Err(Failure::Transient(why)),
        Ok(Err(SendError::RateLimited(ms))) => Err(Failure::RateLimited(Duration::from_millis(ms.max(100)))),
        Ok(Err(SendError::Permanent(why))) => Err(Failure::Permanent(why)),
        Err(PluginError::NoPlugin(kind)) => Err(Failure::Permanent(format!("no adapter sends on {kind} channels"))),
        Err(other) => Err(Failure::Transient(other.to_string())),
    }
}

/// A Telegram user account sends through the bridge's live client: text, with the first
/// attachment by URL (Telegram fetches it): photos as photos, anything else as a document.
async fn send_telegram_user(state: &AppState, dispatch: &Dispatch, message: &OutboundMessage) -> Result<String, Failure> {
    let channel = &dispatch.channel;
    if channel.status != ChannelStatus::Connected {
        return Err(Failure::Permanent(format!("the Telegram account is not connected (status {})", channel.status)));
    }
    let media = message.attachments.first().map(|a| match a.kind {
        AttachmentKind::Image => TelegramMedia::PhotoUrl(a.url.clone()),
        _ => TelegramMedia::DocumentUrl(a.url.clone()),
    });
    let send = TelegramSend { text: message.text.clone(), media };
    match state.telegram.send(channel.id, &message.recipient, &send).await {
        Ok(provider_message_id) => Ok(provider_message_id),
        Err(BridgeSendError::NotLiveHere) => {
            let session = state.store.telegram_session_of_channel(channel.tenant_id, channel.id).await.ok().flatten();
            let lease = session.and_then(|s| Some((s.lease_owner?, s.lease_until?)));
            Err(not_live_here(lease, state.telegram.owner(), "Telegram"))
        }
        Err(BridgeSendError::Telegram(TelegramError::FloodWait(seconds))) => {
            Err(Failure::RateLimited(Duration::from_secs(u64::from(seconds.max(1)))))
        }
        Err(BridgeSendError::Telegram(err @ (TelegramError::Unauthorized(_) | TelegramError::Refused(_)))) => {
            Err(Failure::Permanent(err.to_string()))
        }
        Err(BridgeSendError::Telegram(err)) => Err(Failure::Transient(err.to_string())),
    }
}

/// WhatsApp sends through the bridge's live client (paced per number): the first attachment is
/// fetched from its URL with the guarded fetcher (http(s), no private addresses, size cap),
/// uploaded and sent with the text as caption; a kind WhatsApp cannot send this way (a sticker)
/// falls back to the text with the link.
async fn send_whatsapp(state: &AppState, dispatch: &Dispatch, message: &OutboundMessage) -> Result<String, Failure> {
    let channel = &dispatch.channel;
    match channel.status {
        ChannelStatus::Connected => {}
        ChannelStatus::Connecting => return Err(Failure::Transient("the WhatsApp channel is not paired yet".into())),
        other => return Err(Failure::Permanent(format!("the WhatsApp channel is not connected (status {other})"))),
    }
    let mut text = message.text.clone();
    let media = match message.attachments.first() {
        None => None,
        Some(attachment) => match whatsapp_media_kind(attachment.kind) {
            Some(kind) => Some(fetch_media(state, attachment, kind, text.take()).await?),
            None => {
                text = Some(format!("{}{}", text.map(|t| format!("{t}\n")).unwrap_or_default(), attachment.url));
                None
            }
        },
    };
    match state.whatsapp.send(channel.id, &message.recipient, text.as_deref(), media).await {
        Ok(id) => Ok(id),
        Err(WhatsAppSendError::NotLiveHere) => {
            let session = state.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await.ok().flatten();
            let lease = session.and_then(|s| Some((s.lease_owner?, s.lease_until?)));
            Err(not_live_here(lease, state.whatsapp.owner(), "WhatsApp"))
        }
        Err(WhatsAppSendError::WhatsApp(WaSendError::Refused(why))) => Err(Failure::Permanent(why)),
        Err(WhatsAppSendError::WhatsApp(WaSendError::Unavailable(why))) => Err(Failure::Transient(why)),
    }
}

/// A bridged session that does not run here: another replica holding a live lease sends it (the
/// job goes back without counting an attempt); otherwise nobody can now (ours is reconnecting, or
/// no replica runs it): a retry that counts.
fn not_live_here(lease: Option<(String, chrono::DateTime<Utc>)>, ours: &str, bridge: &str) -> Failure {
    match lease {
        Some((owner, until)) if owner != ours && until > Utc::now() => Failure::Elsewhere,
        _ => Failure::Transient(format!("the {bridge} session is not running (reconnecting, or no server runs it)")),
    }
}

fn whatsapp_media_kind(kind: AttachmentKind) -> Option<WaMediaKind> {
    match kind {
        AttachmentKind::Image => Some(WaMediaKind::Image),
        AttachmentKind::Video => Some(WaMediaKind::Video),
        AttachmentKind::Audio => Some(WaMediaKind::Audio),
        AttachmentKind::Voice => Some(WaMediaKind::Voice),
        AttachmentKind::Document => Some(WaMediaKind::Document),
        _ => None,
    }
}

/// Fetches a user-given media URL through the guarded fetcher (never the host's own network).
async fn fetch_media(
    state: &AppState,
    attachment: &OutboundAttachment,
    kind: WaMediaKind,
    caption: Option<String>,
) -> Result<WaMedia, Failure> {
    let host = reqwest::Url::parse(&attachment.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let request = FetchRequest { method: "GET".into(), url: attachment.url.clone(), headers: Vec::new(), body: None };
    let deadline = Instant::now() + Duration::from_secs(30);
    let fetched = state.plugins.fetcher().fetch(request, &[host], &Default::default(), deadline).await;
    let response = match fetched {
        Ok(response) if (200..300).contains(&response.status) => response,
        Ok(response) if (400..500).contains(&response.status) => {
            return Err(Failure::Permanent(format!("the media URL answered {}", response.status)));
        }
        Ok(response) => return Err(Failure::Transient(format!("the media URL answered {}", response.status))),
        Err(FetchFailure::Timeout) => return Err(Failure::Transient("fetching the media timed out".into())),
        Err(FetchFailure::Failed(why)) => return Err(Failure::Transient(format!("cannot fetch the media: {why}"))),
        Err(FetchFailure::TooLarge) => return Err(Failure::Permanent("the media is larger than the 8 MiB limit".into())),
        Err(FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why)) => {
            return Err(Failure::Permanent(format!("the media URL is refused: {why}")));
        }
    };
    let mime_type = attachment.mime_type.clone().or_else(|| {
        response.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-type")).map(|(_, value)| value.clone())
    });
    let file_name = attachment.file_name.clone().or_else(|| attachment.url.rsplit('/').next().map(str::to_owned));
    Ok(WaMedia { kind, bytes: response.body, mime_type, file_name, caption })
}

async fn fail(state: &AppState, job: &QueueJob, error: &str) {
    tracing::warn!(job.id = %job.id, message.id = %job.message_id, error, "queue: job is dead");
    match state.store.kill_job(job, error).await {
        Ok(message) => state.realtime.message_updated(job.tenant_id, &message).await,
        Err(err) => tracing::error!(job.id = %job.id, error = %err, "queue: cannot record the dead job"),
    }
}

fn record(result: Result<(), StoreError>) {
    if let Err(err) = result {
        tracing::warn!(error = %err, "queue: cannot update a job; its lease will return it");
    }
}

/// `base * 2^(attempt-1)`, capped, times a jitter in [0.5, 1.5).
fn backoff(config: &QueueConfig, attempt: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let delay = config.base_backoff.saturating_mul(1 << exponent).min(config.max_backoff);
    let jitter = 0.5 + rand::random::<f64>();
    chrono::Duration::from_std(delay.mul_f64(jitter)).unwrap_or(chrono::Duration::seconds(60))
}

fn attachment_kind(kind: &str) -> AttachmentKind {
    match kind {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "voice" => AttachmentKind::Voice,
        "sticker" => AttachmentKind::Sticker,
        "document" => AttachmentKind::Document,
        _ => AttachmentKind::Other,
    }
}
