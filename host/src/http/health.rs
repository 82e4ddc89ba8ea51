//! `GET /health`: is the process up, is its database answering, and (with `REDIS_URL`) is Redis?

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database or Redis is down.
    pub status: &'static str,
    /// `up` or `down`.
    pub db: &'static str,
    /// `up` or `down`; only with `REDIS_URL`. Redis down leaves the answer 200: the replica
    /// serves everything but events from and to the other replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "up")]
    pub redis: Option<&'static str>,
    /// Seconds since the process started.
    pub uptime: u64,
    pub timestamp: DateTime<Utc>,
}

/// 200 when the database answers `SELECT 1`, else 503 (Redis down does not make it 503).
#[utoipa::path(get, path = "/health", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "the database is down", body = Health),
))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db_up = match tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health: database ping failed");
            false
        }
        Err(_) => {
            tracing::warn!("health: database ping timed out");
            false
        }
    };
    let redis_up = state.realtime.redis_up();
    let health = Health {
        status: if db_up && redis_up != Some(false) { "ok" } else { "degraded" },
        db: if db_up { "up" } else { "down" },
        redis: redis_up.map(|up| if up { "up" } else { "down" }),
        uptime: state.started_at.elapsed().as_secs(),
        timestamp: Utc::now(),
    };
    (if db_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(health))
}
