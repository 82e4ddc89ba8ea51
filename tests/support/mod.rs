//! Test support: a fresh database per test (a temp SQLite file, or a randomly named PostgreSQL
//! database), the real host served on port 0, and an HTTP client that speaks to it as an inbox UI does.

pub mod bench;
pub mod browser;
pub mod fake;
pub mod openai;
pub mod postgres;
pub mod redis;
pub mod socket;
pub mod telegram;
pub mod whatsapp;
pub mod widget;

use std::net::SocketAddr;
use std::sync::OnceLock;

use omnichat::store::Store;
use omnichat::{AppState, Config, Connectors};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The server tests create their PostgreSQL databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("OMNICHAT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether tests on `db` can run. PostgreSQL missing is a skip on a laptop and a failure in CI
/// (`CI` or `OMNICHAT_REQUIRE_POSTGRES` set).
pub fn available(db: Db) -> bool {
    if db == Db::Sqlite {
        return true;
    }
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    let reachable = *REACHABLE.get_or_init(|| {
        let url = postgres_admin_url();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let pool = sqlx::PgPool::connect(&url).await.ok()?;
                pool.close().await;
                Some(())
            })
        })
        .join()
        .ok()
        .flatten()
        .is_some()
    });
    let required = std::env::var_os("CI").is_some() || std::env::var_os("OMNICHAT_REQUIRE_POSTGRES").is_some();
    if !reachable && required {
        panic!("PostgreSQL is required here but {} does not answer", postgres_admin_url());
    }
    if !reachable {
        eprintln!("skipped: PostgreSQL at {} does not answer", postgres_admin_url());
    }
    reachable
}

/// Runs a scenario `async fn name(db: Db)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Db::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::available($crate::Db::Postgres) {
                    super::$name($crate::Db::Postgres).await
                }
            }
        }
    )+};
}

/// A script of `tests/js`, its npm dependencies installed first (`npm ci`, once per run) when
/// `package` is missing.
pub fn js_script(name: &str, package: &str) -> std::path::PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("node_modules").join(package).exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (is Node.js installed?)");
        assert!(status.success(), "npm ci in tests/js failed");
    }
    dir.join(name)
}

/// A database of its own for one test; dropped with it.
pub struct TestDb {
    pub url: String,
    pub db: Db,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match db {
            Db::Sqlite => Self { url: format!("sqlite://{}", dir.path().join("omnichat.db").display()), db, dir, pg_name: None },
            Db::Postgres => {
                let name = format!("omnichat_test_{}", Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin).to_owned();
                Self { url: format!("{base}/{name}"), db, dir, pg_name: Some(name) }
            }
        }
    }

    /// A PostgreSQL database the test manages itself (nothing is dropped here).
    pub fn external(url: String) -> Self {
        Self { url, db: Db::Postgres, dir: tempfile::tempdir().expect("temp dir"), pg_name: None }
    }

    /// The store itself, created (and migrated) on this database.
    pub async fn store(&self) -> std::sync::Arc<dyn Store> {
        let store = omnichat::store::connect(&self.url).await.expect("connect store");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Drop runs outside any runtime we may block: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let pool = sqlx::PgPool::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.ok()?;
                pool.close().await;
                Some(())
            })
        })
        .join();
    }
}

/// For benchmarks: warnings to stderr and nothing else, installed before any host starts, so
/// the tests' in-memory log capture (`telemetry::init_for_tests`) does not cost them CPU.
pub fn quiet_logs() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The host, serving on 127.0.0.1 on a port of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(TestDb::new(db), configure, Connectors::default()).await
}

/// A host whose native bridges talk to the given (scripted) provider clients.
pub async fn spawn_app_with_connectors(db: Db, configure: impl FnOnce(&mut Config), connectors: Connectors) -> TestApp {
    spawn_app_on(TestDb::new(db), configure, connectors).await
}

/// A second host on the database of `other` (another replica): it never drops that database.
pub async fn spawn_replica(other: &TestApp, configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_replica_with_connectors(other, configure, Connectors::default()).await
}

