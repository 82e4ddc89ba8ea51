//! Subscriptions and deliveries as the API speaks them, and the checks on what a tenant sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::EVENTS;
use crate::error::ApiError;
use crate::plugins::fetch::{FetchFailure, check_target};
use crate::store::{WebhookDeliveryRow, WebhookDeliveryStatus, WebhookSubscriptionRow};

const MAX_URL_LEN: usize = 2048;
const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 256;

/// A subscription to create, or the fields to change (PATCH: omitted fields keep their value).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Where deliveries are POSTed: an `http(s)` URL of a public host (private addresses only
    /// with `OMNICHAT_ALLOW_PRIVATE_FETCH`).
    #[schema(example = "https://hooks.example.com/omnichat")]
    pub url: Option<String>,
    /// The events to deliver (at least one; `*` for all).
    #[schema(example = json!(["message.created", "conversation.updated"]))]
    pub events: Option<Vec<String>>,
    /// The signing secret (16 to 256 characters). Generated when omitted on create; shown once.
    #[schema(example = "whsec_3b1f0c6a7d9e4f2a8c5b1d0e9f7a6c4b")]
    pub secret: Option<String>,
    /// Default true. Switching a subscription on again clears why the dispatcher switched it off.
    pub active: Option<bool>,
    #[schema(example = "CRM sync")]
    pub description: Option<String>,
}

/// A subscription. Its secret is never shown again after it was created.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: Uuid,
    #[schema(example = "https://hooks.example.com/omnichat")]
    pub url: String,
    #[schema(example = json!(["message.created"]))]
    pub events: Vec<String>,
    pub active: bool,
    pub description: Option<String>,
    /// Why the dispatcher switched it off (deliveries kept failing); `null` otherwise.
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row, of any delivery.
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionView {
    pub fn of(row: &WebhookSubscriptionRow) -> Self {
        Self {
            id: row.id,
            url: row.url.clone(),
            events: row.events.0.clone(),
            active: row.is_active,
            description: row.description.clone(),
            disabled_reason: row.disabled_reason.clone(),
            consecutive_failures: row.consecutive_failures,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A subscription just created, with its signing secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    #[schema(example = "whsec_3b1f0c6a7d9e4f2a8c5b1d0e9f7a6c4b")]
    pub secret: String,
}

/// One delivery of an event to a subscription, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: Uuid,
    pub subscription_id: Uuid,
    #[schema(example = "message.created")]
    pub event: String,
    pub status: WebhookDeliveryStatus,
    /// Attempts of the current run (a redelivery starts a new run).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last answer (`null`: no answer, see `lastError`).
    pub response_status: Option<i32>,
    /// The last answer's body, cut to 1 KiB.
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    /// The latest attempts, oldest first: `[{at, responseStatus, error, durationMs}]`.
    #[schema(value_type = Vec<Object>)]
    pub attempt_log: Value,
    /// The request body sent: `{id, event, tenantId, occurredAt, data}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DeliveryView {
    pub fn of(row: &WebhookDeliveryRow) -> Self {
        Self {
            id: row.id,
            subscription_id: row.subscription_id,
            event: row.event.clone(),
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            response_status: row.response_status,
            response_body: row.response_body.clone(),
            last_error: row.last_error.clone(),
            attempt_log: row.attempt_log.0.clone(),
            payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
            delivered_at: row.delivered_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A target URL a tenant gave: `http(s)`, no credentials, a public host unless private fetches
/// are allowed (checked again at each delivery, once its name is resolved).
pub fn target_url(raw: &str, allow_private: bool) -> Result<String, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(ApiError::validation(format!("url: must be an http(s) URL of at most {MAX_URL_LEN} characters")));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| ApiError::validation(format!("url: {e}")))?;
    check_target(&url, allow_private).map_err(|failure| match failure {
        FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why) => ApiError::validation(format!("url: {why}")),
        _ => ApiError::validation("url: not a URL deliveries may go to"),
    })?;
    Ok(url.to_string())
}

/// Known event names, each once, in the order given; `*` stands for all of them.
pub fn events(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::validation(format!("events: name at least one of {}", EVENTS.join(", "))));
    }
    if raw.iter().any(|e| e == "*") {
        return Ok(EVENTS.iter().map(|e| (*e).to_owned()).collect());
    }
    let mut chosen: Vec<String> = Vec::with_capacity(raw.len());
    for (i, event) in raw.iter().enumerate() {
        if !EVENTS.contains(&event.as_str()) {
            return Err(ApiError::validation(format!("events[{i}]: unknown event {event:?}; known: {}", EVENTS.join(", "))));
        }
        if !chosen.contains(event) {
            chosen.push(event.clone());
        }
    }
    Ok(chosen)
}

/// A signing secret given by the tenant.
pub fn secret(raw: &str) -> Result<String, ApiError> {
    let len = raw.chars().count();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::validation(format!(
            "secret: {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters without spaces or control characters"
        )));
    }
    Ok(raw.to_owned())
}

/// A new random signing secret: `whsec_` and 32 random bytes in hex.
pub fn generate_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_deduplicated_and_star_means_all() {
        assert_eq!(events(&["message.created".into(), "message.created".into()]).ok(), Some(vec!["message.created".into()]));
        assert_eq!(events(&["*".into()]).map(|e| e.len()).ok(), Some(EVENTS.len()));
        assert!(events(&[]).is_err());
        assert!(events(&["message.deleted".into()]).is_err());
    }

    #[test]
    fn targets_must_be_public_http_urls() {
        assert!(target_url("https://hooks.example.com/x", false).is_ok());
        assert!(target_url("ftp://hooks.example.com/x", false).is_err());
        assert!(target_url("http://127.0.0.1:9/x", false).is_err());
        assert!(target_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(target_url("https://user:pw@hooks.example.com/x", true).is_err());
    }

    #[test]
    fn secrets_are_long_enough_and_generated_ones_differ() {
        assert!(secret("short").is_err());
        assert!(secret("a secret with spaces in it").is_err());
        assert!(secret("0123456789abcdef").is_ok());
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && a.len() == 70 && a != b);
    }
}
