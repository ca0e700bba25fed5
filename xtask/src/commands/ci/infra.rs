//! `ci infra`: ruff and the Pulumi program tests over `infra/`.

use super::*;

impl Gate<'_> {
    /// `ci infra`: the Pulumi programs, with infra/'s own ruff settings and uv project.
    pub(super) fn infra(&mut self) -> Result<()> {
        self.ensure_tools()?;
        let infra = self.root().join("infra");
        if !infra.join("pyproject.toml").is_file() {
            bail!("no infra/pyproject.toml under {}; the Pulumi programs live in infra/", self.root());
        }
        let started = Instant::now();
        self.github.group("ci infra: ruff check, ruff format --check (infra/pyproject.toml settings)");
        // Run in infra/ so that ruff reads infra's configuration; ruff itself comes from the
        // root workspace's dev group.
        let ruff = |purpose: &str| {
            Ok::<Cmd, anyhow::Error>(
                self.uv.cmd(purpose.to_owned())?.args(["run", "--frozen", "--project", self.root().as_str(), "ruff"]).dir(infra.clone()),
            )
        };
        let (check, check_code) =
            self.capture(ruff("check the Pulumi programs with ruff")?.args(["check", "--output-format=json", "."]))?;
        let infra_root = self.root().join("infra");
        let found: Vec<Diagnostic> =
            diagnostics::ruff_check(&check, infra_root.as_str()).into_iter().map(|d| under_dir(d, "infra")).collect();
        show(&found);
        let (format, format_code) =
            self.capture(ruff("check the Pulumi programs' formatting")?.args(["format", "--check", "--output-format=json", "."]))?;
        let unformatted: Vec<Diagnostic> =
            diagnostics::ruff_format(&format, infra_root.as_str()).into_iter().map(|d| under_dir(d, "infra")).collect();
        show(&unformatted);
        self.github.end_group();
        let mut diagnostics: Vec<Diagnostic> = found.into_iter().chain(unformatted).collect();
        let ok = check_code == Some(0) && format_code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("ruff", format!("ruff failed on infra/: {}", last_line(&format!("{check}{format}")))));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "infra lint".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });

        let started = Instant::now();
        let junit = self.out_dir.join("junit-infra.xml");
        let _ = fs::remove_file(&junit);
        self.github.group("ci infra: pytest (the 4 stacks under Pulumi's mocks)");
        let result = self
            .uv
            .cmd("run the Pulumi program tests")?
            .args(["run", "--frozen", "--project", "infra", "pytest", "infra", "-rfE", "-o", "junit_family=xunit1"])
            .arg(format!("--junitxml={junit}"))
            .dir(self.root())
            .inherit_output()
            .run();
        self.github.end_group();
        let (code, diagnostics) = self.pytest_outcome(result, &junit)?;
        let mut diagnostics: Vec<Diagnostic> = diagnostics.into_iter().map(|d| under_dir(d, "infra")).collect();
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("pytest", "pytest failed on infra/").at("infra", None, None));
        }
        let note = if ok { String::new() } else { format!("{} problem(s)", diagnostics.len()) };
        self.record(JobResult { name: "infra tests".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        Ok(())
    }
}
