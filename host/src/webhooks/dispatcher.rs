//! The dispatcher: turns outbox events into deliveries, and delivers them.
//!
//! One loop per process (`OMNICHAT_WEBHOOK_WORKER`): it leases a batch of outbox events, renders
//! each event's body once and stores one delivery per subscription that wants it (the outbox row
//! is removed in the same transaction), then leases due deliveries (the head of each
//! subscription's conversation only, so a conversation's events arrive in order) and sends them
//! concurrently. A lease that runs out (a crashed replica) hands the work to another dispatcher:
//! delivery is at-least-once, and `X-OmniChat-Delivery` lets a receiver drop a repeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::signature;
use crate::agents::model::AgentRunView;
use crate::config::WebhookConfig;
use crate::plugins::fetch::{FetchFailure, check_target};
use crate::state::AppState;
use crate::store::{
    NewWebhookDelivery, StoreResult, WebhookAttempt, WebhookDeliveryRow, WebhookDeliveryStatus, WebhookEventRow,
    WebhookSubscriptionRow,
};

/// Outbox events fanned out per transaction.
const EVENT_BATCH: i64 = 256;
/// The most of an answer's body read (the rest is dropped unread).
const RESPONSE_CAP: usize = 64 * 1024;
/// The most of an answer's body stored with the delivery.
const STORED_BODY: usize = 1024;
/// Attempts kept in a delivery's log.
const LOG_LEN: usize = 20;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Runs until `shutdown` turns true, then lets deliveries in flight finish (or hands them back).
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let config = state.config.webhooks.clone();
    let worker = format!("webhooks-{}", Uuid::new_v4());
    let lease = chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::seconds(60));
    let client = state.bridge_deps.fetcher.http_client();
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut inflight = JoinSet::new();
    tracing::info!(worker = %worker, "webhook dispatcher started");
    while !*shutdown.borrow() {
        while inflight.try_join_next().is_some() {}
        let fanned = fan_out(&state, &worker, lease).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "webhooks: cannot fan events out; retrying");
            0
        });
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            state.store.claim_webhook_deliveries(&worker, lease, free as i64).await.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "webhooks: cannot claim deliveries; retrying");
                Vec::new()
            })
        };
        let busy = fanned > 0 || !claimed.is_empty();
        for delivery in claimed {
            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
            let (state, worker, client) = (state.clone(), worker.clone(), client.clone());
            inflight.spawn(async move {
                let _permit = permit;
                deliver_claimed(&state, &client, &worker, delivery).await;
            });
        }
        if !busy {
            tokio::select! {
                _ = state.webhooks.woken() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.changed() => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            }
        }
    }
    let drained =
        tokio::time::timeout(config.timeout + Duration::from_secs(1), async { while inflight.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        inflight.abort_all();
    }
    if let Err(err) = state.store.release_webhook_work(&worker).await {
        tracing::warn!(error = %err, "webhooks: cannot hand work back; its leases will");
    }
}

/// Fans one batch of outbox events out; returns how many events it took.
async fn fan_out(state: &AppState, worker: &str, lease: chrono::Duration) -> StoreResult<usize> {
    let events = state.store.claim_webhook_events(worker, lease, EVENT_BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut subscriptions: HashMap<Uuid, Vec<WebhookSubscriptionRow>> = HashMap::new();
    let mut fanned = Vec::with_capacity(events.len());
    for event in &events {
        let subscriptions = match subscriptions.entry(event.tenant_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(state.store.active_webhook_subscriptions(event.tenant_id).await?)
            }
        };
        let wanted: Vec<&WebhookSubscriptionRow> = subscriptions.iter().filter(|s| s.events.0.contains(&event.event)).collect();
        let mut deliveries = Vec::new();
        // An entity deleted since (a channel removed) has nothing left to report.
        if !wanted.is_empty()
            && let Some(data) = render(state, event).await?
        {
            for subscription in wanted {
                let id = Uuid::now_v7();
                let payload = json!({
                    "id": id,
                    "event": event.event,
                    "tenantId": event.tenant_id,
                    "occurredAt": event.occurred_at,
                    "data": data,
                });
                deliveries.push(NewWebhookDelivery {
                    id,
                    tenant_id: event.tenant_id,
                    subscription_id: subscription.id,
                    event: event.event.clone(),
                    payload: payload.to_string(),
                    ordering_key: event.ordering_key,
                    event_seq: event.seq,
                });
            }
        }
        fanned.push((event.seq, deliveries));
    }
    state.store.fan_out_webhook_events(worker, &fanned).await?;
    Ok(events.len())
}

