//! How the replicas of a cluster hear each other's Socket.IO traffic: socketioxide's Redis
//! adapter, over a [`Driver`] of our own that survives Redis going away.
//!
//! The stock driver keeps one connection for its life: after a Redis restart every publish fails
//! with a broken pipe, and the adapter then skips even the local part of an operation. This one
//! sits on a [`ConnectionManager`] (which reconnects after a reset and subscribes again), never
//! fails an operation (a message that cannot reach Redis is logged and dropped: the other
//! replicas are unreachable anyway, and this replica's own sockets are still served), and a
//! watcher pings Redis every second: it tells `/health` whether Redis is up, subscribes the
//! adapter's channels again after a reconnect, and replaces a connection that stopped answering
//! without being reset (a partition, a failover to another address), which the manager would
//! keep until the kernel gives up on it.
//!
//! Without `REDIS_URL` the bus is off: nothing is published and every operation stays local.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// How long one Redis command (a publish, a subscribe, a ping) may take before Redis counts as down.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the watcher pings Redis.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Pings in a row without an answer after which the connection is replaced.
const REPLACE_AFTER: u32 = 3;

/// The replicas' message bus: off (one process), or Redis pub/sub.
#[derive(Clone, Default)]
pub struct Bus(Option<Arc<RedisBus>>);

struct RedisBus {
    client: redis::Client,
    config: ConnectionManagerConfig,
    conn: RwLock<ConnectionManager>,
    /// The adapter's subscriptions: channel -> where its messages go.
    handlers: Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>,
    /// Whether the last command or ping reached Redis.
    up: AtomicBool,
    /// Set when the connection was lost: the watcher subscribes every channel again once Redis
    /// answers.
    resubscribe: Arc<AtomicBool>,
}

impl Bus {
    /// Redis at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://`). Redis down
    /// does not stop the start: the host serves its own sockets and the watcher connects once
    /// Redis is there. Needs a tokio runtime (it starts the watcher).
    pub async fn redis(url: &str) -> anyhow::Result<Self> {
        let info = url.into_connection_info().map_err(|_| anyhow::anyhow!("REDIS_URL is not a redis:// URL"))?;
        // The adapter's messages arrive as RESP3 pushes on the one multiplexed connection.
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|err| anyhow::anyhow!("REDIS_URL: {:?}", err.kind()))?;
        let handlers: Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>> = Arc::default();
        let resubscribe = Arc::new(AtomicBool::new(false));
        let (routes, lost) = (handlers.clone(), resubscribe.clone());
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                route(&routes, &lost, push);
                Ok::<(), Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(COMMAND_TIMEOUT);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|err| anyhow::anyhow!("REDIS_URL: {:?}", err.kind()))?;
        let bus =
            Arc::new(RedisBus { client, config, conn: RwLock::new(conn), handlers, up: AtomicBool::new(false), resubscribe });
        if bus.ping().await {
            bus.up.store(true, Ordering::Relaxed);
            tracing::info!("socket.io: events are shared with the other replicas through redis");
        } else {
            tracing::warn!("redis is unreachable: Socket.IO events reach this replica's sockets only until it is there");
        }
        tokio::spawn(watch(Arc::downgrade(&bus)));
        Ok(Self(Some(bus)))
    }

    /// Whether replicas share events (`REDIS_URL` set).
    pub fn clustered(&self) -> bool {
        self.0.is_some()
    }

    /// `None` without Redis, else whether Redis answered the last command or ping.
    pub fn redis_up(&self) -> Option<bool> {
        self.0.as_ref().map(|bus| bus.up.load(Ordering::Relaxed))
    }
}

/// A push from Redis: a message to its subscription, or a lost connection.
fn route(handlers: &RwLock<HashMap<String, mpsc::Sender<ChanItem>>>, lost: &AtomicBool, push: PushInfo) {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let (Some(chan), Some(payload)) = (data.next(), data.next()) else { return };
            let (Ok(chan), Ok(payload)) = (redis::from_redis_value::<String>(chan), redis::from_redis_value::<Vec<u8>>(payload))
            else {
                return;
            };
            if let Some(tx) = handlers.read().unwrap_or_else(|e| e.into_inner()).get(&chan)
                && tx.try_send((chan, payload)).is_err()
            {
                tracing::warn!("socket.io adapter: a message from another replica was dropped (its queue is full)");
            }
        }
        PushKind::Disconnection => lost.store(true, Ordering::Relaxed),
        _ => {}
    }
}

