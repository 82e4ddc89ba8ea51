//! The seam between the WhatsApp bridge and the WhatsApp network. [`WhatsAppConnector`] starts a
//! [`WhatsAppClient`] over a database-backed session and reports what happens as [`WaEvent`]s;
//! the real implementation is whatsapp-rust ([`RustConnector`]), and tests script their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use wacore::types::message::MessageInfo;
use waproto::whatsapp as wa;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::download::{DownloadParams, MediaType};
use whatsapp_rust::media::{AudioOptions, DocumentOptions, ImageOptions, VideoOptions};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::durability_hook::InboundMessage;
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::{Client, InboundDurabilityHook, Jid, SendError, UploadOptions};

use super::store::DbBackend;

/// What the bridge reacts to, from the client's events.
#[derive(Debug, Clone)]
pub enum WaEvent {
    /// A pairing QR code to show, valid for `ttl`.
    Qr {
        code: String,
        ttl: Duration,
    },
    /// The session is open (paired and connected).
    Connected,
    /// Every QR code expired unscanned: pairing stops until the next connect.
    QrExhausted,
    /// Logged out or the device was removed on the phone: the keys are void.
    LoggedOut {
        reason: String,
    },
    /// WhatsApp banned the number (temporarily or not).
    Banned {
        reason: String,
    },
    /// Another connection took this session over.
    Replaced,
    /// A transient drop; the client reconnects by itself.
    Disconnected {
        reason: String,
    },
    /// The connection cannot go on by itself (a connect failure other than a 5xx, a client
    /// WhatsApp calls outdated, a run loop that ended): the channel is ERROR with the reason and
    /// the local session ends, for the supervisor or a user to start again.
    Failed {
        reason: String,
    },
    /// Pairing went wrong (a pairing error, a QR scanned by a phone without multi-device): the
    /// channel is DISCONNECTED with the reason until the next connect.
    PairingFailed {
        reason: String,
    },
    Messages(Vec<(Arc<wa::Message>, Arc<MessageInfo>)>),
}

/// Why a send did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaSendError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Media to upload and send.
#[derive(Debug, Clone, PartialEq)]
pub struct WaMedia {
    pub kind: WaMediaKind,
    pub bytes: Vec<u8>,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaMediaKind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
}

/// Starts clients over stored sessions.
#[async_trait]
pub trait WhatsAppConnector: Send + Sync + 'static {
    /// Starts a client on `backend`. Its inbound messages go to `inbound` **before** they are
    /// acknowledged to WhatsApp (whatsapp-rust's inbound durability hook), and are then reported
    /// as [`WaEvent::Messages`] too.
    async fn start(
        &self,
        backend: Arc<DbBackend>,
        events: UnboundedSender<WaEvent>,
        inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn WhatsAppClient>, String>;
}

/// A batch of decrypted inbound messages, in arrival order.
pub type InboundBatch = [(Arc<wa::Message>, Arc<MessageInfo>)];

/// Where a client hands inbound messages before they are acknowledged to WhatsApp.
#[async_trait]
pub trait InboundSink: Send + Sync + 'static {
    /// Stores every message of the batch, idempotently (a redelivery is a duplicate). `Err`:
    /// none is acknowledged, and WhatsApp delivers them again on the next connect.
    async fn store(&self, batch: &InboundBatch) -> Result<(), String>;
}

/// whatsapp-rust's inbound durability hook over an [`InboundSink`]: the client acknowledges a
/// message only once the host committed it (at-least-once; the store's dedupe absorbs replays).
struct Durability(Arc<dyn InboundSink>);

#[async_trait]
impl InboundDurabilityHook for Durability {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[InboundMessage]) -> anyhow::Result<()> {
        let batch: Vec<_> = batch.iter().map(|m| (m.message.clone(), m.info.clone())).collect();
        self.0.store(&batch).await.map_err(anyhow::Error::msg)
    }
}

/// One running client, bound to one session.
#[async_trait]
pub trait WhatsAppClient: Send + Sync + 'static {
    /// Asks for a pairing code for this phone number (digits with country code).
    async fn pair_code(&self, phone_digits: &str) -> Result<String, String>;
    /// Sends to a chat JID; answers WhatsApp's message id.
    async fn send_text(&self, to: &str, text: &str) -> Result<String, WaSendError>;
    async fn send_media(&self, to: &str, media: WaMedia) -> Result<String, WaSendError>;
    /// Downloads the media an inbound attachment describes (`extra` as the mapping stored it).
    async fn download(&self, extra: &Value) -> Result<Vec<u8>, String>;
    /// Unlinks the device at WhatsApp (best effort) and stops.
    async fn logout(&self);
    /// Stops the client; the session stays paired.
    async fn stop(&self);
}

