//! The wrapper around the `pulumi` CLI. Every run is non-interactive, names its stack
//! and working directory explicitly, gets its environment from [`Settings`] (never a
//! secret in argv: the passphrase travels only in the child's `PULUMI_CONFIG_PASSPHRASE`),
//! and runs through [`crate::child`]: in a process group of its own, with SIGINT and
//! SIGTERM forwarded to it and its output read until it exits, so that an interrupted
//! update cancels cleanly and releases its lock. (The engine's `Cmd` runs every other
//! program; it cannot forward a signal, which only Pulumi needs.) Failures become
//! [`PulumiError`]s, read from stdout (where Pulumi reports deployment errors) as well as
//! stderr, with secrets redacted from anything Pulumi printed.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use camino::{Utf8Path, Utf8PathBuf};

use crate::child::{self, Mode};
use crate::error::{FailureText, PulumiError, StackId};
use crate::lock::{self, LockInfo};
use crate::preview::PreviewDigest;
use crate::settings::Settings;

/// Pulumi's own debugging output, passed through from `--diff` and `--pulumi-verbose N`
/// (the guide's debug procedure: `pulumi preview --diff`, `pulumi up --logtostderr -v=9`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugFlags {
    /// `--diff` on preview, up and destroy: Pulumi's rich diff of every change.
    pub diff: bool,
    /// `-v=N --logtostderr` on every call: Pulumi's logs, shown on stderr as they come.
    pub verbose: Option<u8>,
}

/// Drives `pulumi` for one repository.
#[derive(Debug, Clone)]
pub struct Pulumi {
    program: String,
    root: Utf8PathBuf,
    state_dir: Utf8PathBuf,
    settings: Settings,
    debug: DebugFlags,
}

/// What a captured run printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// One `pulumi` command line, its purpose and the environment it adds.
#[derive(Debug, Clone)]
pub struct Call {
    purpose: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Call {
    /// The command line as logged: program and arguments, never environment values.
    pub fn display(&self) -> String {
        let mut s = "pulumi".to_owned();
        for a in &self.args {
            s.push(' ');
            if a.contains(' ') || a.is_empty() { s.push_str(&format!("{a:?}")) } else { s.push_str(a) }
        }
        s
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    fn env(mut self, extra: &[(String, String)]) -> Call {
        self.env.extend(extra.iter().cloned());
        self
    }
}

impl Pulumi {
    /// `state_dir` is the tool's state folder (`<target>/xtask`), where backups go.
    pub fn new(root: &Utf8Path, state_dir: &Utf8Path, settings: Settings) -> Pulumi {
        Pulumi {
            program: "pulumi".to_owned(),
            root: root.to_owned(),
            state_dir: state_dir.to_owned(),
            settings,
            debug: DebugFlags::default(),
        }
    }

    /// Passes Pulumi's debugging flags on every call from now on.
    pub fn with_debug(mut self, debug: DebugFlags) -> Pulumi {
        self.debug = debug;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `infra/<stack>`, the program's folder.
    pub fn stack_dir(&self, id: StackId) -> Utf8PathBuf {
        self.root.join("infra").join(id.stack.name())
    }

    /// Where state backups go: `<target>/xtask/pulumi-backups`.
    pub fn backup_dir(&self) -> Utf8PathBuf {
        self.state_dir.join("pulumi-backups")
    }

    /// Fails unless `pulumi` is an executable on PATH, before any work starts.
    pub fn ensure_installed(&self) -> Result<(), PulumiError> {
        let found = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| {
                let p = dir.join(&self.program);
                p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        });
        if found { Ok(()) } else { Err(PulumiError::NotInstalled) }
    }

    /// `pulumi <args> --stack <env> --cwd infra/<stack> --non-interactive` (and the debug
    /// flags asked for); the environment comes from the settings when it runs.
    pub fn command(&self, id: StackId, purpose: &str, args: &[&str]) -> Call {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--stack".to_owned(),
            id.env.name().to_owned(),
            "--cwd".to_owned(),
            self.stack_dir(id).to_string(),
            "--non-interactive".to_owned(),
        ]);
        if let Some(v) = self.debug.verbose {
            all.push("--logtostderr".to_owned());
            all.push(format!("-v={v}"));
        }
        Call { purpose: format!("{purpose} ({id})"), args: all, env: Vec::new() }
    }

