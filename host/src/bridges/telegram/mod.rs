//! The Telegram user-account bridge (MTProto through grammers).
//!
//! - Login (`/api/telegram/user/start`, `/confirm`): the code is requested on a client over the
//!   channel's session, whose auth key is stored as it connects; the phone code hash (and later
//!   whether the password step is next) is stored sealed beside it, with its expiry. A confirm on
//!   any replica opens a client over the same session and signs in with the stored hash.
//! - Listening: a supervisor on every replica leases each CONNECTED account's session (one owner
//!   across replicas), runs a listener for the sessions it owns and renews their leases; a lease
//!   it loses stops its listener. The listener stores every new message through
//!   `handle_inbound_message` before the update state may move past it, reconnects with backoff on
//!   network errors, and sets the channel ERROR when Telegram says the session is gone.
//! - Sending: the queue worker hands TELEGRAM_USER jobs to [`TelegramBridge::send`], which sends
//!   on the live client of the replica that owns the session.

pub mod adapter;
pub mod client;
pub mod handlers;
pub mod mapping;
pub mod session;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use self::client::{SignInFailure, SignedIn, TelegramClient, TelegramConnector, TelegramError, TelegramSend};
use self::session::DbSession;
use crate::bridges::handover::{self, Refusal, Task};
use crate::bridges::{BridgeDeps, LeaseRound, lease_duration, lease_round, store_received};
use crate::error::{ApiError, ApiResult};
use crate::store::{Channel, ChannelStatus, ChannelType, NewChannel, SessionKind, StoreError};

/// How long a download asked of the replica running the session may take.
const HANDOVER_WAIT: Duration = Duration::from_secs(60);

/// How many recently sent message ids a live session remembers (to tell its own sends apart).
const REMEMBERED_SENDS: usize = 512;

pub struct TelegramBridge {
    connector: Arc<dyn TelegramConnector>,
    owner: String,
    live: Mutex<HashMap<Uuid, LiveSession>>,
    halted: std::sync::atomic::AtomicBool,
    /// One supervisor round (or login hand-over) at a time, so a session is never started twice.
    reconciling: tokio::sync::Mutex<()>,
}

/// A login between the code and its confirmation, stored sealed in its session's row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingLogin {
    phone_code_hash: String,
    /// The code was right; two-step verification wants the password (with this hint).
    awaiting_password: Option<Option<String>>,
}

struct LiveSession {
    session_id: Uuid,
    current: Arc<Current>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Until when our lease is known to hold: past it (the database unreachable for renewals)
    /// the listener stops rather than run beside a replica that took the session over.
    lease_until: DateTime<Utc>,
}

/// What the listener and the senders of one live session share.
#[derive(Default)]
struct Current {
    /// The connected client; `None` while reconnecting.
    client: RwLock<Option<Arc<dyn TelegramClient>>>,
    /// Held while sending, so the listener can wait for a send before it judges an outgoing message.
    sending: tokio::sync::Mutex<()>,
    /// Provider ids of messages the queue sent: they come back as outgoing messages and are
    /// already stored.
    sent: Mutex<VecDeque<String>>,
}

impl Current {
    fn client(&self) -> Option<Arc<dyn TelegramClient>> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_client(&self, client: Option<Arc<dyn TelegramClient>>) {
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
    }

    fn remember_sent(&self, provider_message_id: String) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.push_back(provider_message_id);
        while sent.len() > REMEMBERED_SENDS {
            sent.pop_front();
        }
    }

    fn was_sent_here(&self, provider_message_id: &str) -> bool {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|id| id == provider_message_id)
    }
}

/// `POST /api/telegram/user/start` succeeded: the code is on its way.
pub struct LoginStarted {
    pub channel: Channel,
    pub phone_number: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a send through the bridge did not happen.
#[derive(Debug)]
pub enum BridgeSendError {
    /// This replica does not run the session (another does, or it is reconnecting).
    NotLiveHere,
    Telegram(TelegramError),
}

impl TelegramBridge {
    /// `owner`: this replica's name on the leases it holds.
    pub fn new(connector: Arc<dyn TelegramConnector>, owner: String) -> Self {
        Self { connector, owner, live: Default::default(), halted: Default::default(), reconciling: Default::default() }
    }

