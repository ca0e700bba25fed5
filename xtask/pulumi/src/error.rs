//! Pulumi's failures, read where Pulumi reports them, told apart, and turned into one-line
//! errors that say how to fix them.
//!
//! Where Pulumi writes what (read from its source, v3.259.0):
//! - errors of the CLI itself (no such stack, the stack is locked, no passphrase, bad
//!   flags, `--expect-no-changes` with changes) go to **stderr** as `error: ...`
//!   (`cmdutil.Diag()`, a sink whose errors and warnings go to stderr);
//! - errors of the deployment (the program failed, a resource operation failed, a
//!   `StackReference` names a stack that does not exist) are engine diagnostics: on
//!   **stdout**, in the display's `Diagnostics:` section (grouped under a
//!   `  <type> (<name>):` header, each line indented four spaces), or, with `--json` on a
//!   preview, in the digest's `diagnostics` array (`urn`, `message` with its `error: `
//!   prefix, `severity`); the command then "bails" and prints nothing more on stderr.
//!
//! So a failure is classified from both streams. Exit codes (`cmdutil/exit.go`, wired in
//! `cmd/exit_codes.go` from v3.226.0): 1 generic and every bailed deployment error, 2
//! configuration, 3 authentication, 6 stack not found, 7 changes where none were
//! expected, 8 cancelled; 4 resource, 5 policy and 9 timeout are reserved and not yet
//! produced. Older versions exit 255 for nearly everything. The messages decide first,
//! the code where no message is known.

use std::fmt;

use crate::graph::{Env, Stack};

/// One stack of one environment (`compute/dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackId {
    pub stack: Stack,
    pub env: Env,
}

impl fmt::Display for StackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stack, self.env)
    }
}

/// What kind of failure a `pulumi` run ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    StackNotFound,
    Locked,
    PassphraseMissing,
    PassphraseWrong,
    Auth,
    Config,
    /// The program itself failed (an exception in `__main__.py` or a module).
    Program,
    /// A `StackReference` names a stack the backend does not have.
    MissingUpstream,
    /// A resource operation failed in the cloud.
    Resource,
    /// A step would delete a protected resource.
    Protected,
    Policy,
    /// `--expect-no-changes` and there were changes.
    Changes,
    Canceled,
    Timeout,
    Other,
}

/// One diagnostic of a deployment: from the `diagnostics` of `--json` output, or from the
/// `Diagnostics:` section of the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The resource it is about: its URN (JSON) or `type (name)` header (display); empty
    /// for a message about the whole run.
    pub resource: String,
    pub severity: String,
    /// The message without the `error: ` prefix and colour codes.
    pub message: String,
}

impl Diagnostic {
    fn is_error(&self) -> bool {
        self.severity == "error"
    }

    /// The resource's type: `aws:lambda/function:Function`, `pulumi:pulumi:Stack`.
    fn resource_type(&self) -> &str {
        let r = self.resource.as_str();
        if r.starts_with("urn:pulumi:") {
            // urn:pulumi:<stack>::<project>::<type>::<name>
            r.split("::").nth(2).unwrap_or("")
        } else {
            r.split(" (").next().unwrap_or("")
        }
    }

    /// The message on one line: a message that ends its first line with `:` (a traceback,
    /// "Program failed with an unhandled exception:") keeps that line and its last one.
    pub fn summary(&self) -> String {
        let lines: Vec<&str> = self.message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let text = match lines.as_slice() {
            [] => String::new(),
            [one] => (*one).to_owned(),
            [first, .., last] if first.ends_with(':') => format!("{first} {last}"),
            [first, ..] => (*first).to_owned(),
        };
        clip(&text)
    }
}

