CREATE TABLE members (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    username_normalized TEXT NOT NULL UNIQUE,
    firstname TEXT NOT NULL DEFAULT '',
    surname TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('activated', 'unactivated', 'set-password', 'disabled')),
    locked BOOLEAN NOT NULL DEFAULT 0,
    admin BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE member_bindings (
    member_id BIGINT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, provider),
    UNIQUE (provider, subject)
);
