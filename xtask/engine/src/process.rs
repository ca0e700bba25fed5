//! The one way the tool runs an external program.
//!
//! Every process has a plain-language purpose, is logged before it runs, has its exit
//! status checked, and on failure is reported with its purpose, the command line and the
//! tail of its stderr. Secrets are passed on stdin or in the environment, never as
//! arguments, and environment values are never logged.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

/// A program to run, and why.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    purpose: String,
    dir: Option<Utf8PathBuf>,
    env: Vec<(String, OsString)>,
    env_remove: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// Stream the child's output to our stderr as it comes, and keep a copy.
    inherit_output: bool,
}

/// What a finished process printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Why a process did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to {purpose}: `{program}` was not found on PATH; {hint}")]
    NotFound { purpose: String, program: String, hint: String },
    #[error("failed to {purpose}: could not start `{program}`: {source}")]
    Spawn { purpose: String, program: String, source: std::io::Error },
    #[error("failed to {purpose} (`{command}` exited with {status}){}", if *.streamed { String::new() } else { stderr_tail(.stderr) })]
    Failed {
        purpose: String,
        command: String,
        status: String,
        stdout: String,
        stderr: String,
        /// The output was already shown as it came, so the message does not repeat it.
        streamed: bool,
    },
}

impl ProcessError {
    /// The captured stderr of a process that ran and failed.
    pub fn stderr(&self) -> &str {
        match self {
            ProcessError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(15);
    let mut out = String::from("\n");
    for l in &lines[start..] {
        out.push_str("    ");
        out.push_str(l);
        out.push('\n');
    }
    out.pop();
    out
}

/// What to tell a user whose PATH lacks a program.
fn install_hint(program: &str) -> String {
    match program {
        "docker" => "install Docker Engine and start it (`cargo xtask doctor` checks)".into(),
        "uv" => "install it with `pip install uv` (`cargo xtask doctor` checks)".into(),
        "pulumi" => "install the Pulumi CLI (https://www.pulumi.com/docs/install/) or put it on PATH".into(),
        "debootstrap" => "install it with `apt-get install debootstrap`".into(),
        "git" => "install git".into(),
        other => format!("install `{other}` or put it on PATH"),
    }
}

/// Whether this process runs as root (its effective uid, read from /proc: no process spawned).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))))
        .is_some_and(|euid| euid == "0")
}

/// Variables no child process gets unless its command sets them itself (a secret in this
/// process's environment reaches only the programs that need it).
static WITHHELD: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Withholds `names` from every child process that does not set them explicitly; set once,
/// at start-up.
pub fn withhold_from_children(names: &[&str]) {
    let _ = WITHHELD.set(names.iter().map(|n| (*n).to_owned()).collect());
}

/// The withheld names, for a child started without [`Cmd`] (one that must be streamed or
/// stopped on a timeout), which must remove them itself.
pub fn withheld() -> &'static [String] {
    WITHHELD.get().map(Vec::as_slice).unwrap_or(&[])
}

impl Cmd {
    pub fn new(program: impl Into<String>, purpose: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            purpose: purpose.into(),
            dir: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            inherit_output: false,
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn dir(mut self, dir: impl Into<Utf8PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    /// Sets an environment variable for the child. Values are never logged.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env_remove.push(key.into());
        self
    }
    /// Feeds bytes on stdin (the only way secrets reach a child besides its environment).
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }
    /// Streams the child's stdout and stderr to our stderr as they come (long tools),
    /// while keeping a copy, so that a failure still carries what the child said.
    pub fn inherit_output(mut self) -> Self {
        self.inherit_output = true;
        self
    }

    /// The command line as logged: program and arguments, never environment values.
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            if a.contains(' ') || a.is_empty() {
                s.push_str(&format!("{a:?}"));
            } else {
                s.push_str(a);
            }
        }
        s
    }

    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The process as a duct expression: directory and environment set, withheld
    /// variables removed.
    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args).unchecked();
        if let Some(d) = &self.dir {
            expr = expr.dir(d.as_std_path());
        }
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        for k in &self.env_remove {
            expr = expr.env_remove(k);
        }
        for k in WITHHELD.get().into_iter().flatten().filter(|k| !self.env.iter().any(|(set, _)| set == *k)) {
            expr = expr.env_remove(k);
        }
        expr
    }

    /// Starts the process and returns its stdout as a stream (for output too large to
    /// hold, such as `docker save`). Reading to the end checks the exit status: a failure
    /// is a read error naming the purpose, with the captured stderr.
    pub fn reader(&self) -> std::io::Result<impl std::io::Read + use<>> {
        tracing::debug!(purpose = %self.purpose, command = %self.display(), "streaming");
        let reader = self.expression().unchecked().stderr_capture().reader()?;
        Ok(StatusCheckedReader { reader, purpose: self.purpose.clone(), command: self.display() })
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&self) -> Result<Finished, ProcessError> {
        tracing::debug!(purpose = %self.purpose, command = %self.display(), "running");
        let started = Instant::now();
        let mut expr = self.expression();
        expr = match &self.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None => expr.stdin_null(),
        };
        let result = if self.inherit_output { tee(expr) } else { expr.stdout_capture().stderr_capture().run() };
        let out = match result {
            Ok(o) => o,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ProcessError::NotFound {
                    purpose: self.purpose.clone(),
                    program: self.program.clone(),
                    hint: install_hint(&self.program),
                });
            }
            Err(e) => {
                return Err(ProcessError::Spawn { purpose: self.purpose.clone(), program: self.program.clone(), source: e });
            }
        };
        let finished = Finished {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        tracing::debug!(purpose = %self.purpose, status = %out.status, elapsed_ms = finished.elapsed.as_millis() as u64, "finished");
        if out.status.success() {
            Ok(finished)
        } else {
            let status = match out.status.code() {
                Some(c) => format!("status {c}"),
                None => "a signal".to_owned(),
            };
            Err(ProcessError::Failed {
                purpose: self.purpose.clone(),
                command: self.display(),
                status,
                stdout: finished.stdout,
                stderr: finished.stderr,
                streamed: self.inherit_output,
            })
        }
    }
}