/// The diagnostics in what a run printed on stdout: the `diagnostics` of a JSON document,
/// else the `Diagnostics:` section of Pulumi's display.
pub fn diagnostics(stdout: &str) -> Vec<Diagnostic> {
    let trimmed = stdout.trim();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        return v["diagnostics"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        let message = strip_ansi(d["message"].as_str().unwrap_or(""));
                        let message = message.trim_start();
                        let message = ["error: ", "warning: "].iter().find_map(|p| message.strip_prefix(p)).unwrap_or(message);
                        Diagnostic {
                            resource: d["urn"].as_str().unwrap_or("").to_owned(),
                            severity: d["severity"].as_str().unwrap_or("").to_owned(),
                            message: message.trim_end().to_owned(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    display_diagnostics(&strip_ansi(stdout))
}

/// The `Diagnostics:` section of Pulumi's display: `  <type> (<name>):` headers, then the
/// messages indented four spaces, each starting `error: ` or `warning: ` (info without).
fn display_diagnostics(text: &str) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut inside = false;
    let mut resource = String::new();
    for line in text.lines() {
        if line.trim_end() == "Diagnostics:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            // The next section (`Outputs:`, `Resources:`, ...).
            inside = false;
            continue;
        }
        if let Some(msg) = line.strip_prefix("    ") {
            let (severity, message) = if let Some(m) = msg.strip_prefix("error: ") {
                ("error", m)
            } else if let Some(m) = msg.strip_prefix("warning: ") {
                ("warning", m)
            } else {
                // A continuation line of the message above (a traceback).
                if let Some(last) = out.last_mut().filter(|d| d.resource == resource) {
                    last.message.push('\n');
                    last.message.push_str(msg.trim_end());
                    continue;
                }
                ("info", msg)
            };
            out.push(Diagnostic { resource: resource.clone(), severity: severity.to_owned(), message: message.trim_end().to_owned() });
        } else if let Some(header) = line.trim().strip_suffix(':') {
            resource = header.to_owned();
        }
    }
    out
}

/// A failed run's output, as classification reads it (already redacted).
#[derive(Debug, Clone, Default)]
pub struct FailureText {
    pub stdout: String,
    pub stderr: String,
}

impl FailureText {
    /// The diagnostics Pulumi reported: from stdout, and from stderr when both streams
    /// were merged there (a run streamed to the terminal).
    fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut all = diagnostics(&self.stdout);
        all.extend(display_diagnostics(&strip_ansi(&self.stderr)));
        all
    }

    /// Everything Pulumi said about the failure: the error diagnostics, then stderr.
    fn messages(&self) -> String {
        let mut text: Vec<String> = self.diagnostics().into_iter().filter(Diagnostic::is_error).map(|d| d.message).collect();
        text.push(strip_ansi(&self.stderr));
        // The display of a streamed run, where diagnostics sit among progress lines.
        if !self.stdout.trim_start().starts_with('{') {
            text.push(strip_ansi(&self.stdout));
        }
        text.join("\n")
    }

    /// The one line that says best what went wrong: an error about a resource, else an
    /// error about the run that is not a generic "update failed", else Pulumi's last
    /// `error:` line on stderr, then on stdout.
    pub fn detail(&self) -> String {
        let errors: Vec<Diagnostic> = self.diagnostics().into_iter().filter(Diagnostic::is_error).collect();
        let generic = |d: &&Diagnostic| {
            let m = d.message.trim().to_ascii_lowercase();
            ["update failed", "preview failed", "destroy failed", "refresh failed"].contains(&m.as_str())
        };
        let on_resource = errors.iter().find(|d| !generic(d) && !d.resource.is_empty() && d.resource_type() != "pulumi:pulumi:Stack");
        let any = errors.iter().find(|d| !generic(d));
        if let Some(d) = on_resource.or(any) {
            let summary = d.summary();
            return if d.resource_type().is_empty() || d.resource_type() == "pulumi:pulumi:Stack" {
                summary
            } else if d.resource.starts_with("urn:") {
                let name = d.resource.rsplit("::").next().unwrap_or("");
                clip(&format!("{} ({name}): {summary}", d.resource_type()))
            } else {
                clip(&format!("{}: {summary}", d.resource))
            };
        }
        let from_stderr = last_error_line(&self.stderr);
        if !from_stderr.is_empty() {
            return from_stderr;
        }
        if self.stdout.trim_start().starts_with('{') { String::new() } else { last_error_line(&self.stdout) }
    }
}

