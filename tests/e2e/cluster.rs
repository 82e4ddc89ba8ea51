//! Replicas on one database and one Redis behave like one server: a Socket.IO event emitted on
//! any replica reaches every socket in its rooms on every replica, once (socketioxide's Redis
//! adapter), and Redis going away takes nothing but the sharing down.

use std::time::Duration;

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::redis::{RedisServer, clustered, shared_url};
use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, Session, TestApp, eventually, id_of, spawn_app_with, spawn_replica, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::on_both_databases;

on_both_databases!(
    events_on_one_replica_reach_sockets_on_every_replica_once,
    a_user_removed_on_one_replica_is_cut_on_every_replica,
    redis_going_away_keeps_http_up_and_events_flow_again_after,
);

const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "correct horse battery";

fn prefix() -> String {
    format!("test-{}", Uuid::new_v4())
}

async fn health(app: &TestApp) -> (StatusCode, Value) {
    let reply = app.client.get(format!("{}/health", app.base_url())).send().await.expect("GET /health");
    (reply.status(), reply.json().await.expect("health JSON"))
}

async fn bot_channel(app: &TestApp, owner: &Session) -> String {
    id_of(&app.create_channel(owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "777:GOOD"}})).await)
        .to_string()
}

async fn events_on_one_replica_reach_sockets_on_every_replica_once(db: Db) {
    let telegram = FakeProvider::start().await;
    let cluster = clustered(&shared_url(), &prefix());
    let (telegram_url, join) = (telegram.base_url(), cluster.clone());
    let configure = move |config: &mut omnichat::Config| {
        join(config);
        config.providers.telegram_api_base_url = telegram_url.clone();
        config.public_url = Some("https://chat.example.com".into());
    };
    let a = spawn_app_with(db, configure.clone()).await;
    let b = spawn_replica(&a, configure).await;
    assert_eq!(health(&a).await.1["redis"], "up");
    let owner = a.register("owner@cluster.test").await;
    let channel = bot_channel(&a, &owner).await;

    let mut on_a = SocketClient::connect(&a.base_url(), Some(&owner.access_token), &[&channel]).await;
    let mut on_b = SocketClient::connect(&b.base_url(), Some(&owner.access_token), &[&channel]).await;
    assert_eq!(on_a.ready().await, [json!({"ok": true})]);
    assert_eq!(on_b.ready().await, [json!({"ok": true})]);
    let other = b.register("other@cluster.test").await;
    let mut stranger = SocketClient::connect(&b.base_url(), Some(&other.access_token), &[]).await;
    stranger.ready().await;

    // A webhook posted to A: the socket on B hears it, and each socket hears it once although it
    // sits in both the channel's room and the tenant's.
    let reply = a.telegram_update(&channel, &telegram_text(1, 1, 4242, "across replicas"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for socket in [&mut on_a, &mut on_b] {
        let created =
            socket.event("message-created", WAIT).await.unwrap_or_else(|| panic!("no message-created: {:?}", socket.seen));
        assert_eq!(created["message"]["text"], "across replicas");
        assert_eq!(created["channelInstanceId"], channel.as_str());
    }
    for socket in [&mut on_a, &mut on_b] {
        assert!(socket.events_within("message-created", Duration::from_millis(700)).await.is_empty(), "delivered twice");
    }

    // A change made on A (connecting the channel): channel-status on B.
    let connected = a.post(&format!("/api/channels/{channel}/connect"), Some(&owner.access_token), json!({})).await;
    assert_eq!(connected.status, StatusCode::ACCEPTED, "{}", connected.body);
    let status = on_b.event("channel-status", WAIT).await.unwrap_or_else(|| panic!("no channel-status on B: {:?}", on_b.seen));
    assert_eq!(status, json!({"channelInstanceId": channel, "status": "CONNECTED"}));

    // An agent typing on B's socket: the other socket (on A) hears it, the typist does not.
    on_b.emit("typing", json!({"conversationId": reply_conversation(&on_a), "typing": true}), true).await;
    let typing = on_a.event("typing", WAIT).await.unwrap_or_else(|| panic!("no typing on A: {:?}", on_a.seen));
    assert_eq!(typing["from"], "agent");
    assert!(on_b.events_within("typing", Duration::from_millis(500)).await.is_empty(), "the typist heard itself");

    // Another tenant's socket on B heard none of it.
    assert!(stranger.events_within("message-created", Duration::from_millis(200)).await.is_empty(), "{:?}", stranger.seen);
    assert!(stranger.seen.iter().all(|line| line["type"] != "event"), "another tenant heard: {:?}", stranger.seen);
}

/// The conversation of the first `message-created` a socket saw.
fn reply_conversation(socket: &SocketClient) -> String {
    socket
        .seen
        .iter()
        .find(|line| line["name"] == "message-created")
        .and_then(|line| line["payload"]["conversationId"].as_str())
        .expect("a message-created was seen")
        .to_owned()
}

async fn a_user_removed_on_one_replica_is_cut_on_every_replica(db: Db) {
    let cluster = clustered(&shared_url(), &prefix());
    let a = spawn_app_with(db, cluster.clone()).await;
    let b = spawn_replica(&a, cluster).await;
    let owner = a.register("owner@cut-cluster.test").await;
    let invited =
        a.post("/api/users", Some(&owner.access_token), json!({"email": "agent@cut-cluster.test", "password": PASSWORD})).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let agent = Session::from_auth(&a.login("agent@cut-cluster.test", PASSWORD).await.body);
    let mut socket = SocketClient::connect(&b.base_url(), Some(&agent.access_token), &[]).await;
    socket.ready().await;

    let removed = a.delete(&format!("/api/users/{}", agent.user_id), &owner.access_token).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let told = socket.event("unauthorized", WAIT).await.unwrap_or_else(|| panic!("not told on B: {:?}", socket.seen));
    assert_eq!(told["reason"], "the user was removed");
    let cut = socket.next("disconnect", WAIT).await.expect("cut on B");
    assert_eq!(cut["reason"], "io server disconnect");
}

async fn redis_going_away_keeps_http_up_and_events_flow_again_after(db: Db) {
    let mut redis = RedisServer::start().await;
    let cluster = clustered(&redis.url(), &prefix());
    let a = spawn_app_with(db, cluster.clone()).await;
    let b = spawn_replica(&a, cluster).await;
    let owner = a.register("owner@redis-restart.test").await;
    let channel = bot_channel(&a, &owner).await;
    let mut on_a = SocketClient::connect(&a.base_url(), Some(&owner.access_token), &[&channel]).await;
    let mut on_b = SocketClient::connect(&b.base_url(), Some(&owner.access_token), &[&channel]).await;
    on_a.ready().await;
    on_b.ready().await;
    let mut update_id = 0;
    let mut post = async |text: &str| {
        update_id += 1;
        let reply = a.telegram_update(&channel, &telegram_text(update_id, update_id, 77, text), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    };
    post("before").await;
    assert_eq!(on_b.event("message-created", WAIT).await.expect("shared before the outage")["message"]["text"], "before");
    assert_eq!(on_a.event("message-created", WAIT).await.expect("A's own socket")["message"]["text"], "before");

    redis.stop().await;
    for app in [&a, &b] {
        eventually(WAIT, "health to report redis down", || async {
            let (status, body) = health(app).await;
            (body["redis"] == "down").then_some((status, body))
        })
        .await;
        let (status, body) = health(app).await;
        assert_eq!(status, StatusCode::OK, "Redis down does not take the replica out: {body}");
        assert_eq!((body["db"].as_str(), body["status"].as_str()), (Some("up"), Some("degraded")));
    }
    // HTTP keeps working, and A's own sockets keep hearing A's events.
    post("during").await;
    let during = on_a.event("message-created", WAIT).await.expect("A's socket hears A's event while Redis is down");
    assert_eq!(during["message"]["text"], "during");
    let listed = b.get(&format!("/api/conversations?channelInstanceId={channel}"), &owner.access_token).await;
    assert_eq!(listed.status, StatusCode::OK);

    redis.restart().await;
    for app in [&a, &b] {
        eventually(Duration::from_secs(20), "health to report redis up again", || async {
            (health(app).await.1["redis"] == "up").then_some(())
        })
        .await;
    }
    post("after").await;
    let after = on_b
        .event("message-created", WAIT)
        .await
        .unwrap_or_else(|| panic!("nothing on B after Redis came back: {:?}", on_b.seen));
    assert_eq!(after["message"]["text"], "after");
    let (status, body) = health(&a).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")), "{body}");
}
