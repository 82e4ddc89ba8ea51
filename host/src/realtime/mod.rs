//! Socket.IO for inbox UIs, on the HTTP port at `SOCKET_PATH`.
//!
//! The handshake must carry a valid access token (`auth.token`, or an `Authorization: Bearer`
//! header); anything else gets `connect_error`. Every socket sits in its tenant's room;
//! `join-channel` / `leave-channel` add or remove the room of one channel instance of that
//! tenant (acknowledged with `{ok: true}` or `{ok: false, error}`). Events go to a channel's
//! room and its tenant's room, once per socket. `typing` `{conversationId, typing}` tells the
//! tenant's other sockets and the conversation's visitor that an agent is typing.
//!
//! A socket lives no longer than its user and its token: when the user is removed, or the access
//! token it connected with expires, the socket is told (`unauthorized` `{reason}`) and
//! disconnected; the client refreshes its token and connects again. Every event a socket takes
//! re-reads its user, so a role change applies at once.
//!
//! Delivery is all or nothing per socket: each socket has a buffer of `OMNICHAT_SOCKET_BUFFER`
//! ([`SOCKET_BUFFER`]) packets (its namespaces, acks and pings together); a socket whose buffer is full (a client
//! that stopped reading, or a long-polling one far behind) is disconnected at once instead of
//! silently missing events, and its client reconnects and reloads what it shows over REST.
//!
//! Website visitors connect to the [`/widget` namespace](visitors).
//!
//! With `REDIS_URL` set, every namespace runs on socketioxide's Redis adapter over [`bus`]: an
//! event emitted on any replica reaches every socket in its rooms on every replica, once. Each
//! replica delivers to its own sockets one by one (as above); the others get the event through
//! Redis, addressed to every socket outside the emitting replica's node room.

pub mod bus;
pub mod handshake;
pub mod visitors;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::extract::{Extension, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::tokens::{TokenKind, TokenService};
use crate::store::{ChannelStatus, Conversation, Message, MessageDirection, Role, Store};

/// The default of `OMNICHAT_SOCKET_BUFFER`: packets a connection may have waiting (all its namespaces, acks and pings together). A
/// burst of events to a long-polling client waits here between its polls; idle, a larger bound
/// costs nothing (tokio allocates the queue in blocks of 32 as it fills). Past it the socket is
/// disconnected (see the module docs). Measured in BENCHMARKS.md (burst to a polling client,
/// idle sockets).
pub const SOCKET_BUFFER: usize = 4096;

/// The largest websocket frame or message a client may send (an event with its payload).
const MAX_SOCKET_MESSAGE: usize = 64 << 10;

/// Every namespace's adapter: socketioxide's Redis adapter over our [`bus::Bus`] (which is off,
/// and every operation local, without `REDIS_URL`).
pub type Adapter = socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, bus::Bus>;
type SocketIo = socketioxide::SocketIo<Adapter>;
type SocketRef = socketioxide::extract::SocketRef<Adapter>;
type AckSender = socketioxide::extract::AckSender<Adapter>;
type BroadcastOperators = socketioxide::operators::BroadcastOperators<Adapter>;

/// How long a question to the other replicas (who is online) may take.
const CLUSTER_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Realtime {
    io: SocketIo,
    layer: SocketIoLayer<Adapter>,
    /// Told of every event emitted (a change committed): wakes the webhook dispatcher.
    changed: Arc<tokio::sync::Notify>,
    bus: bus::Bus,
    fanout: Fanout,
}

/// Where an event goes: this process's sockets one by one, the other replicas' through Redis.
#[derive(Clone)]
struct Fanout {
    /// With Redis: the room every socket of this process sits in (in each namespace), which a
    /// broadcast to the other replicas excludes.
    node: Option<String>,
}

impl Fanout {
    /// Sends `event` to every socket `targets` selects, once: this process's own through
    /// [`deliver`], the other replicas' through the adapter (each replica sends to its own).
    async fn send(&self, targets: impl Fn() -> BroadcastOperators, event: &str, payload: &impl Serialize) {
        deliver(targets(), event, payload);
        if let Some(node) = &self.node
            && let Err(err) = targets().except(node.clone()).emit(event, payload).await
        {
            tracing::debug!(event, error = %err, "socket.io broadcast to the other replicas failed");
        }
    }