/// Reads a failed run's exit code and what it printed.
pub fn classify(code: Option<i32>, out: &FailureText) -> Category {
    let text = out.messages().to_ascii_lowercase();
    // Messages first: they are specific on every version, codes only on recent ones.
    if text.contains("passphrase must be set") {
        return Category::PassphraseMissing;
    }
    if text.contains("incorrect passphrase") || text.contains("failed to decrypt") {
        return Category::PassphraseWrong;
    }
    if text.contains("currently locked") || text.contains("[409] conflict") || text.contains("another update is currently in progress") {
        return Category::Locked;
    }
    if text.contains("no stack named") || text.contains("no stack selected") {
        return Category::StackNotFound;
    }
    if text.contains("unknown stack \"") {
        return Category::MissingUpstream;
    }
    if text.contains("no changes were expected") {
        return Category::Changes;
    }
    if text.contains("pulumi_access_token must be set") || text.contains("not logged in") {
        return Category::Auth;
    }
    if text.contains("because it is protected") || text.contains("currently marked for protection") {
        return Category::Protected;
    }
    if ["update cancelled", "destroy cancelled", "refresh cancelled", "preview cancelled", "operation cancelled"]
        .iter()
        .any(|m| text.contains(m))
    {
        return Category::Canceled;
    }
    if text.contains("program failed") || text.contains("unhandled exception") || text.contains("program exited with non-zero exit code") {
        return Category::Program;
    }
    if out.diagnostics().iter().any(|d| d.is_error() && !d.resource.is_empty() && d.resource_type() != "pulumi:pulumi:Stack") {
        return Category::Resource;
    }
    match code {
        Some(2) => Category::Config,
        Some(3) => Category::Auth,
        Some(4) => Category::Resource,
        Some(5) => Category::Policy,
        Some(6) => Category::StackNotFound,
        Some(7) => Category::Changes,
        Some(8) => Category::Canceled,
        Some(9) => Category::Timeout,
        _ => Category::Other,
    }
}

/// A `pulumi` run that did not succeed, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum PulumiError {
    #[error(
        "the `pulumi` executable was not found on PATH; install the Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/) or put it on PATH, then retry"
    )]
    NotInstalled,
    #[error("could not start `pulumi` to {purpose}: {detail}")]
    Spawn { purpose: String, detail: String },
    /// The stack's project file is missing or wrong, found before Pulumi runs.
    #[error("{problem}; restore it with `git checkout -- infra/{}/Pulumi.yaml`, or fix it (it names the project, tradai-{}, and its runtime)", .id.stack, .id.stack)]
    Project { id: StackId, problem: String },
    #[error("stack {id} does not exist in the state backend {backend}; create and deploy it with `cargo xtask infra-up {} {}` (or `pulumi stack init {}` in infra/{})", .id.stack, .id.env, .id.env, .id.stack)]
    StackNotFound { id: StackId, backend: String },
    #[error("stack {id} is locked by another update{holder}; `cargo xtask infra-recover {} {}` shows who holds the lock and since when, and releases it with --cancel once no update is running", .id.stack, .id.env)]
    Locked { id: StackId, holder: String },
    #[error(
        "pulumi needs the passphrase of {id}: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set; set it in infra/.env or the environment"
    )]
    PassphraseMissing { id: StackId },
    #[error(
        "pulumi cannot decrypt {id}: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not the passphrase the stack was created with; set the right one in infra/.env or the environment"
    )]
    PassphraseWrong { id: StackId },
    #[error(
        "pulumi cannot reach or is not allowed to use the state backend for {id} ({detail}); check S3_PULUMI_BACKEND_URL and the AWS credentials (AWS_PROFILE) in infra/.env"
    )]
    Auth { id: StackId, detail: String },
    #[error("failed to {purpose} for {id}: it reads the outputs of {upstream}, which does not exist in this state backend (pulumi: {detail}); deploy it first with `cargo xtask infra-up {} {}`, or everything in order with `cargo xtask infra-bootstrap {}`", .upstream_stack, .id.env, .id.env)]
    MissingUpstream { purpose: String, id: StackId, upstream: String, upstream_stack: String, detail: String },
    #[error("failed to {purpose} for {id} (pulumi exited with {status}): {detail}; {fix}")]
    Failed { purpose: String, id: StackId, status: String, category: Category, detail: String, fix: String },
    /// The tool received SIGINT or SIGTERM while (or before) Pulumi ran; `outcome` says
    /// what Pulumi did with it and what it left.
    #[error("stopped on {signal}: pulumi, run to {purpose} for {id}, {outcome}")]
    Interrupted { purpose: String, id: StackId, signal: &'static str, outcome: String },
    #[error(
        "pulumi printed something other than the JSON expected from `{command}` for {id} ({problem}); rerun with -vv to see the command"
    )]
    BadOutput { id: StackId, command: String, problem: String },
    #[error("cannot write the state backup {path}: {source}")]
    Backup { path: String, source: std::io::Error },
}

