-- Every replay-guard key starts with when its row may go, less the 60 seconds of leeway (for an
-- ID token its `exp`), in 16 hex digits: the keys order the rows by expiry, and the purge takes
-- the expired ones as a range of keys. Back-channel logout tokens' keys were their hash alone:
-- they get the same start, which their keys are looked up with from now on.
UPDATE used_tokens
SET token_hash = lpad(to_hex(greatest(expires_at - 60, 0)), 16, '0') || token_hash
WHERE length(token_hash) = 64;
-- The index of expiries served nothing else and cost an entry per sign-in.
DROP INDEX used_tokens_expires_at;
