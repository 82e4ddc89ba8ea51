//! PostgreSQL: production and multi-replica. The database named by the URL is created when missing.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::bridge_sql::impl_bridge_store;
use super::sql::{HasDb, impl_store};
use super::*;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
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
        let pool = PgPoolOptions::new()
            // Enough for many concurrent webhook transactions to share a WAL flush (group commit).
            .max_connections(32)
            // No round trip to test a connection before each use (two per webhook): a connection
            // that broke while idle fails its query, which is answered 503 (a provider retries) or
            // retried by the queue, and is then dropped from the pool.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { pool })
    }
}

impl_store!(PostgresStore, "BEGIN", "FOR UPDATE SKIP LOCKED");
impl_bridge_store!(PostgresStore, "BEGIN");