impl PulumiError {
    pub fn category(&self) -> Option<Category> {
        Some(match self {
            PulumiError::StackNotFound { .. } => Category::StackNotFound,
            PulumiError::Locked { .. } => Category::Locked,
            PulumiError::PassphraseMissing { .. } => Category::PassphraseMissing,
            PulumiError::PassphraseWrong { .. } => Category::PassphraseWrong,
            PulumiError::Auth { .. } => Category::Auth,
            PulumiError::Project { .. } => Category::Config,
            PulumiError::MissingUpstream { .. } => Category::MissingUpstream,
            PulumiError::Interrupted { .. } => Category::Canceled,
            PulumiError::Failed { category, .. } => *category,
            _ => return None,
        })
    }

    /// Builds the error for a run that exited non-zero, from its exit code and what it
    /// printed on both streams (already redacted; `stdout` is empty when both streams
    /// went to the terminal merged into `stderr`).
    pub fn from_failure(id: StackId, purpose: &str, code: Option<i32>, out: &FailureText, backend: &str) -> PulumiError {
        let category = classify(code, out);
        let detail = out.detail();
        match category {
            Category::StackNotFound => PulumiError::StackNotFound { id, backend: backend.to_owned() },
            Category::Locked => PulumiError::Locked { id, holder: String::new() },
            Category::PassphraseMissing => PulumiError::PassphraseMissing { id },
            Category::PassphraseWrong => PulumiError::PassphraseWrong { id },
            Category::Auth => PulumiError::Auth { id, detail: if detail.is_empty() { "exit code 3".into() } else { detail } },
            Category::MissingUpstream => {
                let (upstream, upstream_stack) = missing_upstream(&out.messages(), id.env);
                PulumiError::MissingUpstream { purpose: purpose.to_owned(), id, upstream, upstream_stack, detail }
            }
            _ => {
                let status = match code {
                    Some(c) => format!("status {c}"),
                    None => "a signal".to_owned(),
                };
                let shown = if detail.is_empty() { "its output is above".to_owned() } else { detail };
                PulumiError::Failed { purpose: purpose.to_owned(), id, status, category, detail: shown, fix: fix_for(category, id) }
            }
        }
    }
}

/// The stack a failed `StackReference` names: `unknown stack "organization/tradai-persistent/dev"`
/// gives (`persistent/dev`, `persistent`).
fn missing_upstream(text: &str, env: Env) -> (String, String) {
    let name = text.split("unknown stack \"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
    let project = name.split('/').rev().nth(1).unwrap_or(name);
    match project.strip_prefix("tradai-").and_then(|s| s.parse::<Stack>().ok()) {
        Some(stack) => (format!("{stack}/{env}"), stack.name().to_owned()),
        None => (if name.is_empty() { "an upstream stack".to_owned() } else { name.to_owned() }, "<stack>".to_owned()),
    }
}

fn fix_for(category: Category, id: StackId) -> String {
    let (stack, env) = (id.stack, id.env);
    match category {
        Category::Config => format!("check the stack's configuration in infra/{stack}/Pulumi.{env}.yaml and the flags"),
        Category::Program => {
            format!("the Pulumi program in infra/{stack} failed; fix it (its unit tests run with `cargo xtask ci infra`) and rerun")
        }
        Category::Resource => {
            format!("fix the failing resource, then rerun; `cargo xtask infra-recover {stack} {env}` shows any drift the failure left")
        }
        Category::Protected => format!(
            "a protected resource is never deleted: restore it in the program of infra/{stack}, or unprotect it deliberately with `pulumi state unprotect` in infra/{stack}"
        ),
        Category::Policy => "a policy pack blocked the change; change the program or the policy".to_owned(),
        Category::Changes => format!("the stack has drifted from the program; review with `cargo xtask infra-preview {stack} {env}`"),
        Category::Canceled => format!(
            "the run was cancelled and pulumi released its lock; `cargo xtask infra-recover {stack} {env}` shows what it left, then rerun"
        ),
        Category::Timeout => "the run timed out; rerun it, and check the resources it was waiting for".to_owned(),
        _ => format!("fix the error shown and rerun; `cargo xtask infra-recover {stack} {env}` shows whether a lock or drift was left"),
    }
}

/// The most useful line of Pulumi's text output: the last `error:` line, else the last
/// line. Pulumi's own log lines (`--logtostderr`: `I0821 19:18:00.000000 ...`) are skipped.
pub fn last_error_line(text: &str) -> String {
    let clean = strip_ansi(text);
    let lines: Vec<&str> = clean.lines().map(str::trim).filter(|l| !l.is_empty() && !is_glog_line(l)).collect();
    let line = lines.iter().rev().find(|l| l.starts_with("error:")).or(lines.last()).copied().unwrap_or("");
    clip(line.strip_prefix("error:").unwrap_or(line).trim())
}

/// A line of glog, which Pulumi logs with (`-v=N --logtostderr`): `I0821 19:18:00.123456 ...`.
fn is_glog_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21 && matches!(b[0], b'I' | b'W' | b'E' | b'F') && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' ' && b[8] == b':'
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push_str("...");
    }
    out
}

