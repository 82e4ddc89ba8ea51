//! The binary as a newcomer runs it: no configuration, `migrate`, and bad configuration.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn omnichat(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omnichat"));
    command.current_dir(dir).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("LOG_FORMAT", "json");
    command
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_no_configuration_it_serves_on_sqlite_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = omnichat(dir.path()).env("PORT", "0").stderr(Stdio::piped()).spawn().expect("start omnichat");
    let stdout = child.stderr.take().expect("stderr");
    let server = Server(child);

    // The log announces the bound address; read until it does.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut warned_about_secret = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            warned_about_secret |= event["message"].as_str().is_some_and(|m| m.starts_with("JWT_SECRET is not set"));
            if event["message"] == "omnichat listening" {
                let _ = tx.send((event["addr"].as_str().unwrap_or_default().to_owned(), warned_about_secret));
            }
        }
    });
    let (addr, warned_about_secret) = rx.recv_timeout(Duration::from_secs(60)).expect("omnichat announced its address");
    let port = addr.rsplit(':').next().expect("port");
    assert!(warned_about_secret, "a generated JWT secret is logged as a warning");

    omnichat::plugins::fetch::install_crypto_provider();
    let health: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/health")).await.expect("health answers").json().await.expect("json");
    assert_eq!(health["db"], "up");
    assert!(dir.path().join("data/omnichat.db").exists());
    let secret = std::fs::read_to_string(dir.path().join("data/jwt_secret")).expect("secret kept in the data dir");
    assert!(secret.len() >= 32);
    drop(server);
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = omnichat(dir.path()).arg("migrate").env("OMNICHAT_DATA_DIR", "state").status().expect("run migrate");
    assert!(status.success());
    assert!(dir.path().join("state/omnichat.db").exists());
}

#[test]
fn a_bad_setting_stops_start_up_with_a_message_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, value) in [("DATABASE_URL", "mysql://localhost/x"), ("PORT", "eighty"), ("JWT_REFRESH_TTL", "forever")] {
        let output = omnichat(dir.path()).arg("migrate").env(name, value).output().expect("run");
        assert!(!output.status.success(), "{name}={value} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn plugins_list_shows_the_built_in_adapters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = omnichat(dir.path()).args(["plugins", "list"]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in ["telegram-bot", "TELEGRAM_BOT", "api.telegram.org", "facebook", "FACEBOOK", "graph.facebook.com"] {
        assert!(stdout.contains(expected), "{expected} missing from:\n{stdout}");
    }
}

#[test]
fn an_unknown_key_in_plugins_toml_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("plugins.toml"),
        "[[plugin]]\nid = \"telegram-bot\"\nchannel_type = \"TELEGRAM_BOT\"\nmemory = 5\n",
    )
    .expect("write");
    let output = omnichat(dir.path()).args(["plugins", "list"]).output().expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("memory"), "{stderr}");
}

#[test]
fn plugins_check_describes_a_component_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("telegram.wasm"), omnichat::plugins::embedded::TELEGRAM_BOT).expect("write");
    std::fs::write(dir.path().join("legacy.wasm"), omnichat::plugins::embedded::TEST_FIXTURE_LEGACY_V01).expect("write");
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm, or so it claims").expect("write");

    let checked = omnichat(dir.path()).args(["plugins", "check", "telegram.wasm"]).output().expect("run check");
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{shown}{}", String::from_utf8_lossy(&checked.stderr));
    for expected in [
        "omnichat:channel@0.2.0",
        "TELEGRAM_BOT",
        "botToken",
        "required, secret",
        "per-channel at /api/webhooks/{channelInstanceId}",
        "omnichat:channel/host@0.2.0",
    ] {
        assert!(shown.contains(expected), "{expected} missing from:\n{shown}");
    }

    let legacy = omnichat(dir.path()).args(["plugins", "check", "legacy.wasm"]).output().expect("run check");
    let shown = String::from_utf8_lossy(&legacy.stdout);
    assert!(legacy.status.success() && shown.contains("omnichat:channel@0.1.0") && shown.contains("LEGACY"), "{shown}");

    for (file, reason) in [("broken.wasm", "not a valid component"), ("missing.wasm", "cannot read")] {
        let refused = omnichat(dir.path()).args(["plugins", "check", file]).output().expect("run check");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{file} must be refused");
        assert!(said.contains(reason), "{file}: {said}");
    }
}