/// The real thing: whatsapp-rust over the database-backed store.
pub struct RustConnector;

/// Forwards the client's events in order, without blocking its receive loop.
struct Forward(UnboundedSender<WaEvent>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        if let Some(event) = map_event(&event) {
            let _ = self.0.send(event);
        }
    }
}

fn map_event(event: &Event) -> Option<WaEvent> {
    Some(match event {
        Event::PairingQrCode(qr) => WaEvent::Qr { code: qr.code.clone(), ttl: qr.timeout },
        Event::Connected(_) => WaEvent::Connected,
        Event::PairingQrCodesExhausted(_) => WaEvent::QrExhausted,
        Event::LoggedOut(out) => WaEvent::LoggedOut { reason: format!("logged out ({:?})", out.reason) },
        Event::ConnectFailure(failure) if failure.reason.is_logged_out() => {
            WaEvent::LoggedOut { reason: format!("logged out ({:?})", failure.reason) }
        }
        Event::ConnectFailure(failure) if failure.reason.should_reconnect() => {
            WaEvent::Disconnected { reason: format!("connect failure ({:?})", failure.reason) }
        }
        Event::ConnectFailure(failure) => WaEvent::Failed {
            reason: match &failure.message {
                Some(message) => format!("WhatsApp refused the connection ({:?}: {message})", failure.reason),
                None => format!("WhatsApp refused the connection ({:?})", failure.reason),
            },
        },
        Event::ClientOutdated(_) => {
            WaEvent::Failed { reason: "WhatsApp calls this client version outdated: update OmniChat".into() }
        }
        Event::PairError(error) => WaEvent::PairingFailed { reason: format!("pairing failed: {}", error.error) },
        Event::QrScannedWithoutMultidevice(_) => WaEvent::PairingFailed {
            reason:
                "the QR code was scanned by a phone without multi-device support: update WhatsApp on the phone and connect again"
                    .into(),
        },
        Event::TemporaryBan(ban) => {
            WaEvent::Banned { reason: format!("temporarily banned: {} (for {} s)", ban.code, ban.expire.num_seconds()) }
        }
        Event::StreamReplaced(_) => WaEvent::Replaced,
        Event::Disconnected(disconnected) => WaEvent::Disconnected { reason: format!("{:?}", disconnected.reason) },
        Event::Messages(batch) => WaEvent::Messages(batch.iter().map(|m| (m.message.clone(), m.info.clone())).collect()),
        _ => return None,
    })
}

#[async_trait]
impl WhatsAppConnector for RustConnector {
    async fn start(
        &self,
        backend: Arc<DbBackend>,
        events: UnboundedSender<WaEvent>,
        inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn WhatsAppClient>, String> {
        let bot = Bot::builder()
            .with_backend_arc(backend)
            .with_event_handler(Forward(events.clone()))
            .with_inbound_durability_hook(Durability(inbound))
            .build()
            .await
            .map_err(|e| format!("cannot start the WhatsApp client: {e}"))?;
        // The run loop on a task of our own, so its end is seen: unless we stopped it, an ended
        // loop is a session that cannot go on (never a channel left CONNECTED with nothing running).
        let client = bot.client();
        let stopping = Arc::new(AtomicBool::new(false));
        let watch = stopping.clone();
        let run = tokio::spawn(async move {
            bot.run().await;
            if !watch.load(Ordering::SeqCst) {
                let _ = events.send(WaEvent::Failed { reason: "the WhatsApp client's connection loop ended".into() });
            }
        });
        Ok(Arc::new(RustClient { client, stopping, run: tokio::sync::Mutex::new(Some(run)) }))
    }
}

struct RustClient {
    client: Arc<Client>,
    /// Set before a deliberate stop, so its end is not reported as a failure.
    stopping: Arc<AtomicBool>,
    run: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn jid(to: &str) -> Result<Jid, WaSendError> {
    to.parse().map_err(|e| WaSendError::Refused(format!("{to:?} is not a WhatsApp JID: {e}")))
}

fn send_failure(err: SendError) -> WaSendError {
    match err {
        SendError::InvalidRequest(why) => WaSendError::Refused(why),
        other => WaSendError::Unavailable(other.to_string()),
    }
}

fn bytes_field(extra: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = extra[name].as_str().ok_or_else(|| format!("the attachment has no {name}"))?;
    STANDARD.decode(text).map_err(|e| format!("{name}: {e}"))
}

#[async_trait]
impl WhatsAppClient for RustClient {
    async fn pair_code(&self, phone_digits: &str) -> Result<String, String> {
        self.client.wait_for_socket(Duration::from_secs(20)).await.map_err(|e| e.to_string())?;
        let options = PairCodeOptions { phone_number: phone_digits.to_owned(), ..Default::default() };
        self.client.pair_with_code(options).await.map_err(|e| e.to_string())
    }

