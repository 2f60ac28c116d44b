-- Where a sign-in's email came from when not the ID token (userinfo).
ALTER TABLE security_log ADD COLUMN email_source TEXT;
