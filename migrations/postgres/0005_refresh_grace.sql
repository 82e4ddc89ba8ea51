-- A rotated refresh token keeps its successor (sealed with OMNICHAT_SECRET_KEY) so that a client
-- presenting it again within the grace window (a retried or concurrent refresh) gets the same
-- successor instead of tripping reuse detection. Cleared once the successor is rotated in turn.
ALTER TABLE refresh_tokens ADD COLUMN successor_token TEXT;
