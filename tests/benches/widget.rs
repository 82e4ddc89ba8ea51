//! The website widget's visitor transport, side by side with the webhook path in one run:
//! 1. visitor messages per second through `POST /api/widget/{id}/messages` (token check, origin
//!    check, the WIDGET plugin, `handle_inbound_message`, commit, 201) next to Telegram webhooks
//!    into the same store at the same concurrency;
//! 2. the host's memory per idle visitor socket (`/widget`, visitor token, its customer's room)
//!    next to per idle inbox socket (`/`, access token, one `join-channel`), N of each, opened by
//!    one Node.js process with socket.io-client (tests/js/idle-sockets.mjs).
//!
//!   cargo bench -p omnichat-tests --bench widget -- [--db postgres] [--messages 10000] [--concurrency 32] [--sockets 5000]
//!       [--namespaces widget,inbox] [--messages 0]
//!
//! The process's heap grows for the first sockets and is reused by later ones, so only the first
//! namespace measured in a process is a fair figure: run once with `--namespaces widget,inbox`
//! and once with `--namespaces inbox,widget` (and `--messages 0` to skip the throughput part).

use std::sync::Arc;
use std::time::Duration;

use omnichat_tests::bench::concurrent;
use omnichat_tests::widget::{SHOP, Visitor, create_widget};
use omnichat_tests::{Db, TestApp, id_of, spawn_app_with, telegram_text};
use reqwest::Method;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

struct Args {
    db: Db,
    messages: usize,
    concurrency: usize,
    visitors: usize,
    sockets: usize,
    namespaces: Vec<String>,
}

