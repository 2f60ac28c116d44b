-- The replay guard's key starts with the token's `exp` (16 hex digits) before its hash, so that
-- new rows go to the end of the index instead of a random page of it. Rows stored before keep
-- their meaning: `exp` is their `expires_at` less the 60 seconds of leeway.
UPDATE used_tokens
SET token_hash = printf('%016x', expires_at - 60) || token_hash
WHERE length(token_hash) = 64;
