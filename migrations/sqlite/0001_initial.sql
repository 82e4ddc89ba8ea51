-- OmniChat data model (SQLite). Its twin is migrations/postgres/0001_initial.sql: change both together.
-- Enumerations are TEXT with CHECK constraints; the API speaks the same upper-case names.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    name           TEXT,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
-- Login is by e-mail alone, so an address belongs to one user across all tenants.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);

CREATE TABLE refresh_tokens (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id    BLOB NOT NULL,
    token_hash   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    replaced_by  BLOB,
    created_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE channel_instances (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type           TEXT NOT NULL CHECK (type IN ('WHATSAPP', 'TELEGRAM_USER', 'TELEGRAM_BOT', 'FACEBOOK', 'WIDGET')),
    status         TEXT NOT NULL DEFAULT 'DISCONNECTED' CHECK (status IN ('DISCONNECTED', 'CONNECTING', 'CONNECTED', 'ERROR')),
    status_reason  TEXT,
    name           TEXT NOT NULL,
    external_id    TEXT,
    config         TEXT NOT NULL DEFAULT '{}',
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX channel_instances_tenant_idx ON channel_instances (tenant_id, created_at);
-- A provider account (a Facebook page, a bot, a phone number) feeds exactly one channel.
CREATE UNIQUE INDEX channel_instances_external_key ON channel_instances (type, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX channel_instances_status_idx ON channel_instances (type, status);

CREATE TABLE customers (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    external_id          TEXT NOT NULL,
    name                 TEXT,
    username             TEXT,
    phone                TEXT,
    avatar_url           TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX customers_channel_external_key ON customers (channel_instance_id, external_id);
CREATE INDEX customers_tenant_idx ON customers (tenant_id, created_at DESC, id DESC);

CREATE TABLE conversations (
    id                        BLOB PRIMARY KEY,
    tenant_id                 BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id       BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    customer_id               BLOB NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    external_conversation_id  TEXT,
    status                    TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED', 'SNOOZED')),
    assignee_id               BLOB REFERENCES users (id) ON DELETE SET NULL,
    last_message_at           TEXT NOT NULL,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);
-- The inbox: newest activity first, optionally by status, channel or assignee.
CREATE INDEX conversations_inbox_idx ON conversations (tenant_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_status_idx ON conversations (tenant_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_assignee_idx ON conversations (tenant_id, assignee_id, last_message_at DESC);
CREATE INDEX conversations_customer_idx ON conversations (customer_id, status, created_at DESC);
CREATE INDEX customers_channel_idx ON customers (channel_instance_id, created_at DESC, id DESC);
CREATE INDEX conversations_external_idx ON conversations (channel_instance_id, external_conversation_id);

CREATE TABLE agents (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    is_active    INTEGER NOT NULL DEFAULT 1,
    config       TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX agents_tenant_idx ON agents (tenant_id, is_active, created_at);

CREATE TABLE messages (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    conversation_id      BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    customer_id          BLOB REFERENCES customers (id) ON DELETE SET NULL,
    direction            TEXT NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND', 'SYSTEM')),
    status               TEXT NOT NULL CHECK (status IN ('RECEIVED', 'PENDING', 'SENT', 'DELIVERED', 'READ', 'FAILED')),
    text                 TEXT,
    attachments          TEXT NOT NULL DEFAULT '[]',
    raw                  TEXT,
    provider_message_id  TEXT,
    error                TEXT,
    sender_user_id       BLOB REFERENCES users (id) ON DELETE SET NULL,
    sender_agent_id      BLOB REFERENCES agents (id) ON DELETE SET NULL,
    sent_at              TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
-- Dedupe of provider redeliveries: one row per provider message id and channel.
CREATE UNIQUE INDEX messages_provider_id_key ON messages (channel_instance_id, provider_message_id);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at DESC, id DESC);

CREATE TABLE agent_teams (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX agent_teams_tenant_idx ON agent_teams (tenant_id);

CREATE TABLE agent_team_members (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    team_id     BLOB NOT NULL REFERENCES agent_teams (id) ON DELETE CASCADE,
    agent_id    BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    role        TEXT,
    position    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX agent_team_members_key ON agent_team_members (team_id, agent_id);

-- One step of multi-agent reasoning on a conversation, kept for audit.
CREATE TABLE agent_collaborations (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    team_id          BLOB REFERENCES agent_teams (id) ON DELETE SET NULL,
    agent_id         BLOB REFERENCES agents (id) ON DELETE SET NULL,
    conversation_id  BLOB REFERENCES conversations (id) ON DELETE CASCADE,
    message_id       BLOB REFERENCES messages (id) ON DELETE SET NULL,
    kind             TEXT NOT NULL,
    content          TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL
);
CREATE INDEX agent_collaborations_conversation_idx ON agent_collaborations (conversation_id, created_at);

CREATE TABLE channel_message_queue (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    message_id           BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status               TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'FAILED', 'DEAD')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL,
    next_retry_at        TEXT NOT NULL,
    locked_until         TEXT,
    locked_by            TEXT,
    last_error           TEXT,
    idempotency_key      TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX channel_message_queue_message_key ON channel_message_queue (message_id);
CREATE UNIQUE INDEX channel_message_queue_idempotency_key ON channel_message_queue (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The worker's claim: due PENDING rows, and SENDING rows whose lease ran out.
CREATE INDEX channel_message_queue_due_idx ON channel_message_queue (status, next_retry_at);
CREATE INDEX channel_message_queue_tenant_idx ON channel_message_queue (tenant_id, status, created_at DESC);

-- Native bridge state lives here, never on local disk. The lease names the replica running the session.
CREATE TABLE whatsapp_sessions (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    device               BLOB,
    qr                   TEXT,
    qr_expires_at        TEXT,
    lease_owner          TEXT,
    lease_until          TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX whatsapp_sessions_channel_key ON whatsapp_sessions (channel_instance_id);

CREATE TABLE whatsapp_keys (
    session_id  BLOB NOT NULL REFERENCES whatsapp_sessions (id) ON DELETE CASCADE,
    key_type    TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, key_type, key_id)
);

CREATE TABLE telegram_sessions (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    session_type         TEXT NOT NULL CHECK (session_type IN ('user', 'bot')),
    phone_number         TEXT,
    data                 TEXT NOT NULL DEFAULT '{}',
    update_state         TEXT,
    lease_owner          TEXT,
    lease_until          TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX telegram_sessions_channel_key ON telegram_sessions (channel_instance_id);

-- Telegram's peer cache: the access hashes without which a user cannot be messaged by id.
CREATE TABLE telegram_peers (
    session_id   BLOB NOT NULL REFERENCES telegram_sessions (id) ON DELETE CASCADE,
    peer_id      BIGINT NOT NULL,
    peer_kind    TEXT NOT NULL,
    access_hash  BIGINT,
    data         TEXT NOT NULL DEFAULT '{}',
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (session_id, peer_id)
);
