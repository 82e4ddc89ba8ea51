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
use super::direct::DirectConnections;
use super::sql::{HasDb, impl_store};
use super::webhook_sql::impl_webhook_store;
use super::*;

/// Connections of each pool: the shared one, and the webhook path's (see [`DirectConnections`]).
const MAX_CONNECTIONS: u32 = 32;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    webhook: Arc<DirectConnections>,
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
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { pool, webhook })
    }

    /// The webhook's channel lookup, on a direct connection.
    pub(super) async fn channel_by_id(&self, channel_id: Uuid) -> StoreResult<Option<Channel>> {
        let mut direct = self.webhook.acquire().await?;
        let found =
            sqlx::query_as("SELECT * FROM channel_instances WHERE id = $1").bind(channel_id).fetch_optional(direct.conn()).await;
        Ok(direct.finish(found)?)
    }

    pub(super) async fn close_direct(&self) {
        self.webhook.close().await;
    }

    /// `handle_inbound_message`'s transaction in one round trip: the function in
    /// migrations/postgres/0002_ingest_function.sql runs SQLite's steps (see `SqliteStore::ingest`)
    /// inside the database. No row means the message was stored before; so does a unique
    /// violation on the provider id, raised by a redelivery racing the first one.
    pub(super) async fn ingest(&self, msg: &NewInboundMessage) -> StoreResult<Ingested> {
        let now = Utc::now();
        let mut direct = self.webhook.acquire().await?;
        let stored: Result<Option<(Customer, Conversation, Message, bool)>, sqlx::Error> = sqlx::query_as(
            "SELECT customer, conversation, message, conversation_created
             FROM omnichat_ingest_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(msg.tenant_id)
        .bind(msg.channel_instance_id)
        .bind(Uuid::now_v7())
        .bind(&msg.external_user_id)
        .bind(&msg.sender_name)
        .bind(&msg.sender_username)
        .bind(&msg.external_conversation_id)
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(msg.direction)
        .bind(msg.status())
        .bind(&msg.text)
        .bind(Json(&msg.attachments))
        .bind(Json(&msg.raw))
        .bind(&msg.provider_message_id)
        .bind(msg.sent_at.unwrap_or(now))
        .bind(now)
        .fetch_optional(direct.conn())
        .await;
        match direct.finish(stored) {
            Ok(Some((customer, conversation, message, conversation_created))) => {
                Ok(Ingested::Stored { customer, conversation, message, conversation_created })
            }
            Ok(None) => Ok(Ingested::Duplicate),
            Err(sqlx::Error::Database(db)) if db.constraint() == Some("messages_provider_id_key") => Ok(Ingested::Duplicate),
            Err(err) => Err(err.into()),
        }
    }
}

impl_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
impl_bridge_store!(PostgresStore, "BEGIN");
impl_agent_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
impl_webhook_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