    /// Tells the sockets `targets` selects why they are cut, and cuts them, on every replica.
    async fn sign_out(&self, targets: impl Fn() -> BroadcastOperators, reason: &str) {
        for socket in targets().sockets() {
            sign_out(socket, reason);
        }
        if let Some(node) = &self.node {
            let _ = targets().except(node.clone()).emit("unauthorized", &json!({"reason": reason})).await;
            if let Err(err) = targets().except(node.clone()).disconnect().await {
                tracing::debug!(error = %err, "socket.io disconnect on the other replicas failed");
            }
        }
    }

    /// A new socket of this process joins its node's room.
    fn admit(&self, socket: &SocketRef) {
        if let Some(node) = &self.node {
            socket.join(node.clone());
        }
    }
}

/// What the socket handlers need: checking tokens and channels.
#[derive(Clone)]
struct SocketDeps {
    tokens: TokenService,
    store: Arc<dyn Store>,
    /// `OMNICHAT_PUBLIC_URL`: the host's own origin, whose pages may use any widget.
    public_url: Option<String>,
    /// Sockets to cut when their token expires.
    expiries: mpsc::UnboundedSender<(i64, Sid)>,
    fanout: Fanout,
}

/// Who a socket belongs to, set by the handshake.
#[derive(Clone, Debug)]
struct SocketUser {
    user_id: Uuid,
    tenant_id: Uuid,
    /// The role it was admitted with.
    role: Role,
    /// When the access token it connected with expires (unix seconds).
    expires_at: i64,
}

pub fn user_room(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(&'static str);

pub fn tenant_room(tenant_id: Uuid) -> String {
    format!("tenant:{tenant_id}")
}

/// Where the Socket.IO server runs and how it reaches the other replicas.
pub struct RealtimeConfig<'a> {
    pub socket_path: &'a str,
    /// Packets a connection may have waiting (`OMNICHAT_SOCKET_BUFFER`).
    pub buffer: usize,
    /// How often each connection is pinged (`OMNICHAT_SOCKET_PING_INTERVAL`).
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed (`OMNICHAT_SOCKET_PING_TIMEOUT`).
    pub ping_timeout: Duration,
    /// The replicas' bus: [`bus::Bus::redis`] with `REDIS_URL`, else off.
    pub bus: bus::Bus,
    /// Prefixes the Redis channels (`OMNICHAT_REDIS_PREFIX`): clusters sharing one Redis differ by it.
    pub prefix: String,
}

impl Realtime {
    /// Needs a tokio runtime: it starts the task that cuts sockets whose token expired.
    pub async fn new(
        config: RealtimeConfig<'_>,
        tokens: TokenService,
        store: Arc<dyn Store>,
        public_url: Option<String>,
        changed: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Self> {
        let (expiries, expiring) = mpsc::unbounded_channel();
        let store_for_recheck = store.clone();
        let fanout = Fanout { node: config.bus.clustered().then(|| format!("node:{}", Uuid::new_v4())) };
        let adapter = RedisAdapterCtr::new_with_driver(
            config.bus.clone(),
            RedisAdapterConfig::new().with_prefix(config.prefix).with_request_timeout(CLUSTER_REQUEST_TIMEOUT),
        );
        let (layer, io) = socketioxide::SocketIo::builder()
            .req_path(config.socket_path.to_owned())
            .max_buffer_size(config.buffer)
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            // Each websocket's read buffer is resident from the start (tungstenite zero-fills it
            // before a read): 1 KiB instead of engineioxide's 4 KiB; it grows for a larger frame.
            // Below 1 KiB `bytes` would stop growing it in steps.
            .ws_read_buffer_size(1024)
            // A frame's whole length is reserved on arrival and never given back: a client may not
            // make its socket hold megabytes (the defaults are 16 and 64 MiB). Clients send small
            // events; messages and files go through the REST API.
            .ws_max_frame_size(MAX_SOCKET_MESSAGE)
            .ws_max_message_size(MAX_SOCKET_MESSAGE)
            .with_state(SocketDeps { tokens, store, public_url, expiries, fanout: fanout.clone() })
            .with_adapter::<Adapter>(adapter)
            .build_layer();
        io.ns("/", on_connect.with(authenticate)).await.map_err(|err| anyhow::anyhow!("socket.io namespace /: {err}"))?;
        io.ns(visitors::NAMESPACE, visitors::on_connect.with(visitors::authenticate))
            .await
            .map_err(|err| anyhow::anyhow!("socket.io namespace {}: {err}", visitors::NAMESPACE))?;
        tokio::spawn(cut_expired(io.clone(), expiring));
        if fanout.node.is_some() {
            tokio::spawn(recheck_users(io.clone(), store_for_recheck));
        }
        Ok(Self { io, layer, changed, bus: config.bus, fanout })
    }

    /// `None` without `REDIS_URL`, else whether Redis is reachable.
    pub fn redis_up(&self) -> Option<bool> {
        self.bus.redis_up()
    }

    /// A user was removed: its sockets, on every replica, are told and disconnected.
    pub async fn user_removed(&self, user_id: Uuid) {
        self.fanout.sign_out(|| self.io.within(user_room(user_id)), "the user was removed").await;
    }

    /// A user's role changed (a demotion above all): its sockets are told and disconnected, so
    /// each reconnects, and is admitted, under the new role.
    pub async fn user_role_changed(&self, user_id: Uuid) {
        self.fanout.sign_out(|| self.io.within(user_room(user_id)), "the user's role changed").await;
    }

    pub fn layer(&self) -> SocketIoLayer<Adapter> {
        self.layer.clone()
    }

    pub async fn message_created(&self, tenant_id: Uuid, message: &Message) {
        let payload = json!({"channelInstanceId": message.channel_instance_id, "conversationId": message.conversation_id, "message": message});
        self.emit(tenant_id, message.channel_instance_id, "message-created", &payload).await;
        // A visitor's own message reaches its other tabs; a reply waits until it is handed over.
        if message.direction == MessageDirection::Inbound {
            self.to_visitor(message).await;
        }
    }

    pub async fn message_updated(&self, tenant_id: Uuid, message: &Message) {
        let payload = json!({"channelInstanceId": message.channel_instance_id, "conversationId": message.conversation_id, "message": message});
        self.emit(tenant_id, message.channel_instance_id, "message-updated", &payload).await;
        self.to_visitor(message).await;
    }

    /// A message of a web channel's conversation, to its visitor's sockets (a room nobody is in
    /// for every other channel).
    async fn to_visitor(&self, message: &Message) {
        let Some(customer_id) = message.customer_id.filter(|_| crate::visitors::view::visible(message)) else { return };
        let payload = crate::visitors::view::message(message);
        self.fanout.send(|| self.visitors().to(visitors::room(customer_id)), "message", &payload).await;
    }

    fn visitors(&self) -> BroadcastOperators {
        visitors::namespace(&self.io)
    }

    /// A visitor's first message made it a customer: its sockets, on every replica, join the
    /// customer's room.
    pub async fn visitor_became_customer(&self, channel_id: Uuid, visitor_id: &str, customer_id: Uuid) {
        let pending = visitors::pending_room(channel_id, visitor_id);
        // The adapter's join: this replica's sockets, and a request to the others.
        if let Err(err) = self.visitors().within(pending).join(visitors::room(customer_id)).await {
            tracing::warn!(customer.id = %customer_id, error = %err, "visitor sockets could not join their customer's room");
        }
    }

    /// A visitor typing (or stopping), to the inbox.
    pub async fn visitor_typing(&self, conversation: &Conversation, typing: bool) {
        let payload = json!({"channelInstanceId": conversation.channel_instance_id, "conversationId": conversation.id,
            "from": "visitor", "typing": typing});
        self.emit(conversation.tenant_id, conversation.channel_instance_id, "typing", &payload).await;
    }

    /// Connections to this process, by namespace (`/` for inbox UIs, `/widget` for visitors).
    pub fn connection_counts(&self) -> Vec<(&'static str, usize)> {
        ["/", visitors::NAMESPACE].into_iter().map(|ns| (ns, self.io.of(ns).map_or(0, |ns| ns.sockets().len()))).collect()
    }

    /// Whether any inbox user of the tenant is connected, to this replica or (asked through
    /// Redis, for at most half a second) another.
    pub async fn tenant_online(&self, tenant_id: Uuid) -> bool {
        if !self.io.within(tenant_room(tenant_id)).sockets().is_empty() {
            return true;
        }
        if self.fanout.node.is_none() {
            return false;
        }
        let others = self.io.within(tenant_room(tenant_id)).fetch_sockets();
        matches!(tokio::time::timeout(CLUSTER_REQUEST_TIMEOUT * 2, others).await, Ok(Ok(sockets)) if !sockets.is_empty())
    }

    pub async fn conversation_updated(&self, tenant_id: Uuid, conversation: &Conversation) {
        let payload = json!({"channelInstanceId": conversation.channel_instance_id, "conversation": conversation});
        self.emit(tenant_id, conversation.channel_instance_id, "conversation-updated", &payload).await;
    }

    /// A user read a conversation: its own sockets (every tab, every replica) clear the marker.
    pub async fn conversation_read(&self, user_id: Uuid, mark: &impl Serialize) {
        self.fanout.send(|| self.io.to(user_room(user_id)), "conversation-read", mark).await;
    }

    pub async fn channel_status(&self, tenant_id: Uuid, channel_id: Uuid, status: ChannelStatus) {
        let payload = json!({"channelInstanceId": channel_id, "status": status});
        self.emit(tenant_id, channel_id, "channel-status", &payload).await;
    }

    /// Emits `event` to a channel's room and its tenant's room.
    pub async fn emit(&self, tenant_id: Uuid, channel_id: Uuid, event: &'static str, payload: &impl Serialize) {
        let rooms = [channel_id.to_string(), tenant_room(tenant_id)];
        self.fanout.send(|| self.io.to(rooms.clone()), event, payload).await;
        self.changed.notify_one();
    }
}

/// Sends `event` to each socket of this process `targets` selects (once each): a socket whose
/// buffer is full is disconnected rather than left to miss the event unknowingly.
fn deliver(targets: BroadcastOperators, event: &str, payload: &impl Serialize) {
    for socket in targets.sockets() {
        match socket.emit(event, payload) {
            Ok(()) | Err(SendError::Socket(SocketError::Closed)) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => overflowed(socket),
            Err(err) => tracing::warn!(event, socket.id = %socket.id, error = %err, "socket.io emit failed"),
        }
    }
}

/// An ack that cannot be sent means a full buffer: the socket goes, so its client's pending
/// call fails (and it reconnects) instead of waiting for an answer that never comes.
fn acknowledge(socket: &SocketRef, ack: AckSender, reply: &Value) {
    if let Err(SendError::Socket(SocketError::InternalChannelFull)) = ack.send(reply) {
        overflowed(socket.clone());
    }
}

/// A socket whose buffer is full: out of every room at once (no more events pile up), then
/// disconnected as soon as its buffer has room for the disconnect packet; a client that reads
/// nothing at all is closed by the engine's heartbeat (which finds no room either) anyway.
fn overflowed(socket: SocketRef) {
    tracing::warn!(socket.id = %socket.id, ns = socket.ns(), "socket cannot keep up with its events: disconnected, its client reconnects and resyncs");
    socket.leave_all();
    tokio::spawn(async move {
        for _ in 0..600 {
            match socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => return,
            }
        }
    });
}

/// Tells a socket why it is being cut, then cuts it.
fn sign_out(socket: SocketRef, reason: &str) {
    tracing::debug!(socket.id = %socket.id, reason, "socket signed out");
    socket.leave_all();
    match socket.emit("unauthorized", &json!({"reason": reason})) {
        Err(SendError::Socket(SocketError::InternalChannelFull)) => overflowed(socket),
        _ => {
            if let Err(SocketError::InternalChannelFull) = socket.clone().disconnect() {
                overflowed(socket);
            }
        }
    }
}

/// Cuts each socket when the access token it connected with expires: one task and one heap
/// entry per socket (24 bytes), not a timer each.
async fn cut_expired(io: SocketIo, mut expiring: mpsc::UnboundedReceiver<(i64, Sid)>) {
    let mut due: BinaryHeap<Reverse<(i64, Sid)>> = BinaryHeap::new();
    loop {
        let now = chrono::Utc::now().timestamp();
        while let Some(Reverse((at, sid))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(socket) = io.get_socket(sid)
                && socket.extensions.get::<SocketUser>().is_some_and(|user| user.expires_at <= now)
            {
                sign_out(socket, "the access token expired");
            }
        }
        let wait = due.peek().map(|Reverse((at, _))| Duration::from_secs(u64::try_from(at - now).unwrap_or(0).max(1)));
        tokio::select! {
            next = expiring.recv() => match next {
                Some(entry) => due.push(Reverse(entry)),
                None => return,
            },
            () = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))) => {}
        }
    }
}

