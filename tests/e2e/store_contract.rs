//! The store contract: the same scenarios against SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use omnichat::store::{
    ChannelPatch, ChannelStatus, ChannelType, ConversationQuery, Enqueued, Ingested, MessageDirection, MessageStatus, NewChannel,
    NewInboundMessage, NewOutboundMessage, NewRefreshToken, NewUser, PageQuery, QueueStatus, Role, Rotation, Store, StoreError,
    UserPatch,
};
use omnichat_tests::{Db, TestDb};
use serde_json::json;
use uuid::Uuid;

use super::on_both_databases;

on_both_databases!(
    tenants_and_users_round_trip_and_stay_in_their_tenant,
    refresh_tokens_rotate_once_and_reuse_revokes_the_family,
    channels_round_trip_and_stay_in_their_tenant,
    unique_keys_are_conflicts,
    migrations_run_twice_without_harm,
    an_inbound_message_is_stored_once_with_its_customer_and_conversation,
    concurrent_deliveries_store_a_message_once_in_one_conversation,
    cancelled_ingests_leave_the_store_working,
    a_batch_stores_each_message_once_and_answers_duplicates,
    a_message_of_a_channel_deleted_meanwhile_fails_alone,
    concurrent_batches_for_one_new_customer_open_one_conversation,
    a_batch_cut_by_a_cancelled_request_is_stored_for_the_others,
    a_conversation_a_batch_finds_two_ways_is_touched_not_opened_again,
    a_channel_change_is_seen_by_the_next_webhook_lookup,
    queued_jobs_are_leased_completed_retried_and_killed,
    a_batch_of_jobs_is_loaded_and_completed_together,
);

fn as_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("serializes")
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser { email: email.into(), name: Some("N".into()), role, password_hash: "$argon2id$fake".into() }
}

fn token(tenant_id: Uuid, user_id: Uuid, family_id: Uuid, hash: &str, ttl: Duration) -> NewRefreshToken {
    NewRefreshToken { id: Uuid::new_v4(), tenant_id, user_id, family_id, token_hash: hash.into(), expires_at: Utc::now() + ttl }
}

