-- The SQL of one inbound webhook on PostgreSQL (the channel lookup, then store::ingest_message),
-- as a pgbench script: the ceiling the HTTP path is compared with. Run by
-- `cargo bench -p omnichat-tests --bench inbound`, which passes the tenant, the channel and the
-- number of customers:
--   pgbench -n -M prepared -f bench/inbound.pgbench.sql -c 32 -j 2 -T 20 \
--     -D tenant=<uuid> -D channel=<uuid> -D users=<n> <database>
-- Customers and their open conversations exist already (the bench warms them up), as in steady state.
\set uid random(1, :users)
\set mid random(1, 2000000000)
SELECT * FROM channel_instances WHERE id = :channel;
BEGIN;
INSERT INTO customers (id, tenant_id, channel_instance_id, external_id, name, username, metadata, created_at, updated_at)
VALUES (gen_random_uuid(), :tenant, :channel, 'u' || :uid, 'Bench', NULL, '{}', now(), now())
ON CONFLICT (channel_instance_id, external_id) DO UPDATE SET
  name = COALESCE(excluded.name, customers.name),
  username = COALESCE(excluded.username, customers.username),
  updated_at = excluded.updated_at
RETURNING id AS customer_id \gset
UPDATE conversations SET last_message_at = now(), status = 'OPEN', updated_at = now()
 WHERE status <> 'CLOSED' AND id = (SELECT id FROM conversations
   WHERE channel_instance_id = :channel AND external_conversation_id = 'u' || :uid AND status <> 'CLOSED'
   ORDER BY created_at DESC LIMIT 1)
RETURNING id AS conversation_id \gset
INSERT INTO messages (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                      attachments, raw, provider_message_id, sent_at, created_at, updated_at)
VALUES (gen_random_uuid(), :tenant, :channel, :conversation_id, :customer_id, 'INBOUND', 'RECEIVED', 'bench message',
        '[]', '{"update_id": 1}', 'pg:' || :mid || ':' || :client_id, now(), now(), now())
ON CONFLICT (channel_instance_id, provider_message_id) DO NOTHING
RETURNING id;
COMMIT;
