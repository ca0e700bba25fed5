//! The infrastructure layer of `cargo xtask`: the stack graph (which Pulumi stacks exist,
//! what each depends on, what may be done to each) and a wrapper that drives the `pulumi`
//! CLI non-interactively, with its environment from `infra/.env`, a state backup before
//! every change and Pulumi's failures mapped to one-line errors that say how to fix them.
//! Pulumi runs as a child that SIGINT and SIGTERM are forwarded to ([`child`]), so an
//! interrupted update cancels the way Pulumi intends and releases its lock.
//!
//! No tokio and no AWS SDK here: the image check compute needs goes through the
//! [`images::ImageRegistry`] trait, implemented where the registries are.

pub mod child;
pub mod graph;
pub mod dotenv;
pub mod error;
pub mod export;
pub mod images;
pub mod lock;
pub mod preview;
pub mod records;
pub mod runner;
pub mod settings;

pub use error::{Category, PulumiError, StackId};
pub use graph::{DestroyPolicy, Env, ImageSet, Layer, Stack};
pub use preview::PreviewDigest;
pub use runner::{DebugFlags, Pulumi};
pub use settings::{Needs, Settings, SettingsError};
