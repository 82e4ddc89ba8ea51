//! A real browser: Debian's chromium driven by playwright-core (tests/js/widget-browser.mjs for
//! the widget, tests/js/console-browser.mjs for the console), one command at a time. Screenshots
//! and the driver's output go to an output folder of the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser tests can run: chromium missing is a skip on a laptop and a failure in
/// CI (`CI` or `OMNICHAT_REQUIRE_POSTGRES` set, as `.ci/run` does), where `.ci/run` installs it.
pub fn available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() || std::env::var_os("OMNICHAT_REQUIRE_POSTGRES").is_some() {
        panic!("{CHROMIUM} is required here (apt-get install chromium)");
    }
    eprintln!("skipped: no {CHROMIUM}");
    false
}

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    pub out_dir: PathBuf,
}

impl Browser {
    /// Launches chromium with the widget's driver (`widget-browser.mjs`); screenshots and files
    /// go to `out_dir`.
    pub async fn launch(out_dir: PathBuf) -> Self {
        Self::launch_driver("widget-browser.mjs", out_dir).await
    }

    /// Launches chromium with the console's driver (`console-browser.mjs`: labels, roles, text).
    pub async fn launch_console(out_dir: PathBuf) -> Self {
        Self::launch_driver("console-browser.mjs", out_dir).await
    }

    async fn launch_driver(script: &str, out_dir: PathBuf) -> Self {
        std::fs::create_dir_all(&out_dir).expect("output folder");
        let mut child = Command::new("node")
            .arg(super::js_script(script, "playwright-core"))
            .arg(&out_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, stdin, stdout, next_id: 0, out_dir }
    }

    /// Runs one command (`{"cmd": ..., ...}`) and returns its answer, `ok` or not.
    pub async fn try_run(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let line = command.to_string() + "\n";
        self.stdin.write_all(line.as_bytes()).await.expect("write to the browser driver");
        self.stdin.flush().await.expect("flush");
        let answer = tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                let line = self.stdout.next_line().await.expect("driver output").expect("the browser driver exited");
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                if value["id"] == json!(id) {
                    return value;
                }
            }
        })
        .await;
        answer.unwrap_or_else(|_| panic!("the browser driver did not answer {command}"))
    }

    /// Runs one command that must succeed.
    pub async fn run(&mut self, command: Value) -> Value {
        let answer = self.try_run(command.clone()).await;
        assert_eq!(answer["ok"], true, "browser command {command} failed: {answer}");
        answer
    }

    pub async fn screenshot(&mut self, file: &str) -> PathBuf {
        let answer = self.run(json!({"cmd": "screenshot", "path": file})).await;
        PathBuf::from(answer["path"].as_str().expect("screenshot path"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