async fn tenants_and_users_round_trip_and_stay_in_their_tenant(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, owner) = store.create_tenant_with_owner("Acme", new_user("o@acme.io", Role::Owner)).await.expect("create");
    let (other, _) = store.create_tenant_with_owner("Other", new_user("o@other.io", Role::Owner)).await.expect("create");
    assert_eq!(owner.tenant_id, tenant.id);
    assert_eq!(store.get_tenant(tenant.id).await.expect("get").map(|t| t.name), Some("Acme".into()));

    let record = store.find_user_by_email("o@acme.io").await.expect("find").expect("found");
    assert_eq!(record.user.id, owner.id);
    assert_eq!(record.password_hash, "$argon2id$fake");
    assert!(store.get_user(other.id, owner.id).await.expect("get").is_none(), "not visible from another tenant");

    let agent = store.create_user(tenant.id, new_user("a@acme.io", Role::Agent)).await.expect("create user");
    let listed: Vec<_> = store.list_users(tenant.id).await.expect("list").into_iter().map(|u| u.id).collect();
    assert_eq!(listed, [owner.id, agent.id]);
    let last_owner = store.update_user(tenant.id, owner.id, UserPatch { name: None, role: Some(Role::Admin) }).await;
    assert!(matches!(last_owner, Err(StoreError::LastOwner)), "{last_owner:?}");
    assert!(matches!(store.delete_user(tenant.id, owner.id).await, Err(StoreError::LastOwner)));
    assert_eq!(store.get_user(tenant.id, owner.id).await.expect("get").map(|u| u.role), Some(Role::Owner), "nothing changed");

    let patch = UserPatch { name: None, role: Some(Role::Admin) };
    assert!(store.update_user(other.id, agent.id, patch.clone()).await.expect("update").is_none());
    let updated = store.update_user(tenant.id, agent.id, patch).await.expect("update").expect("found");
    assert_eq!((updated.role, updated.name.as_deref()), (Role::Admin, Some("N")), "a patch keeps what it does not set");

    assert!(!store.delete_user(other.id, agent.id).await.expect("delete"));
    assert!(store.delete_user(tenant.id, agent.id).await.expect("delete"));
    assert!(store.get_user(tenant.id, agent.id).await.expect("get").is_none());
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, user) = store.create_tenant_with_owner("T", new_user("r@t.io", Role::Owner)).await.expect("create");
    let family = Uuid::new_v4();
    store.insert_refresh_token(token(tenant.id, user.id, family, "h1", Duration::days(1))).await.expect("insert");

    let grace = std::time::Duration::from_secs(10);
    let rotate = |old: &'static str, new: &'static str, grace: std::time::Duration| {
        let store = store.clone();
        let (tenant_id, user_id) = (tenant.id, user.id);
        async move {
            let sealed = format!("sealed:{new}");
            store.rotate_refresh_token(old, token(tenant_id, user_id, family, new, Duration::days(1)), &sealed, grace).await
        }
    };
    let rotated = rotate("h1", "h2", grace).await.expect("rotate");
    assert!(matches!(rotated, Rotation::Rotated(ref u) if u.id == user.id), "{rotated:?}");
    let repeated = rotate("h1", "h3", grace).await.expect("rotate");
    assert!(
        matches!(repeated, Rotation::Repeated { ref user, ref sealed_successor } if sealed_successor == "sealed:h2" && user.email == "r@t.io"),
        "within the grace window the same successor comes back: {repeated:?}"
    );
    assert!(matches!(rotate("h3", "x", grace).await.expect("rotate"), Rotation::Invalid), "nothing new was stored");
    assert!(matches!(rotate("h2", "h4", grace).await.expect("rotate"), Rotation::Rotated(_)), "the successor is still live");
    let reused = rotate("h1", "h5", grace).await.expect("rotate");
    assert!(matches!(reused, Rotation::Reused), "its successor is spent: reuse, even within the window: {reused:?}");
    let after = rotate("h4", "h6", grace).await.expect("rotate");
    assert!(matches!(after, Rotation::Reused), "h4 was revoked with its family: {after:?}");
    let kept = test_db.raw_texts("SELECT COALESCE(successor_token, '') FROM refresh_tokens").await;
    assert!(kept.iter().all(String::is_empty), "a revoked family keeps no successor: {kept:?}");

    store.insert_refresh_token(token(tenant.id, user.id, family, "g1", Duration::days(1))).await.expect("insert");
    assert!(matches!(rotate("g1", "g2", std::time::Duration::ZERO).await.expect("rotate"), Rotation::Rotated(_)));
    assert!(matches!(rotate("g1", "g3", std::time::Duration::ZERO).await.expect("rotate"), Rotation::Reused), "no window");

    let unknown = rotate("nope", "h7", grace).await.expect("rotate");
    assert!(matches!(unknown, Rotation::Invalid));

    let other_family = Uuid::new_v4();
    store.insert_refresh_token(token(tenant.id, user.id, other_family, "old", -Duration::minutes(1))).await.expect("insert");
    let expired = store
        .rotate_refresh_token("old", token(tenant.id, user.id, other_family, "h8", Duration::days(1)), "s", grace)
        .await
        .expect("rotate");
    assert!(matches!(expired, Rotation::Invalid), "an expired token does not rotate: {expired:?}");

    let live_family = Uuid::new_v4();
    store.insert_refresh_token(token(tenant.id, user.id, live_family, "l1", Duration::days(1))).await.expect("insert");
    assert_eq!(store.revoke_refresh_family(Uuid::new_v4(), live_family).await.expect("revoke"), 0, "scoped by tenant");
    assert_eq!(store.revoke_refresh_family(tenant.id, live_family).await.expect("revoke"), 1);
    let revoked = store
        .rotate_refresh_token("l1", token(tenant.id, user.id, live_family, "l2", Duration::days(1)), "s", grace)
        .await
        .expect("rotate");
    assert!(matches!(revoked, Rotation::Reused));
}

async fn channels_round_trip_and_stay_in_their_tenant(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, _) = store.create_tenant_with_owner("C", new_user("c@c.io", Role::Owner)).await.expect("create");
    let (other, _) = store.create_tenant_with_owner("D", new_user("d@d.io", Role::Owner)).await.expect("create");
    let created = store
        .create_channel(
            tenant.id,
            NewChannel {
                channel_type: ChannelType::WHATSAPP,
                name: "WA".into(),
                external_id: Some("+4912345".into()),
                config: json!({"a": 1}),
                metadata: json!({"b": [1, 2]}),
            },
        )
        .await
        .expect("create");
    assert_eq!((created.channel_type, created.status), (ChannelType::WHATSAPP, ChannelStatus::Disconnected));
    assert_eq!(created.metadata.0, json!({"b": [1, 2]}));

    let fetched = store.get_channel(tenant.id, created.id).await.expect("get").expect("found");
    assert_eq!(fetched.config.0, json!({"a": 1}));
    assert!(store.get_channel(other.id, created.id).await.expect("get").is_none());
    assert!(store.list_channels(other.id).await.expect("list").is_empty());

    let patch = ChannelPatch { name: Some("WhatsApp".into()), external_id: Some(None), config: None, metadata: Some(json!({})) };
    assert!(store.update_channel(other.id, created.id, patch.clone()).await.expect("update").is_none());
    let updated = store.update_channel(tenant.id, created.id, patch).await.expect("update").expect("found");
    assert_eq!((updated.name.as_str(), updated.external_id.as_deref()), ("WhatsApp", None));
    assert_eq!(updated.config.0, json!({"a": 1}), "config untouched");
    assert!(updated.updated_at >= created.updated_at);

    let connected = store
        .set_channel_status(tenant.id, created.id, ChannelStatus::Error, Some("logged out"))
        .await
        .expect("status")
        .expect("found");
    assert_eq!((connected.status, connected.status_reason.as_deref()), (ChannelStatus::Error, Some("logged out")));

    assert!(!store.delete_channel(other.id, created.id).await.expect("delete"));
    assert!(store.delete_channel(tenant.id, created.id).await.expect("delete"));
    assert!(store.list_channels(tenant.id).await.expect("list").is_empty());
}

