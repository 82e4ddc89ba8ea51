//! The web console's cold load in a real browser (Debian's chromium through playwright-core, a
//! fresh context each run: nothing cached): the time from navigation start until the page holds
//! the focus on its heading, which the console does once the page is drawn with its data.
//! 1. the sign-in page (`/`, no session);
//! 2. the inbox (`/#/inbox`, signed in) of a tenant with `--conversations` conversations, the
//!    first page of 30 drawn.
//!
//!   cargo bench -p omnichat-tests --bench console -- [--runs 7] [--conversations 60]

use std::path::PathBuf;

use omnichat_tests::browser::{self, Browser};
use omnichat_tests::{Db, PASSWORD, id_of, spawn_app, telegram_text};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

fn args() -> (usize, usize) {
    let (mut runs, mut conversations) = (7, 60);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => runs = value().parse().expect("--runs N"),
            "--conversations" => conversations = value().parse().expect("--conversations N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    (runs, conversations)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    assert!(browser::available(), "the console bench needs chromium");
    let (runs, conversations) = args();
    let app = spawn_app(Db::Sqlite).await;
    let owner = app.register("bench@console.io").await;
    let channel =
        app.create_channel(&owner, json!({"name": "Bench bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:BENCH"}})).await;
    let channel_id = id_of(&channel).to_string();
    for i in 0..conversations {
        let user = 10_000 + i as i64;
        let reply = app.telegram_update(&channel_id, &telegram_text(user, 1, user, "Where is my order?"), None).await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    let login = app.login("bench@console.io", PASSWORD).await.body;
    let session = json!({"accessToken": login["accessToken"], "refreshToken": login["refreshToken"],
        "user": login["user"], "tenant": login["tenant"]});

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser/console-bench");
    let mut browser = Browser::launch_console(out).await;
    let pages = [
        ("sign-in page (/)", json!({"url": app.url("/"), "ready": "h1"})),
        ("inbox (/#/inbox, signed in)", json!({"url": app.url("/#/inbox"), "ready": "#inbox-title", "session": session})),
    ];
    println!("console cold load, {runs} runs each, fresh browser context per run; {conversations} conversations");
    for (name, command) in pages {
        let mut command = command;
        command["cmd"] = json!("measure");
        // One unmeasured run: chromium's own first-start costs are not the console's.
        browser.run(command.clone()).await;
        let (mut ready, mut fcp) = (Vec::new(), Vec::new());
        let mut last = Value::Null;
        for _ in 0..runs {
            last = browser.run(command.clone()).await;
            ready.push(last["readyMs"].as_f64().expect("readyMs"));
            fcp.push(last["firstContentfulPaint"].as_f64().unwrap_or(f64::NAN));
        }
        let max = ready.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "{name}: ready (heading focused, data drawn) median {:.0} ms, max {:.0} ms; first contentful paint median {:.0} ms; \
             {} requests, {:.1} KB transferred",
            median(&mut ready),
            max,
            median(&mut fcp),
            last["requests"],
            last["bytes"].as_f64().unwrap_or_default() / 1024.0
        );
    }
}
