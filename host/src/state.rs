//! Application state shared by every handler: `AppState(Arc<App>)`.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::TokenService;
use crate::bridges::BridgeDeps;
use crate::bridges::telegram::TelegramBridge;
use crate::bridges::whatsapp::WhatsAppBridge;
use crate::channels::{ChannelRegistry, StatusSink};
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::inbound::service::Inbound;
use crate::outbound::QueueWorker;
use crate::plugins::PluginHost;
use crate::realtime::Realtime;
use crate::store::Store;
use crate::visitors::VisitorLimits;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub tokens: TokenService,
    pub login_throttle: LoginThrottle,
    pub visitor_limits: VisitorLimits,
    pub secrets: SecretBox,
    pub started_at: Instant,
    /// Channel type -> adapter: the one seam every channel type sits behind.
    pub channels: Arc<ChannelRegistry>,
    /// The WASM plugins (loaded into `channels`) and their reloads.
    pub plugins: Arc<PluginHost>,
    pub realtime: Realtime,
    pub inbound: Inbound,
    pub status: StatusSink,
    pub queue: QueueWorker,
    /// Wakes the outgoing webhooks' dispatcher.
    pub webhooks: crate::webhooks::Webhooks,
    /// Wakes the agent runner when an inbound message committed an agent job.
    pub agent_wake: Arc<tokio::sync::Notify>,
    /// The agents' model client (OpenAI-compatible servers).
    pub models: Arc<crate::agents::llm::ModelClient>,
    pub telegram: Arc<TelegramBridge>,
    pub whatsapp: Arc<WhatsAppBridge>,
    /// What the bridges are handed (their handlers pass it on).
    pub bridge_deps: BridgeDeps,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
