//! PostgreSQL: the channels webhooks look up, kept in memory. A webhook's channel lookup was a
//! statement and a server round trip of its own for every delivery, as costly to the database
//! as storing the message once messages are stored in batches (BENCHMARKS.md, group commit).
//!
//! A copy is trusted only while this process hears about every change: a trigger announces each
//! update or delete of a channel row (`NOTIFY omnichat_channel_changed`, migration 0014) to every
//! replica, whose listener drops its copy. A change on this replica is also dropped here as soon
//! as its statement returns, so the replica that rotated a secret never accepts the old one; another
//! replica stops within the notification's delivery (milliseconds). Until the listener is
//! listening, or from the moment its connection fails until it listens again, nothing is served
//! from memory and everything cached before is forgotten. A connection can also die silently (a
//! NAT or a load balancer forgetting it, a pooler that does not keep sessions, a server that is
//! no longer the one the pool reaches): every replica announces a ping of its own every few
//! seconds through its pool, and a listener that has not heard it for three rounds is replaced,
//! its cache forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::Channel;

/// The notification channel the trigger of migrations/postgres/0014 sends a channel's id on.
const NOTIFICATIONS: &str = "omnichat_channel_changed";
/// Past this many channels the cache starts over (a bound on memory, not an eviction policy:
/// a deployment with more channels than this sees the lookups it saw before).
const MAX_CHANNELS: usize = 10_000;
/// Wait before listening again after the listener's connection failed.
const RETRY: Duration = Duration::from_secs(1);
/// How often each replica announces a ping of its own; a listener that has not heard its own for
/// three rounds is replaced (another replica's pings prove nothing: it may be on another server).
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_PREFIX: &str = "ping:";

pub(super) struct ChannelCache {
    state: Mutex<State>,
    /// Dropped with the cache (or sent by `close`): the listener task ends.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Default)]
struct State {
    /// Whether the listener is listening: only then is anything served or kept.
    live: bool,
    /// The store closed: never live again.
    closed: bool,
    /// Moves on every change heard of: a lookup that started before a change does not keep what
    /// it read (see [`ChannelCache::keep`]).
    generation: u64,
    channels: HashMap<Uuid, Channel>,
}

/// What a lookup read the database under: [`ChannelCache::keep`] keeps its result only if nothing
/// changed meanwhile.
#[derive(Clone, Copy)]
pub(super) struct Generation(Option<u64>);

impl ChannelCache {
    /// A cache whose listener connects with `options` (a connection of its own, opened in the
    /// background: nothing is served from memory until it listens); its pings go through `pool`.
    pub(super) fn start(options: PgConnectOptions, pool: PgPool) -> Arc<Self> {
        let (stop, stopped) = oneshot::channel();
        let cache = Arc::new(Self { state: Mutex::default(), stop: Mutex::new(Some(stop)) });
        tokio::spawn(listen(Arc::downgrade(&cache), options, pool, stopped));
        cache
    }

    pub(super) fn get(&self, id: Uuid) -> Option<Channel> {
        let state = self.state();
        if state.live { state.channels.get(&id).cloned() } else { None }
    }

    /// Taken before reading the database.
    pub(super) fn generation(&self) -> Generation {
        let state = self.state();
        Generation(state.live.then_some(state.generation))
    }

    /// Keeps what a lookup read under `generation`, unless a change was heard of since.
    pub(super) fn keep(&self, generation: Generation, channel: &Channel) {
        let mut state = self.state();
        if !state.live || generation.0 != Some(state.generation) {
            return;
        }
        if state.channels.len() >= MAX_CHANNELS {
            state.channels.clear();
        }
        state.channels.insert(channel.id, channel.clone());
    }

    /// A channel changed (here, or announced by the database).
    pub(super) fn forget(&self, id: Uuid) {
        let mut state = self.state();
        state.generation += 1;
        state.channels.remove(&id);
    }

    /// Everything forgotten; served again only if `live`.
    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.channels.clear();
        state.live = live && !state.closed;
    }

    /// Stops the listener (the store is closing).
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.reset(false);
        if let Some(stop) = self.stop.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = stop.send(());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent; a panic elsewhere cannot poison it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens for channel changes until the cache is dropped or closed; after a failure, listens
/// again on a new connection, forgetting everything in between.
async fn listen(cache: Weak<ChannelCache>, options: PgConnectOptions, pool: PgPool, mut stopped: oneshot::Receiver<()>) {
    let ping = format!("{PING_PREFIX}{}", Uuid::new_v4());
    loop {
        // A pool of one per attempt: a dropped listener returns its connection with an UNLISTEN
        // that, on a connection that died silently, waits for the kernel to give up (minutes),
        // holding that pool's one slot.
        let listener =
            PgPoolOptions::new().max_connections(1).max_lifetime(None).idle_timeout(None).connect_lazy_with(options.clone());
        let listening = async {
            let mut listening = PgListener::connect_with(&listener).await?;
            // A lost connection ends `forward` (the cache stops serving) instead of being
            // replaced inside `try_recv` while stale copies are still served.
            listening.eager_reconnect(false);
            listening.listen(NOTIFICATIONS).await?;
            Ok::<_, sqlx::Error>(listening)
        };
        let failure = tokio::select! {
            _ = &mut stopped => break,
            listening = listening => match listening {
                Ok(mut listening) => {
                    let Some(live) = cache.upgrade() else { break };
                    live.reset(true);
                    drop(live);
                    tokio::select! {
                        _ = &mut stopped => break,
                        failure = forward(&cache, &mut listening, &pool, &ping) => failure,
                    }
                }
                Err(err) => Some(err.to_string()),
            },
        };
        let Some(live) = cache.upgrade() else { break };
        live.reset(false);
        drop(live);
        if let Some(failure) = failure {
            tracing::warn!(error = %failure, "channel cache: not listening for channel changes; channels are read from the database until it is again");
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Drops each announced channel until the listener fails (`Some`, why) or the cache is gone
/// (`None`), and pings meanwhile.
async fn forward(cache: &Weak<ChannelCache>, listening: &mut PgListener, pool: &PgPool, ping: &str) -> Option<String> {
    let mut heard = Instant::now();
    let mut rounds = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            // Cancel-safe: sqlx reads whole messages from its buffer (PgStream::recv_unchecked).
            notification = listening.try_recv() => {
                let cache = cache.upgrade()?;
                match notification {
                    Ok(Some(notification)) if notification.payload() == ping => heard = Instant::now(),
                    Ok(Some(notification)) if notification.payload().starts_with(PING_PREFIX) => {}
                    Ok(Some(notification)) => match Uuid::parse_str(notification.payload()) {
                        Ok(id) => cache.forget(id),
                        Err(_) => cache.reset(true),
                    },
                    Ok(None) => return Some("connection lost".to_owned()),
                    Err(err) => return Some(err.to_string()),
                }
            }
            _ = rounds.tick() => {
                if heard.elapsed() > 3 * PING_EVERY {
                    return Some(format!("its own ping not heard for {} s", heard.elapsed().as_secs()));
                }
                // In a task of its own, for one round at most: a database that does not answer
                // must not hold up the listener (its silence is what the next rounds notice) nor
                // keep the pool's connections.
                let (pool, ping) = (pool.clone(), ping.to_owned());
                tokio::spawn(async move {
                    let notify = sqlx::query("SELECT pg_notify($1, $2)").bind(NOTIFICATIONS).bind(ping).execute(&pool);
                    let _ = tokio::time::timeout(PING_EVERY, notify).await;
                });
            }
        }
    }
}
