//! The web console driven in the system's headless Chromium: see `tests/browser.rs`.
