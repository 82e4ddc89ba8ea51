//! Inbound: provider webhooks -> adapter `verify` and `normalize` -> one transaction per message
//! -> Socket.IO events -> the auto-reply hook.

pub mod service;
pub mod webhooks;

pub use service::handle_inbound_message;