impl RedisBus {
    fn conn(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A new connection in place of one that stopped answering; the channels are subscribed on
    /// it once Redis answers.
    fn replace_connection(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(conn) => {
                *self.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
                self.resubscribe.store(true, Ordering::Relaxed);
                tracing::info!("redis: the connection stopped answering; connecting anew");
            }
            Err(err) => tracing::warn!(error = ?err.kind(), "redis: cannot make a new connection"),
        }
    }

    async fn ping(&self) -> bool {
        let mut conn = self.conn();
        let pong = tokio::time::timeout(COMMAND_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn)).await;
        matches!(pong, Ok(Ok(_)))
    }

    /// Records whether a command reached Redis, and logs the transitions only.
    fn reached(&self, ok: bool) {
        let was = self.up.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::warn!("redis is down: Socket.IO events reach this replica's sockets only until it is back");
            self.resubscribe.store(true, Ordering::Relaxed);
        } else if !was && ok {
            tracing::info!("redis is up: Socket.IO events are shared with the other replicas");
        }
    }

    async fn subscribe_all(&self) -> bool {
        let channels: Vec<String> = self.handlers.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        if channels.is_empty() {
            return true;
        }
        let mut conn = self.conn();
        match tokio::time::timeout(COMMAND_TIMEOUT, conn.subscribe(&channels)).await.unwrap_or_else(|_| Err(timed_out())) {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!(error = ?err.kind(), "redis: subscribing again failed");
                false
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// Pings Redis every second for as long as the bus lives: Redis counts as down from the first
/// unanswered ping; after a lost connection the adapter's channels are subscribed again as soon
/// as Redis answers, and a connection unanswered for [`REPLACE_AFTER`] pings is replaced.
async fn watch(bus: Weak<RedisBus>) {
    let mut unanswered = 0;
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let Some(bus) = bus.upgrade() else { return };
        if bus.ping().await {
            unanswered = 0;
            // Cleared before subscribing: a connection lost meanwhile sets it again.
            if bus.resubscribe.swap(false, Ordering::Relaxed) || !bus.up.load(Ordering::Relaxed) {
                let resubscribed = bus.subscribe_all().await;
                if !resubscribed {
                    bus.resubscribe.store(true, Ordering::Relaxed);
                }
                bus.reached(resubscribed);
            }
        } else {
            bus.reached(false);
            unanswered += 1;
            if unanswered % REPLACE_AFTER == 0 {
                bus.replace_connection();
            }
        }
    }
}

impl Driver for Bus {
    type Error = Infallible;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Infallible> {
        let Some(bus) = &self.0 else { return Ok(()) };
        if !bus.up.load(Ordering::Relaxed) {
            tracing::debug!(chan, "redis is down: a socket.io message stays on this replica");
            return Ok(());
        }
        let mut conn = bus.conn();
        // One slow answer does not take Redis down (the watcher's ping decides that).
        if let Err(err) = redis::cmd("PUBLISH").arg(&chan).arg(val).query_async::<i64>(&mut conn).await {
            tracing::debug!(chan, error = ?err.kind(), "redis: a socket.io message was not published");
        }
        Ok(())
    }

    async fn subscribe(&self, chan: String, size: usize) -> Result<MessageStream<ChanItem>, Infallible> {
        let Some(bus) = &self.0 else { return Ok(MessageStream::new_empty()) };
        let (tx, rx) = mpsc::channel(size);
        bus.handlers.write().unwrap_or_else(|e| e.into_inner()).insert(chan.clone(), tx);
        // Redis down: the watcher subscribes once it is back.
        let mut conn = bus.conn();
        let subscribed = bus.up.load(Ordering::Relaxed)
            && matches!(tokio::time::timeout(COMMAND_TIMEOUT, conn.subscribe(&chan)).await, Ok(Ok(())));
        if !subscribed {
            bus.resubscribe.store(true, Ordering::Relaxed);
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Infallible> {
        let Some(bus) = &self.0 else { return Ok(()) };
        bus.handlers.write().unwrap_or_else(|e| e.into_inner()).remove(&chan);
        let mut conn = bus.conn();
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, conn.unsubscribe(&chan)).await;
        Ok(())
    }

    /// Servers listening on `chan` (this one included); 1 (this one) when Redis is unreachable,
    /// so the adapter waits for no answer that cannot come.
    async fn num_serv(&self, chan: &str) -> Result<u16, Infallible> {
        let Some(bus) = &self.0 else { return Ok(1) };
        if !bus.up.load(Ordering::Relaxed) {
            return Ok(1);
        }
        let mut conn = bus.conn();
        match redis::cmd("PUBSUB").arg("NUMSUB").arg(chan).query_async::<(String, u16)>(&mut conn).await {
            Ok((_, count)) => Ok(count.max(1)),
            Err(_) => Ok(1),
        }
    }
}
