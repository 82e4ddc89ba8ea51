//! The WhatsApp bridge (whatsapp-rust, a linked device of the business's phone).
//!
//! - A WHATSAPP channel that is CONNECTING or CONNECTED should have a running client. Creating
//!   one (or `POST /api/channels/:id/connect`) makes it CONNECTING; the supervisor on each replica
//!   leases such sessions (one owner across replicas) and starts their clients.
//! - The client reports events: each pairing QR is stored with its expiry and emitted as
//!   `whatsapp-qr`; open makes the channel CONNECTED (`whatsapp-connected`, `channel-status`);
//!   QR codes exhausted, logout, device removal, bans and replaced streams stop the client with
//!   the reason in the channel status (a logout also clears the keys): no reconnect loop. A
//!   transient drop is the client's to reconnect and changes nothing.
//! - Messages are stored through `handle_inbound_message`; sends come from the queue worker,
//!   paced per session.

pub mod adapter;
pub mod client;
pub mod handlers;
pub mod mapping;
pub mod qr;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use self::client::{InboundBatch, InboundSink, WaEvent, WaMedia, WaSendError, WhatsAppClient, WhatsAppConnector};
use self::store::DbBackend;
use crate::bridges::handover::{self, Refusal, Task};
use crate::bridges::{BridgeDeps, LeaseRound, lease_round, store_received};
use crate::store::{Channel, ChannelStatus, SessionKind};

/// How long a pair code or download asked of the replica running the session may take.
const HANDOVER_WAIT: Duration = Duration::from_secs(60);
/// How long a disconnect waits for the replica running the session to unlink the device.
const LOGOUT_WAIT: Duration = Duration::from_secs(15);

/// The least time between two sends of one number: WhatsApp answers 429 around 3 messages/s and
/// bans numbers that burst.
const SEND_INTERVAL: Duration = Duration::from_millis(400);

pub struct WhatsAppBridge {
    connector: Arc<dyn WhatsAppConnector>,
    owner: String,
    live: Mutex<HashMap<Uuid, LiveSession>>,
    halted: AtomicBool,
    /// One supervisor round (or disconnect) at a time, so a session is never started twice.
    reconciling: tokio::sync::Mutex<()>,
}

struct LiveSession {
    session_id: Uuid,
    client: Arc<dyn WhatsAppClient>,
    task: JoinHandle<()>,
    /// Tells the event loop the client was stopped (it drains what was delivered, then ends).
    stop: watch::Sender<bool>,
    /// When this session may send next.
    next_send: Arc<tokio::sync::Mutex<Instant>>,
    /// Until when our lease is known to hold (see `bridges::lease_round`).
    lease_until: DateTime<Utc>,
}

/// Why a send through the bridge did not happen.
#[derive(Debug)]
pub enum WhatsAppSendError {
    NotLiveHere,
    WhatsApp(WaSendError),
}

impl WhatsAppBridge {
    /// `owner`: this replica's name on the leases it holds.
    pub fn new(connector: Arc<dyn WhatsAppConnector>, owner: String) -> Self {
        Self { connector, owner, live: Default::default(), halted: Default::default(), reconciling: Default::default() }
    }

