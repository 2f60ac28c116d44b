-- The replay guard's keys order its rows by expiry: an ID token's key begins with its `exp` (16
-- hex digits), and the purge takes the expired ones as a range of keys. Back-channel logout
-- tokens' keys (the hash of their issuer and `jti`, 64 hex digits) now begin with `logout:`, which
-- sorts after every hex digit: the purge takes them as a range of their own.
UPDATE used_tokens SET token_hash = 'logout:' || token_hash WHERE length(token_hash) = 64;
-- The index of expiries served nothing else and cost an entry, and a page, per sign-in.
DROP INDEX used_tokens_expires_at;
