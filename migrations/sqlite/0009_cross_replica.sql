-- Every bridge flow works on any replica.
--
-- A Telegram login between the code and its confirmation: the phone code hash and whether the
-- password step is next (with its hint), sealed with OMNICHAT_SECRET_KEY. The login's auth key is
-- already in `data`, so any replica can confirm it on a client over the same session.
ALTER TABLE telegram_sessions ADD COLUMN pending_login TEXT;
ALTER TABLE telegram_sessions ADD COLUMN login_expires_at TEXT;

-- Work only a session's live client can do (a WhatsApp pair code or logout, a media download),
-- asked on a replica that does not run the session: the replica holding the session's lease
-- (`owner`) claims it, does it and stores the answer, which the asking replica takes (deleting
-- the row) to answer its request.
CREATE TABLE bridge_requests (
    id                   BLOB PRIMARY KEY,
    owner                TEXT NOT NULL,
    channel_instance_id  BLOB NOT NULL REFERENCES channel_instances (id) ON DELETE CASCADE,
    kind                 TEXT NOT NULL,
    payload              TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')),
    result               BLOB,
    error_code           TEXT,
    error                TEXT,
    created_at           TEXT NOT NULL,
    expires_at           TEXT NOT NULL
);
CREATE INDEX bridge_requests_owner_idx ON bridge_requests (owner, status);
