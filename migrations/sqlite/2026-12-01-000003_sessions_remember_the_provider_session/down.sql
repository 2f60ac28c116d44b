DROP INDEX sessions_by_provider_session;
ALTER TABLE sessions DROP COLUMN id_token;
ALTER TABLE sessions DROP COLUMN sid;
ALTER TABLE sessions DROP COLUMN subject;
ALTER TABLE sessions DROP COLUMN issuer;
