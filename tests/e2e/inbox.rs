//! The inbox read API: filters, cursors, updates, tenant scoping.

use std::time::Duration;

use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, PASSWORD, Session, id_of, spawn_app, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    conversations_page_newest_first_and_filter,
    a_conversation_is_assigned_closed_and_a_new_message_opens_another,
    messages_and_customers_page_with_cursors,
    another_tenant_sees_none_of_the_inbox,
    bad_inbox_queries_are_400s,
    unread_counts_are_per_user_and_cleared_by_reading,
);

/// A tenant with a bot channel and `n` customers who each wrote once (customer i = user 1000+i).
async fn inbox(app: &omnichat_tests::TestApp, email: &str, n: i64) -> (omnichat_tests::Session, String) {
    let owner = app.register(email).await;
    let channel = id_of(
        &app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await,
    )
    .to_string();
    for i in 0..n {
        let reply = app.telegram_update(&channel, &telegram_text(i, i, 1000 + i, &format!("message {i}")), None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    (owner, channel)
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["externalConversationId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn conversations_page_newest_first_and_filter(db: Db) {
    let app = spawn_app(db).await;
    let (owner, channel) = inbox(&app, "pages@inbox.io", 5).await;
    let token = &owner.access_token;

    let first = app.get("/api/conversations?limit=2", token).await.body;
    assert_eq!(ids(&first), ["1004", "1003"]);
    let cursor = first["nextCursor"].as_str().expect("more pages");
    let second = app.get(&format!("/api/conversations?limit=2&cursor={cursor}"), token).await.body;
    assert_eq!(ids(&second), ["1002", "1001"]);
    let third = app
        .get(&format!("/api/conversations?limit=2&cursor={}", second["nextCursor"].as_str().expect("cursor")), token)
        .await
        .body;
    assert_eq!(ids(&third), ["1000"]);
    assert_eq!(third["nextCursor"], Value::Null);

    // Activity moves a conversation to the top.
    app.telegram_update(&channel, &telegram_text(50, 50, 1001, "again"), None).await;
    assert_eq!(ids(&app.get("/api/conversations?limit=1", token).await.body), ["1001"]);

    let by_channel = app.get(&format!("/api/conversations?channelInstanceId={channel}"), token).await.body;
    assert_eq!(by_channel["data"].as_array().map(Vec::len), Some(5));
    let other_channel = app.get(&format!("/api/conversations?channelInstanceId={}", uuid::Uuid::new_v4()), token).await.body;
    assert_eq!(other_channel["data"], json!([]));
    assert_eq!(app.get("/api/conversations?status=CLOSED", token).await.body["data"], json!([]));
    assert_eq!(app.get("/api/conversations?status=OPEN", token).await.body["data"].as_array().map(Vec::len), Some(5));
}

async fn a_conversation_is_assigned_closed_and_a_new_message_opens_another(db: Db) {
    let app = spawn_app(db).await;
    let (owner, channel) = inbox(&app, "assign@inbox.io", 1).await;
    let token = &owner.access_token;
    let conversation = app.get("/api/conversations", token).await.body["data"][0].clone();
    let path = format!("/api/conversations/{}", id_of(&conversation));

    let assigned = app.patch(&path, token, json!({"assigneeId": owner.user_id})).await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["assigneeId"], owner.user_id.as_str());
    assert_eq!(app.get("/api/conversations?assigneeId=me", token).await.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get("/api/conversations?assigneeId=none", token).await.body["data"], json!([]));

    let stranger = uuid::Uuid::new_v4();
    let bad = app.patch(&path, token, json!({"assigneeId": stranger})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_status = app.patch(&path, token, json!({"status": "ARCHIVED"})).await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);

    let snoozed = app.patch(&path, token, json!({"status": "SNOOZED", "assigneeId": null})).await;
    assert_eq!((snoozed.body["status"].as_str(), &snoozed.body["assigneeId"]), (Some("SNOOZED"), &Value::Null));
    app.telegram_update(&channel, &telegram_text(2, 2, 1000, "wake up"), None).await;
    assert_eq!(app.get(&path, token).await.body["status"], "OPEN", "a new message reopens a snoozed conversation");

    assert_eq!(app.patch(&path, token, json!({"status": "CLOSED"})).await.body["status"], "CLOSED");
    app.telegram_update(&channel, &telegram_text(3, 3, 1000, "one more thing"), None).await;
    let all = app.get("/api/conversations", token).await.body;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2), "a closed conversation stays closed; a new one opens");
    assert_eq!(all["data"][0]["status"], "OPEN");
    assert_eq!(all["data"][0]["customerId"], conversation["customerId"], "same customer");
}

async fn messages_and_customers_page_with_cursors(db: Db) {
    let app = spawn_app(db).await;
    let (owner, channel) = inbox(&app, "msgs@inbox.io", 3).await;
    let token = &owner.access_token;
    for i in 10..14 {
        app.telegram_update(&channel, &telegram_text(i, i, 1000, &format!("m{i}")), None).await;
    }
    let conversation = app.get("/api/conversations?limit=1", token).await.body["data"][0].clone();
    let path = format!("/api/conversations/{}/messages?limit=3", id_of(&conversation));
    let first = app.get(&path, token).await.body;
    let texts = |page: &Value| {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&first), ["m13", "m12", "m11"]);
    let second = app.get(&format!("{path}&cursor={}", first["nextCursor"].as_str().expect("cursor")), token).await.body;
    assert_eq!(texts(&second), ["m10", "message 0"]);
    assert_eq!(second["nextCursor"], Value::Null);

    let customers = app.get("/api/customers?limit=2", token).await.body;
    assert_eq!(customers["data"].as_array().map(Vec::len), Some(2));
    let rest = app
        .get(&format!("/api/customers?limit=2&cursor={}", customers["nextCursor"].as_str().expect("cursor")), token)
        .await
        .body;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(&format!("/api/customers?channelInstanceId={channel}"), token).await.body["data"].as_array().map(Vec::len),
        Some(3)
    );
}

