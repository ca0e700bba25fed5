//! The repository model of `cargo xtask`: one typed description of the TradAI repository,
//! read from its files once per run, with no Docker, network or AWS call. The build
//! target graph, `ci changes` and the CI jobs, `cargo xtask test`, the operations and
//! the infrastructure commands all read this one [`Repository`]; none lists a path or
//! formats a name of its own.
//!
//! What it holds, and where each fact comes from:
//! - the uv workspace members (the root `pyproject.toml`), each with its `[project]`
//!   dependencies and the import names it provides; what their files import is computed
//!   on first use ([`Repository::imports`]), since no build needs it;
//! - the Lambda functions, the Lambda base and the services, with their build contexts
//!   and image names (their Dockerfiles: [`images`]);
//! - the Python test suites and their coverage thresholds ([`suites`]);
//! - the deployment facts and every naming rule ([`deployment`], from
//!   `infra/shared/tradai_infra_shared/deployment.toml`).
//!
//! A folder that cannot be what it looks like is an error at load, naming every offender
//! and the fix; a folder that is nothing the tool knows is a warning
//! ([`Repository::warnings`]); nothing is skipped in silence.

pub mod deployment;
pub mod graph;
pub mod images;
pub mod imports;
pub mod python;
pub mod suites;

use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

pub use deployment::{Deployment, Names, names};
pub use graph::{Imports, SharedLib};
pub use images::{BuildContext, LAMBDAS_DIR, Lambda, Service, ServiceSource};
pub use python::{is_test_file, normalize};
pub use suites::{Suite, SuiteKind, coverage_threshold};

/// The project name of the shared library: the one package whose wheel every Lambda image
/// carries, and whose modules change detection follows one by one.
pub const SHARED_LIB: &str = "tradai-common";

/// Why the repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}; fix the file")]
    Toml { path: Utf8PathBuf, message: String },
    /// Folders or facts that cannot be what they look like, each with its fix.
    #[error("{0}")]
    Layout(String),
}

/// A uv workspace member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its test-matrix name: the folder name without the `<project>-` prefix (`common`).
    pub name: String,
    /// Its folder, relative to the root.
    pub dir: String,
    /// `[project] name`.
    pub project: Option<String>,
    /// `[project] dependencies`, by PEP 503-normalised name (workspace members or not).
    pub dependencies: Vec<String>,
    /// The import names it provides (`src/<name>/`).
    pub modules: Vec<String>,
}

/// The repository the tool works on.
#[derive(Debug, Clone)]
pub struct Repository {
    pub root: Utf8PathBuf,
    /// The deployment facts and naming rules.
    pub deployment: &'static Deployment,
    /// The uv workspace members, in the order the root `pyproject.toml` lists them.
    pub members: Vec<Member>,
    /// The image every Lambda is built on.
    pub lambda_base: BuildContext,
    /// The Lambda functions, by name.
    pub lambdas: Vec<Lambda>,
    /// The services, by name.
    pub services: Vec<Service>,
    /// The Python test suites, in the order `cargo xtask test` runs them.
    pub suites: Vec<Suite>,
    /// Folders found that are nothing the tool builds, one sentence each.
    pub warnings: Vec<String>,
    /// Computed on first use.
    imports: OnceLock<Imports>,
}

impl Repository {
    /// Reads the repository at `root` with the deployment facts built into the tool.
    pub fn load(root: &Utf8Path) -> Result<Repository, Error> {
        Repository::load_with(root, Deployment::load_builtin()?)
    }

    /// Reads the repository at `root` with the given deployment facts.
    pub fn load_with(root: &Utf8Path, deployment: &'static Deployment) -> Result<Repository, Error> {
        let names = deployment.names();
        let mut members = Vec::new();
        for dir in python::workspace_members(root)? {
            let (project, dependencies) = python::read_project(&root.join(&dir))?;
            members.push(Member {
                name: names.matrix_name(&dir),
                modules: python::src_modules(&root.join(&dir)),
                dir,
                project,
                dependencies,
            });
        }
        let member_deps: Vec<images::MemberDeps<'_>> = members
            .iter()
            .map(|m| images::MemberDeps { dir: &m.dir, project: m.project.as_deref(), dependencies: &m.dependencies })
            .collect();
        let found = images::discover(root, deployment, &member_deps)?;
        let matrix: Vec<(String, String)> = members.iter().map(|m| (m.name.clone(), m.dir.clone())).collect();
        Ok(Repository {
            root: root.to_owned(),
            deployment,
            suites: suites::discover(root, &matrix),
            members,
            lambda_base: found.lambda_base,
            lambdas: found.lambdas,
            services: found.services,
            warnings: found.warnings,
            imports: OnceLock::new(),
        })
    }

    /// The naming rules.
    pub fn names(&self) -> &'static Names {
        self.deployment.names()
    }

    /// `rel` under the root.
    pub fn path(&self, rel: impl AsRef<Utf8Path>) -> Utf8PathBuf {
        self.root.join(rel)
    }

    pub fn lambda(&self, name: &str) -> Option<&Lambda> {
        self.lambdas.iter().find(|l| l.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn lambda_names(&self) -> Vec<String> {
        self.lambdas.iter().map(|l| l.name.clone()).collect()
    }

    pub fn service_names(&self) -> Vec<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }

    /// The member whose matrix name is `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The shared library's folder: the workspace member named [`SHARED_LIB`], else
    /// `libs/<SHARED_LIB>` (where a repository without a uv workspace keeps it).
    pub fn shared_lib_dir(&self) -> Utf8PathBuf {
        match self.members.iter().find(|m| m.project.as_deref() == Some(SHARED_LIB)) {
            Some(m) => Utf8PathBuf::from(&m.dir),
            None => Utf8PathBuf::from("libs").join(SHARED_LIB),
        }
    }

    /// The suite named `name`.
    pub fn suite(&self, name: &str) -> Option<&Suite> {
        self.suites.iter().find(|s| s.name == name)
    }

    /// CI's test matrix: the members, then the integration tests.
    pub fn matrix(&self) -> impl Iterator<Item = &Suite> {
        self.suites.iter().filter(|s| s.in_matrix())
    }

    /// What the matrix entries and the Lambdas import, read from every Python file the
    /// first time it is asked for.
    pub fn imports(&self) -> Result<&Imports, Error> {
        if let Some(found) = self.imports.get() {
            return Ok(found);
        }
        let entries: Vec<graph::Entry<'_>> = self
            .matrix()
            .map(|s| {
                let member = self.members.iter().find(|m| m.name == s.name && s.kind == SuiteKind::Member);
                graph::Entry {
                    name: &s.name,
                    dir: &s.dir,
                    project: member.and_then(|m| m.project.as_deref()),
                    modules: member.map_or(&[][..], |m| &m.modules),
                    declared: member.map_or(&[][..], |m| &m.dependencies),
                }
            })
            .collect();
        let found = graph::analyze(&self.root, &entries, SHARED_LIB, LAMBDAS_DIR)?;
        Ok(self.imports.get_or_init(|| found))
    }
}

#[cfg(test)]
mod tests;
