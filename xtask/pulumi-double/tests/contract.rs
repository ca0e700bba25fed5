//! The double keeps the contract it claims: the real CLI's flags, exit codes, JSON shapes,
//! error messages and where each is written, the DIY backend's state and lock layout, and
//! its handling of SIGINT. Each behaviour here was read from Pulumi's source (v3.259.0);
//! the double's module comment names the file for each.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Backend {
    dir: tempfile::TempDir,
}

impl Backend {
    fn new() -> Backend {
        let b = Backend { dir: tempfile::tempdir().unwrap() };
        b.project("persistent", "");
        b.project("foundation", "from tradai_infra_shared.stack_refs import stack_ref\npersistent = stack_ref(\"persistent\")\n");
        b
    }

    fn project(&self, stack: &str, main: &str) {
        let dir = self.cwd(stack);
        fs::create_dir_all(dir.join("modules")).unwrap();
        fs::write(dir.join("Pulumi.yaml"), format!("name: tradai-{stack}\nruntime: python\n")).unwrap();
        fs::write(dir.join("__main__.py"), main).unwrap();
        fs::write(dir.join("modules/s3.py"), "").unwrap();
        fs::write(dir.join("modules/__init__.py"), "").unwrap();
    }

    fn cwd(&self, stack: &str) -> PathBuf {
        self.dir.path().join("infra").join(stack)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn pulumi(&self, stack: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pulumi"));
        c.env_clear()
            .env("PULUMI_BACKEND_URL", format!("file://{}", self.dir.path().join("state").display()))
            .env("PULUMI_CONFIG_PASSPHRASE", "correct horse")
            .env("PULUMI_DOUBLE_LOG", self.log());
        c.args(args).args(["--stack", "dev", "--cwd"]).arg(self.cwd(stack)).arg("--non-interactive");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn ok(&self, stack: &str, args: &[&str]) -> String {
        let out = self.pulumi(stack, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn deploy(&self, stack: &str) {
        self.ok(stack, &["stack", "init"]);
        self.ok(stack, &["up", "--yes", "--skip-preview"]);
    }

    fn lock_dir(&self, stack: &str) -> PathBuf {
        self.dir.path().join(format!("state/.pulumi/locks/organization/tradai-{stack}/dev"))
    }
}

/// A CLI error: `error: <message>` on stderr.
#[track_caller]
fn fails(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains(message), "{message:?} not in {err}");
}

/// A deployment error: Pulumi "bails" with exit 1 and nothing on stderr; the reason is an
/// engine diagnostic on stdout, in the display's `Diagnostics:` section.
#[track_caller]
fn bails(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing on stderr");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.lines().position(|l| l == "Diagnostics:").unwrap_or_else(|| panic!("no Diagnostics section in:\n{text}"));
    let diagnostics = text.lines().skip(at + 1).collect::<Vec<_>>().join("\n");
    assert!(diagnostics.contains(message), "{message:?} not in the diagnostics:\n{diagnostics}");
}

/// A failed `--json` preview: the digest on stdout with the reason in `diagnostics`.
#[track_caller]
fn bails_json(out: &Output, message: &str) -> Value {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing on stderr");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the digest is printed on failure too");
    let diags = v["diagnostics"].as_array().expect("diagnostics");
    assert!(
        diags.iter().any(|d| d["severity"] == "error"
            && d["message"].as_str().unwrap().starts_with("error: ")
            && d["message"].as_str().unwrap().contains(message)),
        "{message:?} not in {diags:?}"
    );
    v
}

#[test]
fn missing_stack_exits_6_or_255_on_legacy_clis() {
    let b = Backend::new();
    fails(&b.pulumi("persistent", &["preview", "--json"], &[]), 6, "no stack named 'dev' found");
    fails(&b.pulumi("persistent", &["stack", "export"], &[("PULUMI_DOUBLE_LEGACY_EXIT", "1")]), 255, "no stack named 'dev' found");
}

#[test]
fn non_interactive_up_needs_yes_and_the_wrapper_flags_are_required() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    fails(
        &b.pulumi("persistent", &["up"], &[]),
        2,
        "--yes or --skip-preview must be passed in to proceed when running in non-interactive mode",
    );
    let out =
        Command::new(env!("CARGO_BIN_EXE_pulumi")).args(["preview", "--stack", "dev", "--cwd"]).arg(b.cwd("persistent")).output().unwrap();
    fails(&out, 2, "requires --non-interactive");
    fails(&b.pulumi("persistent", &["preview", "--bogus"], &[]), 2, "unknown flag: --bogus");
    assert_eq!(
        String::from_utf8_lossy(&Command::new(env!("CARGO_BIN_EXE_pulumi")).arg("version").output().unwrap().stdout).trim(),
        "v3.259.0-double"
    );
}

#[test]
fn preview_json_has_the_preview_digest_shape_and_expect_no_changes_exits_7() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    let v: Value = serde_json::from_str(&b.ok("persistent", &["preview", "--json"])).unwrap();
    let ops: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["create", "create"]);
    assert_eq!(v["steps"][0]["urn"], "urn:pulumi:dev::tradai-persistent::pulumi:pulumi:Stack::tradai-persistent-dev");
    assert_eq!(v["changeSummary"]["create"], 2);
    b.ok("persistent", &["up", "--yes"]);
    let v: Value = serde_json::from_str(&b.ok("persistent", &["preview", "--json", "--expect-no-changes"])).unwrap();
    assert_eq!(v["changeSummary"], serde_json::json!({"same": 2}));
    let out = b.pulumi("persistent", &["preview", "--json", "--expect-no-changes"], &[("PULUMI_DOUBLE_PREVIEW_OPS", "persistent:replace")]);
    fails(&out, 7, "no changes were expected for preview but changes were proposed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][1]["op"], "replace", "the digest is printed before the error");
    assert_eq!(v["steps"][1]["replaceReasons"], serde_json::json!(["name"]));
    assert_eq!(v["steps"][1]["detailedDiff"]["name"]["kind"], "update-replace");
}