    /// This replica's name on the leases it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn live(&self) -> MutexGuard<'_, HashMap<Uuid, LiveSession>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions in this process by state: `running`, and `ended` (its task stopped, not yet reaped).
    pub fn session_counts(&self) -> [(&'static str, usize); 2] {
        let (running, ended) =
            self.live().values().fold((0, 0), |(r, e), live| if live.task.is_finished() { (r, e + 1) } else { (r + 1, e) });
        [("running", running), ("ended", ended)]
    }

    /// Whether this replica runs the client of a channel now.
    pub fn is_live_here(&self, channel_id: Uuid) -> bool {
        self.live().get(&channel_id).is_some_and(|live| !live.task.is_finished())
    }

    /// Whether any session runs here (only then can another replica ask this one for work).
    pub fn runs_any(&self) -> bool {
        !self.live().is_empty()
    }

    fn client(&self, channel_id: Uuid) -> Option<Arc<dyn WhatsAppClient>> {
        self.live().get(&channel_id).filter(|live| !live.task.is_finished()).map(|live| live.client.clone())
    }

    /// Starts (or resumes) a channel's session: CONNECTING now, and running on the replica that
    /// takes its lease (this one, when free).
    pub async fn connect(&self, state: &BridgeDeps, channel: &Channel) -> Result<Channel, crate::store::StoreError> {
        state.store.whatsapp_session_for_channel(channel.tenant_id, channel.id).await?;
        let status =
            if channel.status == ChannelStatus::Connected { ChannelStatus::Connected } else { ChannelStatus::Connecting };
        let updated = state.status.set(channel.tenant_id, channel.id, status, None).await.unwrap_or_else(|| channel.clone());
        self.reconcile(state).await;
        Ok(updated)
    }

    /// Ends a channel's session: DISCONNECTED first (so no supervisor round starts it again),
    /// then the device is logged out (unlinked at WhatsApp) and stopped by the replica that runs
    /// it (this one, or another asked through the database), and the keys cleared after the
    /// client's last save.
    pub async fn disconnect(&self, state: &BridgeDeps, channel: &Channel) {
        state.status.set(channel.tenant_id, channel.id, ChannelStatus::Disconnected, Some("disconnected")).await;
        let session = match state.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(channel.id = %channel.id, error = %err, "whatsapp: cannot find the session");
                None
            }
        };
        if !self.is_live_here(channel.id)
            && let Some(owner) = self.running_elsewhere(session.as_ref())
        {
            // Its supervisor would log it out within a round anyway; asked, it does so at once.
            match handover::ask(state, owner, channel.id, Task::WhatsAppLogout, json!({}), LOGOUT_WAIT).await {
                Ok(_) | Err(Refusal::NotLive) => {}
                Err(err) => {
                    tracing::warn!(channel.id = %channel.id, error = %err, "whatsapp: the replica running the session did not log it out; its supervisor will")
                }
            }
        }
        let _round = self.reconciling.lock().await;
        self.stop_local(state, channel.id, Ending::Logout).await;
        if let Some(session) = session
            && let Err(err) = state.store.clear_whatsapp_session(session.id).await
        {
            tracing::warn!(channel.id = %channel.id, error = %err, "whatsapp: cannot clear the session");
        }
    }

    /// The replica running a channel's session, when it is another one.
    fn running_elsewhere(&self, session: Option<&crate::store::WhatsAppSessionRow>) -> Option<String> {
        let lease = session.and_then(|s| Some((s.lease_owner.clone()?, s.lease_until?)));
        handover::running_elsewhere(lease, &self.owner)
    }

    /// Asks WhatsApp for a pairing code for `phone_digits`, on the client of the replica that
    /// runs the session (this one, or another asked through the database).
    pub async fn pair_code(&self, state: &BridgeDeps, channel: &Channel, phone_digits: &str) -> Result<String, Refusal> {
        if self.is_live_here(channel.id) {
            return self.pair_code_here(channel.id, phone_digits).await;
        }
        let owner = self.owner_elsewhere(state, channel).await?;
        let code = handover::ask(state, owner, channel.id, Task::WhatsAppPairCode, json!({"phone": phone_digits}), HANDOVER_WAIT)
            .await?;
        String::from_utf8(code).map_err(|_| Refusal::Unavailable("the pair code was not text".into()))
    }

    /// Downloads an inbound attachment through the client of the replica that runs the session.
    pub async fn download(&self, state: &BridgeDeps, channel: &Channel, extra: &Value) -> Result<Vec<u8>, Refusal> {
        if self.is_live_here(channel.id) {
            return self.download_here(channel.id, extra).await;
        }
        let owner = self.owner_elsewhere(state, channel).await?;
        handover::ask(state, owner, channel.id, Task::WhatsAppDownload, json!({"extra": extra}), HANDOVER_WAIT).await
    }

    async fn owner_elsewhere(&self, state: &BridgeDeps, channel: &Channel) -> Result<String, Refusal> {
        let session =
            state.store.whatsapp_session_of_channel(channel.tenant_id, channel.id).await.map_err(|_| Refusal::NoAnswer)?;
        self.running_elsewhere(session.as_ref()).ok_or(Refusal::NotLive)
    }

    /// [`Self::pair_code`] on this replica's client.
    pub(crate) async fn pair_code_here(&self, channel_id: Uuid, phone_digits: &str) -> Result<String, Refusal> {
        let client = self.client(channel_id).ok_or(Refusal::NotLive)?;
        client.pair_code(phone_digits).await.map_err(Refusal::Unavailable)
    }

    /// [`Self::download`] on this replica's client.
    pub(crate) async fn download_here(&self, channel_id: Uuid, extra: &Value) -> Result<Vec<u8>, Refusal> {
        let client = self.client(channel_id).ok_or(Refusal::NotLive)?;
        client.download(extra).await.map_err(Refusal::Unavailable)
    }

    /// Logs out and stops this replica's client of a channel (a disconnect asked elsewhere).
    pub(crate) async fn logout_here(&self, state: &BridgeDeps, channel_id: Uuid) -> Result<(), Refusal> {
        let _round = self.reconciling.lock().await;
        if !self.live().contains_key(&channel_id) {
            return Err(Refusal::NotLive);
        }
        self.stop_local(state, channel_id, Ending::Logout).await;
        Ok(())
    }

    /// Sends text, or media with the text as caption, paced per session.
    pub async fn send(
        &self,
        channel_id: Uuid,
        to: &str,
        text: Option<&str>,
        media: Option<WaMedia>,
    ) -> Result<String, WhatsAppSendError> {
        let (client, next_send) = {
            let live = self.live();
            let live = live.get(&channel_id).filter(|live| !live.task.is_finished()).ok_or(WhatsAppSendError::NotLiveHere)?;
            (live.client.clone(), live.next_send.clone())
        };
        {
            let mut next = next_send.lock().await;
            tokio::time::sleep_until((*next).into()).await;
            *next = Instant::now() + SEND_INTERVAL;
        }
        let sent = async {
            match media {
                Some(media) => client.send_media(to, media).await,
                None => client.send_text(to, text.unwrap_or_default()).await,
            }
        };
        let sent = tokio::time::timeout(crate::bridges::SEND_TIMEOUT, sent)
            .await
            .unwrap_or_else(|_| Err(WaSendError::Unavailable("the send timed out".into())));
        sent.map_err(WhatsAppSendError::WhatsApp)
    }

    async fn start(&self, state: &BridgeDeps, tenant_id: Uuid, channel_id: Uuid, session_id: Uuid, lease_until: DateTime<Utc>) {
        let backend = Arc::new(DbBackend::new(state.store.clone(), state.secrets.clone(), session_id));
        let (events, received) = mpsc::unbounded_channel();
        let inbound = Arc::new(SessionInbound { state: state.clone(), tenant_id, channel_id, backend: backend.clone() });
        let client = match self.connector.start(backend.clone(), events, inbound).await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(channel.id = %channel_id, error = %err, "whatsapp: cannot start the client");
                return;
            }
        };
        let session = Session { state: state.clone(), tenant_id, channel_id, session_id, client: client.clone(), backend };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(session.run(received, stopped));
        tracing::info!(channel.id = %channel_id, session.id = %session_id, "whatsapp: client started");
        let next_send = Arc::new(tokio::sync::Mutex::new(Instant::now()));
        let live = LiveSession { session_id, client, task, stop, next_send, lease_until };
        let previous = self.live().insert(channel_id, live);
        if let Some(previous) = previous {
            previous.client.stop().await;
            previous.task.abort();
        }
    }

    /// Stops the local client of a channel: first the client (so its last events are handed
    /// over), then its event loop once it has drained them; a logout also unlinks the device and
    /// clears its keys after the client's final save. The lease is released unless lost.
    async fn stop_local(&self, state: &BridgeDeps, channel_id: Uuid, ending: Ending) {
        let Some(mut live) = self.live().remove(&channel_id) else { return };
        match ending {
            Ending::Logout => live.client.logout().await,
            Ending::Stop | Ending::LeaseLost => live.client.stop().await,
        }
        let _ = live.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), &mut live.task).await.is_err() {
            live.task.abort();
        }
        if ending == Ending::Logout
            && let Err(err) = state.store.clear_whatsapp_session(live.session_id).await
        {
            tracing::warn!(channel.id = %channel_id, error = %err, "whatsapp: cannot clear the keys");
        }
        if ending != Ending::LeaseLost
            && let Err(err) = state.store.release_session_lease(SessionKind::WhatsApp, live.session_id, &self.owner).await
        {
            tracing::warn!(session.id = %live.session_id, error = %err, "whatsapp: cannot release the lease");
        }
    }

    /// One supervisor round: leases, starts, renews and stops clients so that this replica runs
    /// exactly the sessions it owns.
    pub async fn reconcile(&self, state: &BridgeDeps) {
        if self.halted.load(Ordering::SeqCst) {
            return;
        }
        let _round = self.reconciling.lock().await;
        let sessions = match state.store.list_live_whatsapp_sessions().await {
            Ok(sessions) => sessions,
            Err(err) => return tracing::warn!(error = %err, "whatsapp: cannot list sessions"),
        };
        // A session that ended by itself (logout, ban, QR codes exhausted) just goes; one whose
        // channel was disconnected or deleted elsewhere is logged out here, where it runs.
        let stale: Vec<(Uuid, Ending)> = self
            .live()
            .iter()
            .filter(|(_, live)| live.task.is_finished() || !sessions.iter().any(|s| s.id == live.session_id))
            .map(|(channel_id, live)| (*channel_id, if live.task.is_finished() { Ending::Stop } else { Ending::Logout }))
            .collect();
        for (channel_id, ending) in stale {
            self.stop_local(state, channel_id, ending).await;
        }
        for row in sessions {
            let running_until =
                self.live().get(&row.channel_instance_id).filter(|live| live.session_id == row.id).map(|live| live.lease_until);
            match lease_round(state, SessionKind::WhatsApp, row.id, &self.owner, running_until).await {
                LeaseRound::Start { until } => self.start(state, row.tenant_id, row.channel_instance_id, row.id, until).await,
                LeaseRound::Renewed { until } => {
                    if let Some(live) = self.live().get_mut(&row.channel_instance_id) {
                        live.lease_until = until;
                    }
                }
                LeaseRound::Stop => self.stop_local(state, row.channel_instance_id, Ending::LeaseLost).await,
                LeaseRound::Keep => {}
            }
        }
    }

    /// Stops every local client and gives the leases back (shutdown).
    pub async fn stop_all(&self, state: &BridgeDeps) {
        let _round = self.reconciling.lock().await;
        let channels: Vec<Uuid> = self.live().keys().copied().collect();
        for channel_id in channels {
            self.stop_local(state, channel_id, Ending::Stop).await;
        }
    }

    /// Stops every client at once and supervises no more, keeping the leases until they expire:
    /// what a crashed replica leaves behind (the takeover tests use it).
    pub fn halt(&self) {
        self.halted.store(true, Ordering::SeqCst);
        for (_, live) in self.live().drain() {
            live.task.abort();
            tokio::spawn(async move { live.client.stop().await });
        }
    }
}

