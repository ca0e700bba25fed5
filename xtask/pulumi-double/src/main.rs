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

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

impl Ctx {
    fn new(cwd: &str, stack: &str) -> Result<Ctx, Fail> {
        let cwd = PathBuf::from(cwd);
        let project = read_project(&cwd)?;
        let url = std::env::var("PULUMI_BACKEND_URL")
            .map_err(|_| fail(AUTH, "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"))?;
        let Some(path) = url.strip_prefix("file://") else {
            return Err(fail(
                AUTH,
                format!("the pulumi double supports file:// backends only, not {}", url.split("://").next().unwrap_or("?")),
            ));
        };
        let backend = PathBuf::from(path.split('?').next().unwrap_or(path));
        Ok(Ctx { cwd, project, stack: stack.to_owned(), backend })
    }

    /// The stack's short name (`compute` for project `tradai-compute`).
    fn short(&self) -> &str {
        self.project.rsplit_once('-').map(|(_, s)| s).unwrap_or(&self.project)
    }

    fn id(&self) -> String {
        format!("{ORG}/{}/{}", self.project, self.stack)
    }

    fn stack_urn(&self) -> String {
        format!("urn:pulumi:{}::{}::pulumi:pulumi:Stack::{}-{}", self.stack, self.project, self.project, self.stack)
    }

    fn state_path_of(&self, project: &str) -> PathBuf {
        self.backend.join(".pulumi/stacks").join(project).join(format!("{}.json", self.stack))
    }

    fn lock_dir(&self) -> PathBuf {
        self.backend.join(".pulumi/locks").join(ORG).join(&self.project).join(&self.stack)
    }

    fn is_me(&self, name: &str) -> bool {
        name == self.short() || name == self.project
    }

    fn injected(&self, var: &str, command: &str) -> bool {
        env_list(var).iter().any(|t| {
            let (stack, cmd) = t.split_once(':').unwrap_or((t.as_str(), "up"));
            self.is_me(stack) && cmd == command
        })
    }

    /// The drift injected for this stack: `update`, `delete` or none.
    fn drift(&self) -> Option<String> {
        env_list("PULUMI_DOUBLE_DRIFT").iter().find_map(|t| {
            let (stack, kind) = t.split_once(':').unwrap_or((t.as_str(), "update"));
            self.is_me(stack).then(|| kind.to_owned())
        })
    }

    fn load(&self) -> Result<Value, Fail> {
        let text = fs::read_to_string(self.state_path_of(&self.project))
            .map_err(|_| fail(NOT_FOUND, format!("no stack named '{}' found", self.stack)))?;
        serde_json::from_str(&text).map_err(|e| fail(GENERIC, format!("could not deserialize deployment: {e}")))
    }

