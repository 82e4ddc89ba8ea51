-- A provider account (a Facebook page id, a phone number) is unique within a tenant, not across
-- tenants: a tenant can no longer block another from its own page by claiming it first, and a
-- conflict no longer tells one tenant that another uses an account. Where several tenants claim
-- one account, shared webhooks go only to the channels whose `connect` proved the credentials
-- at the provider (verified_at), the page's actual owners.
DROP INDEX channel_instances_external_key;
CREATE UNIQUE INDEX channel_instances_external_key ON channel_instances (tenant_id, type, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX channel_instances_account_idx ON channel_instances (type, external_id) WHERE external_id IS NOT NULL;
ALTER TABLE channel_instances ADD COLUMN verified_at TEXT;
