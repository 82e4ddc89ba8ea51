-- Group commit for the inbound path (host/src/store/group_commit.rs): a batch of inbound
-- messages in one call, one transaction and one commit. The arguments are
-- omnichat_ingest_message's, one array per parameter, element i of each being message i.
--
-- Each message runs in its own subtransaction (the BEGIN ... EXCEPTION block), so one that fails
-- is rolled back alone and its batch-mates are still stored. One row per message, in order:
--   outcome 'STORED'    the message and what it touched;
--   outcome 'DUPLICATE' already stored (before, earlier in this batch, or by a racing call);
--   outcome 'RETRY'     chosen as a deadlock victim: the host stores it again in a later batch;
--   outcome 'FAILED'    refused: error_code is its SQLSTATE, error_message the text,
--                       error_constraint the constraint (a deleted channel: 23503).
-- The host sends at most 64 messages per batch: a transaction keeps up to 64 subtransaction ids
-- in shared memory before other sessions' snapshots have to look them up on disk.
CREATE FUNCTION omnichat_ingest_batch(
    p_tenant_id UUID[], p_channel_instance_id UUID[], p_customer_id UUID[], p_external_user_id TEXT[],
    p_sender_name TEXT[], p_sender_username TEXT[], p_external_conversation_id TEXT[], p_conversation_id UUID[],
    p_message_id UUID[], p_direction TEXT[], p_status TEXT[], p_text TEXT[], p_attachments JSONB[], p_raw JSONB[],
    p_provider_message_id TEXT[], p_sent_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[])
RETURNS TABLE (outcome TEXT, customer customers, conversation conversations, message messages,
               conversation_created BOOLEAN, error_code TEXT, error_message TEXT, error_constraint TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_tenant_id, 1), 0) LOOP
        customer := NULL;
        conversation := NULL;
        message := NULL;
        conversation_created := NULL;
        error_code := NULL;
        error_message := NULL;
        error_constraint := NULL;
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
            WHEN deadlock_detected THEN
                outcome := 'RETRY';
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                    error_constraint = CONSTRAINT_NAME;
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
