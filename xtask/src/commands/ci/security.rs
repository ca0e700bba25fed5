//! `ci security`: pip-audit over the locked dependencies and bandit over the code.

use super::*;

impl Gate<'_> {
    pub(super) fn security(&mut self, skip_audit: bool) -> Result<()> {
        self.ensure_tools()?;
        if !skip_audit {
            self.pip_audit()?;
        }
        self.bandit()
    }

    pub(super) fn pip_audit(&mut self) -> Result<()> {
        let started = Instant::now();
        let requirements = self.out_dir.join("requirements.txt");
        let report = self.out_dir.join("pip-audit.json");
        let _ = fs::remove_file(&report);
        self.github.group("ci security: pip-audit over uv.lock");
        self.uv
            .cmd("export the locked dependencies for pip-audit")?
            .args([
                "export",
                "--frozen",
                "--all-packages",
                "--format",
                "requirements-txt",
                "--no-emit-workspace",
                "--quiet",
                "-o",
                requirements.as_str(),
            ])
            .dir(self.root())
            .run()
            .map_err(|e| anyhow::anyhow!("{e}; check that uv.lock is up to date (`uv lock`)"))?;
        let (out, code) = self.capture(self.tool("pip-audit", "audit the locked dependencies")?.args([
            "--disable-pip",
            "--requirement",
            requirements.as_str(),
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            report.as_str(),
        ]))?;
        eprint!("{out}");
        self.github.end_group();
        let lock = fs::read_to_string(self.root().join("uv.lock")).unwrap_or_default();
        let (mut diagnostics, audited, skipped) =
            match fs::read_to_string(&report).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
                Some(json) => audit_findings(&json, &lock),
                None => (vec![Diagnostic::new("pip-audit", format!("pip-audit wrote no report: {}", last_line(&out)))], 0, Vec::new()),
            };
        if !skipped.is_empty() {
            diagnostics.push(Diagnostic::new(
                "pip-audit",
                format!(
                    "{} of {} dependencies could not be audited (first: {}); run where PyPI's per-release JSON API (https://pypi.org/pypi/<name>/<version>/json) answers, or pass --skip-audit",
                    skipped.len(),
                    skipped.len() + audited,
                    skipped[0]
                ),
            ).at("uv.lock", None, None));
        }
        let ok = diagnostics.is_empty() && code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pip-audit", format!("pip-audit failed: {}", last_line(&out))));
        }
        let note = if ok { format!("{audited} dependencies audited") } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "security pip-audit".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    pub(super) fn bandit(&mut self) -> Result<()> {
        let targets: Vec<&str> = ["libs", "services", "lambdas"].into_iter().filter(|d| self.root().join(d).is_dir()).collect();
        let group = format!("ci security: bandit over {}", targets.join(", "));
        let cmd = self
            .tool("bandit", "scan the code with bandit")?
            .args(["--quiet", "--configfile", "pyproject.toml", "--recursive"])
            .args(targets.iter().copied())
            .args(["--format", "json"]);
        let note = |ok: bool, found: &[Diagnostic]| if ok { String::new() } else { format!("{} finding(s)", found.len()) };
        self.run_checker("security bandit", &group, "bandit", cmd, diagnostics::bandit, note)
    }
}

/// pip-audit's JSON: every vulnerability as a diagnostic on its `uv.lock` entry, the
/// number of audited dependencies, and the ones it skipped.
pub(super) fn audit_findings(json: &serde_json::Value, lock: &str) -> (Vec<Diagnostic>, usize, Vec<String>) {
    let mut diagnostics = Vec::new();
    let mut audited = 0;
    let mut skipped = Vec::new();
    for dep in json.get("dependencies").and_then(|d| d.as_array()).into_iter().flatten() {
        let name = dep.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        if let Some(reason) = dep.get("skip_reason").and_then(|r| r.as_str()) {
            skipped.push(format!("{name}: {reason}"));
            continue;
        }
        audited += 1;
        let version = dep.get("version").and_then(|v| v.as_str()).unwrap_or("?");
        for vuln in dep.get("vulns").and_then(|v| v.as_array()).into_iter().flatten() {
            let id = vuln.get("id").and_then(|i| i.as_str()).unwrap_or("?");
            let fixes: Vec<&str> =
                vuln.get("fix_versions").and_then(|f| f.as_array()).into_iter().flatten().filter_map(|f| f.as_str()).collect();
            let fix = if fixes.is_empty() {
                "no fixed release yet".to_owned()
            } else {
                format!("fixed in {}; run `uv lock --upgrade-package {name}`", fixes.join(", "))
            };
            let line = lock.lines().position(|l| l.trim() == format!("name = \"{name}\"")).map(|i| i as u32 + 1);
            diagnostics.push(
                Diagnostic::new(format!("pip-audit {id}"), format!("{name} {version} is vulnerable ({id}); {fix}"))
                    .at("uv.lock", line, None),
            );
        }
    }
    (diagnostics, audited, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_findings_point_at_uv_lock() {
        let json = serde_json::json!({"dependencies": [
            {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-1", "fix_versions": ["3.1.3"], "description": "x"}]},
            {"name": "ok", "version": "1.0", "vulns": []},
            {"name": "gone", "skip_reason": "Dependency not found on PyPI"}
        ]});
        let lock = "version = 1\n\n[[package]]\nname = \"jinja2\"\nversion = \"3.1.2\"\n";
        let (d, audited, skipped) = audit_findings(&json, lock);
        assert_eq!(audited, 2);
        assert_eq!(skipped.len(), 1);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].file.as_deref(), d[0].line), (Some("uv.lock"), Some(4)));
        assert!(d[0].message.contains("uv lock --upgrade-package jinja2"), "{}", d[0].message);
    }
}
