//! The double keeps the contract it claims: Pulumi's documented flags, exit codes, JSON
//! shapes, error messages, and the DIY backend's state and lock layout.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};

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

#[track_caller]
fn fails(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains(message), "{message:?} not in {err}");
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
    fails(&b.pulumi("persistent", &["up"], &[]), 2, "--yes or --skip-preview must be passed in to proceed when running in non-interactive mode");
    let out = Command::new(env!("CARGO_BIN_EXE_pulumi")).args(["preview", "--stack", "dev", "--cwd"]).arg(b.cwd("persistent")).output().unwrap();
    fails(&out, 2, "requires --non-interactive");
    fails(&b.pulumi("persistent", &["preview", "--bogus"], &[]), 2, "unknown flag: --bogus");
    assert_eq!(String::from_utf8_lossy(&Command::new(env!("CARGO_BIN_EXE_pulumi")).arg("version").output().unwrap().stdout).trim(), "v3.226.1-double");
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
    fails(&out, 7, "no changes were expected but changes were proposed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][1]["op"], "replace", "the digest is printed before the error");
}

#[test]
fn stack_references_to_undeployed_stacks_fail_the_program() {
    let b = Backend::new();
    b.ok("foundation", &["stack", "init"]);
    fails(&b.pulumi("foundation", &["preview", "--json"], &[]), 4, "unknown stack \"organization/tradai-persistent/dev\"");
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
    fails(&c.output().unwrap(), 2, "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables");
    fails(&b.pulumi("persistent", &["preview", "--message", "correct horse"], &[]), 2, "refuses a command line that contains the passphrase");
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
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 1, "the crashed update left its lock");
    fails(&b.pulumi("persistent", &["up", "--yes"], &[]), 1, "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.");
    fails(&b.pulumi("persistent", &["destroy", "--yes"], &[]), 1, "currently locked");
    // Preview and preview-only refresh read without the lock.
    b.ok("persistent", &["preview", "--json"]);
    let v: Value = serde_json::from_str(&b.ok("persistent", &["refresh", "--preview-only", "--json"])).unwrap();
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["op"] == "refresh"));
    fails(&b.pulumi("persistent", &["cancel"], &[]), 2, "--yes must be passed in");
    assert!(b.ok("persistent", &["cancel", "--yes"]).contains("has been canceled"));
    assert_eq!(fs::read_dir(b.lock_dir("persistent")).unwrap().count(), 0);
    b.ok("persistent", &["up", "--yes"]);
}

#[test]
fn refresh_finds_injected_drift_and_writes_only_when_told() {
    let b = Backend::new();
    b.deploy("persistent");
    let state = |b: &Backend| -> Value {
        serde_json::from_str(&fs::read_to_string(b.dir.path().join("state/.pulumi/stacks/tradai-persistent/dev.json")).unwrap()).unwrap()
    };
    let drift = [("PULUMI_DOUBLE_DRIFT", "persistent")];
    let out = b.pulumi("persistent", &["refresh", "--preview-only", "--json", "--expect-no-changes"], &drift);
    fails(&out, 7, "no changes were expected but changes occurred");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changeSummary"]["update"], 1);
    assert_eq!(state(&b)["refreshes"], 0);
    fails(&b.pulumi("persistent", &["refresh"], &[]), 2, "--yes or --skip-preview");
    b.ok("persistent", &["refresh", "--yes"]);
    assert_eq!(state(&b)["refreshes"], 1);
}

#[test]
fn injected_failures_and_the_image_manifest() {
    let b = Backend::new();
    b.ok("persistent", &["stack", "init"]);
    fails(&b.pulumi("persistent", &["up", "--yes"], &[("PULUMI_DOUBLE_FAIL", "persistent")]), 4, "creating Lambda Function");
    fails(&b.pulumi("persistent", &["preview"], &[("PULUMI_DOUBLE_FAIL", "persistent:preview")]), 4, "injected");
    // A program that reads TRADAI_IMAGE_MANIFEST fails without it, or with a bad one.
    fs::write(b.cwd("persistent").join("modules/images.py"), "MANIFEST_ENV = \"TRADAI_IMAGE_MANIFEST\"\n").unwrap();
    fails(&b.pulumi("persistent", &["up", "--yes"], &[]), 4, "no image manifest");
    let manifest = b.dir.path().join("m.json");
    fs::write(&manifest, r#"{"images": {"tradai/lambda-a": "latest"}}"#).unwrap();
    fails(&b.pulumi("persistent", &["up", "--yes"], &[("TRADAI_IMAGE_MANIFEST", manifest.to_str().unwrap())]), 4, "no valid \"images\"");
    let digest = format!("sha256:{}", "a".repeat(64));
    fs::write(&manifest, format!(r#"{{"images": {{"tradai/lambda-a": "{digest}"}}}}"#)).unwrap();
    let out = b.pulumi("persistent", &["up", "--yes"], &[("TRADAI_IMAGE_MANIFEST", manifest.to_str().unwrap())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