/// How often a replica of a cluster checks that its sockets' users still exist with the role
/// they were admitted with.
const RECHECK_USERS: Duration = Duration::from_secs(30);

/// A removal or role change made on another replica reaches this one's sockets through Redis;
/// a message lost there (Redis down at the time, a socket's buffer full) would leave the socket
/// listening until its token expires. Every [`RECHECK_USERS`], each distinct user of this
/// replica's sockets is read once, and the sockets of a user gone or changed are cut.
async fn recheck_users(io: SocketIo, store: Arc<dyn Store>) {
    loop {
        tokio::time::sleep(RECHECK_USERS).await;
        let sockets = io.of("/").map(|ns| ns.local().sockets()).unwrap_or_default();
        let admitted: Vec<(SocketRef, SocketUser)> =
            sockets.into_iter().filter_map(|socket| socket.extensions.get::<SocketUser>().map(|user| (socket, user))).collect();
        let mut current: std::collections::HashMap<Uuid, Option<Role>> = std::collections::HashMap::new();
        for (_, user) in &admitted {
            if let std::collections::hash_map::Entry::Vacant(slot) = current.entry(user.user_id)
                && let Ok(found) = store.get_user(user.tenant_id, user.user_id).await
            {
                // (The store down: left out, checked next time.)
                slot.insert(found.map(|u| u.role));
            }
        }
        for (socket, user) in admitted {
            match current.get(&user.user_id) {
                Some(None) => sign_out(socket, "the user was removed"),
                Some(Some(role)) if *role != user.role => sign_out(socket, "the user's role changed"),
                _ => {}
            }
        }
    }
}

