//! The command line itself: the grouped command list, one-line errors for bad input, and
//! `doctor`'s table and exit status.

mod support;

use std::process::Command;

use support::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(bin());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn no_arguments_and_help_list_every_command_grouped() {
    for args in [&[][..], &["--help"][..]] {
        let out = run(args, &[]);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for heading in ["Setup:", "Build:", "Publish:", "Operations:", "CI:", "Infrastructure:", "Seed recipe names"] {
            assert!(text.contains(heading), "{heading} missing from:\n{text}");
        }
        for command in [
            "doctor",
            "lambda-bootstrap",
            "lambda-build-all",
            "docker-build",
            "service-push-all",
            "infra-bootstrap",
            "ecs-force-deploy",
            "rollback",
            "ci",
        ] {
            assert!(text.lines().any(|l| l.trim_start().starts_with(command)), "{command} missing");
        }
    }
}

#[test]
fn bad_input_is_one_line_with_the_valid_choices() {
    let out = run(&["lambda-bootstrapp"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown command `lambda-bootstrapp`; valid commands:") && err.contains("lambda-bootstrap,"), "{err}");

    let out = run(&["doctor", "--format", "xml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("[possible values: table, json]"), "{err}");
}

#[test]
fn doctor_reports_every_prerequisite_and_exits_by_what_builds_need() {
    let out = run(&["doctor", "--format", "json"], &[]);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --format json prints JSON");
    let checks = checks.as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for n in [
        "Docker engine",
        "Python 3.11",
        "uv",
        "test servers",
        "workflow linters",
        "Lambda base",
        "service base",
        "debootstrap",
        "docker-registry",
        "Pulumi CLI",
        "AWS configuration",
    ] {
        assert!(names.contains(&n), "{n} not checked: {names:?}");
    }
    let missing = checks.iter().any(|c| c["status"] == "missing");
    assert_eq!(out.status.success(), !missing, "exit status follows the table");
    for c in checks {
        let status = c["status"].as_str().unwrap();
        assert!(["ok", "on-first-use", "not-needed", "fallback", "optional-missing", "missing"].contains(&status), "{c}");
        if ["missing", "optional-missing", "fallback"].contains(&status) {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "a problem without a fix: {c}");
        }
    }

    // Without docker and python3 on PATH, both are missing, with their fixes, and doctor fails.
    let out = run(&["doctor"], &[("PATH", "/nonexistent")]);
    assert!(!out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row:\n{table}")).to_owned();
    assert!(line("Docker engine").contains("missing") && line("Docker engine").contains("install Docker Engine"), "{table}");
    assert!(line("Python 3.11").contains("missing") && line("Python 3.11").contains("pyenv install 3.11"), "{table}");
    assert!(line("Pulumi CLI").contains("optional-missing"), "{table}");
    assert!(table.contains("required prerequisite(s) missing"), "{table}");

    // A fresh tools folder: uv is installed on first use, or, offline, missing with the fix.
    let tools = tempfile::tempdir().unwrap();
    let dir = tools.path().to_str().unwrap();
    let out = run(&["doctor"], &[("XTASK_TOOLS_DIR", dir)]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(line_of(&table, "uv ").contains("on-first-use"), "{table}");
    let out = run(&["doctor", "--offline"], &[("XTASK_TOOLS_DIR", dir)]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{table}");
    assert!(line_of(&table, "uv ").contains("missing") && line_of(&table, "uv ").contains("--offline forbids"), "{table}");
}

fn line_of(table: &str, name: &str) -> String {
    table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row:\n{table}")).to_owned()
}

#[test]
fn root_before_a_seed_alias_reaches_the_aliased_command() {
    // A repository elsewhere, run from a folder with no xtask.toml above it: only --root
    // can find it, and the alias must still be recognised behind the global options.
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("xtask.toml"), "").unwrap();
    let dir = repo.path().to_str().unwrap();
    let root_eq = format!("--root={dir}");
    let lines: [Vec<&str>; 4] = [
        vec!["--root", dir, "infra-preview-edge", "dev"],
        vec![&root_eq, "infra-preview-edge", "dev"],
        vec!["-v", "--root", dir, "--offline", "infra-preview-edge", "dev"],
        vec!["infra-preview-edge", "--root", dir, "dev"],
    ];
    for args in &lines {
        let out = Command::new(bin()).args(args).current_dir("/").env("PATH", "/usr/bin:/bin").output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        // infra-preview edge dev ran in that repository, and stopped at its first check.
        assert!(err.contains("the `pulumi` executable was not found on PATH"), "{args:?}: {err}");
        assert!(!err.contains("unknown command"), "{args:?}: {err}");
    }
    // The root given is the one used.
    let out =
        Command::new(bin()).args(["--root", "/nonexistent-xtask-root", "infra-preview-edge", "dev"]).current_dir("/").output().unwrap();
    assert!(stderr(&out).contains("--root /nonexistent-xtask-root does not exist"), "{}", stderr(&out));
}