async fn unique_keys_are_conflicts(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, _) = store.create_tenant_with_owner("U", new_user("u@u.io", Role::Owner)).await.expect("create");
    let duplicate = store.create_tenant_with_owner("U2", new_user("u@u.io", Role::Owner)).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
    assert_eq!(store.list_users(tenant.id).await.expect("list").len(), 1);

    let page = |name: &str| NewChannel {
        channel_type: ChannelType::FACEBOOK,
        name: name.into(),
        external_id: Some("page-1".into()),
        config: json!({}),
        metadata: json!({}),
    };
    store.create_channel(tenant.id, page("one")).await.expect("first");
    let second = store.create_channel(tenant.id, page("two")).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
}

async fn migrations_run_twice_without_harm(db: Db) {
    let test_db = TestDb::new(db);
    let store: std::sync::Arc<dyn Store> = test_db.store().await;
    store.migrate().await.expect("second migrate is a no-op");
    store.ping().await.expect("ping");
}

async fn tenant_with_channel(store: &std::sync::Arc<dyn Store>, email: &str) -> (Uuid, Uuid) {
    let (tenant, _) = store.create_tenant_with_owner("Inbox", new_user(email, Role::Owner)).await.expect("tenant");
    let channel = store
        .create_channel(
            tenant.id,
            NewChannel {
                channel_type: ChannelType::TELEGRAM_BOT,
                name: "Bot".into(),
                external_id: None,
                config: json!({}),
                metadata: json!({}),
            },
        )
        .await
        .expect("channel");
    (tenant.id, channel.id)
}

fn inbound(tenant_id: Uuid, channel_id: Uuid, user: &str, provider_id: &str) -> NewInboundMessage {
    NewInboundMessage {
        tenant_id,
        channel_instance_id: channel_id,
        external_user_id: user.into(),
        external_conversation_id: Some(user.into()),
        provider_message_id: Some(provider_id.into()),
        sender_name: Some("Ann".into()),
        sender_username: None,
        text: Some("hello".into()),
        attachments: json!([]),
        raw: json!({"id": provider_id}),
        sent_at: None,
        direction: MessageDirection::Inbound,
    }
}

async fn an_inbound_message_is_stored_once_with_its_customer_and_conversation(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "in@c.io").await;

    let first = store.ingest_message(&inbound(tenant, channel, "u1", "p1")).await.expect("ingest");
    let Ingested::Stored { customer, conversation, message, conversation_created } = first else { panic!("stored") };
    assert!(conversation_created);
    assert_eq!((customer.external_id.as_str(), customer.name.as_deref()), ("u1", Some("Ann")));
    assert_eq!(message.status, MessageStatus::Received);
    assert_eq!(conversation.last_message_at, message.created_at);

    assert!(matches!(store.ingest_message(&inbound(tenant, channel, "u1", "p1")).await.expect("ingest"), Ingested::Duplicate));
    let mut anonymous = inbound(tenant, channel, "u1", "p2");
    anonymous.sender_name = None;
    let Ingested::Stored { customer: same, conversation: again, conversation_created, .. } =
        store.ingest_message(&anonymous).await.expect("ingest")
    else {
        panic!("stored")
    };
    assert_eq!((same.id, again.id, conversation_created), (customer.id, conversation.id, false));
    assert_eq!(same.name.as_deref(), Some("Ann"), "a message without a name keeps the known one");

    let all = store.list_conversations(tenant, &ConversationQuery { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(all.len(), 1);
    let (other_tenant, _) = tenant_with_channel(&store, "other@c.io").await;
    assert!(
        store
            .list_conversations(other_tenant, &ConversationQuery { limit: 10, ..Default::default() })
            .await
            .expect("list")
            .is_empty()
    );
}

async fn concurrent_deliveries_store_a_message_once_in_one_conversation(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "race@c.io").await;

    // One message delivered eight times at once: stored once, the rest are duplicates (on
    // PostgreSQL some of them lose the race on the unique key rather than seeing the row).
    let same = inbound(tenant, channel, "u1", "p1");
    let results = futures::future::join_all((0..8).map(|_| store.ingest_message(&same))).await;
    let stored: Vec<_> = results.iter().filter(|r| matches!(r, Ok(Ingested::Stored { .. }))).collect();
    let duplicates = results.iter().filter(|r| matches!(r, Ok(Ingested::Duplicate))).count();
    assert_eq!((stored.len(), duplicates), (1, 7), "{results:?}");

    // Eight messages of a new customer at once: one conversation, opened once.
    let results = futures::future::join_all((0..8).map(|i| {
        let message = inbound(tenant, channel, "u2", &format!("q{i}"));
        let store = store.clone();
        async move { store.ingest_message(&message).await }
    }))
    .await;
    let mut conversations = std::collections::HashSet::new();
    let mut opened = 0;
    for result in results {
        let Ingested::Stored { conversation, conversation_created, .. } = result.expect("ingest") else { panic!("stored") };
        conversations.insert(conversation.id);
        opened += usize::from(conversation_created);
    }
    assert_eq!((conversations.len(), opened), (1, 1));

    // What the ingest returned is what a read gives.
    let Ingested::Stored { customer, conversation, message, .. } =
        store.ingest_message(&inbound(tenant, channel, "u2", "q-last")).await.expect("ingest")
    else {
        panic!("stored")
    };
    let page = PageQuery { limit: 1, ..Default::default() };
    let listed = store.list_messages(tenant, conversation.id, &page).await.expect("messages");
    assert_eq!(as_json(&listed[0]), as_json(&message));
    let read = store.get_conversation(tenant, conversation.id).await.expect("read").expect("conversation");
    assert_eq!(as_json(&read), as_json(&conversation));
    let read = store.get_customer(tenant, customer.id).await.expect("read").expect("customer");
    assert_eq!(as_json(&read), as_json(&customer));
}

