-- Outgoing webhooks (its twin is migrations/postgres/0008_webhook_subscriptions.sql: change both together).
--
-- A change writes its event into `webhook_events` (the outbox) by trigger, in the change's own
-- transaction, whatever code path made it, and only when its tenant has an active subscription.
-- The dispatcher (host/src/webhooks/) turns each event into one `webhook_deliveries` row per
-- subscription that wants it (the body rendered once, so every attempt sends the same bytes) and
-- delivers them with leases and retries.

CREATE TABLE webhook_subscriptions (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    -- JSON array of event names.
    events                TEXT NOT NULL DEFAULT '[]',
    -- Sealed with OMNICHAT_SECRET_KEY.
    secret                TEXT NOT NULL,
    is_active             INTEGER NOT NULL DEFAULT 1,
    description           TEXT,
    -- Why the dispatcher switched it off (NULL when a user did, or it is on).
    disabled_reason       TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant_idx ON webhook_subscriptions (tenant_id, is_active, created_at);

-- The outbox: what changed, by whom it is ordered (`ordering_key`: the conversation, else the
-- entity), and the entity's status at the change (the body shows that status even when the
-- entity moved on before it was rendered).
CREATE TABLE webhook_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event         TEXT NOT NULL,
    entity_id     BLOB NOT NULL,
    ordering_key  BLOB,
    status        TEXT,
    occurred_at   TEXT NOT NULL,
    locked_by     TEXT,
    locked_until  TEXT
);

CREATE TABLE webhook_deliveries (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id  BLOB NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    -- The request body, rendered once.
    payload          TEXT NOT NULL,
    ordering_key     BLOB,
    event_seq        INTEGER NOT NULL,
    status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENDING', 'DELIVERED', 'DEAD')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_by        TEXT,
    locked_until     TEXT,
    response_status  INTEGER,
    response_body    TEXT,
    last_error       TEXT,
    -- JSON array of the latest attempts: {at, responseStatus, error, durationMs}.
    attempt_log      TEXT NOT NULL DEFAULT '[]',
    delivered_at     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, ordering_key, event_seq);
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, created_at DESC);

-- The triggers: one event per change, only for tenants with an active subscription.
CREATE TRIGGER webhook_message_created AFTER INSERT ON messages
WHEN EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'message.created', NEW.id, NEW.conversation_id, NEW.status, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

CREATE TRIGGER webhook_message_updated AFTER UPDATE OF status, error ON messages
WHEN (OLD.status IS NOT NEW.status OR OLD.error IS NOT NEW.error)
  AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'message.updated', NEW.id, NEW.conversation_id, NEW.status, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

CREATE TRIGGER webhook_conversation_created AFTER INSERT ON conversations
WHEN EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'conversation.created', NEW.id, NEW.id, NEW.status, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

-- A new message moving `last_message_at` is `message.created`, not a conversation change.
CREATE TRIGGER webhook_conversation_updated AFTER UPDATE ON conversations
WHEN (OLD.status IS NOT NEW.status OR OLD.assignee_id IS NOT NEW.assignee_id
      OR OLD.bot_status IS NOT NEW.bot_status OR OLD.bot_paused_until IS NOT NEW.bot_paused_until)
  AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'conversation.updated', NEW.id, NEW.id, NEW.status, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

CREATE TRIGGER webhook_customer_created AFTER INSERT ON customers
WHEN EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'customer.created', NEW.id, NEW.id, NULL, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

CREATE TRIGGER webhook_channel_status AFTER UPDATE OF status, status_reason ON channel_instances
WHEN (OLD.status IS NOT NEW.status OR OLD.status_reason IS NOT NEW.status_reason)
  AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'channel.status', NEW.id, NEW.id, NEW.status, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;

CREATE TRIGGER webhook_agent_run AFTER INSERT ON agent_collaborations
WHEN NEW.kind = 'run'
  AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.tenant_id = NEW.tenant_id AND s.is_active)
BEGIN
    INSERT INTO webhook_events (tenant_id, event, entity_id, ordering_key, status, occurred_at)
    VALUES (NEW.tenant_id, 'agent.run.completed', NEW.id, NEW.conversation_id, NEW.outcome, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
END;
