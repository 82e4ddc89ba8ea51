//! Webhooks in: Telegram bot and Facebook Messenger, through the real WASM adapters, into rows.

use omnichat_tests::{Db, id_of, spawn_app, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(
    a_telegram_update_becomes_customer_conversation_and_message,
    the_same_update_delivered_three_times_is_stored_once,
    the_telegram_secret_token_is_enforced,
    updates_without_customer_messages_are_acknowledged_and_not_stored,
    bad_telegram_deliveries_get_the_right_4xx_and_store_nothing,
    facebook_verification_answers_the_challenge_only_with_the_right_token,
    a_signed_messenger_delivery_is_stored_per_page,
    a_badly_signed_messenger_delivery_is_refused,
);

async fn bot_channel(app: &omnichat_tests::TestApp, owner: &omnichat_tests::Session, mut config: serde_json::Value) -> String {
    if config.get("botToken").is_none() {
        config["botToken"] = json!("1:test");
    }
    let channel = app.create_channel(owner, json!({"name": "Support bot", "type": "TELEGRAM_BOT", "config": config})).await;
    id_of(&channel).to_string()
}

async fn a_telegram_update_becomes_customer_conversation_and_message(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("tg@shop.io").await;
    let channel = bot_channel(&app, &owner, json!({"botToken": "1:x"})).await;

    let reply = app.telegram_update(&channel, &telegram_text(1, 10, 4242, "Where is my order?"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["stored"], 1);

    let token = &owner.access_token;
    let conversations = app.get("/api/conversations", token).await.body;
    let conversation = &conversations["data"][0];
    assert_eq!(conversation["externalConversationId"], "4242");
    assert_eq!(conversation["status"], "OPEN");
    assert_eq!(conversation["channelInstanceId"], channel.as_str());

    let customer = app.get(&format!("/api/customers/{}", conversation["customerId"].as_str().expect("id")), token).await.body;
    assert_eq!(customer["externalId"], "4242");
    assert_eq!(customer["name"], "Bob Builder");
    assert_eq!(customer["username"], "bob");

    let messages = app.get(&format!("/api/conversations/{}/messages", id_of(conversation)), token).await.body;
    let message = &messages["data"][0];
    assert_eq!(message["direction"], "INBOUND");
    assert_eq!(message["status"], "RECEIVED");
    assert_eq!(message["text"], "Where is my order?");
    assert_eq!(message["providerMessageId"], "4242:10");
    assert_eq!(message["sentAt"], "2023-11-14T22:13:20Z");
    assert_eq!(message["raw"]["update_id"], 1);

    // A second message from the same customer lands in the same open conversation.
    app.telegram_update(&channel, &telegram_text(2, 11, 4242, "Hello?"), None).await;
    let conversations = app.get("/api/conversations", token).await.body;
    assert_eq!(conversations["data"].as_array().map(Vec::len), Some(1));
    let messages = app.get(&format!("/api/conversations/{}/messages", id_of(conversation)), token).await.body;
    assert_eq!(messages["data"][0]["text"], "Hello?", "newest first");
    assert_eq!(app.get(&format!("/api/channels/{channel}"), token).await.body["status"], "CONNECTED");
}

async fn the_same_update_delivered_three_times_is_stored_once(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("dup@shop.io").await;
    let channel = bot_channel(&app, &owner, json!({})).await;
    let update = telegram_text(7, 70, 77, "once");
    let replies = futures::future::join_all((0..3).map(|_| app.telegram_update(&channel, &update, None))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let stored: i64 = replies.iter().map(|r| r.body["stored"].as_i64().unwrap_or(0)).sum();
    assert_eq!(stored, 1);

    let conversations = app.get("/api/conversations", &owner.access_token).await.body;
    assert_eq!(conversations["data"].as_array().map(Vec::len), Some(1));
    let messages =
        app.get(&format!("/api/conversations/{}/messages", id_of(&conversations["data"][0])), &owner.access_token).await.body;
    assert_eq!(messages["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get("/api/customers", &owner.access_token).await.body["data"].as_array().map(Vec::len), Some(1));
}

async fn the_telegram_secret_token_is_enforced(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("secret@shop.io").await;
    let channel = bot_channel(&app, &owner, json!({"botToken": "1:x", "secretToken": "hook-secret"})).await;
    let update = telegram_text(1, 1, 1, "hi");
    for wrong in [None, Some("nope"), Some("hook-secre")] {
        let reply = app.telegram_update(&channel, &update, wrong).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(reply.error_code(), "unauthorized");
    }
    assert_eq!(app.get("/api/conversations", &owner.access_token).await.body["data"], json!([]));
    let right = app.telegram_update(&channel, &update, Some("hook-secret")).await;
    assert_eq!(right.status, StatusCode::OK);
    assert_eq!(right.body["stored"], 1);
}

async fn updates_without_customer_messages_are_acknowledged_and_not_stored(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("noise@shop.io").await;
    let channel = bot_channel(&app, &owner, json!({})).await;
    let mut edited = telegram_text(2, 2, 5, "edited");
    edited["edited_message"] = edited["message"].take();
    edited.as_object_mut().expect("object").remove("message");
    for update in [
        edited,
        json!({"update_id": 3, "callback_query": {"id": "1", "from": {"id": 5, "first_name": "B"}, "data": "x"}}),
        json!({"update_id": 4, "my_chat_member": {"chat": {"id": 5}, "from": {"id": 5}, "date": 1}}),
    ] {
        let reply = app.telegram_update(&channel, &update, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{update}");
        assert_eq!(reply.body["stored"], 0);
    }
    assert_eq!(app.get("/api/conversations", &owner.access_token).await.body["data"], json!([]));
}

async fn bad_telegram_deliveries_get_the_right_4xx_and_store_nothing(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("badtg@shop.io").await;
    let channel = bot_channel(&app, &owner, json!({})).await;
    let page = app
        .create_channel(
            &owner,
            json!({"name": "Page", "type": "FACEBOOK", "externalId": "p1", "config": {"pageAccessToken": "page-token"}}),
        )
        .await;
    let update = telegram_text(1, 1, 1, "hi");

    let unknown = app.telegram_update(&uuid::Uuid::new_v4().to_string(), &update, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let wrong_type = app.telegram_update(&id_of(&page).to_string(), &update, None).await;
    assert_eq!(wrong_type.status, StatusCode::NOT_FOUND);
    let bad_id = app.telegram_update("not-a-uuid", &update, None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    let shape = app.telegram_update(&channel, &json!({"hello": "world"}), None).await;
    assert_eq!((shape.status, shape.error_code()), (StatusCode::BAD_REQUEST, "unrecognized_payload"));
    let malformed = app
        .client
        .post(app.url(&format!("/api/telegram/bot/webhook/{channel}")))
        .header("content-type", "application/json")
        .body("{\"update_id\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/conversations", &owner.access_token).await.body["data"], json!([]));
}

async fn facebook_verification_answers_the_challenge_only_with_the_right_token(db: Db) {
    let app = spawn_app_with(db, |config| config.providers.facebook_verify_token = Some("verify-me".to_owned().into())).await;
    let ok = app
        .client
        .get(app.url("/api/facebook/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    for query in ["hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "hub.mode=subscribe&hub.challenge=1", ""] {
        let refused = app.client.get(app.url(&format!("/api/facebook/webhook?{query}"))).send().await.expect("sent");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{query}");
    }
}

fn messenger_delivery() -> serde_json::Value {
    json!({"object": "page", "entry": [
        {"id": "PAGE_A", "time": 1, "messaging": [
            {"sender": {"id": "PSID_1"}, "recipient": {"id": "PAGE_A"}, "timestamp": 1700000000000u64, "message": {"mid": "m.1", "text": "hi A"}},
            {"sender": {"id": "PAGE_A"}, "recipient": {"id": "PSID_1"}, "timestamp": 1700000000001u64, "message": {"mid": "m.2", "is_echo": true, "text": "echo"}},
            {"sender": {"id": "PSID_1"}, "recipient": {"id": "PAGE_A"}, "timestamp": 1700000000002u64, "delivery": {"mids": ["m.2"], "watermark": 1}}
        ]},
        {"id": "PAGE_B", "time": 1, "messaging": [
            {"sender": {"id": "PSID_2"}, "recipient": {"id": "PAGE_B"}, "timestamp": 1700000000003u64,
             "message": {"mid": "m.3", "attachments": [{"type": "image", "payload": {"url": "https://cdn.example/p.jpg"}}]}}
        ]}
    ]})
}

async fn a_signed_messenger_delivery_is_stored_per_page(db: Db) {
    let app = spawn_app_with(db, |config| config.providers.facebook_app_secret = Some("app-secret".to_owned().into())).await;
    let a = app.register("pagea@shop.io").await;
    let b = app.register("pageb@shop.io").await;
    app.create_channel(
        &a,
        json!({"name": "A", "type": "FACEBOOK", "externalId": "PAGE_A", "config": {"pageAccessToken": "tok-a"}}),
    )
    .await;
    // Page B's channel has an app secret of its own, which wins over FACEBOOK_APP_SECRET; both
    // pages of this delivery must verify, so B signs with the same secret here.
    app.create_channel(
        &b,
        json!({"name": "B", "type": "FACEBOOK", "externalId": "PAGE_B", "config": {"appSecret": "app-secret", "pageAccessToken": "tok-b"}}),
    )
    .await;

    let reply = app.facebook_delivery(&messenger_delivery(), "app-secret", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["stored"], 2, "one message per page; echo and delivery skipped");

    let a_inbox = app.get("/api/conversations", &a.access_token).await.body;
    let a_messages = app.get(&format!("/api/conversations/{}/messages", id_of(&a_inbox["data"][0])), &a.access_token).await.body;
    assert_eq!(a_messages["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(a_messages["data"][0]["text"], "hi A");
    assert_eq!(a_messages["data"][0]["providerMessageId"], "m.1");

    let b_inbox = app.get("/api/conversations", &b.access_token).await.body;
    let b_messages = app.get(&format!("/api/conversations/{}/messages", id_of(&b_inbox["data"][0])), &b.access_token).await.body;
    assert_eq!(b_messages["data"][0]["attachments"][0]["kind"], "image");
    assert_eq!(b_messages["data"][0]["attachments"][0]["url"], "https://cdn.example/p.jpg");

    let again = app.facebook_delivery(&messenger_delivery(), "app-secret", None).await;
    assert_eq!((again.body["stored"].as_i64(), again.body["duplicates"].as_i64()), (Some(0), Some(2)));
}

async fn a_badly_signed_messenger_delivery_is_refused(db: Db) {
    let app = spawn_app_with(db, |config| config.providers.facebook_app_secret = Some("app-secret".to_owned().into())).await;
    let owner = app.register("fbbad@shop.io").await;
    app.create_channel(
        &owner,
        json!({"name": "A", "type": "FACEBOOK", "externalId": "PAGE_A", "config": {"pageAccessToken": "page-token"}}),
    )
    .await;
    let body = json!({"object": "page", "entry": [{"id": "PAGE_A", "messaging": [
        {"sender": {"id": "P"}, "timestamp": 1, "message": {"mid": "x", "text": "forged"}}]}]});

    let wrong_key = app.facebook_delivery(&body, "not-the-secret", None).await;
    assert_eq!(wrong_key.status, StatusCode::UNAUTHORIZED);
    let garbage = app.facebook_delivery(&body, "", Some("sha1=abc")).await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    let unknown_page =
        app.facebook_delivery(&json!({"object": "page", "entry": [{"id": "NOPE", "messaging": []}]}), "app-secret", None).await;
    assert_eq!(unknown_page.status, StatusCode::UNAUTHORIZED, "an unknown page looks like a refused signature");
    assert_eq!(unknown_page.body, wrong_key.body);
    let not_page = app.facebook_delivery(&json!({"object": "user", "entry": []}), "app-secret", None).await;
    assert_eq!(not_page.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/conversations", &owner.access_token).await.body["data"], json!([]));
}
