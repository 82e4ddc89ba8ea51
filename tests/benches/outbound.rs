//! Outbound throughput: jobs/s from the queue to the fake provider's 200 and back to SENT.
//! `--jobs` sends are queued through the API of a host whose worker is off; then a second host
//! (same database) starts its worker and the clock runs until every job is SENT.
//!
//!   cargo bench -p omnichat-tests --bench outbound -- --db postgres [--jobs 20000]

use std::time::{Duration, Instant};

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::{Db, id_of, spawn_app_with, spawn_replica};
use serde_json::json;

// What the `omnichat` binary runs on.
#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    omnichat_tests::quiet_logs();
    let mut db = Db::Sqlite;
    let mut jobs = 20_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = if args.next().as_deref() == Some("postgres") { Db::Postgres } else { Db::Sqlite },
            "--jobs" => jobs = args.next().and_then(|n| n.parse().ok()).expect("--jobs N"),
            _ => {}
        }
    }
    let telegram = FakeProvider::start().await;
    let url = telegram.base_url();
    let producer = spawn_app_with(db, {
        let url = url.clone();
        move |config| {
            config.queue.worker = false;
            config.providers.telegram_api_base_url = url;
        }
    })
    .await;
    let owner = producer.register("bench@out.io").await;
    // Several channels, as a gateway has: the per-channel cap does not bound the total.
    let mut conversations = Vec::new();
    for c in 0..8 {
        let channel = producer
            .create_channel(
                &owner,
                json!({"name": format!("Bot {c}"), "type": "TELEGRAM_BOT", "config": {"botToken": format!("{c}:T")}}),
            )
            .await;
        conversations
            .push(id_of(&producer.telegram_conversation(&owner, &id_of(&channel).to_string(), 100 + c).await).to_string());
    }
    let queued = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(64) {
        let sends = chunk.iter().map(|i| {
            producer.post(
                "/api/messages/send",
                Some(&owner.access_token),
                json!({"conversationId": conversations[i % conversations.len()], "text": format!("job {i}")}),
            )
        });
        for reply in futures::future::join_all(sends).await {
            assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED, "{}", reply.body);
        }
    }
    let enqueue_rate = jobs as f64 / queued.elapsed().as_secs_f64();

    let started = Instant::now();
    let worker = spawn_replica(&producer, move |config| config.providers.telegram_api_base_url = url).await;
    let delivered = telegram.wait_for(jobs, Duration::from_secs(600)).await.len();
    let to_provider = started.elapsed();
    loop {
        let pending = producer.get("/api/queue?status=SENDING&limit=1", &owner.access_token).await.body;
        let waiting = producer.get("/api/queue?status=PENDING&limit=1", &owner.access_token).await.body;
        if pending == json!([]) && waiting == json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_sent = started.elapsed();
    drop(worker);
    println!(
        "outbound, {db:?}: {jobs} jobs queued at {enqueue_rate:.0}/s; delivered {delivered} to the fake provider in {to_provider:.2?} \
         = {:.0} jobs/s; all SENT after {all_sent:.2?} = {:.0} jobs/s",
        delivered as f64 / to_provider.as_secs_f64(),
        jobs as f64 / all_sent.as_secs_f64()
    );
}
