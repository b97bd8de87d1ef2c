//! Headless Chromium for browser-facing tests (filled in by the browser harness work).
