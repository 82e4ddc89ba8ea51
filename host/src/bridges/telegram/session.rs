//! grammers' [`Session`] over the store: the MTProto state of one Telegram account lives in the
//! `telegram_sessions` row (home DC and DC options, whose auth keys are sealed with the secret
//! key; the update state) and the `telegram_peers` table (the peer cache with access hashes), so
//! a restart or another replica resumes the account without a new login.
//!
//! grammers reads the home DC and DC options synchronously on every request: they are served from
//! memory and written through. Peers are cached in memory too; a peer is written only when what is
//! known about it changed (grammers caches every peer of every update).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use grammers_session::types::{ChannelState, DcOption, PeerId, PeerInfo, UpdateState, UpdatesState};
use grammers_session::{BoxFuture, Session, SessionData};
use serde_json::json;
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::store::{Store, TelegramPeerRow};

#[derive(Debug, thiserror::Error)]
#[error("telegram session storage: {0}")]
pub struct SessionError(String);

impl SessionError {
    fn new(err: impl std::fmt::Display) -> Self {
        Self(err.to_string())
    }
}

struct Cached {
    home_dc: i32,
    dc_options: HashMap<i32, DcOption>,
    updates: UpdatesState,
}

pub struct DbSession {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    id: Uuid,
    cached: Mutex<Cached>,
    peers: Mutex<HashMap<PeerId, PeerInfo>>,
    /// Serialises writes of the session row, so an older snapshot never overwrites a newer one.
    writing: tokio::sync::Mutex<()>,
}

