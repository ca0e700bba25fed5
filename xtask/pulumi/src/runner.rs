//! The wrapper around the `pulumi` CLI. Every run is non-interactive, names its stack
//! and working directory explicitly, gets its environment from [`Settings`] (never a
//! secret in argv: the passphrase travels only in the child's `PULUMI_CONFIG_PASSPHRASE`),
//! and goes through `xtask_engine::Cmd`. Failures become [`PulumiError`]s with secrets
//! redacted from anything Pulumi printed.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use camino::{Utf8Path, Utf8PathBuf};
use xtask_engine::{Cmd, ProcessError};

use crate::error::{PulumiError, StackId};
use crate::preview::PreviewDigest;
use crate::settings::Settings;

/// Drives `pulumi` for one repository.
#[derive(Debug, Clone)]
pub struct Pulumi {
    program: String,
    root: Utf8PathBuf,
    state_dir: Utf8PathBuf,
    settings: Settings,
}

/// What a captured run printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Pulumi {
    /// `state_dir` is the tool's state folder (`<target>/xtask`), where backups go.
    pub fn new(root: &Utf8Path, state_dir: &Utf8Path, settings: Settings) -> Pulumi {
        Pulumi { program: "pulumi".to_owned(), root: root.to_owned(), state_dir: state_dir.to_owned(), settings }
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

    /// `pulumi <args> --stack <env> --cwd infra/<stack> --non-interactive`, with the
    /// settings' environment.
    pub fn command(&self, id: StackId, purpose: &str, args: &[&str]) -> Cmd {
        let mut cmd = Cmd::new(&self.program, format!("{purpose} ({id})"))
            .args(args.iter().copied())
            .args(["--stack", id.env.name(), "--cwd", self.stack_dir(id).as_str(), "--non-interactive"])
            // No network check for a newer CLI on every run.
            .env("PULUMI_SKIP_UPDATE_CHECK", "true");
        for (k, v) in self.settings.child_env() {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    fn map_error(&self, id: StackId, purpose: &str, err: ProcessError) -> PulumiError {
        match err {
            ProcessError::NotFound { .. } => PulumiError::NotInstalled,
            ProcessError::Spawn { source, .. } => PulumiError::Spawn { purpose: purpose.to_owned(), detail: source.to_string() },
            ProcessError::Failed { status, stderr, .. } => {
                let code = status.strip_prefix("status ").and_then(|c| c.parse::<i32>().ok());
                let stderr = self.settings.redact(&stderr);
                let mut e = PulumiError::from_failure(id, purpose, code, &stderr, &self.settings.backend.url);
                if let PulumiError::Locked { holder, .. } = &mut e
                    && let Some(h) = self.local_lock_holder(id)
                {
                    *holder = h;
                }
                e
            }
        }
    }

    /// Runs with output captured (for JSON, and to read Pulumi's error messages).
    pub fn run_captured(&self, id: StackId, purpose: &str, cmd: Cmd) -> Result<Output, PulumiError> {
        match cmd.run() {
            Ok(f) => Ok(Output { stdout: f.stdout, stderr: f.stderr }),
            Err(e) => Err(self.map_error(id, purpose, e)),
        }
    }

    /// Runs with output streamed to the terminal (our stderr), for long runs.
    pub fn run_live(&self, id: StackId, purpose: &str, cmd: Cmd) -> Result<(), PulumiError> {
        cmd.inherit_output().run().map(|_| ()).map_err(|e| self.map_error(id, purpose, e))
    }

    fn parse_digest(&self, id: StackId, command: &str, out: &Output) -> Result<PreviewDigest, PulumiError> {
        PreviewDigest::parse(&out.stdout).map_err(|e| PulumiError::BadOutput { id, command: command.to_owned(), problem: e.to_string() })
    }

    /// `pulumi preview --json`: what `up` would do. `extra_env` reaches the program.
    pub fn preview(&self, id: StackId, extra_env: &[(String, String)]) -> Result<PreviewDigest, PulumiError> {
        let mut cmd = self.command(id, "preview the changes", &["preview", "--json"]);
        for (k, v) in extra_env {
            cmd = cmd.env(k, v);
        }
        let out = self.run_captured(id, "preview the changes", cmd)?;
        self.parse_digest(id, "pulumi preview --json", &out)
    }

    /// `pulumi up --yes --skip-preview`: applies the program (the caller has just
    /// previewed it, so a second preview would run the program a third time).
    pub fn up(&self, id: StackId, extra_env: &[(String, String)]) -> Result<(), PulumiError> {
        let mut cmd = self.command(id, "deploy", &["up", "--yes", "--skip-preview"]);
        for (k, v) in extra_env {
            cmd = cmd.env(k, v);
        }
        self.run_live(id, "deploy", cmd)
    }

    /// `pulumi destroy --yes`.
    pub fn destroy(&self, id: StackId) -> Result<(), PulumiError> {
        self.run_live(id, "destroy the resources", self.command(id, "destroy the resources", &["destroy", "--yes"]))
    }

    /// `pulumi cancel --yes`: removes the lock of an update that is no longer running.
    pub fn cancel(&self, id: StackId) -> Result<Output, PulumiError> {
        self.run_captured(id, "cancel the pending update", self.command(id, "cancel the pending update", &["cancel", "--yes"]))
    }

    /// `pulumi refresh --preview-only --json`: how the cloud differs from the state,
    /// without writing the state.
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
        let stamp = utc_stamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
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

    /// For a `file://` backend: who holds the stack's lock, if anyone (Pulumi's DIY layout
    /// `.pulumi/locks/<org>/<project>/<stack>/<id>.json`). `None` for other backends.
    pub fn local_lock_holder(&self, id: StackId) -> Option<String> {
        let locks = self.settings.backend.local_path()?.join(".pulumi/locks");
        let project = id.stack.project();
        let mut dirs = vec![(locks, 0)];
        while let Some((dir, depth)) = dirs.pop() {
            let Ok(rd) = dir.read_dir_utf8() else {
                continue;
            };
            for entry in rd.flatten() {
                let path = entry.path().to_owned();
                if path.is_dir() && depth < 4 {
                    dirs.push((path, depth + 1));
                } else if path.extension() == Some("json")
                    && path.parent().and_then(Utf8Path::file_name) == Some(id.env.name())
                    && path.parent().and_then(Utf8Path::parent).and_then(Utf8Path::file_name) == Some(project.as_str())
                {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let who = format!("{}@{}", v["username"].as_str().unwrap_or("?"), v["hostname"].as_str().unwrap_or("?"));
                    let pid = v["pid"].as_i64().map(|p| format!(", pid {p}")).unwrap_or_default();
                    let when = v["timestamp"].as_str().map(|t| format!(", since {t}")).unwrap_or_default();
                    return Some(format!(" (held by {who}{pid}{when})"));
                }
            }
        }
        None
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
        let settings = Settings::from_parts(root, root.join("infra/.env"), Some(env), Vec::<(String, String)>::new()).unwrap();
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
        let dir = state.join(".pulumi/locks/organization/tradai-foundation/dev");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("abc.json"), r#"{"pid": 42, "username": "ci", "hostname": "runner", "timestamp": "2026-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(p.local_lock_holder(id).unwrap(), " (held by ci@runner, pid 42, since 2026-01-01T00:00:00Z)");
        assert_eq!(p.local_lock_holder(StackId { stack: Stack::Foundation, env: Env::Prod }), None);
        assert_eq!(p.local_lock_holder(StackId { stack: Stack::Compute, env: Env::Dev }), None);
    }
}