    /// `args` plus `--diff` when asked for (preview, up, destroy).
    fn with_diff<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut out = args.to_vec();
        if self.debug.diff {
            out.push("--diff");
        }
        out
    }

    /// Runs one call to the end; a failure is classified from both streams.
    fn run(&self, id: StackId, purpose: &str, call: Call, mode: Mode) -> Result<Output, PulumiError> {
        if let Some(signal) = child::received() {
            return Err(PulumiError::Interrupted {
                purpose: purpose.to_owned(),
                id,
                signal: child::signal_name(signal),
                outcome: "was not started".to_owned(),
            });
        }
        if let Some(problem) = crate::graph::project_file_problem(self.root.join("infra").as_std_path(), id.stack) {
            return Err(PulumiError::Project { id, problem });
        }
        tracing::debug!(purpose = %call.purpose, command = %call.display(), "running");
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&call.args)
            // No network check for a newer CLI on every run.
            .env("PULUMI_SKIP_UPDATE_CHECK", "true");
        for (k, v) in self.settings.child_env().into_iter().chain(call.env.iter().cloned()) {
            cmd.env(k, v);
        }
        let settings = &self.settings;
        let finished = child::run(cmd, mode, &|line: &str| settings.redact(line)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PulumiError::NotInstalled
            } else {
                PulumiError::Spawn { purpose: purpose.to_owned(), detail: e.to_string() }
            }
        })?;
        tracing::debug!(purpose = %call.purpose, status = %finished.status, "finished");
        let out = Output { stdout: self.settings.redact(&finished.stdout), stderr: self.settings.redact(&finished.stderr) };
        let code = finished.status.code();
        let status = match code {
            Some(c) => format!("status {c}"),
            None => "a signal".to_owned(),
        };
        if let Some(signal) = finished.interrupted {
            let said = crate::error::last_error_line(&out.stderr);
            let status = if said.is_empty() || finished.status.success() { status } else { format!("{status} ({said})") };
            let outcome = format!("got it and exited with {status}{}", self.after_interrupt(id));
            return Err(PulumiError::Interrupted { purpose: purpose.to_owned(), id, signal: child::signal_name(signal), outcome });
        }
        if finished.status.success() {
            return Ok(out);
        }
        let text = FailureText { stdout: out.stdout.clone(), stderr: out.stderr.clone() };
        let mut e = PulumiError::from_failure(id, purpose, code, &text, self.settings.backend_url());
        if let PulumiError::Locked { holder, .. } = &mut e
            && let Some(h) = self.local_lock_holder(id)
        {
            *holder = h;
        }
        Err(e)
    }

    /// What an interrupted run left: on a file backend, whether the lock is gone.
    fn after_interrupt(&self, id: StackId) -> String {
        let (stack, env) = (id.stack, id.env);
        match self.local_locks(id) {
            Some(locks) if locks.is_empty() => "; it released the stack's lock".to_owned(),
            Some(locks) => format!(
                "; the stack is still locked (held by {}): if no update is running, release it with `cargo xtask infra-recover {stack} {env} --cancel`",
                locks[0].describe_at(lock::now())
            ),
            None => format!("; `cargo xtask infra-recover {stack} {env}` shows whether it left a lock or drift"),
        }
    }

    /// Runs with output captured (for JSON, and to read Pulumi's error messages); with
    /// `--pulumi-verbose`, Pulumi's logs on stderr are also shown as they come.
    pub fn run_captured(&self, id: StackId, purpose: &str, call: Call) -> Result<Output, PulumiError> {
        self.run(id, purpose, call, Mode::Capture { show_stderr: self.debug.verbose.is_some() })
    }

    /// Runs with output streamed to the terminal (our stderr, redacted line by line), for
    /// long runs; a copy is kept to classify a failure.
    pub fn run_live(&self, id: StackId, purpose: &str, call: Call) -> Result<(), PulumiError> {
        self.run(id, purpose, call, Mode::Stream).map(|_| ())
    }

    fn parse_digest(&self, id: StackId, command: &str, out: &Output) -> Result<PreviewDigest, PulumiError> {
        PreviewDigest::parse(&out.stdout).map_err(|e| PulumiError::BadOutput { id, command: command.to_owned(), problem: e.to_string() })
    }

    /// `pulumi preview --json`: what `up` would do. `extra_env` reaches the program.
    /// With `--diff`, the properties each change touches are shown too (from the digest's
    /// `detailedDiff`: Pulumi's `--diff` display does not apply to JSON output).
    pub fn preview(&self, id: StackId, extra_env: &[(String, String)]) -> Result<PreviewDigest, PulumiError> {
        let call = self.command(id, "preview the changes", &self.with_diff(&["preview", "--json"])).env(extra_env);
        let out = self.run_captured(id, "preview the changes", call)?;
        if self.debug.diff {
            print_property_diffs(id, &out.stdout);
        }
        self.parse_digest(id, "pulumi preview --json", &out)
    }

    /// `pulumi up --yes --skip-preview`: applies the program (the caller has just
    /// previewed it, so a second preview would run the program a third time).
    pub fn up(&self, id: StackId, extra_env: &[(String, String)]) -> Result<(), PulumiError> {
        let call = self.command(id, "deploy", &self.with_diff(&["up", "--yes", "--skip-preview"])).env(extra_env);
        self.run_live(id, "deploy", call)
    }

    /// `pulumi destroy --yes`, with `--exclude-protected` when the stack holds protected
    /// resources (without it Pulumi fails on the first one it cannot delete).
    pub fn destroy(&self, id: StackId, exclude_protected: bool) -> Result<(), PulumiError> {
        let mut args = vec!["destroy", "--yes"];
        if exclude_protected {
            args.push("--exclude-protected");
        }
        self.run_live(id, "destroy the resources", self.command(id, "destroy the resources", &self.with_diff(&args)))
    }

    /// `pulumi cancel --yes`: deletes the stack's lock, whoever holds it. Only
    /// `infra-recover --cancel` calls it, after checking the lock's age.
    pub fn cancel(&self, id: StackId) -> Result<Output, PulumiError> {
        self.run_captured(id, "cancel the pending update", self.command(id, "cancel the pending update", &["cancel", "--yes"]))
    }

    /// `pulumi refresh --preview-only --json`: how the cloud differs from the state,
    /// without writing the state (and, on DIY backends, without taking the lock).
    pub fn refresh_preview(&self, id: StackId) -> Result<PreviewDigest, PulumiError> {
        let out = self.run_captured(
            id,
            "compare the state with the cloud",
            self.command(id, "compare the state with the cloud", &["refresh", "--preview-only", "--json"]),
        )?;
        self.parse_digest(id, "pulumi refresh --preview-only --json", &out)
    }

    /// `pulumi refresh --yes`: writes what the cloud holds into the state.
    pub fn refresh(&self, id: StackId) -> Result<(), PulumiError> {
        self.run_live(id, "refresh the state", self.command(id, "refresh the state", &["refresh", "--yes"]))
    }

    /// `pulumi stack init`: creates the stack in the backend (first deployment).
    pub fn init(&self, id: StackId) -> Result<(), PulumiError> {
        self.run_captured(id, "create the stack", self.command(id, "create the stack", &["stack", "init"])).map(|_| ())
    }

    /// `pulumi stack output --json`: the outputs, secrets masked unless `show_secrets`.
    pub fn outputs(&self, id: StackId, show_secrets: bool) -> Result<serde_json::Value, PulumiError> {
        let mut args = vec!["stack", "output", "--json"];
        if show_secrets {
            args.push("--show-secrets");
        }
        let out = self.run_captured(id, "read the stack outputs", self.command(id, "read the stack outputs", &args))?;
        serde_json::from_str(out.stdout.trim()).map_err(|e| PulumiError::BadOutput {
            id,
            command: "pulumi stack output --json".into(),
            problem: e.to_string(),
        })
    }

    /// `pulumi stack export --file <path>`.
    pub fn export_to(&self, id: StackId, path: &Utf8Path) -> Result<(), PulumiError> {
        self.run_captured(id, "back up the state", self.command(id, "back up the state", &["stack", "export", "--file", path.as_str()]))
            .map(|_| ())
    }

    /// Exports the stack's state to a new file readable by the owner only, under
    /// [`Pulumi::backup_dir`]; returns its path. The file is created (mode 0600) before
    /// Pulumi writes it, so the state is never readable by others, even for a moment.
    pub fn backup(&self, id: StackId, reason: &str) -> Result<Utf8PathBuf, PulumiError> {
        let dir = self.backup_dir();
        let io = |path: &Utf8Path, source| PulumiError::Backup { path: path.to_string(), source };
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(&dir, e))?;
        let stamp = utc_stamp(lock::now());
        let base = format!("{}-{}-{stamp}-{reason}", id.stack, id.env);
        let mut n = 1;
        let (path, mut file) = loop {
            let name = if n == 1 { format!("{base}.json") } else { format!("{base}-{n}.json") };
            let path = dir.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io(&path, e)),
            }
        };
        file.flush().map_err(|e| io(&path, e))?;
        drop(file);
        if let Err(e) = self.export_to(id, &path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        // Whatever the CLI did to the file, it stays private.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(&path, e))?;
        Ok(path)
    }

    /// For a `file://` backend: the stack's lock files (Pulumi's DIY layout
    /// `.pulumi/locks/<org>/<project>/<stack>/<id>.json`). `None` for other backends,
    /// whose locks the tool cannot read.
    pub fn local_locks(&self, id: StackId) -> Option<Vec<LockInfo>> {
        let dir = self.settings.backend.as_ref()?.local_path()?;
        Some(lock::file_locks(&dir, &id.stack.project(), id.env.name()))
    }

    /// ` (held by ci@runner (pid 7) since <time>, 3h 12m ago)` for a locked stack of a
    /// `file://` backend; `None` when it is not locked or the backend is not a folder.
    pub fn local_lock_holder(&self, id: StackId) -> Option<String> {
        let locks = self.local_locks(id)?;
        let first = locks.first()?;
        Some(format!(" (held by {})", first.describe_at(lock::now())))
    }
}

