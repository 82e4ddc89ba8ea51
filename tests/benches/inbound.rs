//! Inbound throughput: Telegram webhooks -> verify + normalize (WASM) -> one transaction -> 200,
//! from `--concurrency` concurrent senders against the real host on SQLite or PostgreSQL.
//! On PostgreSQL it then runs pgbench with bench/inbound.pgbench.sql (the same SQL) at the same
//! concurrency on the same database, the ceiling the HTTP path is compared with.
//!
//!   cargo bench -p omnichat-tests --bench inbound -- --db postgres [--messages 20000] [--concurrency 32] [--wrk]
//!
//! `--wrk` sends with `wrk` (another process, 20 s, bench/inbound.wrk.lua) instead of reqwest
//! tasks inside the benchmark process: the load generator then costs what pgbench's client does,
//! next to nothing, instead of sharing the host's runtime.

use std::sync::Arc;
use std::time::Duration;

use omnichat_tests::bench::concurrent;
use omnichat_tests::{Db, TestApp, id_of, spawn_app, telegram_text};
use serde_json::json;

// What the `omnichat` binary runs on.
#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

struct Args {
    db: Db,
    messages: usize,
    concurrency: usize,
    users: i64,
    wrk: bool,
}

fn args() -> Args {
    let mut args = Args { db: Db::Sqlite, messages: 20_000, concurrency: 32, users: 1000, wrk: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => args.db = if value() == "postgres" { Db::Postgres } else { Db::Sqlite },
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--users" => args.users = value().parse().expect("--users N"),
            "--wrk" => args.wrk = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    omnichat_tests::quiet_logs();
    let args = args();
    let app = Arc::new(spawn_app(args.db).await);
    let owner = app.register("bench@bench.io").await;
    let channel = id_of(
        &app.create_channel(&owner, json!({"name": "Bench bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:bench"}}))
            .await,
    )
    .to_string();

    // Warm-up: every customer and its conversation exist, as in steady state.
    for user in 1..=args.users {
        let reply = app.telegram_update(&channel, &telegram_text(user, 1, user, "hello"), None).await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }

    let (stored, elapsed, p50, p99) =
        if args.wrk { with_wrk(&app, &channel, &args).await } else { with_reqwest(&app, &channel, &args).await };
    let rate = stored as f64 / elapsed.as_secs_f64();
    println!(
        "inbound webhook -> commit -> 200, {:?}, {} senders ({}): {stored} messages in {elapsed:.2?} = {rate:.0} msg/s; p50 {p50:.2?}, p99 {p99:.2?}",
        args.db,
        args.concurrency,
        if args.wrk { "wrk" } else { "reqwest, in process" },
    );

    if args.db == Db::Postgres {
        let tenant = owner.tenant_id.clone();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/inbound.pgbench.sql");
        // pgbench's customers (`u<n>`) and their open conversations exist before it starts.
        let pool = sqlx::PgPool::connect(&app.db.url).await.expect("pg");
        sqlx::query(
            "INSERT INTO customers (id, tenant_id, channel_instance_id, external_id, metadata, created_at, updated_at)
             SELECT gen_random_uuid(), $1, $2, 'u' || n, '{}', now(), now() FROM generate_series(1, $3) AS n",
        )
        .bind(uuid::Uuid::parse_str(&tenant).expect("uuid"))
        .bind(uuid::Uuid::parse_str(&channel).expect("uuid"))
        .bind(args.users as i32)
        .execute(&pool)
        .await
        .expect("customers for pgbench");
        sqlx::query(
            "INSERT INTO conversations (id, tenant_id, channel_instance_id, customer_id, external_conversation_id, status, last_message_at, created_at, updated_at)
             SELECT gen_random_uuid(), tenant_id, channel_instance_id, id, external_id, 'OPEN', now(), now(), now()
             FROM customers WHERE external_id LIKE 'u%'",
        )
        .execute(&pool)
        .await
        .expect("conversations for pgbench");
        let output = std::process::Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-f", script, "-c", &args.concurrency.to_string(), "-j", "2", "-T", "20"])
            .args([
                "-D",
                &format!("tenant={tenant}"),
                "-D",
                &format!("channel={channel}"),
                "-D",
                &format!("users={}", args.users),
            ])
            .arg(&app.db.url)
            .output()
            .expect("pgbench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tps = stdout.lines().find(|l| l.starts_with("tps")).unwrap_or("tps: not reported").to_owned();
        let latency = stdout.lines().find(|l| l.starts_with("latency average")).unwrap_or("").to_owned();
        println!("pgbench, same SQL, {} clients: {tps}; {latency}", args.concurrency);
        if let Some(ceiling) = tps.split_whitespace().nth(2).and_then(|t| t.parse::<f64>().ok()) {
            println!("HTTP path = {:.0}% of the SQL ceiling", 100.0 * rate / ceiling);
        } else {
            eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        }
    }
}

/// `--concurrency` reqwest tasks in this process, `--messages` in all: (stored, elapsed, p50, p99).
async fn with_reqwest(app: &Arc<TestApp>, channel: &str, args: &Args) -> (usize, Duration, Duration, Duration) {
    let (app, channel, users) = (app.clone(), channel.to_owned(), args.users);
    concurrent(args.messages, args.concurrency, move |n| {
        let (app, channel) = (app.clone(), channel.clone());
        async move {
            let n = n as i64;
            let update = telegram_text(1_000_000 + n, 1_000_000 + n, 1 + n % users, "bench message");
            let reply = app.telegram_update(&channel, &update, None).await;
            assert!(reply.status.is_success() && reply.body["stored"] == 1, "{}", reply.body);
        }
    })
    .await
}

/// `wrk` for 20 s at `--concurrency` connections; every request must have stored one message.
async fn with_wrk(app: &Arc<TestApp>, channel: &str, args: &Args) -> (usize, Duration, Duration, Duration) {
    let before = inbound_messages(app).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/inbound.wrk.lua");
    let url = app.url(&format!("/api/telegram/bot/webhook/{channel}"));
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{}", args.concurrency), "-d20s", "--latency", "-s", script, &url])
        .env("USERS", args.users.to_string())
        .output()
        .await
        .expect("wrk runs (apt-get install wrk)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !stdout.contains("Non-2xx"), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let stored = inbound_messages(app).await - before;
    let field = |prefix: &str| -> String {
        let line = stdout.lines().map(str::trim).find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {stdout}"));
        line[prefix.len()..].trim().to_owned()
    };
    let requests: usize = stdout
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count: {stdout}"));
    // Requests still in flight when wrk stops may be stored without being counted.
    let extra = stored - requests as i64;
    assert!((0..=args.concurrency as i64).contains(&extra), "{requests} requests stored {stored} messages");
    let rate: f64 = field("Requests/sec:").parse().expect("rate");
    let elapsed = Duration::from_secs_f64(requests as f64 / rate);
    (requests, elapsed, wrk_duration(&field("50%")), wrk_duration(&field("99%")))
}

/// wrk's `12.34ms` / `1.02s` / `950.00us`.
fn wrk_duration(text: &str) -> Duration {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or_else(|_| panic!("not a wrk duration: {text}"));
    let unit = match &text[split..] {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        other => panic!("unknown wrk unit {other}"),
    };
    Duration::from_secs_f64(value * unit)
}

async fn inbound_messages(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM messages WHERE direction = 'INBOUND'";
    match app.db.db {
        Db::Sqlite => sqlx::query_scalar(sql).fetch_one(&sqlx::SqlitePool::connect(&app.db.url).await.expect("sqlite")).await,
        Db::Postgres => sqlx::query_scalar(sql).fetch_one(&sqlx::PgPool::connect(&app.db.url).await.expect("postgres")).await,
    }
    .expect("message count")
}
