//! The plugin runtime under hostile adapters: each misbehaviour fails its own call within its
//! limit while a good adapter keeps answering.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use omnichat::plugins::fetch::{ChannelSecrets, Fetcher};
use omnichat::plugins::manifest::Manifest;
use omnichat::plugins::runtime::{ChannelContext, WebhookRequest};
use omnichat::plugins::{ChannelCall, PluginError, PluginRuntime};
use omnichat::store::ChannelType;

const TIME_LIMIT_MS: u64 = 500;
const MEMORY_LIMIT_MB: u64 = 16;

async fn runtime(dir: &std::path::Path) -> PluginRuntime {
    let hostile = dir.join("hostile.wasm");
    std::fs::write(&hostile, omnichat::plugins::embedded::TEST_FIXTURE_HOSTILE).expect("write fixture");
    let manifest = Manifest::parse(&format!(
        "[[plugin]]\nid = \"hostile\"\nchannel_type = \"WIDGET\"\nsource = \"{}\"\nmemory_limit_mb = {MEMORY_LIMIT_MB}\ntime_limit_ms = {TIME_LIMIT_MS}\n\n\
         [[plugin]]\nid = \"telegram-bot\"\nchannel_type = \"TELEGRAM_BOT\"\n",
        hostile.display()
    ))
    .expect("manifest");
    let fetcher = Fetcher::new(false).expect("fetcher");
    PluginRuntime::load(&manifest, &HashMap::new(), fetcher).await.expect("plugins load")
}

fn call() -> ChannelCall {
    ChannelCall {
        context: ChannelContext {
            channel_instance_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: uuid::Uuid::new_v4().to_string(),
            external_id: None,
            config: "{}".into(),
            api_base_url: None,
        },
        secrets: ChannelSecrets::default(),
    }
}

fn request(body: &[u8]) -> WebhookRequest {
    WebhookRequest { method: "POST".into(), path: "/".into(), query: String::new(), headers: Vec::new(), body: body.to_vec() }
}

async fn good_call(runtime: &PluginRuntime) -> usize {
    let update = omnichat_tests::telegram_text(1, 1, 1, "still here");
    let body = serde_json::to_vec(&update).expect("json");
    runtime.normalize(ChannelType::TelegramBot, call(), &request(&body)).await.expect("the good plugin answers").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_call_fails_alone_within_its_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime(dir.path()).await;
    assert_eq!(good_call(&runtime).await, 1);
    assert_eq!(runtime.normalize(ChannelType::Widget, call(), &request(b"ok")).await.expect("fine").len(), 1);

    for (body, check) in [
        (&b"loop"[..], (|e: &PluginError| matches!(e, PluginError::Timeout { .. })) as fn(&PluginError) -> bool),
        (b"alloc", |e| matches!(e, PluginError::OutOfMemory { limit_mb: MEMORY_LIMIT_MB, .. })),
        (b"trap", |e| matches!(e, PluginError::Trap { .. })),
        (b"fetch", |e| matches!(e, PluginError::Adapter { message, .. } if message.contains("Denied"))),
    ] {
        let started = Instant::now();
        // The hostile call and a good call at the same time: the good one is not held up.
        let hostile_request = request(body);
        let (hostile, good) = tokio::join!(runtime.normalize(ChannelType::Widget, call(), &hostile_request), good_call(&runtime));
        let name = String::from_utf8_lossy(body);
        let err = hostile.expect_err(&format!("{name} must fail"));
        assert!(check(&err), "{name}: {err}");
        assert_eq!(good, 1, "{name}: the good plugin still answers");
        assert!(started.elapsed() < Duration::from_millis(TIME_LIMIT_MS) * 10, "{name} took {:?}", started.elapsed());
    }
    // And afterwards everything still works.
    assert_eq!(good_call(&runtime).await, 1);
    assert_eq!(runtime.normalize(ChannelType::Widget, call(), &request(b"ok")).await.expect("fine").len(), 1);
}

#[tokio::test]
async fn a_plugin_claiming_another_channel_type_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("liar.wasm");
    std::fs::write(&path, omnichat::plugins::embedded::TEST_FIXTURE_HOSTILE).expect("write");
    let manifest =
        Manifest::parse(&format!("[[plugin]]\nid = \"liar\"\nchannel_type = \"FACEBOOK\"\nsource = \"{}\"\n", path.display()))
            .expect("manifest");
    let err = match PluginRuntime::load(&manifest, &HashMap::new(), Fetcher::new(false).expect("fetcher")).await {
        Ok(_) => panic!("a plugin serving WIDGET cannot be loaded as FACEBOOK"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("WIDGET") && err.contains("FACEBOOK"), "{err}");
}