#[test]
fn stack_references_to_undeployed_stacks_fail_the_program() {
    let b = Backend::new();
    b.ok("foundation", &["stack", "init"]);
    let v = bails_json(
        &b.pulumi("foundation", &["preview", "--json"], &[]),
        "Preview failed: unknown stack \"organization/tradai-persistent/dev\"",
    );
    assert!(v["diagnostics"][0]["urn"].as_str().unwrap().contains("::pulumi:pulumi:StackReference::organization/tradai-persistent/dev"));
    bails(&b.pulumi("foundation", &["up", "--yes"], &[]), "error: unknown stack \"organization/tradai-persistent/dev\"");
    b.deploy("persistent");
    b.ok("foundation", &["preview", "--json"]);
}

#[test]
fn wrong_or_missing_passphrase_and_a_passphrase_in_argv_are_refused() {
    let b = Backend::new();
    b.deploy("persistent");
    fails(&b.pulumi("persistent", &["stack", "output", "--json"], &[("PULUMI_CONFIG_PASSPHRASE", "wrong")]), 2, "incorrect passphrase");
    let mut c = Command::new(env!("CARGO_BIN_EXE_pulumi"));
    c.env_clear().env("PULUMI_BACKEND_URL", format!("file://{}", b.dir.path().join("state").display()));
    c.args(["preview", "--stack", "dev", "--non-interactive", "--cwd"]).arg(b.cwd("persistent"));
    fails(
        &c.output().unwrap(),
        2,
        "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
    );
    fails(
        &b.pulumi("persistent", &["preview", "--message", "correct horse"], &[]),
        2,
        "refuses a command line that contains the passphrase",
    );
}

#[test]
fn outputs_mask_secrets_and_export_keeps_a_private_file_private() {
    let b = Backend::new();
    b.deploy("persistent");
    let v: Value = serde_json::from_str(&b.ok("persistent", &["stack", "output", "--json"])).unwrap();
    assert_eq!(v["connection_secret"], "[secret]");
    let v: Value = serde_json::from_str(&b.ok("persistent", &["stack", "output", "--json", "--show-secrets"])).unwrap();
    assert_eq!(v["connection_secret"], "double-secret-tradai-persistent-dev");

    let file = b.dir.path().join("backup.json");
    fs::write(&file, "").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    b.ok("persistent", &["stack", "export", "--file", file.to_str().unwrap()]);
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&file).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["deployment"]["resources"].as_array().unwrap().len(), 2);
    assert!(!text.contains("double-secret"), "secrets leave the state encrypted");
}

