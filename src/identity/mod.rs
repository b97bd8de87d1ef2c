//! Identity: who is behind a request when the organisation wants people, not addresses —
//! proxy authentication against an htpasswd file and/or a directory (LDAP), with a cache
//! of verified logins and limits on failed ones.

pub mod ldap;
