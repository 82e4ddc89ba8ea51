-- Channel types are open: a loaded plugin may declare a type of its own. The column
-- keeps a naming rule instead of the seed's five names; which types exist is the host's registry.
ALTER TABLE channel_instances DROP CONSTRAINT IF EXISTS channel_instances_type_check;
ALTER TABLE channel_instances ADD CONSTRAINT channel_instances_type_check CHECK (type ~ '^[A-Z][A-Z0-9_]{1,31}$');
