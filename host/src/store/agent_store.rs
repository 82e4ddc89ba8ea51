//! The AI agents' part of the store: agents and teams (their settings are the agents module's
//! JSON), the durable agent jobs the runner claims with leases, and the run log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{AgentJobStatus, Conversation, Message, MessageDirection, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    /// The agent's settings as the agents module writes them (secrets sealed).
    pub config: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An agent as created, or as it replaces the stored one.
#[derive(Debug, Clone)]
pub struct AgentValues {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub config: Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentTeamRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub router_agent_id: Option<Uuid>,
    pub is_active: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentTeamMemberRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub team_id: Uuid,
    pub agent_id: Uuid,
    pub role: Option<String>,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TeamWithMembers {
    pub team: AgentTeamRow,
    /// In their `position` order.
    pub members: Vec<AgentTeamMemberRow>,
}

/// A team as created, or as it replaces the stored one (members included).
#[derive(Debug, Clone)]
pub struct TeamValues {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub router_agent_id: Uuid,
    /// (agent, what it handles), in order.
    pub members: Vec<(Uuid, Option<String>)>,
}

/// One auto-reply decision, for one inbound message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub status: AgentJobStatus,
    /// Model calls that failed so far.
    pub attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of the run log (`agent_collaborations`, kind `run`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRunRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub team_id: Option<Uuid>,
    /// The agent that answered (or would have).
    pub agent_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// The reply it wrote, if any.
    pub message_id: Option<Uuid>,
    pub kind: String,
    /// `{agents, steps, mode, error}` (agents/runner.rs).
    pub content: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub job_id: Option<Uuid>,
    pub outcome: String,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i32,
}

#[derive(Debug, Clone)]
pub struct NewAgentRun {
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub job_id: Uuid,
    pub team_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub outcome: String,
    pub content: Value,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i32,
}

/// What the runner checks about a conversation's past before it answers.
#[derive(Debug, Clone, Default)]
pub struct ConversationFacts {
    /// Direction of the first message, and whether a user (a human) wrote it.
    pub first_message: Option<(MessageDirection, bool)>,
    /// When an agent last replied.
    pub last_agent_reply_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    async fn create_agent(&self, tenant_id: Uuid, agent: &AgentValues) -> StoreResult<AgentRow>;
    /// Oldest first: the seed's "first active agent" is the first of these.
    async fn list_agents(&self, tenant_id: Uuid) -> StoreResult<Vec<AgentRow>>;
    async fn get_agent(&self, tenant_id: Uuid, agent_id: Uuid) -> StoreResult<Option<AgentRow>>;
    async fn update_agent(&self, tenant_id: Uuid, agent_id: Uuid, agent: &AgentValues) -> StoreResult<Option<AgentRow>>;
    async fn delete_agent(&self, tenant_id: Uuid, agent_id: Uuid) -> StoreResult<bool>;

    /// The team and its members in one transaction.
    async fn create_team(&self, tenant_id: Uuid, team: &TeamValues) -> StoreResult<TeamWithMembers>;
    async fn list_teams(&self, tenant_id: Uuid) -> StoreResult<Vec<TeamWithMembers>>;
    async fn get_team(&self, tenant_id: Uuid, team_id: Uuid) -> StoreResult<Option<TeamWithMembers>>;
    /// Replaces the team and its members in one transaction.
    async fn update_team(&self, tenant_id: Uuid, team_id: Uuid, team: &TeamValues) -> StoreResult<Option<TeamWithMembers>>;
    async fn delete_team(&self, tenant_id: Uuid, team_id: Uuid) -> StoreResult<bool>;

    /// Leases up to `limit` due jobs (PENDING and due, or RUNNING with an expired lease).
    async fn claim_agent_jobs(&self, worker: &str, lease: chrono::Duration, limit: i64) -> StoreResult<Vec<AgentJob>>;
    /// Back to PENDING until `run_at`; with an `error`, the attempt counts and the error is kept.
    async fn reschedule_agent_job(&self, job: &AgentJob, run_at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()>;
    /// DONE, SKIPPED or FAILED, with what happened.
    async fn finish_agent_job(
        &self,
        job: &AgentJob,
        status: AgentJobStatus,
        outcome: &str,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Hands the jobs a runner holds back (graceful shutdown).
    async fn release_agent_jobs(&self, worker: &str) -> StoreResult<u64>;
    async fn get_agent_job(&self, job_id: Uuid) -> StoreResult<Option<AgentJob>>;

    async fn conversation_facts(&self, tenant_id: Uuid, conversation_id: Uuid) -> StoreResult<ConversationFacts>;
    /// A SYSTEM message (a note in the thread, never sent) that moves `lastMessageAt`.
    async fn insert_system_message(&self, conversation: &Conversation, text: &str) -> StoreResult<Message>;
    /// A human replied: the bot pauses until `until`, unless it is already paused for longer
    /// (an explicit pause or a hand-off holds until resumed).
    async fn pause_bot_until(
        &self,
        tenant_id: Uuid,
        conversation_id: Uuid,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;

    async fn insert_agent_run(&self, run: &NewAgentRun) -> StoreResult<AgentRunRow>;
    /// Newest first.
    async fn list_agent_runs(&self, tenant_id: Uuid, conversation_id: Uuid, limit: i64) -> StoreResult<Vec<AgentRunRow>>;
    /// One run of the log, by its id.
    async fn get_agent_run(&self, tenant_id: Uuid, run_id: Uuid) -> StoreResult<Option<AgentRunRow>>;
    /// Tokens the tenant's runs used since `since` (the daily budget).
    async fn agent_tokens_since(&self, tenant_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64>;
}
