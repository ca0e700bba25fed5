//! Continuous integration for `cargo xtask`: which packages and images a change affects
//! (from the repository model, `xtask-repo`, and its Python imports), the diagnostics of
//! the Python tools parsed into file/line locations, and GitHub Actions output (groups,
//! annotations, step summaries, job outputs).
//!
//! The crate has no async runtime and no AWS dependency: it runs on every CI job,
//! including those that only lint.

pub mod changes;
pub mod diagnostics;
pub mod git;
pub mod github;
pub mod workflows;

pub use changes::{Affected, Matrix, MatrixEntry, TargetChange, TargetRole, analyze, everything};
pub use diagnostics::Diagnostic;
pub use github::Github;

use camino::Utf8PathBuf;

/// Why the repository could not be read or compared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("{0}")]
    Git(String),
}
