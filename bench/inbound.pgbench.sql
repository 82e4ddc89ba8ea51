-- The SQL of one inbound webhook on PostgreSQL (the channel lookup, then store::ingest_message's
-- call of the ingest function), as a pgbench script: the ceiling the HTTP path is compared with.
-- Run by `cargo bench -p omnichat-tests --bench inbound`, which passes the tenant, the channel and
-- the number of customers:
--   pgbench -n -M prepared -f bench/inbound.pgbench.sql -c 32 -j 2 -T 20 \
--     -D tenant=<uuid> -D channel=<uuid> -D users=<n> <database>
-- Customers and their open conversations exist already (the bench warms them up), as in steady state.
\set uid random(1, :users)
\set mid random(1, 2000000000)
SELECT * FROM channel_instances WHERE id = :channel;
SELECT customer, conversation, message, conversation_created
FROM omnichat_ingest_message(:tenant, :channel, gen_random_uuid(), 'u' || :uid, 'Bench', NULL, 'u' || :uid,
  gen_random_uuid(), gen_random_uuid(), 'INBOUND', 'RECEIVED', 'bench message', '[]', '{"update_id": 1}',
  'pg:' || :mid || ':' || :client_id, now(), now());
