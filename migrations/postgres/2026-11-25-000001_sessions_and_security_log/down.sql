DROP TABLE security_log;
DROP TABLE used_tokens;
DROP TABLE sessions;
