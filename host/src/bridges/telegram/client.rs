//! The seam between the Telegram bridge and MTProto. [`TelegramConnector`] opens a
//! [`TelegramClient`] over a database-backed session; the real implementation is grammers
//! ([`GrammersConnector`]), and tests script their own to drive the login, listener and send paths.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use grammers_client::client::PasswordToken;
use grammers_client::message::InputMessage;
use grammers_client::{Client, SignInError};
use grammers_mtsender::{InvocationError, SenderPool, SenderPoolHandle, UpdatesConfiguration, UpdatesReceiver};
use grammers_session::Session;
use grammers_session::types::{PeerAuth, PeerId, PeerInfo, UpdateState, UpdatesState};
use grammers_tl_types as tl;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::mapping::{self, TelegramMessage};

/// The largest inbound file served through the media route.
const MAX_DOWNLOAD_BYTES: usize = 64 << 20;
use super::session::DbSession;

/// What went wrong talking to Telegram, sorted by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TelegramError {
    /// The session is not (or no longer) authorized: logged out, revoked, deactivated.
    #[error("the Telegram session is not authorized: {0}")]
    Unauthorized(String),
    /// FLOOD_WAIT: try again after this many seconds.
    #[error("Telegram asks to wait {0} s (flood control)")]
    FloodWait(u32),
    /// Telegram refused the request itself (bad peer, bad media, privacy): retrying will not help.
    #[error("Telegram refused the request: {0}")]
    Refused(String),
    /// The network or Telegram's servers: retrying later may help.
    #[error("Telegram is unreachable: {0}")]
    Unavailable(String),
}

impl From<InvocationError> for TelegramError {
    fn from(err: InvocationError) -> Self {
        match &err {
            InvocationError::Rpc(rpc) if rpc.code == 401 || rpc.is("USER_DEACTIVATED*") || rpc.is("SESSION_REVOKED") => {
                TelegramError::Unauthorized(rpc.name.clone())
            }
            InvocationError::Rpc(rpc) if rpc.code == 420 || rpc.is("FLOOD_WAIT") || rpc.is("*FLOOD_WAIT") => {
                TelegramError::FloodWait(rpc.value.unwrap_or(5))
            }
            InvocationError::Rpc(rpc) if (400..500).contains(&rpc.code) => TelegramError::Refused(rpc.name.clone()),
            _ => TelegramError::Unavailable(err.to_string()),
        }
    }
}

/// Why a login step did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInFailure {
    #[error("the login code is wrong or expired")]
    InvalidCode,
    /// Two-step verification is on; the password is needed (with the account's hint).
    #[error("two-step verification is enabled: the account password is required")]
    PasswordRequired { hint: Option<String> },
    #[error("the two-step verification password is wrong")]
    InvalidPassword { hint: Option<String> },
    /// The number has no Telegram account; one must be created with an official app first.
    #[error("this phone number has no Telegram account: sign up with an official Telegram app first")]
    SignUpRequired,
    /// No code was requested for this session (or the password step came first).
    #[error("no login code was requested")]
    NoCodeRequested,
    #[error(transparent)]
    Telegram(#[from] TelegramError),
}

/// The account a login ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: i64,
    pub name: String,
    pub username: Option<String>,
    pub phone: Option<String>,
}

/// One outbound message, with the target already resolved to a Telegram dialog id.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramSend {
    pub text: Option<String>,
    /// At most one attachment per message, uploaded by the client (the text is its caption).
    pub media: Option<TelegramMedia>,
}

/// A file to upload and send: a photo, or any other file as a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramMedia {
    pub photo: bool,
    pub bytes: Vec<u8>,
    pub file_name: String,
    pub mime_type: Option<String>,
}

/// Opens clients over stored sessions.
#[async_trait]
pub trait TelegramConnector: Send + Sync + 'static {
    async fn connect(
        &self,
        session: Arc<DbSession>,
        api_id: i32,
        api_hash: &SecretString,
    ) -> Result<Arc<dyn TelegramClient>, TelegramError>;
}

