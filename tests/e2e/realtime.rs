//! Socket.IO with the real npm socket.io-client.

use std::time::Duration;

use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, id_of, js_script, spawn_app, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

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

/// Pings every 200 ms, answered within `timeout`.
fn fast_pings(timeout: Duration) -> impl FnOnce(&mut omnichat::Config) {
    move |config| {
        config.socket_ping_interval = Duration::from_millis(200);
        config.socket_ping_timeout = timeout;
    }
}

/// A client that answers the server's pings stays connected on every transport: a websocket's
/// heartbeat runs in its reader task, a polling socket's in a task of its own, and a socket that
/// upgrades from polling to a websocket keeps the polling one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_answers_pings_stays_connected_on_every_transport() {
    // A second to answer: a lost pong still closes the connection within the window below, and
    // a loaded machine has time to answer.
    let app = spawn_app_with(Db::Sqlite, fast_pings(Duration::from_secs(1))).await;
    let owner = app.register("pings@rt.io").await;
    let channel = id_of(
        &app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await,
    )
    .to_string();

    for (n, transports) in ["websocket", "polling", "polling,websocket"].into_iter().enumerate() {
        let mut socket = SocketClient::over(transports, &app.base_url(), Some(&owner.access_token), &[&channel]).await;
        assert_eq!(socket.ready().await, [json!({"ok": true})], "{transports}");
        // Over ten ping rounds: a missed pong would have closed the connection after 1.2 s.
        let dropped = socket.next("disconnect", Duration::from_millis(2500)).await;
        assert!(dropped.is_none(), "{transports}: {:?}", socket.seen);
        if transports == "polling,websocket" {
            let upgraded = socket.seen.iter().find(|l| l["type"] == "upgrade").map(|l| l["transport"].clone());
            assert_eq!(upgraded, Some(json!("websocket")), "{:?}", socket.seen);
        }
        // Still connected, and still in its rooms.
        let chat = 700 + i64::try_from(n).expect("small");
        app.telegram_update(&channel, &telegram_text(chat, chat, chat, transports), None).await;
        let created = socket.event("message-created", WAIT).await;
        assert_eq!(created.map(|c| c["message"]["text"].clone()), Some(json!(transports)), "{:?}", socket.seen);
    }
}

/// A websocket that never answers a ping is sent a close packet and cut, after the ping interval
/// and timeout the server announced in its open packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_answers_a_ping_is_closed() {
    let app = spawn_app_with(Db::Sqlite, fast_pings(Duration::from_millis(300))).await;
    let mut child = tokio::process::Command::new("node")
        .arg(js_script("silent-socket.mjs", "ws"))
        .arg(app.base_url())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let line: Value = serde_json::from_str(&line).expect("a JSON line");
            let closed = line["type"] == "close";
            seen.push(line);
            if closed {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all).await.expect("the server closed the silent socket");

    let frames: Vec<&str> = seen.iter().filter(|l| l["type"] == "frame").filter_map(|l| l["data"].as_str()).collect();
    let open: Value = serde_json::from_str(frames.first().and_then(|f| f.strip_prefix('0')).expect("an open packet first"))
        .expect("the open packet's JSON");
    assert_eq!((open["pingInterval"].as_u64(), open["pingTimeout"].as_u64()), (Some(200), Some(300)), "{open}");
    // A ping, no answer, then the close packet and the end of the connection.
    assert_eq!(frames[1..], ["2", "1"], "{seen:?}");
    assert_eq!(seen.last().map(|l| l["type"].clone()), Some(json!("close")), "{seen:?}");
}
