//! A scripted WhatsApp for the bridge's seam. Its clients work on the host's real
//! database-backed store, as whatsapp-rust does: a client starts from the stored device (paired:
//! it connects at once; not paired: it shows a QR code), `pair` stores a paired device the way a
//! scan does, and the test drives the rest of the lifecycle with events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use omnichat::bridges::whatsapp::client::{InboundSink, WaEvent, WaMedia, WaSendError, WhatsAppClient, WhatsAppConnector};
use omnichat::bridges::whatsapp::store::DbBackend;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;
use wacore::store::traits::DeviceStore;

/// The business's own number once paired.
pub const OWN_NUMBER: &str = "4917600000000";

#[derive(Default)]
pub struct WhatsAppScript {
    state: Mutex<WaScriptState>,
}

/// One message a client sent.
#[derive(Debug, Clone)]
pub struct WaSent {
    pub to: String,
    pub text: Option<String>,
    pub media: Option<WaMedia>,
    pub at: Instant,
}

/// A running client's event sender, backend and inbound sink.
type RunningClient = (UnboundedSender<WaEvent>, Arc<DbBackend>, Arc<dyn InboundSink>);

#[derive(Default)]
pub struct WaScriptState {
    /// Clients started, in order (by session row).
    pub starts: Vec<Uuid>,
    /// QR codes shown, by session.
    pub qr_codes: Vec<Uuid>,
    pub sent: Vec<WaSent>,
    pub logged_out: Vec<Uuid>,
    pub stopped: Vec<Uuid>,
    pub pair_codes: Vec<String>,
    /// The bytes a download answers.
    pub media: Vec<u8>,
    /// Inbound messages acknowledged to "WhatsApp" (their ids), as the durability hook allows.
    pub acked: Vec<String>,
    /// The event senders, backends and inbound sinks of the running clients, by session.
    clients: HashMap<Uuid, RunningClient>,
    /// The device each running client holds in memory: saved again when it stops, as
    /// whatsapp-rust's shutdown does.
    devices: HashMap<Uuid, wacore::store::Device>,
    next_id: u32,
}

impl WhatsAppScript {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn connector(self: &Arc<Self>) -> Arc<dyn WhatsAppConnector> {
        Arc::new(ScriptedConnector(self.clone()))
    }

    pub fn state(&self) -> MutexGuard<'_, WaScriptState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends an event from the client of the most recently started session.
    pub fn emit(&self, event: WaEvent) {
        let s = self.state();
        let session = s.starts.last().expect("a client was started");
        let (events, _, _) = s.clients.get(session).expect("the client is running");
        let _ = events.send(event);
    }

    /// The inbound sink (what the durability hook calls) of the most recently started client.
    pub fn sink(&self) -> Arc<dyn InboundSink> {
        let s = self.state();
        let session = s.starts.last().expect("a client was started");
        s.clients.get(session).expect("the client is running").2.clone()
    }

    /// What whatsapp-rust does with inbound messages when the durability hook is registered:
    /// hands them to the host's sink, and only when it committed acknowledges them (and reports
    /// them as an event). `Err`: nothing acknowledged (WhatsApp would deliver them again).
    pub async fn deliver(
        &self,
        batch: Vec<(Arc<waproto::whatsapp::Message>, Arc<wacore::types::message::MessageInfo>)>,
    ) -> Result<(), String> {
        self.sink().store(&batch).await?;
        self.state().acked.extend(batch.iter().map(|(_, info)| info.id.to_string()));
        self.emit(WaEvent::Messages(batch));
        Ok(())
    }

    /// What a QR scan on the phone does: the device is stored paired, and the session opens.
    pub async fn pair(&self) {
        let backend = {
            let s = self.state();
            let session = s.starts.last().expect("a client was started");
            s.clients.get(session).expect("the client is running").1.clone()
        };
        let mut device = backend.load().await.expect("load").unwrap_or_default();
        device.pn = Some(format!("{OWN_NUMBER}:7@s.whatsapp.net").parse().expect("jid"));
        device.push_name = "Acme Support".into();
        backend.save(&device).await.expect("save");
        self.state().devices.insert(backend.session_id(), device);
        self.emit(WaEvent::Connected);
    }
}

struct ScriptedConnector(Arc<WhatsAppScript>);

#[async_trait]
impl WhatsAppConnector for ScriptedConnector {
    async fn start(
        &self,
        backend: Arc<DbBackend>,
        events: UnboundedSender<WaEvent>,
        inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn WhatsAppClient>, String> {
        // As whatsapp-rust: a new store gets a fresh device; a paired one connects without a QR.
        if !backend.exists().await.map_err(|e| e.to_string())? {
            backend.create().await.map_err(|e| e.to_string())?;
        }
        let device = backend.load().await.map_err(|e| e.to_string())?.unwrap_or_default();
        let paired = device.pn.is_some();
        let session = backend.session_id();
        {
            let mut s = self.0.state();
            s.starts.push(session);
            s.devices.insert(session, device);
            s.clients.insert(session, (events.clone(), backend, inbound));
            if !paired {
                s.qr_codes.push(session);
            }
        }
        let first = if paired {
            WaEvent::Connected
        } else {
            WaEvent::Qr { code: format!("2@scripted-qr-{}", Uuid::new_v4().simple()), ttl: Duration::from_secs(60) }
        };
        let _ = events.send(first);
        Ok(Arc::new(ScriptedClient { script: self.0.clone(), session }))
    }
}

struct ScriptedClient {
    script: Arc<WhatsAppScript>,
    session: Uuid,
}

impl ScriptedClient {
    fn record(&self, to: &str, text: Option<&str>, media: Option<WaMedia>) -> Result<String, WaSendError> {
        if !to.contains('@') {
            return Err(WaSendError::Refused(format!("{to:?} is not a WhatsApp JID")));
        }
        let mut s = self.script.state();
        s.next_id += 1;
        let id = format!("3EB0SENT{:04}", s.next_id);
        s.sent.push(WaSent { to: to.to_owned(), text: text.map(str::to_owned), media, at: Instant::now() });
        Ok(id)
    }
}

#[async_trait]
impl WhatsAppClient for ScriptedClient {
    async fn pair_code(&self, phone_digits: &str) -> Result<String, String> {
        self.script.state().pair_codes.push(phone_digits.to_owned());
        Ok("ABCD-EFGH".into())
    }

    async fn send_text(&self, to: &str, text: &str) -> Result<String, WaSendError> {
        self.record(to, Some(text), None)
    }

    async fn send_media(&self, to: &str, media: WaMedia) -> Result<String, WaSendError> {
        self.record(to, None, Some(media))
    }

    async fn download(&self, extra: &Value) -> Result<Vec<u8>, String> {
        if extra["download"]["directPath"].as_str().is_none() {
            return Err("no direct path".into());
        }
        Ok(self.script.state().media.clone())
    }

    async fn logout(&self) {
        self.script.state().logged_out.push(self.session);
        self.stop().await;
    }

    async fn stop(&self) {
        let (client, device) = {
            let mut s = self.script.state();
            s.stopped.push(self.session);
            (s.clients.remove(&self.session), s.devices.remove(&self.session))
        };
        // The final save of the in-memory device, as the real client's shutdown does.
        if let (Some((_, backend, _)), Some(device)) = (client, device) {
            backend.save(&device).await.expect("final save");
        }
    }
}
