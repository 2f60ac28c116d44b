ALTER TABLE auth_codes DROP COLUMN sid;
ALTER TABLE auth_codes DROP COLUMN subject;
ALTER TABLE auth_codes DROP COLUMN issuer;
