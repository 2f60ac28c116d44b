ALTER TABLE security_log DROP COLUMN email_source;
