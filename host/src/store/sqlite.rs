//! SQLite: the embedded default. WAL, foreign keys on, and write transactions that begin
//! IMMEDIATE so two writers queue on the busy timeout instead of failing on a lock upgrade.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Sqlite, SqlitePool};
use uuid::Uuid;

use super::bridge_sql::impl_bridge_store;
use super::sql::{HasDb, impl_store};
use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

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
        Ok(Self { pool })
    }
}

// SQLite has one writer at a time, so claiming needs no row locks.
impl_store!(SqliteStore, "BEGIN IMMEDIATE", "");
impl_bridge_store!(SqliteStore, "BEGIN IMMEDIATE");
