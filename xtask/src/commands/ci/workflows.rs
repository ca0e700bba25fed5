//! `ci workflows`: the repository policy, every `cargo xtask` call a real command, then actionlint, zizmor and the workflow schema.

use super::*;

impl Gate<'_> {
    /// The workflow checkers' bin folder, provisioned from the locked `workflow-lint`
    /// group. A failure to install is an error: the checks never pass by not running.
    pub(super) fn workflow_tools(&self) -> Result<Utf8PathBuf> {
        let bin = self.project.tools().group(Group::WorkflowLint)?.join("bin");
        for b in WORKFLOW_BINARIES {
            if !bin.join(b).is_file() {
                bail!("{} is missing from the workflow-lint environment; delete {} and retry", bin.join(b), bin.parent().unwrap_or(&bin));
            }
        }
        Ok(bin)
    }

    /// `ci workflows`: the repository policy, every `cargo xtask` call a real command with
    /// real flags, then actionlint, zizmor (offline) and the workflow schema.
    pub(super) fn workflows(&mut self) -> Result<()> {
        let dir = self.root().join(WORKFLOWS_DIR);
        let files = xtask_ci::workflows::workflow_files(&dir);
        let paths: Vec<String> = files.iter().map(|f| format!("{WORKFLOWS_DIR}/{f}")).collect();

        let started = Instant::now();
        let report = xtask_ci::workflows::check(&dir, WORKFLOWS_DIR).context("failed to read the workflows")?;
        let mut diagnostics = report.diagnostics;
        diagnostics.extend(check_xtask_calls(&dir, &self.cli));
        let ok = diagnostics.is_empty();
        let note = format!("{} workflows, {} run steps, {} setup actions", report.files.len(), report.run_steps, report.uses_steps);
        self.record(JobResult { name: "workflows policy".into(), ok, seconds: started.elapsed().as_secs_f64(), note, diagnostics });
        if files.is_empty() {
            return Ok(());
        }

        let bin = self.workflow_tools()?;
        let files_note = format!("{} files", paths.len());
        let actionlint = Cmd::new(bin.join("actionlint").as_str(), "lint the workflows with actionlint")
            .args(["-no-color", "-format", diagnostics::ACTIONLINT_JSON])
            .args(paths.iter().cloned())
            .dir(self.root());
        self.run_checker("workflows actionlint", "ci workflows: actionlint", "actionlint", actionlint, diagnostics::actionlint, |_, _| {
            files_note.clone()
        })?;
        let zizmor = Cmd::new(bin.join("zizmor").as_str(), "audit the workflows with zizmor")
            .args(["--offline", "--quiet", "--format", "json", WORKFLOWS_DIR])
            .env("NO_COLOR", "1")
            .dir(self.root());
        self.run_checker("workflows zizmor", "ci workflows: zizmor --offline", "zizmor", zizmor, diagnostics::zizmor, |_, found| {
            format!("{} finding(s)", found.len())
        })?;

        let started = Instant::now();
        self.github.group("ci workflows: check-jsonschema --builtin-schema vendor.github-workflows");
        let (out, code) = self.capture(
            Cmd::new(bin.join("check-jsonschema").as_str(), "validate the workflows against GitHub's workflow schema")
                .args(["--builtin-schema", "vendor.github-workflows", "--output-format", "json"])
                .args(paths.iter().cloned())
                .dir(self.root()),
        )?;
        eprintln!("{out}");
        self.github.end_group();
        let mut diagnostics = diagnostics::check_jsonschema(&out);
        let ok = code == Some(0);
        if !ok && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("check-jsonschema", format!("check-jsonschema failed: {}", last_line(&out))));
        }
        self.record(JobResult {
            name: "workflows schema".into(),
            ok,
            seconds: started.elapsed().as_secs_f64(),
            note: format!("{} files", paths.len()),
            diagnostics,
        });
        Ok(())
    }
}

/// Every `cargo xtask ...` line of the workflows names a real command and only flags
/// that command has (seed aliases expanded), so a renamed command or flag fails here
/// rather than in a deployment. A command after `--` (`ci shards -- lambda-bootstrap
/// --registry ecr`) is checked as a command of its own.
pub(super) fn check_xtask_calls(dir: &Utf8Path, cli: &clap::Command) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for file in xtask_ci::workflows::workflow_files(dir) {
        let Ok(text) = fs::read_to_string(dir.join(&file)) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            let Some(at) = line.find("cargo xtask") else {
                continue;
            };
            if line.trim_start().starts_with('#') {
                continue;
            }
            let rel = format!("{WORKFLOWS_DIR}/{file}");
            let words: Vec<String> =
                line[at + "cargo xtask".len()..].split_whitespace().map(|w| w.trim_matches('"').trim_matches('\'').to_owned()).collect();
            for problem in check_call(words, cli) {
                out.push(Diagnostic::new("workflow policy", problem).at(rel.clone(), Some(index as u32 + 1), None));
            }
        }
    }
    out
}

/// The problems of one `cargo xtask <words>` call: an unknown command, or flags its
/// command lacks; what follows `--` is checked as a call of its own.
fn check_call(words: Vec<String>, cli: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    let split = words.iter().position(|w| w == "--");
    let (head, nested) = match split {
        Some(i) => (words[..i].to_vec(), Some(words[i + 1..].to_vec())),
        None => (words, None),
    };
    let mut expanded: Vec<String> = vec!["xtask".into()];
    expanded.extend(head);
    let words = crate::aliases::expand_aliases(expanded);
    let mut command = cli;
    let mut path = Vec::new();
    for word in words.iter().skip(1).take_while(|w| !w.starts_with('-')) {
        match command.find_subcommand(word) {
            Some(sub) => {
                command = sub;
                path.push(word.as_str());
            }
            None if path.is_empty() => {
                out.push(format!("`cargo xtask {word}` is not a command; see `cargo xtask --help`"));
                break;
            }
            None => break,
        }
    }
    if path.is_empty() {
        return out;
    }
    let known: BTreeSet<String> = command
        .get_arguments()
        .chain(cli.get_arguments())
        .filter_map(|a| a.get_long().map(str::to_owned))
        .chain(["help".to_owned()])
        .collect();
    for flag in words.iter().filter_map(|w| w.strip_prefix("--")) {
        let flag = flag.split('=').next().unwrap_or(flag);
        if !known.contains(flag) {
            out.push(format!("`cargo xtask {}` has no --{flag}; see `cargo xtask {} --help`", path.join(" "), path.join(" ")));
        }
    }
    if let Some(nested) = nested.filter(|n| !n.is_empty()) {
        out.extend(check_call(nested, cli));
    }
    out
}
