-- The replay guard's keys order its rows by expiry: an ID token's key begins with its `exp` (16
-- hex digits), and the purge takes the expired ones as a range of keys. Back-channel logout
-- tokens' keys (the hash of their issuer and `jti`, 64 hex digits) now begin with `logout:`, which
-- sorts after every hex digit: the purge takes them as a range of their own.
UPDATE used_tokens SET token_hash = 'logout:' || token_hash WHERE length(token_hash) = 64;
-- Keys compare byte by byte, whatever the database's collation (one that orders digits as
-- numbers would break the ranges).
ALTER TABLE used_tokens ALTER COLUMN token_hash TYPE TEXT COLLATE "C";
-- The index of expiries served nothing else and cost an entry per sign-in.
DROP INDEX used_tokens_expires_at;
