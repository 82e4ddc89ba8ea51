//! The store: one trait over the data model, implemented for SQLite (the embedded default) and
//! PostgreSQL (production). Every method that touches tenant data takes the tenant id and scopes
//! by it; a row of another tenant is simply not found.

mod agent_sql;
mod agent_store;
mod bridge_sql;
mod channel_cache;
mod direct;
mod group_commit;
mod postgres;
mod records;
mod sql;
mod sqlite;
mod types;
mod webhook_sql;
mod webhook_store;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use agent_store::*;
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::SqliteStore;
pub use types::*;
pub use webhook_store::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already holds this value (an e-mail, an external id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change would leave a tenant without an owner.
    #[error("a tenant keeps at least one owner")]
    LastOwner,
    /// A row the write refers to is gone (a foreign key): say, a message for a channel deleted
    /// meanwhile. Names the constraint.
    #[error("a referenced record no longer exists ({0})")]
    Missing(String),
    /// The database refused one message of a batch (see `group_commit`): its SQLSTATE and text.
    #[error("refused by the database ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique key").to_owned())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Missing(db.constraint().unwrap_or("foreign key").to_owned())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(err),
            sqlx::Error::Database(db) if server_unavailable(db.code().as_deref()) => StoreError::Unavailable(err),
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some_and(sqlite_unavailable) => {
                StoreError::Unavailable(err)
            }
            _ => StoreError::Database(err),
        }
    }
}

impl StoreError {
    /// Whether the same call may succeed later: the database unreachable or busy, or a deadlock or
    /// lock wait that outlived its retries. Answered 503; a bridge keeps such a message and retries.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Refused { code, .. } => retry_later(code),
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| retry_later(&code)),
            _ => false,
        }
    }
}

/// PostgreSQL's SQLSTATEs of a transaction that lost to another one (class 40: a deadlock, a
/// serialization failure) or gave up waiting for a lock (55P03): the same call may succeed later.
fn retry_later(code: &str) -> bool {
    code.len() == 5 && (code.starts_with("40") || code == "55P03")
}

/// SQLite's primary result codes that say the file cannot be written now, not that the statement
/// was wrong: busy or locked past the busy timeout (5, 6), out of memory (7), an I/O error (10),
/// the disk full (13), the file cannot be opened (14).
fn sqlite_unavailable(err: &sqlx::sqlite::SqliteError) -> bool {
    use sqlx::error::DatabaseError;
    let code = err.code().and_then(|code| code.parse::<i32>().ok()).unwrap_or(0);
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14)
}

