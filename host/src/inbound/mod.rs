//! Inbound: provider webhooks -> the channel adapter (verify, map) -> one transaction per message
//! -> Socket.IO events -> the auto-reply hook.

pub mod media;
pub mod service;
pub mod webhooks;

pub use service::handle_inbound_message;
