DROP TABLE auth_codes;
DROP TABLE login_flows;
