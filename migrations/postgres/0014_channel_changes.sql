-- Every replica keeps the channels webhooks look up in memory (host/src/store/channel_cache.rs)
-- and drops a copy when told the row changed: each update or delete of a channel (a cascade from
-- its tenant included) announces the channel's id on `omnichat_channel_changed` when its
-- transaction commits.
CREATE FUNCTION omnichat_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omnichat_channel_changed', OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER channel_changed AFTER UPDATE OR DELETE ON channel_instances
FOR EACH ROW EXECUTE FUNCTION omnichat_channel_changed();