pub async fn spawn_replica_with_connectors(
    other: &TestApp,
    configure: impl FnOnce(&mut Config),
    connectors: Connectors,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_on(TestDb { url: other.db.url.clone(), db: other.db.db, dir, pg_name: None }, configure, connectors).await
}

/// A host on the given database.
pub async fn spawn_app_on(test_db: TestDb, configure: impl FnOnce(&mut Config), connectors: Connectors) -> TestApp {
    omnichat::telemetry::init_for_tests();
    let mut config = Config::for_tests(&test_db.url, test_db.dir.path());
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let state = omnichat::build_with(config, connectors).await.expect("build app");
    let (tx, rx) = oneshot::channel::<()>();
    let serving = state.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        if let Err(err) = omnichat::serve(listener, serving, shutdown).await {
            eprintln!("server stopped: {err:#}");
        }
    });
    TestApp { addr, state, client: http_client(), db: test_db, shutdown: Some(tx) }
}

impl TestApp {
    /// Shuts the host down gracefully (as SIGTERM does); the database stays for replicas.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client for tests (with the process's TLS crypto provider installed).
pub fn http_client() -> reqwest::Client {
    omnichat::plugins::fetch::install_crypto_provider();
    reqwest::Client::new()
}

/// A response as a test reads it: status, headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of a `{"error":{"code","message"}}` body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }
}

/// A signed-in user: its tokens and ids.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
}

impl Session {
    pub fn from_auth(body: &Value) -> Self {
        Self {
            access_token: body["accessToken"].as_str().expect("accessToken").to_owned(),
            refresh_token: body["refreshToken"].as_str().expect("refreshToken").to_owned(),
            user_id: body["user"]["id"].as_str().expect("user.id").to_owned(),
            tenant_id: body["tenant"]["id"].as_str().expect("tenant.id").to_owned(),
            email: body["user"]["email"].as_str().expect("user.email").to_owned(),
        }
    }
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let reply = reply(response).await;
        assert!(!reply.body.is_string(), "{} body is not JSON: {}", reply.status, reply.body);
        reply
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a new tenant whose owner is `email`.
    pub async fn register(&self, email: &str) -> Session {
        let reply = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Owner", "tenantName": "Acme"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "register {email}: {}", reply.body);
        Session::from_auth(&reply.body)
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/api/auth/login", None, json!({"email": email, "password": password})).await
    }

    /// Creates a channel as `session` and returns its JSON.
    pub async fn create_channel(&self, session: &Session, body: Value) -> Value {
        let reply = self.post("/api/channels", Some(&session.access_token), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "create channel: {}", reply.body);
        reply.body
    }
}

impl TestDb {
    /// Every text the database holds where an error or a secret could land: queue errors,
    /// message errors, texts and raw events, channel configs and status reasons.
    pub async fn raw_dump(&self) -> String {
        let (queue, messages, channels) = match self.db {
            Db::Sqlite => (
                "SELECT COALESCE(last_error, '') FROM channel_message_queue",
                "SELECT COALESCE(error, '') || COALESCE(text, '') || COALESCE(raw, '') FROM messages",
                "SELECT config || COALESCE(status_reason, '') || metadata FROM channel_instances",
            ),
            Db::Postgres => (
                "SELECT COALESCE(last_error, '') FROM channel_message_queue",
                "SELECT COALESCE(error, '') || COALESCE(text, '') || COALESCE(raw::text, '') FROM messages",
                "SELECT config::text || COALESCE(status_reason, '') || metadata::text FROM channel_instances",
            ),
        };
        let mut dump = String::new();
        for sql in [queue, messages, channels] {
            dump.extend(self.raw_texts(sql).await.into_iter().map(|row| row + "\n"));
        }
        dump
    }

