//! PostgreSQL connections for the webhook path, kept beside sqlx's pool. sqlx 0.9 pings every
//! connection that goes back to its pool (a round trip to the server), so a webhook's two
//! statements (the channel lookup and the ingest call) cost four round trips through the pool.
//! Here a connection goes back without a ping: only after its statement completed, with the
//! server ready for the next one. A call that was cancelled half-way drops its connection, and
//! so does one that failed below SQL (I/O, protocol); both are replaced on demand.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Error};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{StoreError, StoreResult};

pub(super) struct DirectConnections {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    slots: Semaphore,
    acquire_timeout: Duration,
}

impl DirectConnections {
    /// At most `max` connections, opened when first needed.
    pub(super) fn new(options: PgConnectOptions, max: usize, acquire_timeout: Duration) -> Self {
        Self { options, idle: Mutex::new(Vec::with_capacity(max)), slots: Semaphore::new(max), acquire_timeout }
    }

    /// A connection of the set, for one statement that leaves no transaction open.
    pub(super) async fn acquire(&self) -> StoreResult<Direct<'_>> {
        let permit = match tokio::time::timeout(self.acquire_timeout, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(StoreError::Unavailable(Error::PoolClosed)),
            Err(_elapsed) => return Err(StoreError::Unavailable(Error::PoolTimedOut)),
        };
        let idle = self.idle.lock().expect("direct connections lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await.map_err(StoreError::Unavailable)?,
        };
        Ok(Direct { conn: Some(conn), home: self, _permit: permit })
    }

    /// Later calls fail as `Unavailable`; idle connections are closed.
    pub(super) async fn close(&self) {
        self.slots.close();
        let idle = std::mem::take(&mut *self.idle.lock().expect("direct connections lock"));
        for conn in idle {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

/// A connection out of [`DirectConnections`]. Dropped without [`Direct::finish`] (a cancelled
/// call), it closes instead of going back.
pub(super) struct Direct<'a> {
    conn: Option<PgConnection>,
    home: &'a DirectConnections,
    _permit: SemaphorePermit<'a>,
}

impl Direct<'_> {
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a direct connection until finished")
    }

    /// Puts the connection back after a completed statement: a success, or a database error (a
    /// constraint, a raised exception), after which the server has answered and is ready.
    /// Anything else (I/O, protocol) may have left it out of step, and a server shutting down or
    /// restarting ends the session ([`super::server_unavailable`]): those connections are closed.
    pub(super) fn finish<T>(mut self, result: Result<T, Error>) -> Result<T, Error> {
        let reusable = match &result {
            Ok(_) => true,
            Err(Error::Database(err)) => !super::server_unavailable(err.code().as_deref()),
            Err(_) => false,
        };
        if reusable && let Some(conn) = self.conn.take() {
            self.home.idle.lock().expect("direct connections lock").push(conn);
        }
        result
    }
}
