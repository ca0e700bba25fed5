//! A test double of the `pulumi` executable, for the tests of `cargo xtask infra-*` (the
//! real CLI cannot be installed on the machines that run them).
//!
//! It implements the part of Pulumi's CLI contract the wrapper relies on: `version`,
//! `stack init|ls|export|output`, `preview`, `up`, `destroy`, `refresh` (`--preview-only`
//! too) and `cancel`. Each behaviour below was checked against Pulumi's source at v3.259.0
//! (github.com/pulumi/pulumi, the files named):
//!
//! - **Where messages go.** Errors of the CLI itself (no stack, locked, passphrase, flags,
//!   `--expect-no-changes`) go to stderr as `error: ...` (`cmdutil.Diag()`). Errors of the
//!   deployment (the program, a resource, a `StackReference` to a missing stack) are engine
//!   diagnostics: on stdout, in the display's `Diagnostics:` section, or in the `diagnostics`
//!   of `preview --json` (`backend/display/json.go`, `ShowPreviewDigest`); the command then
//!   bails with nothing on stderr (`resource/deploy/deployment_executor.go`).
//! - **Exit codes** (`cmd/exit_codes.go`, `ExitCodeFor`): 1 for a bailed deployment error
//!   and anything unclassified, 2 configuration, 6 stack not found, 7 changes with
//!   `--expect-no-changes`, 8 cancelled. 4 (resource) is reserved and not produced. With
//!   `PULUMI_DOUBLE_LEGACY_EXIT=1` every failure exits 255, as versions before v3.226.0 do.
//! - **JSON shapes.** `preview --json` and `refresh --preview-only --json` print a
//!   `PreviewDigest` (`display/json.go`: `config`, `steps` of `op`/`urn`/`detailedDiff`/
//!   `diffReasons`, `diagnostics`, `duration`, `changeSummary`), also when the run fails. A
//!   preview-only refresh reports each resource as a `refresh` step, replaced by `update`
//!   (with its `detailedDiff`) or `delete` when the cloud differs; its `changeSummary` counts
//!   `same`, `update` and `delete` (`RefreshStep.ResultOp` in `resource/deploy/step.go`).
//! - **Locks** (`backend/diy/lock.go`): `up`, `destroy` and `refresh` take
//!   `.pulumi/locks/organization/<project>/<stack>/<uuid>.json` holding `pid`, `username`,
//!   `hostname` and an RFC 3339 `timestamp`; `preview` and `refresh --preview-only` take
//!   none (`backend/diy/backend.go`). `cancel` deletes every lock file of the stack and
//!   needs no `--yes` under `--non-interactive` (`cmd/pulumi/cancel/cancel.go`).
//! - **Signals** (`backend/cancellation_scope.go`): the first SIGINT or SIGTERM cancels
//!   (the resource operation in flight finishes, the state is saved, the lock released,
//!   `error: update cancelled`, exit 8); a second one terminates at once (the operation in
//!   flight is left as a pending operation in the state; the lock is still released).
//! - **Protection** (`resource/deploy/step.go`, `cmd/pulumi/operations/destroy.go`):
//!   `destroy` fails on a `protect`ed resource unless `--exclude-protected`, which keeps
//!   it; a `retainOnDelete` resource leaves the state but not the cloud. `stack export`
//!   carries both flags (`apitype.ResourceV3`).
//! - **Debug flags**: `--diff` (preview, up, destroy), `--logtostderr` and `-v=N`
//!   (global flags, `cmd/pulumi/pulumi.go`; logs in glog's line format on stderr).
//!
//! It runs no program: the resources of a stack are its `modules/*.py` files; a module
//! whose source says `protect=True` or calls `data_resource_options(` is protected, one
//! that says `retain_on_delete=True` is retained on delete.
//!
//! It is stricter than Pulumi where the wrapper promises something: every call must pass
//! `--non-interactive`, `--stack` and `--cwd`, and a passphrase in argv is refused.
//!
//! Test controls (environment):
//! - `PULUMI_DOUBLE_LOG=<file>`: append one JSON line per invocation: argv, the names (never
//!   the values) of the environment variables, the working directory.
//! - `PULUMI_DOUBLE_FAIL=<stack>[:<command>],...`: that command (default `up`; also
//!   `preview`, `destroy`, `output`) of that stack fails with a resource error.
//! - `PULUMI_DOUBLE_PREVIEW_OPS=[<stack>:]<op>,...`: previews of that stack (all stacks
//!   without a prefix) also show a step with that op (`replace`, `delete`, `update`).
//! - `PULUMI_DOUBLE_DRIFT=<stack>[:update|delete],...`: the cloud differs from the state
//!   (a refresh finds one resource changed, or deleted).
//! - `PULUMI_DOUBLE_CRASH=<stack>`: `up` dies mid-update and leaves its lock behind.
//! - `PULUMI_DOUBLE_PROTECT=<stack>:<module>,...` and `PULUMI_DOUBLE_RETAIN=...`: that
//!   module's resource is protected, or retained on delete (`<module>` may be `*`).
//! - `PULUMI_DOUBLE_UP_DELAY_MS=<ms>`: `up` spends that long on each resource step, so a
//!   test can signal it mid-update.
//! - `PULUMI_DOUBLE_LEGACY_EXIT=1`: every failure exits 255.
//!
//! Layout: this file holds the command line, the failures and what every command shares;
//! `state.rs` the state, the lock and the commands that only read or manage them,
//! `program.rs` what a program declares and `preview`, `update.rs` `up`, `destroy` and
//! `refresh`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod program;
mod state;
mod update;

