//! `ci rust`: the tool's own tests, with cargo-nextest, for the whole Cargo workspace or
//! the crates `ci changes` found affected (its `rust_crates` output).
//!
//! It provisions what the tests use first, as `cargo xtask test` does (the test servers,
//! the workflow linters, docker-registry, and debootstrap where it can run), so a fresh
//! runner needs nothing but Rust, Docker and Python. cargo-nextest is the one on PATH, or
//! the tool's own pinned copy ([`crate::tools::CARGO_NEXTEST_VERSION`]) built on first use.

use super::*;

#[derive(Debug, Args)]
pub struct RustArgs {
    /// Only these crates: a JSON list (`ci changes`' `rust_crates` output) or names
    /// separated by commas (default: the whole workspace)
    #[arg(long, value_name = "CRATES")]
    pub crates: Option<String>,
}

/// The crate names of `--crates`: a JSON list of strings, or names separated by commas
/// or spaces.
fn parse_crates(text: &str) -> Result<Vec<String>> {
    let text = text.trim();
    let names: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).context("--crates is not a JSON list of crate names; pass `[\"xtask\"]` or `xtask,xtask-ci`")?
    } else {
        text.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    };
    Ok(names)
}

impl Gate<'_> {
    /// `ci rust`: provisions the tests' tools, then `cargo nextest run --no-fail-fast`
    /// over the workspace or the given crates.
    pub(super) fn rust(&mut self, args: &RustArgs) -> Result<()> {
        let workspace = super::changes::rust_workspace(self.root())?;
        if workspace.crates.is_empty() {
            bail!("{} has no Cargo workspace (no Cargo.toml at its root); `ci rust` runs the tool's own tests", self.root());
        }
        let crates = match &args.crates {
            Some(text) => {
                let names = parse_crates(text)?;
                let valid: Vec<&str> = workspace.crates.iter().map(|c| c.name.as_str()).collect();
                let unknown: Vec<&str> = names.iter().map(String::as_str).filter(|n| !valid.contains(n)).collect();
                if !unknown.is_empty() {
                    bail!("unknown crate(s) {} in --crates; valid: {}", unknown.join(", "), valid.join(", "));
                }
                if names.is_empty() {
                    bail!("--crates names no crate; leave it out to test the whole workspace");
                }
                Some(names)
            }
            None => None,
        };

        let tools = self.project.tools();
        let env = crate::commands::test::rust_test_env(self.project)?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let on_path = Cmd::new(cargo.clone(), "check for cargo-nextest").args(["nextest", "--version"]).run().is_ok();
        // A `cargo-nextest` run directly takes `nextest` as its first argument, as Cargo
        // passes it.
        let nextest = if on_path {
            Cmd::new(cargo.clone(), "run the tool's tests with cargo-nextest").arg("nextest")
        } else {
            Cmd::new(tools.cargo_nextest()?.as_str(), "run the tool's tests with cargo-nextest").arg("nextest").env("CARGO", &cargo)
        };
        let mut cmd = nextest.args(["run", "--no-fail-fast"]);
        let scope = match &crates {
            Some(names) => {
                for n in names {
                    cmd = cmd.args(["--package", n.as_str()]);
                }
                names.join(", ")
            }
            None => {
                cmd = cmd.arg("--workspace");
                format!("the workspace ({} crates)", workspace.crates.len())
            }
        };
        for (k, v) in &env {
            cmd = cmd.env(*k, v);
        }
        let cmd = cmd.dir(self.root()).inherit_output();

        let started = Instant::now();
        self.github.group(&format!("ci rust: cargo nextest run, {scope}"));
        let result = cmd.run();
        self.github.end_group();
        let (ok, diagnostics) = match result {
            Ok(_) => (true, Vec::new()),
            Err(ProcessError::Failed { status, .. }) => (
                false,
                vec![Diagnostic::new(
                    "nextest",
                    format!("cargo nextest failed ({status}); the failing tests are listed at the end of its output above"),
                )],
            ),
            Err(e) => return Err(e.into()),
        };
        self.record(JobResult { name: "rust".into(), ok, seconds: started.elapsed().as_secs_f64(), note: scope, diagnostics });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_come_as_json_or_as_a_list() {
        assert_eq!(parse_crates(r#"["xtask","xtask-ci"]"#).unwrap(), ["xtask", "xtask-ci"]);
        assert_eq!(parse_crates("xtask, xtask-ci").unwrap(), ["xtask", "xtask-ci"]);
        assert!(parse_crates("[1, 2]").unwrap_err().to_string().contains("JSON list of crate names"));
    }
}