/// One connected MTProto client, bound to one session.
#[async_trait]
pub trait TelegramClient: Send + Sync + 'static {
    async fn is_authorized(&self) -> Result<bool, TelegramError>;
    /// Sends the login code; answers its phone code hash. Telegram ties the login to the
    /// session's auth key (stored as the client connects), not to this connection: any client
    /// over the same session, on any replica, can [`Self::sign_in`] with the hash.
    async fn request_login_code(&self, phone: &str) -> Result<String, TelegramError>;
    async fn sign_in(&self, phone: &str, phone_code_hash: &str, code: &str) -> Result<SignedIn, SignInFailure>;
    /// Completes a login that answered [`SignInFailure::PasswordRequired`] (on any client over the
    /// same session: the password parameters are fetched afresh).
    async fn check_password(&self, password: &str) -> Result<SignedIn, SignInFailure>;
    async fn sign_out(&self) -> Result<(), TelegramError>;
    /// The next new message (incoming, or written from the account's own apps), with catch-up on
    /// what arrived while offline. Asking for the next message acknowledges the previous one as
    /// handled: the update state moves past a batch only once all of it was. `Ok(None)`: the
    /// connection ended.
    async fn next_message(&self) -> Result<Option<TelegramMessage>, TelegramError>;
    /// Saves the update state, when every message returned so far was handled (shutdown).
    async fn save_update_state(&self) -> Result<(), TelegramError>;
    async fn send(&self, dialog_id: i64, message: &TelegramSend) -> Result<i32, TelegramError>;
    /// Downloads the media an inbound attachment describes (`extra` as the mapping stored it:
    /// photo or document id, access hash, file reference, DC).
    async fn download(&self, extra: &Value) -> Result<Vec<u8>, TelegramError>;
    fn disconnect(&self);
}

/// Where a stored photo or document lives, for `upload.getFile`.
struct StoredFile {
    location: tl::enums::InputFileLocation,
    dc_id: Option<i32>,
}

impl grammers_client::media::Downloadable for StoredFile {
    fn to_raw_input_location(&self) -> Option<tl::enums::InputFileLocation> {
        Some(self.location.clone())
    }

    fn dc_id(&self) -> Option<i32> {
        self.dc_id
    }
}

impl StoredFile {
    fn of(extra: &Value) -> Result<Self, TelegramError> {
        let number = |name: &str| -> Result<i64, TelegramError> {
            extra[name]
                .as_str()
                .and_then(|v| v.parse().ok())
                .or_else(|| extra[name].as_i64())
                .ok_or_else(|| TelegramError::Refused(format!("the attachment has no {name}")))
        };
        let file_reference = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            extra["fileReference"].as_str().unwrap_or_default(),
        )
        .map_err(|e| TelegramError::Refused(format!("fileReference: {e}")))?;
        let dc_id = extra["dcId"].as_i64().and_then(|d| i32::try_from(d).ok());
        let location = if extra.get("photoId").is_some() {
            tl::enums::InputFileLocation::InputPhotoFileLocation(tl::types::InputPhotoFileLocation {
                id: number("photoId")?,
                access_hash: number("accessHash")?,
                file_reference,
                thumb_size: extra["thumbSize"].as_str().unwrap_or("y").to_owned(),
            })
        } else if extra.get("documentId").is_some() {
            tl::enums::InputFileLocation::InputDocumentFileLocation(tl::types::InputDocumentFileLocation {
                id: number("documentId")?,
                access_hash: number("accessHash")?,
                file_reference,
                thumb_size: String::new(),
            })
        } else {
            return Err(TelegramError::Refused("this attachment has no downloadable media".into()));
        };
        Ok(Self { location, dc_id })
    }
}

/// The real thing: grammers over the database-backed session.
pub struct GrammersConnector;

#[async_trait]
impl TelegramConnector for GrammersConnector {
    async fn connect(
        &self,
        session: Arc<DbSession>,
        api_id: i32,
        api_hash: &SecretString,
    ) -> Result<Arc<dyn TelegramClient>, TelegramError> {
        let SenderPool { runner, updates, handle } = SenderPool::new(session.clone(), api_id);
        let client = Client::new(handle.clone());
        let runner = tokio::spawn(runner.run());
        Ok(Arc::new(GrammersClient {
            client,
            handle: handle.thin.clone(),
            session,
            api_id,
            api_hash: api_hash.clone(),
            runner,
            updates: tokio::sync::Mutex::new(Updates::NotStarted(updates)),
        }))
    }
}

/// The update feed: grammers' receiver (message box with gap recovery and catch-up) and the
/// mapped messages of the batch being handled.
enum Updates {
    NotStarted(tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>),
    Streaming { receiver: Box<UpdatesReceiver>, pending: VecDeque<TelegramMessage> },
    Gone,
}

struct GrammersClient {
    client: Client,
    handle: SenderPoolHandle,
    session: Arc<DbSession>,
    api_id: i32,
    api_hash: SecretString,
    runner: JoinHandle<()>,
    updates: tokio::sync::Mutex<Updates>,
}

fn signed_in(user: &grammers_client::peer::User) -> SignedIn {
    SignedIn {
        user_id: user.id().bare_id().unwrap_or_default(),
        name: user.full_name(),
        username: user.username().map(str::to_owned),
        phone: user.phone().map(str::to_owned),
    }
}

fn storage_failure(err: impl std::fmt::Display) -> SignInFailure {
    SignInFailure::Telegram(TelegramError::Unavailable(err.to_string()))
}

