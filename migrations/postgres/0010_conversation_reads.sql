-- Each user's read mark per conversation: its unread count is the INBOUND messages after it
-- (all of them before the first mark). POST /api/conversations/:id/read moves it.
CREATE TABLE conversation_reads (
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    last_read_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX conversation_reads_conversation_idx ON conversation_reads (conversation_id);