/// The event's `data`: the entity as the REST API shows it, with its status as it was at the change.
async fn render(state: &AppState, event: &WebhookEventRow) -> StoreResult<Option<Value>> {
    let (tenant, id) = (event.tenant_id, event.entity_id);
    let store = &state.store;
    let mut data = match event.event.as_str() {
        "message.created" | "message.updated" => store.get_message(tenant, id).await?.map(|m| serde_json::to_value(&m)),
        "conversation.created" | "conversation.updated" => {
            store.get_conversation(tenant, id).await?.map(|c| serde_json::to_value(&c))
        }
        "customer.created" => store.get_customer(tenant, id).await?.map(|c| serde_json::to_value(&c)),
        "channel.status" => {
            store.get_channel(tenant, id).await?.map(|c| serde_json::to_value(crate::channels::handlers::redacted(c)))
        }
        "agent.run.completed" => store.get_agent_run(tenant, id).await?.map(|r| serde_json::to_value(AgentRunView::of(&r))),
        other => {
            tracing::warn!(event = other, "webhooks: an outbox event nobody renders; dropped");
            None
        }
    };
    if let (Some(Ok(Value::Object(fields))), Some(status)) = (data.as_mut(), event.status.as_ref())
        && fields.contains_key("status")
    {
        fields.insert("status".into(), Value::String(status.clone()));
    }
    Ok(data.and_then(|rendered| {
        rendered.map_err(|err| tracing::error!(error = %err, event = %event.event, "webhooks: cannot render an event")).ok()
    }))
}

/// Delivers a delivery the dispatcher leased, and records the attempt.
async fn deliver_claimed(state: &AppState, client: &reqwest::Client, worker: &str, delivery: WebhookDeliveryRow) {
    let subscription = match state.store.get_webhook_subscription(delivery.tenant_id, delivery.subscription_id).await {
        Ok(Some(subscription)) => subscription,
        // Deleted meanwhile: its deliveries went with it.
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "webhooks: cannot load a subscription; the lease will return the delivery");
            return;
        }
    };
    if let Err(err) = deliver(state, client, worker, &subscription, &delivery, true).await {
        tracing::warn!(error = %err, delivery.id = %delivery.id, "webhooks: cannot record an attempt; the lease will return it");
    }
}

/// Sends `delivery` (leased to `worker`) once and records how it went: DELIVERED, PENDING for a
/// retry (when `retry` and the failure is worth one), or DEAD. Returns the delivery as stored.
pub async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    worker: &str,
    subscription: &WebhookSubscriptionRow,
    delivery: &WebhookDeliveryRow,
    retry: bool,
) -> StoreResult<Option<WebhookDeliveryRow>> {
    let config = &state.config.webhooks;
    let secret = match state.secrets.open(&subscription.secret) {
        Ok(secret) => secret,
        Err(_) => {
            let sent = Sent::refused("the signing secret cannot be opened (was OMNICHAT_SECRET_KEY changed?)");
            return record(state, worker, delivery, &sent, false, config).await;
        }
    };
    let sent =
        send(client, &subscription.url, &secret, delivery, config.timeout, state.config.providers.allow_private_fetch).await;
    record(state, worker, delivery, &sent, retry, config).await
}

/// How one request went.
struct Sent {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
    /// Retrying cannot help (a refused target).
    permanent: bool,
    retry_after: Option<Duration>,
    took: Duration,
}

