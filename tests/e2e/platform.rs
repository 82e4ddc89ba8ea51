//! The channel platform: channel types opened to plugins (LINE shipped as a .wasm file the host
//! knows nothing about), config schemas, the generic webhook routes, lifecycle and receipts,
//! contract versions, hot reload, and secrets that never leak through an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac;
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, Reply, Session, TestApp, eventually, id_of, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    the_channel_types_list_built_ins_bridges_and_file_plugins,
    a_line_webhook_is_stored_once_and_a_bad_signature_is_refused,
    line_replies_reach_the_line_api_429s_retry_and_400s_are_dead,
    facebook_handshakes_and_receipts_are_the_plugins_to_answer,
    telegram_connect_checks_the_token_and_registers_the_webhook,
    a_failing_send_shows_the_bot_token_nowhere,
    a_component_built_against_wit_0_1_still_loads_and_takes_webhooks,
    inbound_media_is_downloaded_through_the_channels_plugin,
    one_pages_bad_secret_does_not_refuse_the_other_pages_of_a_delivery,
);

const LINE_SECRET: &str = "line-channel-secret";
const LINE_TOKEN: &str = "line-access-token-7f3a9c";

/// A folder with plugins.toml naming the built-ins, LINE (a file) and the 0.1 fixture.
struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    fn new(line_api: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(env!("OMNICHAT_TEST_LINE_WASM"), dir.path().join("line.wasm")).expect("copy the LINE plugin");
        std::fs::write(dir.path().join("legacy.wasm"), omnichat::plugins::embedded::TEST_FIXTURE_LEGACY_V01).expect("write");
        let manifest = format!(
            r#"
[[plugin]]
id = "telegram-bot"
channel_type = "TELEGRAM_BOT"

[[plugin]]
id = "facebook"
channel_type = "FACEBOOK"

[[plugin]]
id = "line"
channel_type = "LINE"
source = "line.wasm"
allowed_hosts = ["api.line.me"]
api_base_url = "{line_api}"

[[plugin]]
id = "legacy-v01"
channel_type = "LEGACY"
source = "legacy.wasm"
secret_fields = ["token"]
"#
        );
        std::fs::write(dir.path().join("plugins.toml"), manifest).expect("write plugins.toml");
        Self { dir }
    }

    fn manifest(&self) -> PathBuf {
        self.dir.path().join("plugins.toml")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

async fn platform_app(db: Db, plugins: &PluginDir, configure: impl FnOnce(&mut omnichat::Config)) -> TestApp {
    let manifest = plugins.manifest();
    spawn_app_with(db, move |config| {
        config.plugins_manifest = Some(manifest);
        configure(config);
    })
    .await
}

fn line_signature(body: &[u8], secret: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn line_text_event(event_id: &str, user: &str, text: &str) -> Value {
    json!({"destination": "U0000000000000000000000000000000", "events": [{
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000u64,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": false},
        "replyToken": "reply-token",
        "message": {"id": "468789577898262530", "type": "text", "quoteToken": "q", "text": text}
    }]})
}

async fn line_webhook(app: &TestApp, channel_id: &str, body: &Value, signature: Option<&str>) -> Reply {
    let bytes = serde_json::to_vec(body).expect("json");
    let signature = signature.map(str::to_owned).unwrap_or_else(|| line_signature(&bytes, LINE_SECRET));
    let response = app
        .client
        .post(app.url(&format!("/api/webhooks/{channel_id}")))
        .header("content-type", "application/json")
        .header("x-line-signature", signature)
        .body(bytes)
        .send()
        .await
        .expect("webhook sent");
    omnichat_tests::reply(response).await
}

async fn line_channel(app: &TestApp, owner: &Session) -> String {
    let channel = app
        .create_channel(
            owner,
            json!({"name": "LINE OA", "type": "LINE", "config": {"channelSecret": LINE_SECRET, "channelAccessToken": LINE_TOKEN}}),
        )
        .await;
    assert_eq!(channel["config"]["channelSecret"], "********");
    id_of(&channel).to_string()
}

async fn the_channel_types_list_built_ins_bridges_and_file_plugins(db: Db) {
    let line_api = FakeProvider::start().await;
    let plugins = PluginDir::new(&line_api.base_url());
    let app = platform_app(db, &plugins, |_| {}).await;
    let owner = app.register("types@shop.io").await;
    let agent_session = {
        let invited = app.post("/api/users", Some(&owner.access_token), json!({"email": "agent@shop.io", "role": "agent"})).await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let password = invited.body["password"].as_str().or(invited.body["temporaryPassword"].as_str()).map(str::to_owned);
        match password {
            Some(password) => Session::from_auth(&app.login("agent@shop.io", &password).await.body),
            None => owner.clone(),
        }
    };

    let listed = app.get("/api/channel-types", &agent_session.access_token).await;
    assert_eq!(listed.status, StatusCode::OK, "any signed-in user may list them: {}", listed.body);
    let types: Vec<&Value> = listed.body.as_array().expect("array").iter().collect();
    let by_type =
        |name: &str| types.iter().find(|t| t["type"] == name).copied().unwrap_or_else(|| panic!("{name} missing: {types:?}"));

    let line = by_type("LINE");
    assert_eq!(
        (line["kind"].as_str(), line["pluginId"].as_str(), line["name"].as_str()),
        (Some("plugin"), Some("line"), Some("LINE"))
    );
    assert_eq!(line["webhook"], json!({"mode": "per-channel", "path": "/api/webhooks/{channelInstanceId}"}));
    let fields: Vec<(&str, bool, bool)> = line["configSchema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|f| (f["name"].as_str().unwrap_or(""), f["required"] == true, f["secret"] == true))
        .collect();
    assert!(
        fields.contains(&("channelSecret", true, true)) && fields.contains(&("channelAccessToken", true, true)),
        "{fields:?}"
    );

    assert_eq!(by_type("FACEBOOK")["webhook"], json!({"mode": "shared", "path": "/api/webhooks/shared/FACEBOOK"}));
    assert_eq!(by_type("TELEGRAM_BOT")["kind"], "plugin");
    for bridge in ["WHATSAPP", "TELEGRAM_USER"] {
        assert_eq!(by_type(bridge)["kind"], "bridge", "{bridge}");
        assert_eq!(by_type(bridge)["webhook"], Value::Null);
    }
    assert_eq!(by_type("LEGACY")["kind"], "plugin");

    let unknown = app.post("/api/channels", Some(&owner.access_token), json!({"name": "X", "type": "VIBER"})).await;
    assert_eq!((unknown.status, unknown.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_channel_type"));
    let message = unknown.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("LINE") && message.contains("WHATSAPP") && message.contains("TELEGRAM_BOT"), "{message}");

    let missing = app
        .post("/api/channels", Some(&owner.access_token), json!({"name": "X", "type": "LINE", "config": {"channelSecret": "s"}}))
        .await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert!(missing.body["error"]["message"].as_str().unwrap_or_default().contains("channelAccessToken"), "{}", missing.body);
    assert_eq!(app.get("/api/channels", &owner.access_token).await.body, json!([]), "nothing stored");
    assert_eq!(app.get("/api/channel-types", "not-a-token").await.status, StatusCode::UNAUTHORIZED);
}

async fn a_line_webhook_is_stored_once_and_a_bad_signature_is_refused(db: Db) {
    let line_api = FakeProvider::start().await;
    let plugins = PluginDir::new(&line_api.base_url());
    let app = platform_app(db, &plugins, |_| {}).await;
    let owner = app.register("line@shop.io").await;
    let channel = line_channel(&app, &owner).await;
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[channel.as_str()]).await;
    socket.ready().await;

    let event = line_text_event("01HZXKJ3B2Y7Q8R9S0T1U2V3W4", "U1234567890abcdef1234567890abcdef", "Is my jacket shipped?");
    let first = line_webhook(&app, &channel, &event, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!((first.body["stored"].as_i64(), first.body["duplicates"].as_i64()), (Some(1), Some(0)));
    let created = socket.event("message-created", Duration::from_secs(10)).await.expect("message-created");
    assert_eq!(created["channelInstanceId"], channel.as_str());
    assert_eq!(created["message"]["text"], "Is my jacket shipped?");
    assert_eq!(created["message"]["providerMessageId"], "01HZXKJ3B2Y7Q8R9S0T1U2V3W4");

    let again = line_webhook(&app, &channel, &event, None).await;
    assert_eq!(
        (again.body["stored"].as_i64(), again.body["duplicates"].as_i64()),
        (Some(0), Some(1)),
        "a redelivery is stored once"
    );

    let forged =
        line_webhook(&app, &channel, &line_text_event("forged", "U1", "give me a refund"), Some("bm90IGEgc2lnbmF0dXJl")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.body);
    let unsigned = app
        .client
        .post(app.url(&format!("/api/webhooks/{channel}")))
        .json(&line_text_event("unsigned", "U1", "x"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    let inbox = app.get("/api/conversations", &owner.access_token).await.body;
    let conversations = inbox["data"].as_array().expect("list");
    assert_eq!(conversations.len(), 1, "{inbox}");
    let messages = app.get(&format!("/api/conversations/{}/messages", id_of(&conversations[0])), &owner.access_token).await.body;
    assert_eq!(messages["data"].as_array().map(Vec::len), Some(1), "only the signed message: {messages}");
    let customer =
        app.get(&format!("/api/customers/{}", conversations[0]["customerId"].as_str().expect("id")), &owner.access_token).await;
    assert_eq!(customer.body["externalId"], "U1234567890abcdef1234567890abcdef");

    // A group message: the group is the conversation, the member the customer.
    let group = json!({"destination": "U0", "events": [{
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_500u64,
        "source": {"type": "group", "groupId": "Ca56f94637cc4347f90a25382909b24b", "userId": "U1234567890abcdef1234567890abcdef"},
        "webhookEventId": "01HZXKJ3B2Y7Q8R9S0T1U2V3W5", "deliveryContext": {"isRedelivery": false},
        "message": {"id": "2", "type": "sticker", "packageId": "446", "stickerId": "1988", "stickerResourceType": "STATIC"}
    }]});
    assert_eq!(line_webhook(&app, &channel, &group, None).await.body["stored"], 1);
    let inbox = app.get("/api/conversations", &owner.access_token).await.body;
    assert!(
        inbox["data"].as_array().expect("list").iter().any(|c| c["externalConversationId"] == "Ca56f94637cc4347f90a25382909b24b"),
        "{inbox}"
    );
}

async fn send(app: &TestApp, owner: &Session, conversation: &str, text: &str) -> String {
    let queued =
        app.post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": conversation, "text": text})).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    queued.body["id"].as_str().expect("id").to_owned()
}

async fn line_replies_reach_the_line_api_429s_retry_and_400s_are_dead(db: Db) {
    let line_api = FakeProvider::start().await;
    let plugins = PluginDir::new(&line_api.base_url());
    let app = platform_app(db, &plugins, |_| {}).await;
    let owner = app.register("linesend@shop.io").await;
    let channel = line_channel(&app, &owner).await;
    let user = "U4af4980629c1b5f6d4b0c8b1d2e3f4a5";
    assert_eq!(line_webhook(&app, &channel, &line_text_event("ev-1", user, "hello"), None).await.status, StatusCode::OK);
    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();

    let message_id = send(&app, &owner, &conversation, "Your jacket ships today").await;
    app.message_with_status(&owner, &conversation, &message_id, "SENT").await;
    let pushed = &line_api.requests()[0];
    assert_eq!((pushed.method.as_str(), pushed.path.as_str()), ("POST", "/v2/bot/message/push"));
    assert_eq!(pushed.header("authorization"), Some(format!("Bearer {LINE_TOKEN}").as_str()));
    assert_eq!(pushed.header("x-line-retry-key"), Some(message_id.as_str()), "the retry key is OmniChat's message id");
    assert_eq!(pushed.body, json!({"to": user, "messages": [{"type": "text", "text": "Your jacket ships today"}]}));

    // A 429 is retried; the retry carries the same key.
    line_api.script([(429, json!({"message": "Too Many Requests"}))]);
    let throttled = send(&app, &owner, &conversation, "after a pause").await;
    app.message_with_status(&owner, &conversation, &throttled, "SENT").await;
    let attempts: Vec<_> =
        line_api.requests().into_iter().filter(|r| r.header("x-line-retry-key") == Some(throttled.as_str())).collect();
    assert_eq!(attempts.len(), 2, "one 429, then the retry");

    // A 400 is permanent: DEAD at once, with LINE's reason.
    line_api.script([(400, json!({"message": "The request body has 1 error(s)"}))]);
    let refused = send(&app, &owner, &conversation, "refused").await;
    let failed = app.message_with_status(&owner, &conversation, &refused, "FAILED").await;
    assert!(failed["error"].as_str().unwrap_or_default().contains("error(s)"), "{failed}");
    let dead = app.get("/api/queue?status=DEAD", &owner.access_token).await.body;
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    let calls = line_api.requests().into_iter().filter(|r| r.header("x-line-retry-key") == Some(refused.as_str())).count();
    assert_eq!(calls, 1, "no retry after a 400");
}

fn sign_facebook(body: &[u8], secret: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn facebook_handshakes_and_receipts_are_the_plugins_to_answer(db: Db) {
    let graph = FakeProvider::start().await;
    let graph_url = graph.base_url();
    let app = spawn_app_with(db, move |config| {
        config.providers.facebook_graph_base_url = graph_url;
        config.providers.facebook_app_secret = Some("fb-app-secret".to_owned().into());
        config.providers.facebook_verify_token = Some("fb-verify".to_owned().into());
    })
    .await;
    let owner = app.register("fbreceipts@shop.io").await;

    // The handshake, on the generic shared route as on the seed's.
    for path in ["/api/webhooks/shared/FACEBOOK", "/api/facebook/webhook"] {
        let ok = app
            .client
            .get(app.url(&format!("{path}?hub.mode=subscribe&hub.verify_token=fb-verify&hub.challenge=8675309")))
            .send()
            .await;
        let ok = ok.expect("sent");
        assert_eq!(ok.status(), StatusCode::OK, "{path}");
        assert_eq!(ok.text().await.expect("text"), "8675309");
        let wrong =
            app.client.get(app.url(&format!("{path}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"))).send().await;
        assert_eq!(wrong.expect("sent").status(), StatusCode::FORBIDDEN, "{path}");
    }

    let page = app
        .create_channel(
            &owner,
            json!({"name": "Page", "type": "FACEBOOK", "externalId": "PAGE_R", "config": {"pageAccessToken": "PAGE-TOKEN"}}),
        )
        .await;
    let channel = id_of(&page).to_string();
    let deliver = |body: Value| {
        let app = &app;
        async move {
            let bytes = serde_json::to_vec(&body).expect("json");
            let response = app
                .client
                .post(app.url("/api/webhooks/shared/FACEBOOK"))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign_facebook(&bytes, "fb-app-secret"))
                .body(bytes)
                .send()
                .await
                .expect("sent");
            omnichat_tests::reply(response).await
        }
    };
    let inbound = json!({"object": "page", "entry": [{"id": "PAGE_R", "time": 1, "messaging": [
        {"sender": {"id": "PSID_R"}, "recipient": {"id": "PAGE_R"}, "timestamp": 1_700_000_000_000u64, "message": {"mid": "m.in", "text": "hello"}}]}]});
    assert_eq!(deliver(inbound).await.body["stored"], 1);
    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[channel.as_str()]).await;
    socket.ready().await;

    let first = send(&app, &owner, &conversation, "one").await;
    let sent = app.message_with_status(&owner, &conversation, &first, "SENT").await;
    let mid = sent["providerMessageId"].as_str().expect("mid").to_owned();
    let second = send(&app, &owner, &conversation, "two").await;
    app.message_with_status(&owner, &conversation, &second, "SENT").await;

    let delivery = json!({"object": "page", "entry": [{"id": "PAGE_R", "time": 2, "messaging": [
        {"sender": {"id": "PSID_R"}, "recipient": {"id": "PAGE_R"}, "timestamp": 1_700_000_000_100u64, "delivery": {"mids": [mid]}}]}]});
    let delivered = deliver(delivery).await;
    assert_eq!((delivered.status, delivered.body["receipts"].as_i64()), (StatusCode::OK, Some(1)), "{}", delivered.body);
    app.message_with_status(&owner, &conversation, &first, "DELIVERED").await;
    loop {
        let updated = socket.event("message-updated", Duration::from_secs(10)).await.expect("message-updated for the receipt");
        if updated["message"]["status"] == "DELIVERED" {
            assert_eq!(updated["message"]["id"], first.as_str());
            break;
        }
    }

    // A read watermark covers every reply up to it, in this channel only.
    let watermark = chrono::Utc::now().timestamp_millis() + 1000;
    let read = json!({"object": "page", "entry": [{"id": "PAGE_R", "time": 3, "messaging": [
        {"sender": {"id": "PSID_R"}, "recipient": {"id": "PAGE_R"}, "timestamp": 1_700_000_000_200u64, "read": {"watermark": watermark}}]}]});
    assert_eq!(deliver(read).await.body["receipts"], 2);
    app.message_with_status(&owner, &conversation, &first, "READ").await;
    app.message_with_status(&owner, &conversation, &second, "READ").await;
    // Receipts never move a message backwards.
    let late_delivery = json!({"object": "page", "entry": [{"id": "PAGE_R", "time": 4, "messaging": [
        {"sender": {"id": "PSID_R"}, "recipient": {"id": "PAGE_R"}, "timestamp": 1_700_000_000_300u64, "delivery": {"mids": [mid]}}]}]});
    assert_eq!(deliver(late_delivery).await.body["receipts"], 0);
    app.message_with_status(&owner, &conversation, &first, "READ").await;
}

async fn telegram_connect_checks_the_token_and_registers_the_webhook(db: Db) {
    let telegram = FakeProvider::start().await;
    let telegram_url = telegram.base_url();
    let app = spawn_app_with(db, move |config| {
        config.providers.telegram_api_base_url = telegram_url;
        config.public_url = Some("https://chat.example.com".into());
    })
    .await;
    let owner = app.register("tgconnect@shop.io").await;
    let bot =
        app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "777:GOOD"}})).await;
    let id = id_of(&bot).to_string();
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[id.as_str()]).await;
    socket.ready().await;

    let connected = app.post(&format!("/api/channels/{id}/connect"), Some(&owner.access_token), json!({})).await;
    assert_eq!(connected.status, StatusCode::ACCEPTED, "{}", connected.body);
    assert_eq!(connected.body["status"], "CONNECTED", "{}", connected.body);
    assert_eq!(connected.body["config"]["secretToken"], "********", "the generated secret is stored, never shown");
    let status = socket.event("channel-status", Duration::from_secs(10)).await.expect("channel-status");
    assert_eq!(status["status"], "CONNECTED");

    let calls = telegram.requests();
    assert_eq!(calls[0].path, "/bot777:GOOD/getMe");
    let set = calls.iter().find(|c| c.path == "/bot777:GOOD/setWebhook").expect("setWebhook called");
    assert_eq!(set.body["url"], format!("https://chat.example.com/api/webhooks/{id}"));
    let secret = set.query.split('&').find_map(|kv| kv.strip_prefix("secret_token=")).expect("secret_token").to_owned();
    assert!(secret.len() >= 32, "a generated secret token: {secret}");

    // Webhooks must now carry that secret token.
    let update = omnichat_tests::telegram_text(1, 1, 99, "hi");
    assert_eq!(app.telegram_update(&id, &update, Some("wrong")).await.status, StatusCode::UNAUTHORIZED);
    let accepted = app.telegram_update(&id, &update, Some(&secret)).await;
    assert_eq!((accepted.status, accepted.body["stored"].as_i64()), (StatusCode::OK, Some(1)), "{}", accepted.body);
    let generic = app
        .client
        .post(app.url(&format!("/api/webhooks/{id}")))
        .header("x-telegram-bot-api-secret-token", &secret)
        .json(&omnichat_tests::telegram_text(2, 2, 99, "again"))
        .send()
        .await
        .expect("sent");
    assert_eq!(generic.status(), StatusCode::OK, "the generic route takes the same webhook");

    // An update that leaves the generated secret out (a client never sees it) keeps it.
    let patched =
        app.patch(&format!("/api/channels/{id}"), &owner.access_token, json!({"config": {"botToken": "********"}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["config"]["secretToken"], "********");
    assert_eq!(
        app.telegram_update(&id, &omnichat_tests::telegram_text(3, 3, 99, "x"), None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Disconnect deletes the webhook.
    let disconnected = app.post(&format!("/api/channels/{id}/disconnect"), Some(&owner.access_token), json!({})).await;
    assert_eq!(disconnected.body["status"], "DISCONNECTED");
    assert!(telegram.requests().iter().any(|c| c.path == "/bot777:GOOD/deleteWebhook"));

    // A token Telegram refuses leaves the channel in ERROR with Telegram's reason.
    let bad =
        app.create_channel(&owner, json!({"name": "Bad bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:REVOKED"}})).await;
    telegram.script([(401, json!({"ok": false, "error_code": 401, "description": "Unauthorized"}))]);
    let refused = app.post(&format!("/api/channels/{}/connect", id_of(&bad)), Some(&owner.access_token), json!({})).await;
    assert_eq!(refused.body["status"], "ERROR", "{}", refused.body);
    let reason = refused.body["statusReason"].as_str().unwrap_or_default();
    assert!(reason.contains("Unauthorized") && !reason.contains("REVOKED"), "{reason}");
}

async fn a_failing_send_shows_the_bot_token_nowhere(db: Db) {
    // A Telegram API that is not there: reqwest's error names the URL, token and all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let app = spawn_app_with(db, move |config| {
        config.providers.telegram_api_base_url = dead_url;
        config.queue.max_attempts = 2;
    })
    .await;
    let token = format!("5150:{}", uuid::Uuid::new_v4().simple());
    let owner = app.register("scrub@shop.io").await;
    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": token}})).await;
    let id = id_of(&bot).to_string();
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[id.as_str()]).await;
    socket.ready().await;
    let conversation = app.telegram_conversation(&owner, &id, 31337).await;
    let conversation = id_of(&conversation).to_string();
    let message = send(&app, &owner, &conversation, "this will not arrive").await;
    let failed = app.message_with_status(&owner, &conversation, &message, "FAILED").await;
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()), "a reason is recorded: {failed}");

    let encoded = token.replace(':', "%3A");
    let leaks =
        |text: &str| text.contains(&token) || text.contains(&encoded) || text.contains(token.split(':').nth(1).unwrap_or("x"));
    for path in [
        "/api/queue",
        "/api/queue?status=DEAD",
        &format!("/api/conversations/{conversation}/messages"),
        &format!("/api/channels/{id}"),
    ] {
        let body = app.get(path, &owner.access_token).await.body.to_string();
        assert!(!leaks(&body), "{path} shows the token: {body}");
    }
    socket.events_within("message-updated", Duration::from_millis(500)).await;
    let events = serde_json::to_string(&socket.seen).expect("json");
    assert!(events.contains("message-updated"), "the failure was announced: {events}");
    assert!(!leaks(&events), "an event shows the token: {events}");
    let rows = app.db.raw_dump().await;
    assert!(!leaks(&rows), "a database row holds the token in clear");
    let logs = omnichat::telemetry::captured_logs();
    assert!(logs.contains("queue: job is dead"), "the failure was logged");
    assert!(!leaks(&logs), "a log line shows the token");
}

