-- One round trip for an inbound message: handle_inbound_message's transaction as one function,
-- so a webhook costs the host two statements (the channel lookup and this) instead of six. Each
-- statement inside takes its own snapshot, as separate statements in a transaction would: the
-- customer upsert locks the customer's row, so concurrent messages of one customer find or create
-- its conversation one at a time and see each other's conversation.
--
-- Returns no row for a message already stored (nothing is written). A redelivery racing the
-- first delivery is caught by the unique key and raised as unique_violation on
-- messages_provider_id_key, which rolls the whole call back.
CREATE FUNCTION omnichat_ingest_message(
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
    customer := c;
    conversation := v;
    message := m;
    RETURN NEXT;
END
$$;
