//! The plugin runtime under hostile adapters: each misbehaviour fails its own call within its
//! limit while a good adapter keeps answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnichat::channels::adapter::{ReceiveError, WebhookRequest};
use omnichat::plugins::fetch::{ChannelSecrets, Fetcher};
use omnichat::plugins::manifest::{MAX_MEMORY_LIMIT_MB, Manifest};
use omnichat::plugins::{ChannelCall, Plugin, PluginError, PluginRuntime};

const TIME_LIMIT_MS: u64 = 500;
const MEMORY_LIMIT_MB: u64 = 16;

fn new_runtime() -> PluginRuntime {
    PluginRuntime::new(Fetcher::new(false).expect("fetcher"), MAX_MEMORY_LIMIT_MB, None).expect("runtime")
}

/// The hostile fixture and the Telegram bot adapter, loaded side by side.
async fn runtime() -> (PluginRuntime, Arc<Plugin>, Arc<Plugin>) {
    let manifest = Manifest::parse(&format!(
        "[[plugin]]\nid = \"hostile\"\nchannel_type = \"HOSTILE\"\nsource = \"hostile.wasm\"\nmemory_limit_mb = {MEMORY_LIMIT_MB}\ntime_limit_ms = {TIME_LIMIT_MS}\n\n\
         [[plugin]]\nid = \"telegram-bot\"\nchannel_type = \"TELEGRAM_BOT\"\n"
    ))
    .expect("manifest");
    let runtime = new_runtime();
    let hostile = runtime
        .compile(manifest.plugins[0].clone(), omnichat::plugins::embedded::TEST_FIXTURE_HOSTILE, ChannelSecrets::default())
        .await
        .expect("the hostile fixture loads");
    let telegram = runtime
        .compile(manifest.plugins[1].clone(), omnichat::plugins::embedded::TELEGRAM_BOT, ChannelSecrets::default())
        .await
        .expect("the telegram adapter loads");
    (runtime, hostile, telegram)
}

fn call() -> ChannelCall {
    ChannelCall {
        tenant_id: uuid::Uuid::new_v4(),
        channel_id: uuid::Uuid::new_v4(),
        external_id: None,
        config: "{}".into(),
        secrets: ChannelSecrets::default(),
    }
}

fn request(body: &[u8]) -> WebhookRequest {
    WebhookRequest { method: "POST".into(), path: "/".into(), query: String::new(), headers: Vec::new(), body: body.to_vec() }
}

async fn messages(runtime: &PluginRuntime, plugin: &Plugin, body: &[u8]) -> Result<Result<usize, ReceiveError>, PluginError> {
    Ok(runtime.receive(plugin, call(), &request(body)).await?.map(|outcome| outcome.messages.len()))
}

async fn good_call(runtime: &PluginRuntime, telegram: &Plugin) -> usize {
    let update = omnichat_tests::telegram_text(1, 1, 1, "still here");
    let body = serde_json::to_vec(&update).expect("json");
    messages(runtime, telegram, &body).await.expect("the good plugin answers").expect("a message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_call_fails_alone_within_its_limit() {
    let (runtime, hostile, telegram) = runtime().await;
    assert_eq!(good_call(&runtime, &telegram).await, 1);
    assert_eq!(messages(&runtime, &hostile, b"ok").await.expect("runs").expect("fine"), 1);

    type Check = fn(&Result<Result<usize, ReceiveError>, PluginError>) -> bool;
    let cases: [(&[u8], Check); 4] = [
        (b"loop", |r| matches!(r, Err(PluginError::Timeout { .. }))),
        (b"alloc", |r| matches!(r, Err(PluginError::OutOfMemory { limit_mb: MEMORY_LIMIT_MB, .. }))),
        (b"trap", |r| matches!(r, Err(PluginError::Trap { .. }))),
        // The adapter's own error: the host refused the fetch, and the adapter said so.
        (b"fetch", |r| matches!(r, Ok(Err(ReceiveError::BadRequest(message))) if message.contains("Denied"))),
    ];
    for (body, check) in cases {
        let started = Instant::now();
        // The hostile call and a good call at the same time: the good one is not held up.
        let (hostile, good) = tokio::join!(messages(&runtime, &hostile, body), good_call(&runtime, &telegram));
        let name = String::from_utf8_lossy(body);
        assert!(check(&hostile), "{name}: {:?}", hostile.as_ref().map_err(ToString::to_string));
        assert_eq!(good, 1, "{name}: the good plugin still answers");
        assert!(started.elapsed() < Duration::from_millis(TIME_LIMIT_MS) * 10, "{name} took {:?}", started.elapsed());
    }
    // And afterwards everything still works.
    assert_eq!(good_call(&runtime, &telegram).await, 1);
    assert_eq!(messages(&runtime, &hostile, b"ok").await.expect("runs").expect("fine"), 1);
}

#[tokio::test]
async fn a_plugin_claiming_another_channel_type_is_refused_at_load() {
    let manifest =
        Manifest::parse("[[plugin]]\nid = \"liar\"\nchannel_type = \"FACEBOOK\"\nsource = \"liar.wasm\"\n").expect("manifest");
    let compiled = new_runtime()
        .compile(manifest.plugins[0].clone(), omnichat::plugins::embedded::TEST_FIXTURE_HOSTILE, ChannelSecrets::default())
        .await;
    let err = match compiled {
        Ok(_) => panic!("a plugin serving HOSTILE cannot be loaded as FACEBOOK"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("HOSTILE") && err.contains("FACEBOOK"), "{err}");
}

#[tokio::test]
async fn bytes_that_are_not_an_adapter_are_refused_with_a_reason() {
    let runtime = new_runtime();
    let err = runtime.inspect(b"\0asm not really").await.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(err.contains("not a valid component"), "{err}");
    // A core module is a valid wasm file, but not a component of the adapter world.
    let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    assert!(runtime.inspect(&module).await.is_err());
}
