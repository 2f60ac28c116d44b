-- What a session remembers of the provider's sign-in, for logging out there and from there:
-- the token's issuer and subject, the provider's session id (`sid`), and the ID token itself
-- (sent back as `id_token_hint`). All are deleted with the session.
ALTER TABLE sessions ADD COLUMN issuer TEXT;
ALTER TABLE sessions ADD COLUMN subject TEXT;
ALTER TABLE sessions ADD COLUMN sid TEXT;
ALTER TABLE sessions ADD COLUMN id_token TEXT;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid);
