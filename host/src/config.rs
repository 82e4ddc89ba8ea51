//! Typed configuration, loaded once at start: defaults, then the environment (the seed's names).
//! A bad value is a start-up error that names the variable. Secrets never reach a log.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::SecretKey;

#[derive(Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// Allowed browser origins; empty means any origin (without credentials).
    pub cors_origins: Vec<String>,
    pub socket_path: String,
    /// Packets a Socket.IO connection may have waiting before it is disconnected.
    pub socket_buffer: usize,
    /// How often the server pings each Socket.IO connection (`OMNICHAT_SOCKET_PING_INTERVAL`, 25s).
    pub socket_ping_interval: Duration,
    /// How long a connection may take to answer a ping before it is closed
    /// (`OMNICHAT_SOCKET_PING_TIMEOUT`, 20s).
    pub socket_ping_timeout: Duration,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub jwt: JwtConfig,
    /// Encrypts secret channel configuration at rest.
    pub secret_key: SecretKey,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    pub providers: ProviderConfig,
    pub queue: QueueConfig,
    pub bridges: BridgeConfig,
    /// plugins.toml; `None` loads the built-in adapters with their defaults.
    pub plugins_manifest: Option<PathBuf>,
    /// `OMNICHAT_PUBLIC_URL`: where providers reach this host (`https://chat.example.com`);
    /// with it, connecting a channel registers its webhook with the provider.
    pub public_url: Option<String>,
    pub visitors: VisitorConfig,
    pub agents: AgentConfig,
    pub webhooks: WebhookConfig,
    /// `OMNICHAT_METRICS_TOKEN`: when set, `GET /metrics` wants it as a bearer token.
    pub metrics_token: Option<SecretString>,
    /// `REDIS_URL`: replicas share Socket.IO events through this Redis (it may carry a password).
    pub redis_url: Option<SecretString>,
    /// `OMNICHAT_REDIS_PREFIX` (default `omnichat`): prefixes the Redis channels, so clusters can
    /// share one Redis.
    pub redis_prefix: String,
}

/// Outgoing webhooks: the dispatcher that delivers tenants' subscriptions.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Run the dispatcher in this process (`OMNICHAT_WEBHOOK_WORKER`, default true).
    pub worker: bool,
    /// One request's limit, connect to last byte (`OMNICHAT_WEBHOOK_TIMEOUT`, 10s).
    pub timeout: Duration,
    /// Attempts before a delivery is DEAD (`OMNICHAT_WEBHOOK_MAX_ATTEMPTS`, 10).
    pub max_attempts: i32,
    /// First retry delay; it doubles per attempt up to an hour, with jitter (`OMNICHAT_WEBHOOK_BACKOFF`, 10s).
    pub base_backoff: Duration,
    /// Failed attempts in a row (any delivery) after which a subscription is switched off
    /// (`OMNICHAT_WEBHOOK_DISABLE_AFTER`, 50).
    pub disable_after: i32,
    /// Deliveries in flight at once (`OMNICHAT_WEBHOOK_CONCURRENCY`, 16).
    pub concurrency: usize,
    /// How long a claimed delivery or event stays leased (`OMNICHAT_WEBHOOK_LEASE`, 60s): a
    /// crashed replica's deliveries are sent again once it runs out.
    pub lease: Duration,
    /// How often an idle dispatcher looks for work (changes this process makes wake it at once).
    pub poll_interval: Duration,
}