    async fn send_text(&self, to: &str, text: &str) -> Result<String, WaSendError> {
        let sent = self.client.send_text(jid(to)?, text).await.map_err(send_failure)?;
        Ok(sent.message_id)
    }

    async fn send_media(&self, to: &str, media: WaMedia) -> Result<String, WaSendError> {
        let to = jid(to)?;
        let media_type = match media.kind {
            WaMediaKind::Image => MediaType::Image,
            WaMediaKind::Video => MediaType::Video,
            WaMediaKind::Audio | WaMediaKind::Voice => MediaType::Audio,
            WaMediaKind::Document => MediaType::Document,
        };
        let upload = self
            .client
            .upload(media.bytes, media_type, UploadOptions::default())
            .await
            .map_err(|e| WaSendError::Unavailable(format!("upload failed: {e}")))?;
        let message = match media.kind {
            WaMediaKind::Image => whatsapp_rust::media::image_message(
                upload,
                ImageOptions { caption: media.caption, mimetype: media.mime_type, ..Default::default() },
            ),
            WaMediaKind::Video => whatsapp_rust::media::video_message(
                upload,
                VideoOptions { caption: media.caption, mimetype: media.mime_type, ..Default::default() },
            ),
            WaMediaKind::Audio | WaMediaKind::Voice => whatsapp_rust::media::audio_message(
                upload,
                AudioOptions { mimetype: media.mime_type, ptt: Some(media.kind == WaMediaKind::Voice), ..Default::default() },
            ),
            WaMediaKind::Document => whatsapp_rust::media::document_message(
                upload,
                DocumentOptions {
                    caption: media.caption,
                    mimetype: media.mime_type,
                    file_name: media.file_name.clone(),
                    title: media.file_name,
                    ..Default::default()
                },
            ),
        };
        let sent = self.client.send_message(to, message).await.map_err(send_failure)?;
        Ok(sent.message_id)
    }

    async fn download(&self, extra: &Value) -> Result<Vec<u8>, String> {
        let keys = &extra["download"];
        let media_type = match extra["mediaType"].as_str() {
            Some("image") => MediaType::Image,
            Some("video") => MediaType::Video,
            Some("audio") => MediaType::Audio,
            Some("sticker") => MediaType::Sticker,
            _ => MediaType::Document,
        };
        let direct_path = keys["directPath"].as_str().ok_or("the attachment has no directPath")?;
        let params = DownloadParams::encrypted(
            direct_path,
            &bytes_field(keys, "mediaKey")?,
            &bytes_field(keys, "fileSha256")?,
            &bytes_field(keys, "fileEncSha256")?,
            keys["fileLength"].as_u64().unwrap_or(0),
            media_type,
        );
        self.client.download_from_params(&params).await.map_err(|e| format!("download failed: {e}"))
    }

    async fn logout(&self) {
        self.client.logout().await;
        self.stop().await;
    }

    /// As `BotHandle::shutdown`: disconnects (flushing the device snapshot, buffered receipts and
    /// message secrets) and waits for the run loop to end.
    async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(run) = self.run.lock().await.take() {
            self.client.disconnect().await;
            let _ = run.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use wacore::types::events::{ClientOutdated, ConnectFailure, ConnectFailureReason, QrScannedWithoutMultidevice};

    use super::*;

    fn mapped(event: Event) -> Option<WaEvent> {
        map_event(&event)
    }

    #[test]
    fn terminal_outcomes_end_the_session_and_5xx_ones_reconnect() {
        let failure = |reason| Event::ConnectFailure(ConnectFailure::builder().reason(reason).build());
        assert!(matches!(mapped(failure(ConnectFailureReason::ServiceUnavailable)), Some(WaEvent::Disconnected { .. })));
        assert!(matches!(mapped(failure(ConnectFailureReason::ClientUnknown)), Some(WaEvent::Failed { .. })));
        assert!(matches!(mapped(failure(ConnectFailureReason::LoggedOut)), Some(WaEvent::LoggedOut { .. })));
        assert!(matches!(mapped(Event::ClientOutdated(ClientOutdated::builder().build())), Some(WaEvent::Failed { .. })));
        assert!(matches!(
            mapped(Event::QrScannedWithoutMultidevice(QrScannedWithoutMultidevice::builder().build())),
            Some(WaEvent::PairingFailed { .. })
        ));
    }
}
