-- Files visitors upload through a web channel's visitor transport (the widget's attachments).
-- Kept in the database, so every replica serves them and a backup holds them; fetched by an
-- unguessable token, the only way to address one.
CREATE TABLE visitor_uploads (
    id                   UUID PRIMARY KEY,
    tenant_id            UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_instance_id  UUID NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    -- The visitor (customer external id) who uploaded it: only they may attach it.
    visitor_id           TEXT NOT NULL,
    token                TEXT NOT NULL,
    content_type         TEXT NOT NULL,
    file_name            TEXT,
    size                 BIGINT NOT NULL,
    body                 BYTEA NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX visitor_uploads_token_key ON visitor_uploads (token);
CREATE INDEX visitor_uploads_channel_idx ON visitor_uploads (channel_instance_id, created_at);
