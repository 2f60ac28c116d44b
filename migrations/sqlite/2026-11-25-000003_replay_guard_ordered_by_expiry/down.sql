UPDATE used_tokens
SET token_hash = substr(token_hash, 17)
WHERE length(token_hash) = 80;
