//! PostgreSQL: production and multi-replica. The database named by the URL is created when missing.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::agent_sql::impl_agent_store;
use super::bridge_sql::impl_bridge_store;
use super::channel_cache::ChannelCache;
use super::direct::DirectConnections;
use super::group_commit::{BatchOutcome, GroupCommit, IngestBatch};
use super::sql::{HasDb, impl_store};
use super::webhook_sql::impl_webhook_store;
use super::*;

/// Connections of each pool: the shared one, and the webhook path's (see [`DirectConnections`]).
const MAX_CONNECTIONS: u32 = 32;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound batches committing at once (see [`GroupCommit`]): one can run while another waits for
/// its WAL flush; more would only split the queue into smaller batches.
const INGEST_BATCHES: usize = 2;
/// Messages per batch: each is a subtransaction, and PostgreSQL keeps 64 of them in shared memory.
const INGEST_BATCH_SIZE: usize = 64;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    webhook: Arc<DirectConnections>,
    group_commit: Arc<GroupCommit>,
    channels: Arc<ChannelCache>,
}

impl HasDb for PostgresStore {
    type Db = Postgres;
}

impl PostgresStore {
    const MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        if !Postgres::database_exists(url).await.map_err(StoreError::Unavailable)? {
            tracing::info!(database = options.get_database().unwrap_or_default(), "creating the database");
            if let Err(err) = Postgres::create_database(url).await {
                // Another replica may have created it between our check and our CREATE.
                if !Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(StoreError::Unavailable(err));
                }
            }
        }
        let webhook = Arc::new(DirectConnections::new(options.clone(), MAX_CONNECTIONS as usize, ACQUIRE_TIMEOUT));
        let pool = PgPoolOptions::new()
            // Enough for many concurrent transactions to share a WAL flush (group commit).
            .max_connections(MAX_CONNECTIONS)
            // No round trip to test a connection before each use (two per webhook): a connection
            // that broke while idle fails its query, which is answered 503 (a provider retries) or
            // retried by the queue, and is then dropped from the pool.
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Unavailable)?;
        let channels = ChannelCache::start(options, pool.clone());
        Ok(Self { pool, webhook, group_commit: Arc::new(GroupCommit::new(INGEST_BATCHES, INGEST_BATCH_SIZE)), channels })
    }

    /// The webhook's channel lookup: from memory while the channel is unchanged (see
    /// [`ChannelCache`]), otherwise on a direct connection.
    pub(super) async fn channel_by_id(&self, channel_id: Uuid) -> StoreResult<Option<Channel>> {
        if let Some(channel) = self.channels.get(channel_id) {
            return Ok(Some(channel));
        }
        let generation = self.channels.generation();
        let mut direct = self.webhook.acquire().await?;
        let found =
            sqlx::query_as("SELECT * FROM channel_instances WHERE id = $1").bind(channel_id).fetch_optional(direct.conn()).await;
        let found: Option<Channel> = direct.finish(found)?;
        if let Some(channel) = &found {
            self.channels.keep(generation, channel);
        }
        Ok(found)
    }

    /// A channel row was written through this store: its copy is dropped at once (other
    /// replicas hear of it from the database).
    pub(super) fn channel_changed(&self, channel_id: Uuid) {
        self.channels.forget(channel_id);
    }

    pub(super) async fn close_direct(&self) {
        self.channels.close();
        self.webhook.close().await;
    }

    /// `handle_inbound_message`'s transaction, shared with whatever else arrives meanwhile
    /// (see [`GroupCommit`]).
    pub(super) async fn ingest(&self, msg: &NewInboundMessage) -> StoreResult<Ingested> {
        self.group_commit.ingest(self, msg.clone()).await
    }
}

impl IngestBatch for PostgresStore {
    /// A batch in one round trip and one commit: `omnichat_ingest_batch`
    /// (migrations/postgres/0013_ingest_set_based.sql) stores it with a few set-based statements,
    /// or message by message through `omnichat_ingest_message` (SQLite's steps in
    /// `SqliteStore::ingest_batch`), each under its own savepoint, when that fails. The call is a
    /// transaction of its own (no BEGIN/COMMIT round trips).
    async fn ingest_batch(&self, batch: &[NewInboundMessage]) -> StoreResult<Vec<BatchOutcome>> {
        let ids = |_: &NewInboundMessage| Uuid::now_v7();
        let column = |f: fn(&NewInboundMessage) -> Option<&str>| batch.iter().map(f).collect::<Vec<_>>();
        let now: Vec<DateTime<Utc>> = batch.iter().map(|_| Utc::now()).collect();
        let mut direct = self.webhook.acquire().await?;
        let rows: Result<Vec<BatchRow>, sqlx::Error> = sqlx::query_as(
            "SELECT outcome, customer, conversation, message, conversation_created, error_code, error_message, error_constraint
             FROM omnichat_ingest_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(batch.iter().map(|m| m.tenant_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| m.channel_instance_id).collect::<Vec<_>>())
        .bind(batch.iter().map(ids).collect::<Vec<_>>())
        .bind(column(|m| Some(&m.external_user_id)))
        .bind(column(|m| m.sender_name.as_deref()))
        .bind(column(|m| m.sender_username.as_deref()))
        .bind(column(|m| m.external_conversation_id.as_deref()))
        .bind(batch.iter().map(ids).collect::<Vec<_>>())
        .bind(batch.iter().map(ids).collect::<Vec<_>>())
        .bind(column(|m| Some(m.direction.as_str())))
        .bind(column(|m| Some(m.status().as_str())))
        .bind(column(|m| m.text.as_deref()))
        .bind(batch.iter().map(|m| Json(&m.attachments)).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| Json(&m.raw)).collect::<Vec<_>>())
        .bind(column(|m| m.provider_message_id.as_deref()))
        .bind(batch.iter().zip(&now).map(|(m, now)| m.sent_at.unwrap_or(*now)).collect::<Vec<_>>())
        .bind(&now)
        .fetch_all(direct.conn())
        .await;
        let rows = direct.finish(rows)?;
        Ok(rows.into_iter().map(BatchRow::outcome).collect())
    }
}

/// A row of `omnichat_ingest_batch`.
#[derive(sqlx::FromRow)]
struct BatchRow {
    outcome: String,
    customer: Option<Customer>,
    conversation: Option<Conversation>,
    message: Option<Message>,
    conversation_created: Option<bool>,
    error_code: Option<String>,
    error_message: Option<String>,
    error_constraint: Option<String>,
}

impl BatchRow {
    fn outcome(self) -> BatchOutcome {
        match (self.outcome.as_str(), self.customer, self.conversation, self.message) {
            ("STORED", Some(customer), Some(conversation), Some(message)) => BatchOutcome::Done(Ok(Ingested::Stored {
                customer,
                conversation,
                message,
                conversation_created: self.conversation_created.unwrap_or(false),
            })),
            ("DUPLICATE", ..) => BatchOutcome::Done(Ok(Ingested::Duplicate)),
            ("RETRY", ..) => BatchOutcome::Retry,
            _ => {
                let code = self.error_code.unwrap_or_default();
                BatchOutcome::Done(Err(match (code.as_str(), self.error_constraint) {
                    ("23503", constraint) => StoreError::Missing(constraint.unwrap_or_else(|| "foreign key".into())),
                    ("23505", Some(constraint)) => StoreError::Conflict(constraint),
                    _ => StoreError::Refused { code, message: self.error_message.unwrap_or_default() },
                }))
            }
        }
    }
}

impl_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
impl_bridge_store!(PostgresStore, "BEGIN");
impl_agent_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
impl_webhook_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