#[test]
fn locks_block_updates_until_cancel_and_preview_only_refresh_takes_none() {
    let b = Backend::new();
    b.deploy("persistent");
    fails(&b.pulumi("persistent", &["up", "--yes"], &[("PULUMI_DOUBLE_CRASH", "persistent")]), 1, "interrupted");
    let locks: Vec<PathBuf> = fs::read_dir(b.lock_dir("persistent")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(locks.len(), 1, "the crashed update left its lock");
    // The DIY layout: <uuid>.json holding pid, username, hostname and an RFC 3339 timestamp.
    let name = locks[0].file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{name}");
    let lock: Value = serde_json::from_str(&fs::read_to_string(&locks[0]).unwrap()).unwrap();
    assert!(lock["pid"].is_u64() && lock["username"].is_string() && lock["hostname"].is_string(), "{lock}");
    let ts = lock["timestamp"].as_str().unwrap();
    assert!(ts.len() == 30 && &ts[4..5] == "-" && &ts[10..11] == "T" && &ts[19..20] == "." && ts.ends_with('Z'), "{ts}");
    fails(
        &b.pulumi("persistent", &["up", "--yes"], &[]),
        1,
        "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
    );
    fails(&b.pulumi("persistent", &["destroy", "--yes"], &[]), 1, "currently locked");
    // Preview and preview-only refresh read without the lock.
    b.ok("persistent", &["preview", "--json"]);
    b.ok("persistent", &["refresh", "--preview-only", "--json"]);
    // Non-interactive cancel asks for no confirmation (cancel.go), and removes every lock.
    assert!(b.ok("persistent", &["cancel"]).contains("has been canceled"));
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 0);
    b.ok("persistent", &["up", "--yes"]);
}

#[test]
fn refresh_reports_steps_as_the_real_cli_and_writes_only_when_told() {
    let b = Backend::new();
    b.deploy("persistent");
    let state = |b: &Backend| -> Value {
        serde_json::from_str(&fs::read_to_string(b.dir.path().join("state/.pulumi/stacks/tradai-persistent/dev.json")).unwrap()).unwrap()
    };
    // No drift: every resource is a `refresh` step, counted as `same`.
    let v: Value = serde_json::from_str(&b.ok("persistent", &["refresh", "--preview-only", "--json", "--expect-no-changes"])).unwrap();
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["op"] == "refresh"), "{v}");
    assert_eq!(v["changeSummary"], serde_json::json!({"same": 2}));
    // A changed resource: its step becomes `update` with the detailed diff; counted as `update`.
    let drift = [("PULUMI_DOUBLE_DRIFT", "persistent")];
    let out = b.pulumi("persistent", &["refresh", "--preview-only", "--json", "--expect-no-changes"], &drift);
    fails(&out, 7, "no changes were expected for refresh but changes were proposed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changeSummary"], serde_json::json!({"same": 1, "update": 1}));
    assert_eq!(v["steps"][0]["op"], "refresh");
    assert_eq!(v["steps"][1]["op"], "update");
    assert!(v["steps"][1]["detailedDiff"].is_object());
    // A resource gone from the cloud: `delete`.
    let v: Value = serde_json::from_str(&String::from_utf8_lossy(
        &b.pulumi("persistent", &["refresh", "--preview-only", "--json"], &[("PULUMI_DOUBLE_DRIFT", "persistent:delete")]).stdout,
    ))
    .unwrap();
    assert_eq!(v["changeSummary"], serde_json::json!({"same": 1, "delete": 1}));
    assert_eq!(v["steps"][1]["op"], "delete");
    assert_eq!(state(&b)["refreshes"], 0);
    fails(&b.pulumi("persistent", &["refresh"], &[]), 2, "--yes or --skip-preview");
    b.ok("persistent", &["refresh", "--yes"]);
    assert_eq!(state(&b)["refreshes"], 1);
}

