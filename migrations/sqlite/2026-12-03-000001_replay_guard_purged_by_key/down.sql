-- The keys keep their start: an earlier version finds ID tokens' rows by such keys, and looks up
-- back-channel logout tokens' by their hash alone (a logout token used before the downgrade is
-- then not recognised again while it would still be accepted).
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);
