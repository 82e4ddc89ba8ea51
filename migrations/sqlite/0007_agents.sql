-- AI agents (its twin is migrations/postgres/0007_agents.sql: change both together).
-- The bot's state on a conversation; teams with a router; the run log; durable agent jobs.

-- PAUSED with no `bot_paused_until` holds until resumed; with one, until then.
ALTER TABLE conversations ADD COLUMN bot_status TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (bot_status IN ('ACTIVE', 'PAUSED'));
ALTER TABLE conversations ADD COLUMN bot_paused_until TEXT;

ALTER TABLE agent_teams ADD COLUMN router_agent_id BLOB REFERENCES agents (id) ON DELETE SET NULL;
ALTER TABLE agent_teams ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;
-- What the member handles (the router reads it when it picks a member).
ALTER TABLE agent_team_members ADD COLUMN description TEXT;

-- One row per agent run (kind 'run'): who took part, the steps, tokens, latency, outcome.
ALTER TABLE agent_collaborations ADD COLUMN job_id BLOB;
ALTER TABLE agent_collaborations ADD COLUMN outcome TEXT NOT NULL DEFAULT 'REPLIED';
ALTER TABLE agent_collaborations ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_collaborations ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_collaborations ADD COLUMN latency_ms INTEGER NOT NULL DEFAULT 0;
-- The daily token budget sums a tenant's runs of the day.
CREATE INDEX agent_collaborations_tenant_idx ON agent_collaborations (tenant_id, created_at);

-- The auto-reply decision for one inbound message, written in the message's own transaction
-- (when the tenant has an active agent) and claimed with a lease like the outbound queue.
CREATE TABLE agent_jobs (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id       BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'SKIPPED', 'FAILED')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_at           TEXT NOT NULL,
    locked_until     TEXT,
    locked_by        TEXT,
    outcome          TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- Idempotent on the inbound message: one decision per customer message.
CREATE UNIQUE INDEX agent_jobs_message_key ON agent_jobs (message_id);
CREATE INDEX agent_jobs_due_idx ON agent_jobs (status, run_at);