async fn cancelled_ingests_leave_the_store_working(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "cancel@c.io").await;

    // Calls dropped at every stage of their round trip (a webhook whose client went away).
    let mut finished = 0;
    for i in 0..60u64 {
        let message = inbound(tenant, channel, &format!("u{}", i % 3), &format!("c{i}"));
        let call = store.ingest_message(&message);
        if let Ok(result) = tokio::time::timeout(std::time::Duration::from_micros(i * 50), call).await {
            assert!(matches!(result.expect("ingest"), Ingested::Stored { .. }));
            finished += 1;
        }
    }
    // Every later call is answered, and each message is there at most once.
    for i in 0..60u64 {
        let message = inbound(tenant, channel, &format!("u{}", i % 3), &format!("c{i}"));
        store.ingest_message(&message).await.expect("ingest after cancellations");
        assert_eq!(store.find_channel(channel).await.expect("lookup").map(|c| c.id), Some(channel));
    }
    let all = store.list_conversations(tenant, &ConversationQuery { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(all.len(), 3, "one conversation per customer");
    let mut total = 0;
    for conversation in &all {
        total += store
            .list_messages(tenant, conversation.id, &PageQuery { limit: 100, ..Default::default() })
            .await
            .expect("list")
            .len();
    }
    assert_eq!(total, 60, "{finished} calls finished before their deadline");
}

/// The database's write lock held from another connection, with every batch worker of the
/// store busy behind it (blocked on a message of another tenant), so that the ingests started
/// meanwhile queue up and go in one batch when it is released (see store/group_commit.rs). If a
/// call is late, it goes in a later batch: the assertions hold either way.
struct HeldWrites {
    conn: HeldConnection,
    blockers: Vec<Call>,
}

enum HeldConnection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl HeldWrites {
    async fn hold(test_db: &TestDb, store: &std::sync::Arc<dyn Store>) -> Self {
        use sqlx::Connection;
        let (tenant, channel) = tenant_with_channel(store, &format!("blocker-{}@c.io", Uuid::new_v4())).await;
        let conn = match test_db.db {
            Db::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&test_db.url).await.expect("sqlite");
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("write lock");
                HeldConnection::Sqlite(conn)
            }
            Db::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&test_db.url).await.expect("postgres");
                sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
                sqlx::query("LOCK TABLE customers IN EXCLUSIVE MODE").execute(&mut conn).await.expect("lock");
                HeldConnection::Postgres(conn)
            }
        };
        // One blocked message per worker (PostgreSQL runs two batches at once, SQLite one).
        let mut blockers = Vec::new();
        for i in 0..2 {
            blockers.extend(spawn_ingests(store, vec![inbound(tenant, channel, &format!("b{i}"), &format!("b{i}"))]));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { conn, blockers }
    }

    /// Gives the calls spawned meanwhile time to queue (not a deadline), then lets them go.
    async fn release(self) {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        match self.conn {
            HeldConnection::Sqlite(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
            HeldConnection::Postgres(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
        }
        .expect("release");
        for blocker in results(self.blockers).await {
            conversation_of(&blocker);
        }
    }
}

type Call = tokio::task::JoinHandle<Result<Ingested, StoreError>>;

fn spawn_ingests(store: &std::sync::Arc<dyn Store>, messages: Vec<NewInboundMessage>) -> Vec<Call> {
    messages
        .into_iter()
        .map(|message| {
            let store = store.clone();
            tokio::spawn(async move { store.ingest_message(&message).await })
        })
        .collect()
}

async fn results(calls: Vec<Call>) -> Vec<Result<Ingested, StoreError>> {
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("call"));
    }
    results
}

async fn stored_messages(store: &std::sync::Arc<dyn Store>, tenant: Uuid) -> Vec<String> {
    let query = ConversationQuery { limit: 100, ..Default::default() };
    let mut ids = Vec::new();
    for conversation in store.list_conversations(tenant, &query).await.expect("list") {
        let page = PageQuery { limit: 100, ..Default::default() };
        for message in store.list_messages(tenant, conversation.id, &page).await.expect("messages") {
            ids.push(message.provider_message_id.expect("provider id"));
        }
    }
    ids.sort();
    ids
}