/// The AI agents' runner and the model provider it calls by default.
#[derive(Clone)]
pub struct AgentConfig {
    /// Run the agent runner in this process (`OMNICHAT_AGENT_RUNNER`, default true).
    pub runner: bool,
    /// `OPENAI_API_KEY`: the key of agents that have none of their own.
    pub openai_api_key: Option<SecretString>,
    /// `OPENAI_BASE_URL` (with `/v1`): any OpenAI-compatible server (Ollama, vLLM, a proxy).
    /// `None`: OpenAI itself. The operator's URL may be private; an agent's own `baseUrl` may not
    /// (unless `OMNICHAT_ALLOW_PRIVATE_FETCH`).
    pub openai_base_url: Option<String>,
    /// Tokens a tenant's agents may use per UTC day (`OMNICHAT_AGENT_DAILY_TOKENS`; `None`: unlimited).
    pub daily_tokens: Option<u64>,
    /// One model call's limit (`OMNICHAT_AGENT_MODEL_TIMEOUT`, 60s).
    pub model_timeout: Duration,
    /// Failed model calls (timeouts, 5xx, 429) before the conversation goes to a human
    /// (`OMNICHAT_AGENT_MAX_ATTEMPTS`, 4).
    pub max_attempts: i32,
    /// First retry delay; it doubles per attempt, with jitter (`OMNICHAT_AGENT_BACKOFF`, 2s).
    pub base_backoff: Duration,
    /// How long a claimed job stays leased to its runner (`OMNICHAT_AGENT_LEASE`, 5m).
    pub lease: Duration,
    /// Agent turns in flight at once (`OMNICHAT_AGENT_CONCURRENCY`, 16).
    pub concurrency: usize,
    /// How often an idle runner looks for due jobs (new messages wake it at once).
    pub poll_interval: Duration,
}

/// The outbound queue's worker.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Run a worker in this process (`OMNICHAT_QUEUE_WORKER`, default true).
    pub worker: bool,
    /// Deliveries in flight at once, over all channels.
    pub concurrency: usize,
    /// Deliveries in flight at once on one channel, so a slow channel cannot starve the others.
    pub per_channel: usize,
    /// Attempts before a job is DEAD.
    pub max_attempts: i32,
    /// First retry delay; it doubles per attempt (with jitter) up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a claimed job stays leased to its worker; a crashed worker's jobs are due after it.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs (new sends wake it at once).
    pub poll_interval: Duration,
}

/// The visitor transport (the website widget): its limits per visitor and per address.
#[derive(Debug, Clone)]
pub struct VisitorConfig {
    /// Messages (and uploads) one visitor may post per minute (`OMNICHAT_WIDGET_MESSAGES_PER_MINUTE`, 60).
    pub messages_per_minute: u32,
    /// Sessions one IP address may open per minute (`OMNICHAT_WIDGET_SESSIONS_PER_MINUTE`, 30).
    pub sessions_per_minute: u32,
    /// Visitor API requests one IP address may make per minute
    /// (`OMNICHAT_WIDGET_REQUESTS_PER_MINUTE`, 600).
    pub requests_per_minute: u32,
    /// The largest upload (`OMNICHAT_WIDGET_MAX_UPLOAD_BYTES`, 10 MiB).
    pub max_upload_bytes: usize,
    /// Take the client address from the last `X-Forwarded-For` hop (`OMNICHAT_TRUST_FORWARDED_FOR`):
    /// only behind a reverse proxy that sets it.
    pub trust_forwarded_for: bool,
}

/// The native bridges (Telegram user accounts; WhatsApp).
#[derive(Clone)]
pub struct BridgeConfig {
    /// `TELEGRAM_API_ID` / `TELEGRAM_API_HASH` from my.telegram.org; user logins need both.
    pub telegram_api: Option<(i32, SecretString)>,
    /// How long a pending Telegram login (code sent, not yet confirmed) is kept.
    pub telegram_login_ttl: Duration,
    /// How long a replica's lease on a live session lasts; it renews at a third of that.
    pub lease: Duration,
    /// How often the bridges look for sessions to start (and renew their leases).
    pub supervise_interval: Duration,
    /// How often a replica running sessions looks for work other replicas ask of them (a pair
    /// code, a download, a logout: `OMNICHAT_BRIDGE_REQUEST_POLL`, default 250ms).
    pub request_poll: Duration,
    /// Run the bridges' session supervisors in this process (`OMNICHAT_BRIDGES`, default true).
    pub enabled: bool,
}

/// Where the external providers are, and what the host holds for them.
#[derive(Clone)]
pub struct ProviderConfig {
    pub telegram_api_base_url: String,
    pub facebook_graph_base_url: String,
    /// Answers Facebook's webhook verification (`hub.verify_token`).
    pub facebook_verify_token: Option<SecretString>,
    /// Signs Facebook webhooks for pages whose channel config has no `appSecret`.
    pub facebook_app_secret: Option<SecretString>,
    /// Lets plugins fetch loopback and private addresses (tests, self-hosted proxies).
    pub allow_private_fetch: bool,
}

