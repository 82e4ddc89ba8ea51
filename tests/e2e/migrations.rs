//! Migrations on a database that already holds data: nothing is lost, and the constraints the
//! data model relies on still hold afterwards.

use std::path::Path;

use chrono::Utc;
use omnichat::store::{ChannelType, PageQuery};
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

/// SQLite cannot alter a CHECK constraint, so opening the channel types rebuilds
/// `channel_instances` under the customers, conversations and messages that reference it.
#[tokio::test]
async fn opening_channel_types_on_sqlite_keeps_every_channel_and_what_hangs_off_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = dir.path().join("first");
    std::fs::create_dir(&first).expect("mkdir");
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    std::fs::copy(migrations.join("0001_initial.sql"), first.join("0001_initial.sql")).expect("copy the first migration");
    let db = dir.path().join("omnichat.db");
    let options = SqliteConnectOptions::new().filename(&db).create_if_missing(true).foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("sqlite");
    sqlx::migrate::Migrator::new(first.as_path()).await.expect("migrator").run(&pool).await.expect("the first migration");

    let (tenant, channel, customer, conversation, message) =
        (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let now = Utc::now();
    for (sql, ids) in [
        ("INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, 'Shop', $2, $2)", vec![tenant]),
        (
            "INSERT INTO channel_instances (id, tenant_id, type, name, config, metadata, created_at, updated_at)
             VALUES ($1, $3, 'TELEGRAM_BOT', 'Bot', '{}', '{}', $2, $2)",
            vec![channel, tenant],
        ),
        (
            "INSERT INTO customers (id, tenant_id, channel_instance_id, external_id, created_at, updated_at)
             VALUES ($1, $3, $4, '42', $2, $2)",
            vec![customer, tenant, channel],
        ),
        (
            "INSERT INTO conversations (id, tenant_id, channel_instance_id, customer_id, last_message_at, created_at, updated_at)
             VALUES ($1, $3, $4, $5, $2, $2, $2)",
            vec![conversation, tenant, channel, customer],
        ),
        (
            "INSERT INTO messages (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
               provider_message_id, sent_at, created_at, updated_at)
             VALUES ($1, $3, $4, $5, $6, 'INBOUND', 'RECEIVED', 'kept', '42:1', $2, $2, $2)",
            vec![message, tenant, channel, conversation, customer],
        ),
    ] {
        let mut query = sqlx::query(sql).bind(ids[0]).bind(now);
        for id in &ids[1..] {
            query = query.bind(*id);
        }
        query.execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool.close().await;

    let store = omnichat::store::connect(&format!("sqlite://{}", db.display())).await.expect("store");
    store.migrate().await.expect("the later migrations");
    let kept = store.get_channel(tenant, channel).await.expect("read").expect("the channel survived");
    assert_eq!(kept.channel_type, ChannelType::TELEGRAM_BOT);
    let messages = store.list_messages(tenant, conversation, &PageQuery { after: None, limit: 10 }).await.expect("read");
    assert_eq!(messages.iter().map(|m| m.text.as_deref()).collect::<Vec<_>>(), [Some("kept")]);
    assert!(store.get_customer(tenant, customer).await.expect("read").is_some());

    let pool =
        sqlx::SqlitePool::connect_with(SqliteConnectOptions::new().filename(&db).foreign_keys(true)).await.expect("sqlite");
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&pool).await.expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    // A plugin's type is accepted now, a malformed one still is not.
    let insert =
        "INSERT INTO channel_instances (id, tenant_id, type, name, created_at, updated_at) VALUES ($1, $2, $3, 'X', $4, $4)";
    for (channel_type, accepted) in [("LINE", true), ("line", false), ("L", false), ("LI NE", false)] {
        let result = sqlx::query(insert).bind(Uuid::now_v7()).bind(tenant).bind(channel_type).bind(now).execute(&pool).await;
        assert_eq!(result.is_ok(), accepted, "{channel_type}: {result:?}");
    }
    // The children still reference the rebuilt table: deleting the channel cascades.
    sqlx::query("DELETE FROM channel_instances WHERE id = $1").bind(channel).execute(&pool).await.expect("delete");
    let left: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages").fetch_one(&pool).await.expect("count");
    assert_eq!(left.0, 0);
}
