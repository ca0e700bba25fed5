//! Continuous integration for `cargo xtask`: which packages and images a change affects
//! (read from the repository's own files and Python imports), the diagnostics of the
//! Python tools parsed into file/line locations, and GitHub Actions output (groups,
//! annotations, step summaries, job outputs).
//!
//! The crate has no async runtime and no AWS dependency: it runs on every CI job,
//! including those that only lint.

pub mod changes;
pub mod diagnostics;
pub mod git;
pub mod github;
pub mod imports;
pub mod repo;
pub mod workflows;

pub use changes::{Affected, Matrix, MatrixEntry, TargetChange, TargetRole, analyze, everything};
pub use diagnostics::Diagnostic;
pub use github::Github;
pub use repo::Repo;

use camino::Utf8PathBuf;

/// Why the repository could not be read or compared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}; fix the file")]
    Toml { path: Utf8PathBuf, message: String },
    #[error("{path}: {message}; fix the pattern")]
    Pattern { path: Utf8PathBuf, message: String },
    #[error("{0}")]
    Git(String),
}