#[derive(Clone)]
pub struct JwtConfig {
    pub access_secret: SecretString,
    pub refresh_secret: SecretString,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Website visitors' tokens (`OMNICHAT_VISITOR_TOKEN_TTL`, 1h): the widget renews them.
    pub visitor_ttl: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("cors_origins", &self.cors_origins)
            .field("socket_path", &self.socket_path)
            .field("socket_buffer", &self.socket_buffer)
            .field("socket_ping_interval", &self.socket_ping_interval)
            .field("socket_ping_timeout", &self.socket_ping_timeout)
            .field("database", &redact_url(&self.database_url))
            .field("redis", &self.redis_url.as_ref().map(|url| redact_url(url.expose_secret())))
            .field("data_dir", &self.data_dir)
            .field("access_ttl", &self.jwt.access_ttl)
            .field("refresh_ttl", &self.jwt.refresh_ttl)
            .field("telegram_api_base_url", &self.providers.telegram_api_base_url)
            .field("facebook_graph_base_url", &self.providers.facebook_graph_base_url)
            .field("allow_private_fetch", &self.providers.allow_private_fetch)
            .field("telegram_api_id", &self.bridges.telegram_api.as_ref().map(|(id, _)| id))
            .field("bridge_lease", &self.bridges.lease)
            .field("plugins_manifest", &self.plugins_manifest)
            .field("openai_base_url", &self.agents.openai_base_url)
            .field("openai_api_key_set", &self.agents.openai_api_key.is_some())
            .field("agent_daily_tokens", &self.agents.daily_tokens)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads the process environment; creates the data directory and any generated secret.
    pub fn load() -> anyhow::Result<Self> {
        Self::from_env(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let data_dir = PathBuf::from(var("OMNICHAT_DATA_DIR").unwrap_or_else(|| "./data".into()));
        std::fs::create_dir_all(&data_dir).with_context(|| format!("OMNICHAT_DATA_DIR: cannot create {}", data_dir.display()))?;

        let port = match var("PORT") {
            Some(p) => p.trim().parse().with_context(|| format!("PORT: {p:?} is not a port number"))?,
            None => 3001,
        };
        let host = match var("HOST") {
            Some(h) => h.trim().parse().with_context(|| format!("HOST: {h:?} is not an IP address"))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };

        let database_url = match var("DATABASE_URL") {
            Some(url) => {
                url.parse::<crate::store::Backend>().map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
                url
            }
            None => format!("sqlite://{}", data_dir.join("omnichat.db").display()),
        };

        let access_secret = match var("JWT_SECRET") {
            Some(secret) => secret,
            None => {
                let path = data_dir.join("jwt_secret");
                let secret = read_or_generate(&path, || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>()))?;
                tracing::warn!(path = %path.display(), "JWT_SECRET is not set: using the generated secret kept in the data dir (set JWT_SECRET when running several replicas)");
                secret
            }
        };
        let refresh_secret = var("JWT_REFRESH_SECRET").unwrap_or_else(|| access_secret.clone());

        let secret_key = match var("OMNICHAT_SECRET_KEY") {
            Some(key) => SecretKey::parse(&key).context("OMNICHAT_SECRET_KEY")?,
            None => {
                let path = data_dir.join("secret_key");
                let encoded = read_or_generate(&path, || STANDARD.encode(rand::random::<[u8; 32]>()))?;
                tracing::warn!(path = %path.display(), "OMNICHAT_SECRET_KEY is not set: channel secrets are encrypted with the generated key kept in the data dir");
                SecretKey::parse(&encoded).with_context(|| format!("{} is corrupt", path.display()))?
            }
        };

        let cors_origins = var("CORS_ORIGIN")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty() && o != "*")
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                bail!("CORS_ORIGIN: {origin:?} is not an origin like https://inbox.example.com");
            }
        }

        let socket_path = var("SOCKET_PATH").unwrap_or_else(|| "/socket.io".into());
        if !socket_path.starts_with('/') {
            bail!("SOCKET_PATH: {socket_path:?} must start with '/'");
        }

        Ok(Self {
            host,
            port,
            cors_origins,
            socket_path,
            socket_buffer: number("OMNICHAT_SOCKET_BUFFER", var("OMNICHAT_SOCKET_BUFFER"), crate::realtime::SOCKET_BUFFER)?,
            socket_ping_interval: ping_setting("OMNICHAT_SOCKET_PING_INTERVAL", var("OMNICHAT_SOCKET_PING_INTERVAL"), "25s")?,
            socket_ping_timeout: ping_setting("OMNICHAT_SOCKET_PING_TIMEOUT", var("OMNICHAT_SOCKET_PING_TIMEOUT"), "20s")?,
            database_url,
            jwt: JwtConfig {
                access_secret: access_secret.into(),
                refresh_secret: refresh_secret.into(),
                access_ttl: parse_ttl("JWT_ACCESS_TTL", var("JWT_ACCESS_TTL"), "15m")?,
                refresh_ttl: parse_ttl("JWT_REFRESH_TTL", var("JWT_REFRESH_TTL"), "30d")?,
                visitor_ttl: parse_ttl("OMNICHAT_VISITOR_TOKEN_TTL", var("OMNICHAT_VISITOR_TOKEN_TTL"), "1h")?,
            },
            secret_key,
            body_limit: match var("OMNICHAT_BODY_LIMIT") {
                Some(v) => v.trim().parse().with_context(|| format!("OMNICHAT_BODY_LIMIT: {v:?} is not a byte count"))?,
                None => 2 * 1024 * 1024,
            },
            providers: ProviderConfig {
                telegram_api_base_url: base_url(
                    "TELEGRAM_API_BASE_URL",
                    var("TELEGRAM_API_BASE_URL"),
                    "https://api.telegram.org",
                )?,
                facebook_graph_base_url: base_url(
                    "FACEBOOK_GRAPH_BASE_URL",
                    var("FACEBOOK_GRAPH_BASE_URL"),
                    "https://graph.facebook.com",
                )?,
                facebook_verify_token: var("FACEBOOK_VERIFY_TOKEN").map(SecretString::from),
                facebook_app_secret: var("FACEBOOK_APP_SECRET").map(SecretString::from),
                allow_private_fetch: flag("OMNICHAT_ALLOW_PRIVATE_FETCH", var("OMNICHAT_ALLOW_PRIVATE_FETCH"))?,
            },
            queue: QueueConfig {
                worker: match var("OMNICHAT_QUEUE_WORKER") {
                    Some(v) => flag("OMNICHAT_QUEUE_WORKER", Some(v))?,
                    None => true,
                },
                concurrency: number("OMNICHAT_QUEUE_CONCURRENCY", var("OMNICHAT_QUEUE_CONCURRENCY"), 64)?,
                per_channel: number("OMNICHAT_QUEUE_PER_CHANNEL", var("OMNICHAT_QUEUE_PER_CHANNEL"), 16)?,
                max_attempts: number("OMNICHAT_QUEUE_MAX_ATTEMPTS", var("OMNICHAT_QUEUE_MAX_ATTEMPTS"), 8)?,
                base_backoff: parse_ttl("OMNICHAT_QUEUE_BACKOFF", var("OMNICHAT_QUEUE_BACKOFF"), "2s")?,
                max_backoff: Duration::from_secs(15 * 60),
                lease: parse_ttl("OMNICHAT_QUEUE_LEASE", var("OMNICHAT_QUEUE_LEASE"), "60s")?,
                poll_interval: Duration::from_millis(500),
            },
            bridges: BridgeConfig {
                telegram_api: match (var("TELEGRAM_API_ID"), var("TELEGRAM_API_HASH")) {
                    (Some(id), Some(hash)) => {
                        let id = id.trim().parse::<i32>().ok().filter(|id| *id > 0);
                        let id = id.with_context(|| "TELEGRAM_API_ID: not a positive number".to_owned())?;
                        Some((id, SecretString::from(hash.trim().to_owned())))
                    }
                    (Some(_), None) => bail!("TELEGRAM_API_HASH: required with TELEGRAM_API_ID"),
                    (None, Some(_)) => bail!("TELEGRAM_API_ID: required with TELEGRAM_API_HASH"),
                    (None, None) => None,
                },
                telegram_login_ttl: Duration::from_secs(10 * 60),
                lease: parse_ttl("OMNICHAT_BRIDGE_LEASE", var("OMNICHAT_BRIDGE_LEASE"), "30s")?,
                supervise_interval: Duration::from_secs(5),
                request_poll: parse_ttl("OMNICHAT_BRIDGE_REQUEST_POLL", var("OMNICHAT_BRIDGE_REQUEST_POLL"), "250ms")?,
                enabled: match var("OMNICHAT_BRIDGES") {
                    Some(v) => flag("OMNICHAT_BRIDGES", Some(v))?,
                    None => true,
                },
            },
            plugins_manifest: match var("OMNICHAT_PLUGINS") {
                Some(path) => {
                    let path = PathBuf::from(path);
                    if !path.is_file() {
                        bail!("OMNICHAT_PLUGINS: {} is not a file", path.display());
                    }
                    Some(path)
                }
                None => Some(PathBuf::from("plugins.toml")).filter(|p| p.is_file()),
            },
            public_url: match var("OMNICHAT_PUBLIC_URL") {
                Some(url) => Some(base_url("OMNICHAT_PUBLIC_URL", Some(url), "")?),
                None => None,
            },
            visitors: VisitorConfig {
                messages_per_minute: number(
                    "OMNICHAT_WIDGET_MESSAGES_PER_MINUTE",
                    var("OMNICHAT_WIDGET_MESSAGES_PER_MINUTE"),
                    60,
                )?,
                sessions_per_minute: number(
                    "OMNICHAT_WIDGET_SESSIONS_PER_MINUTE",
                    var("OMNICHAT_WIDGET_SESSIONS_PER_MINUTE"),
                    30,
                )?,
                requests_per_minute: number(
                    "OMNICHAT_WIDGET_REQUESTS_PER_MINUTE",
                    var("OMNICHAT_WIDGET_REQUESTS_PER_MINUTE"),
                    600,
                )?,
                max_upload_bytes: number(
                    "OMNICHAT_WIDGET_MAX_UPLOAD_BYTES",
                    var("OMNICHAT_WIDGET_MAX_UPLOAD_BYTES"),
                    10 * 1024 * 1024,
                )?,
                trust_forwarded_for: flag("OMNICHAT_TRUST_FORWARDED_FOR", var("OMNICHAT_TRUST_FORWARDED_FOR"))?,
            },
            agents: AgentConfig {
                runner: match var("OMNICHAT_AGENT_RUNNER") {
                    Some(v) => flag("OMNICHAT_AGENT_RUNNER", Some(v))?,
                    None => true,
                },
                openai_api_key: var("OPENAI_API_KEY").map(|key| SecretString::from(key.trim().to_owned())),
                openai_base_url: match var("OPENAI_BASE_URL") {
                    Some(url) => Some(base_url("OPENAI_BASE_URL", Some(url), "")?),
                    None => None,
                },
                daily_tokens: match var("OMNICHAT_AGENT_DAILY_TOKENS") {
                    Some(v) => Some(number("OMNICHAT_AGENT_DAILY_TOKENS", Some(v), 1u64)?),
                    None => None,
                },
                model_timeout: parse_ttl("OMNICHAT_AGENT_MODEL_TIMEOUT", var("OMNICHAT_AGENT_MODEL_TIMEOUT"), "60s")?,
                max_attempts: number("OMNICHAT_AGENT_MAX_ATTEMPTS", var("OMNICHAT_AGENT_MAX_ATTEMPTS"), 4)?,
                base_backoff: parse_ttl("OMNICHAT_AGENT_BACKOFF", var("OMNICHAT_AGENT_BACKOFF"), "2s")?,
                lease: parse_ttl("OMNICHAT_AGENT_LEASE", var("OMNICHAT_AGENT_LEASE"), "5m")?,
                concurrency: number("OMNICHAT_AGENT_CONCURRENCY", var("OMNICHAT_AGENT_CONCURRENCY"), 16)?,
                poll_interval: Duration::from_secs(1),
            },
            webhooks: WebhookConfig {
                worker: match var("OMNICHAT_WEBHOOK_WORKER") {
                    Some(v) => flag("OMNICHAT_WEBHOOK_WORKER", Some(v))?,
                    None => true,
                },
                timeout: parse_ttl("OMNICHAT_WEBHOOK_TIMEOUT", var("OMNICHAT_WEBHOOK_TIMEOUT"), "10s")?,
                max_attempts: number("OMNICHAT_WEBHOOK_MAX_ATTEMPTS", var("OMNICHAT_WEBHOOK_MAX_ATTEMPTS"), 10)?,
                base_backoff: parse_ttl("OMNICHAT_WEBHOOK_BACKOFF", var("OMNICHAT_WEBHOOK_BACKOFF"), "10s")?,
                disable_after: number("OMNICHAT_WEBHOOK_DISABLE_AFTER", var("OMNICHAT_WEBHOOK_DISABLE_AFTER"), 50)?,
                concurrency: number("OMNICHAT_WEBHOOK_CONCURRENCY", var("OMNICHAT_WEBHOOK_CONCURRENCY"), 16)?,
                lease: parse_ttl("OMNICHAT_WEBHOOK_LEASE", var("OMNICHAT_WEBHOOK_LEASE"), "60s")?,
                poll_interval: Duration::from_secs(1),
            },
            metrics_token: var("OMNICHAT_METRICS_TOKEN")
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            redis_url: match var("REDIS_URL") {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => Some(url.trim().to_owned().into()),
                Some(_) => bail!("REDIS_URL: not a redis:// or rediss:// URL"),
                None => None,
            },
            redis_prefix: match var("OMNICHAT_REDIS_PREFIX") {
                Some(prefix) if prefix.contains('#') => bail!("OMNICHAT_REDIS_PREFIX: {prefix:?} must not contain '#'"),
                Some(prefix) => prefix.trim().to_owned(),
                None => "omnichat".into(),
            },
            data_dir,
        })
    }

    /// A configuration for tests: the given database, a private data dir, fixed secrets.
    pub fn for_tests(database_url: &str, data_dir: &Path) -> Self {
        let database_url = database_url.to_owned();
        let data_dir = data_dir.to_owned();
        let mut config = Self::from_env(|name| match name {
            "OMNICHAT_DATA_DIR" => Some(data_dir.display().to_string()),
            "DATABASE_URL" => Some(database_url.clone()),
            "JWT_SECRET" => Some("test-access-secret-which-is-long-enough".into()),
            "JWT_REFRESH_SECRET" => Some("test-refresh-secret-which-is-long-enough".into()),
            "OMNICHAT_SECRET_KEY" => Some(STANDARD.encode([7u8; 32])),
            "OMNICHAT_PLUGINS" => None,
            _ => None,
        })
        .unwrap_or_else(|e| panic!("test configuration: {e:#}"));
        config.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.port = 0;
        // Tests run from the crate directory: never pick up a plugins.toml lying there.
        config.plugins_manifest = None;
        // Fake providers listen on loopback.
        config.providers.allow_private_fetch = true;
        config.queue.base_backoff = Duration::from_millis(200);
        config.queue.poll_interval = Duration::from_millis(100);
        config.bridges.lease = Duration::from_secs(2);
        config.bridges.supervise_interval = Duration::from_millis(200);
        config.bridges.request_poll = Duration::from_millis(50);
        config.agents.base_backoff = Duration::from_millis(200);
        config.agents.poll_interval = Duration::from_millis(100);
        config.agents.model_timeout = Duration::from_secs(10);
        config.webhooks.base_backoff = Duration::from_millis(100);
        config.webhooks.poll_interval = Duration::from_millis(50);
        config.webhooks.timeout = Duration::from_secs(5);
        config
    }
}

