//! The Telegram user-account bridge through its seam: the login endpoints, the listener's
//! lifecycle (boot from stored sessions, revocation, reconnects, restart from the saved update
//! state, one owner across replicas) and outbound dispatch, on the real database-backed session.

use std::sync::Arc;
use std::time::Duration;

use omnichat::Connectors;
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::telegram::{ACCOUNT_ID, INVALID_PHONE, TelegramScript, private_message};
use omnichat_tests::{
    Db, Session, TestApp, eventually, id_of, spawn_app_with, spawn_app_with_connectors, spawn_replica_with_connectors,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::on_both_databases;

on_both_databases!(
    login_needs_the_api_credentials,
    a_code_login_connects_the_account_and_its_messages_reach_the_inbox,
    two_step_verification_asks_for_the_password_with_its_hint,
    login_mistakes_get_clear_errors,
    replies_are_sent_to_the_right_peer_through_the_live_session,
    inbound_media_is_downloaded_through_the_live_session,
    a_revoked_session_sets_error_and_does_not_reconnect,
    a_dropped_connection_reconnects_and_keeps_listening,
    a_restart_resumes_from_the_saved_update_state,
    one_replica_owns_a_session_and_another_takes_over,
    logout_and_channel_deletion_sign_out_and_clear_the_session,
    the_session_store_round_trips_dc_options_update_state_and_peers,
    session_leases_have_one_owner_until_they_expire,
    a_login_started_on_one_replica_is_confirmed_on_another,
);

const WAIT: Duration = Duration::from_secs(15);

async fn app(db: Db, script: &Arc<TelegramScript>) -> TestApp {
    spawn_app_with_connectors(db, configure, Connectors { telegram: script.connector(), ..Default::default() }).await
}

fn configure(config: &mut omnichat::Config) {
    config.bridges.telegram_api = Some((12345, "0123456789abcdef".to_owned().into()));
}

/// A tenant whose Telegram account is logged in: (owner, channel id).
async fn logged_in(app: &TestApp, email: &str) -> (Session, String) {
    let owner = app.register(email).await;
    let started = app.post("/api/telegram/user/start", Some(&owner.access_token), json!({"phoneNumber": "+4915112345678"})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let channel_id = started.body["channelInstanceId"].as_str().expect("channelInstanceId").to_owned();
    let confirmed = app
        .post("/api/telegram/user/confirm", Some(&owner.access_token), json!({"channelInstanceId": channel_id, "code": "24680"}))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    (owner, channel_id)
}

async fn channel(app: &TestApp, owner: &Session, channel_id: &str) -> Value {
    app.get(&format!("/api/channels/{channel_id}"), &owner.access_token).await.body
}

async fn messages_of_channel(app: &TestApp, owner: &Session, channel_id: &str) -> Vec<Value> {
    let list = app.get(&format!("/api/conversations?channelInstanceId={channel_id}&limit=100"), &owner.access_token).await;
    let mut all = Vec::new();
    for conversation in list.body["data"].as_array().cloned().unwrap_or_default() {
        let page = app
            .get(
                &format!("/api/conversations/{}/messages?limit=100", conversation["id"].as_str().unwrap_or_default()),
                &owner.access_token,
            )
            .await;
        all.extend(page.body["data"].as_array().cloned().unwrap_or_default());
    }
    all
}

async fn wait_for_messages(app: &TestApp, owner: &Session, channel_id: &str, count: usize) -> Vec<Value> {
    eventually(WAIT, &format!("{count} messages on the channel"), || async {
        let all = messages_of_channel(app, owner, channel_id).await;
        (all.len() >= count).then_some(all)
    })
    .await
}

async fn session_id(app: &TestApp, owner: &Session, channel_id: &str) -> Uuid {
    let tenant: Uuid = owner.tenant_id.parse().expect("tenant id");
    let channel: Uuid = channel_id.parse().expect("channel id");
    app.state.store.telegram_session_of_channel(tenant, channel).await.expect("store").expect("a stored session").id
}

fn live_here(app: &TestApp, channel_id: &str) -> bool {
    app.state.telegram.is_live_here(channel_id.parse().expect("channel id"))
}

async fn login_needs_the_api_credentials(db: Db) {
    let app = spawn_app_with(db, |_| {}).await;
    let owner = app.register("owner@creds.test").await;
    let reply = app.post("/api/telegram/user/start", Some(&owner.access_token), json!({"phoneNumber": "+4915112345678"})).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert_eq!(reply.error_code(), "telegram_not_configured");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("TELEGRAM_API_ID") && message.contains("TELEGRAM_API_HASH"), "{message}");
}

async fn a_code_login_connects_the_account_and_its_messages_reach_the_inbox(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let owner = app.register("owner@login.test").await;

    let started = app
        .post(
            "/api/telegram/user/start",
            Some(&owner.access_token),
            json!({"phoneNumber": "+49 151 1234-5678", "name": "Support"}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(started.body["phoneNumber"], "+4915112345678");
    assert_eq!(started.body["channel"]["type"], "TELEGRAM_USER");
    assert_eq!(started.body["channel"]["status"], "CONNECTING");
    assert_eq!(started.body["channel"]["name"], "Support");
    assert!(started.body["expiresAt"].is_string());
    assert_eq!(script.state().codes_requested, vec!["+4915112345678".to_owned()]);
    let channel_id = started.body["channelInstanceId"].as_str().expect("channel id").to_owned();

    let wrong = app
        .post("/api/telegram/user/confirm", Some(&owner.access_token), json!({"channelInstanceId": channel_id, "code": "11111"}))
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_eq!(wrong.error_code(), "invalid_code");

    let confirmed = app
        .post("/api/telegram/user/confirm", Some(&owner.access_token), json!({"channelInstanceId": channel_id, "code": "24680"}))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["channel"]["status"], "CONNECTED");
    assert_eq!(confirmed.body["account"]["id"], ACCOUNT_ID);

    // The session is in the database, its auth key sealed.
    let tenant: Uuid = owner.tenant_id.parse().expect("tenant");
    let row =
        app.state.store.telegram_session_of_channel(tenant, channel_id.parse().expect("id")).await.expect("store").expect("row");
    assert_eq!(row.session_type, "user");
    assert_eq!(row.phone_number.as_deref(), Some("+4915112345678"));
    assert!(row.data.0["dcOptions"].as_str().is_some_and(|sealed| sealed.starts_with("enc:v1:")), "{}", row.data.0);
    assert_eq!(row.data.0["homeDc"], 2);
    assert!(live_here(&app, &channel_id));

    // A customer writes; then the account answers from its own phone.
    script.incoming(1, 5001, "hello from\0 telegram");
    let stored = wait_for_messages(&app, &owner, &channel_id, 1).await;
    assert_eq!(stored[0]["text"], "hello from telegram", "a NUL (refused by PostgreSQL) is dropped, the message kept");
    assert_eq!(stored[0]["direction"], "INBOUND");
    assert_eq!(stored[0]["providerMessageId"], "5001:1");
    script.update(|s| s.feed.push(private_message(2, 5001, "answered from my phone", true)));
    let stored = wait_for_messages(&app, &owner, &channel_id, 2).await;
    let outbound = stored.iter().find(|m| m["direction"] == "OUTBOUND").expect("the outgoing message");
    assert_eq!(outbound["text"], "answered from my phone");
    assert_eq!(outbound["status"], "SENT");
    assert_eq!(
        outbound["conversationId"],
        stored.iter().find(|m| m["direction"] == "INBOUND").expect("inbound")["conversationId"]
    );

    let conversations = app.get(&format!("/api/conversations?channelInstanceId={channel_id}"), &owner.access_token).await;
    let conversation = &conversations.body["data"][0];
    assert_eq!(conversation["externalConversationId"], "5001");
    let customer =
        app.get(&format!("/api/customers/{}", conversation["customerId"].as_str().expect("customer")), &owner.access_token).await;
    assert_eq!(customer.body["externalId"], "5001");
    assert_eq!(customer.body["name"], "User 5001");
    // Nothing was queued for the message written on the phone.
    let queue = app.get("/api/queue", &owner.access_token).await;
    assert_eq!(queue.body["data"].as_array().map(Vec::len).unwrap_or_default(), 0, "{}", queue.body);
}

async fn two_step_verification_asks_for_the_password_with_its_hint(db: Db) {
    let script = TelegramScript::new();
    script.update(|s| s.password = Some(("hunter2".into(), "the usual".into())));
    let app = app(db, &script).await;
    let owner = app.register("owner@2fa.test").await;
    let token = Some(owner.access_token.as_str());
    let started = app.post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678"})).await;
    let channel_id = started.body["channelInstanceId"].as_str().expect("id").to_owned();

    let needs = app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(needs.status, StatusCode::BAD_REQUEST, "{}", needs.body);
    assert_eq!(needs.error_code(), "password_required");
    assert!(needs.body["error"]["message"].as_str().unwrap_or_default().contains("the usual"), "{}", needs.body);

    let still_needs = app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id})).await;
    assert_eq!(still_needs.error_code(), "password_required");

    let wrong =
        app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "password": "guess"})).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_eq!(wrong.error_code(), "invalid_password");
    assert!(wrong.body["error"]["message"].as_str().unwrap_or_default().contains("the usual"));

    let right =
        app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "password": "hunter2"})).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert_eq!(right.body["channel"]["status"], "CONNECTED");

    // Code and password in one request work too.
    let other = app.register("second@2fa.test").await;
    let token = Some(other.access_token.as_str());
    let started = app.post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915100000001"})).await;
    let channel_id = started.body["channelInstanceId"].as_str().expect("id").to_owned();
    let both = app
        .post(
            "/api/telegram/user/confirm",
            token,
            json!({"channelInstanceId": channel_id, "code": "24680", "password": "hunter2"}),
        )
        .await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.body);
}