fn args() -> Args {
    let mut args = Args {
        db: Db::Sqlite,
        messages: 10_000,
        concurrency: 32,
        visitors: 500,
        sockets: 5_000,
        namespaces: vec!["widget".into(), "inbox".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => args.db = if value() == "postgres" { Db::Postgres } else { Db::Sqlite },
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--visitors" => args.visitors = value().parse().expect("--visitors N"),
            "--sockets" => args.sockets = value().parse().expect("--sockets N"),
            "--namespaces" => args.namespaces = value().split(',').map(str::to_owned).collect(),
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
    let app = Arc::new(
        spawn_app_with(args.db, |config| {
            // The limits guard real sites; the benchmark is one address posting for many visitors.
            config.visitors.messages_per_minute = u32::MAX / 2;
            config.visitors.sessions_per_minute = u32::MAX / 2;
            config.visitors.requests_per_minute = u32::MAX / 2;
        })
        .await,
    );
    let owner = app.register("bench@widget.io").await;
    let widget = create_widget(&app, &owner, json!({})).await;
    let bot =
        id_of(&app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:b"}})).await)
            .to_string();

    // Steady state: every visitor (and every bot user) has its customer and conversation.
    let mut tokens = Vec::with_capacity(args.visitors.max(args.sockets));
    for n in 0..args.visitors.max(args.sockets) {
        let mut visitor = Visitor::new(&app, &widget);
        let session = visitor.session(json!({"name": format!("Visitor {n}")})).await;
        assert!(session.status.is_success(), "{}", session.body);
        tokens.push(visitor.token.expect("token"));
    }
    for (n, token) in tokens.iter_mut().take(args.visitors).enumerate() {
        let visitor = Visitor { token: Some(token.clone()), ..Visitor::new(&app, &widget) };
        let first = visitor.send(&format!("warm-{n}"), "hello").await;
        assert!(first.status.is_success(), "{}", first.body);
        // As the widget does: the first message's answer carries the token naming the customer.
        *token = first.body["visitorToken"].as_str().expect("a token naming the customer").to_owned();
        let reply = app.telegram_update(&bot, &telegram_text(n as i64 + 1, 1, n as i64 + 1, "hello"), None).await;
        assert!(reply.status.is_success());
    }

    if args.messages > 0 {
        let visitors = Arc::new(tokens[..args.visitors].to_vec());
        let (count, elapsed, p50, p99) = concurrent(args.messages, args.concurrency, {
            let (app, widget, visitors) = (app.clone(), widget.clone(), visitors.clone());
            move |n| {
                let (app, widget, visitors) = (app.clone(), widget.clone(), visitors.clone());
                async move {
                    let visitor = Visitor { token: Some(visitors[n % visitors.len()].clone()), ..Visitor::new(&app, &widget) };
                    let reply = visitor
                        .call(
                            Method::POST,
                            "messages",
                            Some(json!({"clientMessageId": format!("b-{n}"), "text": "bench message"})),
                        )
                        .await;
                    assert_eq!(reply.status, 201, "{}", reply.body);
                }
            }
        })
        .await;
        report("visitor API POST /messages -> commit -> 201", &args, count, elapsed, p50, p99);
        let (count, elapsed, p50, p99) = concurrent(args.messages, args.concurrency, {
            let (app, bot, users) = (app.clone(), bot.clone(), args.visitors as i64);
            move |n| {
                let (app, bot) = (app.clone(), bot.clone());
                async move {
                    let n = n as i64;
                    let update = telegram_text(1_000_000 + n, 1_000_000 + n, 1 + n % users, "bench message");
                    let reply = app.telegram_update(&bot, &update, None).await;
                    assert!(reply.status.is_success() && reply.body["stored"] == 1, "{}", reply.body);
                }
            }
        })
        .await;
        report("Telegram webhook -> commit -> 200 (same store)", &args, count, elapsed, p50, p99);
    }

    if args.sockets > 0 {
        let dir = tempfile::tempdir().expect("temp dir");
        let visitor_tokens = dir.path().join("visitors.txt");
        std::fs::write(&visitor_tokens, tokens[..args.sockets].join("\n")).expect("tokens");
        let inbox_tokens = dir.path().join("inbox.txt");
        std::fs::write(&inbox_tokens, &owner.access_token).expect("token");
        for (position, namespace) in args.namespaces.iter().enumerate() {
            let (name, (kb, ms)) = match namespace.as_str() {
                "widget" => (
                    "visitor sockets (/widget)",
                    idle_sockets(&app, "/widget", &visitor_tokens, args.sockets, &[("ORIGIN", SHOP)]).await,
                ),
                "inbox" => (
                    "inbox sockets (/, one join-channel)",
                    idle_sockets(&app, "/", &inbox_tokens, args.sockets, &[("CHANNEL", &widget)]).await,
                ),
                other => panic!("unknown namespace {other}: widget or inbox"),
            };
            let order =
                if position == 0 { "measured first in this process" } else { "measured after another set (heap already grown)" };
            println!("{} idle {name}: {kb:.1} KB of host RSS per socket, all connected in {ms} ms ({order})", args.sockets);
        }
    }
}

fn report(what: &str, args: &Args, count: usize, elapsed: Duration, p50: Duration, p99: Duration) {
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{what}, {:?}, {} senders: {count} in {elapsed:.2?} = {rate:.0} msg/s; p50 {p50:.2?}, p99 {p99:.2?}",
        args.db, args.concurrency
    );
}

fn rss_kb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("VmRSS in kB")
}

/// Opens `count` idle sockets from a Node.js process; the host's RSS growth per socket (KB) and
/// how long they took to connect. The sockets close before the next measurement.
async fn idle_sockets(
    app: &TestApp,
    namespace: &str,
    tokens: &std::path::Path,
    count: usize,
    env: &[(&str, &str)],
) -> (f64, u64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kb();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/js/idle-sockets.mjs");
    let mut command = tokio::process::Command::new("node");
    command.arg(script).arg(app.base_url()).arg(namespace).arg(tokens).arg(count.to_string());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next_line().await.expect("output").expect("a summary line");
    let summary: serde_json::Value = serde_json::from_str(&line).expect("JSON summary");
    assert_eq!(summary["connected"], count, "{summary}");
    // Let the handshakes' transient buffers go before reading the steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb();
    drop(child.stdin.take());
    let _ = child.wait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ((after - before) / count as f64, summary["ms"].as_u64().unwrap_or_default())
}