    fn live(&self) -> MutexGuard<'_, HashMap<Uuid, LiveSession>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This replica's name on the leases it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Sessions in this process by state: `running`, and `ended` (its task stopped, not yet reaped).
    pub fn session_counts(&self) -> [(&'static str, usize); 2] {
        let (running, ended) =
            self.live().values().fold((0, 0), |(r, e), live| if live.task.is_finished() { (r, e + 1) } else { (r + 1, e) });
        [("running", running), ("ended", ended)]
    }

    /// Whether any session runs here (only then can another replica ask this one for work).
    pub fn runs_any(&self) -> bool {
        !self.live().is_empty()
    }

    /// Whether this replica runs the session of a channel now.
    pub fn is_live_here(&self, channel_id: Uuid) -> bool {
        self.live().get(&channel_id).is_some_and(|live| !live.task.is_finished())
    }

    /// Creates (or reuses) the tenant's TELEGRAM_USER channel and sends the login code.
    pub async fn start_login(
        &self,
        state: &BridgeDeps,
        tenant_id: Uuid,
        phone_number: &str,
        channel_id: Option<Uuid>,
        name: Option<&str>,
    ) -> ApiResult<LoginStarted> {
        let (api_id, api_hash) = credentials(state)?;
        let phone = normalize_phone(phone_number)?;
        let channel = match channel_id {
            Some(id) => user_channel(state, tenant_id, id).await?,
            None => channel_for_phone(state, tenant_id, &phone, name).await?,
        };
        if channel.status == ChannelStatus::Connected || self.is_live_here(channel.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_connected",
                "this Telegram account is logged in: log out first (POST /api/telegram/user/logout)",
            ));
        }
        let row = state.store.reset_telegram_session(tenant_id, channel.id, &phone).await?;
        let session = DbSession::load(state.store.clone(), state.secrets.clone(), row.id).await.map_err(ApiError::internal)?;
        let client = self.connector.connect(session, api_id, &api_hash).await.map_err(telegram_failure)?;
        let sent = client.request_login_code(&phone).await;
        client.disconnect();
        let phone_code_hash = sent.map_err(telegram_failure)?;
        let expires_at = Utc::now() + chrono::Duration::from_std(state.config.telegram_login_ttl).unwrap_or_default();
        save_pending(state, row.id, Some(&PendingLogin { phone_code_hash, awaiting_password: None }), expires_at).await?;
        tracing::info!(channel.id = %channel.id, "telegram: login code sent");
        let channel =
            state.status.set(tenant_id, channel.id, ChannelStatus::Connecting, Some("login code sent")).await.unwrap_or(channel);
        Ok(LoginStarted { channel, phone_number: phone, expires_at })
    }

