//! Outbound: the send API, the durable queue's worker, and dispatch through the channel adapters.

pub mod handlers;
pub mod worker;

pub use worker::QueueWorker;