/// Removes terminal colour codes (Pulumi's diagnostics carry them even with `--color never`),
/// with the parser clap already brings in.
pub fn strip_ansi(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: StackId = StackId { stack: Stack::Compute, env: Env::Dev };

    fn err(stderr: &str) -> FailureText {
        FailureText { stdout: String::new(), stderr: stderr.to_owned() }
    }

    fn out(stdout: &str) -> FailureText {
        FailureText { stdout: stdout.to_owned(), stderr: String::new() }
    }

    /// A failed `preview --json`: the digest with its diagnostics on stdout, nothing on
    /// stderr (the shape of `display.PreviewDigest`).
    const FAILED_PREVIEW: &str = r#"{
        "config": {"aws:region": "eu-central-1"},
        "steps": [{"op": "same", "urn": "urn:pulumi:dev::tradai-persistent::pulumi:pulumi:Stack::tradai-persistent-dev"}],
        "diagnostics": [
            {"urn": "urn:pulumi:dev::tradai-persistent::aws:s3/bucketV2:BucketV2::configs", "message": "error: \u001b[31mcreating S3 Bucket (tradai-configs-dev): InvalidBucketName\u001b[0m\n", "severity": "error"},
            {"urn": "urn:pulumi:dev::tradai-persistent::pulumi:pulumi:Stack::tradai-persistent-dev", "message": "error: preview failed\n", "severity": "error"}
        ],
        "duration": 1000
    }"#;

    /// A failed `up` as displayed: progress, then the Diagnostics section, on stdout.
    const FAILED_UP: &str = "Updating (dev):\n +  aws:lambda:Function health-check creating (0s) error: creating failed\n\nDiagnostics:\n  aws:lambda:Function (health-check):\n    error: creating Lambda Function (tradai-health-check-dev): InvalidParameterValueException: image not found\n\n  pulumi:pulumi:Stack (tradai-compute-dev):\n    error: update failed\n\nResources:\n    5 unchanged\n\nDuration: 3s\n";

    const PROGRAM_FAILED: &str = "Previewing update (dev):\n\nDiagnostics:\n  pulumi:pulumi:Stack (tradai-compute-dev):\n    error: Program failed with an unhandled exception:\n    Traceback (most recent call last):\n      File \"/infra/compute/__main__.py\", line 3, in <module>\n    RuntimeError: no image manifest: set TRADAI_IMAGE_MANIFEST\n\nResources:\n";

    #[test]
    fn messages_classify_on_old_clis_that_exit_255() {
        let cases = [
            ("error: no stack named 'dev' found", Category::StackNotFound),
            (
                "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n  file:///x/.pulumi/locks/organization/tradai-compute/dev/1.json: created by me@host (pid 1) at 2026-01-01T00:00:00Z",
                Category::Locked,
            ),
            ("error: [409] Conflict: Another update is currently in progress.", Category::Locked),
            (
                "error: constructing secrets manager of type \"passphrase\": passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
                Category::PassphraseMissing,
            ),
            ("error: incorrect passphrase", Category::PassphraseWrong),
            ("error: no changes were expected for preview but changes were proposed", Category::Changes),
            ("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions", Category::Auth),
            ("error: update cancelled", Category::Canceled),
            ("error: update failed", Category::Other),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(Some(255), &err(stderr)), want, "{stderr}");
        }
    }

    #[test]
    fn deployment_errors_are_read_from_stdout_and_json_diagnostics() {
        assert_eq!(classify(Some(1), &out(FAILED_PREVIEW)), Category::Resource);
        assert_eq!(
            out(FAILED_PREVIEW).detail(),
            "aws:s3/bucketV2:BucketV2 (configs): creating S3 Bucket (tradai-configs-dev): InvalidBucketName"
        );
        assert_eq!(classify(Some(1), &out(FAILED_UP)), Category::Resource);
        assert_eq!(
            out(FAILED_UP).detail(),
            "aws:lambda:Function (health-check): creating Lambda Function (tradai-health-check-dev): InvalidParameterValueException: image not found"
        );
        // Streamed to the terminal: both streams merged, kept as stderr.
        assert_eq!(classify(Some(1), &err(FAILED_UP)), Category::Resource);
        assert_eq!(err(FAILED_UP).detail(), out(FAILED_UP).detail());
        assert_eq!(classify(Some(255), &out(PROGRAM_FAILED)), Category::Program);
        assert_eq!(
            out(PROGRAM_FAILED).detail(),
            "Program failed with an unhandled exception: RuntimeError: no image manifest: set TRADAI_IMAGE_MANIFEST"
        );
        let stack_ref = r#"{"diagnostics": [{"urn": "urn:pulumi:dev::tradai-foundation::pulumi:pulumi:StackReference::organization/tradai-persistent/dev", "message": "error: Preview failed: unknown stack \"organization/tradai-persistent/dev\"\n", "severity": "error"}]}"#;
        assert_eq!(classify(Some(1), &out(stack_ref)), Category::MissingUpstream);
        let id = StackId { stack: Stack::Foundation, env: Env::Dev };
        let e = PulumiError::from_failure(id, "preview the changes", Some(1), &out(stack_ref), "file:///s").to_string();
        assert!(
            e.starts_with("failed to preview the changes for foundation/dev: it reads the outputs of persistent/dev, which does not exist"),
            "{e}"
        );
        assert!(e.contains("`cargo xtask infra-up persistent dev`"), "{e}");
        // A warning is not a failure's reason.
        let warn = r#"{"diagnostics": [{"message": "warning: deprecated\n", "severity": "warning"}]}"#;
        assert_eq!(out(warn).detail(), "");
    }

    #[test]
    fn documented_exit_codes_classify_without_a_message() {
        let cases = [
            (2, Category::Config),
            (3, Category::Auth),
            (4, Category::Resource),
            (5, Category::Policy),
            (6, Category::StackNotFound),
            (7, Category::Changes),
            (8, Category::Canceled),
            (9, Category::Timeout),
            (1, Category::Other),
        ];
        for (code, want) in cases {
            assert_eq!(classify(Some(code), &err("")), want, "{code}");
        }
    }

    #[test]
    fn errors_are_one_line_with_the_fix() {
        let cases = [
            (
                Some(6),
                err(""),
                "stack compute/dev does not exist in the state backend file:///s; create and deploy it with `cargo xtask infra-up compute dev`",
            ),
            (
                Some(255),
                err("error: the stack is currently locked by 1 lock(s)."),
                "`cargo xtask infra-recover compute dev` shows who holds the lock",
            ),
            (
                Some(2),
                err("error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"),
                "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set",
            ),
            (
                Some(4),
                err("\u{1b}[31merror:\u{1b}[0m creating Lambda Function: AccessDenied\n"),
                "(pulumi exited with status 4): creating Lambda Function: AccessDenied; fix the failing resource",
            ),
            (Some(1), out(FAILED_UP), "(pulumi exited with status 1): aws:lambda:Function (health-check): creating Lambda Function"),
            (
                Some(1),
                out(PROGRAM_FAILED),
                "RuntimeError: no image manifest: set TRADAI_IMAGE_MANIFEST; the Pulumi program in infra/compute failed",
            ),
            (Some(1), err(""), "its output is above; fix the error shown and rerun"),
        ];
        for (code, text, needle) in cases {
            let text = PulumiError::from_failure(ID, "deploy", code, &text, "file:///s").to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn last_error_line_prefers_error_lines_and_skips_logs_and_colour() {
        assert_eq!(last_error_line("warning: x\n\u{1b}[31merror:\u{1b}[0m boom\n  detail\n"), "boom");
        assert_eq!(last_error_line("error: real\nI0821 19:18:00.123456    4242 log.go:1] error: noise\n"), "real");
        assert_eq!(last_error_line("just text\n"), "just text");
        assert_eq!(last_error_line(""), "");
    }
}