/// How a local client ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Stopped, still paired (shutdown, or the session ended by itself).
    Stop,
    /// Unlinked at WhatsApp and its keys cleared (disconnect, channel deleted).
    Logout,
    /// Another replica holds the lease now: stop without touching it.
    LeaseLost,
}

/// A sender known only by its `@lid` is the phone's customer when the session has learnt that
/// LID's phone number (WhatsApp's LID-PN mapping, kept in the key store).
async fn resolve_lid(backend: &DbBackend, mapped: &mut mapping::WhatsAppMessage) {
    use wacore::store::traits::ProtocolStore;
    let Some(lid) = mapped.customer.strip_suffix("@lid") else { return };
    if let Ok(Some(entry)) = backend.get_lid_mapping(lid).await {
        let phone = format!("{}@s.whatsapp.net", entry.phone_number);
        if mapped.chat == mapped.customer {
            mapped.chat = phone.clone();
        }
        mapped.customer = phone;
    }
}

/// What a session's client hands its inbound messages to before acknowledging them: each is
/// stored through `handle_inbound_message`, and only a committed batch is acknowledged.
struct SessionInbound {
    state: BridgeDeps,
    tenant_id: Uuid,
    channel_id: Uuid,
    backend: Arc<DbBackend>,
}

#[async_trait::async_trait]
impl InboundSink for SessionInbound {
    async fn store(&self, batch: &InboundBatch) -> Result<(), String> {
        for (message, info) in batch {
            if let Some(mut mapped) = mapping::map_message(message, info) {
                resolve_lid(&self.backend, &mut mapped).await;
                let payload = mapped.to_payload(self.tenant_id, self.channel_id);
                if let Err(err) = self.state.inbound.handle("WHATSAPP", payload).await {
                    tracing::warn!(channel.id = %self.channel_id, error = %err, "whatsapp: a message was not stored; WhatsApp redelivers it");
                    return Err(err.to_string());
                }
            }
        }
        Ok(())
    }
}