impl DbSession {
    /// Loads a stored session (a new one starts from grammers' defaults: the known DCs, no keys).
    pub async fn load(store: Arc<dyn Store>, secrets: SecretBox, session_id: Uuid) -> Result<Arc<Self>, SessionError> {
        let row = store
            .get_telegram_session(session_id)
            .await
            .map_err(SessionError::new)?
            .ok_or_else(|| SessionError::new(format!("session {session_id} does not exist")))?;
        let defaults = SessionData::default();
        let data = &row.data.0;
        let home_dc = data["homeDc"].as_i64().and_then(|dc| i32::try_from(dc).ok()).unwrap_or(defaults.home_dc);
        let mut dc_options = defaults.dc_options;
        if let Some(sealed) = data["dcOptions"].as_str() {
            let opened = secrets.open(sealed).map_err(|e| SessionError::new(format!("cannot open the DC options: {e}")))?;
            let stored: Vec<DcOption> = serde_json::from_str(&opened).map_err(SessionError::new)?;
            dc_options.extend(stored.into_iter().map(|option| (option.id, option)));
        }
        let updates = match &row.update_state {
            Some(state) => serde_json::from_value(state.0.clone()).map_err(SessionError::new)?,
            None => UpdatesState::default(),
        };
        Ok(Arc::new(Self {
            store,
            secrets,
            id: session_id,
            cached: Mutex::new(Cached { home_dc, dc_options, updates }),
            peers: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    fn cached(&self) -> MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<PeerId, PeerInfo>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the home DC and DC options (auth keys sealed).
    async fn save_data(&self) -> Result<(), SessionError> {
        let _writing = self.writing.lock().await;
        let data = {
            let cached = self.cached();
            let mut options: Vec<&DcOption> = cached.dc_options.values().collect();
            options.sort_by_key(|option| option.id);
            let plain = serde_json::to_string(&options).map_err(SessionError::new)?;
            json!({ "homeDc": cached.home_dc, "dcOptions": self.secrets.seal(&plain) })
        };
        self.store.save_telegram_session_data(self.id, &data).await.map_err(SessionError::new)
    }

    async fn save_updates(&self) -> Result<(), SessionError> {
        let _writing = self.writing.lock().await;
        let state = serde_json::to_value(&self.cached().updates).map_err(SessionError::new)?;
        self.store.save_telegram_update_state(self.id, &state).await.map_err(SessionError::new)
    }

    async fn load_peer(&self, peer: PeerId) -> Result<Option<PeerInfo>, SessionError> {
        let is_self = peer == PeerId::self_user();
        let known = {
            let peers = self.peers();
            if is_self {
                peers.values().find(|info| matches!(info, PeerInfo::User { is_self: Some(true), .. })).cloned()
            } else {
                peers.get(&peer).cloned()
            }
        };
        if known.is_some() {
            return Ok(known);
        }
        let row = if is_self {
            self.store.get_telegram_self_peer(self.id).await
        } else {
            self.store.get_telegram_peer(self.id, peer.bot_api_dialog_id_unchecked()).await
        };
        let Some(row) = row.map_err(SessionError::new)? else { return Ok(None) };
        let info: PeerInfo = serde_json::from_value(row.data.0).map_err(SessionError::new)?;
        self.peers().insert(info.id(), info.clone());
        Ok(Some(info))
    }

    /// Merges what is new about these peers; writes the ones whose knowledge changed.
    async fn store_peers(&self, incoming: Vec<PeerInfo>) -> Result<(), SessionError> {
        let mut changed = Vec::new();
        for peer in incoming {
            let merged = match self.load_peer(peer.id()).await? {
                Some(mut existing) => {
                    let before = existing.clone();
                    existing.extend_info(&peer);
                    if existing == before {
                        continue;
                    }
                    existing
                }
                None => peer,
            };
            self.peers().insert(merged.id(), merged.clone());
            changed.push(peer_row(&merged)?);
        }
        self.store.put_telegram_peers(self.id, &changed).await.map_err(SessionError::new)
    }
}

/// How a peer is stored: its dialog id, kind, access hash and the whole `PeerInfo` as JSON.
fn peer_row(info: &PeerInfo) -> Result<TelegramPeerRow, SessionError> {
    let kind = match info {
        PeerInfo::User { is_self: Some(true), .. } => "self",
        PeerInfo::User { bot: Some(true), .. } => "bot",
        PeerInfo::User { .. } => "user",
        PeerInfo::Chat { .. } => "chat",
        PeerInfo::Channel { .. } => "channel",
    };
    let access_hash = match info {
        PeerInfo::Chat { .. } => None,
        other => other.auth().map(|auth| auth.hash()),
    };
    Ok(TelegramPeerRow {
        peer_id: info.id().bot_api_dialog_id_unchecked(),
        peer_kind: kind.to_owned(),
        access_hash,
        data: sqlx::types::Json(serde_json::to_value(info).map_err(SessionError::new)?),
    })
}

impl Session for DbSession {
    type Error = SessionError;

    fn home_dc_id(&self) -> Result<i32, SessionError> {
        Ok(self.cached().home_dc)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            self.cached().home_dc = dc_id;
            self.save_data().await
        })
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>, SessionError> {
        Ok(self.cached().dc_options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<(), SessionError>> {
        let dc_option = dc_option.clone();
        Box::pin(async move {
            self.cached().dc_options.insert(dc_option.id, dc_option);
            self.save_data().await
        })
    }

    fn peer(&self, peer: PeerId) -> BoxFuture<'_, Result<Option<PeerInfo>, SessionError>> {
        Box::pin(self.load_peer(peer))
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.store_peers(vec![peer]))
    }

    fn cache_peers(&self, peers: Vec<PeerInfo>) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.store_peers(peers))
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState, SessionError>> {
        Box::pin(async move { Ok(self.cached().updates.clone()) })
    }

    fn set_update_state(&self, update: UpdateState) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            {
                let mut cached = self.cached();
                let state = &mut cached.updates;
                match update {
                    UpdateState::All(all) => *state = all,
                    UpdateState::Primary { pts, date, seq } => {
                        state.pts = pts;
                        state.date = date;
                        state.seq = seq;
                    }
                    UpdateState::Secondary { qts } => state.qts = qts,
                    UpdateState::Channel { id, pts } => {
                        state.channels.retain(|c| c.id != id);
                        state.channels.push(ChannelState { id, pts });
                    }
                }
            }
            self.save_updates().await
        })
    }
}
