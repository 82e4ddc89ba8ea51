//! Socket.IO with the real npm socket.io-client.

use std::time::Duration;

use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, id_of, spawn_app, telegram_text};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(
    a_joined_socket_receives_message_created_and_conversation_updated,
    a_socket_cannot_join_another_tenants_channel_or_hear_it,
    a_socket_without_a_valid_token_is_refused,
);

const WAIT: Duration = Duration::from_secs(10);

async fn a_joined_socket_receives_message_created_and_conversation_updated(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("rt@shop.io").await;
    let channel = id_of(
        &app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await,
    )
    .to_string();

    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&channel]).await;
    assert_eq!(socket.ready().await, [json!({"ok": true})]);

    let reply = app.telegram_update(&channel, &telegram_text(1, 1, 99, "live!"), None).await;
    assert_eq!(reply.status, StatusCode::OK);

    let created = socket.event("message-created", WAIT).await.unwrap_or_else(|| panic!("no message-created: {:?}", socket.seen));
    assert_eq!(created["channelInstanceId"], channel.as_str());
    assert_eq!(created["message"]["text"], "live!");
    assert_eq!(created["conversationId"], created["message"]["conversationId"]);
    let updated = socket.event("conversation-updated", WAIT).await.expect("conversation-updated");
    assert_eq!(updated["conversation"]["id"], created["conversationId"]);
    assert_eq!(updated["channelInstanceId"], channel.as_str());

    // The socket is in the channel room and the tenant room: one delivery each event, not two.
    assert!(socket.events_within("message-created", Duration::from_millis(500)).await.is_empty());

    // Status changes reach the room too.
    let patch = app
        .patch(
            &format!("/api/conversations/{}", created["conversationId"].as_str().expect("id")),
            &owner.access_token,
            json!({"status": "CLOSED"}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK);
    let closed = socket.event("conversation-updated", WAIT).await.expect("conversation-updated after PATCH");
    assert_eq!(closed["conversation"]["status"], "CLOSED");
}

async fn a_socket_cannot_join_another_tenants_channel_or_hear_it(db: Db) {
    let app = spawn_app(db).await;
    let alice = app.register("alice@rt.io").await;
    let mallory = app.register("mallory@rt.io").await;
    let channel = id_of(
        &app.create_channel(&alice, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await,
    )
    .to_string();

    let mut intruder = SocketClient::connect(&app.base_url(), Some(&mallory.access_token), &[&channel, "not-a-uuid"]).await;
    let acks = intruder.ready().await;
    assert_eq!(acks[0]["ok"], false, "{acks:?}");
    assert!(acks[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(acks[1]["ok"], false);

    let mut owner = SocketClient::connect(&app.base_url(), Some(&alice.access_token), &[]).await;
    owner.ready().await;
    app.telegram_update(&channel, &telegram_text(1, 1, 5, "private"), None).await;
    assert!(owner.event("message-created", WAIT).await.is_some(), "the tenant room hears its channel");
    assert!(intruder.events_within("message-created", Duration::from_secs(1)).await.is_empty(), "{:?}", intruder.seen);
}

async fn a_socket_without_a_valid_token_is_refused(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("notoken@rt.io").await;
    for token in [None, Some("garbage"), Some(owner.refresh_token.as_str())] {
        let mut socket = SocketClient::connect(&app.base_url(), token, &[]).await;
        let refused =
            socket.next("connect_error", WAIT).await.unwrap_or_else(|| panic!("{token:?} connected: {:?}", socket.seen));
        assert!(refused["message"].as_str().is_some_and(|m| m.contains("unauthorized")), "{refused}");
    }
}
