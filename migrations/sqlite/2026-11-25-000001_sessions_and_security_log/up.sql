-- Sessions: only the SHA-256 of the session id is kept.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_member_id ON sessions (member_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- The replay guard: hashes of ID tokens already used to sign in, kept until they expire.
CREATE TABLE used_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);

-- The security log: every authentication event, successful or not.
CREATE TABLE security_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    provider TEXT,
    email TEXT,
    member_id BIGINT,
    client_ip TEXT,
    user_agent TEXT,
    incident TEXT NOT NULL
);
CREATE INDEX security_log_at ON security_log (at);
