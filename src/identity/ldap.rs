//! LDAP authentication (filled in by the LDAP work).
