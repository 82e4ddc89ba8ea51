//! Outgoing webhooks: signed deliveries to a local receiver for Telegram webhooks and inbox
//! changes, retries and their limits, per-conversation order, switching off a failing
//! subscription, redelivery, test deliveries, and tenant isolation.

use std::time::Duration;

use hmac::{Hmac, Mac};
use omnichat_tests::fake::{FakeProvider, Recorded};
use omnichat_tests::{Db, PASSWORD, Session, TestApp, eventually, id_of, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use super::on_both_databases;

on_both_databases!(
    a_telegram_message_is_delivered_once_and_signed,
    failures_are_retried_with_backoff_and_a_410_is_not,
    a_conversations_events_arrive_in_order_even_through_retries,
    inbox_changes_are_delivered_as_the_rest_api_shows_them,
    a_failing_subscription_is_switched_off_and_can_be_redelivered_and_tested,
    subscriptions_are_validated_kept_to_managers_and_to_their_tenant,
);

struct Setup {
    app: TestApp,
    receiver: FakeProvider,
    owner: Session,
    channel_id: String,
}

async fn setup(db: Db, configure: impl FnOnce(&mut omnichat::Config) + Send) -> Setup {
    let (telegram, receiver) = (FakeProvider::start().await, FakeProvider::start().await);
    let telegram_url = telegram.base_url();
    let app = spawn_app_with(db, move |config| {
        config.providers.telegram_api_base_url = telegram_url;
        configure(config);
    })
    .await;
    let owner = app.register(&format!("owner-{}@shop.io", uuid::Uuid::new_v4().simple())).await;
    let channel =
        app.create_channel(&owner, json!({"name": "Shop bot", "type": "TELEGRAM_BOT", "config": {"botToken": "77:TOKEN"}})).await;
    Setup { app, receiver, owner, channel_id: id_of(&channel).to_string() }
}

impl Setup {
    async fn subscribe(&self, path: &str, events: Value) -> Value {
        let body = json!({"url": format!("{}{path}", self.receiver.base_url()), "events": events, "description": "CRM"});
        let reply = self.app.post("/api/webhook-subscriptions", Some(&self.owner.access_token), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    async fn say(&self, n: i64, user: i64, words: &str) {
        let reply = self.app.telegram_update(&self.channel_id, &telegram_text(n, n, user, words), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    async fn deliveries(&self, subscription: &Value, query: &str) -> Vec<Value> {
        let path = format!("/api/webhook-subscriptions/{}/deliveries{query}", subscription["id"].as_str().expect("id"));
        let reply = self.app.get(&path, &self.owner.access_token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body.as_array().cloned().unwrap_or_default()
    }

    /// Waits until a delivery of `subscription` is DELIVERED or DEAD (newest first).
    async fn settled(&self, subscription: &Value, count: usize) -> Vec<Value> {
        eventually(Duration::from_secs(20), "deliveries settled", || async {
            let all = self.deliveries(subscription, "").await;
            let done = all.iter().filter(|d| matches!(d["status"].as_str(), Some("DELIVERED" | "DEAD"))).count();
            (done >= count).then_some(all)
        })
        .await
    }
}

/// Checks `X-OmniChat-Signature` as the README tells receivers to.
fn verify(request: &Recorded, secret: &str) {
    let header = request.header("x-omnichat-signature").expect("a signature header");
    let (t, v1) = header.split_once(",v1=").expect("t=...,v1=...");
    let t = t.strip_prefix("t=").expect("t=");
    let timestamp: i64 = t.parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300, "a fresh timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{}", request.raw).as_bytes());
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "the signature covers the body as sent");
}

async fn a_telegram_message_is_delivered_once_and_signed(db: Db) {
    let s = setup(db, |_| {}).await;
    let subscription = s.subscribe("/hooks/crm", json!(["message.created"])).await;
    let secret = subscription["secret"].as_str().expect("the secret is shown once").to_owned();
    assert!(secret.starts_with("whsec_"));

    s.say(1, 501, "Where is my order?").await;
    let requests = s.receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/crm"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-omnichat-event"), Some("message.created"));
    verify(request, &secret);
    let body = &request.body;
    assert_eq!(body["event"], "message.created");
    assert_eq!(Some(body["id"].as_str().expect("id")), request.header("x-omnichat-delivery"));
    assert_eq!(body["tenantId"], s.owner.tenant_id.to_string());
    assert!(body["occurredAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    let data = &body["data"];
    assert_eq!(data["text"], "Where is my order?");
    assert_eq!(data["direction"], "INBOUND");
    assert_eq!(data["status"], "RECEIVED");
    assert_eq!(data["channelInstanceId"], s.channel_id);
    // The same shape as the REST API's message.
    let conversation = data["conversationId"].as_str().expect("conversationId");
    let listed = s.app.get(&format!("/api/conversations/{conversation}/messages"), &s.owner.access_token).await;
    assert_eq!(listed.body["data"][0], *data);

    // A Telegram redelivery of the same update is a duplicate: no second event.
    s.say(1, 501, "Where is my order?").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.receiver.requests().len(), 1, "exactly one delivery");
    let deliveries = s.settled(&subscription, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "DELIVERED");
    assert_eq!(deliveries[0]["attempts"], 1);
    assert_eq!(deliveries[0]["responseStatus"], 200);
    assert_eq!(deliveries[0]["payload"], *body);
    // The secret is never shown again, nor stored in the clear.
    let got = s
        .app
        .get(&format!("/api/webhook-subscriptions/{}", subscription["id"].as_str().expect("id")), &s.owner.access_token)
        .await;
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let stored = s.app.db.raw_texts("SELECT secret FROM webhook_subscriptions").await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&secret), "the secret is sealed at rest");
}