async fn login_mistakes_get_clear_errors(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let owner = app.register("owner@mistakes.test").await;
    let stranger = app.register("stranger@mistakes.test").await;
    let token = Some(owner.access_token.as_str());

    let unknown = app
        .post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678", "channelInstanceId": Uuid::new_v4()}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    let theirs = app.create_channel(&stranger, json!({"name": "Theirs", "type": "TELEGRAM_USER"})).await;
    let foreign = app
        .post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678", "channelInstanceId": id_of(&theirs)}))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);
    let foreign_confirm =
        app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": id_of(&theirs), "code": "24680"})).await;
    assert_eq!(foreign_confirm.status, StatusCode::NOT_FOUND, "{}", foreign_confirm.body);
    let foreign_logout = app.post("/api/telegram/user/logout", token, json!({"channelInstanceId": id_of(&theirs)})).await;
    assert_eq!(foreign_logout.status, StatusCode::NOT_FOUND, "{}", foreign_logout.body);

    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    let wrong_type = app
        .post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678", "channelInstanceId": id_of(&bot)}))
        .await;
    assert_eq!(wrong_type.status, StatusCode::CONFLICT, "{}", wrong_type.body);
    assert_eq!(wrong_type.error_code(), "wrong_channel_type");

    let mine = app.create_channel(&owner, json!({"name": "Mine", "type": "TELEGRAM_USER"})).await;
    let no_start =
        app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": id_of(&mine), "code": "24680"})).await;
    assert_eq!(no_start.status, StatusCode::CONFLICT, "{}", no_start.body);
    assert_eq!(no_start.error_code(), "no_pending_login");

    for phone in ["", "12", "not a phone", "+1234567890123456789"] {
        let bad = app.post("/api/telegram/user/start", token, json!({"phoneNumber": phone})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{phone:?}: {}", bad.body);
    }
    let refused = app.post("/api/telegram/user/start", token, json!({"phoneNumber": INVALID_PHONE})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert_eq!(refused.error_code(), "telegram_refused");

    let missing = app.post("/api/telegram/user/start", token, json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", missing.body);
    let missing_code = app
        .post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678", "channelInstanceId": id_of(&mine)}))
        .await;
    assert_eq!(missing_code.status, StatusCode::OK, "{}", missing_code.body);
    let no_code = app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": id_of(&mine)})).await;
    assert_eq!(no_code.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", no_code.body);
    let unauthenticated = app.post("/api/telegram/user/start", None, json!({"phoneNumber": "+4915112345678"})).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    // A logged-in account is not logged in twice.
    let (owner2, channel_id) = logged_in(&app, "connected@mistakes.test").await;
    let again = app
        .post(
            "/api/telegram/user/start",
            Some(&owner2.access_token),
            json!({"phoneNumber": "+4915112345678", "channelInstanceId": channel_id}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error_code(), "already_connected");
}

async fn inbound_media_is_downloaded_through_the_live_session(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = logged_in(&app, "owner@media.test").await;
    script.update(|s| {
        s.media = b"\xff\xd8 a jpeg".to_vec();
        let mut message = private_message(7, 5003, "look", false);
        message.attachments = vec![json!({"kind": "image", "url": null, "mimeType": "image/jpeg", "fileName": null, "size": 9,
            "extra": {"photoId": "5123", "accessHash": "-77", "fileReference": "AQID", "dcId": 2, "thumbSize": "y"}})];
        s.feed.push(message);
    });
    let stored = wait_for_messages(&app, &owner, &channel_id, 1).await;
    let id = stored[0]["id"].as_str().expect("id").to_owned();
    let response = omnichat_tests::http_client()
        .get(app.url(&format!("/api/messages/{id}/media?index=0")))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("media");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), b"\xff\xd8 a jpeg");
    let downloads = script.state().downloads.clone();
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0]["photoId"], "5123", "the stored location is asked for");
    let stranger = app.register("stranger@media.test").await;
    let theirs = app.get(&format!("/api/messages/{id}/media"), &stranger.access_token).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

async fn replies_are_sent_to_the_right_peer_through_the_live_session(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = logged_in(&app, "owner@send.test").await;
    script.incoming(1, 5002, "can you send the invoice?");
    let stored = wait_for_messages(&app, &owner, &channel_id, 1).await;
    let conversation_id = stored[0]["conversationId"].as_str().expect("conversation").to_owned();
    let token = Some(owner.access_token.as_str());

    let text = app.post("/api/messages/send", token, json!({"conversationId": conversation_id, "text": "here it is"})).await;
    assert_eq!(text.status, StatusCode::ACCEPTED, "{}", text.body);
    let sent = app.message_with_status(&owner, &conversation_id, id_of(&text.body).to_string().as_str(), "SENT").await;
    assert!(sent["providerMessageId"].as_str().is_some_and(|id| id.starts_with("5002:")), "{sent}");

    // Attachments are fetched (guarded fetcher) and uploaded, every one of them.
    let files = FakeProvider::start().await;
    files.script([(200, json!({"file": "scan"})), (200, json!({"file": "invoice"})), (200, json!({"file": "scan"}))]);
    let (scan, invoice) = (format!("{}/files/scan.jpg", files.base_url()), format!("{}/files/invoice.pdf", files.base_url()));
    let photo = json!({"conversationId": conversation_id, "text": "the scan", "attachments": [{"url": scan, "type": "image"}]});
    let photo = app.post("/api/messages/send", token, photo).await;
    app.message_with_status(&owner, &conversation_id, id_of(&photo.body).to_string().as_str(), "SENT").await;
    let both = json!({"conversationId": conversation_id, "text": "both", "attachments": [
        {"url": invoice, "type": "document", "mimeType": "application/pdf"}, {"url": scan, "type": "image"}]});
    let both = app.post("/api/messages/send", token, both).await;
    app.message_with_status(&owner, &conversation_id, id_of(&both.body).to_string().as_str(), "SENT").await;

    let sent = script.state().sent.clone();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent.iter().all(|(_, dialog, _)| *dialog == 5002));
    assert_eq!(sent[0].2.text.as_deref(), Some("here it is"));
    assert_eq!(sent[0].2.media, None);
    let served = files.requests();
    assert_eq!(served.len(), 3, "each attachment fetched once");
    let photo_sent = sent[1].2.media.clone().expect("the photo is uploaded");
    assert!(photo_sent.photo && photo_sent.file_name == "scan.jpg" && !photo_sent.bytes.is_empty(), "{photo_sent:?}");
    assert_eq!(photo_sent.bytes, br#"{"file":"scan"}"#, "the fetched bytes are what is uploaded");
    assert_eq!(served[1].path, "/files/invoice.pdf");
    assert_eq!(sent[1].2.text.as_deref(), Some("the scan"));
    let document = sent[2].2.media.clone().expect("the document");
    assert!(!document.photo && document.file_name == "invoice.pdf");
    assert_eq!(document.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(sent[2].2.text.as_deref(), Some("both"), "the text is the first attachment's caption");
    assert!(sent[3].2.media.as_ref().is_some_and(|m| m.photo) && sent[3].2.text.is_none(), "the second attachment follows");

    // Our sends come back from Telegram as outgoing messages: they are not stored twice.
    let provider_id = app.message(&owner, &conversation_id, id_of(&text.body).to_string().as_str()).await.expect("message")["providerMessageId"]
        .as_str()
        .expect("provider id")
        .to_owned();
    let echoed_id: i32 = provider_id.split(':').nth(1).and_then(|id| id.parse().ok()).expect("message id");
    script.update(|s| s.feed.push(private_message(echoed_id, 5002, "here it is", true)));
    script.incoming(echoed_id + 10, 5002, "thanks");
    let all = wait_for_messages(&app, &owner, &channel_id, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all_now = messages_of_channel(&app, &owner, &channel_id).await;
    assert_eq!(all_now.len(), 5, "{all:?}");

    // A group the account has no access hash for: the reply is dead at once, with why.
    let group = omnichat::bridges::telegram::mapping::TelegramMessage {
        chat_id: -1_000_000_000_555,
        chat_title: Some("Customers group".into()),
        ..private_message(echoed_id + 11, 6001, "hello group", false)
    };
    let group = omnichat::bridges::telegram::mapping::TelegramMessage { sender_id: 6001, ..group };
    script.update(|s| s.feed.push(group));
    let all = wait_for_messages(&app, &owner, &channel_id, 6).await;
    let in_group = all.iter().find(|m| m["text"] == "hello group").expect("the group message");
    let group_conversation = in_group["conversationId"].as_str().expect("conversation").to_owned();
    assert_ne!(group_conversation, conversation_id);
    let reply = app.post("/api/messages/send", token, json!({"conversationId": group_conversation, "text": "hi group"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let failed = app.message_with_status(&owner, &group_conversation, id_of(&reply.body).to_string().as_str(), "FAILED").await;
    assert!(failed["error"].as_str().unwrap_or_default().contains("peer cache"), "{failed}");
}

async fn a_revoked_session_sets_error_and_does_not_reconnect(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = logged_in(&app, "owner@revoked.test").await;
    eventually(WAIT, "the listener to stream", || async { (!script.state().resumed_from.is_empty()).then_some(()) }).await;
    script.update(|s| s.revoked = true);
    let errored = eventually(WAIT, "the channel to be ERROR", || async {
        let channel = channel(&app, &owner, &channel_id).await;
        (channel["status"] == "ERROR").then_some(channel)
    })
    .await;
    assert!(errored["statusReason"].as_str().unwrap_or_default().contains("revoked"), "{errored}");
    let connects = script.state().connects.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(script.state().connects.len(), connects, "no reconnect loop after a revocation");
    assert!(!live_here(&app, &channel_id));
}

async fn a_dropped_connection_reconnects_and_keeps_listening(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = logged_in(&app, "owner@drop.test").await;
    script.incoming(1, 5003, "first");
    wait_for_messages(&app, &owner, &channel_id, 1).await;
    let connects = script.state().connects.len();
    script.update(|s| s.drops = 1);
    script.incoming(2, 5003, "after the drop");
    wait_for_messages(&app, &owner, &channel_id, 2).await;
    assert!(script.state().connects.len() > connects, "the listener reconnected");
    let channel = channel(&app, &owner, &channel_id).await;
    assert_eq!(channel["status"], "CONNECTED", "a network error is not a logout: {channel}");
}

async fn a_restart_resumes_from_the_saved_update_state(db: Db) {
    let script = TelegramScript::new();
    let first = app(db, &script).await;
    let (owner, channel_id) = logged_in(&first, "owner@restart.test").await;
    for id in 1..=3 {
        script.incoming(id, 5004, &format!("message {id}"));
    }
    wait_for_messages(&first, &owner, &channel_id, 3).await;
    let session = session_id(&first, &owner, &channel_id).await;
    eventually(WAIT, "the update state to be saved", || async {
        let row = first.state.store.get_telegram_session(session).await.ok()??;
        (row.update_state?.0["pts"] == 3).then_some(())
    })
    .await;

    // A second host on the same database; the first shuts down (and hands its lease back).
    let mut first = first;
    let second =
        spawn_replica_with_connectors(&first, configure, Connectors { telegram: script.connector(), ..Default::default() }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!live_here(&second, &channel_id), "the first host still owns the session");
    first.shut_down();
    eventually(WAIT, "the second host to take the session over", || async { live_here(&second, &channel_id).then_some(()) })
        .await;

    script.incoming(4, 5004, "message 4");
    let all = wait_for_messages(&second, &owner, &channel_id, 4).await;
    assert_eq!(all.len(), 4);
    let state = script.state();
    assert_eq!(
        state.resumed_from.last(),
        Some(&(session, 3)),
        "resumed after the last handled message: {:?}",
        state.resumed_from
    );
    for id in 1..=3 {
        let deliveries = state.delivered.iter().filter(|(_, m)| *m == id).count();
        assert_eq!(deliveries, 1, "message {id} was delivered {deliveries} times");
    }
}

async fn one_replica_owns_a_session_and_another_takes_over(db: Db) {
    let script = TelegramScript::new();
    let first = app(db, &script).await;
    let (_owner, channel_id) = logged_in(&first, "owner@lease.test").await;
    let second =
        spawn_replica_with_connectors(&first, configure, Connectors { telegram: script.connector(), ..Default::default() }).await;
    let third =
        spawn_replica_with_connectors(&first, configure, Connectors { telegram: script.connector(), ..Default::default() }).await;
    // Several supervisor rounds: still exactly one listener.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let owners = [&first, &second, &third].iter().filter(|app| live_here(app, &channel_id)).count();
    assert_eq!(owners, 1);
    assert!(live_here(&first, &channel_id));

    // The owner dies without handing its lease back: another replica takes over once it expires.
    first.state.telegram.halt();
    let started = std::time::Instant::now();
    eventually(WAIT, "another replica to take the session over", || async {
        (live_here(&second, &channel_id) || live_here(&third, &channel_id)).then_some(())
    })
    .await;
    // The lease (2 s in tests) was renewed at most one round (200 ms) before the halt.
    assert!(started.elapsed() >= Duration::from_millis(1500), "the lease was taken before it expired");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let owners = [&second, &third].iter().filter(|app| live_here(app, &channel_id)).count();
    assert_eq!(owners, 1);
}

async fn logout_and_channel_deletion_sign_out_and_clear_the_session(db: Db) {
    let script = TelegramScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = logged_in(&app, "owner@logout.test").await;
    let session = session_id(&app, &owner, &channel_id).await;

    let out = app.post("/api/telegram/user/logout", Some(&owner.access_token), json!({"channelInstanceId": channel_id})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["status"], "DISCONNECTED");
    assert!(script.state().signed_out.contains(&session));
    assert!(app.state.store.get_telegram_session(session).await.expect("store").is_none());
    assert!(!live_here(&app, &channel_id));
    // Logged out, it stays down through supervisor rounds.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!live_here(&app, &channel_id));

    // Log in again on the same channel, then delete the channel.
    let token = Some(owner.access_token.as_str());
    let started = app
        .post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678", "channelInstanceId": channel_id}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let confirmed =
        app.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let session = session_id(&app, &owner, &channel_id).await;
    let deleted = app.delete(&format!("/api/channels/{channel_id}"), &owner.access_token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(script.state().signed_out.contains(&session));
    assert!(app.state.store.get_telegram_session(session).await.expect("store").is_none());
    assert!(!live_here(&app, &channel_id));
}

/// A stored (empty) session on a fresh tenant and TELEGRAM_USER channel.
async fn stored_session(store: &Arc<dyn omnichat::store::Store>, email: &str) -> (Uuid, Uuid, Uuid) {
    use omnichat::store::{ChannelType, NewChannel, NewUser, Role};
    let owner = NewUser { email: email.into(), name: None, role: Role::Owner, password_hash: "x".into() };
    let (tenant, _) = store.create_tenant_with_owner("T", owner).await.expect("tenant");
    let channel = NewChannel {
        channel_type: ChannelType::TELEGRAM_USER,
        name: "tg".into(),
        external_id: None,
        config: json!({}),
        metadata: json!({}),
    };
    let channel = store.create_channel(tenant.id, channel).await.expect("channel");
    let row = store.reset_telegram_session(tenant.id, channel.id, "+4915112345678").await.expect("session");
    (tenant.id, channel.id, row.id)
}

async fn the_session_store_round_trips_dc_options_update_state_and_peers(db: Db) {
    use grammers_session::Session as _;
    use grammers_session::types::{ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, UpdateState, UpdatesState};
    use omnichat::bridges::telegram::session::DbSession;

    let test_db = omnichat_tests::TestDb::new(db);
    let store = test_db.store().await;
    let secrets = omnichat::crypto::SecretBox::new(&omnichat::crypto::SecretKey::parse(&"07".repeat(32)).expect("key"));
    let (tenant, channel, id) = stored_session(&store, "contract@tg.test").await;
    let load = || DbSession::load(store.clone(), secrets.clone(), id);

    // A new session answers grammers' defaults: a home DC and the statically known DCs.
    let session = load().await.expect("load");
    let home = session.home_dc_id().expect("home dc");
    assert!(session.dc_option(home).expect("dc option").is_some());
    assert_eq!(session.peer(PeerId::self_user()).await.expect("peer"), None);
    assert_eq!(session.updates_state().await.expect("state"), UpdatesState::default());

    // DC options with auth keys and the home DC survive a reload; the keys are sealed at rest.
    let mut option = session.dc_option(4).expect("dc").expect("dc 4");
    option.auth_key = Some([7; 256]);
    session.set_dc_option(&option).await.expect("set dc");
    let extra = DcOption { id: 99, auth_key: Some([1; 256]), ..option.clone() };
    session.set_dc_option(&extra).await.expect("set dc");
    session.set_home_dc_id(4).await.expect("home");
    let reloaded = load().await.expect("reload");
    assert_eq!(reloaded.home_dc_id().expect("home"), 4);
    assert_eq!(reloaded.dc_option(4).expect("dc"), Some(option));
    assert_eq!(reloaded.dc_option(99).expect("dc"), Some(extra));
    let row = store.get_telegram_session(id).await.expect("row").expect("row");
    assert!(!row.data.0.to_string().contains("[7,7,7"), "auth keys must not be stored in the clear");

    // Peers: the account itself by its own id and as self; merges keep a known access hash.
    let me = PeerInfo::User { id: 1, auth: Some(PeerAuth::from_hash(11)), bot: Some(false), is_self: Some(true) };
    session.cache_peer(me.clone()).await.expect("cache");
    let group = PeerInfo::Channel { id: 2, auth: Some(PeerAuth::from_hash(-2)), kind: Some(ChannelKind::Megagroup) };
    let users = vec![
        PeerInfo::User { id: 3, auth: Some(PeerAuth::from_hash(33)), bot: None, is_self: None },
        PeerInfo::Chat { id: 4 },
        group.clone(),
    ];
    session.cache_peers(users).await.expect("cache peers");
    session.cache_peers(vec![PeerInfo::User { id: 3, auth: None, bot: Some(true), is_self: None }]).await.expect("merge");
    let reloaded = load().await.expect("reload");
    assert_eq!(reloaded.peer(PeerId::self_user()).await.expect("peer"), Some(me.clone()));
    assert_eq!(reloaded.peer(PeerId::user_unchecked(1)).await.expect("peer"), Some(me));
    assert_eq!(
        reloaded.peer(PeerId::user_unchecked(3)).await.expect("peer"),
        Some(PeerInfo::User { id: 3, auth: Some(PeerAuth::from_hash(33)), bot: Some(true), is_self: None })
    );
    assert_eq!(reloaded.peer(PeerId::chat_unchecked(4)).await.expect("peer"), Some(PeerInfo::Chat { id: 4 }));
    assert_eq!(reloaded.peer(PeerId::channel_unchecked(2)).await.expect("peer"), Some(group));
    let reference = reloaded.peer_ref(PeerId::user_unchecked(3)).await.expect("ref").expect("a peer ref");
    assert_eq!(reference.auth, PeerAuth::from_hash(33));
    assert_eq!(reloaded.peer(PeerId::user_unchecked(404)).await.expect("peer"), None);

    // The update state, piece by piece and whole.
    session.set_update_state(UpdateState::Primary { pts: 10, date: 20, seq: 30 }).await.expect("primary");
    session.set_update_state(UpdateState::Secondary { qts: 40 }).await.expect("secondary");
    session.set_update_state(UpdateState::Channel { id: 5, pts: 50 }).await.expect("channel");
    session.set_update_state(UpdateState::Channel { id: 5, pts: 51 }).await.expect("channel again");
    let expected = UpdatesState { pts: 10, qts: 40, date: 20, seq: 30, channels: vec![ChannelState { id: 5, pts: 51 }] };
    assert_eq!(load().await.expect("reload").updates_state().await.expect("state"), expected);
    let all = UpdatesState { pts: 1, qts: 2, date: 3, seq: 4, channels: vec![] };
    session.set_update_state(UpdateState::All(all.clone())).await.expect("all");
    assert_eq!(load().await.expect("reload").updates_state().await.expect("state"), all);

    // A new login starts from scratch; logging out deletes the session with its peers.
    store.reset_telegram_session(tenant, channel, "+4915100000000").await.expect("reset");
    let fresh = load().await.expect("reload");
    assert_eq!(fresh.peer(PeerId::user_unchecked(3)).await.expect("peer"), None);
    assert_eq!(fresh.updates_state().await.expect("state"), UpdatesState::default());
    assert!(fresh.dc_option(4).expect("dc").is_some_and(|dc| dc.auth_key.is_none()));
    assert!(store.delete_telegram_session(tenant, channel).await.expect("delete"));
    assert!(store.get_telegram_session(id).await.expect("row").is_none());
    assert!(load().await.is_err());
}

async fn session_leases_have_one_owner_until_they_expire(db: Db) {
    use omnichat::store::SessionKind::Telegram;
    let test_db = omnichat_tests::TestDb::new(db);
    let store = test_db.store().await;
    let (_, _, id) = stored_session(&store, "lease@tg.test").await;
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::milliseconds(600);
    assert!(store.acquire_session_lease(Telegram, id, "a", soon).await.expect("lease"));
    assert!(!store.acquire_session_lease(Telegram, id, "b", soon).await.expect("lease"), "a holds it");
    assert!(store.acquire_session_lease(Telegram, id, "a", soon).await.expect("renew"), "a renews");
    store.release_session_lease(Telegram, id, "b").await.expect("release by b is a no-op");
    assert!(!store.acquire_session_lease(Telegram, id, "b", soon).await.expect("lease"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        store
            .acquire_session_lease(Telegram, id, "b", chrono::Utc::now() + chrono::Duration::seconds(5))
            .await
            .expect("take over")
    );
    assert!(!store.acquire_session_lease(Telegram, id, "a", soon).await.expect("a lost it"));
    store.release_session_lease(Telegram, id, "b").await.expect("release");
    assert!(store.acquire_session_lease(Telegram, id, "a", soon).await.expect("free again"));
    assert!(!store.acquire_session_lease(Telegram, Uuid::new_v4(), "a", soon).await.expect("no such session"));
}

fn scripted(script: &Arc<TelegramScript>) -> Connectors {
    Connectors { telegram: script.connector(), ..Default::default() }
}

/// A login lives in the database, not in the memory of the replica that sent the code: the code
/// is confirmed on another replica (the first one gone), the password on a third, media is
/// served by a replica that does not run the session, and an expired code is refused anywhere.
async fn a_login_started_on_one_replica_is_confirmed_on_another(db: Db) {
    let script = TelegramScript::new();
    let mut first = app(db, &script).await;
    let second = spawn_replica_with_connectors(&first, configure, scripted(&script)).await;
    let owner = first.register("owner@handover.test").await;
    let token = Some(owner.access_token.as_str());
    let started = first.post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915112345678"})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let channel_id = started.body["channelInstanceId"].as_str().expect("channel id").to_owned();
    let tenant: Uuid = owner.tenant_id.parse().expect("tenant");
    let row = first.state.store.telegram_session_of_channel(tenant, channel_id.parse().expect("id")).await.expect("store");
    let row = row.expect("a session row");
    let hash = script.state().logins[0].phone_code_hash.clone();
    let sealed = row.pending_login.clone().expect("the pending login is stored");
    assert!(sealed.starts_with("enc:v1:") && !sealed.contains(&hash), "sealed at rest: {sealed}");
    first.shut_down();

    let confirmed =
        second.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["channel"]["status"], "CONNECTED");
    assert_eq!(confirmed.body["account"]["id"], ACCOUNT_ID);
    eventually(WAIT, "the second replica to listen", || async { live_here(&second, &channel_id).then_some(()) }).await;
    let row = second.state.store.get_telegram_session(row.id).await.expect("store").expect("row");
    assert!(row.pending_login.is_none() && row.login_expires_at.is_none(), "the finished login is cleared");
    script.update(|s| {
        s.media = b"GIF89a remote".to_vec();
        let mut message = private_message(1, 5010, "a picture", false);
        message.attachments = vec![json!({"kind": "image", "url": null, "mimeType": "image/gif", "fileName": null, "size": 13,
            "extra": {"photoId": "6001", "accessHash": "-5", "fileReference": "AQID", "dcId": 2, "thumbSize": "y"}})];
        s.feed.push(message);
    });
    let stored = wait_for_messages(&second, &owner, &channel_id, 1).await;

    // Two-step verification: the code on the second replica, the password on a third.
    let third = spawn_replica_with_connectors(&second, configure, scripted(&script)).await;
    let media = third
        .client
        .get(third.url(&format!("/api/messages/{}/media?index=0", stored[0]["id"].as_str().expect("id"))))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("media");
    assert_eq!(media.status(), StatusCode::OK, "served by a replica that does not run the session");
    assert_eq!(media.bytes().await.expect("bytes").as_ref(), b"GIF89a remote");
    assert!(!live_here(&third, &channel_id));

    script.update(|s| s.password = Some(("hunter2".into(), "the usual".into())));
    let other = second.register("second@handover.test").await;
    let token = Some(other.access_token.as_str());
    let started = second.post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915100000002"})).await;
    let channel_id = started.body["channelInstanceId"].as_str().expect("channel id").to_owned();
    let needs = third.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(needs.error_code(), "password_required", "{}", needs.body);
    assert!(needs.body["error"]["message"].as_str().unwrap_or_default().contains("the usual"));
    let wrong = second.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "password": "x"})).await;
    assert_eq!(wrong.error_code(), "invalid_password", "{}", wrong.body);
    let right =
        second.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "password": "hunter2"})).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert_eq!(right.body["channel"]["status"], "CONNECTED");

    // A code past its expiry (set by the replica that sent it) is refused on any other.
    let hasty = spawn_replica_with_connectors(
        &second,
        |config| {
            configure(config);
            config.bridges.telegram_login_ttl = Duration::from_millis(300);
        },
        scripted(&script),
    )
    .await;
    let late = hasty.register("late@handover.test").await;
    let token = Some(late.access_token.as_str());
    let started = hasty.post("/api/telegram/user/start", token, json!({"phoneNumber": "+4915100000003"})).await;
    let channel_id = started.body["channelInstanceId"].as_str().expect("channel id").to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired =
        third.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(expired.status, StatusCode::CONFLICT, "{}", expired.body);
    assert_eq!(expired.error_code(), "login_expired");
    let again = third.post("/api/telegram/user/confirm", token, json!({"channelInstanceId": channel_id, "code": "24680"})).await;
    assert_eq!(again.error_code(), "no_pending_login", "an expired login is forgotten");
}
