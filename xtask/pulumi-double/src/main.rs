//! A test double of the `pulumi` executable, for the tests of `cargo xtask infra-*` (the
//! real CLI cannot be installed on the machines that run them).
//!
//! It implements the part of Pulumi's documented CLI contract the wrapper relies on:
//! `version`, `stack init|ls|export|output`, `preview`, `up`, `destroy`, `refresh`
//! (`--preview-only` too) and `cancel`, the `--json` outputs (`PreviewDigest`, stack
//! outputs with secrets masked as `[secret]`), the exit codes of Pulumi v3.226.1+ (or 255
//! for every failure, as older versions do, with `PULUMI_DOUBLE_LEGACY_EXIT=1`), Pulumi's
//! own error messages, a per-stack state and lock on a `file://` backend in Pulumi's DIY
//! layout, and `StackReference`s that fail when the referenced stack was never deployed.
//! It runs no program: the resources of a stack are its `modules/*.py` files.
//!
//! It is stricter than Pulumi where the wrapper promises something: every call must pass
//! `--non-interactive`, `--stack` and `--cwd`, and a passphrase in argv is refused.
//!
//! Test controls (environment):
//! - `PULUMI_DOUBLE_LOG=<file>`: append one JSON line per invocation: argv, the names (never
//!   the values) of the environment variables, the working directory.
//! - `PULUMI_DOUBLE_FAIL=<stack>[:<command>],...`: that command (default `up`) of that
//!   stack fails with a resource error (exit 4).
//! - `PULUMI_DOUBLE_PREVIEW_OPS=[<stack>:]<op>,...`: previews of that stack (all stacks
//!   without a prefix) also show a step with that op (`replace`, `delete`, `update`).
//! - `PULUMI_DOUBLE_DRIFT=<stack>,...`: `refresh --preview-only` finds a drifted resource.
//! - `PULUMI_DOUBLE_CRASH=<stack>`: `up` dies mid-update and leaves its lock behind.
//! - `PULUMI_DOUBLE_LEGACY_EXIT=1`: every failure exits 255.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};

const VERSION: &str = "v3.226.1-double";
const ORG: &str = "organization";

/// A failure: Pulumi's exit code category and its message.
struct Fail {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Fail {
    Fail { code, message: message.into() }
}

// Pulumi's documented exit codes (v3.226.1+).
const GENERIC: u8 = 1;
const CONFIG: u8 = 2;
const AUTH: u8 = 3;
const RESOURCE: u8 = 4;
const NOT_FOUND: u8 = 6;
const CHANGES: u8 = 7;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    log_invocation(&args);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            let legacy = std::env::var("PULUMI_DOUBLE_LEGACY_EXIT").is_ok_and(|v| v == "1");
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
    file: Option<String>,
}

fn parse(args: &[String]) -> Result<Cli, Fail> {
    let mut cli = Cli::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
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
        ["cancel"] | ["cancel", _] => ctx.cancel(&cli),
        _ => Err(fail(CONFIG, format!("unknown command {:?} for the pulumi double", words.join(" ")))),
    }
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

