//! PostgreSQL restarting under load: the host recovers by itself. Webhooks during the outage
//! answer 503 (the provider retries them), every one answered 200 is stored, `/health` goes
//! `down` and back `up`, the queue delivers again afterwards, and a WhatsApp session keeps (or
//! gets back) its client: a message it could not store during the outage is not acknowledged,
//! and its redelivery is stored once. The test runs its own
//! PostgreSQL server (initdb into a temp dir, its own port) so no other test is disturbed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use omnichat::Connectors;
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::postgres::PgServer;
use omnichat_tests::whatsapp::WhatsAppScript;
use omnichat_tests::{TestApp, TestDb, eventually, id_of, spawn_app_on, telegram_text};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;
use wacore::types::message::{MessageInfo, MessageSource};
use waproto::whatsapp as wa;

const SENDERS: i64 = 4;

/// Posts updates (ids from `next`) until `stop`, recording each id with the answer's status.
async fn stream(app: &TestApp, channel: &str, user: i64, next: &AtomicI64, stop: &AtomicBool, answers: &Mutex<Vec<(i64, u16)>>) {
    while !stop.load(Ordering::Relaxed) {
        let id = next.fetch_add(1, Ordering::Relaxed);
        let update = telegram_text(id, id, user, &format!("m{id}"));
        let status = app
            .client
            .post(app.url(&format!("/api/telegram/bot/webhook/{channel}")))
            .json(&update)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|reply| reply.status().as_u16())
            .unwrap_or(0);
        answers.lock().await.push((id, status));
        if status != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_loses_no_acknowledged_message() {
    let Some(mut pg) = PgServer::start().await else { return };
    let telegram = FakeProvider::start().await;
    let telegram_url = telegram.base_url();
    let script = WhatsAppScript::new();
    let app = spawn_app_on(
        TestDb::external(pg.url()),
        move |config| config.providers.telegram_api_base_url = telegram_url,
        Connectors { whatsapp: script.connector(), ..Default::default() },
    )
    .await;
    let owner = app.register("owner@pg-restart.test").await;
    let channel = id_of(
        &app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:restart"}})).await,
    )
    .to_string();
    let health = || async {
        let reply = app.client.get(app.url("/health")).timeout(Duration::from_secs(5)).send().await;
        match reply {
            Ok(reply) => (reply.status().as_u16(), reply.json::<serde_json::Value>().await.unwrap_or_default()["db"].clone()),
            Err(_) => (0, json!(null)),
        }
    };
    assert_eq!(health().await, (200, json!("up")));
    let whatsapp = id_of(&app.create_channel(&owner, json!({"name": "WhatsApp", "type": "WHATSAPP"})).await);
    eventually(Duration::from_secs(15), "the WhatsApp client to start", || async {
        (!script.state().starts.is_empty()).then_some(())
    })
    .await;
    script.pair().await;
    let status = || async { app.get(&format!("/api/channels/{whatsapp}"), &owner.access_token).await.body["status"].clone() };
    eventually(Duration::from_secs(15), "WhatsApp CONNECTED", || async { (status().await == "CONNECTED").then_some(()) }).await;

    let next = AtomicI64::new(1);
    let stop = AtomicBool::new(false);
    let answers = Mutex::new(Vec::new());
    let restart = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg.stop().await;
        let down = eventually(Duration::from_secs(10), "/health to report the database down", || async {
            let seen = health().await;
            (seen.0 == 503).then_some(seen)
        })
        .await;
        let refused = script.deliver(vec![whatsapp_text("3EB0PGDOWN", "sent while the database was down")]).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg.restart().await;
        eventually(Duration::from_secs(30), "/health to report the database up again", || async {
            (health().await == (200, json!("up"))).then_some(())
        })
        .await;
        // Load goes on for a while on the recovered database.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        (down, refused)
    };
    let senders = futures::future::join_all((0..SENDERS).map(|user| stream(&app, &channel, 9000 + user, &next, &stop, &answers)));
    let ((down, refused), _) = tokio::join!(restart, senders);
    assert_eq!(down.1, json!("down"));
    assert!(refused.is_err(), "a message that could not be stored was acknowledged to WhatsApp");

    let answers = answers.into_inner();
    let acknowledged: BTreeSet<String> = answers.iter().filter(|(_, s)| *s == 200).map(|(id, _)| format!("m{id}")).collect();
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    let other: Vec<_> = answers.iter().filter(|(_, s)| *s != 200 && *s != 503).collect();
    assert!(other.is_empty(), "answers other than 200 and 503 (a provider would not retry a 4xx or 500): {other:?}");
    assert!(refused > 0, "no webhook was refused during the outage: {} answers", answers.len());
    let before_and_after = answers.len() - refused;
    assert!(before_and_after > 20, "too few webhooks got through: {before_and_after}");

    // Every acknowledged message is stored, once.
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
    let texts: Vec<String> =
        sqlx::query_scalar("SELECT text FROM messages WHERE direction = 'INBOUND'").fetch_all(&pool).await.expect("messages");
    let stored: BTreeSet<String> = texts.iter().cloned().collect();
    assert_eq!(stored.len(), texts.len(), "a message was stored twice");
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // The provider retries what was refused: now it is taken.
    let (retry, _) = answers.iter().find(|(_, s)| *s == 503).copied().expect("a refused webhook");
    let again = app.telegram_update(&channel, &telegram_text(retry, retry, 9000, &format!("m{retry}")), None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);

    // The queue resumes: a reply reaches the fake Bot API.
    let conversations = app.get(&format!("/api/conversations?channelInstanceId={channel}"), &owner.access_token).await;
    let conversation = conversations.body["data"][0]["id"].as_str().expect("a conversation").to_owned();
    let sent =
        app.post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": conversation, "text": "back"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let calls = telegram.wait_for(1, Duration::from_secs(20)).await;
    assert!(calls.iter().any(|c| c.path.ends_with("/sendMessage") && c.body["text"] == "back"), "{calls:?}");

    // The WhatsApp session runs again (kept, or restarted once its lease could be renewed), and
    // WhatsApp's redelivery of the unacknowledged message is stored, once.
    eventually(Duration::from_secs(20), "the WhatsApp session to run again", || async {
        (app.state.whatsapp.is_live_here(whatsapp) && status().await == "CONNECTED").then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the redelivery to be stored", || async {
        script.deliver(vec![whatsapp_text("3EB0PGDOWN", "sent while the database was down")]).await.ok()
    })
    .await;
    let copies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE text = 'sent while the database was down'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(copies, 1);
    pool.close().await;
}

fn whatsapp_text(id: &str, text: &str) -> (Arc<wa::Message>, Arc<MessageInfo>) {
    let customer = "4915112345678@s.whatsapp.net";
    let info = MessageInfo {
        id: id.into(),
        push_name: "Ada".into(),
        timestamp: chrono::Utc::now(),
        source: MessageSource {
            chat: customer.parse().expect("jid"),
            sender: customer.parse().expect("jid"),
            ..Default::default()
        },
        ..Default::default()
    };
    (Arc::new(wa::Message { conversation: Some(text.into()), ..Default::default() }), Arc::new(info))
}