    /// The text column of each row `sql` selects, read past the store.
    pub async fn raw_texts(&self, sql: &'static str) -> Vec<String> {
        match self.db {
            Db::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                sqlx::query_scalar(sql).fetch_all(&pool).await.expect("raw read")
            }
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("postgres");
                sqlx::query_scalar(sql).fetch_all(&pool).await.expect("raw read")
            }
        }
    }

    /// A channel's stored configuration exactly as the database holds it.
    pub async fn raw_channel_config(&self, channel_id: Uuid) -> String {
        match self.db {
            Db::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                sqlx::query_scalar("SELECT config FROM channel_instances WHERE id = $1")
                    .bind(channel_id)
                    .fetch_one(&pool)
                    .await
                    .expect("channel row")
            }
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("postgres");
                sqlx::query_scalar("SELECT config::text FROM channel_instances WHERE id = $1")
                    .bind(channel_id)
                    .fetch_one(&pool)
                    .await
                    .expect("channel row")
            }
        }
    }
}

/// The id of a JSON object, as a UUID.
pub fn id_of(value: &Value) -> Uuid {
    value["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {value}"))
}

impl TestApp {
    /// Delivers a Telegram update to a bot channel's webhook.
    pub async fn telegram_update(&self, channel_id: &str, update: &Value, secret_token: Option<&str>) -> Reply {
        let mut request = self.client.post(self.url(&format!("/api/telegram/bot/webhook/{channel_id}"))).json(update);
        if let Some(secret) = secret_token {
            request = request.header("x-telegram-bot-api-secret-token", secret);
        }
        reply(request.send().await.expect("webhook sent")).await
    }

    /// Delivers a Messenger webhook body, signed with `app_secret` (or with a given signature).
    pub async fn facebook_delivery(&self, body: &Value, app_secret: &str, signature: Option<&str>) -> Reply {
        use hmac::Mac;
        let bytes = serde_json::to_vec(body).expect("json");
        let signature = match signature {
            Some(signature) => signature.to_owned(),
            None => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("key");
                mac.update(&bytes);
                format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
            }
        };
        let request = self
            .client
            .post(self.url("/api/facebook/webhook"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(bytes);
        reply(request.send().await.expect("webhook sent")).await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply { status, headers, body }
}

/// A Telegram private-chat text message update from user `user_id`.
pub fn telegram_text(update_id: i64, message_id: i64, user_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Bob"},
            "from": {"id": user_id, "is_bot": false, "first_name": "Bob", "last_name": "Builder", "username": "bob"},
            "text": text
        }
    })
}

/// Polls `check` until it returns `Some`, or panics after `within` with `what`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    within: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

impl TestApp {
    /// The conversation a customer's first Telegram message opened, as JSON.
    pub async fn telegram_conversation(&self, session: &Session, channel_id: &str, user_id: i64) -> Value {
        let reply = self.telegram_update(channel_id, &telegram_text(user_id, 1, user_id, "hi"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let list = self.get(&format!("/api/conversations?channelInstanceId={channel_id}&limit=100"), &session.access_token).await;
        list.body["data"]
            .as_array()
            .and_then(|all| {
                all.iter().find(|c| c["externalConversationId"].as_str() == Some(user_id.to_string().as_str())).cloned()
            })
            .expect("the conversation")
    }

    /// A message as the API shows it now.
    pub async fn message(&self, session: &Session, conversation_id: &str, message_id: &str) -> Option<Value> {
        let page = self.get(&format!("/api/conversations/{conversation_id}/messages?limit=100"), &session.access_token).await;
        page.body["data"].as_array()?.iter().find(|m| m["id"] == message_id).cloned()
    }

    /// Waits until a message reaches `status` (SENT, FAILED) and returns it.
    pub async fn message_with_status(&self, session: &Session, conversation_id: &str, message_id: &str, status: &str) -> Value {
        eventually(std::time::Duration::from_secs(20), &format!("message {message_id} to be {status}"), || async {
            self.message(session, conversation_id, message_id).await.filter(|m| m["status"] == status)
        })
        .await
    }
}
