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

use crate::channels::adapter::{AttachmentKind, OutboundAttachment, OutboundMessage, SendFailure};
use crate::config::QueueConfig;
use crate::state::AppState;
use crate::store::{Dispatch, QueueJob, StoreError};

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
    let result = send(state, &dispatch).await;
    let outcome = match &result {
        Ok(_) => Some("sent"),
        Err(SendFailure::Permanent(_)) => Some("dead"),
        Err(SendFailure::Transient(_)) if job.attempts + 1 >= job.max_attempts => Some("dead"),
        Err(SendFailure::Transient(_) | SendFailure::RateLimited(_)) => Some("retry"),
        Err(SendFailure::SessionElsewhere) => None,
    };
    if let Some(outcome) = outcome {
        metrics::counter!("omnichat_outbound_deliveries_total",
            "channel_type" => dispatch.channel.channel_type.as_str().to_owned(), "outcome" => outcome)
        .increment(1);
    }
    match result {
        Ok(provider_message_id) => {
            if let Err(mpsc::error::SendError((job, _))) = completed.send((job, provider_message_id)) {
                tracing::error!(job.id = %job.id, "queue: delivered after the completer stopped; its lease will re-send it");
            }
        }
        Err(SendFailure::Permanent(error)) => fail(state, &job, &error).await,
        Err(SendFailure::Transient(error)) if job.attempts + 1 >= job.max_attempts => {
            fail(state, &job, &format!("gave up after {} attempts: {error}", job.attempts + 1)).await
        }
        Err(SendFailure::Transient(error)) => {
            tracing::info!(job.id = %job.id, attempt = job.attempts + 1, error = %error, "queue: delivery failed, will retry");
            record(state.store.retry_job(&job, Utc::now() + backoff(config, job.attempts + 1), Some(&error)).await)
        }
        Err(SendFailure::SessionElsewhere) => {
            // Another replica runs this channel's session: hand the job back for its worker.
            record(state.store.retry_job(&job, Utc::now() + chrono::Duration::seconds(1), None).await)
        }
        Err(SendFailure::RateLimited(wait)) => {
            *gate.paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + wait);
            tracing::info!(job.id = %job.id, wait_ms = wait.as_millis() as u64, "queue: provider rate limit, pausing the channel");
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            record(state.store.retry_job(&job, at, Some("rate limited by the provider")).await)
        }
    }
}

/// One delivery through the channel's adapter: the provider's message id, or why not.
async fn send(state: &AppState, dispatch: &Dispatch) -> Result<String, SendFailure> {
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
                        kind: AttachmentKind::parse(a["kind"].as_str()?),
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
    let channel_type = &dispatch.channel.channel_type;
    let adapter = state
        .channels
        .get(channel_type)
        // Transient: a plugin missing for a moment (a reload in progress, plugins.toml being
        // edited) must not kill every queued reply of its type; the attempts run out if it stays away.
        .ok_or_else(|| SendFailure::Transient(format!("no adapter is loaded for {channel_type} channels")))?;
    adapter.send(&dispatch.channel, &message).await
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