impl Ctx {
    fn new(cwd: &str, stack: &str) -> Result<Ctx, Fail> {
        let cwd = PathBuf::from(cwd);
        let project = read_project(&cwd)?;
        let url = std::env::var("PULUMI_BACKEND_URL").map_err(|_| fail(AUTH, "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"))?;
        let Some(path) = url.strip_prefix("file://") else {
            return Err(fail(AUTH, format!("the pulumi double supports file:// backends only, not {}", url.split("://").next().unwrap_or("?"))));
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

    fn state_path_of(&self, project: &str) -> PathBuf {
        self.backend.join(".pulumi/stacks").join(project).join(format!("{}.json", self.stack))
    }

    fn lock_dir(&self) -> PathBuf {
        self.backend.join(".pulumi/locks").join(ORG).join(&self.project).join(&self.stack)
    }

    fn injected(&self, var: &str, command: &str) -> bool {
        env_list(var).iter().any(|t| {
            let (stack, cmd) = t.split_once(':').unwrap_or((t.as_str(), "up"));
            (stack == self.short() || stack == self.project) && cmd == command
        })
    }

    fn load(&self) -> Result<Value, Fail> {
        let text = fs::read_to_string(self.state_path_of(&self.project)).map_err(|_| fail(NOT_FOUND, format!("no stack named '{}' found", self.stack)))?;
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
                let state: Value = fs::read_to_string(dir.join(format!("{name}.json"))).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                let locked = self.backend.join(".pulumi/locks").join(ORG).join(&self.project).join(&name).read_dir().is_ok_and(|mut d| d.next().is_some());
                out.push(json!({"name": name, "current": false, "updateInProgress": locked, "resourceCount": state["resources"].as_array().map_or(0, Vec::len)}));
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
        let doc = json!({
            "version": 3,
            "deployment": {
                "manifest": {"time": state["lastUpdate"], "magic": "", "version": VERSION},
                "secrets_providers": {"type": "passphrase", "state": {"salt": state["salt"]}},
                "resources": resources,
            }
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        match &cli.file {
            Some(path) => {
                // Truncate in place: an existing file keeps its permissions.
                let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(|e| fail(GENERIC, format!("could not open file: {e}")))?;
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

    /// The resources the program declares: the stack itself and one per module file.
    fn desired(&self) -> Vec<String> {
        let mut urns = vec![format!("urn:pulumi:{}::{}::pulumi:pulumi:Stack::{}-{}", self.stack, self.project, self.project, self.stack)];
        let mut modules: Vec<String> = fs::read_dir(self.cwd.join("modules"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".py").map(str::to_owned))
                    .filter(|n| !n.starts_with("__"))
                    .collect()
            })
            .unwrap_or_default();
        if modules.is_empty() {
            modules.push("main".to_owned());
        }
        modules.sort();
        urns.extend(modules.iter().map(|m| format!("urn:pulumi:{}::{}::tradai:index:Module::{m}", self.stack, self.project)));
        urns
    }

    /// What running the program needs: every `stack_ref("<x>")` target deployed, and a
    /// valid image manifest where the program reads one.
    fn check_program(&self) -> Result<Option<Value>, Fail> {
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
        for (path, text) in &sources {
            for part in text.split("stack_ref(").skip(1) {
                let lit = part.trim_start();
                let Some(q) = lit.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
                let Some(end) = lit[1..].find(q) else { continue };
                let upstream = format!("{prefix}-{}", &lit[1..1 + end]);
                let state: Value = fs::read_to_string(self.state_path_of(&upstream)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                if state["updates"].as_u64().unwrap_or(0) == 0 {
                    return Err(fail(
                        RESOURCE,
                        format!("preview failed: unknown stack \"{ORG}/{upstream}/{}\" (read by a StackReference in {})", self.stack, path.display()),
                    ));
                }
            }
        }
        let reads_manifest = sources.iter().any(|(_, t)| t.contains("TRADAI_IMAGE_MANIFEST"));
        match std::env::var("TRADAI_IMAGE_MANIFEST") {
            Ok(path) => {
                let text = fs::read_to_string(&path).map_err(|_| fail(RESOURCE, format!("Program failed: image manifest {path} does not exist")))?;
                let v: Value = serde_json::from_str(&text).map_err(|e| fail(RESOURCE, format!("Program failed: image manifest {path} is not valid JSON ({e})")))?;
                let ok = v["images"].as_object().is_some_and(|m| {
                    m.values().all(|d| d.as_str().and_then(|s| s.strip_prefix("sha256:")).is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())))
                });
                if !ok {
                    return Err(fail(RESOURCE, format!("Program failed: image manifest {path} has no valid \"images\" object")));
                }
                Ok(Some(v["images"].clone()))
            }
            Err(_) if reads_manifest => Err(fail(RESOURCE, "Program failed: no image manifest: set TRADAI_IMAGE_MANIFEST to the manifest the build tool writes")),
            Err(_) => Ok(None),
        }
    }

    fn preview_steps(&self, state: &Value) -> Vec<(String, String)> {
        let current: Vec<String> = state["resources"].as_array().map(|a| a.iter().filter_map(|r| r["urn"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
        let desired = self.desired();
        let mut steps: Vec<(String, String)> = desired.iter().map(|u| (if current.contains(u) { "same" } else { "create" }.to_owned(), u.clone())).collect();
        steps.extend(current.iter().filter(|u| !desired.contains(u)).map(|u| ("delete".to_owned(), u.clone())));
        for t in env_list("PULUMI_DOUBLE_PREVIEW_OPS") {
            let (stack, op) = match t.split_once(':') {
                Some((s, op)) => (Some(s), op),
                None => (None, t.as_str()),
            };
            if stack.is_none_or(|s| s == self.short() || s == self.project)
                && let Some(step) = steps.get_mut(1)
            {
                step.0 = op.to_owned();
            }
        }
        steps
    }

    fn digest(steps: &[(String, String)]) -> Value {
        let mut summary: BTreeMap<&str, u64> = BTreeMap::new();
        for (op, _) in steps {
            let key = if op == "refresh" { "same" } else { op.as_str() };
            *summary.entry(key).or_default() += 1;
        }
        json!({
            "config": {"aws:region": "eu-central-1"},
            "steps": steps.iter().map(|(op, urn)| json!({"op": op, "urn": urn, "detailedDiff": null})).collect::<Vec<_>>(),
            "duration": 1_000_000,
            "changeSummary": summary,
        })
    }

    fn preview(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load_unlocked_secrets()?;
        self.check_program()?;
        if self.injected("PULUMI_DOUBLE_FAIL", "preview") {
            return Err(fail(RESOURCE, "preview failed: aws:s3:Bucket (configs): InvalidBucketName (injected by PULUMI_DOUBLE_FAIL)"));
        }
        let steps = self.preview_steps(&state);
        let changed = steps.iter().any(|(op, _)| op != "same");
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&Self::digest(&steps)).unwrap_or_default());
        } else {
            println!("Previewing update ({}):", self.stack);
            for (op, urn) in &steps {
                println!("    {op:<8} {urn}");
            }
        }
        if cli.expect_no_changes && changed {
            return Err(fail(CHANGES, "no changes were expected but changes were proposed"));
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
        let path = dir.join(format!("{}-{}.json", fnv(&format!("{}{}", now(), std::process::id())), std::process::id()));
        let who = json!({
            "pid": std::process::id(),
            "username": std::env::var("USER").unwrap_or_else(|_| "user".into()),
            "hostname": fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into()),
            "timestamp": now().to_string(),
        });
        fs::write(&path, who.to_string()).map_err(|e| fail(GENERIC, format!("creating lock: {e}")))?;
        Ok(path)
    }

    fn up(&self, cli: &Cli) -> Result<(), Fail> {
        self.require_yes(cli)?;
        let mut state = self.load_unlocked_secrets()?;
        let lock = self.lock()?;
        let result = self.apply_update(&mut state);
        if self.injected("PULUMI_DOUBLE_CRASH", "up") {
            // A killed process: the lock stays behind.
            return Err(fail(GENERIC, "update canceled: the pulumi process was interrupted (injected by PULUMI_DOUBLE_CRASH)"));
        }
        let _ = fs::remove_file(lock);
        result
    }

    fn apply_update(&self, state: &mut Value) -> Result<(), Fail> {
        let images = self.check_program()?;
        println!("Updating ({}):", self.stack);
        if self.injected("PULUMI_DOUBLE_FAIL", "up") {
            println!(" +  aws:lambda:Function health-check creating failed");
            return Err(fail(
                RESOURCE,
                "update failed: aws:lambda:Function (health-check): creating Lambda Function: InvalidParameterValueException (injected by PULUMI_DOUBLE_FAIL)",
            ));
        }
        let steps = self.preview_steps(state);
        let desired = self.desired();
        for (op, urn) in &steps {
            println!("    {op:<8} {urn}");
        }
        state["resources"] = Value::Array(desired.iter().map(|u| json!({"urn": u, "custom": !u.contains("pulumi:pulumi:Stack")})).collect());
        state["outputs"] = json!({
            "stack_name": format!("{}-{}", self.project, self.stack),
            "resource_count": desired.len(),
            "connection_secret": format!("double-secret-{}-{}", self.project, self.stack),
        });
        state["secretOutputs"] = json!(["connection_secret"]);
        state["updates"] = json!(state["updates"].as_u64().unwrap_or(0) + 1);
        state["lastUpdate"] = json!(now().to_string());
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
        let lock = self.lock()?;
        let result = (|| {
            if self.injected("PULUMI_DOUBLE_FAIL", "destroy") {
                return Err(fail(RESOURCE, "destroy failed: DependencyViolation (injected by PULUMI_DOUBLE_FAIL)"));
            }
            let n = state["resources"].as_array().map_or(0, Vec::len);
            state["resources"] = json!([]);
            state["outputs"] = json!({});
            state["updates"] = json!(0);
            self.save(&state)?;
            println!("Destroying ({}):\nResources:\n    - {n} deleted", self.stack);
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
        let drifted = env_list("PULUMI_DOUBLE_DRIFT").iter().any(|s| s == self.short() || *s == self.project);
        let mut steps: Vec<(String, String)> = state["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["urn"].as_str()).map(|u| ("refresh".to_owned(), u.to_owned())).collect())
            .unwrap_or_default();
        if drifted && let Some(step) = steps.get_mut(1) {
            step.0 = "update".to_owned();
        }
        if cli.preview_only {
            // Since v3.229.0 a preview-only refresh takes no lock on a DIY backend.
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&Self::digest(&steps)).unwrap_or_default());
            }
            if cli.expect_no_changes && drifted {
                return Err(fail(CHANGES, "no changes were expected but changes occurred"));
            }
            return Ok(());
        }
        let lock = self.lock()?;
        state["refreshes"] = json!(state["refreshes"].as_u64().unwrap_or(0) + 1);
        let saved = self.save(&state);
        let _ = fs::remove_file(lock);
        saved?;
        println!("Refreshing ({}):\nResources:\n    {} unchanged", self.stack, steps.len());
        Ok(())
    }

    fn cancel(&self, cli: &Cli) -> Result<(), Fail> {
        if !cli.yes {
            return Err(fail(CONFIG, "--yes must be passed in to proceed when running in non-interactive mode"));
        }
        self.load()?;
        let dir = self.lock_dir();
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            fs::remove_file(e.path()).map_err(|err| fail(GENERIC, format!("removing lock: {err}")))?;
        }
        println!("The currently running update for '{}' has been canceled!", self.stack);
        Ok(())
    }
}