async fn a_component_built_against_wit_0_1_still_loads_and_takes_webhooks(db: Db) {
    let plugins = PluginDir::new("https://api.line.me");
    let app = platform_app(db, &plugins, |_| {}).await;
    let owner = app.register("legacy@shop.io").await;
    let channel =
        app.create_channel(&owner, json!({"name": "Old", "type": "LEGACY", "config": {"token": "legacy-secret"}})).await;
    assert_eq!(channel["config"]["token"], "********", "the manifest's secret_fields are secret");
    let id = id_of(&channel).to_string();
    let post = |token: &'static str, body: Value| {
        let (app, id) = (&app, id.clone());
        async move {
            let response = app
                .client
                .post(app.url(&format!("/api/webhooks/{id}")))
                .header("x-legacy-token", token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            omnichat_tests::reply(response).await
        }
    };
    let stored = post("legacy-secret", json!({"from": "old-user", "id": "L1", "text": "still works"})).await;
    assert_eq!((stored.status, stored.body["stored"].as_i64()), (StatusCode::OK, Some(1)), "{}", stored.body);
    assert_eq!(post("wrong", json!({"from": "old-user", "id": "L2", "text": "forged"})).await.status, StatusCode::UNAUTHORIZED);
    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();
    let reply = send(&app, &owner, &conversation, "and replies too").await;
    let sent = app.message_with_status(&owner, &conversation, &reply, "SENT").await;
    assert_eq!(sent["providerMessageId"], format!("legacy-{reply}"));
}

