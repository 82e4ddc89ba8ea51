//! SQLite: the embedded default. WAL, foreign keys on, and write transactions that begin
//! IMMEDIATE so two writers queue on the busy timeout instead of failing on a lock upgrade.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::agent_sql::impl_agent_store;
use super::bridge_sql::impl_bridge_store;
use super::group_commit::{BatchOutcome, GroupCommit, IngestBatch};
use super::sql::{HasDb, impl_store};
use super::webhook_sql::impl_webhook_store;
use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    group_commit: Arc<GroupCommit>,
}

/// One batch at a time (SQLite has one writer) of up to this many inbound messages.
const INGEST_BATCH_SIZE: usize = 64;

impl HasDb for SqliteStore {
    type Db = Sqlite;
}

impl SqliteStore {
    const MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

    /// Opens `sqlite://PATH`, creating the file when missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // The file cannot go away under an open connection: no ping to its thread before each use.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { pool, group_commit: Arc::new(GroupCommit::new(1, INGEST_BATCH_SIZE)) })
    }

    /// A webhook's channel lookup (PostgreSQL runs it outside its pool; SQLite has only the pool).
    pub(super) async fn channel_by_id(&self, channel_id: Uuid) -> StoreResult<Option<Channel>> {
        Ok(sqlx::query_as("SELECT * FROM channel_instances WHERE id = $1").bind(channel_id).fetch_optional(&self.pool).await?)
    }

    /// Nothing to close outside the pool.
    pub(super) async fn close_direct(&self) {}

    /// Channels are not cached on SQLite (a lookup is a read of a local file).
    pub(super) fn channel_changed(&self, _channel_id: Uuid) {}

    /// `handle_inbound_message`'s transaction, shared with whatever else arrives meanwhile
    /// (see [`GroupCommit`]).
    pub(super) async fn ingest(&self, msg: &NewInboundMessage) -> StoreResult<Ingested> {
        self.group_commit.ingest(self, msg.clone()).await
    }
}

impl IngestBatch for SqliteStore {
    /// One `BEGIN IMMEDIATE` for the batch, a savepoint per message: one that fails (or is a
    /// redelivery) is rolled back alone. PostgreSQL runs the same steps in one call,
    /// migrations/postgres/0002_ingest_function.sql and 0011_ingest_batch.sql.
    async fn ingest_batch(&self, batch: &[NewInboundMessage]) -> StoreResult<Vec<BatchOutcome>> {
        let mut conn = self.pool.acquire().await?;
        let stored = ingest_in_one_transaction(&mut conn, batch).await;
        if stored.is_err() {
            // The transaction may be left half-open (SQLite rolls a whole transaction back on
            // some errors, and the savepoint then cannot be rolled back to): not given back.
            conn.close_on_drop();
        }
        stored
    }
}