#[test]
fn deployment_failures_are_diagnostics_on_stdout_and_exit_1() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    bails(
        &b.pulumi("persistent", &["up", "--yes"], &[("PULUMI_DOUBLE_FAIL", "persistent")]),
        "  aws:lambda/function:Function (health-check):\n    error: creating Lambda Function",
    );
    bails(&b.pulumi("persistent", &["preview"], &[("PULUMI_DOUBLE_FAIL", "persistent:preview")]), "InvalidBucketName");
    bails_json(&b.pulumi("persistent", &["preview", "--json"], &[("PULUMI_DOUBLE_FAIL", "persistent:preview")]), "InvalidBucketName");
    // Before v3.226.0 everything exited 255; the reason is still on stdout.
    let out = b.pulumi("persistent", &["up", "--yes"], &[("PULUMI_DOUBLE_FAIL", "persistent"), ("PULUMI_DOUBLE_LEGACY_EXIT", "1")]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stdout).contains("creating Lambda Function"));
    // A program that reads TRADAI_IMAGE_MANIFEST fails without it, or with a bad one: the
    // program's exception, on the stack resource.
    fs::write(b.cwd("persistent").join("modules/images.py"), "MANIFEST_ENV = \"TRADAI_IMAGE_MANIFEST\"\n").unwrap();
    bails(
        &b.pulumi("persistent", &["up", "--yes"], &[]),
        "  pulumi:pulumi:Stack (tradai-persistent-dev):\n    error: Program failed with an unhandled exception:",
    );
    bails(&b.pulumi("persistent", &["up", "--yes"], &[]), "no image manifest");
    let manifest = b.dir.path().join("m.json");
    fs::write(&manifest, r#"{"images": {"tradai/lambda-a": "latest"}}"#).unwrap();
    bails(&b.pulumi("persistent", &["up", "--yes"], &[("TRADAI_IMAGE_MANIFEST", manifest.to_str().unwrap())]), "no valid \"images\"");
    let digest = format!("sha256:{}", "a".repeat(64));
    fs::write(&manifest, format!(r#"{{"images": {{"tradai/lambda-a": "{digest}"}}}}"#)).unwrap();
    let out = b.pulumi("persistent", &["up", "--yes"], &[("TRADAI_IMAGE_MANIFEST", manifest.to_str().unwrap())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn protected_resources_stay_on_destroy_and_retained_ones_leave_the_state() {
    let b = Backend::new();
    fs::write(b.cwd("persistent").join("modules/dynamodb.py"), "opts=pulumi.ResourceOptions(protect=True)\n").unwrap();
    fs::write(b.cwd("persistent").join("modules/ecr.py"), "").unwrap();
    let retain = [("PULUMI_DOUBLE_RETAIN", "persistent:ecr")];
    b.ok("persistent", &["stack", "init"]);
    let out = b.pulumi("persistent", &["up", "--yes"], &retain);
    assert!(out.status.success());
    let export: Value = serde_json::from_str(&b.ok("persistent", &["stack", "export"])).unwrap();
    let flags: Vec<(String, bool, bool)> = export["deployment"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["urn"].as_str().unwrap().rsplit("::").next().unwrap().to_owned(), r["protect"] == true, r["retainOnDelete"] == true))
        .collect();
    assert_eq!(
        flags,
        [
            ("tradai-persistent-dev".into(), false, false),
            ("dynamodb".into(), true, false),
            ("ecr".into(), false, true),
            ("s3".into(), false, false)
        ]
    );
    // Without --exclude-protected, destroy stops at the protected resource.
    bails(
        &b.pulumi("persistent", &["destroy", "--yes"], &[]),
        "tradai:index:Module::dynamodb\" cannot be deleted\n    because it is protected.",
    );
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 0, "the lock is released");
    let out = b.ok("persistent", &["destroy", "--yes", "--exclude-protected"]);
    assert!(out.contains("tradai:index:Module::ecr retained"), "{out}");
    assert!(out.contains("There are still 1 protected resources associated with this stack."), "{out}");
    let export: Value = serde_json::from_str(&b.ok("persistent", &["stack", "export"])).unwrap();
    let left: Vec<&str> = export["deployment"]["resources"].as_array().unwrap().iter().map(|r| r["urn"].as_str().unwrap()).collect();
    assert_eq!(left, ["urn:pulumi:dev::tradai-persistent::tradai:index:Module::dynamodb"]);
    let out = b.ok("persistent", &["destroy", "--yes", "--exclude-protected"]);
    assert!(out.contains("There were no unprotected resources to destroy. There are still 1 protected resources"), "{out}");
}

/// Starts an `up` that spends `delay_ms` on each resource; returns once it holds the lock.
fn slow_up(b: &Backend, delay_ms: u64) -> std::process::Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pulumi"));
    c.env_clear()
        .env("PULUMI_BACKEND_URL", format!("file://{}", b.dir.path().join("state").display()))
        .env("PULUMI_CONFIG_PASSPHRASE", "correct horse")
        .env("PULUMI_DOUBLE_UP_DELAY_MS", delay_ms.to_string())
        .args(["up", "--yes", "--stack", "dev", "--non-interactive", "--cwd"])
        .arg(b.cwd("persistent"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_dir(b.lock_dir("persistent")).map_or(0, Iterator::count) == 0 {
        assert!(Instant::now() < deadline, "the update never took its lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn kill(child: &std::process::Child, signal: &str) {
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn sigint_cancels_an_update_which_saves_its_progress_and_releases_the_lock() {
    let b = Backend::new();
    for m in ["a", "b", "c", "d"] {
        fs::write(b.cwd("persistent").join(format!("modules/{m}.py")), "").unwrap();
    }
    b.ok("persistent", &["stack", "init"]);
    let child = slow_up(&b, 400);
    std::thread::sleep(Duration::from_millis(150));
    kill(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(8), "cancelled");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("^C received; cancelling. If you would like to terminate immediately, press ^C again."), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: update cancelled\n");
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 0, "the lock is released");
    let export: Value = serde_json::from_str(&b.ok("persistent", &["stack", "export"])).unwrap();
    let n = export["deployment"]["resources"].as_array().unwrap().len();
    assert!((1..6).contains(&n), "the step in flight finished, the rest did not run: {n} of 6");
    assert!(export["deployment"]["pending_operations"].is_null());

    // Two signals: the second terminates at once, leaving the operation in flight pending
    // (but the lock is still released: the process does not die).
    let child = slow_up(&b, 3000);
    std::thread::sleep(Duration::from_millis(150));
    kill(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(100));
    kill(&child, "-TERM");
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_millis(2500), "terminated without finishing the step");
    assert_eq!(out.status.code(), Some(8));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SIGTERM received; cancelling.") && stdout.contains("SIGTERM received; terminating"), "{stdout}");
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 0);
    let export: Value = serde_json::from_str(&b.ok("persistent", &["stack", "export"])).unwrap();
    assert_eq!(export["deployment"]["pending_operations"][0]["type"], "creating", "{export}");
}

#[test]
fn debug_flags_are_accepted_and_logs_go_to_stderr() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    let out =
        b.pulumi("persistent", &["preview", "--diff", "--logtostderr", "-v=9"], &[("PULUMI_DOUBLE_PREVIEW_OPS", "persistent:update")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().next().unwrap_or("");
    assert!(line.starts_with('I') && line.contains(" double.go:1] pulumi double") && line.contains("verbosity 9"), "a glog line: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("~ tags.Owner"), "--diff shows the changed properties");
    let out = b.pulumi("persistent", &["preview", "-v", "3"], &[]);
    assert!(out.status.success() && out.stderr.is_empty(), "without --logtostderr, logs go to a file");
}

#[test]
fn the_log_records_argv_and_environment_names_never_values() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    let text = fs::read_to_string(b.log()).unwrap();
    assert!(!text.contains("correct horse"));
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["argv"][0], "stack");
    assert!(line["env"].as_array().unwrap().iter().any(|n| n == "PULUMI_CONFIG_PASSPHRASE"));
}