/// A child's stdout that turns a failed exit into a read error at the end of the stream.
struct StatusCheckedReader {
    reader: duct::ReaderHandle,
    purpose: String,
    command: String,
}

impl std::io::Read for StatusCheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&self.reader).read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(out) = self.reader.try_wait()?
            && !out.status.success()
        {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            return Err(std::io::Error::other(format!("failed to {} (`{}` exited with {}): {last}", self.purpose, self.command, out.status)));
        }
        Ok(n)
    }
}

/// Runs `expr` with stdout and stderr merged, copying every byte to our stderr as it
/// arrives and returning it as the output's stderr.
fn tee(expr: duct::Expression) -> std::io::Result<std::process::Output> {
    use std::io::{Read, Write};
    let reader = expr.stderr_to_stdout().reader()?;
    let mut copy = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match (&reader).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&buf[..n]);
        let _ = err.flush();
        copy.extend_from_slice(&buf[..n]);
    }
    let status = match reader.try_wait()? {
        Some(out) => out.status,
        None => {
            return Err(std::io::Error::other("the child closed its output but has not exited"));
        }
    };
    Ok(std::process::Output { status, stdout: Vec::new(), stderr: copy })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_output_is_kept_for_the_error() {
        let err =
            Cmd::new("sh", "stream and fail").args(["-c", "echo to-out; echo to-err >&2; exit 4"]).inherit_output().run().unwrap_err();
        let text = err.stderr().to_owned();
        assert!(text.contains("to-out") && text.contains("to-err"), "{text}");
        assert!(err.to_string().contains("exited with status 4"));
        assert_eq!(err.to_string().lines().count(), 1, "what was shown live is not repeated: {err}");
        let ok = Cmd::new("sh", "stream").args(["-c", "echo fine"]).inherit_output().run().unwrap();
        assert!(ok.stderr.contains("fine"));
    }

    #[test]
    fn success_captures_stdout() {
        let out = Cmd::new("sh", "print a word").args(["-c", "echo hello"]).run().unwrap();
        assert_eq!(out.stdout.trim(), "hello");
    }

    #[test]
    fn failure_names_purpose_status_and_stderr() {
        let err = Cmd::new("sh", "do the thing").args(["-c", "echo boom >&2; exit 3"]).run().unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("failed to do the thing (`sh -c \"echo boom >&2; exit 3\"` exited with status 3)"), "{text}");
        assert!(text.contains("boom"));
    }

    #[test]
    fn missing_program_says_how_to_install() {
        let err = Cmd::new("definitely-not-a-program-xyz", "run it").run().unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }));
        assert!(err.to_string().contains("was not found on PATH"));
    }

    #[test]
    fn stdin_and_env_reach_the_child_but_not_the_display() {
        let cmd = Cmd::new("sh", "read a secret")
            .args(["-c", "read x; echo \"$x-$TOKEN\""])
            .env("TOKEN", "t0k")
            .stdin_bytes(b"s3cret\n".to_vec());
        assert!(!cmd.display().contains("s3cret") && !cmd.display().contains("t0k"));
        assert_eq!(cmd.run().unwrap().stdout.trim(), "s3cret-t0k");
    }
}

/// A program that a builder runs, located (or installed) on first use and then
/// remembered for the run: a build with nothing to do never provisions anything.
#[derive(Clone)]
pub struct Program {
    inner: std::sync::Arc<ProgramInner>,
}

type Resolver = Box<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

struct ProgramInner {
    name: String,
    resolve: Resolver,
    found: std::sync::OnceLock<Result<String, String>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("name", &self.inner.name).finish()
    }
}

impl Program {
    /// A program found by `resolve` the first time it is needed.
    pub fn lazy(name: impl Into<String>, resolve: impl Fn() -> anyhow::Result<String> + Send + Sync + 'static) -> Program {
        Program {
            inner: std::sync::Arc::new(ProgramInner { name: name.into(), resolve: Box::new(resolve), found: std::sync::OnceLock::new() }),
        }
    }

    /// A program run by name or path as given.
    pub fn fixed(path: impl Into<String>) -> Program {
        let path = path.into();
        Program::lazy(path.clone(), move || Ok(path.clone()))
    }

    /// Its path; every caller after the first gets the same answer.
    pub fn path(&self) -> anyhow::Result<String> {
        self.inner.found.get_or_init(|| (self.inner.resolve)().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
    }

    /// A command running it.
    pub fn cmd(&self, purpose: impl Into<String>) -> anyhow::Result<Cmd> {
        Ok(Cmd::new(self.path()?, purpose))
    }
}
