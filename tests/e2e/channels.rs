use omnichat::channels::secrets;
use omnichat_tests::{Db, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(
    channels_are_created_listed_updated_and_deleted,
    channel_secrets_are_encrypted_at_rest_and_never_returned,
    bad_channel_input_is_refused_and_nothing_is_stored,
);

async fn channels_are_created_listed_updated_and_deleted(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("ops@shop.io").await;
    let token = &owner.access_token;
    let page = app
        .create_channel(
            &owner,
            json!({"name": "Shop page", "type": "FACEBOOK", "externalId": "1234567890", "metadata": {"color": "blue"}, "config": {"pageAccessToken": "page-token"}}),
        )
        .await;
    assert_eq!(page["status"], "DISCONNECTED");
    assert_eq!(page["type"], "FACEBOOK");
    assert_eq!(page["externalId"], "1234567890");
    assert_eq!(page["metadata"]["color"], "blue");
    assert_eq!(page["tenantId"], owner.tenant_id.as_str());
    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await;

    let list = app.get("/api/channels", token).await;
    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<_> = list.body.as_array().expect("array").iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&page), id_of(&bot)]);

    let path = format!("/api/channels/{}", id_of(&page));
    let updated = app.patch(&path, token, json!({"name": "Shop", "externalId": null, "metadata": {"color": "red"}})).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], "Shop");
    assert_eq!(updated.body["externalId"], serde_json::Value::Null);
    assert_eq!(updated.body["metadata"]["color"], "red");
    assert_eq!(updated.body["type"], "FACEBOOK");
    assert_eq!(app.get(&path, token).await.body["name"], "Shop");

    assert_eq!(app.delete(&path, token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/channels", token).await.body.as_array().map(Vec::len), Some(1));
}

async fn channel_secrets_are_encrypted_at_rest_and_never_returned(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("sec@shop.io").await;
    let bot = app
        .create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "123456:SECRET-bot-token", "secretToken": "hook-secret", "mode": "webhook"}}))
        .await;
    assert_eq!(bot["config"]["botToken"], secrets::REDACTED);
    assert_eq!(bot["config"]["secretToken"], secrets::REDACTED);
    assert_eq!(bot["config"]["mode"], "webhook");

    let id = id_of(&bot);
    let raw = app.db.raw_channel_config(id).await;
    assert!(!raw.contains("SECRET-bot-token") && !raw.contains("hook-secret"), "stored in clear: {raw}");
    assert!(raw.contains("enc:v1:"), "{raw}");

    let path = format!("/api/channels/{id}");
    for reply in [app.get(&path, &owner.access_token).await, app.get("/api/channels", &owner.access_token).await] {
        assert!(!reply.body.to_string().contains("SECRET-bot-token"), "{}", reply.body);
    }

    // Sending the redacted placeholder back keeps the secret; a new value replaces it.
    let kept = app
        .patch(
            &path,
            &owner.access_token,
            json!({"config": {"botToken": secrets::REDACTED, "secretToken": "rotated", "mode": "webhook"}}),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let channel = app.state.store.get_channel(owner.tenant_id.parse().expect("uuid"), id).await.expect("store").expect("row");
    let opened = secrets::open(&app.state.secrets, &channel.config.0).expect("decrypts");
    assert_eq!(opened, json!({"botToken": "123456:SECRET-bot-token", "secretToken": "rotated", "mode": "webhook"}));
}

async fn bad_channel_input_is_refused_and_nothing_is_stored(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("bad@shop.io").await;
    let token = Some(owner.access_token.as_str());
    app.create_channel(
        &owner,
        json!({"name": "Page", "type": "FACEBOOK", "externalId": "42", "config": {"pageAccessToken": "page-token"}}),
    )
    .await;

    let cases = [
        (json!({"name": "X", "type": "TELEGRAM"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown_channel_type"),
        (json!({"name": "X", "type": "telegram_bot"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown_channel_type"),
        (json!({"type": "TELEGRAM_BOT"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            json!({"name": "   ", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (json!({"name": "X", "type": "TELEGRAM_BOT", "config": "token"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"name": "X", "type": "TELEGRAM_BOT", "config": {}}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            json!({"name": "X", "type": "TELEGRAM_BOT", "config": {"botToken": " "}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "X", "type": "FACEBOOK", "config": {"appSecret": "s"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "X", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}, "metadata": [1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "X", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}, "status": "CONNECTED"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "Page 2", "type": "FACEBOOK", "externalId": "42", "config": {"pageAccessToken": "page-token"}}),
            StatusCode::CONFLICT,
            "conflict",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/api/channels", token, body.clone()).await;
        assert_eq!(reply.status, status, "{body} -> {}", reply.body);
        assert_eq!(reply.error_code(), code, "{body}");
    }
    let listed = app.get("/api/channels", &owner.access_token).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "nothing stored by refused requests");

    let page_of_other_type = app
        .create_channel(
            &owner,
            json!({"name": "Bot", "type": "TELEGRAM_BOT", "externalId": "42", "config": {"botToken": "1:test"}}),
        )
        .await;
    assert_eq!(page_of_other_type["externalId"], "42", "external ids are unique per type only");

    let bad_id = app.get("/api/channels/not-a-uuid", &owner.access_token).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.error_code(), "invalid_id");
    let unknown = app.get(&format!("/api/channels/{}", uuid::Uuid::new_v4()), &owner.access_token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let type_change = app
        .patch(&format!("/api/channels/{}", id_of(&page_of_other_type)), &owner.access_token, json!({"type": "TELEGRAM_BOT"}))
        .await;
    assert_eq!(type_change.status, StatusCode::UNPROCESSABLE_ENTITY, "the type of a channel is fixed");
}
