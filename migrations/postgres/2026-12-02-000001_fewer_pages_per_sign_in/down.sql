DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid);