impl GrammersClient {
    /// The account's two-step verification parameters, fetched afresh (and its hint).
    async fn password_token(&self) -> Result<PasswordToken, TelegramError> {
        let password: tl::types::account::Password = self.client.invoke(&tl::functions::account::GetPassword {}).await?.into();
        Ok(PasswordToken::new(password))
    }

    /// What grammers' own `complete_login` stores once signed in (it is private there, and its
    /// `sign_in` wants a login token only the client that sent the code holds): the account
    /// itself as the session's own peer, and the update state to start from.
    async fn complete_login(&self, authorization: tl::types::auth::Authorization) -> Result<SignedIn, SignInFailure> {
        let state = self.client.invoke(&tl::functions::updates::GetState {}).await.ok();
        let hash = match &authorization.user {
            tl::enums::User::User(user) if !user.min => user.access_hash,
            _ => None,
        };
        let user = grammers_client::peer::User::from_raw(&self.client, authorization.user);
        let me = PeerInfo::User {
            id: user.id().bare_id_unchecked(),
            auth: hash.map(PeerAuth::from_hash),
            bot: Some(user.is_bot()),
            is_self: Some(true),
        };
        self.session.cache_peer(me).await.map_err(storage_failure)?;
        if let Some(tl::enums::updates::State::State(state)) = state {
            let all = UpdatesState { pts: state.pts, qts: state.qts, date: state.date, seq: state.seq, channels: Vec::new() };
            self.session.set_update_state(UpdateState::All(all)).await.map_err(storage_failure)?;
        }
        Ok(signed_in(&user))
    }
}

#[async_trait]
impl TelegramClient for GrammersClient {
    async fn is_authorized(&self) -> Result<bool, TelegramError> {
        Ok(self.client.is_authorized().await?)
    }

    /// grammers' `request_login_code`, answering the hash its login token keeps private.
    async fn request_login_code(&self, phone: &str) -> Result<String, TelegramError> {
        use tl::enums::auth::SentCode;
        let request = tl::functions::auth::SendCode {
            phone_number: phone.to_owned(),
            api_id: self.api_id,
            api_hash: self.api_hash.expose_secret().to_owned(),
            settings: tl::types::CodeSettings {
                allow_flashcall: false,
                current_number: false,
                allow_app_hash: false,
                allow_missed_call: false,
                allow_firebase: false,
                logout_tokens: None,
                token: None,
                app_sandbox: None,
                unknown_number: false,
            }
            .into(),
        };
        let sent = match self.client.invoke(&request).await {
            // The number lives on another DC: it becomes the session's home, and the code is asked there.
            Err(InvocationError::Rpc(err)) if err.code == 303 && err.value.is_some() => {
                let old = self.session.home_dc_id().map_err(|e| TelegramError::Unavailable(e.to_string()))?;
                self.handle.disconnect_from_dc(old);
                let home = i32::try_from(err.value.unwrap_or_default()).unwrap_or_default();
                self.session.set_home_dc_id(home).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
                self.client.invoke(&request).await?
            }
            other => other?,
        };
        match sent {
            SentCode::Code(code) => Ok(code.phone_code_hash),
            SentCode::Success(_) => Err(TelegramError::Refused("the session is already logged in".into())),
            SentCode::PaymentRequired(_) => Err(TelegramError::Refused("Telegram asks for a payment to send the code".into())),
        }
    }

    /// grammers' `sign_in`, with the phone code hash given (see `request_login_code`).
    async fn sign_in(&self, phone: &str, phone_code_hash: &str, code: &str) -> Result<SignedIn, SignInFailure> {
        let request = tl::functions::auth::SignIn {
            phone_number: phone.to_owned(),
            phone_code_hash: phone_code_hash.to_owned(),
            phone_code: Some(code.to_owned()),
            email_verification: None,
        };
        match self.client.invoke(&request).await {
            Ok(tl::enums::auth::Authorization::Authorization(authorization)) => self.complete_login(authorization).await,
            Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => Err(SignInFailure::SignUpRequired),
            Err(err) if err.is("SESSION_PASSWORD_NEEDED") => {
                let token = self.password_token().await?;
                Err(SignInFailure::PasswordRequired { hint: token.hint().map(str::to_owned) })
            }
            Err(err) if err.is("PHONE_CODE_*") => Err(SignInFailure::InvalidCode),
            Err(err) => Err(SignInFailure::Telegram(err.into())),
        }
    }

