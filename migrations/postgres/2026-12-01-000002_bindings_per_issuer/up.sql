-- A binding is (issuer, sub) -> member: provider entries on one issuer share it. Rows of the
-- earlier member_bindings table (keyed by provider id) are carried over by idgate itself at
-- start and on reload, when the configuration names their provider's issuer.
CREATE TABLE identity_bindings (
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, issuer),
    UNIQUE (issuer, subject)
);
