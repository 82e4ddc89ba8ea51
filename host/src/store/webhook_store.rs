//! The outgoing webhooks' part of the store: tenants' subscriptions, the outbox the database's
//! triggers write in the transaction of each change, and the deliveries the dispatcher leases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{StoreResult, WebhookDeliveryStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookSubscriptionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub events: Json<Vec<String>>,
    /// Sealed with `OMNICHAT_SECRET_KEY`.
    pub secret: String,
    pub is_active: bool,
    pub description: Option<String>,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscription as created, or as it replaces the stored one.
#[derive(Debug, Clone)]
pub struct WebhookSubscriptionValues {
    pub url: String,
    pub events: Vec<String>,
    /// Sealed.
    pub secret: String,
    pub is_active: bool,
    pub description: Option<String>,
}

/// A change the triggers recorded, waiting to be fanned out to subscriptions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookEventRow {
    pub seq: i64,
    pub tenant_id: Uuid,
    pub event: String,
    pub entity_id: Uuid,
    pub ordering_key: Option<Uuid>,
    /// The entity's status at the change.
    pub status: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewWebhookDelivery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    pub event: String,
    pub payload: String,
    pub ordering_key: Option<Uuid>,
    pub event_seq: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookDeliveryRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    pub event: String,
    pub payload: String,
    pub ordering_key: Option<Uuid>,
    pub event_seq: i64,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub attempt_log: Json<Value>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How one attempt ended, as [`WebhookStore::record_webhook_attempt`] writes it.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    /// DELIVERED, PENDING (retry at `next_attempt_at`) or DEAD.
    pub status: WebhookDeliveryStatus,
    pub next_attempt_at: DateTime<Utc>,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The attempt log with this attempt added.
    pub attempt_log: Value,
    /// Failed attempts in a row after which the subscription is switched off.
    pub disable_after: i32,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_webhook_subscription(
        &self,
        tenant_id: Uuid,
        values: &WebhookSubscriptionValues,
    ) -> StoreResult<WebhookSubscriptionRow>;
    async fn list_webhook_subscriptions(&self, tenant_id: Uuid) -> StoreResult<Vec<WebhookSubscriptionRow>>;
    async fn get_webhook_subscription(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookSubscriptionRow>>;
    /// Replaces the subscription's values; switching it on again clears the dispatcher's reason
    /// and its failure count.
    async fn update_webhook_subscription(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        values: &WebhookSubscriptionValues,
    ) -> StoreResult<Option<WebhookSubscriptionRow>>;
    /// Deletes the subscription with its deliveries.
    async fn delete_webhook_subscription(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// The tenant's subscriptions that are on.
    async fn active_webhook_subscriptions(&self, tenant_id: Uuid) -> StoreResult<Vec<WebhookSubscriptionRow>>;

    /// Leases up to `limit` outbox events, oldest first (PostgreSQL skips rows other replicas hold).
    async fn claim_webhook_events(&self, worker: &str, lease: chrono::Duration, limit: i64) -> StoreResult<Vec<WebhookEventRow>>;
    /// In ONE transaction: each event `worker` still holds is removed from the outbox and its
    /// deliveries are stored (an event whose lease another worker took over is left to it).
    async fn fan_out_webhook_events(&self, worker: &str, events: &[(i64, Vec<NewWebhookDelivery>)]) -> StoreResult<()>;
    /// Leases up to `limit` due deliveries of active subscriptions, keeping each conversation's
    /// order: a delivery waits while an earlier one of its subscription and ordering key is
    /// PENDING or SENDING.
    async fn claim_webhook_deliveries(
        &self,
        worker: &str,
        lease: chrono::Duration,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRow>>;
    /// Stores a delivery already leased to `worker` (a test delivery sent at once).
    async fn insert_webhook_delivery(&self, delivery: &NewWebhookDelivery, worker: &str) -> StoreResult<WebhookDeliveryRow>;
    /// Records an attempt of a delivery `worker` holds, and the subscription's run of failures
    /// (reset by a success; past `disable_after` the subscription is switched off with a reason).
    /// Returns the delivery as stored, or `None` when the lease was lost.
    async fn record_webhook_attempt(
        &self,
        delivery: &WebhookDeliveryRow,
        worker: &str,
        attempt: &WebhookAttempt,
    ) -> StoreResult<Option<WebhookDeliveryRow>>;
    /// Hands back the events and deliveries `worker` holds (graceful shutdown).
    async fn release_webhook_work(&self, worker: &str) -> StoreResult<()>;
    /// A subscription's deliveries, newest first.
    async fn list_webhook_deliveries(
        &self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        status: Option<WebhookDeliveryStatus>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRow>>;
    async fn get_webhook_delivery(
        &self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<WebhookDeliveryRow>>;
    /// Makes a DELIVERED, DEAD or PENDING delivery due now with a fresh run of attempts. `None`
    /// when it does not exist; a SENDING one is returned unchanged.
    async fn redeliver_webhook_delivery(
        &self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<WebhookDeliveryRow>>;
}
