//! A scripted Telegram (MTProto) provider for the bridge's seam: login codes, two-step
//! verification, a feed of new messages, revocation, dropped connections and a record of sends.
//! Its clients work on the host's real database-backed session, as grammers does: a login stores
//! the auth key and the account's own peer, the feed resumes from the stored update state and
//! moves it only past messages the listener handled, and sends resolve peers through the cache.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use grammers_session::Session;
use grammers_session::types::{DcOption, PeerAuth, PeerId, PeerInfo, UpdateState};
use omnichat::bridges::telegram::client::{
    SignInFailure, SignedIn, TelegramClient, TelegramConnector, TelegramError, TelegramSend,
};
use omnichat::bridges::telegram::mapping::{SenderInfo, TelegramMessage};
use omnichat::bridges::telegram::session::DbSession;
use secrecy::SecretString;
use uuid::Uuid;

/// The account every scripted login ends in.
pub const ACCOUNT_ID: i64 = 777_000;
/// A phone number Telegram refuses.
pub const INVALID_PHONE: &str = "+19999999999";

#[derive(Default)]
pub struct TelegramScript {
    state: Mutex<ScriptState>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
pub struct ScriptState {
    /// The code that logs in (default "24680").
    pub code: Option<String>,
    /// Two-step verification password and hint, when the account has one.
    pub password: Option<(String, String)>,
    /// Messages Telegram has for the account, in update order (the message id is the pts).
    pub feed: Vec<TelegramMessage>,
    /// The session was revoked (logged out from another device).
    pub revoked: bool,
    /// Connections to drop (a network error) before they deliver anything more.
    pub drops: usize,
    /// What happened, for assertions.
    pub codes_requested: Vec<String>,
    pub connects: Vec<Uuid>,
    /// (session, pts) each update stream started from.
    pub resumed_from: Vec<(Uuid, i32)>,
    pub delivered: Vec<(Uuid, i32)>,
    pub sent: Vec<(Uuid, i64, TelegramSend)>,
    pub signed_out: Vec<Uuid>,
    /// The bytes a download answers, and the `extra` of each download asked for.
    pub media: Vec<u8>,
    pub downloads: Vec<serde_json::Value>,
    /// Logins Telegram knows of: each belongs to the auth key that asked for its code, as on
    /// Telegram's side, so any client over the same session (on any replica) may complete it.
    pub logins: Vec<ScriptedLogin>,
    next_sent_id: i32,
}

pub struct ScriptedLogin {
    pub auth_key: [u8; 256],
    pub phone: String,
    pub phone_code_hash: String,
    /// The code was right and the account has a password: the password step is next.
    pub password_needed: bool,
}

impl TelegramScript {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn connector(self: &Arc<Self>) -> Arc<dyn TelegramConnector> {
        Arc::new(ScriptedConnector(self.clone()))
    }

    pub fn state(&self) -> MutexGuard<'_, ScriptState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the script and wakes waiting clients.
    pub fn update(&self, change: impl FnOnce(&mut ScriptState)) {
        change(&mut self.state());
        self.changed.notify_waiters();
    }

