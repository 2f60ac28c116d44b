-- Sessions are found by the provider's session id only when there is one: sign-ins with tokens
-- that name none add no entry to that index.
DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid) WHERE sid IS NOT NULL;

-- Expired sessions are purged by a scan (a session ends at its absolute end or its idle
-- timeout, whichever is first, and no one index answers both), so an index of their absolute
-- ends served no query and cost a page per commit.
DROP INDEX sessions_expires_at;
