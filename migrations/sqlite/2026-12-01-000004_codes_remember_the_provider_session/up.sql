-- What an authentication code's session will remember of the provider's sign-in (its issuer,
-- subject and `sid`), so that a logout from the provider ends it too.
ALTER TABLE auth_codes ADD COLUMN issuer TEXT;
ALTER TABLE auth_codes ADD COLUMN subject TEXT;
ALTER TABLE auth_codes ADD COLUMN sid TEXT;
