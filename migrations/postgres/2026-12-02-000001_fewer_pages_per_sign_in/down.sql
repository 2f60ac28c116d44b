CREATE INDEX sessions_expires_at ON sessions (expires_at);

DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid);