    /// Completes a login with the code (and the two-step verification password, when the account
    /// has one). On success the channel is CONNECTED and this replica starts listening.
    pub async fn confirm_login(
        &self,
        state: &BridgeDeps,
        tenant_id: Uuid,
        channel_id: Uuid,
        code: Option<&str>,
        password: Option<&str>,
    ) -> ApiResult<(Channel, SignedIn)> {
        let channel = user_channel(state, tenant_id, channel_id).await?;
        let row = state.store.telegram_session_of_channel(tenant_id, channel_id).await?.ok_or_else(no_pending_login)?;
        let (Some(sealed), Some(expires_at), Some(phone)) = (&row.pending_login, row.login_expires_at, &row.phone_number) else {
            return Err(no_pending_login());
        };
        if expires_at <= Utc::now() {
            save_pending(state, row.id, None, expires_at).await?;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "login_expired",
                "the login code expired: request a new one (POST /api/telegram/user/start)",
            ));
        }
        let mut login: PendingLogin = state
            .secrets
            .open(sealed)
            .ok()
            .and_then(|plain| serde_json::from_str(&plain).ok())
            .ok_or_else(|| ApiError::internal("the pending login cannot be opened (was OMNICHAT_SECRET_KEY changed?)"))?;
        let code = code.map(str::trim).filter(|c| !c.is_empty());
        if login.awaiting_password.is_none() && code.is_none() {
            return Err(ApiError::validation("code is required"));
        }
        let (api_id, api_hash) = credentials(state)?;
        // A client over the session that asked for the code (its auth key is in the database).
        let session = DbSession::load(state.store.clone(), state.secrets.clone(), row.id).await.map_err(ApiError::internal)?;
        let client = self.connector.connect(session, api_id, &api_hash).await.map_err(telegram_failure)?;
        let result = match (&login.awaiting_password, code, password) {
            (Some(_), _, Some(password)) => client.check_password(password).await,
            (Some(hint), _, None) => Err(SignInFailure::PasswordRequired { hint: hint.clone() }),
            (None, code, password) => {
                match (client.sign_in(phone, &login.phone_code_hash, code.unwrap_or_default()).await, password) {
                    (Err(SignInFailure::PasswordRequired { .. }), Some(password)) => client.check_password(password).await,
                    (other, _) => other,
                }
            }
        };
        let signed_in = match result {
            Ok(signed_in) => signed_in,
            Err(failure) => {
                client.disconnect();
                if let SignInFailure::PasswordRequired { hint } | SignInFailure::InvalidPassword { hint } = &failure {
                    login.awaiting_password = Some(hint.clone());
                    save_pending(state, row.id, Some(&login), expires_at).await?;
                }
                return Err(sign_in_failure(failure));
            }
        };
        // Signed in at Telegram: what follows must not fail the login (a retry would find the
        // code spent); a pending login left behind is refused by its expiry.
        if let Err(err) = save_pending(state, row.id, None, expires_at).await {
            tracing::warn!(channel.id = %channel_id, error = ?err, "telegram: cannot clear the finished login");
        }
        let session_id = row.id;
        tracing::info!(channel.id = %channel_id, telegram.user = signed_in.user_id, "telegram: logged in");
        let channel = state.status.set(tenant_id, channel_id, ChannelStatus::Connected, None).await.unwrap_or(channel);
        // Listen on the client that logged in, when this replica can take the session's lease.
        let _round = self.reconciling.lock().await;
        let until = Utc::now() + lease_duration(state);
        // A replica without the supervisor (OMNICHAT_BRIDGES=false) would never renew the lease.
        let lease = match state.config.enabled {
            true => state.store.acquire_session_lease(SessionKind::Telegram, session_id, &self.owner, until).await,
            false => Ok(false),
        };
        match lease {
            Ok(true) => self.start_listener(state, tenant_id, channel_id, session_id, Some(client), until),
            other => {
                tracing::info!(channel.id = %channel_id, ?other, "telegram: another replica will listen");
                client.disconnect();
            }
        }
        Ok((channel, signed_in))
    }

    /// Signs the account out at Telegram (best effort), stops listening and deletes the session.
    pub async fn logout(&self, state: &BridgeDeps, tenant_id: Uuid, channel_id: Uuid) -> ApiResult<Channel> {
        let channel = user_channel(state, tenant_id, channel_id).await?;
        self.sign_out_and_forget(state, &channel).await;
        let channel =
            state.status.set(tenant_id, channel_id, ChannelStatus::Disconnected, Some("logged out")).await.unwrap_or(channel);
        Ok(channel)
    }

    /// Ends a channel's Telegram session everywhere: signs out (on the live or pending client, or a
    /// short-lived one over the stored session), stops the local listener and deletes the session.
    /// Used by logout and by channel deletion.
    pub async fn sign_out_and_forget(&self, state: &BridgeDeps, channel: &Channel) {
        // No supervisor round may start the session again between the stop and the delete.
        let _round = self.reconciling.lock().await;
        let live = self.stop_local(state, channel.id, false).await;
        let client = match live {
            Some(client) => Some(client),
            None => self.connect_stored(state, channel).await,
        };
        if let Some(client) = client {
            match tokio::time::timeout(Duration::from_secs(10), client.sign_out()).await {
                Ok(Ok(())) => tracing::info!(channel.id = %channel.id, "telegram: signed out"),
                Ok(Err(err)) => {
                    tracing::warn!(channel.id = %channel.id, error = %err, "telegram: sign-out failed; the session is deleted anyway")
                }
                Err(_) => tracing::warn!(channel.id = %channel.id, "telegram: sign-out timed out; the session is deleted anyway"),
            }
            client.disconnect();
        }
        if let Err(err) = state.store.delete_telegram_session(channel.tenant_id, channel.id).await {
            tracing::warn!(channel.id = %channel.id, error = %err, "telegram: cannot delete the session");
        }
    }

    /// A client over the stored session of a channel that is not live here (for signing out).
    async fn connect_stored(&self, state: &BridgeDeps, channel: &Channel) -> Option<Arc<dyn TelegramClient>> {
        let (api_id, api_hash) = state.config.telegram_api.clone()?;
        let row = state.store.telegram_session_of_channel(channel.tenant_id, channel.id).await.ok()??;
        let session = DbSession::load(state.store.clone(), state.secrets.clone(), row.id).await.ok()?;
        match tokio::time::timeout(Duration::from_secs(10), self.connector.connect(session, api_id, &api_hash)).await {
            Ok(Ok(client)) => Some(client),
            _ => None,
        }
    }

    /// Sends one message on the live session of a channel; answers the provider message id.
    pub async fn send(&self, channel_id: Uuid, recipient: &str, message: &TelegramSend) -> Result<String, BridgeSendError> {
        let current = self.live().get(&channel_id).map(|live| live.current.clone()).ok_or(BridgeSendError::NotLiveHere)?;
        let dialog_id: i64 = recipient
            .trim()
            .parse()
            .map_err(|_| BridgeSendError::Telegram(TelegramError::Refused(format!("{recipient:?} is not a Telegram chat id"))))?;
        let _sending = current.sending.lock().await;
        let client = current.client().ok_or(BridgeSendError::NotLiveHere)?;
        let message_id = tokio::time::timeout(crate::bridges::SEND_TIMEOUT, client.send(dialog_id, message))
            .await
            .unwrap_or_else(|_| Err(TelegramError::Unavailable("the send timed out".into())))
            .map_err(BridgeSendError::Telegram)?;
        let provider_message_id = mapping::provider_message_id(dialog_id, message_id);
        current.remember_sent(provider_message_id.clone());
        Ok(provider_message_id)
    }

    /// Downloads an inbound attachment's media through the live client of the replica that runs
    /// the session (this one, or another asked through the database).
    pub async fn download(&self, state: &BridgeDeps, channel: &Channel, extra: &serde_json::Value) -> Result<Vec<u8>, Refusal> {
        if self.is_live_here(channel.id) {
            return self.download_here(channel.id, extra).await;
        }
        let session =
            state.store.telegram_session_of_channel(channel.tenant_id, channel.id).await.map_err(|_| Refusal::NoAnswer)?;
        let lease = session.and_then(|s| Some((s.lease_owner?, s.lease_until?)));
        let owner = handover::running_elsewhere(lease, &self.owner).ok_or(Refusal::NotLive)?;
        handover::ask(state, owner, channel.id, Task::TelegramDownload, serde_json::json!({"extra": extra}), HANDOVER_WAIT).await
    }

    /// [`Self::download`] on this replica's live client.
    pub(crate) async fn download_here(&self, channel_id: Uuid, extra: &serde_json::Value) -> Result<Vec<u8>, Refusal> {
        let current = self.live().get(&channel_id).map(|live| live.current.clone()).ok_or(Refusal::NotLive)?;
        let client = current.client().ok_or(Refusal::NotLive)?;
        let downloaded = tokio::time::timeout(crate::bridges::SEND_TIMEOUT, client.download(extra))
            .await
            .unwrap_or_else(|_| Err(TelegramError::Unavailable("the download timed out".into())));
        downloaded.map_err(|err| match err {
            TelegramError::FloodWait(seconds) => Refusal::FloodWait(seconds),
            err @ (TelegramError::Refused(_) | TelegramError::Unauthorized(_)) => Refusal::Refused(err.to_string()),
            err @ TelegramError::Unavailable(_) => Refusal::Unavailable(err.to_string()),
        })
    }

    fn start_listener(
        &self,
        state: &BridgeDeps,
        tenant_id: Uuid,
        channel_id: Uuid,
        session_id: Uuid,
        client: Option<Arc<dyn TelegramClient>>,
        lease_until: DateTime<Utc>,
    ) {
        let current = Arc::new(Current::default());
        let (stop, stopped) = watch::channel(false);
        let listener = Listener {
            state: state.clone(),
            connector: self.connector.clone(),
            tenant_id,
            channel_id,
            session_id,
            current: current.clone(),
            stop: stopped,
        };
        let task = tokio::spawn(listener.run(client));
        tracing::info!(channel.id = %channel_id, session.id = %session_id, "telegram: listening");
        let live = LiveSession { session_id, current, stop, task, lease_until };
        if let Some(previous) = self.live().insert(channel_id, live) {
            let _ = previous.stop.send(true);
            previous.task.abort();
            if let Some(client) = previous.current.client() {
                client.disconnect();
            }
        }
    }

    /// Stops the local listener of a channel (if any) and answers its client, still connected.
    async fn stop_local(&self, state: &BridgeDeps, channel_id: Uuid, release: bool) -> Option<Arc<dyn TelegramClient>> {
        let mut live = self.live().remove(&channel_id)?;
        let _ = live.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), &mut live.task).await.is_err() {
            live.task.abort();
        }
        if release && let Err(err) = state.store.release_session_lease(SessionKind::Telegram, live.session_id, &self.owner).await
        {
            tracing::warn!(channel.id = %channel_id, error = %err, "telegram: cannot release the session lease");
        }
        live.current.client()
    }

    /// Stops every listener at once and supervises no more, keeping the leases until they expire:
    /// what a crashed replica leaves behind (the takeover tests use it).
    pub fn halt(&self) {
        self.halted.store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, live) in self.live().drain() {
            let _ = live.stop.send(true);
            live.task.abort();
            if let Some(client) = live.current.client() {
                client.disconnect();
            }
        }
    }

    /// One supervisor round: drops expired logins, then leases, starts, renews and stops listeners
    /// so that this replica runs exactly the sessions it owns.
    pub async fn reconcile(&self, state: &BridgeDeps) {
        if self.halted.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let _round = self.reconciling.lock().await;
        let sessions = match state.store.list_live_telegram_sessions().await {
            Ok(sessions) => sessions,
            Err(err) => return tracing::warn!(error = %err, "telegram: cannot list sessions"),
        };
        // Listeners whose channel is no longer CONNECTED (or that ended) stop.
        let stale: Vec<Uuid> = self
            .live()
            .iter()
            .filter(|(_, live)| live.task.is_finished() || !sessions.iter().any(|s| s.id == live.session_id))
            .map(|(channel_id, _)| *channel_id)
            .collect();
        for channel_id in stale {
            if let Some(client) = self.stop_local(state, channel_id, true).await {
                client.disconnect();
            }
        }
        if state.config.telegram_api.is_none() {
            if !sessions.is_empty() {
                tracing::warn!(
                    sessions = sessions.len(),
                    "telegram: sessions are waiting for TELEGRAM_API_ID and TELEGRAM_API_HASH"
                );
            }
            return;
        }
        for row in sessions {
            let running_until =
                self.live().get(&row.channel_instance_id).filter(|live| live.session_id == row.id).map(|live| live.lease_until);
            match lease_round(state, SessionKind::Telegram, row.id, &self.owner, running_until).await {
                LeaseRound::Start { until } => {
                    self.start_listener(state, row.tenant_id, row.channel_instance_id, row.id, None, until)
                }
                LeaseRound::Renewed { until } => {
                    if let Some(live) = self.live().get_mut(&row.channel_instance_id) {
                        live.lease_until = until;
                    }
                }
                LeaseRound::Stop => {
                    if let Some(client) = self.stop_local(state, row.channel_instance_id, false).await {
                        client.disconnect();
                    }
                }
                LeaseRound::Keep => {}
            }
        }
    }

    /// Stops every local listener and gives their leases back (shutdown).
    pub async fn stop_all(&self, state: &BridgeDeps) {
        let channels: Vec<Uuid> = self.live().keys().copied().collect();
        for channel_id in channels {
            if let Some(client) = self.stop_local(state, channel_id, true).await {
                client.disconnect();
            }
        }
    }
}

