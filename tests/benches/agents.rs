//! Agent turns per second against a zero-latency fake model: the host's own cost of a turn (claim,
//! checks, context, one Chat Completions call through async-openai, the reply queued, the run
//! logged). `--turns` customers each send one message to a host whose runner is off; then a
//! second host (same database) runs the runner alone (no queue worker) and the clock runs until
//! every agent job is done. The same again with the echo fallback (no model call) in the same
//! run, side by side.
//!
//!   cargo bench -p omnichat-tests --bench agents -- [--db postgres] [--turns 2000]

use std::time::{Duration, Instant};

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::openai::FakeModel;
use omnichat_tests::{Db, TestApp, id_of, spawn_app_with, spawn_replica, telegram_text};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

async fn finished_jobs(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM agent_jobs WHERE status IN ('DONE', 'SKIPPED', 'FAILED')";
    match app.db.db {
        Db::Sqlite => sqlx::query_scalar(sql).fetch_one(&sqlx::SqlitePool::connect(&app.db.url).await.expect("sqlite")).await,
        Db::Postgres => sqlx::query_scalar(sql).fetch_one(&sqlx::PgPool::connect(&app.db.url).await.expect("pg")).await,
    }
    .expect("count")
}

/// Turns per second of a runner host on `producer`'s database; `model`: the fake model's base
/// URL, or `None` for the echo fallback.
async fn run(db: Db, turns: usize, model: Option<String>) -> f64 {
    let telegram = FakeProvider::start().await;
    let url = telegram.base_url();
    let producer = spawn_app_with(db, {
        let url = url.clone();
        move |config| {
            config.agents.runner = false;
            config.queue.worker = false;
            config.providers.telegram_api_base_url = url;
        }
    })
    .await;
    let owner = producer.register("bench@agents.io").await;
    let channel =
        producer.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:T"}})).await;
    let channel_id = id_of(&channel).to_string();
    let agent = producer.post("/api/agents", Some(&owner.access_token), json!({"name": "Bench", "cooldownSeconds": 0})).await;
    assert_eq!(agent.status, reqwest::StatusCode::CREATED, "{}", agent.body);
    for chunk in (0..turns).collect::<Vec<_>>().chunks(32) {
        let updates: Vec<_> = chunk
            .iter()
            .map(|i| {
                let n = *i as i64 + 1;
                telegram_text(n, n, 10_000 + n, "where is my order?")
            })
            .collect();
        let sends = updates.iter().map(|update| producer.telegram_update(&channel_id, update, None));
        for reply in futures::future::join_all(sends).await {
            assert_eq!(reply.status, reqwest::StatusCode::OK);
        }
    }

    let started = Instant::now();
    let runner = spawn_replica(&producer, move |config| {
        config.queue.worker = false;
        config.providers.telegram_api_base_url = url;
        config.agents.openai_base_url = model;
        config.agents.openai_api_key = None;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while finished_jobs(&producer).await < turns as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let done = finished_jobs(&producer).await;
    assert_eq!(done, turns as i64, "every job finished");
    drop(runner);
    turns as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    omnichat_tests::quiet_logs();
    let mut db = Db::Sqlite;
    let mut turns = 2000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = if args.next().as_deref() == Some("postgres") { Db::Postgres } else { Db::Sqlite },
            "--turns" => turns = args.next().and_then(|n| n.parse().ok()).expect("--turns N"),
            _ => {}
        }
    }
    let model = FakeModel::start().await;
    let with_model = run(db, turns, Some(model.base_url())).await;
    assert_eq!(model.requests().len(), turns, "one model call per turn");
    let echo = run(db, turns, None).await;
    println!("agents, {db:?}: {turns} turns; zero-latency model {with_model:.0} turns/s; echo fallback {echo:.0} turns/s");
}