    /// A new private message from `user_id` (the message id doubles as the update's pts).
    pub fn incoming(&self, message_id: i32, user_id: i64, text: &str) {
        self.update(|s| s.feed.push(private_message(message_id, user_id, text, false)));
    }
}

/// A private-chat message as the mapping produces it.
pub fn private_message(message_id: i32, user_id: i64, text: &str, outgoing: bool) -> TelegramMessage {
    TelegramMessage {
        message_id,
        chat_id: user_id,
        sender_id: if outgoing { ACCOUNT_ID } else { user_id },
        sender: SenderInfo { name: Some(format!("User {user_id}")), username: Some(format!("user{user_id}")) },
        chat_title: Some(format!("User {user_id}")),
        outgoing,
        text: Some(text.to_owned()),
        attachments: Vec::new(),
        sent_at: None,
    }
}

struct ScriptedConnector(Arc<TelegramScript>);

#[async_trait]
impl TelegramConnector for ScriptedConnector {
    async fn connect(
        &self,
        session: Arc<DbSession>,
        _api_id: i32,
        _api_hash: &SecretString,
    ) -> Result<Arc<dyn TelegramClient>, TelegramError> {
        self.0.update(|s| s.connects.push(session.id()));
        Ok(Arc::new(ScriptedClient {
            script: self.0.clone(),
            session,
            unacknowledged: Mutex::new(None),
            streaming: AtomicBool::new(false),
            disconnected: AtomicBool::new(false),
        }))
    }
}

struct ScriptedClient {
    script: Arc<TelegramScript>,
    session: Arc<DbSession>,
    /// The pts of the message returned last: persisted once the listener asks for the next one.
    unacknowledged: Mutex<Option<i32>>,
    streaming: AtomicBool,
    disconnected: AtomicBool,
}

impl ScriptedClient {
    /// The session's auth key on its home DC, created (as grammers does when it first connects,
    /// storing it through the session) when it has none.
    async fn auth_key(&self) -> Result<[u8; 256], TelegramError> {
        let home = self.session.home_dc_id().map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        let known = self.session.dc_option(home).map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        if let Some(key) = known.and_then(|option| option.auth_key) {
            return Ok(key);
        }
        let mut key = [0u8; 256];
        for chunk in key.chunks_mut(16) {
            chunk.copy_from_slice(Uuid::new_v4().as_bytes());
        }
        let option = DcOption {
            id: home,
            ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 443),
            ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 0, 0),
            auth_key: Some(key),
        };
        self.session.set_dc_option(&option).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        Ok(key)
    }

    /// What grammers stores on a login: the account itself.
    async fn complete_login(&self) -> Result<SignedIn, SignInFailure> {
        let me = PeerInfo::User { id: ACCOUNT_ID, auth: Some(PeerAuth::from_hash(99)), bot: Some(false), is_self: Some(true) };
        self.session.cache_peer(me).await.map_err(|e| SignInFailure::Telegram(TelegramError::Unavailable(e.to_string())))?;
        Ok(SignedIn { user_id: ACCOUNT_ID, name: "Scripted Account".into(), username: Some("scripted".into()), phone: None })
    }

    async fn acknowledge(&self) -> Result<(), TelegramError> {
        let pts = self.unacknowledged.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pts) = pts {
            self.session
                .set_update_state(UpdateState::Primary { pts, date: 0, seq: 0 })
                .await
                .map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}

#[async_trait]
impl TelegramClient for ScriptedClient {
    async fn is_authorized(&self) -> Result<bool, TelegramError> {
        if self.script.state().revoked {
            return Ok(false);
        }
        let me = self.session.peer(PeerId::self_user()).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        Ok(me.is_some())
    }

    async fn request_login_code(&self, phone: &str) -> Result<String, TelegramError> {
        self.script.update(|s| s.codes_requested.push(phone.to_owned()));
        if phone == INVALID_PHONE {
            return Err(TelegramError::Refused("PHONE_NUMBER_INVALID".into()));
        }
        let auth_key = self.auth_key().await?;
        let phone_code_hash = Uuid::new_v4().simple().to_string();
        let login =
            ScriptedLogin { auth_key, phone: phone.to_owned(), phone_code_hash: phone_code_hash.clone(), password_needed: false };
        self.script.update(|s| s.logins.push(login));
        Ok(phone_code_hash)
    }

    async fn sign_in(&self, phone: &str, phone_code_hash: &str, code: &str) -> Result<SignedIn, SignInFailure> {
        let auth_key = self.auth_key().await?;
        let password = {
            let mut s = self.script.state();
            let expected = s.code.clone().unwrap_or_else(|| "24680".into());
            let password = s.password.clone();
            let Some(login) =
                s.logins.iter_mut().find(|l| l.auth_key == auth_key && l.phone == phone && l.phone_code_hash == phone_code_hash)
            else {
                // Another auth key (or hash) than the one the code was sent for: Telegram's answer.
                return Err(SignInFailure::Telegram(TelegramError::Refused("PHONE_CODE_HASH_INVALID".into())));
            };
            if code != expected {
                return Err(SignInFailure::InvalidCode);
            }
            login.password_needed = password.is_some();
            password
        };
        match password {
            Some((_, hint)) => Err(SignInFailure::PasswordRequired { hint: Some(hint) }),
            None => self.complete_login().await,
        }
    }

