//! Outbound: the send API, the queue, retries and dead letters, through the real adapters to fake
//! provider servers.

use std::collections::HashMap;
use std::time::Duration;

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::{Db, Session, TestApp, id_of, spawn_app_with, spawn_replica};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    text_and_each_attachment_reach_the_telegram_bot_api,
    replies_reach_the_graph_send_api_with_the_page_token,
    a_500_is_retried_a_400_is_dead_at_once_and_a_429_waits,
    dead_jobs_are_listed_and_retried_by_operators,
    an_idempotency_key_sends_once,
    bad_sends_are_refused_and_nothing_is_queued,
);

async fn app_with_fakes(db: Db, telegram: &FakeProvider, graph: &FakeProvider) -> TestApp {
    let (telegram, graph) = (telegram.base_url(), graph.base_url());
    spawn_app_with(db, move |config| {
        config.providers.telegram_api_base_url = telegram;
        config.providers.facebook_graph_base_url = graph;
    })
    .await
}

/// A tenant with a bot channel and the conversation of Telegram user 4242.
async fn bot_conversation(app: &TestApp, email: &str) -> (Session, String, String) {
    let owner = app.register(email).await;
    let channel =
        app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "123:SECRET"}})).await;
    let channel_id = id_of(&channel).to_string();
    let conversation = app.telegram_conversation(&owner, &channel_id, 4242).await;
    (owner, channel_id, id_of(&conversation).to_string())
}

async fn send(app: &TestApp, owner: &Session, body: Value) -> omnichat_tests::Reply {
    app.post("/api/messages/send", Some(&owner.access_token), body).await
}

