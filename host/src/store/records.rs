//! Rows of the data model as the rest of the host sees them. The API serialises the public ones
//! directly (camelCase); anything secret (password hashes, token hashes) lives only in the
//! `*Record` types that never reach a response.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::types::{ChannelStatus, ChannelType, Role};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with its password hash: only the login path sees this.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token for rotation led to.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The token was live: it is now spent and `NewRefreshToken` took its place.
    Rotated(User),
    /// The token had already been spent or revoked: its whole family is now revoked (RFC 9700 4.14.2).
    Reused,
    /// Expired, or unknown to this server.
    Invalid,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub channel_type: ChannelType,
    pub status: ChannelStatus,
    /// Why the channel is in its status (an error, a logout), when there is a reason to give.
    pub status_reason: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
    /// Stored with secret values encrypted; the API shows them redacted.
    #[schema(value_type = Object)]
    pub config: Json<Value>,
    #[schema(value_type = Object)]
    pub metadata: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub channel_type: ChannelType,
    pub name: String,
    pub external_id: Option<String>,
    pub config: Value,
    pub metadata: Value,
}

/// Fields a channel update may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the external id.
    pub external_id: Option<Option<String>>,
    pub config: Option<Value>,
    pub metadata: Option<Value>,
}