async fn another_tenant_sees_none_of_the_inbox(db: Db) {
    let app = spawn_app(db).await;
    let (alice, channel) = inbox(&app, "alice@inbox.io", 1).await;
    let mallory = app.register("mallory@inbox.io").await;
    let conversation = app.get("/api/conversations", &alice.access_token).await.body["data"][0].clone();
    let conversation_id = id_of(&conversation);
    let customer_id = conversation["customerId"].as_str().expect("customer").to_owned();

    let token = &mallory.access_token;
    for path in [
        format!("/api/conversations/{conversation_id}"),
        format!("/api/conversations/{conversation_id}/messages"),
        format!("/api/customers/{customer_id}"),
    ] {
        let reply = app.get(&path, token).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    let patch = app.patch(&format!("/api/conversations/{conversation_id}"), token, json!({"status": "CLOSED"})).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/conversations", token).await.body["data"], json!([]));
    assert_eq!(app.get(&format!("/api/conversations?channelInstanceId={channel}"), token).await.body["data"], json!([]));
    assert_eq!(app.get("/api/customers", token).await.body["data"], json!([]));
    assert_eq!(app.get(&format!("/api/conversations/{conversation_id}"), &alice.access_token).await.body["status"], "OPEN");
}

async fn bad_inbox_queries_are_400s(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("badq@inbox.io").await;
    let token = &owner.access_token;
    for query in
        ["limit=0", "limit=101", "limit=x", "cursor=garbage", "status=ARCHIVED", "channelInstanceId=12", "assigneeId=someone"]
    {
        let reply = app.get(&format!("/api/conversations?{query}"), token).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.body);
    }
    assert_eq!(app.get("/api/conversations/nope", token).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(&format!("/api/conversations/{}", uuid::Uuid::new_v4()), token).await.status, StatusCode::NOT_FOUND);
}

/// Each user's unread count: the INBOUND messages after their own read mark, cleared by
/// `POST /api/conversations/:id/read` (which tells the user's other sockets).
async fn unread_counts_are_per_user_and_cleared_by_reading(db: Db) {
    let app = spawn_app(db).await;
    let (owner, channel) = inbox(&app, "owner@unread.test", 0).await;
    let invited =
        app.post("/api/users", Some(&owner.access_token), json!({"email": "agent@unread.test", "password": PASSWORD})).await;
    assert_eq!(invited.status, StatusCode::CREATED);
    let agent = Session::from_auth(&app.login("agent@unread.test", PASSWORD).await.body);
    for i in 1..=3 {
        let reply = app.telegram_update(&channel, &telegram_text(i, i, 4242, &format!("unread {i}")), None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let listed = app.get("/api/conversations", &owner.access_token).await;
    let conversation = listed.body["data"][0].clone();
    let id = conversation["id"].as_str().expect("id").to_owned();
    assert_eq!((conversation["unreadCount"].clone(), conversation["lastReadAt"].clone()), (json!(3), Value::Null));
    assert_eq!(conversation["status"], "OPEN", "the conversation's own fields are still there: {conversation}");

    let mut other_tab = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[]).await;
    other_tab.ready().await;
    let read = app.post(&format!("/api/conversations/{id}/read"), Some(&owner.access_token), json!({})).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["conversationId"], id.as_str());
    assert_eq!(read.body["unreadCount"], 0);
    let told = other_tab.event("conversation-read", Duration::from_secs(10)).await.expect("conversation-read");
    assert_eq!(told["conversationId"], id.as_str());
    assert_eq!(told["lastReadAt"], read.body["lastReadAt"]);

    let mine = app.get(&format!("/api/conversations/{id}"), &owner.access_token).await;
    assert_eq!(mine.body["unreadCount"], 0);
    assert_eq!(mine.body["lastReadAt"], read.body["lastReadAt"]);
    let theirs = app.get(&format!("/api/conversations/{id}"), &agent.access_token).await;
    assert_eq!(theirs.body["unreadCount"], 3, "read marks are per user");

    // A new inbound message counts; the tenant's own reply does not.
    let reply = app.telegram_update(&channel, &telegram_text(4, 4, 4242, "one more"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let sent = app.post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": id, "text": "on it"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let listed = app.get("/api/conversations", &owner.access_token).await;
    assert_eq!(listed.body["data"][0]["unreadCount"], 1, "{}", listed.body);
    let theirs = app.get("/api/conversations", &agent.access_token).await;
    assert_eq!(theirs.body["data"][0]["unreadCount"], 4);

    let stranger = app.register("stranger@unread.test").await;
    let foreign = app.post(&format!("/api/conversations/{id}/read"), Some(&stranger.access_token), json!({})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let unknown =
        app.post(&format!("/api/conversations/{}/read", uuid::Uuid::new_v4()), Some(&owner.access_token), json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let invalid = app.post("/api/conversations/not-an-id/read", Some(&owner.access_token), json!({})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(other_tab.seen.iter().filter(|l| l["name"] == "conversation-read").count() == 1);
}
