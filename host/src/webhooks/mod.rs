//! Outgoing webhooks: tenants subscribe a URL to events (`/api/webhook-subscriptions`), and every
//! matching change is POSTed to it, signed, durably, with retries.
//!
//! The flow: a change (a message stored, a conversation closed, a channel's status) writes an
//! event into the outbox **by a database trigger, in the change's own transaction**
//! (migrations/*/0008), whatever code path made it; a crash after the commit loses nothing. The
//! [dispatcher] leases outbox events, renders each one's body once (the same JSON shapes as the
//! REST API, with the entity's status as it was at the change), stores one delivery per
//! subscription that wants the event, and delivers them: leased, concurrent across
//! conversations but in order within one, retried with exponential backoff and jitter on network
//! errors, timeouts, 408, 429 and 5xx, never on another 4xx, DEAD after
//! `OMNICHAT_WEBHOOK_MAX_ATTEMPTS`. A subscription whose deliveries keep failing is switched
//! off with a reason.
//!
//! Each request carries `X-OmniChat-Event`, `X-OmniChat-Delivery` and
//! `X-OmniChat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

pub mod dispatcher;
pub mod handlers;
pub mod model;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

/// The events a subscription can ask for.
pub const EVENTS: &[&str] = &[
    "message.created",
    "message.updated",
    "conversation.created",
    "conversation.updated",
    "channel.status",
    "customer.created",
    "agent.run.completed",
];

/// The event of an on-demand test delivery.
pub const TEST_EVENT: &str = "webhook.test";

/// Wakes the dispatcher when this process committed a change, so delivery does not wait for its
/// next poll.
#[derive(Default)]
pub struct Webhooks {
    wake: Arc<Notify>,
}

impl Webhooks {
    /// What wakes the dispatcher, for whoever sees changes committed (the realtime events).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// `X-OmniChat-Signature` for `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature("whsec_test", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