    async fn check_password(&self, password: &str) -> Result<SignedIn, SignInFailure> {
        let token = self.password_token().await?;
        match self.client.check_password(token, password.as_bytes()).await {
            Ok(user) => Ok(signed_in(&user)),
            Err(SignInError::InvalidPassword(token)) => {
                Err(SignInFailure::InvalidPassword { hint: token.hint().map(str::to_owned) })
            }
            Err(SignInError::PasswordRequired(token)) => {
                Err(SignInFailure::PasswordRequired { hint: token.hint().map(str::to_owned) })
            }
            Err(SignInError::InvalidCode) => Err(SignInFailure::InvalidCode),
            Err(SignInError::SignUpRequired) => Err(SignInFailure::SignUpRequired),
            Err(SignInError::Other(err)) => Err(SignInFailure::Telegram(err.into())),
        }
    }

    async fn sign_out(&self) -> Result<(), TelegramError> {
        self.client.sign_out().await?;
        Ok(())
    }

    async fn next_message(&self) -> Result<Option<TelegramMessage>, TelegramError> {
        let mut updates = self.updates.lock().await;
        if let Updates::NotStarted(_) = &*updates {
            let Updates::NotStarted(receiver) = std::mem::replace(&mut *updates, Updates::Gone) else { unreachable!() };
            let session: Arc<grammers_session::storages::ErasedSession> = grammers_session::storages::erase(self.session.clone());
            let configuration = UpdatesConfiguration { catch_up: true };
            let receiver = UpdatesReceiver::create(self.handle.clone(), session, receiver, configuration)
                .await
                .map_err(|e| TelegramError::Unavailable(e.to_string()))?;
            *updates = Updates::Streaming { receiver: Box::new(receiver), pending: VecDeque::new() };
        }
        let Updates::Streaming { receiver, pending } = &mut *updates else { return Ok(None) };
        loop {
            if let Some(message) = pending.pop_front() {
                return Ok(Some(message));
            }
            // Everything fetched so far was handled: only now may the state move past it.
            receiver.sync_update_state().await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
            let (batch, users, chats) = match receiver.next().await {
                Ok(batch) => batch,
                Err(InvocationError::Dropped(_)) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let peers: Vec<PeerInfo> = users
                .iter()
                .cloned()
                .map(PeerInfo::from)
                .chain(chats.iter().cloned().map(PeerInfo::from))
                .filter(|info| info.auth().is_some())
                .collect();
            if let Err(err) = self.session.cache_peers(peers).await {
                tracing::warn!(error = %err, "telegram: cannot cache peers");
            }
            let names = mapping::peer_names(&users, &chats);
            for (update, _state) in batch {
                let raw = match update {
                    tl::enums::Update::NewMessage(u) => u.message,
                    tl::enums::Update::NewChannelMessage(u) => u.message,
                    _ => continue,
                };
                if let Some(message) = mapping::map_with_names(&raw, &names) {
                    pending.push_back(message);
                }
            }
        }
    }

    async fn save_update_state(&self) -> Result<(), TelegramError> {
        if let Updates::Streaming { receiver, pending } = &*self.updates.lock().await
            && pending.is_empty()
        {
            receiver.sync_update_state().await.map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }

    async fn send(&self, dialog_id: i64, message: &TelegramSend) -> Result<i32, TelegramError> {
        let peer_id = PeerId::from_bot_api_dialog_id(dialog_id)
            .ok_or_else(|| TelegramError::Refused(format!("{dialog_id} is not a Telegram chat id")))?;
        let peer =
            self.session.peer_ref(peer_id).await.map_err(|e| TelegramError::Unavailable(e.to_string()))?.ok_or_else(|| {
                TelegramError::Refused(format!(
                    "chat {dialog_id} is not in this account's peer cache (no access hash): it must write first"
                ))
            })?;
        let mut input = InputMessage::new().text(message.text.clone().unwrap_or_default());
        if let Some(media) = &message.media {
            let mut stream = std::io::Cursor::new(media.bytes.as_slice());
            let uploaded = self
                .client
                .upload_stream(&mut stream, media.bytes.len(), media.file_name.clone())
                .await
                .map_err(|e| TelegramError::Unavailable(format!("upload failed: {e}")))?;
            input = if media.photo { input.photo(uploaded) } else { input.document(uploaded) };
            if let Some(mime_type) = media.mime_type.as_deref().filter(|_| !media.photo) {
                input = input.mime_type(mime_type);
            }
        }
        let sent = self.client.send_message(peer, input).await?;
        Ok(sent.id())
    }

    async fn download(&self, extra: &Value) -> Result<Vec<u8>, TelegramError> {
        let file = StoredFile::of(extra)?;
        let mut download = self.client.iter_download(&file);
        let mut bytes = Vec::new();
        while let Some(chunk) = download.next().await? {
            bytes.extend(chunk);
            if bytes.len() > MAX_DOWNLOAD_BYTES {
                return Err(TelegramError::Refused(format!("the file is larger than {} MiB", MAX_DOWNLOAD_BYTES >> 20)));
            }
        }
        Ok(bytes)
    }

    fn disconnect(&self) {
        self.client.disconnect();
        self.runner.abort();
    }
}
