UPDATE used_tokens SET token_hash = substr(token_hash, 8) WHERE token_hash LIKE 'logout:%';
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);
