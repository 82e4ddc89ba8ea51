//! Inbound throughput: Telegram webhooks -> verify + normalize (WASM) -> one transaction -> 200,
//! from `--concurrency` concurrent senders against the real host on SQLite or PostgreSQL.
//! On PostgreSQL it then runs pgbench with bench/inbound.pgbench.sql (the same SQL) at the same
//! concurrency on the same database, the ceiling the HTTP path is compared with.
//!
//!   cargo bench -p omnichat-tests --bench inbound -- --db postgres [--messages 20000] [--concurrency 32]

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnichat_tests::{Db, id_of, spawn_app, telegram_text};
use serde_json::json;

struct Args {
    db: Db,
    messages: usize,
    concurrency: usize,
    users: i64,
}

fn args() -> Args {
    let mut args = Args { db: Db::Sqlite, messages: 20_000, concurrency: 32, users: 1000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => args.db = if value() == "postgres" { Db::Postgres } else { Db::Sqlite },
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--users" => args.users = value().parse().expect("--users N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    let app = Arc::new(spawn_app(args.db).await);
    let owner = app.register("bench@bench.io").await;
    let channel = id_of(&app.create_channel(&owner, json!({"name": "Bench bot", "type": "TELEGRAM_BOT"})).await).to_string();

    // Warm-up: every customer and its conversation exist, as in steady state.
    for user in 1..=args.users {
        let reply = app.telegram_update(&channel, &telegram_text(user, 1, user, "hello"), None).await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }

    let per_sender = args.messages / args.concurrency;
    let started = Instant::now();
    let senders: Vec<_> = (0..args.concurrency)
        .map(|sender| {
            let app = app.clone();
            let channel = channel.clone();
            let users = args.users;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_sender);
                for i in 0..per_sender {
                    let n = (sender * per_sender + i) as i64;
                    let update = telegram_text(1_000_000 + n, 1_000_000 + n, 1 + n % users, "bench message");
                    let sent = Instant::now();
                    let reply = app.telegram_update(&channel, &update, None).await;
                    latencies.push(sent.elapsed());
                    assert!(reply.status.is_success() && reply.body["stored"] == 1, "{}", reply.body);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.messages);
    for sender in senders {
        latencies.extend(sender.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "inbound webhook -> commit -> 200, {:?}, {} senders: {} messages in {:.2?} = {:.0} msg/s; p50 {:.2?}, p99 {:.2?}",
        args.db,
        args.concurrency,
        latencies.len(),
        elapsed,
        rate,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
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