/// The listener of one live session.
struct Listener {
    state: BridgeDeps,
    connector: Arc<dyn TelegramConnector>,
    tenant_id: Uuid,
    channel_id: Uuid,
    session_id: Uuid,
    current: Arc<Current>,
    stop: watch::Receiver<bool>,
}

impl Listener {
    async fn run(mut self, mut client: Option<Arc<dyn TelegramClient>>) {
        let mut failures: u32 = 0;
        while !*self.stop.borrow() {
            let connected = match client.take() {
                Some(client) => Ok(client),
                None => self.connect().await,
            };
            let outcome = match connected {
                Ok(client) => {
                    let outcome = self.serve(&client, failures).await;
                    self.current.set_client(None);
                    client.disconnect();
                    outcome
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(()) => return,
                Err(TelegramError::Unauthorized(why)) => return self.revoked(&why).await,
                Err(err) => {
                    failures += 1;
                    let wait = Duration::from_millis(500 * 2u64.pow(failures.min(7))).min(Duration::from_secs(60));
                    tracing::warn!(channel.id = %self.channel_id, error = %err, retry_in_ms = wait.as_millis() as u64, "telegram: connection lost; reconnecting");
                    let reason = format!("reconnecting: {err}");
                    self.state.status.set(self.tenant_id, self.channel_id, ChannelStatus::Connected, Some(&reason)).await;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<Arc<dyn TelegramClient>, TelegramError> {
        let (api_id, api_hash) = self
            .state
            .config
            .telegram_api
            .clone()
            .ok_or_else(|| TelegramError::Unavailable("TELEGRAM_API_ID and TELEGRAM_API_HASH are not set".into()))?;
        let session = DbSession::load(self.state.store.clone(), self.state.secrets.clone(), self.session_id)
            .await
            .map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        self.connector.connect(session, api_id, &api_hash).await
    }

    /// Handles messages until the connection ends (`Err`) or the listener is stopped (`Ok`).
    async fn serve(&mut self, client: &Arc<dyn TelegramClient>, failures: u32) -> Result<(), TelegramError> {
        if !client.is_authorized().await? {
            return Err(TelegramError::Unauthorized("the session has no logged-in account".into()));
        }
        self.current.set_client(Some(client.clone()));
        if failures > 0 {
            self.state.status.set(self.tenant_id, self.channel_id, ChannelStatus::Connected, None).await;
        }
        loop {
            let next = tokio::select! {
                next = client.next_message() => next?,
                _ = self.stop.changed() => return Ok(()),
            };
            let Some(message) = next else {
                return Err(TelegramError::Unavailable("the connection closed".into()));
            };
            if message.outgoing {
                // The queue's own sends come back as outgoing messages: already stored.
                let _sending = self.current.sending.lock().await;
                if self.current.was_sent_here(&message.provider_message_id()) {
                    continue;
                }
            }
            // The update state must not move past a message that is not stored.
            let payload = message.to_payload(self.tenant_id, self.channel_id);
            if !store_received(&self.state, "telegram", "TELEGRAM_USER", self.channel_id, payload, self.stop.changed()).await {
                return Ok(());
            }
        }
    }

    /// Telegram says the session is gone: ERROR with the reason, and no reconnect loop.
    async fn revoked(&self, why: &str) {
        // A logout through the API (on any replica) also ends in Unauthorized: that is not news.
        let session = self.state.store.get_telegram_session(self.session_id).await.ok().flatten();
        let channel = self.state.store.get_channel(self.tenant_id, self.channel_id).await.ok().flatten();
        if session.is_none() || channel.is_none_or(|c| c.status != ChannelStatus::Connected) {
            return;
        }
        tracing::warn!(channel.id = %self.channel_id, reason = why, "telegram: session revoked; the channel needs a new login");
        let reason = format!("Telegram session revoked or logged out ({why}): log in again");
        self.state.status.set(self.tenant_id, self.channel_id, ChannelStatus::Error, Some(&reason)).await;
    }
}

fn credentials(state: &BridgeDeps) -> ApiResult<(i32, SecretString)> {
    state.config.telegram_api.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "telegram_not_configured",
            "Telegram user accounts need TELEGRAM_API_ID and TELEGRAM_API_HASH (from my.telegram.org) set on the server",
        )
    })
}

/// `+` and 7 to 15 digits (E.164); spaces, dashes and brackets are dropped.
fn normalize_phone(phone: &str) -> ApiResult<String> {
    let digits: String = phone.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let bare = digits.strip_prefix('+').unwrap_or(&digits);
    if !(7..=15).contains(&bare.len()) || !bare.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::validation("phoneNumber must be a phone number in international format, like +4915112345678"));
    }
    Ok(format!("+{bare}"))
}

