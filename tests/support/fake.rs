//! A fake provider API (Telegram Bot API and Graph API shapes) on 127.0.0.1: it records every
//! request and answers from a script, then with success.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body as sent (what a signature covers).
    pub raw: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<(u16, Value)>>,
    delay: Mutex<Duration>,
    counter: AtomicU64,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake provider");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers, in order, before the default success.
    pub fn script(&self, answers: impl IntoIterator<Item = (u16, Value)>) {
        self.inner.script.lock().expect("lock").extend(answers);
    }

    /// Every answer waits this long (a slow provider).
    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().expect("lock") = delay;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Counted under the lock; cloned once, at the end (a bench records thousands).
            let arrived = self.inner.requests.lock().expect("lock").len();
            if arrived >= n || tokio::time::Instant::now() >= deadline {
                return self.requests();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(State(inner): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let delay = *inner.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    inner.requests.lock().expect("lock").push(Recorded {
        method: method.to_string(),
        headers: headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: body.clone(),
        raw: String::from_utf8_lossy(&raw).into_owned(),
    });
    let scripted = inner.script.lock().expect("lock").pop_front();
    // Provider message ids start well above the ones the tests use for inbound messages.
    let n = inner.counter.fetch_add(1, Ordering::SeqCst) + 1001;
    let (status, reply) = scripted.unwrap_or_else(|| {
        if uri.path().contains("/bot") {
            (200, json!({"ok": true, "result": {"message_id": n, "chat": {"id": body["chat_id"]}, "date": 1}}))
        } else {
            (200, json!({"recipient_id": body["recipient"]["id"], "message_id": format!("m_{n}")}))
        }
    });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(reply)).into_response()
}
