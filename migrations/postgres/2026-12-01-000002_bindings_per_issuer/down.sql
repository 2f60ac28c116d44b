DROP TABLE identity_bindings;