    async fn check_password(&self, password: &str) -> Result<SignedIn, SignInFailure> {
        let auth_key = self.auth_key().await?;
        let expected = {
            let s = self.script.state();
            if !s.logins.iter().any(|l| l.auth_key == auth_key && l.password_needed) {
                return Err(SignInFailure::Telegram(TelegramError::Refused("AUTH_KEY_UNREGISTERED".into())));
            }
            s.password.clone()
        };
        match expected {
            Some((right, _)) if right == password => self.complete_login().await,
            Some((_, hint)) => Err(SignInFailure::InvalidPassword { hint: Some(hint) }),
            None => Err(SignInFailure::NoCodeRequested),
        }
    }

    async fn sign_out(&self) -> Result<(), TelegramError> {
        self.script.update(|s| s.signed_out.push(self.session.id()));
        Ok(())
    }

    async fn next_message(&self) -> Result<Option<TelegramMessage>, TelegramError> {
        self.acknowledge().await?;
        let state = self.session.updates_state().await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        if !self.streaming.swap(true, Ordering::SeqCst) {
            self.script.update(|s| s.resumed_from.push((self.session.id(), state.pts)));
        }
        loop {
            let woken = self.script.changed.notified();
            if self.disconnected.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let next = {
                let mut s = self.script.state();
                if s.revoked {
                    return Err(TelegramError::Unauthorized("AUTH_KEY_UNREGISTERED".into()));
                }
                if s.drops > 0 {
                    s.drops -= 1;
                    return Err(TelegramError::Unavailable("connection reset by peer".into()));
                }
                let next = s.feed.iter().find(|m| m.message_id > state.pts).cloned();
                if let Some(message) = &next {
                    s.delivered.push((self.session.id(), message.message_id));
                }
                next
            };
            if let Some(message) = next {
                // Telegram sends the sender along with the update: its access hash is cached.
                if message.chat_id > 0 {
                    let sender = PeerInfo::User {
                        id: message.chat_id,
                        auth: Some(PeerAuth::from_hash(message.chat_id * 10)),
                        bot: Some(false),
                        is_self: Some(false),
                    };
                    self.session.cache_peer(sender).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
                }
                *self.unacknowledged.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.message_id);
                return Ok(Some(message));
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    async fn save_update_state(&self) -> Result<(), TelegramError> {
        self.acknowledge().await
    }

    async fn send(&self, dialog_id: i64, message: &TelegramSend) -> Result<i32, TelegramError> {
        if self.script.state().revoked {
            return Err(TelegramError::Unauthorized("AUTH_KEY_UNREGISTERED".into()));
        }
        let peer = PeerId::from_bot_api_dialog_id(dialog_id).ok_or_else(|| TelegramError::Refused("PEER_ID_INVALID".into()))?;
        let cached = self.session.peer_ref(peer).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        if cached.is_none() {
            return Err(TelegramError::Refused(format!("chat {dialog_id} is not in the peer cache")));
        }
        let mut s = self.script.state();
        s.next_sent_id += 1;
        let id = 100_000 + s.next_sent_id;
        s.sent.push((self.session.id(), dialog_id, message.clone()));
        Ok(id)
    }

    async fn download(&self, extra: &serde_json::Value) -> Result<Vec<u8>, TelegramError> {
        let mut s = self.script.state();
        s.downloads.push(extra.clone());
        Ok(s.media.clone())
    }

    fn disconnect(&self) {
        self.disconnected.store(true, Ordering::SeqCst);
        self.script.changed.notify_waiters();
    }
}
