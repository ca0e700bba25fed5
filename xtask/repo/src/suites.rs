//! The Python test suites, in the order `cargo xtask test` runs them: every uv workspace
//! member, the integration tests, the Lambda handlers' tests, the contract and
//! performance suites, and the Pulumi programs' tests. The first two kinds make up CI's
//! test matrix, each with its coverage threshold.

use camino::Utf8Path;
use serde::Serialize;

use crate::images::LAMBDAS_DIR;

/// The integration tests: a matrix entry of their own, with no pyproject.
pub const INTEGRATION_DIR: &str = "tests/integration";
/// The contracts between services, Lambda functions and the shared models.
pub const CONTRACT_DIR: &str = "tests/contract";
/// The performance budgets.
pub const PERF_DIR: &str = "tests/perf";
/// The Pulumi programs: a uv project of their own.
pub const INFRA_DIR: &str = "infra";

/// Coverage thresholds of the test matrix (the seeds' values); every other entry needs 60%.
const COVERAGE: &[(&str, u8)] = &[("cli", 45), ("integration", 0), ("lambdas", 60)];
const DEFAULT_COVERAGE: u8 = 60;

/// The coverage a test suite must reach.
pub fn coverage_threshold(name: &str) -> u8 {
    COVERAGE.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or(DEFAULT_COVERAGE)
}

/// What a suite tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteKind {
    /// A uv workspace member's tests (a matrix entry).
    Member,
    /// `tests/integration` (a matrix entry).
    Integration,
    /// The Lambda handlers' tests under `lambdas/`.
    Lambdas,
    Contract,
    Perf,
    /// The Pulumi programs, run in their own uv project.
    Infra,
}

impl SuiteKind {
    /// The folder of the suites that have a fixed one.
    pub fn fixed_dir(self) -> Option<&'static str> {
        match self {
            SuiteKind::Member => None,
            SuiteKind::Integration => Some(INTEGRATION_DIR),
            SuiteKind::Lambdas => Some(LAMBDAS_DIR),
            SuiteKind::Contract => Some(CONTRACT_DIR),
            SuiteKind::Perf => Some(PERF_DIR),
            SuiteKind::Infra => Some(INFRA_DIR),
        }
    }
}

/// One pytest run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// Its name in CI and in `cargo xtask test` (`common`, `integration`, `lambdas`).
    pub name: String,
    /// Its folder, relative to the root.
    pub dir: String,
    pub kind: SuiteKind,
    /// The coverage it must reach, for the suites CI measures (`ci test <name>`).
    pub coverage: Option<u8>,
    /// The uv project it runs in, when not the root workspace (`infra`).
    pub uv_project: Option<String>,
}

impl Suite {
    /// Whether it is an entry of CI's test matrix.
    pub fn in_matrix(&self) -> bool {
        matches!(self.kind, SuiteKind::Member | SuiteKind::Integration)
    }
}

/// The suites of a repository whose workspace members are `members` (matrix name,
/// folder), each only when its folder exists.
pub(crate) fn discover(root: &Utf8Path, members: &[(String, String)]) -> Vec<Suite> {
    let mut out: Vec<Suite> = members
        .iter()
        .map(|(name, dir)| Suite {
            name: name.clone(),
            dir: dir.clone(),
            kind: SuiteKind::Member,
            coverage: Some(coverage_threshold(name)),
            uv_project: None,
        })
        .collect();
    for (name, kind) in [
        ("integration", SuiteKind::Integration),
        ("lambdas", SuiteKind::Lambdas),
        ("contract", SuiteKind::Contract),
        ("perf", SuiteKind::Perf),
    ] {
        let Some(dir) = kind.fixed_dir() else { continue };
        if root.join(dir).is_dir() {
            let coverage = matches!(kind, SuiteKind::Integration | SuiteKind::Lambdas).then(|| coverage_threshold(name));
            out.push(Suite { name: name.to_owned(), dir: dir.to_owned(), kind, coverage, uv_project: None });
        }
    }
    if root.join(INFRA_DIR).join("pyproject.toml").is_file() {
        out.push(Suite {
            name: "infra".to_owned(),
            dir: INFRA_DIR.to_owned(),
            kind: SuiteKind::Infra,
            coverage: None,
            uv_project: Some(INFRA_DIR.to_owned()),
        });
    }
    out
}