/// The handshake: a valid access token of an existing user, or `connect_error`.
async fn authenticate(socket: SocketRef, TryData(auth): TryData<Value>, State(deps): State<SocketDeps>) -> Result<(), Refused> {
    let from_auth = auth.ok().and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned));
    let from_header = socket
        .req_parts()
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    let token = from_auth.or(from_header).ok_or(Refused("unauthorized: an access token is required (auth.token)"))?;
    let claims =
        deps.tokens.verify(&token, TokenKind::Access).map_err(|_| Refused("unauthorized: invalid or expired access token"))?;
    match deps.store.get_user(claims.tenant_id, claims.user_id).await {
        Ok(Some(user)) => {
            let user = SocketUser { user_id: user.id, tenant_id: user.tenant_id, role: user.role, expires_at: claims.exp };
            admit(&socket, &user);
            deps.fanout.admit(&socket);
            socket.extensions.insert(user);
            let _ = deps.expiries.send((claims.exp, socket.id));
            Ok(())
        }
        Ok(None) => Err(Refused("unauthorized: the token's user no longer exists")),
        Err(err) => {
            tracing::error!(error = %err, "socket handshake: store unavailable");
            Err(Refused("service unavailable"))
        }
    }
}

/// Rooms and event handlers are set up by the handshake ([`authenticate`]), not here:
/// socketioxide sends the client its CONNECT before it runs this handler, as a task of its own,
/// so a client emitting at once (a `join-channel` on `connect`) could find no handler yet and
/// never get its ack.
async fn on_connect(socket: SocketRef, Extension(user): Extension<SocketUser>) {
    tracing::debug!(socket.id = %socket.id, user.id = %user.user_id, tenant.id = %user.tenant_id, "socket connected");
}