/// An http(s) URL without a trailing slash.
fn base_url(name: &str, value: Option<String>, default: &str) -> anyhow::Result<String> {
    let url = value.unwrap_or_else(|| default.to_owned());
    let url = url.trim().trim_end_matches('/').to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
        bail!("{name}: {url:?} is not an http(s) URL");
    }
    Ok(url)
}

fn number<T: std::str::FromStr + PartialOrd + From<u8>>(name: &str, value: Option<String>, default: T) -> anyhow::Result<T> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<T>() {
            Ok(n) if n >= T::from(1) => Ok(n),
            _ => bail!("{name}: {v:?} is not a positive number"),
        },
    }
}

fn flag(name: &str, value: Option<String>) -> anyhow::Result<bool> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => bail!("{name}: {v:?} is not true or false"),
    }
}

/// `15m`, `30d`, `1h 30m`, or a bare number of seconds.
/// A Socket.IO heartbeat setting: whole milliseconds (the open packet carries milliseconds) from
/// 1 ms to 10 minutes (clients add interval and timeout into one browser timer, which overflows
/// past 24.8 days and then fires at once).
fn ping_setting(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let duration = parse_ttl(name, value, default)?;
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(600) {
        bail!("{name}: must be from 1ms to 10m");
    }
    Ok(Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(600_000)))
}

