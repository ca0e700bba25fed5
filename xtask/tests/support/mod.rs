//! Shared helpers for the integration tests: fixture repositories, running the real
//! binary, and the tiny upstream base image the fixtures build from.

#![allow(dead_code)]

pub mod registry;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The upstream Python base the fixtures name; created once per test process with
/// `docker import` (nothing can be pulled here). Its content does not matter: the
/// fixture Dockerfiles only COPY files into it.
pub const FIXTURE_BASE: &str = "xtask-fixture/python:1";

pub fn ensure_fixture_base() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("docker").args(["image", "inspect", FIXTURE_BASE]).output().expect("docker runs");
        if status.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("root/etc")).unwrap();
        fs::write(dir.path().join("root/etc/fixture-base"), "fixture\n").unwrap();
        let tar = dir.path().join("root.tar");
        let ok = Command::new("tar").arg("-C").arg(dir.path().join("root")).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(ok.success());
        let out = Command::new("docker").arg("import").arg(&tar).arg(FIXTURE_BASE).output().unwrap();
        assert!(out.status.success(), "docker import failed: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// A temporary repository shaped like the TradAI monorepo, with a few small lambdas.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(lambdas: &[&str]) -> Self {
        ensure_fixture_base();
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        f.write(
            "xtask.toml",
            &format!("[build]\nplatform = \"linux/amd64\"\ntag-latest = false\n\n[python-base]\nlambda = \"{FIXTURE_BASE}\"\nservice = \"{FIXTURE_BASE}\"\n"),
        );
        f.write(
            "libs/tradai-common/pyproject.toml",
            "[project]\nname = \"tradai-common\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.targets.wheel]\npackages = [\"src/tradai_common\"]\n",
        );
        f.write("libs/tradai-common/src/tradai_common/__init__.py", "VERSION = 1\n");
        f.write("libs/tradai-common/tests/test_x.py", "def test_x():\n    assert True\n");
        f.write(
            "lambdas/base/Dockerfile",
            "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY site-packages/ /var/lang/lib/python3.11/site-packages/\n",
        );
        // A file of lambda-base's context unique to this fixture: its images get hashes of
        // their own, so that the engine, a cache shared by every test, never hands one
        // fixture the images another built (`clones_in_different_folders_hash_identically`
        // copies it, and with it the same hashes).
        f.write("lambdas/base/.fixture-id", &format!("{}\n", f.path().display()));
        for name in lambdas {
            f.add_lambda(name);
        }
        fs::create_dir_all(f.path().join("services")).unwrap();
        f
    }

    /// A second clone of `other` in a folder of its own: the same files, so the same input
    /// hashes, and no state (its `target/` is not copied).
    pub fn clone_of(other: &Fixture) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("cp").arg("-r").arg(format!("{}/.", other.path().display())).arg(dir.path()).status().unwrap();
        assert!(status.success());
        let _ = fs::remove_dir_all(dir.path().join("target"));
        Fixture { dir }
    }

    pub fn add_lambda(&self, name: &str) {
        self.write(
            &format!("lambdas/{name}/Dockerfile"),
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY handler.py /var/task/\nCMD [\"handler.lambda_handler\"]\n",
        );
        self.write(
            &format!("lambdas/{name}/handler.py"),
            &format!("def lambda_handler(event, context):\n    return {{\"name\": \"{name}\"}}\n"),
        );
        self.write(&format!("lambdas/{name}/.dockerignore"), "tests\n");
        self.write(&format!("lambdas/{name}/tests/test_handler.py"), "def test_it():\n    assert True\n");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    pub fn append(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        let mut text = fs::read_to_string(&p).unwrap();
        text.push_str(content);
        fs::write(p, text).unwrap();
    }

    /// Runs `cargo xtask <args> --root <fixture>`.
    pub fn xtask(&self, args: &[&str]) -> Output {
        xtask_in(self.path(), args, &[])
    }

    pub fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        xtask_in(self.path(), args, env)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).arg("--root").arg(self.path());
        c
    }

    /// Runs a build command with `--json` and returns `(id, status)` pairs.
    pub fn build_json(&self, args: &[&str]) -> Vec<(String, String, serde_json::Value)> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.xtask(&all);
        assert!(out.status.success(), "xtask {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        parse_targets(&out.stdout)
    }
}

pub fn parse_targets(stdout: &[u8]) -> Vec<(String, String, serde_json::Value)> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(stdout)));
    v["targets"]
        .as_array()
        .expect("targets array")
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t["status"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

pub fn xtask_in(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).arg("--root").arg(root);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("xtask runs")
}

/// Ids with the given status.
pub fn with_status<'a>(targets: &'a [(String, String, serde_json::Value)], status: &str) -> Vec<&'a str> {
    targets.iter().filter(|(_, s, _)| s == status).map(|(id, _, _)| id.as_str()).collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The Lambda names of the real repository (folders with a Dockerfile, base excluded).
pub fn repo_lambdas() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambdas");
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Dockerfile").is_file() && e.file_name() != "base")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A repository with the TradAI layout the AWS commands read (the service folders and
/// one folder per Lambda of the real repository) and nothing to build.
pub fn layout_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write("xtask.toml", "[build]\nplatform = \"linux/amd64\"\n");
    for s in ["backend", "data-collection", "strategy-service", "mlflow"] {
        write(&format!("services/{s}/Dockerfile"), "FROM scratch\n");
    }
    write("lambdas/base/Dockerfile", "FROM scratch\n");
    for l in repo_lambdas() {
        write(&format!("lambdas/{l}/Dockerfile"), "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n");
    }
    dir
}
