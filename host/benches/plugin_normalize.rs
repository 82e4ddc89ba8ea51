//! A fresh instance of the Telegram adapter + `normalize` of a Telegram update, per call, as the
//! webhook path does it (InstancePre, pooling allocator, a Store per call).
//!
//!   cargo bench -p omnichat --bench plugin_normalize

use std::collections::HashMap;
use std::time::{Duration, Instant};

use omnichat::plugins::fetch::{ChannelSecrets, Fetcher};
use omnichat::plugins::manifest::Manifest;
use omnichat::plugins::runtime::{ChannelContext, WebhookRequest};
use omnichat::plugins::{ChannelCall, PluginRuntime};
use omnichat::store::ChannelType;

const ITERATIONS: usize = 20_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime =
        PluginRuntime::load(&Manifest::builtin(), &HashMap::new(), Fetcher::new(false).expect("fetcher")).await.expect("plugins");
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
        context: ChannelContext {
            channel_instance_id: "00000000-0000-0000-0000-000000000001".into(),
            tenant_id: "00000000-0000-0000-0000-000000000002".into(),
            external_id: None,
            config: "{}".into(),
            api_base_url: None,
        },
        secrets: ChannelSecrets::default(),
    };
    for _ in 0..1000 {
        runtime.normalize(ChannelType::TelegramBot, call(), &request).await.expect("warm-up");
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let messages = runtime.normalize(ChannelType::TelegramBot, call(), &request).await.expect("normalize");
        samples.push(started.elapsed());
        assert_eq!(messages.len(), 1);
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "fresh instance + normalize ({} B update), {ITERATIONS} calls: median {:.1?}, p90 {:.1?}, p99 {:.1?}",
        request.body.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
}
