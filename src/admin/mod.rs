//! The review dashboard and /metrics (filled in by the admin work).