    fn save(&self, state: &Value) -> Result<(), Fail> {
        let path = self.state_path_of(&self.project);
        let io = |e: std::io::Error| fail(GENERIC, format!("writing {}: {e}", path.display()));
        fs::create_dir_all(path.parent().unwrap_or(&self.backend)).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(state).unwrap_or_default()).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)
    }

    /// Loads the stack and checks the passphrase against the one it was created with.
    fn load_unlocked_secrets(&self) -> Result<Value, Fail> {
        let state = self.load()?;
        let Some(p) = passphrase()? else {
            return Err(fail(
                CONFIG,
                "getting secrets manager: constructing secrets manager of type \"passphrase\": passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
            ));
        };
        let salt = state["salt"].as_str().unwrap_or_default();
        if state["passphraseCheck"].as_str() != Some(fnv(&format!("{salt}{p}")).as_str()) {
            return Err(fail(CONFIG, "getting secrets manager: constructing secrets manager of type \"passphrase\": incorrect passphrase"));
        }
        Ok(state)
    }

    fn init(&self) -> Result<(), Fail> {
        if self.state_path_of(&self.project).exists() {
            return Err(fail(GENERIC, format!("stack '{}' already exists", self.id())));
        }
        let Some(p) = passphrase()? else {
            return Err(fail(
                CONFIG,
                "could not create secrets manager for new stack: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
            ));
        };
        let salt = fnv(&format!("{}{}", now(), std::process::id()));
        let state = json!({
            "project": self.project, "stack": self.stack, "salt": salt,
            "passphraseCheck": fnv(&format!("{salt}{p}")),
            "resources": [], "outputs": {}, "secretOutputs": [], "updates": 0, "refreshes": 0,
        });
        self.save(&state)?;
        println!("Created stack '{}'", self.stack);
        Ok(())
    }

    fn list(&self) -> Result<(), Fail> {
        let dir = self.backend.join(".pulumi/stacks").join(&self.project);
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            let mut names: Vec<String> =
                rd.flatten().filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".json").map(str::to_owned)).collect();
            names.sort();
            for name in names {
                let state: Value = fs::read_to_string(dir.join(format!("{name}.json")))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                out.push(json!({"name": name, "current": false, "resourceCount": state["resources"].as_array().map_or(0, Vec::len)}));
            }
        }
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        Ok(())
    }

    fn export(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load()?;
        let secret: Vec<&str> = state["secretOutputs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        // Secrets leave the double encrypted, as they leave Pulumi.
        let mut outputs = serde_json::Map::new();
        for (k, v) in state["outputs"].as_object().cloned().unwrap_or_default() {
            let shown = if secret.contains(&k.as_str()) {
                json!({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": format!("v1:{}", fnv(&v.to_string()))})
            } else {
                v
            };
            outputs.insert(k, shown);
        }
        let mut resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        if let Some(root) = resources.first_mut() {
            root["outputs"] = Value::Object(outputs);
        }
        let mut deployment = json!({
            "manifest": {"time": state["lastUpdate"], "magic": "", "version": VERSION},
            "secrets_providers": {"type": "passphrase", "state": {"salt": state["salt"]}},
            "resources": resources,
        });
        if let Some(pending) = state["pendingOperations"].as_array().filter(|a| !a.is_empty()) {
            deployment["pending_operations"] = Value::Array(pending.clone());
        }
        let doc = json!({"version": 3, "deployment": deployment});
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        match &cli.file {
            Some(path) => {
                // Truncate in place: an existing file keeps its permissions.
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|e| fail(GENERIC, format!("could not open file: {e}")))?;
                writeln!(f, "{text}").map_err(|e| fail(GENERIC, format!("could not write file: {e}")))?;
            }
            None => println!("{text}"),
        }
        Ok(())
    }

    fn output(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load_unlocked_secrets()?;
        if self.injected("PULUMI_DOUBLE_FAIL", "output") {
            return Err(fail(GENERIC, "reading stack outputs failed (injected by PULUMI_DOUBLE_FAIL)"));
        }
        let secret: Vec<&str> = state["secretOutputs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut out = serde_json::Map::new();
        for (k, v) in state["outputs"].as_object().cloned().unwrap_or_default() {
            let hide = secret.contains(&k.as_str()) && !cli.show_secrets;
            out.insert(k, if hide { json!("[secret]") } else { v });
        }
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default());
        } else {
            println!("Current stack outputs ({}):", out.len());
            for (k, v) in &out {
                println!("    {k}  {v}");
            }
        }
        Ok(())
    }

    /// The resources the program declares: the stack itself and one per module file, with
    /// the protection its source (or a test control) gives it.
    fn desired(&self) -> Vec<Res> {
        let mut out = vec![Res { urn: self.stack_urn(), protect: false, retain: false }];
        let mut modules: Vec<(String, String)> = fs::read_dir(self.cwd.join("modules"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().strip_suffix(".py")?.to_owned();
                        (!name.starts_with("__")).then(|| (name, fs::read_to_string(e.path()).unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if modules.is_empty() {
            modules.push(("main".to_owned(), String::new()));
        }
        modules.sort();
        let controlled = |var: &str, module: &str| {
            env_list(var).iter().any(|t| t.split_once(':').is_some_and(|(s, m)| self.is_me(s) && (m == module || m == "*")))
        };
        for (m, source) in modules {
            let protect =
                source.contains("protect=True") || source.contains("data_resource_options(") || controlled("PULUMI_DOUBLE_PROTECT", &m);
            let retain = source.contains("retain_on_delete=True") || controlled("PULUMI_DOUBLE_RETAIN", &m);
            out.push(Res { urn: format!("urn:pulumi:{}::{}::tradai:index:Module::{m}", self.stack, self.project), protect, retain });
        }
        out
    }

    /// What running the program needs: every `stack_ref("<x>")` target deployed, and a
    /// valid image manifest where the program reads one. Failures are engine diagnostics.
    fn check_program(&self, previewing: bool) -> Result<Option<Value>, Fail> {
        let prefix = self.project.rsplit_once('-').map(|(p, _)| p).unwrap_or(&self.project).to_owned();
        let mut sources = Vec::new();
        let mut dirs = vec![self.cwd.clone()];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                if p.is_dir() {
                    if !(name.starts_with('.') || name == "tests" || name == "__pycache__") {
                        dirs.push(p);
                    }
                } else if name.ends_with(".py") {
                    sources.push((p.clone(), fs::read_to_string(&p).unwrap_or_default()));
                }
            }
        }
        sources.sort();
        let failed = if previewing { "preview failed" } else { "update failed" };
        for (_, text) in &sources {
            for part in text.split("stack_ref(").skip(1) {
                let lit = part.trim_start();
                let Some(q) = lit.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
                let Some(end) = lit[1..].find(q) else { continue };
                let upstream = format!("{prefix}-{}", &lit[1..1 + end]);
                let state: Value =
                    fs::read_to_string(self.state_path_of(&upstream)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                if state["updates"].as_u64().unwrap_or(0) == 0 {
                    let name = format!("{ORG}/{upstream}/{}", self.stack);
                    let reason = format!("unknown stack \"{name}\"");
                    let message = if previewing { format!("Preview failed: {reason}") } else { reason };
                    return Err(bail(vec![
                        Diag { urn: format!("urn:pulumi:{}::{}::pulumi:pulumi:StackReference::{name}", self.stack, self.project), message },
                        Diag { urn: self.stack_urn(), message: failed.to_owned() },
                    ]));
                }
            }
        }
        let program_failed = |why: String| {
            bail(vec![Diag {
                urn: self.stack_urn(),
                message: format!(
                    "Program failed with an unhandled exception:\nTraceback (most recent call last):\n  File \"{}/modules/image_manifest.py\", line 1, in <module>\nImageManifestError: {why}",
                    self.cwd.display()
                ),
            }])
        };
        let reads_manifest = sources.iter().any(|(_, t)| t.contains("TRADAI_IMAGE_MANIFEST"));
        match std::env::var("TRADAI_IMAGE_MANIFEST") {
            Ok(path) => {
                let text = fs::read_to_string(&path).map_err(|_| program_failed(format!("image manifest {path} does not exist")))?;
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| program_failed(format!("image manifest {path} is not valid JSON ({e})")))?;
                let ok = v["images"].as_object().is_some_and(|m| {
                    m.values().all(|d| {
                        d.as_str()
                            .and_then(|s| s.strip_prefix("sha256:"))
                            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    })
                });
                if !ok {
                    return Err(program_failed(format!("image manifest {path} has no valid \"images\" object")));
                }
                Ok(Some(v["images"].clone()))
            }
            Err(_) if reads_manifest => {
                Err(program_failed("no image manifest: set TRADAI_IMAGE_MANIFEST to the manifest the build tool writes".to_owned()))
            }
            Err(_) => Ok(None),
        }
    }

    /// The steps from the state to the program: (op, resource).
    fn preview_steps(&self, state: &Value) -> Vec<(String, Res)> {
        let current: Vec<String> = state["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["urn"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let desired = self.desired();
        let mut steps: Vec<(String, Res)> =
            desired.iter().map(|r| (if current.contains(&r.urn) { "same" } else { "create" }.to_owned(), r.clone())).collect();
        let urns: Vec<&String> = desired.iter().map(|r| &r.urn).collect();
        steps.extend(
            current
                .iter()
                .filter(|u| !urns.contains(u))
                .map(|u| ("delete".to_owned(), Res { urn: u.clone(), protect: false, retain: false })),
        );
        for t in env_list("PULUMI_DOUBLE_PREVIEW_OPS") {
            let (stack, op) = match t.split_once(':') {
                Some((s, op)) => (Some(s), op),
                None => (None, t.as_str()),
            };
            if stack.is_none_or(|s| self.is_me(s))
                && let Some(step) = steps.get_mut(1)
            {
                step.0 = op.to_owned();
            }
        }
        steps
    }

    /// A step as `display.PreviewStep` serialises it.
    fn step_json(op: &str, urn: &str) -> Value {
        let mut step = json!({"op": op, "urn": urn, "detailedDiff": null});
        match op {
            "update" => {
                step["diffReasons"] = json!(["tags"]);
                step["detailedDiff"] = json!({"tags.Owner": {"kind": "update", "inputDiff": true}});
            }
            "replace" => {
                step["diffReasons"] = json!(["name"]);
                step["replaceReasons"] = json!(["name"]);
                step["detailedDiff"] = json!({"name": {"kind": "update-replace", "inputDiff": true}});
            }
            _ => {}
        }
        step
    }

    fn digest(steps: &[Value], summary: BTreeMap<String, u64>, diags: &[Diag]) -> Value {
        let mut doc = json!({
            "config": {"aws:region": "eu-central-1"},
            "steps": steps,
            "duration": 1_000_000,
        });
        if !summary.is_empty() {
            doc["changeSummary"] = json!(summary);
        }
        if !diags.is_empty() {
            doc["diagnostics"] = Value::Array(
                diags.iter().map(|d| json!({"urn": d.urn, "message": format!("error: {}\n", d.message), "severity": "error"})).collect(),
            );
        }
        doc
    }

    /// Prints a preview's result: the digest (also on failure, diagnostics inside), or
    /// the display. A failure comes back with its diagnostics marked printed.
    fn show_preview(&self, cli: &Cli, steps: &[Value], summary: BTreeMap<String, u64>, result: Result<(), Fail>) -> Result<(), Fail> {
        if cli.json {
            let diags: &[Diag] = match &result {
                Err(f) => &f.diags,
                Ok(()) => &[],
            };
            println!("{}", serde_json::to_string_pretty(&Self::digest(steps, summary, diags)).unwrap_or_default());
            return result.map_err(|f| Fail { printed: true, ..f });
        }
        println!("Previewing update ({}):", self.stack);
        for s in steps {
            println!("    {:<8} {}", s["op"].as_str().unwrap_or(""), s["urn"].as_str().unwrap_or(""));
            if cli.diff
                && let Some(d) = s["detailedDiff"].as_object()
            {
                for k in d.keys() {
                    println!("        ~ {k}");
                }
            }
        }
        result
    }

    fn preview(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load_unlocked_secrets()?;
        catch_signals(true);
        let checked = self.check_program(true).map(|_| ()).and_then(|()| {
            if self.injected("PULUMI_DOUBLE_FAIL", "preview") {
                return Err(bail(vec![
                    Diag {
                        urn: format!("urn:pulumi:{}::{}::aws:s3/bucketV2:BucketV2::configs", self.stack, self.project),
                        message: format!("Preview failed: creating S3 Bucket (tradai-configs-{}): InvalidBucketName: The specified bucket is not valid (injected by PULUMI_DOUBLE_FAIL)", self.stack),
                    },
                    Diag { urn: self.stack_urn(), message: "preview failed".to_owned() },
                ]));
            }
            Ok(())
        });
        if let Err(f) = checked {
            return self.show_preview(cli, &[], BTreeMap::new(), Err(f));
        }
        let steps = self.preview_steps(&state);
        let changed = steps.iter().any(|(op, _)| op != "same");
        let mut summary: BTreeMap<String, u64> = BTreeMap::new();
        for (op, _) in &steps {
            *summary.entry(op.clone()).or_default() += 1;
        }
        let json_steps: Vec<Value> = steps.iter().map(|(op, r)| Self::step_json(op, &r.urn)).collect();
        self.show_preview(cli, &json_steps, summary, Ok(()))?;
        if cli.expect_no_changes && changed {
            return Err(fail(CHANGES, "no changes were expected for preview but changes were proposed"));
        }
        Ok(())
    }

    fn require_yes(&self, cli: &Cli) -> Result<(), Fail> {
        if cli.yes || cli.skip_preview {
            Ok(())
        } else {
            Err(fail(CONFIG, "--yes or --skip-preview must be passed in to proceed when running in non-interactive mode"))
        }
    }

    /// Takes the stack's lock, or fails with Pulumi's message naming the holder.
    fn lock(&self) -> Result<PathBuf, Fail> {
        let dir = self.lock_dir();
        let held: Vec<PathBuf> = fs::read_dir(&dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        if !held.is_empty() {
            let mut msg = format!(
                "the stack is currently locked by {} lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
                held.len()
            );
            for p in &held {
                let v: Value = fs::read_to_string(p).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                msg.push_str(&format!(
                    "\n  file://{}: created by {}@{} (pid {}) at {}",
                    p.display(),
                    v["username"].as_str().unwrap_or("?"),
                    v["hostname"].as_str().unwrap_or("?"),
                    v["pid"],
                    v["timestamp"].as_str().unwrap_or("?")
                ));
            }
            return Err(fail(GENERIC, msg));
        }
        fs::create_dir_all(&dir).map_err(|e| fail(GENERIC, format!("creating lock: {e}")))?;
        let path = dir.join(format!("{}.json", uuid()));
        let who = json!({
            "pid": std::process::id(),
            "username": std::env::var("USER").unwrap_or_else(|_| "user".into()),
            "hostname": fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into()),
            "timestamp": rfc3339_now(),
        });
        fs::write(&path, who.to_string()).map_err(|e| fail(GENERIC, format!("creating lock: {e}")))?;
        Ok(path)
    }

    fn up(&self, cli: &Cli) -> Result<(), Fail> {
        self.require_yes(cli)?;
        let mut state = self.load_unlocked_secrets()?;
        // (Pulumi listens once the update starts, just after locking; the double listens
        // first, so that a test's signal can never find it between the two.)
        catch_signals(false);
        let lock = self.lock()?;
        let result = self.apply_update(&mut state, cli);
        if self.injected("PULUMI_DOUBLE_CRASH", "up") {
            // A killed process: the lock stays behind.
            return Err(fail(GENERIC, "update canceled: the pulumi process was interrupted (injected by PULUMI_DOUBLE_CRASH)"));
        }
        let _ = fs::remove_file(lock);
        result
    }

    fn apply_update(&self, state: &mut Value, cli: &Cli) -> Result<(), Fail> {
        println!("Updating ({}):", self.stack);
        let images = self.check_program(false)?;
        if self.injected("PULUMI_DOUBLE_FAIL", "up") {
            println!(" +  aws:lambda/function:Function health-check creating (0s) error: 1 error occurred:");
            return Err(bail(vec![
                Diag {
                    urn: format!("urn:pulumi:{}::{}::aws:lambda/function:Function::health-check", self.stack, self.project),
                    message: format!(
                        "creating Lambda Function (tradai-health-check-{}): operation error Lambda: CreateFunction, https response error StatusCode: 400, InvalidParameterValueException: Source image does not exist (injected by PULUMI_DOUBLE_FAIL)",
                        self.stack
                    ),
                },
                Diag { urn: self.stack_urn(), message: "update failed".to_owned() },
            ]));
        }
        let steps = self.preview_steps(state);
        let delay: u64 = std::env::var("PULUMI_DOUBLE_UP_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        for (op, res) in &steps {
            if signals() >= 1 {
                break;
            }
            if op == "same" {
                continue;
            }
            let verb = if op == "delete" { "deleting" } else { "creating" };
            println!(" {}  {} {verb}", if op == "delete" { "-" } else { "+" }, res.urn);
            let _ = std::io::stdout().flush();
            work(delay);
            if signals() >= 2 {
                // Terminated mid-operation: Pulumi records it as pending.
                state["pendingOperations"] = json!([{"resource": {"urn": res.urn}, "type": verb}]);
                break;
            }
            resources.retain(|r| r["urn"].as_str() != Some(&res.urn));
            if op != "delete" {
                let mut r = json!({"urn": res.urn, "custom": !res.urn.contains("pulumi:pulumi:Stack")});
                if res.protect {
                    r["protect"] = json!(true);
                }
                if res.retain {
                    r["retainOnDelete"] = json!(true);
                }
                resources.push(r);
            }
            if cli.diff && op == "update" {
                println!("      ~ tags.Owner");
            }
            println!(" {}  {} {}", if op == "delete" { "-" } else { "+" }, res.urn, if op == "delete" { "deleted" } else { "created" });
        }
        // Keep the stack resource first, as Pulumi's state does.
        resources.sort_by_key(|r| !r["urn"].as_str().unwrap_or("").contains("pulumi:pulumi:Stack"));
        state["resources"] = Value::Array(resources);
        if signals() >= 1 {
            self.save(state)?;
            return Err(fail(CANCELLED, "update cancelled"));
        }
        let desired = self.desired();
        state["outputs"] = json!({
            "stack_name": format!("{}-{}", self.project, self.stack),
            "resource_count": desired.len(),
            "connection_secret": format!("double-secret-{}-{}", self.project, self.stack),
        });
        state["secretOutputs"] = json!(["connection_secret"]);
        state["updates"] = json!(state["updates"].as_u64().unwrap_or(0) + 1);
        state["lastUpdate"] = json!(now().to_string());
        state["pendingOperations"] = json!([]);
        if let Some(images) = images {
            state["images"] = images;
        }
        self.save(state)?;
        println!("Resources:\n    {} unchanged or updated\n\nDuration: 0s", desired.len());
        Ok(())
    }

    fn destroy(&self, cli: &Cli) -> Result<(), Fail> {
        self.require_yes(cli)?;
        let mut state = self.load_unlocked_secrets()?;
        let resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        let protected = resources.iter().filter(|r| r["protect"].as_bool() == Some(true)).count();
        if cli.exclude_protected && protected > 0 && protected == resources.len() {
            println!(
                "There were no unprotected resources to destroy. There are still {protected} protected resources associated with this stack."
            );
            return Ok(());
        }
        catch_signals(false);
        let lock = self.lock()?;
        let result = (|| {
            println!("Destroying ({}):", self.stack);
            if self.injected("PULUMI_DOUBLE_FAIL", "destroy") {
                return Err(bail(vec![Diag {
                    urn: format!("urn:pulumi:{}::{}::aws:ec2/securityGroup:SecurityGroup::alb", self.stack, self.project),
                    message:
                        "deleting EC2 Security Group: DependencyViolation: resource has a dependent object (injected by PULUMI_DOUBLE_FAIL)"
                            .to_owned(),
                }]));
            }
            if !cli.exclude_protected
                && let Some(r) = resources.iter().find(|r| r["protect"].as_bool() == Some(true))
            {
                let urn = r["urn"].as_str().unwrap_or("");
                return Err(bail(vec![Diag {
                    urn: urn.to_owned(),
                    message: format!(
                        "resource \"{urn}\" cannot be deleted\nbecause it is protected. To unprotect the resource, either remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, or use the command:\n`pulumi state unprotect '{urn}'`"
                    ),
                }]));
            }
            let mut kept = Vec::new();
            let mut deleted = 0;
            for r in &resources {
                let urn = r["urn"].as_str().unwrap_or("");
                if r["protect"].as_bool() == Some(true) {
                    kept.push(r.clone());
                } else if r["retainOnDelete"].as_bool() == Some(true) {
                    println!(" -  {urn} retained");
                } else {
                    println!(" -  {urn} deleted");
                    deleted += 1;
                }
            }
            state["resources"] = Value::Array(kept);
            state["outputs"] = json!({});
            state["updates"] = json!(0);
            self.save(&state)?;
            println!("Resources:\n    - {deleted} deleted");
            if protected > 0 {
                println!(
                    "All unprotected resources were destroyed. There are still {protected} protected resources associated with this stack."
                );
            }
            Ok(())
        })();
        let _ = fs::remove_file(lock);
        result
    }

    fn refresh(&self, cli: &Cli) -> Result<(), Fail> {
        if !cli.preview_only {
            self.require_yes(cli)?;
        }
        let mut state = self.load_unlocked_secrets()?;
        let drift = self.drift();
        let urns: Vec<String> = state["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["urn"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // Each resource is read; the first custom one differs when drift is injected.
        let mut steps: Vec<Value> = Vec::new();
        let mut summary: BTreeMap<String, u64> = BTreeMap::new();
        let mut drifted: Option<(String, String)> = None;
        for (i, urn) in urns.iter().enumerate() {
            let result = match (&drift, i) {
                (Some(kind), 1) if kind == "delete" => "delete",
                (Some(_), 1) => "update",
                _ => "same",
            };
            *summary.entry(result.to_owned()).or_default() += 1;
            if result == "same" {
                steps.push(json!({"op": "refresh", "urn": urn, "detailedDiff": null}));
            } else {
                drifted = Some((result.to_owned(), urn.clone()));
                steps.push(Self::step_json(result, urn));
            }
        }
        if cli.preview_only {
            // A preview-only refresh takes no lock on a DIY backend.
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&Self::digest(&steps, summary, &[])).unwrap_or_default());
            } else {
                println!("Previewing refresh ({}):", self.stack);
                for s in &steps {
                    println!("    {:<8} {}", s["op"].as_str().unwrap_or(""), s["urn"].as_str().unwrap_or(""));
                }
            }
            if cli.expect_no_changes && drifted.is_some() {
                return Err(fail(CHANGES, "no changes were expected for refresh but changes were proposed"));
            }
            return Ok(());
        }
        let lock = self.lock()?;
        if let Some((op, urn)) = &drifted
            && op == "delete"
            && let Some(resources) = state["resources"].as_array_mut()
        {
            resources.retain(|r| r["urn"].as_str() != Some(urn));
        }
        state["refreshes"] = json!(state["refreshes"].as_u64().unwrap_or(0) + 1);
        let saved = self.save(&state);
        let _ = fs::remove_file(lock);
        saved?;
        println!("Refreshing ({}):\nResources:\n    {} unchanged", self.stack, urns.len() - usize::from(drifted.is_some()));
        Ok(())
    }

    fn cancel(&self) -> Result<(), Fail> {
        // Under --non-interactive, Pulumi asks for no confirmation (cancel.go).
        self.load()?;
        let dir = self.lock_dir();
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            fs::remove_file(e.path()).map_err(|err| fail(GENERIC, format!("removing lock: {err}")))?;
        }
        println!("The currently running update for '{}' has been canceled!", self.stack);
        Ok(())
    }
}
