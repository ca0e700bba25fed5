//! Self-provisioning, from PyPI for real: on a fresh tools folder with no uv on PATH, the
//! first command that needs uv installs it (one line), later ones do not, two runs at
//! once install it once, and `--offline` installs nothing and names what is missing.

mod support;

use std::process::{Command, Output};

use support::*;

/// PATH without any folder that holds a `uv`.
fn path_without_uv() -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !std::path::Path::new(d).join("uv").exists())
        .collect::<Vec<_>>()
        .join(":")
}

fn tools(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("tools").args(args).env("XTASK_TOOLS_DIR", dir).env("PATH", path_without_uv()).env_remove("XTASK_OFFLINE");
    c
}

fn installs(out: &Output) -> usize {
    stderr(out).lines().filter(|l| l.starts_with("installing uv")).count()
}

#[test]
fn uv_is_installed_once_on_first_use_and_never_offline() {
    let dir = tempfile::tempdir().unwrap();

    // Offline on a fresh machine: nothing installed, the missing tool named.
    let out = tools(dir.path(), &["path", "uv", "--offline"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("uv 0.13.9 is not installed") && err.contains("--offline forbids installing it"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = tools(dir.path(), &["path", "uv"]).env("XTASK_OFFLINE", "1").output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("--offline forbids"), "XTASK_OFFLINE=1 is the same");

    // Two runs at once: both get uv, one installs it.
    let a = tools(dir.path(), &["path", "uv"]).spawn_output();
    let b = tools(dir.path(), &["path", "uv"]).output().unwrap();
    let a = a.join().unwrap();
    assert!(a.status.success() && b.status.success(), "{}\n{}", stderr(&a), stderr(&b));
    assert_eq!(installs(&a) + installs(&b), 1, "{}\n{}", stderr(&a), stderr(&b));
    let uv = String::from_utf8_lossy(&a.stdout).trim().to_owned();
    assert_eq!(uv, String::from_utf8_lossy(&b.stdout).trim());
    assert!(uv.starts_with(dir.path().to_str().unwrap()), "{uv}");
    let version = Command::new(&uv).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("uv 0.13.9"), "{}", String::from_utf8_lossy(&version.stdout));

    // Once per machine: the next command finds it, offline or not.
    let again = tools(dir.path(), &["path", "uv", "--offline"]).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(installs(&again), 0);

    // A half-finished install (killed before it was marked done) is redone.
    std::fs::remove_file(std::path::Path::new(&uv).parent().unwrap().parent().unwrap().join(".xtask-provisioned")).unwrap();
    let redo = tools(dir.path(), &["path", "uv"]).output().unwrap();
    assert!(redo.status.success(), "{}", stderr(&redo));
    assert_eq!(installs(&redo), 1);

    // `tools` lists it as installed.
    let list = tools(dir.path(), &[]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text.lines().find(|l| l.trim_start().starts_with("uv ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("installed") && !row.contains("first use"), "{row}");
}

trait SpawnOutput {
    fn spawn_output(self) -> std::thread::JoinHandle<Output>;
}

impl SpawnOutput for Command {
    fn spawn_output(mut self) -> std::thread::JoinHandle<Output> {
        std::thread::spawn(move || self.output().unwrap())
    }
}

#[test]
fn doctor_fix_provisions_what_it_can_and_the_table_then_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let doctor = |args: &[&str]| {
        let out = Command::new(bin()).arg("doctor").args(args).env("XTASK_TOOLS_DIR", dir.path()).env("PATH", path_without_uv()).output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    let row = |table: &str, name: &str| table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}:\n{table}")).to_owned();
    let (before, _) = doctor(&[]);
    for name in ["uv ", "test servers", "workflow linters"] {
        assert!(row(&before, name).contains("on-first-use"), "{before}");
    }
    let (after, err) = doctor(&["--fix"]);
    for name in ["uv ", "test servers", "workflow linters"] {
        assert!(row(&after, name).contains(" ok "), "{name} after --fix:\n{after}\n{err}");
    }
    assert!(err.contains("installing uv") && err.contains("installing test-servers") && err.contains("installing workflow-lint"), "{err}");
}