/// What an accepted inbox socket gets before its client hears it is connected.
fn admit(socket: &SocketRef, user: &SocketUser) {
    socket.join([tenant_room(user.tenant_id), user_room(user.user_id)]);
    socket.on("join-channel", join_channel);
    socket.on("leave-channel", leave_channel);
    socket.on("typing", agent_typing);
}

/// `typing` `{conversationId, typing = true}`: an agent typing in a conversation of its tenant,
/// told to the tenant's other sockets and to the conversation's visitor.
async fn agent_typing(
    socket: SocketRef,
    io: SocketIo,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    State(deps): State<SocketDeps>,
    Extension(user): Extension<SocketUser>,
) {
    if !still_signed_in(&socket, &deps, &user).await {
        return;
    }
    let payload = payload.unwrap_or_default();
    let typing = payload.get("typing").and_then(Value::as_bool).unwrap_or(true);
    let conversation_id = payload.get("conversationId").and_then(Value::as_str).and_then(|id| id.trim().parse::<Uuid>().ok());
    let reply = match conversation_id {
        None => json!({"ok": false, "error": "a conversationId is required"}),
        Some(id) => match deps.store.get_conversation(user.tenant_id, id).await {
            Ok(Some(conversation)) => {
                let event = json!({"channelInstanceId": conversation.channel_instance_id, "conversationId": conversation.id,
                    "from": "agent", "userId": user.user_id, "typing": typing});
                let rooms = [conversation.channel_instance_id.to_string(), tenant_room(user.tenant_id)];
                deps.fanout.send(|| socket.to(rooms.clone()), "typing", &event).await;
                let visitor = json!({"conversationId": conversation.id, "from": "agent", "typing": typing});
                let room = visitors::room(conversation.customer_id);
                deps.fanout.send(|| visitors::namespace(&io).to(room.clone()), "typing", &visitor).await;
                json!({"ok": true})
            }
            Ok(None) => json!({"ok": false, "error": "conversation not found"}),
            Err(err) => {
                tracing::error!(error = %err, "typing: store unavailable");
                json!({"ok": false, "error": "service unavailable"})
            }
        },
    };
    acknowledge(&socket, ack, &reply);
}

