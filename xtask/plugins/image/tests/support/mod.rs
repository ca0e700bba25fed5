//! Helpers shared by the image crate's integration tests.

// Each test binary uses a part of these helpers.
#[allow(dead_code)]
pub mod registry;