fn conversation_of(result: &Result<Ingested, StoreError>) -> (Uuid, bool) {
    match result {
        Ok(Ingested::Stored { conversation, conversation_created, .. }) => (conversation.id, *conversation_created),
        other => panic!("stored: {other:?}"),
    }
}

async fn a_batch_stores_each_message_once_and_answers_duplicates(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch-dup@c.io").await;
    store.ingest_message(&inbound(tenant, channel, "u0", "p0")).await.expect("ingest");

    let held = HeldWrites::hold(&test_db, &store).await;
    let calls = spawn_ingests(
        &store,
        vec![
            inbound(tenant, channel, "u0", "p0"), // stored before
            inbound(tenant, channel, "u1", "p1"),
            inbound(tenant, channel, "u1", "p1"), // twice in the batch
            inbound(tenant, channel, "u2", "p2"), // a new customer, twice
            inbound(tenant, channel, "u2", "p3"),
            inbound(tenant, channel, "u3", "p4"),
        ],
    );
    held.release().await;
    let results = results(calls).await;

    assert!(matches!(results[0], Ok(Ingested::Duplicate)), "{:?}", results[0]);
    let p1: Vec<_> = results[1..3].iter().map(|r| matches!(r, Ok(Ingested::Stored { .. }))).collect();
    assert!(p1 == [true, false] || p1 == [false, true], "p1 stored once, the other a duplicate: {results:?}");
    assert!(results[1..3].iter().all(Result::is_ok), "{results:?}");
    let (first, second) = (conversation_of(&results[3]), conversation_of(&results[4]));
    assert_eq!(first.0, second.0, "one conversation for the new customer");
    assert_eq!(u8::from(first.1) + u8::from(second.1), 1, "opened once");
    conversation_of(&results[5]);
    assert_eq!(stored_messages(&store, tenant).await, ["p0", "p1", "p2", "p3", "p4"]);
}

async fn a_message_of_a_channel_deleted_meanwhile_fails_alone(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch-gone@c.io").await;
    let new_channel = NewChannel {
        channel_type: ChannelType::TELEGRAM_BOT,
        name: "Going".into(),
        external_id: None,
        config: json!({}),
        metadata: json!({}),
    };
    let gone = store.create_channel(tenant, new_channel).await.expect("channel").id;
    // The webhook found the channel; it is deleted before its message is stored.
    assert!(store.delete_channel(tenant, gone).await.expect("delete"));

    let held = HeldWrites::hold(&test_db, &store).await;
    let calls = spawn_ingests(
        &store,
        vec![
            inbound(tenant, channel, "u1", "a1"),
            inbound(tenant, gone, "u1", "g1"),
            inbound(tenant, channel, "u2", "a2"),
            inbound(tenant, gone, "u3", "g2"),
        ],
    );
    held.release().await;
    let results = results(calls).await;

    for i in [0, 2] {
        conversation_of(&results[i]);
    }
    for i in [1, 3] {
        assert!(matches!(results[i], Err(StoreError::Missing(_))), "{:?}", results[i]);
    }
    assert_eq!(stored_messages(&store, tenant).await, ["a1", "a2"]);
}

async fn concurrent_batches_for_one_new_customer_open_one_conversation(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch-new@c.io").await;
    // Rounds of 24 calls at once, half of them one new customer's, half other customers': on
    // PostgreSQL two batches run side by side, so the new customer's messages meet in both.
    for round in 0..4 {
        let messages = (0..24)
            .map(|i| {
                let user = if i % 2 == 0 { format!("new{round}") } else { format!("other{round}-{i}") };
                inbound(tenant, channel, &user, &format!("r{round}-{i}"))
            })
            .collect();
        let results = results(spawn_ingests(&store, messages)).await;
        let new_customer: Vec<(Uuid, bool)> = results.iter().step_by(2).map(conversation_of).collect();
        assert!(new_customer.iter().all(|(id, _)| *id == new_customer[0].0), "one conversation: {new_customer:?}");
        assert_eq!(new_customer.iter().filter(|(_, created)| *created).count(), 1, "opened once");
        assert!(results.iter().skip(1).step_by(2).all(|r| conversation_of(r).1), "the others' are new too");
    }
    assert_eq!(stored_messages(&store, tenant).await.len(), 96);
}

