DROP TABLE member_bindings;
DROP TABLE members;