/// A TELEGRAM_USER channel of the tenant.
async fn user_channel(state: &BridgeDeps, tenant_id: Uuid, channel_id: Uuid) -> ApiResult<Channel> {
    let channel = state.store.get_channel(tenant_id, channel_id).await?.ok_or_else(|| ApiError::not_found("channel"))?;
    if channel.channel_type != ChannelType::TELEGRAM_USER {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_channel_type",
            format!("channel {channel_id} is a {} channel, not TELEGRAM_USER", channel.channel_type),
        ));
    }
    Ok(channel)
}

/// The tenant's TELEGRAM_USER channel for this phone number, created when it has none.
async fn channel_for_phone(state: &BridgeDeps, tenant_id: Uuid, phone: &str, name: Option<&str>) -> ApiResult<Channel> {
    let existing = state
        .store
        .list_channels(tenant_id)
        .await?
        .into_iter()
        .find(|channel| channel.channel_type == ChannelType::TELEGRAM_USER && channel.external_id.as_deref() == Some(phone));
    if let Some(channel) = existing {
        return Ok(channel);
    }
    let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => crate::validate::name("name", name)?,
        None => format!("Telegram {phone}"),
    };
    let channel = NewChannel {
        channel_type: ChannelType::TELEGRAM_USER,
        name,
        external_id: Some(phone.to_owned()),
        config: serde_json::json!({}),
        metadata: serde_json::json!({}),
    };
    state.store.create_channel(tenant_id, channel).await.map_err(|err| match err {
        StoreError::Conflict(_) => ApiError::conflict(format!("{phone} is already connected as a TELEGRAM_USER channel")),
        other => other.into(),
    })
}