/// Whether the socket's user still exists; a removed one's socket is cut (the removal cut it
/// already where it ran, this covers a removal this process did not see).
async fn still_signed_in(socket: &SocketRef, deps: &SocketDeps, user: &SocketUser) -> bool {
    match deps.store.get_user(user.tenant_id, user.user_id).await {
        Ok(Some(_)) => true,
        Ok(None) => {
            sign_out(socket.clone(), "the user was removed");
            false
        }
        // The store is down: the handler answers that itself.
        Err(_) => true,
    }
}

async fn join_channel(
    socket: SocketRef,
    TryData(payload): TryData<Value>,
    ack: AckSender,
    State(deps): State<SocketDeps>,
    Extension(user): Extension<SocketUser>,
) {
    if !still_signed_in(&socket, &deps, &user).await {
        return;
    }
    let reply = match channel_id(payload.ok()) {
        None => json!({"ok": false, "error": "a channel instance id is required"}),
        Some(id) => match deps.store.get_channel(user.tenant_id, id).await {
            Ok(Some(_)) => {
                socket.join(id.to_string());
                json!({"ok": true})
            }
            Ok(None) => json!({"ok": false, "error": "channel not found"}),
            Err(err) => {
                tracing::error!(error = %err, "join-channel: store unavailable");
                json!({"ok": false, "error": "service unavailable"})
            }
        },
    };
    acknowledge(&socket, ack, &reply);
}

async fn leave_channel(socket: SocketRef, TryData(payload): TryData<Value>, ack: AckSender) {
    let reply = match channel_id(payload.ok()) {
        Some(id) => {
            socket.leave(id.to_string());
            json!({"ok": true})
        }
        None => json!({"ok": false, "error": "a channel instance id is required"}),
    };
    acknowledge(&socket, ack, &reply);
}

/// `"<uuid>"` or `{"channelInstanceId": "<uuid>"}`.
fn channel_id(payload: Option<Value>) -> Option<Uuid> {
    let payload = payload?;
    let text = match &payload {
        Value::String(s) => s.as_str(),
        Value::Object(map) => map.get("channelInstanceId")?.as_str()?,
        _ => return None,
    };
    text.trim().parse().ok()
}
