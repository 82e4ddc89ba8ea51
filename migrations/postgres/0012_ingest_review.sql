-- Review fixes to the inbound functions of 0007 and 0011 (host/src/store/group_commit.rs):
-- * omnichat_ingest_message: `last_message_at` never moves backwards. Two batches commit side by
--   side, so a conversation's later message may be written by the batch that started first.
-- * omnichat_ingest_batch: a lock wait over `lock_timeout` (5 s unless set) and a serialization
--   failure are RETRY like a deadlock; after 5 s the call tries no more messages (the rest are
--   RETRY, so one batch of lock waits holds up the queue for seconds, not minutes); a server error that is not the message's fault (class
--   53 out of resources, 57 operator intervention, 08 connection) fails the whole call, which the
--   host answers 503 for every message, instead of a FAILED row answered 500.

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
        UPDATE conversations AS x SET last_message_at = GREATEST(x.last_message_at, p_now), status = 'OPEN', updated_at = p_now
        WHERE x.status <> 'CLOSED' AND x.id = (SELECT y.id FROM conversations y
            WHERE y.channel_instance_id = p_channel_instance_id AND y.external_conversation_id = p_external_conversation_id
              AND y.status <> 'CLOSED' ORDER BY y.created_at DESC LIMIT 1)
        RETURNING * INTO v;
    ELSE
        UPDATE conversations AS x SET last_message_at = GREATEST(x.last_message_at, p_now), status = 'OPEN', updated_at = p_now
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

CREATE OR REPLACE FUNCTION omnichat_ingest_batch(
    p_tenant_id UUID[], p_channel_instance_id UUID[], p_customer_id UUID[], p_external_user_id TEXT[],
    p_sender_name TEXT[], p_sender_username TEXT[], p_external_conversation_id TEXT[], p_conversation_id UUID[],
    p_message_id UUID[], p_direction TEXT[], p_status TEXT[], p_text TEXT[], p_attachments JSONB[], p_raw JSONB[],
    p_provider_message_id TEXT[], p_sent_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[])
RETURNS TABLE (outcome TEXT, customer customers, conversation conversations, message messages,
               conversation_created BOOLEAN, error_code TEXT, error_message TEXT, error_constraint TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    started TIMESTAMPTZ := clock_timestamp();
BEGIN
    -- A message waiting on a row lock (a customer or conversation another transaction holds)
    -- gives up after 5 s and goes again in a later batch, unless the operator set a limit.
    IF current_setting('lock_timeout') = '0' THEN
        PERFORM set_config('lock_timeout', '5s', true);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_tenant_id, 1), 0) LOOP
        customer := NULL;
        conversation := NULL;
        message := NULL;
        conversation_created := NULL;
        error_code := NULL;
        error_message := NULL;
        error_constraint := NULL;
        IF clock_timestamp() - started > interval '5 seconds' THEN
            outcome := 'RETRY';
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            SELECT * INTO r FROM omnichat_ingest_message(
                p_tenant_id[i], p_channel_instance_id[i], p_customer_id[i], p_external_user_id[i],
                p_sender_name[i], p_sender_username[i], p_external_conversation_id[i], p_conversation_id[i],
                p_message_id[i], p_direction[i], p_status[i], p_text[i], p_attachments[i], p_raw[i],
                p_provider_message_id[i], p_sent_at[i], p_now[i]);
            IF FOUND THEN
                outcome := 'STORED';
                customer := r.customer;
                conversation := r.conversation;
                message := r.message;
                conversation_created := r.conversation_created;
            ELSE
                outcome := 'DUPLICATE';
            END IF;
        EXCEPTION
            WHEN deadlock_detected OR serialization_failure OR lock_not_available THEN
                outcome := 'RETRY';
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                    error_constraint = CONSTRAINT_NAME;
                -- The server out of resources (disk, memory, connections) or shutting down: not
                -- this message's fault. The whole call fails and every caller hears 503.
                IF left(error_code, 2) IN ('53', '57', '08') THEN
                    RAISE;
                END IF;
                IF error_code = '23505' AND error_constraint = 'messages_provider_id_key' THEN
                    outcome := 'DUPLICATE';
                    error_code := NULL;
                    error_message := NULL;
                    error_constraint := NULL;
                ELSE
                    outcome := 'FAILED';
                END IF;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
