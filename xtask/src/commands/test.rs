//! `cargo xtask test`: every test of the repository in one command: the tool's Rust tests
//! (nextest when installed, else `cargo test`), then each Python package's pytest, the
//! Lambda tests, the integration tests and the Pulumi program tests.
//!
//! It first provisions what the tests use (uv, the test servers, the workflow linters,
//! docker-registry, and debootstrap where it can run) and hands their paths to the Rust
//! tests as `XTASK_TEST_PYTHON` and `XTASK_TEST_REGISTRY`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use xtask_engine::Cmd;

use crate::project::Project;
use crate::tools::{Group, SystemTool, is_root};
use xtask_repo::Suite;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only the Rust tests
    #[arg(long, conflicts_with = "python_only")]
    pub rust_only: bool,
    /// Only the Python tests
    #[arg(long)]
    pub python_only: bool,
}

/// Provisions what the tool's Rust tests use (the test servers, the workflow linters,
/// docker-registry, and debootstrap where it can run) and returns the environment that
/// hands them to the tests: `XTASK_TEST_PYTHON` and `XTASK_TEST_REGISTRY`.
pub fn rust_test_env(project: &Project) -> Result<[(&'static str, String); 2]> {
    let tools = project.tools();
    let servers = tools.group(Group::TestServers)?;
    tools.group(Group::WorkflowLint)?;
    let registry = tools.system(SystemTool::DockerRegistry)?;
    // The stand-in base test runs debootstrap, which needs root; without root it checks
    // the error instead, and nothing needs installing.
    if is_root() {
        tools.system(SystemTool::Debootstrap)?;
    }
    Ok([("XTASK_TEST_PYTHON", servers.join("bin/python").to_string()), ("XTASK_TEST_REGISTRY", registry.to_string())])
}

/// The pytest runs, from the repository model CI's test matrix comes from too: every
/// uv workspace member and the integration tests, then the Lambda handlers, the contract
/// and perf suites, and the Pulumi programs in their own uv project.
pub fn python_suites(project: &Project) -> Result<Vec<Suite>> {
    Ok(project.repository()?.suites.clone())
}

impl TestArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let mut failed: Vec<String> = Vec::new();
        let tools = project.tools();
        let uv = tools.uv()?;
        if !self.python_only {
            let env = rust_test_env(project)?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let nextest = Cmd::new(cargo.clone(), "check for cargo-nextest").args(["nextest", "--version"]).run().is_ok();
            let mut cmd = if nextest {
                Cmd::new(cargo, "run the Rust tests").args(["nextest", "run", "--workspace", "--no-fail-fast"])
            } else {
                Cmd::new(cargo, "run the Rust tests").args(["test", "--workspace", "--no-fail-fast"])
            };
            for (k, v) in &env {
                cmd = cmd.env(*k, v);
            }
            if let Err(e) = cmd.dir(&project.root).inherit_output().run() {
                eprintln!("{e}");
                failed.push("rust".into());
            }
        }
        if !self.rust_only {
            Cmd::new(uv.as_str(), "install the Python workspace")
                .args(["sync", "--all-packages", "--frozen", "--quiet"])
                .dir(&project.root)
                .inherit_output()
                .run()?;
            for suite in python_suites(project)? {
                eprintln!("== pytest {}", suite.name);
                let mut cmd = Cmd::new(uv.as_str(), format!("run the {} tests", suite.name)).args(["run", "--frozen"]);
                if let Some(uv_project) = &suite.uv_project {
                    cmd = cmd.args(["--project", uv_project.as_str()]);
                }
                let r = cmd.args(["pytest", "-q", suite.dir.as_str()]).dir(&project.root).inherit_output().run();
                if let Err(e) = r {
                    eprintln!("{e}");
                    failed.push(suite.name);
                }
            }
        }
        if failed.is_empty() {
            eprintln!("all test suites passed");
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("error: failing test suites: {}", failed.join(", "));
            Ok(ExitCode::FAILURE)
        }
    }
}
