//! Crash safety: the real binary, killed with SIGKILL in the middle of 2,000 deliveries to a slow
//! provider, then started again: every message arrives, all end SENT, and the only duplicates are
//! jobs that were in flight at the kill.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::openai::FakeModel;
use omnichat_tests::{Db, PASSWORD, TestDb, eventually};
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    a_killed_host_loses_no_message_and_duplicates_only_what_was_in_flight,
    a_host_killed_between_an_inbound_commit_and_its_agent_reply_sends_exactly_one_reply,
    a_host_killed_with_webhook_deliveries_pending_delivers_every_one_after_restart,
);

const MESSAGES: usize = 2000;
const PER_CHANNEL: usize = 8;

struct Host {
    child: Child,
    base: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let binary = dir.join("omnichat");
    assert!(binary.exists(), "{} is missing: cargo test --workspace builds it", binary.display());
    binary
}

/// Starts `omnichat` (with or without its queue worker) and waits for it to announce its address.
fn start(db: &TestDb, telegram: &str, worker: bool) -> Host {
    start_with(db, telegram, worker, &[])
}

fn start_with(db: &TestDb, telegram: &str, worker: bool, extra: &[(&str, &str)]) -> Host {
    let mut child = Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,omnichat=info")
        .env("DATABASE_URL", &db.url)
        .env("OMNICHAT_DATA_DIR", db.dir.path())
        .env("JWT_SECRET", "crash-test-secret-crash-test-secret")
        .env("TELEGRAM_API_BASE_URL", telegram)
        .env("OMNICHAT_ALLOW_PRIVATE_FETCH", "true")
        .env("OMNICHAT_QUEUE_PER_CHANNEL", PER_CHANNEL.to_string())
        // Long enough that a delivery slowed by a loaded CI machine is not claimed again while it
        // is still running (that would be a duplicate the kill did not cause); short enough that
        // the jobs in flight at the kill come back soon after the restart.
        .env("OMNICHAT_QUEUE_LEASE", "8s")
        .env("OMNICHAT_QUEUE_BACKOFF", "200ms")
        .env("OMNICHAT_QUEUE_WORKER", worker.to_string())
        .envs(extra.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("omnichat starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let event: Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "omnichat listening" {
                let _ = tx.send(event["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("omnichat announced its address");
    Host { child, base: format!("http://{addr}") }
}

/// Registers `email` on `host` and creates a Telegram bot channel: (access token, channel id).
async fn owner_with_bot(http: &reqwest::Client, host: &Host, email: &str, bot_token: &str) -> (String, String) {
    let auth: Value = http
        .post(format!("{}/api/auth/register", host.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = auth["accessToken"].as_str().expect("token").to_owned();
    let channel: Value = http
        .post(format!("{}/api/channels", host.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": bot_token}}))
        .send()
        .await
        .expect("channel")
        .json()
        .await
        .expect("json");
    (token, channel["id"].as_str().expect("id").to_owned())
}

/// Queue rows by status, read straight from the database.
async fn queue_counts(db: &TestDb) -> HashMap<String, i64> {
    let sql = "SELECT status, COUNT(*) FROM channel_message_queue GROUP BY status";
    let rows: Vec<(String, i64)> = match db.db {
        Db::Sqlite => sqlx::query_as(sql).fetch_all(&sqlx::SqlitePool::connect(&db.url).await.expect("sqlite")).await,
        Db::Postgres => sqlx::query_as(sql).fetch_all(&sqlx::PgPool::connect(&db.url).await.expect("postgres")).await,
    }
    .expect("queue counts");
    rows.into_iter().collect()
}

async fn a_killed_host_loses_no_message_and_duplicates_only_what_was_in_flight(db: Db) {
    let telegram = FakeProvider::start().await;
    telegram.set_delay(Duration::from_millis(20));
    let test_db = TestDb::new(db);
    // The sends are queued by a host without a worker, so the kill below lands mid-run however
    // fast this machine queues.
    let mut host = start(&test_db, &telegram.base_url(), false);
    let http = omnichat_tests::http_client();

    let (token, channel_id) = owner_with_bot(&http, &host, "crash@shop.io", "9:CRASH").await;
    let update = omnichat_tests::telegram_text(1, 1, 777, "hi");
    http.post(format!("{}/api/telegram/bot/webhook/{channel_id}", host.base)).json(&update).send().await.expect("webhook");
    let conversations: Value = http
        .get(format!("{}/api/conversations", host.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let conversation = conversations["data"][0]["id"].as_str().expect("conversation").to_owned();

    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(50) {
        let sends = chunk.iter().map(|i| {
            http.post(format!("{}/api/messages/send", host.base))
                .bearer_auth(&token)
                .json(&json!({"conversationId": conversation, "text": format!("message {i}")}))
                .send()
        });
        for reply in futures::future::join_all(sends).await {
            assert_eq!(reply.expect("send").status(), reqwest::StatusCode::ACCEPTED);
        }
    }

    drop(host);
    assert!(telegram.requests().is_empty(), "nothing is sent before a worker runs");

    host = start(&test_db, &telegram.base_url(), true);
    telegram.wait_for(MESSAGES / 4, Duration::from_secs(60)).await;
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    let at_kill = queue_counts(&test_db).await;
    let in_flight = at_kill.get("SENDING").copied().unwrap_or(0) as usize;
    let delivered_before = telegram.requests().len();
    assert!(delivered_before < MESSAGES / 2, "the kill came too late ({delivered_before} delivered) to test anything");

    host = start(&test_db, &telegram.base_url(), true);
    eventually(Duration::from_secs(120), "every job SENT after the restart", || async {
        let counts = queue_counts(&test_db).await;
        (counts.get("SENT").copied().unwrap_or(0) as usize == MESSAGES).then_some(())
    })
    .await;
    drop(host);

    let mut per_text: HashMap<String, usize> = HashMap::new();
    for request in telegram.requests() {
        *per_text.entry(request.body["text"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let distinct = (0..MESSAGES).filter(|i| per_text.contains_key(&format!("message {i}"))).count();
    assert_eq!(distinct, MESSAGES, "every message reached the provider");
    let duplicates: usize = per_text.values().map(|n| n - 1).sum();
    assert!(duplicates <= in_flight, "{duplicates} duplicates but only {in_flight} jobs were in flight at the kill");
    eprintln!("{db:?}: killed after {delivered_before} deliveries with {in_flight} in flight; {duplicates} duplicates");
}

/// The real binary with an agent whose model answers slowly: killed while the model call is in
/// flight (the inbound message committed, its agent job leased, no reply yet), then started
/// again. The job's lease runs out, the turn runs again, and the customer gets one reply.
async fn a_host_killed_between_an_inbound_commit_and_its_agent_reply_sends_exactly_one_reply(db: Db) {
    let telegram = FakeProvider::start().await;
    let model = FakeModel::start().await;
    model.set_delay(Duration::from_millis(1500));
    let test_db = TestDb::new(db);
    let model_url = model.base_url();
    let env = [("OPENAI_BASE_URL", model_url.as_str()), ("OPENAI_API_KEY", "sk-crash"), ("OMNICHAT_AGENT_LEASE", "2s")];
    let mut host = start_with(&test_db, &telegram.base_url(), true, &env);
    let http = omnichat_tests::http_client();
    let (token, channel_id) = owner_with_bot(&http, &host, "agentcrash@shop.io", "9:AGENT").await;
    let agent = http
        .post(format!("{}/api/agents", host.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Bot", "cooldownSeconds": 0}))
        .send()
        .await
        .expect("agent");
    assert_eq!(agent.status(), reqwest::StatusCode::CREATED);
    let update = omnichat_tests::telegram_text(1, 1, 888, "hello");
    let webhook =
        http.post(format!("{}/api/telegram/bot/webhook/{channel_id}", host.base)).json(&update).send().await.expect("webhook");
    assert_eq!(webhook.status(), reqwest::StatusCode::OK);

    assert_eq!(model.wait_for(1, Duration::from_secs(30)).await.len(), 1, "the model call started");
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    let sends = |t: &FakeProvider| t.requests().iter().filter(|r| r.path.ends_with("/sendMessage")).count();
    assert_eq!(sends(&telegram), 0, "killed before any reply");

    host = start_with(&test_db, &telegram.base_url(), true, &env);
    eventually(Duration::from_secs(60), "the reply after the restart", || async { (sends(&telegram) >= 1).then_some(()) }).await;
    // Past another lease and several polls: nothing more goes out.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sends(&telegram), 1, "exactly one reply");
    let conversations: Value = http
        .get(format!("{}/api/conversations", host.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let conversation = conversations["data"][0]["id"].as_str().expect("conversation");
    let messages: Value = http
        .get(format!("{}/api/conversations/{conversation}/messages", host.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");
    let outbound = messages["data"].as_array().expect("page").iter().filter(|m| m["direction"] == "OUTBOUND").count();
    assert_eq!(outbound, 1, "one reply stored");
    drop(host);
}

/// The real binary with a subscription on `message.created` and a slow receiver: killed with
/// deliveries in flight and more waiting (outbox events and deliveries), then started again.
/// Every inbound message reaches the receiver.
async fn a_host_killed_with_webhook_deliveries_pending_delivers_every_one_after_restart(db: Db) {
    const INBOUND: i64 = 40;
    let telegram = FakeProvider::start().await;
    let receiver = FakeProvider::start().await;
    receiver.set_delay(Duration::from_millis(150));
    let test_db = TestDb::new(db);
    let env = [("OMNICHAT_WEBHOOK_LEASE", "2s"), ("OMNICHAT_WEBHOOK_CONCURRENCY", "2")];
    let mut host = start_with(&test_db, &telegram.base_url(), true, &env);
    let http = omnichat_tests::http_client();
    let (token, channel_id) = owner_with_bot(&http, &host, "hooks@shop.io", "9:HOOKS").await;
    let subscription = http
        .post(format!("{}/api/webhook-subscriptions", host.base))
        .bearer_auth(&token)
        .json(&json!({"url": format!("{}/hook", receiver.base_url()), "events": ["message.created"]}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(subscription.status(), reqwest::StatusCode::CREATED);
    for n in 1..=INBOUND {
        let update = omnichat_tests::telegram_text(n, n, 4000 + n % 5, &format!("inbound {n}"));
        let reply = http
            .post(format!("{}/api/telegram/bot/webhook/{channel_id}", host.base))
            .json(&update)
            .send()
            .await
            .expect("webhook");
        assert_eq!(reply.status(), reqwest::StatusCode::OK);
    }
    receiver.wait_for(4, Duration::from_secs(30)).await;
    host.child.kill().expect("SIGKILL");
    host.child.wait().expect("reaped");
    let before = receiver.requests().len();
    assert!(before < INBOUND as usize, "the kill came too late ({before} delivered) to test anything");

    host = start_with(&test_db, &telegram.base_url(), true, &env);
    let texts = eventually(Duration::from_secs(60), "every message delivered after the restart", || async {
        let texts: std::collections::HashSet<String> =
            receiver.requests().iter().filter_map(|r| r.body["data"]["text"].as_str().map(str::to_owned)).collect();
        (texts.len() == INBOUND as usize).then_some(texts)
    })
    .await;
    drop(host);
    assert!((1..=INBOUND).all(|n| texts.contains(&format!("inbound {n}"))));
    eprintln!("{db:?}: killed after {before} webhook deliveries; {} requests in all", receiver.requests().len());
}