/// Stores (sealed) or clears a login's state between its steps.
async fn save_pending(
    state: &BridgeDeps,
    session_id: Uuid,
    login: Option<&PendingLogin>,
    expires_at: DateTime<Utc>,
) -> ApiResult<()> {
    let sealed = login.map(|login| state.secrets.seal(&serde_json::to_string(login).unwrap_or_default()));
    state.store.set_telegram_pending_login(session_id, sealed.as_deref(), sealed.as_ref().map(|_| expires_at)).await?;
    Ok(())
}

fn no_pending_login() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_pending_login",
        "no login is waiting for a code on this channel: call POST /api/telegram/user/start first (a code is good for \
         10 minutes)",
    )
}

fn sign_in_failure(failure: SignInFailure) -> ApiError {
    let with_hint = |text: &str, hint: &Option<String>| match hint {
        Some(hint) if !hint.is_empty() => format!("{text} (hint: {hint})"),
        _ => text.to_owned(),
    };
    match &failure {
        SignInFailure::InvalidCode => ApiError::new(StatusCode::BAD_REQUEST, "invalid_code", failure.to_string()),
        SignInFailure::PasswordRequired { hint } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "password_required",
            with_hint("two-step verification is enabled: send the account password as `password`", hint),
        ),
        SignInFailure::InvalidPassword { hint } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_password",
            with_hint("the two-step verification password is wrong", hint),
        ),
        SignInFailure::SignUpRequired => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "sign_up_required", failure.to_string()),
        SignInFailure::NoCodeRequested => no_pending_login(),
        SignInFailure::Telegram(err) => telegram_failure(err.clone()),
    }
}

fn telegram_failure(err: TelegramError) -> ApiError {
    match err {
        TelegramError::FloodWait(seconds) => {
            ApiError::too_many_requests(format!("Telegram asks to wait {seconds} s before trying again"), u64::from(seconds))
        }
        TelegramError::Refused(name) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "telegram_refused", format!("Telegram refused the request: {name}"))
        }
        other => ApiError::new(StatusCode::BAD_GATEWAY, "telegram_unavailable", other.to_string()),
    }
}
