-- Outgoing webhooks (its twin is migrations/sqlite/0008_webhook_subscriptions.sql: change both together).
--
-- A change writes its event into `webhook_events` (the outbox) by trigger, in the change's own
-- transaction, whatever code path made it (the ingest function included), and only when its
-- tenant has an active subscription. The dispatcher (host/src/webhooks/) turns each event into one
-- `webhook_deliveries` row per subscription that wants it (the body rendered once, so every
-- attempt sends the same bytes) and delivers them with leases and retries.

CREATE TABLE webhook_subscriptions (
    id                    UUID PRIMARY KEY,
    tenant_id             UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    -- JSON array of event names.
    events                JSONB NOT NULL DEFAULT '[]',
    -- Sealed with OMNICHAT_SECRET_KEY.
    secret                TEXT NOT NULL,
    is_active             BOOLEAN NOT NULL DEFAULT TRUE,
    description           TEXT,
    -- Why the dispatcher switched it off (NULL when a user did, or it is on).
    disabled_reason       TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant_idx ON webhook_subscriptions (tenant_id, is_active, created_at);

-- The outbox: what changed, by whom it is ordered (`ordering_key`: the conversation, else the
-- entity), and the entity's status at the change (the body shows that status even when the
-- entity moved on before it was rendered).
CREATE TABLE webhook_events (
    seq           BIGSERIAL PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event         TEXT NOT NULL,
    entity_id     UUID NOT NULL,
    ordering_key  UUID,
    status        TEXT,
    occurred_at   TIMESTAMPTZ NOT NULL,
    locked_by     TEXT,
    locked_until  TIMESTAMPTZ
);

CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id  UUID NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    -- The request body, rendered once.
    payload          TEXT NOT NULL,
    ordering_key     UUID,
    event_seq        BIGINT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENDING', 'DELIVERED', 'DEAD')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    locked_by        TEXT,
    locked_until     TIMESTAMPTZ,
    response_status  INTEGER,
    response_body    TEXT,
    last_error       TEXT,
    -- JSON array of the latest attempts: {at, responseStatus, error, durationMs}.
    attempt_log      JSONB NOT NULL DEFAULT '[]',
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, ordering_key, event_seq);
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, created_at DESC);

-- Writes one event when the tenant has an active subscription. Arguments: the event name, then
-- which of NEW's columns orders it ('conversation_id' or 'id') and holds its status ('' for none).
CREATE FUNCTION omnichat_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_json JSONB;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active) THEN
        RETURN NULL;
    END IF;
    row_json := to_jsonb(NEW);
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, TG_ARGV[0], NEW.id, (row_json ->> TG_ARGV[1])::uuid,
            CASE WHEN TG_ARGV[2] = '' THEN NULL ELSE row_json ->> TG_ARGV[2] END, clock_timestamp());
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_message_created AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION omnichat_webhook_event('message.created', 'conversation_id', 'status');

CREATE TRIGGER webhook_message_updated AFTER UPDATE OF status, error ON messages
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.error IS DISTINCT FROM NEW.error)
EXECUTE FUNCTION omnichat_webhook_event('message.updated', 'conversation_id', 'status');

CREATE TRIGGER webhook_conversation_created AFTER INSERT ON conversations
FOR EACH ROW EXECUTE FUNCTION omnichat_webhook_event('conversation.created', 'id', 'status');

-- A new message moving `last_message_at` is `message.created`, not a conversation change.
CREATE TRIGGER webhook_conversation_updated AFTER UPDATE ON conversations
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
    OR OLD.bot_status IS DISTINCT FROM NEW.bot_status OR OLD.bot_paused_until IS DISTINCT FROM NEW.bot_paused_until)
EXECUTE FUNCTION omnichat_webhook_event('conversation.updated', 'id', 'status');

CREATE TRIGGER webhook_customer_created AFTER INSERT ON customers
FOR EACH ROW EXECUTE FUNCTION omnichat_webhook_event('customer.created', 'id', '');

CREATE TRIGGER webhook_channel_status AFTER UPDATE OF status, status_reason ON channel_instances
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.status_reason IS DISTINCT FROM NEW.status_reason)
EXECUTE FUNCTION omnichat_webhook_event('channel.status', 'id', 'status');

CREATE TRIGGER webhook_agent_run AFTER INSERT ON agent_collaborations
FOR EACH ROW WHEN (NEW.kind = 'run')
EXECUTE FUNCTION omnichat_webhook_event('agent.run.completed', 'conversation_id', 'outcome');