const VERSION: &str = "v3.259.0-double";
const ORG: &str = "organization";

/// An engine diagnostic: a message about one resource (or the whole run, on the stack).
struct Diag {
    urn: String,
    message: String,
}

/// A failure: Pulumi's exit code and its message. A deployment failure carries engine
/// diagnostics instead, shown on stdout, and prints nothing on stderr (Pulumi "bails").
struct Fail {
    code: u8,
    message: String,
    diags: Vec<Diag>,
    /// The diagnostics are already printed (inside a JSON digest).
    printed: bool,
}

fn fail(code: u8, message: impl Into<String>) -> Fail {
    Fail { code, message: message.into(), diags: Vec::new(), printed: false }
}

/// A deployment failure: diagnostics on stdout, exit 1, nothing on stderr.
fn bail(diags: Vec<Diag>) -> Fail {
    Fail { code: GENERIC, message: String::new(), diags, printed: false }
}

// Pulumi's exit codes (cmdutil/exit.go, as ExitCodeFor produces them).
const GENERIC: u8 = 1;
const CONFIG: u8 = 2;
const AUTH: u8 = 3;
const NOT_FOUND: u8 = 6;
const CHANGES: u8 = 7;
const CANCELLED: u8 = 8;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    log_invocation(&args);
    let result = run(&args);
    let legacy = std::env::var("PULUMI_DOUBLE_LEGACY_EXIT").is_ok_and(|v| v == "1");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.diags.is_empty() && !f.printed {
                print_diagnostics(&f.diags);
            }
            if !f.message.is_empty() {
                eprintln!("error: {}", f.message);
            }
            ExitCode::from(if legacy { 255 } else { f.code })
        }
    }
}

