//! Application state shared by every handler: `AppState(Arc<App>)`.

use std::sync::Arc;
use std::time::Instant;

use crate::agents::AutoReply;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::TokenService;
use crate::bridges::telegram::TelegramBridge;
use crate::bridges::whatsapp::WhatsAppBridge;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::outbound::QueueWorker;
use crate::plugins::PluginRuntime;
use crate::realtime::Realtime;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub tokens: TokenService,
    pub login_throttle: LoginThrottle,
    pub secrets: SecretBox,
    pub started_at: Instant,
    pub plugins: Arc<PluginRuntime>,
    pub realtime: Realtime,
    pub auto_reply: Arc<dyn AutoReply>,
    pub queue: QueueWorker,
    pub telegram: TelegramBridge,
    pub whatsapp: WhatsAppBridge,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