/// The batch in one `BEGIN IMMEDIATE` on `conn`.
async fn ingest_in_one_transaction(conn: &mut SqliteConnection, batch: &[NewInboundMessage]) -> StoreResult<Vec<BatchOutcome>> {
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for msg in batch {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        let stored = ingest_one(&mut savepoint, msg, Utc::now()).await;
        let outcome = match stored {
            Ok(Some((customer, conversation, message, conversation_created))) => {
                savepoint.commit().await?;
                Ok(Ingested::Stored { customer, conversation, message, conversation_created })
            }
            Ok(None) => {
                savepoint.rollback().await?;
                Ok(Ingested::Duplicate)
            }
            Err(err) => match StoreError::from(err) {
                // Not this message's fault (busy, disk full): the batch fails, and every caller
                // hears the database is unavailable. (SQLite may have rolled the whole
                // transaction back already, so the savepoint is not rolled back to.)
                err @ StoreError::Unavailable(_) => return Err(err),
                err => {
                    savepoint.rollback().await?;
                    Err(err)
                }
            },
        };
        outcomes.push(BatchOutcome::Done(outcome));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// `handle_inbound_message`'s steps: upsert the customer, touch its open conversation or open
/// one, insert the message. `None` for a redelivery, after which the caller rolls back.
async fn ingest_one(
    conn: &mut SqliteConnection,
    msg: &NewInboundMessage,
    now: DateTime<Utc>,
) -> Result<Option<(Customer, Conversation, Message, bool)>, sqlx::Error> {
    let sent_at = msg.sent_at.unwrap_or(now);
    // The transaction began IMMEDIATE, holding the write lock, so concurrent messages of one
    // customer find or create its conversation one at a time.
    let customer: Customer = sqlx::query_as(
            "INSERT INTO customers (id, tenant_id, channel_instance_id, external_id, name, username, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (channel_instance_id, external_id) DO UPDATE SET
               name = COALESCE(excluded.name, customers.name),
               username = COALESCE(excluded.username, customers.username),
               updated_at = excluded.updated_at
             RETURNING *",
        )
        .bind(Uuid::now_v7())
        .bind(msg.tenant_id)
        .bind(msg.channel_instance_id)
        .bind(&msg.external_user_id)
        .bind(&msg.sender_name)
        .bind(&msg.sender_username)
        .bind(Json(serde_json::json!({})))
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;

    // The open conversation takes the new activity (a snoozed one reopens) in the same
    // statement that finds it; a redelivery rolls that back with everything else.
    let open: Option<Conversation> = match &msg.external_conversation_id {
        Some(external) => {
            sqlx::query_as(
                "UPDATE conversations SET last_message_at = $3, status = 'OPEN', updated_at = $3
                     WHERE status <> 'CLOSED' AND id = (SELECT id FROM conversations
                       WHERE channel_instance_id = $1 AND external_conversation_id = $2 AND status <> 'CLOSED'
                       ORDER BY created_at DESC LIMIT 1)
                     RETURNING *",
            )
            .bind(msg.channel_instance_id)
            .bind(external)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query_as(
                "UPDATE conversations SET last_message_at = $2, status = 'OPEN', updated_at = $2
                     WHERE status <> 'CLOSED' AND id = (SELECT id FROM conversations
                       WHERE customer_id = $1 AND status <> 'CLOSED' ORDER BY created_at DESC LIMIT 1)
                     RETURNING *",
            )
            .bind(customer.id)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let (conversation, conversation_created) = match open {
        Some(conversation) => (conversation, false),
        None => {
            let conversation: Conversation = sqlx::query_as(
                    "INSERT INTO conversations
                       (id, tenant_id, channel_instance_id, customer_id, external_conversation_id, status, last_message_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'OPEN', $6, $6, $6) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(msg.tenant_id)
                .bind(msg.channel_instance_id)
                .bind(customer.id)
                .bind(&msg.external_conversation_id)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
            (conversation, true)
        }
    };
    // A redelivery hits the unique (channel, provider id) key: nothing is inserted, and
    // the whole transaction (customer, conversation) is rolled back with it.
    let message: Option<Message> = sqlx::query_as(
        "INSERT INTO messages
               (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                attachments, raw, provider_message_id, sent_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
             ON CONFLICT (channel_instance_id, provider_message_id) DO NOTHING
             RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(msg.tenant_id)
    .bind(msg.channel_instance_id)
    .bind(conversation.id)
    .bind(customer.id)
    .bind(msg.direction)
    .bind(msg.status())
    .bind(&msg.text)
    .bind(Json(&msg.attachments))
    .bind(Json(&msg.raw))
    .bind(&msg.provider_message_id)
    .bind(sent_at)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(message) = message else { return Ok(None) };
    // The auto-reply decision is durable with the message (agents/runner.rs takes it from here).
    if msg.direction == MessageDirection::Inbound {
        sqlx::query(
                "INSERT INTO agent_jobs (id, tenant_id, conversation_id, message_id, status, attempts, run_at, created_at, updated_at)
                 SELECT $1, $2, $3, $4, 'PENDING', 0, $5, $5, $5
                 WHERE EXISTS (SELECT 1 FROM agents WHERE tenant_id = $2 AND is_active)",
            )
            .bind(Uuid::now_v7())
            .bind(msg.tenant_id)
            .bind(conversation.id)
            .bind(message.id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some((customer, conversation, message, conversation_created)))
}

// SQLite has one writer at a time, so claiming needs no row locks.
impl_store!(SqliteStore, "BEGIN IMMEDIATE", "");
impl_bridge_store!(SqliteStore, "BEGIN IMMEDIATE");
impl_agent_store!(SqliteStore, "BEGIN IMMEDIATE", "");
impl_webhook_store!(SqliteStore, "BEGIN IMMEDIATE", "");
