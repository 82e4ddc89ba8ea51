//! The `/widget` namespace: website visitors of web channels, authenticated by their visitor
//! token (`auth.token`) from a page whose origin the channel allows. A visitor's socket sits in
//! its customer's room and hears only its own conversation: replies handed to it, agents typing,
//! its own messages from other tabs.

use serde_json::Value;
use socketioxide::extract::{Extension, State, TryData};
use uuid::Uuid;

use super::{BroadcastOperators, Refused, SocketDeps, SocketIo, SocketRef};
use crate::auth::tokens::VisitorClaims;
use crate::visitors::origin;

pub const NAMESPACE: &str = "/widget";

/// The room of one visitor (a web channel's customer), in the `/widget` namespace.
pub fn room(customer_id: Uuid) -> String {
    format!("visitor:{customer_id}")
}

/// The `/widget` namespace (registered at start by [`super::Realtime::new`]).
pub(super) fn namespace(io: &SocketIo) -> BroadcastOperators {
    io.of(NAMESPACE).expect("the /widget namespace is registered at start")
}

/// Where a visitor's sockets wait until its first message makes it a customer.
pub fn pending_room(channel_id: Uuid, visitor_id: &str) -> String {
    format!("pending:{channel_id}:{visitor_id}")
}

pub(super) async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(deps): State<SocketDeps>,
) -> Result<(), Refused> {
    let token = auth.ok().and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned));
    let token = token.ok_or(Refused("unauthorized: a visitor token is required (auth.token)"))?;
    let claims = deps
        .tokens
        .verify_visitor(&token, None, std::time::Duration::ZERO)
        .map_err(|_| Refused("unauthorized: invalid or expired visitor token"))?;
    let channel = match deps.store.find_channel(claims.channel_id).await {
        Ok(Some(channel)) if channel.tenant_id == claims.tenant_id && !crate::visitors::switched_off(&channel) => channel,
        Ok(_) => return Err(Refused("unauthorized: the widget no longer exists or is switched off")),
        Err(err) => {
            tracing::error!(error = %err, "visitor socket handshake: store unavailable");
            return Err(Refused("service unavailable"));
        }
    };
    origin::permitted(&socket.req_parts().headers, &channel.config.0, deps.public_url.as_deref())
        .map_err(|_| Refused("forbidden: this page's origin may not use the widget"))?;
    match claims.customer_id {
        Some(customer_id) => socket.join(room(customer_id)),
        None => socket.join(pending_room(claims.channel_id, &claims.sub)),
    }
    deps.fanout.admit(&socket);
    socket.extensions.insert(claims);
    Ok(())
}

/// Its rooms are joined by the handshake, before the client hears it is connected (see the inbox
/// namespace's `on_connect`).
pub(super) async fn on_connect(socket: SocketRef, Extension(visitor): Extension<VisitorClaims>) {
    tracing::debug!(socket.id = %socket.id, channel.id = %visitor.channel_id, "visitor socket connected");
}
