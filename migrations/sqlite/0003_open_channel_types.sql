-- no-transaction
-- Channel types are open: a loaded plugin may declare a type of its own. The column
-- keeps a naming rule instead of the seed's five names; which types exist is the host's registry.
--
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt (the documented 12-step
-- procedure). Foreign keys are off meanwhile, or dropping the old table would cascade to every
-- customer, conversation and message; that PRAGMA is ignored inside a transaction, hence
-- `no-transaction` and an explicit one.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE channel_instances_new (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type           TEXT NOT NULL CHECK (length(type) BETWEEN 2 AND 32 AND type NOT GLOB '*[^A-Z0-9_]*' AND type GLOB '[A-Z]*'),
    status         TEXT NOT NULL DEFAULT 'DISCONNECTED' CHECK (status IN ('DISCONNECTED', 'CONNECTING', 'CONNECTED', 'ERROR')),
    status_reason  TEXT,
    name           TEXT NOT NULL,
    external_id    TEXT,
    config         TEXT NOT NULL DEFAULT '{}',
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
INSERT INTO channel_instances_new (id, tenant_id, type, status, status_reason, name, external_id, config, metadata, created_at, updated_at)
    SELECT id, tenant_id, type, status, status_reason, name, external_id, config, metadata, created_at, updated_at FROM channel_instances;
DROP TABLE channel_instances;
ALTER TABLE channel_instances_new RENAME TO channel_instances;
CREATE INDEX channel_instances_tenant_idx ON channel_instances (tenant_id, created_at);
-- A provider account (a Facebook page, a bot, a phone number) feeds exactly one channel.
CREATE UNIQUE INDEX channel_instances_external_key ON channel_instances (type, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX channel_instances_status_idx ON channel_instances (type, status);
COMMIT;
PRAGMA foreign_keys = ON;
