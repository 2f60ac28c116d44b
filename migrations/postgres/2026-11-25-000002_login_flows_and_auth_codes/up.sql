-- Authorization-code flows started by GET /login/{provider}, until their callback (single use).
CREATE TABLE login_flows (
    state_hash TEXT PRIMARY KEY NOT NULL,
    browser_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    redirect TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_flows_expires_at ON login_flows (expires_at);

-- One-time authentication codes for document apps (POST /authenticate action=code).
CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);