fn log_invocation(args: &[String]) {
    let Some(path) = std::env::var_os("PULUMI_DOUBLE_LOG") else { return };
    let mut names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
    names.sort();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let line = json!({ "argv": args, "env": names, "cwd": cwd });
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// `  <type> (<name>):` for a URN, as Pulumi's display heads a resource's diagnostics.
fn resource_header(urn: &str) -> String {
    let parts: Vec<&str> = urn.split("::").collect();
    match parts.as_slice() {
        [.., ty, name] if parts.len() >= 4 => format!("{ty} ({name})"),
        _ => urn.to_owned(),
    }
}

/// The display's `Diagnostics:` section, on stdout.
fn print_diagnostics(diags: &[Diag]) {
    println!("Diagnostics:");
    let mut order: Vec<&str> = Vec::new();
    for d in diags {
        if !order.contains(&d.urn.as_str()) {
            order.push(&d.urn);
        }
    }
    for urn in order {
        println!("  {}:", resource_header(urn));
        for d in diags.iter().filter(|d| d.urn == urn) {
            let mut lines = d.message.lines();
            println!("    error: {}", lines.next().unwrap_or(""));
            for l in lines {
                println!("    {l}");
            }
        }
        println!();
    }
}

/// The parsed command line.
#[derive(Default)]
struct Cli {
    words: Vec<String>,
    non_interactive: bool,
    cwd: Option<String>,
    stack: Option<String>,
    json: bool,
    yes: bool,
    skip_preview: bool,
    preview_only: bool,
    show_secrets: bool,
    expect_no_changes: bool,
    diff: bool,
    exclude_protected: bool,
    log_to_stderr: bool,
    verbose: u32,
    file: Option<String>,
}

fn parse(args: &[String]) -> Result<Cli, Fail> {
    let mut cli = Cli::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, Fail> {
            inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| fail(CONFIG, format!("flag needs an argument: {name}")))
        };
        match flag {
            "--non-interactive" => cli.non_interactive = true,
            "--cwd" | "-C" => cli.cwd = Some(value("--cwd")?),
            "--stack" | "-s" => cli.stack = Some(value("--stack")?),
            "--color" => {
                value("--color")?;
            }
            "--file" => cli.file = Some(value("--file")?),
            "--json" | "-j" => cli.json = true,
            "--yes" | "-y" => cli.yes = true,
            "--skip-preview" | "-f" => cli.skip_preview = true,
            "--preview-only" => cli.preview_only = true,
            "--show-secrets" => cli.show_secrets = true,
            "--expect-no-changes" => cli.expect_no_changes = true,
            "--diff" => cli.diff = true,
            "--exclude-protected" => cli.exclude_protected = true,
            "--logtostderr" => cli.log_to_stderr = true,
            "-v" | "--verbose" => {
                let v = value("--verbose")?;
                cli.verbose = v.parse().map_err(|_| fail(CONFIG, format!("invalid argument \"{v}\" for \"-v, --verbose\" flag")))?;
            }
            f if f.starts_with('-') => return Err(fail(CONFIG, format!("unknown flag: {f}"))),
            w => cli.words.push(w.to_owned()),
        }
    }
    Ok(cli)
}

