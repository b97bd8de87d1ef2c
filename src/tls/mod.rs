//! The interception CA and the leaf certificates it mints (filled in by the TLS work).