async fn a_batch_cut_by_a_cancelled_request_is_stored_for_the_others(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch-cut@c.io").await;
    let messages: Vec<_> = (0..8).map(|i| inbound(tenant, channel, &format!("u{}", i % 2), &format!("c{i}"))).collect();

    let held = HeldWrites::hold(&test_db, &store).await;
    let calls = spawn_ingests(&store, messages.clone());
    // Three webhooks' clients hang up while their messages wait (the first may be in the batch
    // already, the others are queued behind it).
    let cancelled = [0, 5, 7];
    for i in cancelled {
        calls[i].abort();
    }
    held.release().await;
    let mut kept = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        match call.await {
            Ok(result) => kept.push((i, result)),
            Err(join) => assert!(join.is_cancelled() && cancelled.contains(&i), "{join:?}"),
        }
    }
    assert_eq!(kept.len(), 5);
    for (_, result) in &kept {
        conversation_of(result);
    }
    // Each provider retries: what was answered is a duplicate, a cancelled one is stored now if
    // it was not taken before its caller left; either way it is there once.
    for (i, message) in messages.iter().enumerate() {
        let again = store.ingest_message(message).await.expect("redelivery");
        if !cancelled.contains(&i) {
            assert!(matches!(again, Ingested::Duplicate), "{again:?}");
        }
    }
    assert_eq!(stored_messages(&store, tenant).await, ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    let query = ConversationQuery { limit: 10, ..Default::default() };
    assert_eq!(store.list_conversations(tenant, &query).await.expect("list").len(), 2, "one per customer");
}

/// A customer's open conversation, found in one batch both by its external conversation id and
/// (for a message that has none) as the customer's newest open one: both messages go in it. On
/// PostgreSQL the batch's set-based attempt sees two conversation keys for one row and falls
/// back to storing message by message (migrations/postgres/0013).
async fn a_conversation_a_batch_finds_two_ways_is_touched_not_opened_again(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch-two-keys@c.io").await;
    let (existing, _) = conversation_of(&store.ingest_message(&inbound(tenant, channel, "u1", "k0")).await);

    let held = HeldWrites::hold(&test_db, &store).await;
    let no_thread = NewInboundMessage { external_conversation_id: None, ..inbound(tenant, channel, "u1", "k2") };
    let calls =
        spawn_ingests(&store, vec![inbound(tenant, channel, "u1", "k1"), no_thread, inbound(tenant, channel, "u2", "k3")]);
    held.release().await;
    let results = results(calls).await;

    assert_eq!(conversation_of(&results[0]), (existing, false));
    assert_eq!(conversation_of(&results[1]), (existing, false));
    assert!(conversation_of(&results[2]).1, "u2's is new");
    let query = ConversationQuery { limit: 10, ..Default::default() };
    assert_eq!(store.list_conversations(tenant, &query).await.expect("list").len(), 2, "one per customer");
    assert_eq!(stored_messages(&store, tenant).await, ["k0", "k1", "k2", "k3"]);
}

/// A webhook's channel lookup (served from memory on PostgreSQL) sees every change made through
/// the store at once: a rotated secret, a status, a deletion.
async fn a_channel_change_is_seen_by_the_next_webhook_lookup(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "lookup@c.io").await;
    for round in 0..3 {
        assert!(store.find_channel(channel).await.expect("lookup").is_some());
        let secret = format!("secret-{round}");
        let patch = ChannelPatch { config: Some(json!({ "secretToken": secret })), ..ChannelPatch::default() };
        store.update_channel(tenant, channel, patch).await.expect("update").expect("found");
        let found = store.find_channel(channel).await.expect("lookup").expect("found");
        assert_eq!(found.config.0["secretToken"], secret.as_str());
        store.set_channel_status(tenant, channel, ChannelStatus::Error, Some("gone")).await.expect("status");
        let found = store.find_channel(channel).await.expect("lookup").expect("found");
        assert_eq!(found.status_reason.as_deref(), Some("gone"));
        store.set_channel_status(tenant, channel, ChannelStatus::Connected, None).await.expect("status");
    }
    assert!(store.delete_channel(tenant, channel).await.expect("delete"));
    assert!(store.find_channel(channel).await.expect("lookup").is_none());
}