fn parse_ttl(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let text = text.trim();
    let ttl = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            humantime::parse_duration(text).with_context(|| format!("{name}: {text:?} is not a duration like 15m or 30d"))?
        }
    };
    if ttl.is_zero() {
        bail!("{name}: must be longer than zero");
    }
    Ok(ttl)
}

/// Reads a generated secret from the data dir, creating it (mode 0600) on first use.
fn read_or_generate(path: &Path, generate: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let secret = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let dir = std::env::temp_dir().join(format!("omnichat-config-{}", uuid::Uuid::new_v4()));
        move |name| match name {
            "OMNICHAT_DATA_DIR" => Some(dir.display().to_string()),
            _ => pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()),
        }
    }

    #[test]
    fn defaults_follow_the_seed() {
        let config = Config::from_env(env(&[])).expect("defaults load");
        assert_eq!(config.port, 3001);
        assert_eq!(config.socket_path, "/socket.io");
        assert_eq!(config.jwt.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(config.jwt.refresh_ttl, Duration::from_secs(30 * 24 * 3600));
        assert!(config.database_url.starts_with("sqlite://") && config.database_url.ends_with("omnichat.db"));
    }

    #[test]
    fn a_generated_jwt_secret_is_kept_across_loads() {
        let var = env(&[]);
        let first = Config::from_env(&var).expect("loads");
        let second = Config::from_env(&var).expect("loads again");
        use secrecy::ExposeSecret;
        assert_eq!(first.jwt.access_secret.expose_secret(), second.jwt.access_secret.expose_secret());
        assert_eq!(first.jwt.refresh_secret.expose_secret(), first.jwt.access_secret.expose_secret());
    }

    #[test]
    fn bad_values_are_start_up_errors_naming_the_variable() {
        for (pairs, name) in [
            (&[("PORT", "http")][..], "PORT"),
            (&[("DATABASE_URL", "mysql://x")][..], "DATABASE_URL"),
            (&[("JWT_ACCESS_TTL", "soon")][..], "JWT_ACCESS_TTL"),
            (&[("CORS_ORIGIN", "example.com")][..], "CORS_ORIGIN"),
            (&[("OMNICHAT_SECRET_KEY", "short")][..], "OMNICHAT_SECRET_KEY"),
        ] {
            let leaked: &'static [(&'static str, &'static str)] = Box::leak(pairs.to_vec().into_boxed_slice());
            let err = Config::from_env(env(leaked)).expect_err(name);
            assert!(format!("{err:#}").contains(name), "{err:#} should name {name}");
        }
    }

    #[test]
    fn ttls_accept_units_and_seconds() {
        assert_eq!(parse_ttl("X", Some("90".into()), "1m").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("X", Some("2h".into()), "1m").ok(), Some(Duration::from_secs(7200)));
        assert!(parse_ttl("X", Some("0".into()), "1m").is_err());
    }

    #[test]
    fn socket_pings_are_whole_milliseconds_from_one_to_ten_minutes() {
        let config = Config::from_env(env(&[])).expect("defaults load");
        assert_eq!((config.socket_ping_interval, config.socket_ping_timeout), (Duration::from_secs(25), Duration::from_secs(20)));
        assert_eq!(ping_setting("X", Some("250ms".into()), "25s").ok(), Some(Duration::from_millis(250)));
        assert_eq!(ping_setting("X", Some("1500us".into()), "25s").ok(), Some(Duration::from_millis(1)));
        assert_eq!(ping_setting("X", Some("10m".into()), "25s").ok(), Some(Duration::from_secs(600)));
        for bad in ["500us", "11m", "30d", "0", "often"] {
            let err = ping_setting("OMNICHAT_SOCKET_PING_TIMEOUT", Some(bad.into()), "25s").expect_err(bad);
            assert!(format!("{err:#}").contains("OMNICHAT_SOCKET_PING_TIMEOUT"), "{bad}: {err:#}");
        }
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://app:hunter2@db/omnichat"), "postgres://app:***@db/omnichat");
        assert_eq!(redact_url("sqlite://./data/omnichat.db"), "sqlite://./data/omnichat.db");
    }
}
