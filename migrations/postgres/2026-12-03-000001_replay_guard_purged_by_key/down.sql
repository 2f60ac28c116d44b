UPDATE used_tokens SET token_hash = substr(token_hash, 8) WHERE token_hash LIKE 'logout:%';
ALTER TABLE used_tokens ALTER COLUMN token_hash TYPE TEXT COLLATE "default";
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);
