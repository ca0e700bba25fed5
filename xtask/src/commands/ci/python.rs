//! The Python jobs: `ci lint`, `ci typecheck`, `ci test` and the perf and contract suites.

use super::*;

impl Gate<'_> {
    pub(super) fn lint(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let started = Instant::now();
        self.github.group("ci lint: ruff check, ruff format --check");
        let (check, check_code) =
            self.capture(self.tool("ruff", "check the Python code with ruff")?.args(["check", "--output-format=json", "."]))?;
        let found = diagnostics::ruff_check(&check, self.root().as_str());
        show(&found);
        let (format, format_code) = self.capture(self.tool("ruff", "check the Python formatting with ruff")?.args([
            "format",
            "--check",
            "--output-format=json",
            ".",
        ]))?;
        let unformatted = diagnostics::ruff_format(&format, self.root().as_str());
        show(&unformatted);
        self.github.end_group();
        let mut diagnostics = found;
        diagnostics.extend(unformatted);
        let ok = check_code == Some(0) && format_code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new(
                "ruff",
                format!("ruff failed without a located problem: {}", last_line(&format!("{check}{format}"))),
            ));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "lint".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    pub(super) fn typecheck(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let repo = discover(self.project)?;
        let packages: Vec<_> =
            repo.members.iter().filter(|p| p.project.is_some() && self.root().join(&p.dir).join("src").is_dir()).cloned().collect();
        if packages.is_empty() {
            bail!("no workspace package with a src/ folder under {}; check [tool.uv.workspace] members in pyproject.toml", self.root());
        }
        for p in packages {
            let started = Instant::now();
            let src = format!("{}/src", p.dir);
            self.github.group(&format!("ci typecheck {}: mypy {src}", p.name));
            let (out, code) = self.capture(self.tool("mypy", &format!("type-check {}", p.name))?.args(["-O", "json", src.as_str()]))?;
            let mut diagnostics = diagnostics::mypy(&out);
            show(&diagnostics);
            self.github.end_group();
            let ok = code == Some(0);
            if !ok && diagnostics.is_empty() {
                diagnostics.push(Diagnostic::new("mypy", format!("mypy failed on {src}: {}", last_line(&out))));
            }
            let note = if ok { String::new() } else { format!("{} error(s)", diagnostics.len()) };
            self.record(JobResult {
                name: format!("typecheck {}", p.name),
                ok,
                seconds: started.elapsed().as_secs_f64(),
                note,
                diagnostics,
            });
        }
        Ok(())
    }

    /// `ci test <package>`: pytest with coverage, threshold checked from the JSON report.
    pub(super) fn test(&mut self, name: &str) -> Result<()> {
        self.ensure_tools()?;
        let repo = discover(self.project)?;
        let (dir, cov): (String, Vec<String>) = if name == "lambdas" {
            (LAMBDAS_DIR.to_owned(), vec![LAMBDAS_DIR.to_owned()])
        } else {
            let Some(p) = repo.matrix().find(|s| s.name == name) else {
                let mut valid: Vec<&str> = repo.matrix().map(|p| p.name.as_str()).collect();
                valid.push("lambdas");
                bail!("unknown test suite `{name}`; valid: {}", valid.join(", "));
            };
            let own: BTreeSet<String> = repo.member(name).map(|m| m.modules.iter().cloned().collect()).unwrap_or_default();
            let modules: BTreeSet<String> = if own.is_empty() {
                // The integration tests measure the workspace packages they drive.
                repo.members.iter().flat_map(|q| q.modules.iter().cloned()).collect()
            } else {
                own
            };
            (p.dir.clone(), modules.into_iter().collect())
        };
        if !self.root().join(&dir).is_dir() {
            bail!("{dir} does not exist under {}; nothing to test for `{name}`", self.root());
        }
        let threshold = coverage_threshold(name);
        let started = Instant::now();
        let junit = self.out_dir.join(format!("junit-{name}.xml"));
        let cov_json = self.out_dir.join(format!("coverage-{name}.json"));
        let _ = fs::remove_file(&junit);
        let _ = fs::remove_file(&cov_json);
        let mut cmd = self
            .tool("pytest", &format!("run the {name} tests"))?
            .args([dir.as_str(), "-rfE", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .args(cov.iter().map(|c| format!("--cov={c}")))
            .args(["--cov-report=term-missing:skip-covered".to_owned(), format!("--cov-report=json:{cov_json}")])
            .env("COVERAGE_FILE", self.out_dir.join(format!(".coverage-{name}")).as_str());
        if self.github.actions {
            cmd = cmd.arg("--color=yes");
        }
        self.github.group(&format!("ci test {name}: pytest {dir} (coverage >= {threshold}%)"));
        let result = cmd.inherit_output().run();
        self.github.end_group();
        let (code, mut diagnostics) = self.pytest_outcome(result, &junit)?;
        let mut ok = code == Some(0);
        let mut note = String::new();
        if code == Some(5) {
            diagnostics.push(Diagnostic::new("pytest", format!("no tests were collected in {dir}")).at(dir.clone(), None, None));
        }
        match fs::read_to_string(&cov_json).ok().and_then(|t| diagnostics::coverage_percent(&t)) {
            Some(percent) => {
                note = format!("coverage {percent:.1}% (threshold {threshold}%)");
                if percent + 1e-9 < f64::from(threshold) {
                    ok = false;
                    diagnostics.push(Diagnostic::new("coverage", format!("coverage of {name} is {percent:.1}%, below the {threshold}% threshold; add tests for the lines listed as missing")).at(dir.clone(), None, None));
                }
            }
            None if ok => {
                ok = false;
                diagnostics.push(Diagnostic::new("coverage", format!("no coverage report at {cov_json}; is pytest-cov in the dev group?")));
            }
            None => {}
        }
        if !ok && diagnostics.is_empty() {
            diagnostics.push(
                Diagnostic::new("pytest", format!("pytest failed on {dir} (exit code {})", code.map_or("?".into(), |c| c.to_string()))).at(
                    dir.clone(),
                    None,
                    None,
                ),
            );
        }
        if !ok && note.is_empty() {
            note = format!("{} problem(s)", diagnostics.len());
        }
        self.github.set_output("coverage", &note)?;
        self.record(JobResult { name: format!("test {name}"), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }

    /// The exit code of a pytest run and the failures its JUnit report lists.
    pub(super) fn pytest_outcome(
        &self,
        result: Result<xtask_engine::process::Finished, ProcessError>,
        junit: &Utf8Path,
    ) -> Result<(Option<i32>, Vec<Diagnostic>)> {
        let code = match result {
            Ok(_) => Some(0),
            Err(ProcessError::Failed { status, .. }) => status.strip_prefix("status ").and_then(|c| c.parse().ok()).or(Some(-1)),
            Err(e) => return Err(e.into()),
        };
        let diagnostics = fs::read_to_string(junit).map(|xml| diagnostics::pytest_junit(&xml)).unwrap_or_default();
        Ok((code, diagnostics))
    }

    /// `ci perf` and `ci contract`: a pytest folder without coverage; an empty or missing
    /// folder fails, so the job can never pass by testing nothing.
    pub(super) fn suite(&mut self, name: &str, dir: &str) -> Result<()> {
        self.ensure_tools()?;
        let started = Instant::now();
        if !self.root().join(dir).is_dir() {
            self.record(JobResult {
                name: name.into(),
                ok: false,
                seconds: 0.0,
                note: format!("{dir} is missing"),
                diagnostics: vec![Diagnostic::new(name.to_owned(), format!("{dir} does not exist; add the {name} tests there"))],
            });
            return Ok(());
        }
        let junit = self.out_dir.join(format!("junit-{name}.xml"));
        let _ = fs::remove_file(&junit);
        self.github.group(&format!("ci {name}: pytest {dir}"));
        let result = self
            .tool("pytest", &format!("run the {name} tests"))?
            .args([dir, "-rfE", "-p", "no:cacheprovider", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .inherit_output()
            .run();
        self.github.end_group();
        let (code, mut diagnostics) = self.pytest_outcome(result, &junit)?;
        if code == Some(5) {
            diagnostics.push(Diagnostic::new("pytest", format!("no tests were collected in {dir}")).at(dir, None, None));
        }
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pytest", format!("pytest failed on {dir}")).at(dir, None, None));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: name.into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }
}
