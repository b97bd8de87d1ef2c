//! A throw-away slapd for LDAP tests (filled in by the LDAP work).