/// PostgreSQL only: lookups are served from memory; a replica's lookups see a change made through
/// it at once, one made on another replica when the database announces it, also one made while
/// the replica's listener connection was cut. Polled for at most 10 s (the announcement is
/// asynchronous); without the invalidation it never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_replicas_channel_change_reaches_the_lookup() {
    use sqlx::Connection;
    if !omnichat_tests::available(Db::Postgres) {
        return;
    }
    let test_db = TestDb::new(Db::Postgres);
    let (replica, other) = (test_db.store().await, test_db.store().await);
    let (tenant, channel) = tenant_with_channel(&replica, "replicas@c.io").await;
    let mut admin = sqlx::PgConnection::connect(&test_db.url).await.expect("postgres");
    let listeners = || {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%omnichat_channel_changed%'",
        )
    };
    let renamed = |name: &'static str| {
        let replica = replica.clone();
        async move {
            for _ in 0..200 {
                if replica.find_channel(channel).await.expect("lookup").expect("found").name == name {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("the replica never saw the channel renamed {name}");
        }
    };
    // Both stores listen (one connection each) before the first change.
    let mut listening = 0;
    for _ in 0..200 {
        listening = listeners().fetch_all(&mut admin).await.expect("activity").len();
        if listening == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listening, 2, "each store listens for channel changes");
    let patch = |name: &str| ChannelPatch { name: Some(name.into()), ..ChannelPatch::default() };

    // With the trigger off, a change behind the store's back is not seen (lookups are served
    // from memory; tried until the cache serves, since a listener shows in pg_stat_activity a
    // moment before it does), and one made through the store is seen at once (dropped without
    // the database's announcement).
    sqlx::query("ALTER TABLE channel_instances DISABLE TRIGGER channel_changed").execute(&mut admin).await.expect("trigger off");
    let mut from_memory = false;
    for attempt in 0..100 {
        let name = replica.find_channel(channel).await.expect("lookup").expect("found").name;
        sqlx::query("UPDATE channel_instances SET name = $2 WHERE id = $1")
            .bind(channel)
            .bind(format!("Behind {attempt}"))
            .execute(&mut admin)
            .await
            .expect("update");
        if replica.find_channel(channel).await.expect("lookup").expect("found").name == name {
            from_memory = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(from_memory, "lookups are served from memory");
    replica.update_channel(tenant, channel, patch("Local")).await.expect("update").expect("found");
    assert_eq!(replica.find_channel(channel).await.expect("lookup").expect("found").name, "Local");
    sqlx::query("ALTER TABLE channel_instances ENABLE TRIGGER channel_changed").execute(&mut admin).await.expect("trigger on");

    replica.find_channel(channel).await.expect("lookup").expect("found");
    other.update_channel(tenant, channel, patch("Renamed")).await.expect("update").expect("found");
    renamed("Renamed").await;

    // Every listener's connection is cut; a change made meanwhile is announced to no one.
    replica.find_channel(channel).await.expect("lookup").expect("found");
    for pid in listeners().fetch_all(&mut admin).await.expect("activity") {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut admin).await.expect("terminate");
    }
    other.update_channel(tenant, channel, patch("Unannounced")).await.expect("update").expect("found");
    renamed("Unannounced").await;
}

/// PostgreSQL only (SQLite takes the whole file's write lock, not rows): a message whose
/// customer row another transaction holds gives up its lock wait, goes again in later batches,
/// and is answered busy (503, transient: a bridge keeps it) when its retries run out; its
/// batch-mates are stored, and a redelivery after the lock is gone is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_message_stuck_on_a_row_lock_is_retried_then_answered_busy() {
    use sqlx::Connection;
    if !omnichat_tests::available(Db::Postgres) {
        return;
    }
    let test_db = TestDb::new(Db::Postgres);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "lock-wait@c.io").await;
    // Short lock waits on this database; the webhook path's connections open after this.
    let name = test_db.url.rsplit('/').next().expect("database name");
    let mut conn = sqlx::PgConnection::connect(&test_db.url).await.expect("postgres");
    let alter = format!("ALTER DATABASE \"{name}\" SET lock_timeout = '100ms'");
    sqlx::query(sqlx::AssertSqlSafe(alter)).execute(&mut conn).await.expect("lock_timeout");
    store.ingest_message(&inbound(tenant, channel, "locked", "l0")).await.expect("first message");

    sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
    sqlx::query("SELECT 1 FROM customers WHERE external_id = 'locked' FOR UPDATE").execute(&mut conn).await.expect("row lock");
    let calls = spawn_ingests(
        &store,
        vec![
            inbound(tenant, channel, "locked", "l1"),
            inbound(tenant, channel, "free1", "f1"),
            inbound(tenant, channel, "free2", "f2"),
        ],
    );
    let results = results(calls).await;
    match &results[0] {
        Err(err @ StoreError::Refused { code, .. }) => assert!(err.is_transient(), "{code}"),
        other => panic!("busy: {other:?}"),
    }
    conversation_of(&results[1]);
    conversation_of(&results[2]);
    sqlx::query("ROLLBACK").execute(&mut conn).await.expect("release");

    let again = store.ingest_message(&inbound(tenant, channel, "locked", "l1")).await;
    conversation_of(&again);
    assert_eq!(stored_messages(&store, tenant).await, ["f1", "f2", "l0", "l1"]);
}

