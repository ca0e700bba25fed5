//! Pulumi's failures, told apart and turned into one-line errors that say how to fix them.
//!
//! The CLI's exit codes mean something only from v3.226.1 (2 configuration, 3
//! authentication, 4 resource, 5 policy, 6 stack not found, 7 changes where none were
//! expected, 8 canceled, 9 timeout); older versions exit 255 for nearly everything. So
//! both are read: the code when it is specific, else the known messages on stderr.

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
    Resource,
    Policy,
    /// `--expect-no-changes` and there were changes.
    Changes,
    Canceled,
    Timeout,
    Other,
}

/// Reads a failed run's exit code and stderr.
pub fn classify(code: Option<i32>, stderr: &str) -> Category {
    let text = stderr.to_ascii_lowercase();
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
    if text.contains("no changes were expected") {
        return Category::Changes;
    }
    if text.contains("pulumi_access_token must be set") || text.contains("not logged in") {
        return Category::Auth;
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
    #[error("the `pulumi` executable was not found on PATH; install the Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/) or put it on PATH, then retry")]
    NotInstalled,
    #[error("could not start `pulumi` to {purpose}: {detail}")]
    Spawn { purpose: String, detail: String },
    #[error("stack {id} does not exist in the state backend {backend}; create and deploy it with `cargo xtask infra-up {} {}` (or `pulumi stack init {}` in infra/{})", .id.stack, .id.env, .id.env, .id.stack)]
    StackNotFound { id: StackId, backend: String },
    #[error("stack {id} is locked by another update{holder}; if no update is running (a crashed or interrupted one left the lock), run `cargo xtask infra-recover {} {}`", .id.stack, .id.env)]
    Locked { id: StackId, holder: String },
    #[error("pulumi needs the passphrase of {id}: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set; set it in infra/.env or the environment")]
    PassphraseMissing { id: StackId },
    #[error("pulumi cannot decrypt {id}: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not the passphrase the stack was created with; set the right one in infra/.env or the environment")]
    PassphraseWrong { id: StackId },
    #[error("pulumi cannot reach or is not allowed to use the state backend for {id} ({detail}); check S3_PULUMI_BACKEND_URL and the AWS credentials (AWS_PROFILE) in infra/.env")]
    Auth { id: StackId, detail: String },
    #[error("failed to {purpose} for {id} (pulumi exited with {status}): {detail}; {fix}")]
    Failed { purpose: String, id: StackId, status: String, category: Category, detail: String, fix: String },
    #[error("pulumi printed something other than the JSON expected from `{command}` for {id} ({problem}); rerun with -vv to see the command")]
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
            PulumiError::Failed { category, .. } => *category,
            _ => return None,
        })
    }

    /// Builds the error for a run that exited non-zero. `stderr` is already redacted; it
    /// is empty when the output went to the terminal.
    pub fn from_failure(id: StackId, purpose: &str, code: Option<i32>, stderr: &str, backend: &str) -> PulumiError {
        let category = classify(code, stderr);
        let detail = last_error_line(stderr);
        match category {
            Category::StackNotFound => PulumiError::StackNotFound { id, backend: backend.to_owned() },
            Category::Locked => PulumiError::Locked { id, holder: String::new() },
            Category::PassphraseMissing => PulumiError::PassphraseMissing { id },
            Category::PassphraseWrong => PulumiError::PassphraseWrong { id },
            Category::Auth => PulumiError::Auth { id, detail: if detail.is_empty() { "exit code 3".into() } else { detail } },
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

fn fix_for(category: Category, id: StackId) -> String {
    let (stack, env) = (id.stack, id.env);
    match category {
        Category::Config => format!("check the stack's configuration in infra/{stack}/Pulumi.{env}.yaml and the flags"),
        Category::Resource => format!("fix the failing resource, then rerun; `cargo xtask infra-recover {stack} {env}` shows any drift the failure left"),
        Category::Policy => "a policy pack blocked the change; change the program or the policy".to_owned(),
        Category::Changes => format!("the stack has drifted from the program; review with `cargo xtask infra-preview {stack} {env}`"),
        Category::Canceled => "the run was canceled; rerun it".to_owned(),
        Category::Timeout => "the run timed out; rerun it, and check the resources it was waiting for".to_owned(),
        _ => format!(
            "if the output says the stack is locked and no other update is running, run `cargo xtask infra-recover {stack} {env}`; otherwise fix the error shown and rerun"
        ),
    }
}

/// The most useful line of Pulumi's stderr: the last `error:` line, else the last line.
pub fn last_error_line(stderr: &str) -> String {
    let clean = strip_ansi(stderr);
    let lines: Vec<&str> = clean.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines.iter().rev().find(|l| l.starts_with("error:")).or(lines.last()).copied().unwrap_or("");
    let line = line.strip_prefix("error:").unwrap_or(line).trim();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
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

    #[test]
    fn messages_classify_on_old_clis_that_exit_255() {
        let cases = [
            ("error: no stack named 'dev' found", Category::StackNotFound),
            (
                "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n  file:///x/.pulumi/locks/organization/tradai-compute/dev/1.json: created by me@host (pid 1) at 2026-01-01T00:00:00Z",
                Category::Locked,
            ),
            ("error: [409] Conflict: Another update is currently in progress.", Category::Locked),
            ("error: constructing secrets manager of type \"passphrase\": passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables", Category::PassphraseMissing),
            ("error: incorrect passphrase", Category::PassphraseWrong),
            ("error: no changes were expected but changes were proposed", Category::Changes),
            ("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions", Category::Auth),
            ("error: update failed", Category::Other),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(Some(255), stderr), want, "{stderr}");
        }
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
            assert_eq!(classify(Some(code), ""), want, "{code}");
        }
    }

    #[test]
    fn errors_are_one_line_with_the_fix() {
        let cases = [
            (Some(6), "", "stack compute/dev does not exist in the state backend file:///s; create and deploy it with `cargo xtask infra-up compute dev`"),
            (Some(255), "error: the stack is currently locked by 1 lock(s).", "run `cargo xtask infra-recover compute dev`"),
            (Some(2), "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables", "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not set"),
            (Some(4), "\u{1b}[31merror:\u{1b}[0m creating Lambda Function: AccessDenied\n", "(pulumi exited with status 4): creating Lambda Function: AccessDenied; fix the failing resource"),
            (Some(1), "", "its output is above; if the output says the stack is locked"),
        ];
        for (code, stderr, needle) in cases {
            let text = PulumiError::from_failure(ID, "deploy", code, stderr, "file:///s").to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn last_error_line_prefers_error_lines_and_strips_colour() {
        assert_eq!(last_error_line("warning: x\n\u{1b}[31merror:\u{1b}[0m boom\n  detail\n"), "boom");
        assert_eq!(last_error_line("just text\n"), "just text");
        assert_eq!(last_error_line(""), "");
    }
}
