-- A batch of inbound messages as a few set-based statements instead of five statements per
-- message (issue 18, goal 4: PostgreSQL's CPU per message was executor start-up per statement).
--
-- omnichat_ingest_batch (0011, 0012) first tries the whole batch at once, in one subtransaction:
--   1. the messages not stored yet (and the first of each provider id within the batch);
--   2. one upsert of their customers, in key order (so concurrent batches lock customers in the
--      same order, and a batch waiting on a customer sees, in the next statement, the
--      conversation the other batch created for it);
--   3. one statement for the rest: each conversation (the customer's, or the channel's external
--      conversation's, newest not CLOSED) touched once, the missing ones created, the messages
--      inserted, the agent jobs queued.
-- Anything unusual rolls that attempt back and the batch runs message by message as before, each
-- under its own savepoint: an error (a channel deleted meanwhile, a deadlock, a row lock held
-- elsewhere for over 200 ms), a message stored by a racing call meanwhile, a conversation closed
-- meanwhile, a customer with messages both in a thread and outside any (where one by one the
-- second may join the conversation the first opened). The server log says so (LOG level). The answers are the
-- same either way: one row per message, in order, 'STORED' (with what it touched; the
-- conversation and customer as the batch left them), 'DUPLICATE', 'RETRY' or 'FAILED'.
-- Server-side trouble that is not a message's fault (classes 53, 57, 08) still fails the call.

CREATE OR REPLACE FUNCTION omnichat_ingest_batch(
    p_tenant_id UUID[], p_channel_instance_id UUID[], p_customer_id UUID[], p_external_user_id TEXT[],
    p_sender_name TEXT[], p_sender_username TEXT[], p_external_conversation_id TEXT[], p_conversation_id UUID[],
    p_message_id UUID[], p_direction TEXT[], p_status TEXT[], p_text TEXT[], p_attachments JSONB[], p_raw JSONB[],
    p_provider_message_id TEXT[], p_sent_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[])
RETURNS TABLE (outcome TEXT, customer customers, conversation conversations, message messages,
               conversation_created BOOLEAN, error_code TEXT, error_message TEXT, error_constraint TEXT)
LANGUAGE plpgsql
-- Each statement planned once per connection: a custom plan per call (the arrays inlined as
-- constants) cost more to plan than the batch took to run.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r RECORD;
    started TIMESTAMPTZ := clock_timestamp();
    -- The set-based attempt's results. fresh[k] is the position in the batch of the k-th message
    -- to store; cust[k], conv[k], msg[k] and made[k] are what storing it did.
    fresh INT[];
    cust customers[];
    conv conversations[];
    msg messages[];
    made BOOLEAN[];
    failed_code TEXT;
    failed_message TEXT;
BEGIN
    -- A message waiting on a row lock (a customer or conversation another transaction holds)
    -- gives up after 5 s and goes again in a later batch, unless the operator set a limit.
    IF current_setting('lock_timeout') = '0' THEN
        PERFORM set_config('lock_timeout', '5s', true);
    END IF;

    BEGIN
        -- A row lock held elsewhere sends the batch down the one-by-one path quickly, where only
        -- the message that needs that row waits (a failed attempt's rollback undoes the setting).
        IF current_setting('lock_timeout')::interval > interval '200 milliseconds' THEN
            PERFORM set_config('lock_timeout', '200ms', true);
        END IF;
        -- Looked up one by one (LATERAL ... LIMIT 1): a plan hashing the whole table cannot be chosen.
        SELECT coalesce(array_agg(t.i ORDER BY t.i), '{}') INTO fresh
        FROM unnest(p_provider_message_id) WITH ORDINALITY AS t(provider_id, i)
        LEFT JOIN LATERAL (SELECT true AS stored FROM messages e
                           WHERE e.channel_instance_id = p_channel_instance_id[t.i] AND e.provider_message_id = t.provider_id
                           LIMIT 1) AS d ON true
        WHERE t.provider_id IS NULL
           OR (d.stored IS NULL
               AND NOT EXISTS (SELECT 1 FROM unnest(p_provider_message_id, p_channel_instance_id) WITH ORDINALITY AS u(provider_id, channel_id, j)
                               WHERE u.j < t.i AND u.provider_id = t.provider_id AND u.channel_id = p_channel_instance_id[t.i]));

        -- A customer with messages in a thread (a group) and outside any in one batch: one by
        -- one, its thread-less message may land in the conversation the batch opens for the
        -- thread (the customer's newest), which one statement's snapshot cannot see.
        IF EXISTS (SELECT 1 FROM unnest(fresh) AS i
                   GROUP BY p_channel_instance_id[i], p_external_user_id[i]
                   HAVING bool_or(p_external_conversation_id[i] IS NULL) AND bool_or(p_external_conversation_id[i] IS NOT NULL)) THEN
            RAISE EXCEPTION 'omnichat_ingest_batch: a customer both in and outside a thread';
        END IF;

        IF cardinality(fresh) > 0 THEN
            -- One row per customer: created by its first message (id, created_at), the latest
            -- name and username the batch carries, updated_at of its last message.
            WITH k AS (
                SELECT p_channel_instance_id[i] AS channel_id, p_external_user_id[i] AS external_id,
                       (array_agg(p_customer_id[i] ORDER BY i))[1] AS id,
                       (array_agg(p_tenant_id[i] ORDER BY i))[1] AS tenant_id,
                       (array_agg(p_sender_name[i] ORDER BY i DESC) FILTER (WHERE p_sender_name[i] IS NOT NULL))[1] AS name,
                       (array_agg(p_sender_username[i] ORDER BY i DESC) FILTER (WHERE p_sender_username[i] IS NOT NULL))[1] AS username,
                       (array_agg(p_now[i] ORDER BY i))[1] AS first_at,
                       (array_agg(p_now[i] ORDER BY i DESC))[1] AS last_at
                FROM unnest(fresh) AS i
                GROUP BY 1, 2
            ), up AS (
                INSERT INTO customers AS x (id, tenant_id, channel_instance_id, external_id, name, username, metadata, created_at, updated_at)
                SELECT k.id, k.tenant_id, k.channel_id, k.external_id, k.name, k.username, '{}', k.first_at, k.last_at
                FROM k ORDER BY k.channel_id, k.external_id
                ON CONFLICT (channel_instance_id, external_id) DO UPDATE SET
                    name = COALESCE(excluded.name, x.name),
                    username = COALESCE(excluded.username, x.username),
                    updated_at = excluded.updated_at
                RETURNING x
            )
            SELECT array_agg(up.x ORDER BY f.k) INTO cust
            FROM unnest(fresh) WITH ORDINALITY AS f(i, k)
            JOIN up ON (up.x).channel_instance_id = p_channel_instance_id[f.i] AND (up.x).external_id = p_external_user_id[f.i];
            IF coalesce(cardinality(cust), 0) <> cardinality(fresh) THEN
                RAISE EXCEPTION 'omnichat_ingest_batch: % customers for % messages', coalesce(cardinality(cust), 0), cardinality(fresh);
            END IF;

            -- A statement of its own: it sees the conversations of every transaction that held
            -- one of these customers before the upsert above could lock it.
            WITH m AS (
                SELECT f.k, f.i, (cust[f.k]).id AS customer_id, p_channel_instance_id[f.i] AS channel_id,
                       p_external_conversation_id[f.i] AS ext
                FROM unnest(fresh) WITH ORDINALITY AS f(i, k)
            ), keyed AS (
                -- The batch's messages of one conversation share first_k, their first message's k.
                SELECT m.*, min(m.k) OVER (PARTITION BY m.channel_id, m.ext,
                                           CASE WHEN m.ext IS NULL THEN m.customer_id END) AS first_k
                FROM m
            ), conv_key AS (
                SELECT kd.first_k, max(p_now[kd.i]) AS last_at FROM keyed kd GROUP BY kd.first_k
            ), opened AS (
                SELECT ck.first_k, ck.last_at, m.i, m.customer_id, m.channel_id, m.ext,
                       CASE WHEN m.ext IS NULL THEN
                           (SELECT y.id FROM conversations y WHERE y.customer_id = m.customer_id AND y.status <> 'CLOSED'
                            ORDER BY y.created_at DESC LIMIT 1)
                       ELSE
                           (SELECT y.id FROM conversations y
                            WHERE y.channel_instance_id = m.channel_id AND y.external_conversation_id = m.ext AND y.status <> 'CLOSED'
                            ORDER BY y.created_at DESC LIMIT 1)
                       END AS open_id
                FROM conv_key ck JOIN m ON m.k = ck.first_k
            ), touched AS (
                UPDATE conversations AS x SET last_message_at = GREATEST(x.last_message_at, o.last_at), status = 'OPEN',
                    updated_at = o.last_at
                FROM opened o WHERE x.id = o.open_id AND x.status <> 'CLOSED'
                RETURNING o.first_k, x
            ), created AS (
                -- Only where there was no open conversation: one closed meanwhile (or found by
                -- two keys) leaves its messages without a conversation, and the count check
                -- below sends the batch down the one-by-one path.
                INSERT INTO conversations AS x (id, tenant_id, channel_instance_id, customer_id, external_conversation_id, status,
                                                last_message_at, created_at, updated_at)
                SELECT p_conversation_id[o.i], p_tenant_id[o.i], o.channel_id, o.customer_id, o.ext, 'OPEN',
                       o.last_at, p_now[o.i], o.last_at
                FROM opened o WHERE o.open_id IS NULL
                RETURNING x
            ), conv_of AS (
                SELECT t.first_k, t.x, false AS is_new FROM touched t
                UNION ALL
                SELECT o.first_k, c.x, true FROM created c JOIN opened o ON (c.x).id = p_conversation_id[o.i]
            ), ins AS (
                INSERT INTO messages AS x (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                                           attachments, raw, provider_message_id, sent_at, created_at, updated_at)
                SELECT p_message_id[kd.i], p_tenant_id[kd.i], kd.channel_id, (cv.x).id, kd.customer_id, p_direction[kd.i],
                       p_status[kd.i], p_text[kd.i], p_attachments[kd.i], p_raw[kd.i], p_provider_message_id[kd.i],
                       p_sent_at[kd.i], p_now[kd.i], p_now[kd.i]
                FROM keyed kd JOIN conv_of cv ON cv.first_k = kd.first_k
                ORDER BY kd.k
                ON CONFLICT (channel_instance_id, provider_message_id) DO NOTHING
                RETURNING x
            ), jobs AS (
                INSERT INTO agent_jobs (id, tenant_id, conversation_id, message_id, status, attempts, run_at, created_at, updated_at)
                SELECT gen_random_uuid(), (i.x).tenant_id, (i.x).conversation_id, (i.x).id, 'PENDING', 0,
                       (i.x).created_at, (i.x).created_at, (i.x).created_at
                FROM ins i
                WHERE (i.x).direction = 'INBOUND'
                  AND EXISTS (SELECT 1 FROM agents a WHERE a.tenant_id = (i.x).tenant_id AND a.is_active)
            )
            SELECT array_agg(i.x ORDER BY kd.k), array_agg(cv.x ORDER BY kd.k),
                   array_agg(cv.is_new AND kd.k = kd.first_k ORDER BY kd.k)
            INTO msg, conv, made
            FROM keyed kd JOIN conv_of cv ON cv.first_k = kd.first_k JOIN ins i ON (i.x).id = p_message_id[kd.i];

            IF coalesce(cardinality(msg), 0) <> cardinality(fresh) THEN
                RAISE EXCEPTION 'omnichat_ingest_batch: % of % messages stored at once', coalesce(cardinality(msg), 0),
                    cardinality(fresh);
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failed_code = RETURNED_SQLSTATE, failed_message = MESSAGE_TEXT;
        -- Not the batch's fault (out of resources, shutting down, connection): fail the call.
        IF left(failed_code, 2) IN ('53', '57', '08') THEN
            RAISE;
        END IF;
        RAISE LOG 'omnichat_ingest_batch: % messages stored one by one (set-based attempt: %: %)',
            cardinality(p_tenant_id), failed_code, failed_message;
        fresh := NULL;
    END;

    IF fresh IS NOT NULL THEN
        RETURN QUERY
            SELECT CASE WHEN f.k IS NULL THEN 'DUPLICATE' ELSE 'STORED' END, cust[f.k], conv[f.k], msg[f.k], made[f.k],
                   NULL::TEXT, NULL::TEXT, NULL::TEXT
            FROM generate_subscripts(p_tenant_id, 1) AS i, LATERAL (SELECT array_position(fresh, i) AS k) AS f
            ORDER BY i;
        RETURN;
    END IF;

    -- One by one, each message under its own savepoint.
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