/// Replaces a file the way a deploy does: write beside it, then rename over it.
fn replace(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

async fn line_version(app: &TestApp, owner: &Session) -> String {
    let types = app.get("/api/channel-types", &owner.access_token).await.body;
    types
        .as_array()
        .and_then(|all| all.iter().find(|t| t["type"] == "LINE"))
        .map(|t| t["version"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_replaced_under_load_reloads_without_a_failed_request() {
    let line_api = FakeProvider::start().await;
    let plugins = PluginDir::new(&line_api.base_url());
    let app = platform_app(Db::Sqlite, &plugins, |_| {}).await;
    let owner = app.register("reload@shop.io").await;
    let channel = line_channel(&app, &owner).await;
    let before = line_version(&app, &owner).await;
    let reloaded = env!("OMNICHAT_TEST_LINE_RELOADED_VERSION");
    assert_ne!(before, reloaded);

    // Webhooks stream in while the component file is replaced.
    let streaming = {
        let (client, url, channel) = (app.client.clone(), app.url(""), channel.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..300 {
                let body = serde_json::to_vec(&line_text_event(&format!("reload-{n}"), "Ureload", &format!("message {n}")))
                    .expect("json");
                let response = client
                    .post(format!("{url}/api/webhooks/{channel}"))
                    .header("x-line-signature", line_signature(&body, LINE_SECRET))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                statuses.push(response.map(|r| r.status().as_u16()).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    replace(&plugins.path("line.wasm"), &std::fs::read(env!("OMNICHAT_TEST_LINE_RELOADED_WASM")).expect("read"));
    eventually(Duration::from_secs(20), "the new version's describe", || async {
        (line_version(&app, &owner).await == reloaded).then_some(())
    })
    .await;
    let statuses = streaming.await.expect("stream");
    assert!(statuses.iter().all(|s| *s == 200), "every webhook answered 200 across the reload: {statuses:?}");
    let inbox = app.get("/api/conversations", &owner.access_token).await.body;
    let messages =
        app.get(&format!("/api/conversations/{}/messages?limit=100", id_of(&inbox["data"][0])), &owner.access_token).await;
    assert!(messages.body["data"].as_array().is_some_and(|m| !m.is_empty()));

    // A broken file is refused; the loaded version keeps serving.
    replace(&plugins.path("line.wasm"), b"\0asm this is not a component");
    let report = app.state.plugins.reload().await;
    assert!(report.refused.iter().any(|(id, why)| id == "line" && why.contains("not a valid component")), "{report:?}");
    assert_eq!(line_version(&app, &owner).await, reloaded);
    let body = line_text_event("after-broken", "Ureload", "still served");
    assert_eq!(line_webhook(&app, &channel, &body, None).await.body["stored"], 1);

    // A broken plugins.toml is refused too.
    std::fs::write(plugins.manifest(), "[[plugin]]\nid = 3\n").expect("write");
    let report = app.state.plugins.reload().await;
    assert!(report.refused.iter().any(|(id, _)| id == "plugins.toml"), "{report:?}");
    assert_eq!(line_version(&app, &owner).await, reloaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_takes_compiled_plugins_from_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("omnichat.db").display());
    let config = omnichat::Config::for_tests(&url, dir.path());
    omnichat::build(config.clone()).await.expect("first start");
    let cache = dir.path().join("plugin-cache");
    let count = |dir: &Path| walk(dir).len();
    let cached = count(&cache);
    assert!(cached >= 2, "compiled artifacts are written to {}: {cached}", cache.display());
    omnichat::build(config).await.expect("second start");
    assert_eq!(count(&cache), cached, "a restart compiles nothing new");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn inbound_media_is_downloaded_through_the_channels_plugin(db: Db) {
    let line_api = FakeProvider::start().await;
    let telegram = FakeProvider::start().await;
    let plugins = PluginDir::new(&line_api.base_url());
    let telegram_url = telegram.base_url();
    let app = platform_app(db, &plugins, move |config| config.providers.telegram_api_base_url = telegram_url).await;
    let owner = app.register("media@shop.io").await;

    // LINE holds the image: the plugin fetches it from the content API with the access token.
    let channel = line_channel(&app, &owner).await;
    let image = json!({"destination": "U0", "events": [{
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000u64,
        "source": {"type": "user", "userId": "Umedia"}, "webhookEventId": "ev-image",
        "deliveryContext": {"isRedelivery": false},
        "message": {"id": "354718705033693859", "type": "image", "contentProvider": {"type": "line"}}
    }]});
    assert_eq!(line_webhook(&app, &channel, &image, None).await.body["stored"], 1);
    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();
    let messages = app.get(&format!("/api/conversations/{conversation}/messages"), &owner.access_token).await.body;
    let message = messages["data"][0]["id"].as_str().expect("id").to_owned();
    line_api.script([(200, json!({"pixels": "jpeg bytes stand-in"}))]);
    let media = app.client.get(app.url(&format!("/api/messages/{message}/media"))).bearer_auth(&owner.access_token).send().await;
    let media = media.expect("sent");
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.headers()["content-disposition"], "attachment");
    assert_eq!(media.json::<Value>().await.expect("body"), json!({"pixels": "jpeg bytes stand-in"}));
    let fetched = line_api.requests().pop().expect("a content request");
    assert_eq!(fetched.path, "/v2/bot/message/354718705033693859/content");
    assert_eq!(fetched.header("authorization"), Some(format!("Bearer {LINE_TOKEN}").as_str()));

    // Telegram: getFile, then the file itself, the token filled in by the host.
    let bot =
        app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "4242:FILES"}})).await;
    let bot = id_of(&bot).to_string();
    let mut photo = omnichat_tests::telegram_text(7, 7, 555, "");
    photo["message"].as_object_mut().expect("message").remove("text");
    photo["message"]["photo"] =
        json!([{"file_id": "AgACAgIAAxk", "file_unique_id": "u", "file_size": 1200, "width": 90, "height": 60}]);
    assert_eq!(app.telegram_update(&bot, &photo, None).await.body["stored"], 1);
    let inbox = app.get(&format!("/api/conversations?channelInstanceId={bot}"), &owner.access_token).await.body;
    let messages = app.get(&format!("/api/conversations/{}/messages", id_of(&inbox["data"][0])), &owner.access_token).await.body;
    let message = messages["data"][0]["id"].as_str().expect("id").to_owned();
    telegram.script([
        (200, json!({"ok": true, "result": {"file_id": "AgACAgIAAxk", "file_path": "photos/file_1.jpg"}})),
        (200, json!({"photo": true})),
    ]);
    let media = app.client.get(app.url(&format!("/api/messages/{message}/media"))).bearer_auth(&owner.access_token).send().await;
    let media = media.expect("sent");
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.json::<Value>().await.expect("body"), json!({"photo": true}));
    let paths: Vec<String> = telegram.requests().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
    assert!(paths.iter().any(|p| p.starts_with("/bot4242:FILES/getFile?file_id=AgACAgIAAxk")), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("/file/bot4242:FILES/photos/file_1.jpg")), "{paths:?}");

    // Another tenant cannot fetch it.
    let stranger = app.register("media-stranger@shop.io").await;
    assert_eq!(app.get(&format!("/api/messages/{message}/media"), &stranger.access_token).await.status, StatusCode::NOT_FOUND);
}

async fn one_pages_bad_secret_does_not_refuse_the_other_pages_of_a_delivery(db: Db) {
    let app = spawn_app_with(db, |config| config.providers.facebook_app_secret = Some("the-app-secret".to_owned().into())).await;
    let a = app.register("good-page@shop.io").await;
    let b = app.register("bad-page@shop.io").await;
    app.create_channel(&a, json!({"name": "A", "type": "FACEBOOK", "externalId": "PAGE_OK", "config": {"pageAccessToken": "a"}}))
        .await;
    // Tenant B set an app secret of its own, and a wrong one.
    app.create_channel(
        &b,
        json!({"name": "B", "type": "FACEBOOK", "externalId": "PAGE_BAD", "config": {"pageAccessToken": "b", "appSecret": "wrong"}}),
    )
    .await;
    let body = json!({"object": "page", "entry": [
        {"id": "PAGE_OK", "time": 1, "messaging": [{"sender": {"id": "P1"}, "recipient": {"id": "PAGE_OK"}, "timestamp": 1, "message": {"mid": "m.ok", "text": "for A"}}]},
        {"id": "PAGE_BAD", "time": 1, "messaging": [{"sender": {"id": "P2"}, "recipient": {"id": "PAGE_BAD"}, "timestamp": 1, "message": {"mid": "m.bad", "text": "for B"}}]}
    ]});
    let reply = app.facebook_delivery(&body, "the-app-secret", None).await;
    assert_eq!((reply.status, reply.body["stored"].as_i64()), (StatusCode::OK, Some(1)), "{}", reply.body);
    assert_eq!(app.get("/api/conversations", &a.access_token).await.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.get("/api/conversations", &b.access_token).await.body["data"], json!([]));
    // When no page accepts it, the delivery is refused.
    let forged = app.facebook_delivery(&body, "not-it", None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}