impl Sent {
    fn refused(why: &str) -> Self {
        Self { status: None, body: None, error: Some(why.to_owned()), permanent: true, retry_after: None, took: Duration::ZERO }
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    delivery: &WebhookDeliveryRow,
    timeout: Duration,
    allow_private: bool,
) -> Sent {
    let target = match reqwest::Url::parse(url) {
        Ok(target) => target,
        Err(err) => return Sent::refused(&format!("bad URL: {err}")),
    };
    if let Err(FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why)) = check_target(&target, allow_private) {
        return Sent::refused(&why);
    }
    let started = Instant::now();
    let request = client
        .post(target)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-OmniChat-Event", delivery.event.as_str())
        .header("X-OmniChat-Delivery", delivery.id.to_string())
        .header("X-OmniChat-Signature", signature(secret, Utc::now().timestamp(), &delivery.payload))
        .body(delivery.payload.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            return Sent {
                status: None,
                body: None,
                error: Some(describe(&err, timeout)),
                permanent: false,
                retry_after: None,
                took: started.elapsed(),
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    let mut error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_CAP - body.len())]);
                if body.len() >= RESPONSE_CAP {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                error = Some(describe(&err, timeout));
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&body);
    let stored: String = text.chars().take(STORED_BODY).collect();
    Sent {
        status: Some(status),
        body: (!stored.is_empty()).then_some(stored),
        error: error.or_else(|| (!(200..300).contains(&status)).then(|| format!("HTTP {status}"))),
        permanent: false,
        retry_after,
        took: started.elapsed(),
    }
}

/// A transport error without its URL (a receiver's URL may hold a token in its path or query).
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    let mut text = if err.is_connect() { "cannot connect".to_owned() } else { "request failed".to_owned() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Whether a failed attempt may be tried again: no answer, a timeout, 408, 429 or 5xx.
fn retryable(sent: &Sent) -> bool {
    !sent.permanent && sent.status.is_none_or(|s| s == 408 || s == 429 || s >= 500)
}

async fn record(
    state: &AppState,
    worker: &str,
    delivery: &WebhookDeliveryRow,
    sent: &Sent,
    retry: bool,
    config: &WebhookConfig,
) -> StoreResult<Option<WebhookDeliveryRow>> {
    let now = Utc::now();
    let delivered = sent.error.is_none() && sent.status.is_some_and(|s| (200..300).contains(&s));
    let attempt_number = delivery.attempts + 1;
    let (status, next_attempt_at) = if delivered {
        (WebhookDeliveryStatus::Delivered, now)
    } else if retry && retryable(sent) && attempt_number < config.max_attempts {
        let wait = backoff(config, attempt_number).max(sent.retry_after.unwrap_or_default().min(MAX_BACKOFF));
        (WebhookDeliveryStatus::Pending, now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)))
    } else {
        (WebhookDeliveryStatus::Dead, now)
    };
    let error = if delivered { None } else { sent.error.clone() };
    let mut log = match &delivery.attempt_log.0 {
        Value::Array(entries) => entries.clone(),
        _ => Vec::new(),
    };
    log.push(json!({
        "at": now,
        "responseStatus": sent.status,
        "error": error,
        "durationMs": u64::try_from(sent.took.as_millis()).unwrap_or(u64::MAX),
    }));
    if log.len() > LOG_LEN {
        log.drain(..log.len() - LOG_LEN);
    }
    let attempt = WebhookAttempt {
        status,
        next_attempt_at,
        response_status: sent.status.map(i32::from),
        response_body: sent.body.clone(),
        error,
        attempt_log: Value::Array(log),
        disable_after: config.disable_after,
    };
    let stored = state.store.record_webhook_attempt(delivery, worker, &attempt).await?;
    let outcome = match status {
        WebhookDeliveryStatus::Delivered => "delivered",
        WebhookDeliveryStatus::Pending => "retry",
        _ => "dead",
    };
    metrics::counter!("omnichat_webhook_deliveries_total", "outcome" => outcome).increment(1);
    tracing::info!(
        delivery.id = %delivery.id, event = %delivery.event, outcome = status.as_str(), response.status = ?sent.status,
        attempt = attempt_number, "webhook delivery attempted"
    );
    Ok(stored)
}

/// `base * 2^(attempt-1)`, capped at an hour, times a jitter in [0.5, 1.5).
fn backoff(config: &WebhookConfig, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let delay = config.base_backoff.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    delay.mul_f64(0.5 + rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(status: Option<u16>) -> Sent {
        Sent { status, body: None, error: Some("x".into()), permanent: false, retry_after: None, took: Duration::ZERO }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for status in [None, Some(408), Some(429), Some(500), Some(503)] {
            assert!(retryable(&sent(status)), "{status:?}");
        }
        for status in [Some(400), Some(401), Some(404), Some(410), Some(301)] {
            assert!(!retryable(&sent(status)), "{status:?}");
        }
        assert!(!retryable(&Sent::refused("private address")));
    }
}