async fn failures_are_retried_with_backoff_and_a_410_is_not(db: Db) {
    let s = setup(db, |_| {}).await;
    let subscription = s.subscribe("/flaky", json!(["message.created"])).await;
    s.receiver.script([(500, json!({"error": "down"})), (503, json!({"error": "busy"}))]);
    s.say(1, 601, "hello").await;
    let deliveries = s.settled(&subscription, 1).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
    assert_eq!(delivery["attempts"], 3);
    let log: Vec<Value> = delivery["attemptLog"].as_array().cloned().expect("log");
    let statuses: Vec<&Value> = log.iter().map(|a| &a["responseStatus"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(s.receiver.requests().len(), 3);
    let ids: Vec<_> = s.receiver.requests().iter().map(|r| r.header("x-omnichat-delivery").map(str::to_owned)).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one delivery id across its attempts");

    s.receiver.script([(410, json!({"error": "gone"}))]);
    s.say(2, 601, "again").await;
    let deliveries = s.settled(&subscription, 2).await;
    let gone = &deliveries[0];
    assert_eq!(gone["status"], "DEAD", "{gone}");
    assert_eq!(gone["attempts"], 1);
    assert_eq!(gone["responseStatus"], 410);
    assert!(gone["responseBody"].as_str().is_some_and(|b| b.contains("gone")));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.receiver.requests().len(), 4, "a 410 is not retried");
    assert_eq!(s.deliveries(&subscription, "?status=DEAD").await.len(), 1);
    assert_eq!(s.deliveries(&subscription, "?status=DELIVERED").await.len(), 1);
}

async fn a_conversations_events_arrive_in_order_even_through_retries(db: Db) {
    let s = setup(db, |_| {}).await;
    s.subscribe("/ordered", json!(["message.created"])).await;
    // The first message's delivery fails twice; the later ones must wait for it.
    s.receiver.script([(500, json!({})), (500, json!({}))]);
    for n in 1..=6 {
        s.say(n, 701, &format!("m{n}")).await;
    }
    let requests = s.receiver.wait_for(8, Duration::from_secs(20)).await;
    let texts: Vec<String> = requests.iter().map(|r| r.body["data"]["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(texts, ["m1", "m1", "m1", "m2", "m3", "m4", "m5", "m6"]);
}

async fn inbox_changes_are_delivered_as_the_rest_api_shows_them(db: Db) {
    let s = setup(db, |_| {}).await;
    let subscription = s.subscribe("/all", json!(["*"])).await;
    assert_eq!(subscription["events"].as_array().map(Vec::len), Some(7));
    s.say(1, 801, "hi").await;
    // (The channel's own connection may report a channel.status too.)
    let first = eventually(Duration::from_secs(10), "customer, conversation and message created", || async {
        let all = s.receiver.requests();
        let has = |event: &str| all.iter().any(|r| r.body["event"] == event);
        (has("customer.created") && has("conversation.created") && has("message.created")).then_some(all)
    })
    .await;
    let conversation =
        first.iter().find(|r| r.body["event"] == "conversation.created").expect("conversation.created").body["data"].clone();
    let id = conversation["id"].as_str().expect("id");
    assert_eq!(conversation["status"], "OPEN");

    // A reply: message.created (PENDING) then message.updated (SENT), in that order.
    let sent =
        s.app.post("/api/messages/send", Some(&s.owner.access_token), json!({"conversationId": id, "text": "On its way"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let reply_id = sent.body["id"].as_str().or(sent.body["message"]["id"].as_str()).expect("message id").to_owned();
    let closed = s.app.patch(&format!("/api/conversations/{id}"), &s.owner.access_token, json!({"status": "CLOSED"})).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    let all = eventually(Duration::from_secs(10), "the reply's and the close's events", || async {
        let all = s.receiver.requests();
        (all.iter().any(|r| r.body["event"] == "conversation.updated")
            && all.iter().any(|r| r.body["event"] == "message.updated" && r.body["data"]["id"] == reply_id.as_str()))
        .then_some(all)
    })
    .await;
    let of_reply: Vec<(&str, &str)> = all
        .iter()
        .filter(|r| r.body["data"]["id"] == reply_id.as_str())
        .map(|r| (r.body["event"].as_str().unwrap_or_default(), r.body["data"]["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(of_reply, [("message.created", "PENDING"), ("message.updated", "SENT")]);
    let updated = all.iter().find(|r| r.body["event"] == "conversation.updated").expect("conversation.updated");
    assert_eq!(updated.body["data"]["status"], "CLOSED");
    let mut rest = s.app.get(&format!("/api/conversations/{id}"), &s.owner.access_token).await.body;
    let fields = rest.as_object_mut().expect("an object");
    // The caller's own read state is not part of the conversation.
    assert!(fields.remove("unreadCount").is_some() && fields.remove("lastReadAt").is_some());
    assert_eq!(updated.body["data"], rest, "the REST API's shape");

    // A channel's status change.
    let disconnect =
        s.app.post(&format!("/api/channels/{}/disconnect", s.channel_id), Some(&s.owner.access_token), json!({})).await;
    assert_eq!(disconnect.status, StatusCode::OK, "{}", disconnect.body);
    let status = eventually(Duration::from_secs(10), "channel.status DISCONNECTED", || async {
        s.receiver
            .requests()
            .into_iter()
            .find(|r| r.body["event"] == "channel.status" && r.body["data"]["status"] == "DISCONNECTED")
    })
    .await;
    assert_eq!(status.body["data"]["id"], s.channel_id);
    assert_eq!(status.body["data"]["status"], "DISCONNECTED");
    assert!(!status.raw.contains("77:TOKEN"), "no channel secret in a delivery");

    // A customer's next message (in a new conversation, the last one is closed) creates no customer.
    s.say(2, 801, "me again").await;
    eventually(Duration::from_secs(10), "a second conversation.created", || async {
        let created = s.receiver.requests().iter().filter(|r| r.body["event"] == "conversation.created").count();
        (created == 2).then_some(())
    })
    .await;
    let customers = s.receiver.requests().iter().filter(|r| r.body["event"] == "customer.created").count();
    assert_eq!(customers, 1, "one customer.created per customer");
}

async fn a_failing_subscription_is_switched_off_and_can_be_redelivered_and_tested(db: Db) {
    let s = setup(db, |config| {
        config.webhooks.max_attempts = 1;
        config.webhooks.disable_after = 3;
    })
    .await;
    let subscription = s.subscribe("/down", json!(["message.created"])).await;
    let id = subscription["id"].as_str().expect("id").to_owned();
    s.receiver.script((0..3).map(|_| (500, json!({"error": "down"}))));
    for n in 1..=3 {
        s.say(n, 900 + n, "hello").await;
    }
    let switched_off = eventually(Duration::from_secs(10), "switched off", || async {
        let got = s.app.get(&format!("/api/webhook-subscriptions/{id}"), &s.owner.access_token).await;
        (got.body["active"] == false).then_some(got.body)
    })
    .await;
    assert!(switched_off["disabledReason"].as_str().is_some_and(|r| r.contains("3 failed deliveries")), "{switched_off}");
    // Switched off, it gets nothing new.
    s.say(4, 904, "while off").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.receiver.requests().len(), 3);

    // Switched on again; a dead delivery is redelivered with the same body.
    let on = s.app.patch(&format!("/api/webhook-subscriptions/{id}"), &s.owner.access_token, json!({"active": true})).await;
    assert_eq!(on.status, StatusCode::OK);
    assert_eq!(
        (on.body["active"].clone(), on.body["disabledReason"].clone(), on.body["consecutiveFailures"].clone()),
        (json!(true), Value::Null, json!(0))
    );
    let dead = s.deliveries(&subscription, "?status=DEAD").await;
    assert_eq!(dead.len(), 3);
    let again = s
        .app
        .post(
            &format!("/api/webhook-subscriptions/{id}/deliveries/{}/redeliver", dead[0]["id"].as_str().expect("id")),
            Some(&s.owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    let redelivered = eventually(Duration::from_secs(10), "redelivered", || async {
        let got = s
            .app
            .get(
                &format!("/api/webhook-subscriptions/{id}/deliveries/{}", dead[0]["id"].as_str().expect("id")),
                &s.owner.access_token,
            )
            .await;
        (got.body["status"] == "DELIVERED").then_some(got.body)
    })
    .await;
    assert_eq!(redelivered["attemptLog"].as_array().map(Vec::len), Some(2));
    let last = s.receiver.requests().pop().expect("a request");
    assert_eq!(last.body, dead[0]["payload"]);

    // A test delivery, sent at once.
    let test = s.app.post(&format!("/api/webhook-subscriptions/{id}/test"), Some(&s.owner.access_token), json!({})).await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.body);
    assert_eq!(test.body["status"], "DELIVERED");
    assert_eq!(test.body["event"], "webhook.test");
    let got = s.receiver.requests().pop().expect("the test delivery");
    assert_eq!(got.header("x-omnichat-event"), Some("webhook.test"));
    s.receiver.script([(404, json!({"error": "no such hook"}))]);
    let failed = s.app.post(&format!("/api/webhook-subscriptions/{id}/test"), Some(&s.owner.access_token), json!({})).await;
    assert_eq!((failed.body["status"].clone(), failed.body["responseStatus"].clone()), (json!("DEAD"), json!(404)));
}

async fn subscriptions_are_validated_kept_to_managers_and_to_their_tenant(db: Db) {
    let s = setup(db, |config| config.providers.allow_private_fetch = false).await;
    let token = &s.owner.access_token;
    for (body, field) in [
        (json!({"events": ["message.created"]}), "url"),
        (json!({"url": "ftp://hooks.example.com/x", "events": ["message.created"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["message.created"]}), "url"),
        (json!({"url": "http://10.0.0.8/x", "events": ["message.created"]}), "url"),
        (json!({"url": "https://hooks.example.com/x"}), "events"),
        (json!({"url": "https://hooks.example.com/x", "events": ["message.deleted"]}), "events[0]"),
        (json!({"url": "https://hooks.example.com/x", "events": ["message.created"], "secret": "short"}), "secret"),
    ] {
        let reply = s.app.post("/api/webhook-subscriptions", Some(token), body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().is_some_and(|m| m.starts_with(field)), "{field}: {}", reply.body);
    }
    let unknown = s
        .app
        .post(
            "/api/webhook-subscriptions",
            Some(token),
            json!({"url": "https://hooks.example.com/x", "events": ["*"], "colour": 1}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    let created = s
        .app
        .post(
            "/api/webhook-subscriptions",
            Some(token),
            json!({"url": "https://hooks.example.com/x", "events": ["message.created"], "secret": "my-own-secret-0123456789"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["secret"], "my-own-secret-0123456789");
    let id = created.body["id"].as_str().expect("id").to_owned();

    // An agent of the tenant cannot manage subscriptions.
    let invited = s
        .app
        .post(
            "/api/users",
            Some(token),
            json!({"email": format!("agent-{}@shop.io", &id[..8]), "role": "agent", "password": PASSWORD}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let agent = Session::from_auth(&s.app.login(invited.body["email"].as_str().expect("email"), PASSWORD).await.body);
    assert_eq!(s.app.get("/api/webhook-subscriptions", &agent.access_token).await.status, StatusCode::FORBIDDEN);

    // Another tenant sees none of it.
    let other = s.app.register(&format!("other-{}@else.io", &id[..8])).await;
    let theirs = s.app.get("/api/webhook-subscriptions", &other.access_token).await;
    assert_eq!(theirs.body, json!([]));
    for path in [format!("/api/webhook-subscriptions/{id}"), format!("/api/webhook-subscriptions/{id}/deliveries")] {
        assert_eq!(s.app.get(&path, &other.access_token).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let patched = s.app.patch(&format!("/api/webhook-subscriptions/{id}"), &other.access_token, json!({"active": false})).await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND);
    let tested = s.app.post(&format!("/api/webhook-subscriptions/{id}/test"), Some(&other.access_token), json!({})).await;
    assert_eq!(tested.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.app.delete(&format!("/api/webhook-subscriptions/{id}"), &other.access_token).await.status,
        StatusCode::NOT_FOUND
    );
    // Another tenant's traffic reaches none of this tenant's subscriptions: the owner's list still works.
    let mine = s.app.get("/api/webhook-subscriptions", token).await;
    assert_eq!(mine.body.as_array().map(Vec::len), Some(1));
    assert!(mine.body[0].get("secret").is_none());
    let patched = s
        .app
        .patch(
            &format!("/api/webhook-subscriptions/{id}"),
            token,
            json!({"events": ["channel.status"], "secret": "rotated-secret-0123456789"}),
        )
        .await;
    assert_eq!(patched.body["events"], json!(["channel.status"]));
    assert!(patched.body.get("secret").is_none());
    assert_eq!(s.app.delete(&format!("/api/webhook-subscriptions/{id}"), token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.app.get(&format!("/api/webhook-subscriptions/{id}"), token).await.status, StatusCode::NOT_FOUND);
}