/// The event loop of one running client.
struct Session {
    state: BridgeDeps,
    tenant_id: Uuid,
    channel_id: Uuid,
    session_id: Uuid,
    client: Arc<dyn WhatsAppClient>,
    backend: Arc<DbBackend>,
}

impl Session {
    /// Handles events until the client ends the session, or until `stopped` (the client was
    /// stopped): then what it had already delivered is still handled.
    async fn run(self, mut events: mpsc::UnboundedReceiver<WaEvent>, mut stopped: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                biased;
                event = events.recv() => event,
                _ = stopped.changed() => {
                    while let Ok(event) = events.try_recv() {
                        if !self.handle(event).await {
                            return;
                        }
                    }
                    return;
                }
            };
            let Some(event) = event else {
                // The client dropped its end without being stopped: nothing runs any more.
                if !*stopped.borrow() {
                    self.end(ChannelStatus::Error, "the WhatsApp client stopped unexpectedly", false).await;
                }
                return;
            };
            if !self.handle(event).await {
                return;
            }
        }
    }

    /// Handles one event; `false` when the session ended.
    async fn handle(&self, event: WaEvent) -> bool {
        let (state, tenant_id, channel_id) = (&self.state, self.tenant_id, self.channel_id);
        match event {
            WaEvent::Qr { code, ttl } => {
                let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                if let Err(err) = state.store.set_whatsapp_qr(self.session_id, Some(&code), Some(expires_at)).await {
                    tracing::warn!(channel.id = %channel_id, error = %err, "whatsapp: cannot store the QR code");
                }
                let payload = json!({ "channelInstanceId": channel_id, "qr": code, "expiresAt": expires_at });
                state.realtime.emit(tenant_id, channel_id, "whatsapp-qr", &payload).await;
                true
            }
            WaEvent::Connected => {
                let _ = state.store.set_whatsapp_qr(self.session_id, None, None).await;
                state.status.set(tenant_id, channel_id, ChannelStatus::Connected, None).await;
                state
                    .realtime
                    .emit(tenant_id, channel_id, "whatsapp-connected", &json!({ "channelInstanceId": channel_id }))
                    .await;
                tracing::info!(channel.id = %channel_id, "whatsapp: connected");
                true
            }
            WaEvent::Disconnected { reason } => {
                tracing::info!(channel.id = %channel_id, reason, "whatsapp: connection dropped; the client reconnects");
                true
            }
            WaEvent::Messages(batch) => {
                for (message, info) in batch {
                    if let Some(mut mapped) = mapping::map_message(&message, &info) {
                        resolve_lid(&self.backend, &mut mapped).await;
                        // Stored already by the durability hook (then a duplicate), unless the hook
                        // does not cover it (newsletters): acknowledged then, so retried until stored.
                        let payload = mapped.to_payload(tenant_id, channel_id);
                        store_received(&self.state, "whatsapp", "WHATSAPP", channel_id, payload, std::future::pending::<()>())
                            .await;
                    }
                }
                true
            }
            WaEvent::QrExhausted => {
                self.end(ChannelStatus::Disconnected, "the QR codes expired before one was scanned: connect again", false).await
            }
            WaEvent::LoggedOut { reason } => {
                let why = format!("logged out or removed on the phone ({reason}): connect and pair again");
                self.end(ChannelStatus::Disconnected, &why, true).await
            }
            WaEvent::Banned { reason } => self.end(ChannelStatus::Error, &reason, false).await,
            WaEvent::Failed { reason } => self.end(ChannelStatus::Error, &reason, false).await,
            WaEvent::PairingFailed { reason } => self.end(ChannelStatus::Disconnected, &reason, false).await,
            WaEvent::Replaced => self.end(ChannelStatus::Error, "another connection replaced this WhatsApp session", false).await,
        }
    }

    /// The session is over: stop the client (then clear the keys, so a final save cannot bring
    /// them back), and record why. No reconnect follows.
    async fn end(&self, status: ChannelStatus, reason: &str, clear_keys: bool) -> bool {
        tracing::warn!(channel.id = %self.channel_id, %status, reason, "whatsapp: session ended");
        self.client.stop().await;
        let state = &self.state;
        let _ = state.store.set_whatsapp_qr(self.session_id, None, None).await;
        if clear_keys && let Err(err) = state.store.clear_whatsapp_session(self.session_id).await {
            tracing::warn!(channel.id = %self.channel_id, error = %err, "whatsapp: cannot clear the keys");
        }
        state.status.set(self.tenant_id, self.channel_id, status, Some(reason)).await;
        false
    }
}
