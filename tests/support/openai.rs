//! A fake OpenAI-compatible server (`POST /v1/chat/completions`) on 127.0.0.1: it records every
//! request and answers scripted turns in order (a text, tool calls, or an error status), then a
//! default text. Every answer reports token usage, as OpenAI does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Turn {
    Text(String),
    /// (name, arguments) of each call.
    ToolCalls(Vec<(String, Value)>),
    Status(u16),
}

pub fn text(content: &str) -> Turn {
    Turn::Text(content.to_owned())
}

pub fn call(name: &str, arguments: Value) -> Turn {
    Turn::ToolCalls(vec![(name.to_owned(), arguments)])
}

#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub authorization: Option<String>,
    pub body: Value,
}

impl ModelRequest {
    /// The `content` of each message, by role, in order.
    pub fn contents(&self, role: &str) -> Vec<String> {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == role)
            .map(|m| m["content"].as_str().map(str::to_owned).unwrap_or_else(|| m["content"].to_string()))
            .collect()
    }

    pub fn system_prompt(&self) -> String {
        self.contents("system").join("\n")
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<ModelRequest>>,
    script: Mutex<VecDeque<Turn>>,
    default_status: Mutex<Option<u16>>,
    delay: Mutex<Duration>,
    counter: AtomicU64,
}

#[derive(Clone)]
pub struct FakeModel {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

/// Tokens each answer reports.
pub const PROMPT_TOKENS: u64 = 20;
pub const COMPLETION_TOKENS: u64 = 7;

impl FakeModel {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new().route("/v1/chat/completions", post(answer)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake model");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    /// The base URL an OpenAI client takes (with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn script(&self, turns: impl IntoIterator<Item = Turn>) {
        self.inner.script.lock().expect("lock").extend(turns);
    }

    /// Every unscripted answer is this status (an outage), or the default text again (`None`).
    pub fn fail_always(&self, status: Option<u16>) {
        *self.inner.default_status.lock().expect("lock") = status;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().expect("lock") = delay;
    }

    pub fn requests(&self) -> Vec<ModelRequest> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<ModelRequest> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inner.requests.lock().expect("lock").len();
            if arrived >= n || tokio::time::Instant::now() >= deadline {
                return self.requests();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.requests.lock().expect("lock").push(ModelRequest {
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: body.clone(),
    });
    let delay = *inner.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let n = inner.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let turn =
        inner.script.lock().expect("lock").pop_front().unwrap_or_else(|| match *inner.default_status.lock().expect("lock") {
            Some(status) => Turn::Status(status),
            None => Turn::Text(format!("default reply {n}")),
        });
    let message = match turn {
        Turn::Status(status) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error =
                json!({"error": {"message": format!("scripted {status}"), "type": "server_error", "param": null, "code": null}});
            return (code, axum::Json(error)).into_response();
        }
        Turn::Text(content) => json!({"role": "assistant", "content": content}),
        Turn::ToolCalls(calls) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": calls.iter().enumerate().map(|(i, (name, arguments))| json!({
                "id": format!("call_{n}_{i}"),
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            })).collect::<Vec<_>>(),
        }),
    };
    let finish = if message["tool_calls"].is_array() { "tool_calls" } else { "stop" };
    axum::Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }))
    .into_response()
}