/// SQLSTATEs that say the server cannot serve now, not that the statement was wrong: a lost
/// connection (class 08), the server shutting down, restarting or starting up (class 57), or out
/// of resources such as connection slots (class 53). Answered 503 (a provider retries), retried
/// by the queue; a connection that got one is replaced.
/// (57014, a statement cancelled, is the statement's own fault.) SQLite's numeric codes never match.
pub(crate) fn server_unavailable(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.len() == 5 && code != "57014" && ["08", "57", "53"].iter().any(|class| code.starts_with(class)))
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: BridgeStore + AgentStore + WebhookStore + Send + Sync + 'static {
    /// `SELECT 1`: is the database answering?
    async fn ping(&self) -> StoreResult<()>;
    /// Applies the embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Closes the pool; later calls fail as `Unavailable`.
    async fn close(&self);

    // Tenants and users.
    /// Creates a tenant and its first user (an owner) in one transaction.
    async fn create_tenant_with_owner(&self, tenant_name: &str, owner: NewUser) -> StoreResult<(Tenant, User)>;
    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<Tenant>>;
    /// Login looks a user up by e-mail before any tenant is known; e-mails are unique across tenants.
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant_id: Uuid) -> StoreResult<Vec<User>>;
    async fn create_user(&self, tenant_id: Uuid, user: NewUser) -> StoreResult<User>;
    /// Fails with [`StoreError::LastOwner`] (changing nothing) where a demotion would leave the
    /// tenant without an owner, also against a concurrent change.
    async fn update_user(&self, tenant_id: Uuid, user_id: Uuid, patch: UserPatch) -> StoreResult<Option<User>>;
    /// Fails with [`StoreError::LastOwner`] (deleting nothing) for the tenant's last owner.
    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool>;

    // Refresh tokens.
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()>;
    /// Atomically spends the token with `old_hash` and stores `new` in its family, keeping
    /// `sealed_new` (the new token, sealed) on the spent one. A token spent less than `grace`
    /// ago whose successor is still live is [`Rotation::Repeated`]; any other spent token
    /// revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: NewRefreshToken,
        sealed_new: &str,
        grace: std::time::Duration,
    ) -> StoreResult<Rotation>;
    /// Revokes every live token of a family (logout). Returns how many were revoked.
    async fn revoke_refresh_family(&self, tenant_id: Uuid, family_id: Uuid) -> StoreResult<u64>;

    // Channels.
    async fn create_channel(&self, tenant_id: Uuid, channel: NewChannel) -> StoreResult<Channel>;
    async fn list_channels(&self, tenant_id: Uuid) -> StoreResult<Vec<Channel>>;
    async fn get_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<Option<Channel>>;
    async fn update_channel(&self, tenant_id: Uuid, channel_id: Uuid, patch: ChannelPatch) -> StoreResult<Option<Channel>>;
    async fn set_channel_status(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        status: ChannelStatus,
        reason: Option<&str>,
    ) -> StoreResult<Option<Channel>>;
    async fn delete_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<bool>;
    /// A channel by id alone, for webhooks whose URL names the channel (no tenant is known yet).
    async fn find_channel(&self, channel_id: Uuid) -> StoreResult<Option<Channel>>;
    /// The channels of every tenant that claim a provider account (a Facebook page id), for
    /// webhooks shared by many channels; verified ones first.
    async fn find_channels_by_external_id(&self, channel_type: &ChannelType, external_id: &str) -> StoreResult<Vec<Channel>>;
    /// Records whether `connect` just proved the channel's credentials (`verified_at`).
    async fn set_channel_verified(&self, tenant_id: Uuid, channel_id: Uuid, verified: bool) -> StoreResult<()>;

    // The inbox.
    /// Stores one inbound message in ONE transaction: upserts the customer, finds its open
    /// conversation (by the provider's conversation id, else the customer's) or creates one, inserts
    /// the message and moves `lastMessageAt`. A message whose provider id is already stored for the
    /// channel writes nothing and answers `Duplicate`. Concurrent calls share a transaction and its
    /// commit (group commit, `store/group_commit.rs`), each answered after the commit that holds
    /// its message; a message that fails (`Missing`: its channel was deleted meanwhile) fails alone.
    async fn ingest_message(&self, message: &NewInboundMessage) -> StoreResult<Ingested>;
    async fn list_conversations(&self, tenant_id: Uuid, query: &ConversationQuery) -> StoreResult<Vec<Conversation>>;
    async fn get_conversation(&self, tenant_id: Uuid, conversation_id: Uuid) -> StoreResult<Option<Conversation>>;
    /// Moves `user_id`'s read mark of a conversation of the tenant to `at`; false when the
    /// conversation is not the tenant's.
    async fn mark_conversation_read(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        conversation_id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// `user_id`'s read state of each of these conversations (at most 100): its read mark and
    /// the INBOUND messages after it. Conversations not found are left out.
    async fn read_states(&self, user_id: Uuid, conversation_ids: &[Uuid]) -> StoreResult<Vec<ReadState>>;
    async fn update_conversation(
        &self,
        tenant_id: Uuid,
        conversation_id: Uuid,
        patch: &ConversationPatch,
    ) -> StoreResult<Option<Conversation>>;
    /// Messages of a conversation, newest first.
    async fn list_messages(&self, tenant_id: Uuid, conversation_id: Uuid, page: &PageQuery) -> StoreResult<Vec<Message>>;
    /// Customers, newest first.
    async fn list_customers(
        &self,
        tenant_id: Uuid,
        channel_instance_id: Option<Uuid>,
        page: &PageQuery,
    ) -> StoreResult<Vec<Customer>>;
    async fn get_customer(&self, tenant_id: Uuid, customer_id: Uuid) -> StoreResult<Option<Customer>>;
    async fn get_message(&self, tenant_id: Uuid, message_id: Uuid) -> StoreResult<Option<Message>>;
    /// The customer's open conversation, created when it has none.
    async fn open_conversation_for(&self, tenant_id: Uuid, customer: &Customer) -> StoreResult<Conversation>;

    // Visitors of web channels (the widget).
    /// Upserts the visitor as the channel's customer (a name given replaces the stored one;
    /// metadata keys are merged) in one transaction.
    async fn upsert_visitor(&self, tenant_id: Uuid, channel_id: Uuid, visitor: &VisitorProfile) -> StoreResult<Customer>;
    /// A channel's customer by its provider (or visitor) id.
    async fn find_customer_by_external_id(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        external_id: &str,
    ) -> StoreResult<Option<Customer>>;
    async fn insert_visitor_upload(&self, upload: &NewVisitorUpload) -> StoreResult<VisitorUpload>;
    /// A stored file and its content, by its token (no tenant: the token is the address).
    async fn visitor_upload_content(&self, token: &str) -> StoreResult<Option<(VisitorUpload, Vec<u8>)>>;
    /// The uploads among `ids` that `visitor_id` made on the channel (others are left out).
    async fn visitor_uploads(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        visitor_id: &str,
        ids: &[Uuid],
    ) -> StoreResult<Vec<VisitorUpload>>;
    /// The message a provider id names on a channel (what a redelivery was a duplicate of).
    async fn find_message_by_provider_id(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        provider_message_id: &str,
    ) -> StoreResult<Option<Message>>;

    /// A provider's delivery or read receipt: moves the channel's OUTBOUND messages it covers to
    /// `receipt.status`, never backwards, and returns those that moved.
    async fn apply_receipt(&self, tenant_id: Uuid, channel_id: Uuid, receipt: &ReceiptUpdate<'_>) -> StoreResult<Vec<Message>>;

    // The outbound queue.
    /// Stores the OUTBOUND message (PENDING) and its queue row in ONE transaction and moves the
    /// conversation's `lastMessageAt`. An idempotency key used before replays the first message.
    async fn enqueue_outbound(&self, message: &NewOutboundMessage) -> StoreResult<Enqueued>;
    /// Leases up to `limit` due jobs (PENDING and due, or SENDING with an expired lease) to `worker`.
    /// PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP LOCKED`).
    async fn claim_due_jobs(&self, worker: &str, lease: chrono::Duration, limit: i64) -> StoreResult<Vec<QueueJob>>;
    /// What each job needs to be sent, in the order of `jobs` (four queries for the whole batch);
    /// `None` where the message, its conversation or its channel is gone.
    async fn load_dispatches(&self, jobs: &[QueueJob]) -> StoreResult<Vec<Option<Dispatch>>>;
    /// Delivered, in ONE transaction for the whole batch: each job SENT, its message SENT with the
    /// provider's id. Returns the updated messages.
    async fn complete_jobs(&self, delivered: &[(QueueJob, String)]) -> StoreResult<Vec<Message>>;
    /// Back to PENDING until `next_retry_at`; `failed` counts the attempt and records the error.
    async fn retry_job(&self, job: &QueueJob, next_retry_at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()>;
    /// Given up: the job DEAD, the message FAILED with the error.
    async fn kill_job(&self, job: &QueueJob, error: &str) -> StoreResult<Message>;
    /// Returns the jobs a worker holds to the queue (graceful shutdown).
    async fn release_jobs(&self, worker: &str) -> StoreResult<u64>;
    async fn list_jobs(&self, tenant_id: Uuid, status: Option<QueueStatus>, limit: i64) -> StoreResult<Vec<QueueJob>>;
    async fn get_job(&self, tenant_id: Uuid, job_id: Uuid) -> StoreResult<Option<QueueJob>>;
    /// Requeues a DEAD or FAILED job (attempts reset, message PENDING again).
    async fn requeue_job(&self, tenant_id: Uuid, job_id: Uuid) -> StoreResult<Option<(QueueJob, Message)>>;
    /// The queue's depth by status, across tenants, and when the oldest due PENDING job fell due
    /// (for metrics).
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
}

/// See [`Store::queue_stats`].
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub by_status: Vec<(QueueStatus, i64)>,
    pub oldest_due: Option<DateTime<Utc>>,
}

/// The native bridges' session state: Telegram MTProto sessions with their peer cache, and the
/// leases that give each live session one owner across replicas.
#[async_trait]
pub trait BridgeStore: Send + Sync + 'static {
    /// The Telegram user session of a channel, created, or emptied (keys, update state, peers):
    /// a new login starts from scratch, possibly with another account.
    async fn reset_telegram_session(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        phone_number: &str,
    ) -> StoreResult<TelegramSessionRow>;
    async fn get_telegram_session(&self, session_id: Uuid) -> StoreResult<Option<TelegramSessionRow>>;
    async fn telegram_session_of_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<Option<TelegramSessionRow>>;
    /// The MTProto state (home DC, DC options with their sealed auth keys).
    async fn save_telegram_session_data(&self, session_id: Uuid, data: &serde_json::Value) -> StoreResult<()>;
    async fn save_telegram_update_state(&self, session_id: Uuid, state: &serde_json::Value) -> StoreResult<()>;
    async fn get_telegram_peer(&self, session_id: Uuid, peer_id: i64) -> StoreResult<Option<TelegramPeerRow>>;
    /// The logged-in user itself (`peer_kind = 'self'`).
    async fn get_telegram_self_peer(&self, session_id: Uuid) -> StoreResult<Option<TelegramPeerRow>>;
    /// Upserts peers in one transaction; a stored access hash is kept when the new row has none.
    async fn put_telegram_peers(&self, session_id: Uuid, peers: &[TelegramPeerRow]) -> StoreResult<()>;
    /// Deletes a channel's session with its peers (logout).
    async fn delete_telegram_session(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<bool>;
    /// The sessions that should be listening: user sessions of CONNECTED TELEGRAM_USER channels.
    async fn list_live_telegram_sessions(&self) -> StoreResult<Vec<TelegramSessionRow>>;
    /// The WhatsApp session row of a channel (the seed's `WhatsAppSession`), created when missing.
    async fn whatsapp_session_for_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<WhatsAppSessionRow>;
    async fn get_whatsapp_session(&self, session_id: Uuid) -> StoreResult<Option<WhatsAppSessionRow>>;
    async fn whatsapp_session_of_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<Option<WhatsAppSessionRow>>;
    /// The paired device (sealed), or `None` to forget it.
    async fn save_whatsapp_device(&self, session_id: Uuid, device: Option<&[u8]>) -> StoreResult<()>;
    /// The current pairing QR code and when it expires (`None`: no QR to show).
    async fn set_whatsapp_qr(&self, session_id: Uuid, qr: Option<&str>, expires_at: Option<DateTime<Utc>>) -> StoreResult<()>;
    /// The seed's `WhatsAppKey`: a key-value table per session, by (type, id). Missing ids are left out.
    async fn whatsapp_keys_get(
        &self,
        session_id: Uuid,
        key_type: &str,
        key_ids: &[String],
    ) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Upserts in one transaction.
    async fn whatsapp_keys_put(&self, session_id: Uuid, key_type: &str, entries: &[(String, Vec<u8>)]) -> StoreResult<()>;
    /// Deletes in one transaction; answers how many existed.
    async fn whatsapp_keys_delete(&self, session_id: Uuid, key_type: &str, key_ids: &[String]) -> StoreResult<u64>;
    /// Every key of a type whose id starts with `prefix` (`""`: all), ordered by id.
    async fn whatsapp_keys_list(&self, session_id: Uuid, key_type: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Forgets the device and every key of a session (logout): the next connect pairs anew.
    async fn clear_whatsapp_session(&self, session_id: Uuid) -> StoreResult<()>;
    /// Sessions that should be running: those of WHATSAPP channels CONNECTED or CONNECTING.
    async fn list_live_whatsapp_sessions(&self) -> StoreResult<Vec<WhatsAppSessionRow>>;
    /// Takes or renews the lease of a session for `owner`; false while another owner's lease is live.
    async fn acquire_session_lease(
        &self,
        kind: SessionKind,
        session_id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Gives the lease up (only when `owner` holds it).
    async fn release_session_lease(&self, kind: SessionKind, session_id: Uuid, owner: &str) -> StoreResult<()>;
    /// A Telegram login's sealed state between its steps (`None`: no login pending).
    async fn set_telegram_pending_login(
        &self,
        session_id: Uuid,
        sealed: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    /// Asks the replica `request.owner` for work on a live session (status `PENDING`).
    async fn insert_bridge_request(&self, request: &BridgeRequest) -> StoreResult<()>;
    /// The pending, unexpired requests to `owner`, now `RUNNING`.
    async fn claim_bridge_requests(&self, owner: &str) -> StoreResult<Vec<BridgeRequest>>;
    /// The answer: the result's bytes, or an error code and message.
    async fn finish_bridge_request(&self, id: Uuid, outcome: Result<&[u8], (&str, &str)>) -> StoreResult<()>;
    /// Deletes and answers a request once it is `DONE` or `FAILED` (`None` while it is not).
    async fn take_bridge_request(&self, id: Uuid) -> StoreResult<Option<BridgeRequest>>;
    async fn delete_bridge_request(&self, id: Uuid) -> StoreResult<()>;
    /// Deletes requests that expired before `before` (nobody waits for them); answers how many.
    async fn purge_bridge_requests(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Which database a `DATABASE_URL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl FromStr for Backend {
    type Err = StoreError;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::InvalidUrl(format!(
                "unsupported scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            ))),
        }
    }
}

/// Opens (creating when missing) the database a URL names, without migrating it.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match url.parse::<Backend>()? {
        Backend::Sqlite => std::sync::Arc::new(SqliteStore::connect(url).await?),
        Backend::Postgres => std::sync::Arc::new(PostgresStore::connect(url).await?),
    })
}

#[cfg(test)]
mod server_unavailable_tests {
    #[test]
    fn a_shutdown_a_lost_connection_or_no_slots_is_unavailable_a_constraint_is_not() {
        for code in ["57P01", "57P02", "57P03", "08006", "08003", "53300"] {
            assert!(super::server_unavailable(Some(code)), "{code}");
        }
        for code in ["23505", "P0001", "40001", "42P01", "57014", "531", "2067"] {
            assert!(!super::server_unavailable(Some(code)), "{code}");
        }
        assert!(!super::server_unavailable(None));
    }

    /// A real SQLite "database is locked" (a second writer, no busy timeout) is `Unavailable`
    /// (answered 503, retried by bridges), not a refused statement.
    #[tokio::test]
    async fn sqlite_busy_is_unavailable_and_transient() {
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().expect("tempdir");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.connect().await.expect("first connection");
        let mut other = options.connect().await.expect("second connection");
        let _held = holder.begin_with("BEGIN IMMEDIATE").await.expect("write lock");
        let err = super::StoreError::from(other.begin_with("BEGIN IMMEDIATE").await.expect_err("locked"));
        assert!(matches!(err, super::StoreError::Unavailable(_)), "{err:?}");
        assert!(err.is_transient());
        let constraint = sqlx::query("SELECT * FROM no_such_table").execute(&mut other).await.expect_err("no table");
        assert!(!super::StoreError::from(constraint).is_transient());
    }
}
