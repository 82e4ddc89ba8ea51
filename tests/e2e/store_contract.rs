//! The store contract: the same scenarios against SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use omnichat::store::{
    ChannelPatch, ChannelStatus, ChannelType, NewChannel, NewRefreshToken, NewUser, Role, Rotation, Store, StoreError, UserPatch,
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
);

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
    assert_eq!(store.count_owners(tenant.id).await.expect("count"), 1);

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

    let rotated =
        store.rotate_refresh_token("h1", token(tenant.id, user.id, family, "h2", Duration::days(1))).await.expect("rotate");
    assert!(matches!(rotated, Rotation::Rotated(ref u) if u.id == user.id), "{rotated:?}");
    let reused =
        store.rotate_refresh_token("h1", token(tenant.id, user.id, family, "h3", Duration::days(1))).await.expect("rotate");
    assert!(matches!(reused, Rotation::Reused), "{reused:?}");
    let after =
        store.rotate_refresh_token("h2", token(tenant.id, user.id, family, "h4", Duration::days(1))).await.expect("rotate");
    assert!(matches!(after, Rotation::Reused), "h2 was revoked with its family: {after:?}");

    let unknown =
        store.rotate_refresh_token("nope", token(tenant.id, user.id, family, "h5", Duration::days(1))).await.expect("rotate");
    assert!(matches!(unknown, Rotation::Invalid));

    let other_family = Uuid::new_v4();
    store.insert_refresh_token(token(tenant.id, user.id, other_family, "old", -Duration::minutes(1))).await.expect("insert");
    let expired = store
        .rotate_refresh_token("old", token(tenant.id, user.id, other_family, "h6", Duration::days(1)))
        .await
        .expect("rotate");
    assert!(matches!(expired, Rotation::Invalid), "an expired token does not rotate: {expired:?}");

    let live_family = Uuid::new_v4();
    store.insert_refresh_token(token(tenant.id, user.id, live_family, "l1", Duration::days(1))).await.expect("insert");
    assert_eq!(store.revoke_refresh_family(Uuid::new_v4(), live_family).await.expect("revoke"), 0, "scoped by tenant");
    assert_eq!(store.revoke_refresh_family(tenant.id, live_family).await.expect("revoke"), 1);
    let revoked =
        store.rotate_refresh_token("l1", token(tenant.id, user.id, live_family, "l2", Duration::days(1))).await.expect("rotate");
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
                channel_type: ChannelType::Whatsapp,
                name: "WA".into(),
                external_id: Some("+4912345".into()),
                config: json!({"a": 1}),
                metadata: json!({"b": [1, 2]}),
            },
        )
        .await
        .expect("create");
    assert_eq!((created.channel_type, created.status), (ChannelType::Whatsapp, ChannelStatus::Disconnected));
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
        channel_type: ChannelType::Facebook,
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