async fn text_and_each_attachment_reach_the_telegram_bot_api(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let (owner, _, conversation) = bot_conversation(&app, "tgsend@shop.io").await;

    let queued = send(&app, &owner, json!({"conversationId": conversation, "text": "Your order ships today"})).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    assert_eq!(queued.body["status"], "PENDING");
    assert_eq!(queued.body["direction"], "OUTBOUND");
    let sent = app.message_with_status(&owner, &conversation, queued.body["id"].as_str().expect("id"), "SENT").await;
    assert_eq!(sent["providerMessageId"], "4242:1001");
    let request = &telegram.requests()[0];
    assert_eq!(request.path, "/bot123:SECRET/sendMessage", "the token is filled in by the host");
    assert_eq!(request.body, json!({"chat_id": "4242", "text": "Your order ships today"}));

    for (kind, method, field) in [
        ("image", "sendPhoto", "photo"),
        ("video", "sendVideo", "video"),
        ("audio", "sendAudio", "audio"),
        ("document", "sendDocument", "document"),
    ] {
        let url = format!("https://cdn.example.com/file.{kind}");
        let reply = send(
            &app,
            &owner,
            json!({"conversationId": conversation, "text": "see attached", "attachments": [{"url": url, "type": kind}]}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        app.message_with_status(&owner, &conversation, reply.body["id"].as_str().expect("id"), "SENT").await;
        let request = telegram.requests().last().cloned().expect("a request");
        assert_eq!(request.path, format!("/bot123:SECRET/{method}"), "{kind}");
        assert_eq!(request.body["chat_id"], "4242");
        assert_eq!(request.body[field], url.as_str());
        assert_eq!(request.body["caption"], "see attached");
    }
}

async fn replies_reach_the_graph_send_api_with_the_page_token(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let owner = app.register("fbsend@shop.io").await;
    app.create_channel(&owner, json!({"name": "Page", "type": "FACEBOOK", "externalId": "PAGE", "config": {"pageAccessToken": "PAGE-TOKEN", "appSecret": "s"}})).await;
    let delivery = json!({"object": "page", "entry": [{"id": "PAGE", "messaging": [
        {"sender": {"id": "PSID_7"}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": {"mid": "m1", "text": "hi"}}]}]});
    assert_eq!(app.facebook_delivery(&delivery, "s", None).await.status, StatusCode::OK);
    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();

    let reply = send(&app, &owner, json!({"conversationId": conversation, "text": "Hello from the page", "attachments": [{"url": "https://cdn.example.com/menu.pdf", "type": "document"}]})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let sent = app.message_with_status(&owner, &conversation, reply.body["id"].as_str().expect("id"), "SENT").await;
    assert!(sent["providerMessageId"].as_str().is_some_and(|m| m.starts_with("m_")));
    let requests = graph.requests();
    assert_eq!(requests.len(), 2, "the text, then the attachment");
    for request in &requests {
        assert_eq!(request.path, "/v21.0/me/messages");
        assert_eq!(request.query, "access_token=PAGE-TOKEN");
        assert_eq!(request.body["recipient"]["id"], "PSID_7");
    }
    assert_eq!(requests[0].body["message"]["text"], "Hello from the page");
    assert_eq!(requests[1].body["message"]["attachment"]["type"], "file");
    assert_eq!(requests[1].body["message"]["attachment"]["payload"]["url"], "https://cdn.example.com/menu.pdf");
}

async fn a_500_is_retried_a_400_is_dead_at_once_and_a_429_waits(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let (owner, _, conversation) = bot_conversation(&app, "retry@shop.io").await;

    telegram.script([(500, json!({"ok": false, "description": "Internal Server Error"}))]);
    let flaky = send(&app, &owner, json!({"conversationId": conversation, "text": "after a retry"})).await;
    app.message_with_status(&owner, &conversation, flaky.body["id"].as_str().expect("id"), "SENT").await;
    assert_eq!(telegram.requests().len(), 2, "one failure, one success");

    telegram.script([(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}))]);
    let doomed = send(&app, &owner, json!({"conversationId": conversation, "text": "nobody there"})).await;
    let failed = app.message_with_status(&owner, &conversation, doomed.body["id"].as_str().expect("id"), "FAILED").await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("chat not found")), "{failed}");
    assert_eq!(telegram.requests().len(), 3, "a 400 is not retried");
    let dead = app.get("/api/queue?status=DEAD", &owner.access_token).await.body;
    assert_eq!(dead[0]["messageId"], doomed.body["id"]);
    assert!(dead[0]["lastError"].as_str().is_some_and(|e| e.contains("chat not found")));

    telegram.script([(429, json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}))]);
    let started = std::time::Instant::now();
    let limited = send(&app, &owner, json!({"conversationId": conversation, "text": "slowly"})).await;
    app.message_with_status(&owner, &conversation, limited.body["id"].as_str().expect("id"), "SENT").await;
    assert!(started.elapsed() >= Duration::from_millis(900), "retry_after was honoured ({:?})", started.elapsed());
}

async fn dead_jobs_are_listed_and_retried_by_operators(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let (owner, _, conversation) = bot_conversation(&app, "ops@shop.io").await;
    telegram.script([(403, json!({"ok": false, "description": "Forbidden: bot was blocked by the user"}))]);
    let reply = send(&app, &owner, json!({"conversationId": conversation, "text": "hello?"})).await;
    let message_id = reply.body["id"].as_str().expect("id").to_owned();
    app.message_with_status(&owner, &conversation, &message_id, "FAILED").await;

    let dead = app.get("/api/queue?status=DEAD", &owner.access_token).await.body;
    let job_id = dead[0]["id"].as_str().expect("job").to_owned();
    let other = app.register("other@ops.io").await;
    assert_eq!(app.get("/api/queue?status=DEAD", &other.access_token).await.body, json!([]), "tenant-scoped");
    assert_eq!(
        app.post(&format!("/api/queue/{job_id}/retry"), Some(&other.access_token), json!({})).await.status,
        StatusCode::NOT_FOUND
    );

    let retried = app.post(&format!("/api/queue/{job_id}/retry"), Some(&owner.access_token), json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["status"], "PENDING");
    app.message_with_status(&owner, &conversation, &message_id, "SENT").await;
    let again = app.post(&format!("/api/queue/{job_id}/retry"), Some(&owner.access_token), json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a SENT job is not retried");
}

async fn an_idempotency_key_sends_once(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let (owner, _, conversation) = bot_conversation(&app, "idem@shop.io").await;
    let attempt = || {
        app.client
            .post(app.url("/api/messages/send"))
            .bearer_auth(&owner.access_token)
            .header("idempotency-key", "order-42-confirmation")
            .json(&json!({"conversationId": conversation, "text": "Order 42 confirmed"}))
            .send()
    };
    let (a, b) = tokio::join!(attempt(), attempt());
    let c = attempt().await;
    let mut ids = Vec::new();
    for response in [a, b, c] {
        let response = response.expect("sent");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(response.json::<Value>().await.expect("json")["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    app.message_with_status(&owner, &conversation, ids[0].as_str().expect("id"), "SENT").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let confirmations = telegram.requests().iter().filter(|r| r.body["text"] == "Order 42 confirmed").count();
    assert_eq!(confirmations, 1);
}

async fn bad_sends_are_refused_and_nothing_is_queued(db: Db) {
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    let app = app_with_fakes(db, &telegram, &graph).await;
    let (owner, _, conversation) = bot_conversation(&app, "badsend@shop.io").await;
    let (stranger, _, foreign) = bot_conversation(&app, "stranger@shop.io").await;
    let _ = stranger;
    let cases = [
        (json!({"conversationId": conversation}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"conversationId": conversation, "text": "   "}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"conversationId": conversation, "attachments": [{"url": "https://x.io/a", "type": "hologram"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"conversationId": conversation, "attachments": [{"url": "ftp://x.io/a", "type": "image"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"conversationId": conversation, "attachments": [{"url": "not a url", "type": "image"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"text": "to whom?"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"conversationId": foreign, "text": "hijack"}), StatusCode::NOT_FOUND),
        (json!({"conversationId": uuid::Uuid::new_v4(), "text": "nowhere"}), StatusCode::NOT_FOUND),
        (json!({"conversationId": "nope", "text": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, status) in cases {
        let reply = send(&app, &owner, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
    assert_eq!(app.get("/api/queue", &owner.access_token).await.body, json!([]));
    assert!(telegram.requests().is_empty());

    // Sending to a customer opens (or reuses) their conversation.
    let customer = app.get(&format!("/api/conversations/{conversation}"), &owner.access_token).await.body["customerId"].clone();
    let by_customer = send(&app, &owner, json!({"customerId": customer, "text": "by customer"})).await;
    assert_eq!(by_customer.status, StatusCode::ACCEPTED);
    assert_eq!(by_customer.body["conversationId"], conversation.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_postgres_never_send_a_job_twice() {
    if !omnichat_tests::available(Db::Postgres) {
        return;
    }
    let (telegram, graph) = (FakeProvider::start().await, FakeProvider::start().await);
    telegram.set_delay(Duration::from_millis(5));
    let first = app_with_fakes(Db::Postgres, &telegram, &graph).await;
    let telegram_url = telegram.base_url();
    let second = spawn_replica(&first, move |config| config.providers.telegram_api_base_url = telegram_url).await;
    let (owner, _, conversation) = bot_conversation(&first, "replicas@shop.io").await;

    let total = 300;
    let mut ids = Vec::new();
    for i in 0..total {
        // Half the sends arrive through each replica.
        let app = if i % 2 == 0 { &first } else { &second };
        let reply = send(app, &owner, json!({"conversationId": conversation, "text": format!("job {i}")})).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        ids.push(reply.body["id"].as_str().expect("id").to_owned());
    }
    let requests = telegram.wait_for(total, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_text: HashMap<String, usize> = HashMap::new();
    for request in telegram.requests() {
        *per_text.entry(request.body["text"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    assert_eq!(requests.len().max(per_text.values().sum()), total, "every job sent exactly once");
    assert!(
        per_text.values().all(|n| *n == 1),
        "a job was sent twice: {:?}",
        per_text.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(per_text.len(), total);
    let pending = first.get("/api/queue?status=PENDING", &owner.access_token).await.body;
    assert_eq!(pending, json!([]));
}
