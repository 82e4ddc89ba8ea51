//! The plugin author's path: `plugins/template` builds from its own folder (its own workspace,
//! the WIT copied beside it), its tests pass, and the component it gives loads in the host and
//! serves a channel of its type end to end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::{Db, id_of, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

fn cargo(root: &Path, args: &[&str]) {
    let template = root.join("plugins/template/Cargo.toml");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(args)
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&template)
        .env("CARGO_TARGET_DIR", root.join("target/template"));
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET"]
    {
        command.env_remove(var);
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "cargo {args:?} in plugins/template failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_builds_alone_and_its_component_serves_a_channel() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
    let build_root = root.clone();
    tokio::task::spawn_blocking(move || {
        cargo(&build_root, &["test", "--quiet"]);
        cargo(&build_root, &["build", "--release", "--target", "wasm32-wasip2"]);
    })
    .await
    .expect("builds");
    let component = root.join("target/template/wasm32-wasip2/release/omnichat_plugin_template.wasm");

    let fetcher = omnichat::plugins::fetch::Fetcher::new(true).expect("fetcher");
    let runtime = omnichat::plugins::PluginRuntime::new(fetcher, 64, None).expect("runtime");
    let plugin = runtime.inspect(&std::fs::read(&component).expect("the component")).await.expect("an adapter");
    assert_eq!((plugin.info.channel_type.as_str(), plugin.wit_version), ("EXAMPLE", "0.2.0"));
    let secret: Vec<&str> = plugin.info.config_schema.iter().filter(|f| f.secret).map(|f| f.name.as_str()).collect();
    assert_eq!(secret, ["webhookToken", "apiToken"]);

    let api = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(&component, dir.path().join("example.wasm")).expect("copy");
    let manifest = dir.path().join("plugins.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[plugin]]\nid = \"example\"\nchannel_type = \"EXAMPLE\"\nsource = \"example.wasm\"\napi_base_url = \"{}\"\n",
            api.base_url()
        ),
    )
    .expect("write");
    let app = spawn_app_with(Db::Sqlite, move |config| config.plugins_manifest = Some(manifest)).await;
    let owner = app.register("template@shop.io").await;
    let channel = app
        .create_channel(&owner, json!({"name": "Example", "type": "EXAMPLE", "config": {"webhookToken": "hook-1", "apiToken": "api-1", "greeting": "hi"}}))
        .await;
    assert_eq!(channel["config"], json!({"webhookToken": "********", "apiToken": "********", "greeting": "hi"}));
    let id = id_of(&channel);
    let webhook = |token: &'static str| {
        app.client
            .post(app.url(&format!("/api/webhooks/{id}")))
            .header("x-example-token", token)
            .json(&json!({"id": "msg-1", "from": {"id": "user-42", "name": "Ada"}, "text": "Hello", "timestamp": 1_700_000_000_000u64}))
            .send()
    };
    assert_eq!(webhook("wrong").await.expect("sent").status(), StatusCode::UNAUTHORIZED);
    let stored: serde_json::Value = webhook("hook-1").await.expect("sent").json().await.expect("json");
    assert_eq!(stored["stored"], 1, "{stored}");

    let conversation = id_of(&app.get("/api/conversations", &owner.access_token).await.body["data"][0]).to_string();
    let queued = app
        .post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": conversation, "text": "Hi Ada"}))
        .await;
    let message_id = queued.body["id"].as_str().expect("id").to_owned();
    app.message_with_status(&owner, &conversation, &message_id, "SENT").await;
    let sent = api.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(sent[0].path, "/messages");
    assert_eq!(sent[0].header("authorization"), Some("Bearer api-1"));
    assert_eq!(sent[0].header("idempotency-key"), Some(message_id.as_str()));
}
