//! A tenant sees only its own data: another tenant's ids are simply not found.

use omnichat_tests::{Db, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(another_tenants_ids_are_not_found_and_nothing_leaks);

async fn another_tenants_ids_are_not_found_and_nothing_leaks(db: Db) {
    let app = spawn_app(db).await;
    let alice = app.register("alice@one.io").await;
    let mallory = app.register("mallory@two.io").await;
    assert_ne!(alice.tenant_id, mallory.tenant_id);

    let channel =
        app.create_channel(&alice, json!({"name": "Alice bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:a"}})).await;
    let invited =
        app.post("/api/users", Some(&alice.access_token), json!({"email": "agent@one.io", "password": "password123"})).await;
    let channel_path = format!("/api/channels/{}", id_of(&channel));
    let user_paths = [format!("/api/users/{}", alice.user_id), format!("/api/users/{}", id_of(&invited.body))];

    let token = &mallory.access_token;
    let mut replies = vec![
        app.get(&channel_path, token).await,
        app.patch(&channel_path, token, json!({"name": "pwned"})).await,
        app.delete(&channel_path, token).await,
    ];
    for path in &user_paths {
        replies.push(app.get(path, token).await);
        replies.push(app.patch(path, token, json!({"role": "agent"})).await);
        replies.push(app.delete(path, token).await);
    }
    for reply in replies {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert!(!reply.body.to_string().contains("Alice"), "{}", reply.body);
    }

    assert_eq!(app.get("/api/channels", token).await.body, json!([]));
    let users = app.get("/api/users", token).await.body;
    assert_eq!(users.as_array().map(Vec::len), Some(1), "only mallory: {users}");

    // Alice's data is untouched.
    let alice_channel = app.get(&channel_path, &alice.access_token).await;
    assert_eq!(alice_channel.body["name"], "Alice bot");
    assert_eq!(app.get("/api/users", &alice.access_token).await.body.as_array().map(Vec::len), Some(2));
}
