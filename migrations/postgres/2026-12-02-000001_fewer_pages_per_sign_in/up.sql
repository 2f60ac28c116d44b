-- Sessions are found by the provider's session id only when there is one: sign-ins with tokens
-- that name none add no entry to that index.
DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid) WHERE sid IS NOT NULL;
