//! A real npm `socket.io-client`, driven as a child process (tests/js/socket-client.mjs).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub struct SocketClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Everything received so far, in order.
    pub seen: Vec<Value>,
}

/// The client script (its npm dependencies installed on first use).
fn script() -> PathBuf {
    super::js_script("socket-client.mjs", "socket.io-client")
}

impl SocketClient {
    /// Connects with `token` (`None`: no token) and joins `channels` in order.
    pub async fn connect(base_url: &str, token: Option<&str>, channels: &[&str]) -> Self {
        Self::connect_to("/", None, base_url, token, channels).await
    }

    /// A website visitor's socket: the `/widget` namespace, from a page on `origin`.
    pub async fn visitor(base_url: &str, token: &str, origin: &str) -> Self {
        Self::connect_to("/widget", Some(origin), base_url, Some(token), &[]).await
    }

    /// Like [`connect`](Self::connect), over HTTP long-polling only.
    pub async fn polling(base_url: &str, token: Option<&str>, channels: &[&str]) -> Self {
        Self::over("polling", base_url, token, channels).await
    }

    /// Like [`connect`](Self::connect), over `transports` as socket.io-client takes them, comma
    /// separated: `websocket`, `polling`, or `polling,websocket` (starts polling, then upgrades).
    pub async fn over(transports: &str, base_url: &str, token: Option<&str>, channels: &[&str]) -> Self {
        Self::spawn("/", None, transports, base_url, token, channels).await
    }

    pub async fn connect_to(
        namespace: &str,
        origin: Option<&str>,
        base_url: &str,
        token: Option<&str>,
        channels: &[&str],
    ) -> Self {
        Self::spawn(namespace, origin, "websocket", base_url, token, channels).await
    }

    async fn spawn(
        namespace: &str,
        origin: Option<&str>,
        transport: &str,
        base_url: &str,
        token: Option<&str>,
        channels: &[&str],
    ) -> Self {
        let mut command = Command::new("node");
        command.env("NAMESPACE", namespace).env("TRANSPORT", transport);
        if let Some(origin) = origin {
            command.env("ORIGIN", origin);
        }
        let mut child = command
            .arg(script())
            .arg(base_url)
            .arg(token.unwrap_or("-"))
            .args(channels)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (is Node.js installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        Self { child, stdin, lines, seen: Vec::new() }
    }

    /// Emits `event` with `payload`; with `ack`, the reply arrives as an `ack` line.
    pub async fn emit(&mut self, event: &str, payload: Value, ack: bool) {
        let line = serde_json::json!({"emit": event, "payload": payload, "ack": ack}).to_string() + "\n";
        let stdin = self.stdin.as_mut().expect("the client's stdin");
        stdin.write_all(line.as_bytes()).await.expect("write to the socket client");
        stdin.flush().await.expect("flush");
    }

    /// The next line of any type, or `None` after `wait`.
    pub async fn next_line(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.recv()).await.ok().flatten()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// The next line of `type` (skipping others, which stay in `seen`), or `None` after `wait`.
    pub async fn next(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv()).await.ok().flatten()?;
            self.seen.push(line.clone());
            if line["type"] == kind {
                return Some(line);
            }
            if line["type"] == "connect_error" && kind != "connect_error" {
                return None;
            }
        }
    }

    /// Waits for the client to have connected and joined its channels; returns the join acks.
    pub async fn ready(&mut self) -> Vec<Value> {
        self.next("ready", Duration::from_secs(20)).await.unwrap_or_else(|| panic!("socket not ready: {:?}", self.seen));
        self.seen.iter().filter(|l| l["type"] == "ack").map(|l| l["reply"].clone()).collect()
    }

    /// The next event called `name`.
    pub async fn event(&mut self, name: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.next("event", remaining).await?;
            if line["name"] == name {
                return Some(line["payload"].clone());
            }
        }
    }

    /// Every event called `name` that arrives within `wait`.
    pub async fn events_within(&mut self, name: &str, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut found = Vec::new();
        while let Some(event) = self.event(name, deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            found.push(event);
        }
        found
    }
}

impl Drop for SocketClient {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
