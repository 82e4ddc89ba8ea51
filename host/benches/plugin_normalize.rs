//! A fresh instance of the Telegram adapter + `receive` (verify and map) of a Telegram update, per call, as the
//! webhook path does it (InstancePre, pooling allocator, a Store per call).
//!
//!   cargo bench -p omnichat --bench plugin_normalize

use std::time::{Duration, Instant};

use omnichat::channels::adapter::WebhookRequest;
use omnichat::plugins::fetch::{ChannelSecrets, Fetcher};
use omnichat::plugins::manifest::{MAX_MEMORY_LIMIT_MB, Manifest};
use omnichat::plugins::{ChannelCall, PluginRuntime};

const ITERATIONS: usize = 20_000;

/// The binary's allocator, so an allocator setting is measured here as it runs in production.
#[global_allocator]
static ALLOCATOR: omnichat::Allocator = omnichat::Allocator;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = PluginRuntime::new(Fetcher::new(false).expect("fetcher"), MAX_MEMORY_LIMIT_MB, None).expect("runtime");
    let entry = Manifest::builtin().plugins.into_iter().find(|p| p.id == "telegram-bot").expect("built-in");
    let plugin =
        runtime.compile(entry, omnichat::plugins::embedded::TELEGRAM_BOT, ChannelSecrets::default()).await.expect("plugin");
    let update = serde_json::json!({
        "update_id": 10000,
        "message": {
            "message_id": 1365, "date": 1441645532,
            "chat": {"id": 1111111, "type": "private", "first_name": "Test", "last_name": "Lastname", "username": "Testusername"},
            "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "last_name": "Lastname", "username": "Testusername"},
            "text": "Hello, I would like to know where my order is. It was supposed to arrive yesterday."
        }
    });
    let body = serde_json::to_vec(&update).expect("json");
    let request = WebhookRequest { method: "POST".into(), path: "/".into(), query: String::new(), headers: Vec::new(), body };
    let call = || ChannelCall {
        tenant_id: uuid::Uuid::from_u128(2),
        channel_id: uuid::Uuid::from_u128(1),
        external_id: None,
        config: "{}".into(),
        secrets: ChannelSecrets::default(),
    };
    let receive = async || runtime.receive(&plugin, call(), &request).await.expect("runs").expect("accepted").messages;
    for _ in 0..1000 {
        receive().await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let messages = receive().await;
        samples.push(started.elapsed());
        assert_eq!(messages.len(), 1);
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "fresh instance + receive ({} B update), {ITERATIONS} calls: median {:.1?}, p90 {:.1?}, p99 {:.1?}",
        request.body.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
}