async fn queued_jobs_are_leased_completed_retried_and_killed(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "q@c.io").await;
    let Ingested::Stored { conversation, .. } =
        store.ingest_message(&inbound(tenant, channel, "u1", "p1")).await.expect("ingest")
    else {
        panic!("stored")
    };
    let outbound = |text: &str, key: Option<&str>| NewOutboundMessage {
        tenant_id: tenant,
        conversation: conversation.clone(),
        sender_user_id: None,
        sender_agent_id: None,
        text: Some(text.into()),
        attachments: json!([]),
        idempotency_key: key.map(str::to_owned),
        max_attempts: 3,
    };
    let Enqueued::Queued { message: a, .. } = store.enqueue_outbound(&outbound("a", Some("k1"))).await.expect("enqueue") else {
        panic!("queued")
    };
    let Enqueued::Replayed(replayed) = store.enqueue_outbound(&outbound("a again", Some("k1"))).await.expect("enqueue") else {
        panic!("replayed")
    };
    assert_eq!(replayed.id, a.id);
    store.enqueue_outbound(&outbound("b", None)).await.expect("enqueue");

    let lease = Duration::seconds(30);
    let claimed = store.claim_due_jobs("w1", lease, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|j| j.status == QueueStatus::Sending && j.locked_by.as_deref() == Some("w1")));
    assert!(store.claim_due_jobs("w2", lease, 10).await.expect("claim").is_empty(), "leased jobs are not claimed twice");

    let (job_a, job_b) = if claimed[0].message_id == a.id { (&claimed[0], &claimed[1]) } else { (&claimed[1], &claimed[0]) };
    let sent = store.complete_jobs(&[(job_a.clone(), "chat:1".to_owned())]).await.expect("complete");
    assert_eq!((sent[0].status, sent[0].provider_message_id.as_deref()), (MessageStatus::Sent, Some("chat:1")));
    store.retry_job(job_b, Utc::now() - Duration::seconds(1), Some("503")).await.expect("retry");
    let again = store.claim_due_jobs("w2", lease, 10).await.expect("claim");
    assert_eq!((again.len(), again[0].attempts, again[0].last_error.as_deref()), (1, 1, Some("503")));
    let failed = store.kill_job(&again[0], "blocked").await.expect("kill");
    assert_eq!((failed.status, failed.error.as_deref()), (MessageStatus::Failed, Some("blocked")));
    let dead = store.list_jobs(tenant, Some(QueueStatus::Dead), 10).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert!(store.requeue_job(Uuid::new_v4(), dead[0].id).await.expect("requeue").is_none(), "scoped by tenant");
    let (requeued, message) = store.requeue_job(tenant, dead[0].id).await.expect("requeue").expect("dead job");
    assert_eq!((requeued.status, requeued.attempts, message.status), (QueueStatus::Pending, 0, MessageStatus::Pending));

    // An expired lease makes a SENDING job due again; release hands a worker's jobs back.
    let held = store.claim_due_jobs("w3", Duration::milliseconds(-1), 10).await.expect("claim");
    assert_eq!(held.len(), 1);
    let stolen = store.claim_due_jobs("w4", lease, 10).await.expect("claim");
    assert_eq!(stolen.len(), 1, "the expired lease is taken over");
    assert_eq!(store.release_jobs("w4").await.expect("release"), 1);
    assert_eq!(store.claim_due_jobs("w5", lease, 10).await.expect("claim").len(), 1);
}

async fn a_batch_of_jobs_is_loaded_and_completed_together(db: Db) {
    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let (tenant, channel) = tenant_with_channel(&store, "batch@c.io").await;
    let mut conversations = Vec::new();
    for user in ["u1", "u2"] {
        let Ingested::Stored { conversation, .. } =
            store.ingest_message(&inbound(tenant, channel, user, &format!("in-{user}"))).await.expect("ingest")
        else {
            panic!("stored")
        };
        conversations.push(conversation);
    }
    for i in 0..4 {
        let message = NewOutboundMessage {
            tenant_id: tenant,
            conversation: conversations[i % 2].clone(),
            sender_user_id: None,
            sender_agent_id: None,
            text: Some(format!("out {i}")),
            attachments: json!([]),
            idempotency_key: None,
            max_attempts: 3,
        };
        store.enqueue_outbound(&message).await.expect("enqueue");
    }
    let jobs = store.claim_due_jobs("w", Duration::seconds(30), 10).await.expect("claim");
    assert_eq!(jobs.len(), 4);

    let dispatches = store.load_dispatches(&jobs).await.expect("load");
    assert_eq!(dispatches.len(), 4);
    for (job, dispatch) in jobs.iter().zip(&dispatches) {
        let dispatch = dispatch.as_ref().expect("every job loads");
        assert_eq!((dispatch.message.id, dispatch.channel.id), (job.message_id, job.channel_instance_id));
        assert_eq!(dispatch.conversation.id, dispatch.message.conversation_id);
        assert_eq!(dispatch.customer.id, dispatch.conversation.customer_id);
    }

    // The inbound message already holds provider id "in-u1" on this channel: the job given it
    // (a re-send after a crash would be) is still SENT, its id kept off the unique key.
    let delivered: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| (job.clone(), if i == 3 { "in-u1".to_owned() } else { format!("chat:{i}") }))
        .collect();
    let sent = store.complete_jobs(&delivered).await.expect("complete");
    assert_eq!(sent.len(), 4);
    for (i, (message, (job, _))) in sent.iter().zip(&delivered).enumerate() {
        assert_eq!((message.id, message.status), (job.message_id, MessageStatus::Sent));
        let expected = if i == 3 { None } else { Some(format!("chat:{i}")) };
        assert_eq!(message.provider_message_id, expected);
    }
    let done = store.list_jobs(tenant, Some(QueueStatus::Sent), 10).await.expect("list");
    assert_eq!(done.len(), 4);
    assert!(done.iter().all(|j| j.attempts == 1 && j.locked_until.is_none()));
    assert!(store.claim_due_jobs("w", Duration::seconds(30), 10).await.expect("claim").is_empty());
}