fn passphrase() -> Result<Option<String>, Fail> {
    if let Ok(p) = std::env::var("PULUMI_CONFIG_PASSPHRASE") {
        return Ok(Some(p));
    }
    if let Ok(path) = std::env::var("PULUMI_CONFIG_PASSPHRASE_FILE") {
        let text = fs::read_to_string(&path).map_err(|e| fail(CONFIG, format!("unable to read PULUMI_CONFIG_PASSPHRASE_FILE: {e}")))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(None)
}

fn run(args: &[String]) -> Result<(), Fail> {
    // The wrapper's promise: no secret on a command line.
    if let Some(p) = passphrase()?.filter(|p| !p.is_empty())
        && args.iter().any(|a| a.contains(&p))
    {
        return Err(fail(CONFIG, "the pulumi double refuses a command line that contains the passphrase"));
    }
    let cli = parse(args)?;
    let words: Vec<&str> = cli.words.iter().map(String::as_str).collect();
    if words.first() == Some(&"version") {
        println!("{VERSION}");
        return Ok(());
    }
    // The wrapper's promise: non-interactive, explicit stack and working directory.
    if !cli.non_interactive {
        return Err(fail(CONFIG, "the pulumi double requires --non-interactive (cargo xtask always passes it)"));
    }
    let Some(cwd) = cli.cwd.clone() else { return Err(fail(CONFIG, "the pulumi double requires --cwd (cargo xtask always passes it)")) };
    let stack_name = match (&cli.stack, words.as_slice()) {
        (Some(s), _) => s.clone(),
        (None, ["stack", "init", name]) => (*name).to_owned(),
        _ => return Err(fail(NOT_FOUND, "no stack selected; please use `pulumi stack select` or `pulumi stack init` to choose one")),
    };
    if cli.log_to_stderr && cli.verbose > 0 {
        glog(&format!("pulumi double {VERSION}: {} (verbosity {})", words.join(" "), cli.verbose));
    }
    let ctx = Ctx::new(&cwd, &stack_name)?;
    match words.as_slice() {
        ["stack", "init", ..] => ctx.init(),
        ["stack", "ls"] => ctx.list(),
        ["stack", "export"] => ctx.export(&cli),
        ["stack", "output"] => ctx.output(&cli),
        ["preview"] => ctx.preview(&cli),
        ["up"] | ["update"] => ctx.up(&cli),
        ["destroy"] => ctx.destroy(&cli),
        ["refresh"] => ctx.refresh(&cli),
        ["cancel"] | ["cancel", _] => ctx.cancel(),
        _ => Err(fail(CONFIG, format!("unknown command {:?} for the pulumi double", words.join(" ")))),
    }
}

/// One log line in glog's format (`I0821 19:18:00.000000    4242 double.go:1] ...`), as
/// Pulumi writes its logs with `--logtostderr`.
fn glog(message: &str) {
    let (date, time) = civil(now());
    eprintln!("I{}{} {}.000000 {:>7} double.go:1] {message}", &date[5..7], &date[8..10], time, std::process::id());
}

/// One stack of one project on the file backend.
struct Ctx {
    cwd: PathBuf,
    project: String,
    stack: String,
    backend: PathBuf,
}

fn read_project(cwd: &Path) -> Result<String, Fail> {
    let text = fs::read_to_string(cwd.join("Pulumi.yaml")).map_err(|_| {
        fail(
            CONFIG,
            format!(
                "no Pulumi.yaml project file found (searching upwards from {}). If you have not created a project yet, use `pulumi new` to do so: no project file found",
                cwd.display()
            ),
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("name:").map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned()))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(CONFIG, "project is missing a 'name' attribute"))
}

fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of a Unix time, UTC (Howard Hinnant's civil-from-days).
fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60))
}

/// Now as Go's JSON encodes a UTC `time.Time`: RFC 3339 with nanoseconds.
fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (date, time) = civil(d.as_secs());
    format!("{date}T{time}.{:09}Z", d.subsec_nanos())
}

/// A random-looking UUID (v4 layout) for a lock file's name, as the DIY backend's lockID.
fn uuid() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let a = fnv(&seed);
    let b = fnv(&format!("{seed}b"));
    format!("{}-{}-4{}-a{}-{}", &a[..8], &a[8..12], &a[13..16], &b[..3], &b[4..16])
}

// Signals: the first cancels, the second terminates (cancellation_scope.go).
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Catches SIGINT and SIGTERM for the rest of the run, printing what Pulumi prints.
fn catch_signals(is_preview: bool) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let n = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
            let term = signal == signal_hook::consts::SIGTERM;
            let mut out = std::io::stdout().lock();
            if n == 1 {
                let mut message = if term {
                    "SIGTERM received; cancelling. If you would like to terminate immediately, send SIGTERM again.\n".to_owned()
                } else {
                    "^C received; cancelling. If you would like to terminate immediately, press ^C again.\n".to_owned()
                };
                if !is_preview {
                    message.push_str("Note that terminating immediately may lead to orphaned resources and other inconsistencies.\n");
                }
                let _ = write!(out, "{message}");
            } else {
                let _ = writeln!(out, "{} received; terminating", if term { "SIGTERM" } else { "^C" });
            }
            let _ = out.flush();
        }
    });
}

fn signals() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}

/// Waits `ms`, returning early when a second signal asks to terminate.
fn work(ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end && signals() < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A resource the program declares: its URN and the options the double reads.
#[derive(Clone)]
struct Res {
    urn: String,
    protect: bool,
    retain: bool,
}
