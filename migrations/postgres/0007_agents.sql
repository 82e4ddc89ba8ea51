-- AI agents (its twin is migrations/sqlite/0007_agents.sql: change both together).
-- The bot's state on a conversation; teams with a router; the run log; durable agent jobs.

-- PAUSED with no `bot_paused_until` holds until resumed; with one, until then.
ALTER TABLE conversations ADD COLUMN bot_status TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (bot_status IN ('ACTIVE', 'PAUSED'));
ALTER TABLE conversations ADD COLUMN bot_paused_until TIMESTAMPTZ;

ALTER TABLE agent_teams ADD COLUMN router_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL;
ALTER TABLE agent_teams ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
-- What the member handles (the router reads it when it picks a member).
ALTER TABLE agent_team_members ADD COLUMN description TEXT;

-- One row per agent run (kind 'run'): who took part, the steps, tokens, latency, outcome.
ALTER TABLE agent_collaborations ADD COLUMN job_id UUID;
ALTER TABLE agent_collaborations ADD COLUMN outcome TEXT NOT NULL DEFAULT 'REPLIED';
ALTER TABLE agent_collaborations ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_collaborations ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_collaborations ADD COLUMN latency_ms INTEGER NOT NULL DEFAULT 0;
-- The daily token budget sums a tenant's runs of the day.
CREATE INDEX agent_collaborations_tenant_idx ON agent_collaborations (tenant_id, created_at);

-- The auto-reply decision for one inbound message, written in the message's own transaction
-- (when the tenant has an active agent) and claimed with a lease like the outbound queue.
CREATE TABLE agent_jobs (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id       UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'SKIPPED', 'FAILED')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_at           TIMESTAMPTZ NOT NULL,
    locked_until     TIMESTAMPTZ,
    locked_by        TEXT,
    outcome          TEXT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
-- Idempotent on the inbound message: one decision per customer message.
CREATE UNIQUE INDEX agent_jobs_message_key ON agent_jobs (message_id);
CREATE INDEX agent_jobs_due_idx ON agent_jobs (status, run_at);

-- The ingest function of 0002, now also writing the agent job of an inbound message in the same
-- transaction when the tenant has an active agent (the runner decides the rest).
CREATE OR REPLACE FUNCTION omnichat_ingest_message(
    p_tenant_id UUID, p_channel_instance_id UUID, p_customer_id UUID, p_external_user_id TEXT,
    p_sender_name TEXT, p_sender_username TEXT, p_external_conversation_id TEXT, p_conversation_id UUID,
    p_message_id UUID, p_direction TEXT, p_status TEXT, p_text TEXT, p_attachments JSONB, p_raw JSONB,
    p_provider_message_id TEXT, p_sent_at TIMESTAMPTZ, p_now TIMESTAMPTZ)
RETURNS TABLE (customer customers, conversation conversations, message messages, conversation_created BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    c customers;
    v conversations;
    m messages;
BEGIN
    IF p_provider_message_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages e
        WHERE e.channel_instance_id = p_channel_instance_id AND e.provider_message_id = p_provider_message_id) THEN
        RETURN;
    END IF;
    INSERT INTO customers AS x (id, tenant_id, channel_instance_id, external_id, name, username, metadata, created_at, updated_at)
    VALUES (p_customer_id, p_tenant_id, p_channel_instance_id, p_external_user_id, p_sender_name, p_sender_username, '{}', p_now, p_now)
    ON CONFLICT (channel_instance_id, external_id) DO UPDATE SET
        name = COALESCE(excluded.name, x.name),
        username = COALESCE(excluded.username, x.username),
        updated_at = excluded.updated_at
    RETURNING * INTO c;
    IF p_external_conversation_id IS NOT NULL THEN
        UPDATE conversations AS x SET last_message_at = p_now, status = 'OPEN', updated_at = p_now
        WHERE x.status <> 'CLOSED' AND x.id = (SELECT y.id FROM conversations y
            WHERE y.channel_instance_id = p_channel_instance_id AND y.external_conversation_id = p_external_conversation_id
              AND y.status <> 'CLOSED' ORDER BY y.created_at DESC LIMIT 1)
        RETURNING * INTO v;
    ELSE
        UPDATE conversations AS x SET last_message_at = p_now, status = 'OPEN', updated_at = p_now
        WHERE x.status <> 'CLOSED' AND x.id = (SELECT y.id FROM conversations y
            WHERE y.customer_id = c.id AND y.status <> 'CLOSED' ORDER BY y.created_at DESC LIMIT 1)
        RETURNING * INTO v;
    END IF;
    conversation_created := NOT FOUND;
    IF conversation_created THEN
        INSERT INTO conversations (id, tenant_id, channel_instance_id, customer_id, external_conversation_id, status, last_message_at, created_at, updated_at)
        VALUES (p_conversation_id, p_tenant_id, p_channel_instance_id, c.id, p_external_conversation_id, 'OPEN', p_now, p_now, p_now)
        RETURNING * INTO v;
    END IF;
    INSERT INTO messages (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                          attachments, raw, provider_message_id, sent_at, created_at, updated_at)
    VALUES (p_message_id, p_tenant_id, p_channel_instance_id, v.id, c.id, p_direction, p_status, p_text,
            p_attachments, p_raw, p_provider_message_id, p_sent_at, p_now, p_now)
    ON CONFLICT (channel_instance_id, provider_message_id) DO NOTHING
    RETURNING * INTO m;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % of channel % is already stored', p_provider_message_id, p_channel_instance_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'messages_provider_id_key';
    END IF;
    IF p_direction = 'INBOUND' AND EXISTS (SELECT 1 FROM agents a WHERE a.tenant_id = p_tenant_id AND a.is_active) THEN
        INSERT INTO agent_jobs (id, tenant_id, conversation_id, message_id, status, attempts, run_at, created_at, updated_at)
        VALUES (gen_random_uuid(), p_tenant_id, v.id, m.id, 'PENDING', 0, p_now, p_now, p_now);
    END IF;
    customer := c;
    conversation := v;
    message := m;
    RETURN NEXT;
END
$$;