/// Under `--diff`, the properties each change of a preview touches, from the digest's
/// `detailedDiff` (property paths and kinds only: no values, so no secret) or, where a
/// provider gives none, its `diffReasons`/`replaceReasons`.
fn print_property_diffs(id: StackId, stdout: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(stdout.trim()) else { return };
    let mut lines = Vec::new();
    for step in v["steps"].as_array().into_iter().flatten() {
        let op = step["op"].as_str().unwrap_or("");
        if ["same", "refresh", "read"].contains(&op) {
            continue;
        }
        let mut props: Vec<String> = step["detailedDiff"]
            .as_object()
            .map(|m| m.iter().map(|(k, d)| format!("{k} ({})", d["kind"].as_str().unwrap_or("update"))).collect())
            .unwrap_or_default();
        if props.is_empty() {
            for key in ["replaceReasons", "diffReasons"] {
                props.extend(step[key].as_array().into_iter().flatten().filter_map(|k| k.as_str()).map(str::to_owned));
            }
            props.dedup();
        }
        let urn = step["urn"].as_str().unwrap_or("");
        let shown = if props.is_empty() { "no property detail from the provider".to_owned() } else { props.join(", ") };
        lines.push(format!("    {op:<10} {}: {shown}", crate::preview::short_urn(urn)));
    }
    if !lines.is_empty() {
        eprintln!("{id}: what each change touches (--diff):");
        for l in lines {
            eprintln!("{l}");
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC).
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Env, Stack};

    fn pulumi(root: &Utf8Path, dotenv: &str) -> Pulumi {
        let env = crate::dotenv::parse(dotenv).unwrap();
        let settings = Settings::from_parts(root.join("infra/.env"), Some(env), Vec::<(String, String)>::new(), None).unwrap();
        Pulumi::new(root, &root.join("target/xtask"), settings)
    }

    #[test]
    fn every_command_is_non_interactive_with_explicit_stack_and_cwd_and_no_secret_in_argv() {
        let p = pulumi(Utf8Path::new("/repo"), "PULUMI_CONFIG_PASSPHRASE=hunter2-pass\nAWS_PROFILE=tradai\n");
        let id = StackId { stack: Stack::Compute, env: Env::Staging };
        let cmd = p.command(id, "preview", &["preview", "--json"]);
        assert_eq!(cmd.display(), "pulumi preview --json --stack staging --cwd /repo/infra/compute --non-interactive");
        assert!(!cmd.display().contains("hunter2"));
    }

    #[test]
    fn debug_flags_pass_through_as_the_guide_runs_them() {
        let p = pulumi(Utf8Path::new("/repo"), "").with_debug(DebugFlags { diff: true, verbose: Some(9) });
        let id = StackId { stack: Stack::Edge, env: Env::Dev };
        let call = p.command(id, "deploy", &p.with_diff(&["up", "--yes", "--skip-preview"]));
        assert_eq!(
            call.display(),
            "pulumi up --yes --skip-preview --diff --stack dev --cwd /repo/infra/edge --non-interactive --logtostderr -v=9"
        );
        let plain = pulumi(Utf8Path::new("/repo"), "");
        assert_eq!(plain.with_diff(&["preview"]), ["preview"]);
    }

    #[test]
    fn stamp_is_utc_calendar_time() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_709_251_199), "20240229T235959Z");
    }

    #[test]
    fn local_lock_holder_reads_the_diy_lock_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
        let state = root.join("state");
        let p = pulumi(&root, &format!("S3_PULUMI_BACKEND_URL=file://{state}\n"));
        let id = StackId { stack: Stack::Foundation, env: Env::Dev };
        assert_eq!(p.local_lock_holder(id), None);
        assert_eq!(p.local_locks(id), Some(Vec::new()));
        let dir = state.join(".pulumi/locks/organization/tradai-foundation/dev");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("abc.json"), r#"{"pid": 42, "username": "ci", "hostname": "runner", "timestamp": "2026-01-01T00:00:00Z"}"#)
            .unwrap();
        let holder = p.local_lock_holder(id).unwrap();
        assert!(holder.starts_with(" (held by ci@runner (pid 42) since 2026-01-01T00:00:00Z, ") && holder.ends_with(" ago)"), "{holder}");
        assert_eq!(p.local_lock_holder(StackId { stack: Stack::Foundation, env: Env::Prod }), None);
        assert_eq!(p.local_lock_holder(StackId { stack: Stack::Compute, env: Env::Dev }), None);
        // A backend that is not a folder: the tool cannot read its locks.
        let s3 = pulumi(&root, "S3_PULUMI_BACKEND_URL=s3://bucket\n");
        assert_eq!(s3.local_locks(id), None);
    }
}
