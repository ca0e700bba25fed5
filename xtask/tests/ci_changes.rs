//! `cargo xtask ci changes` on synthetic changes in a temporary git repository shaped like
//! the monorepo: tradai-common with settings, logs and models; two consumers (a library
//! using logs, a service using models); one Lambda using settings; integration tests.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The fixture repository, committed once.
struct Repo {
    dir: tempfile::TempDir,
}

const COMMON_PYPROJECT: &str = "[project]\nname = \"tradai-common\"\nversion = \"0.1.0\"\ndependencies = [\"boto3>=1.34\"]\n";

impl Repo {
    fn new() -> Self {
        let repo = Repo { dir: tempfile::tempdir().unwrap() };
        repo.write("xtask.toml", "[build]\nplatform = \"linux/amd64\"\n");
        repo.write(
            "pyproject.toml",
            "[tool.uv.workspace]\nmembers = [\"libs/*\", \"services/backend\"]\n\n[dependency-groups]\ndev = [\"pytest\"]\n",
        );
        repo.write("uv.lock", "version = 1\nrevision = 3\n");
        repo.write(".python-version", "3.11\n");
        repo.write("README.md", "# fixture\n");

        repo.write("libs/tradai-common/pyproject.toml", COMMON_PYPROJECT);
        repo.write("libs/tradai-common/README.md", "common\n");
        repo.write("libs/tradai-common/src/tradai_common/__init__.py", "\"\"\"Shared code; import the submodules.\"\"\"\n");
        repo.write(
            "libs/tradai-common/src/tradai_common/settings.py",
            "import os\n\nREGION = os.environ.get(\"AWS_REGION\", \"eu-central-1\")\n",
        );
        repo.write(
            "libs/tradai-common/src/tradai_common/logs.py",
            "import logging\n\nfrom tradai_common.settings import REGION\n\n\ndef get_logger(name):\n    return logging.getLogger(f\"{REGION}.{name}\")\n",
        );
        repo.write(
            "libs/tradai-common/src/tradai_common/models.py",
            "from dataclasses import dataclass\n\n\n@dataclass\nclass Job:\n    id: str\n",
        );
        repo.write(
            "libs/tradai-common/tests/test_models.py",
            "from tradai_common.models import Job\n\n\ndef test_job():\n    assert Job(\"a\").id == \"a\"\n",
        );

        // A light consumer: its code uses logs only (and so settings, through logs).
        repo.write(
            "libs/tradai-data/pyproject.toml",
            "[project]\nname = \"tradai-data\"\nversion = \"0.1.0\"\ndependencies = [\"tradai-common\"]\n",
        );
        repo.write("libs/tradai-data/src/tradai_data/__init__.py", "");
        repo.write(
            "libs/tradai-data/src/tradai_data/store.py",
            "\"\"\"Candles.\n\nfrom tradai_common import models  (a docstring, not an import)\n\"\"\"\nfrom tradai_common.logs import get_logger\n\nLOG = get_logger(__name__)\n",
        );
        repo.write("libs/tradai-data/tests/test_store.py", "from tradai_data.store import LOG\n\n\ndef test_log():\n    assert LOG\n");

        // A service: its code uses models, through a `from package import submodule`.
        repo.write(
            "services/backend/pyproject.toml",
            "[project]\nname = \"tradai-backend\"\nversion = \"0.1.0\"\ndependencies = [\"tradai-common\", \"fastapi>=0.115\"]\n",
        );
        repo.write("services/backend/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY src/ /app/src/\n");
        repo.write("services/backend/.dockerignore", "tests\n");
        repo.write("services/backend/src/tradai_backend/__init__.py", "");
        repo.write(
            "services/backend/src/tradai_backend/app.py",
            "from tradai_common import models\n\n\ndef job(i):\n    return models.Job(i)\n",
        );
        repo.write(
            "services/backend/tests/test_app.py",
            "from tradai_backend.app import job\n\n\ndef test_job():\n    assert job(\"x\").id == \"x\"\n",
        );
        // An image without a workspace package.
        repo.write("services/mlflow/Dockerfile", "FROM python:3.11-slim\nCOPY requirements.txt /tmp/\n");
        repo.write("services/mlflow/requirements.txt", "mlflow==3.17.2\n");

        repo.write("lambdas/base/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY site-packages/ /var/lang/lib/python3.11/site-packages/\n");
        repo.write("lambdas/health-check/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY handler.py /var/task/\n");
        repo.write("lambdas/health-check/.dockerignore", "tests/\n");
        repo.write(
            "lambdas/health-check/handler.py",
            "import tradai_common.settings as settings\n\n\ndef lambda_handler(event, context):\n    return {\"region\": settings.REGION}\n",
        );
        repo.write("lambdas/health-check/tests/test_handler.py", "def test_it():\n    assert True\n");

        repo.write(
            "tests/integration/test_flow.py",
            "from tradai_backend.app import job\nfrom tradai_data.store import LOG\n\n\ndef test_flow():\n    assert job(\"x\") and LOG\n",
        );
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit("base");
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn append(&self, rel: &str, content: &str) {
        let mut text = fs::read_to_string(self.path().join(rel)).unwrap();
        text.push_str(content);
        self.write(rel, &text);
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=ci-test", "-c", "user.email=ci-test@example.invalid", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Commits everything and returns the commit id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn xtask(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--root")
            .arg(self.path())
            .args(args)
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_ACTIONS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Commits a change made by `edit` and returns what `ci changes --base <before> --head
    /// <after>` reports.
    fn changes_after(&self, edit: impl FnOnce(&Repo)) -> Value {
        let before = self.git(&["rev-parse", "HEAD"]);
        edit(self);
        let after = self.commit("change");
        let out = self.xtask(&["ci", "changes", "--base", &before, "--head", &after], &[]);
        assert!(out.status.success(), "ci changes failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("stdout is JSON")
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_lambda_handler_change_affects_that_image_and_the_lambda_tests_only() {
    let repo = Repo::new();
    let a = repo.changes_after(|r| r.append("lambdas/health-check/handler.py", "\nVERSION = 2\n"));
    assert_eq!(strings(&a["changed_files"]), ["lambdas/health-check/handler.py"]);
    assert_eq!(strings(&a["packages"]), Vec::<String>::new(), "no package imports a Lambda handler");
    assert_eq!(a["any"], false);
    assert_eq!(a["matrix"]["include"].as_array().unwrap().len(), 0);
    assert_eq!(a["lambda_tests"], true);
    assert_eq!(strings(&a["lambda_images"]), ["tradai/lambda-health-check"]);
    assert_eq!(a["lambda_base"], false);
    assert_eq!(a["wheel"], false);
    assert_eq!(strings(&a["service_images"]), Vec::<String>::new());
}

#[test]
fn a_lambda_test_change_is_outside_the_image_context() {
    let repo = Repo::new();
    let a = repo.changes_after(|r| r.append("lambdas/health-check/tests/test_handler.py", "\n\ndef test_more():\n    assert 1\n"));
    assert_eq!(a["lambda_tests"], true);
    assert_eq!(strings(&a["lambda_images"]), Vec::<String>::new(), ".dockerignore excludes tests/");
    assert_eq!(a["images"], false);
}

#[test]
fn a_shared_submodule_change_affects_exactly_its_importers_plus_integration() {
    let repo = Repo::new();
    // models: imported by the backend service (and by common's own tests).
    let a = repo.changes_after(|r| r.append("libs/tradai-common/src/tradai_common/models.py", "\n\nVERSION = 2\n"));
    assert_eq!(strings(&a["packages"]), ["common", "backend", "integration"]);
    assert_eq!(a["lambda_tests"], false, "the Lambda imports settings, not models");
    let matrix: Vec<&str> = a["matrix"]["include"].as_array().unwrap().iter().map(|e| e["package"].as_str().unwrap()).collect();
    assert_eq!(matrix, ["common", "backend", "integration"]);
    assert_eq!(a["matrix"]["include"][2]["coverage"], 0);
    // The wheel changes, so every Lambda image and every service carrying it rebuild.
    assert_eq!(a["wheel"], true);
    assert_eq!(a["lambda_base"], true);
    assert_eq!(strings(&a["lambda_images"]), ["tradai/lambda-health-check"]);
    assert_eq!(strings(&a["service_images"]), ["tradai/backend"]);
    assert!(a["reasons"]["package:backend"][0].as_str().unwrap().contains("tradai_common.models"));
}

#[test]
fn a_change_reaches_the_importers_of_modules_that_import_it() {
    let repo = Repo::new();
    // settings is imported by logs (used by data) and by the Lambda; not by the backend.
    let a = repo.changes_after(|r| r.append("libs/tradai-common/src/tradai_common/settings.py", "\nTIMEOUT = 3\n"));
    assert_eq!(strings(&a["packages"]), ["common", "data", "integration"]);
    assert_eq!(a["lambda_tests"], true);

    let a = repo.changes_after(|r| r.append("libs/tradai-common/src/tradai_common/logs.py", "\nLEVEL = 20\n"));
    assert_eq!(strings(&a["packages"]), ["common", "data", "integration"]);
    assert_eq!(a["lambda_tests"], false);
}

#[test]
fn the_shared_package_root_and_pyproject_affect_every_importer() {
    let repo = Repo::new();
    let a = repo.changes_after(|r| r.append("libs/tradai-common/src/tradai_common/__init__.py", "\nX = 1\n"));
    assert_eq!(strings(&a["packages"]), ["common", "data", "backend", "integration"]);
    assert_eq!(a["lambda_tests"], true);
    let a = repo.changes_after(|r| r.write("libs/tradai-common/pyproject.toml", &COMMON_PYPROJECT.replace("1.34", "1.35")));
    assert_eq!(strings(&a["packages"]), ["common", "data", "backend", "integration"]);
}

#[test]
fn uv_lock_affects_everything() {
    let repo = Repo::new();
    let a = repo.changes_after(|r| r.append("uv.lock", "\n# relocked\n"));
    assert_eq!(strings(&a["packages"]), ["common", "data", "backend", "integration"]);
    assert_eq!(a["all"], true);
    assert_eq!(a["any"], true);
    assert_eq!(a["lambda_tests"], true);
    assert_eq!(
        strings(&a["service_images"]),
        ["tradai/backend"],
        "the locked dependencies go into the wheelhouse; mlflow has its own requirements"
    );
    assert_eq!(strings(&a["lambda_images"]), Vec::<String>::new(), "Lambda images carry only the tradai-common wheel");
}

#[test]
fn a_library_change_reaches_its_dependents_and_a_test_change_does_not() {
    let repo = Repo::new();
    let a = repo.changes_after(|r| r.append("libs/tradai-data/src/tradai_data/store.py", "\nSIZE = 2\n"));
    assert_eq!(strings(&a["packages"]), ["data", "integration"], "integration imports tradai_data");
    assert_eq!(a["images"], false, "no image carries tradai-data in the fixture");

    let a = repo.changes_after(|r| r.append("services/backend/tests/test_app.py", "\n\ndef test_more():\n    assert 1\n"));
    assert_eq!(strings(&a["packages"]), ["backend"]);
    assert_eq!(strings(&a["service_images"]), Vec::<String>::new(), ".dockerignore excludes the tests");

    let a = repo.changes_after(|r| r.append("services/mlflow/requirements.txt", "boto3==1.35.0\n"));
    assert_eq!(strings(&a["packages"]), Vec::<String>::new());
    assert_eq!(strings(&a["service_images"]), ["tradai/mlflow"]);
}

#[test]
fn two_affected_packages_run_the_integration_tests() {
    let repo = Repo::new();
    // Remove integration's own imports from the picture: it must run because of the count.
    repo.write("tests/integration/test_flow.py", "def test_flow():\n    assert True\n");
    repo.commit("integration without imports");
    let a = repo.changes_after(|r| {
        r.append("libs/tradai-data/tests/test_store.py", "\n");
        r.append("services/backend/tests/test_app.py", "\n");
    });
    assert_eq!(strings(&a["packages"]), ["data", "backend", "integration"]);
    assert!(a["reasons"]["package:integration"][0].as_str().unwrap().contains("2 packages"));
    let a = repo.changes_after(|r| r.append("services/backend/tests/test_app.py", "\n"));
    assert_eq!(strings(&a["packages"]), ["backend"]);
}

#[test]
fn without_head_the_working_tree_and_untracked_files_count() {
    let repo = Repo::new();
    repo.append("libs/tradai-data/tests/test_store.py", "\n");
    repo.write("lambdas/health-check/extra.py", "X = 1\n");
    let out = repo.xtask(&["ci", "changes", "--base", "HEAD"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(strings(&a["changed_files"]), ["lambdas/health-check/extra.py", "libs/tradai-data/tests/test_store.py"]);
    assert_eq!(strings(&a["packages"]), ["data"]);
    assert_eq!(strings(&a["lambda_images"]), ["tradai/lambda-health-check"]);
}

#[test]
fn github_outputs_carry_the_matrix() {
    let repo = Repo::new();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.append("libs/tradai-common/src/tradai_common/models.py", "\nY = 1\n");
    let after = repo.commit("change");
    let out_file = repo.path().join("gh-output");
    let summary = repo.path().join("gh-summary");
    let out = repo
        .xtask(&["ci", "changes", "--base", &before, "--head", &after], &[("GITHUB_OUTPUT", &out_file), ("GITHUB_STEP_SUMMARY", &summary)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outputs = fs::read_to_string(&out_file).unwrap();
    let line = |name: &str| {
        outputs.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {outputs}")).to_owned()
    };
    let matrix: Value = serde_json::from_str(&line("matrix")).unwrap();
    assert_eq!(matrix["include"][0], serde_json::json!({"package": "common", "path": "libs/tradai-common", "coverage": 60}));
    assert_eq!(line("any"), "true");
    assert_eq!(line("lambda_tests"), "false");
    assert_eq!(line("lambda_images"), "[\"tradai/lambda-health-check\"]");
    assert!(fs::read_to_string(&summary).unwrap().contains("`package:backend`"));
}

#[test]
fn all_selects_the_full_matrix_without_git() {
    let repo = Repo::new();
    let out = repo.xtask(&["ci", "changes", "--all"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(strings(&a["packages"]), ["common", "data", "backend", "integration"]);
    assert_eq!(strings(&a["service_images"]), ["tradai/backend", "tradai/mlflow"]);
    assert_eq!(a["lambda_base"], true);
}

#[test]
fn an_unknown_base_is_a_one_line_error_with_the_fix() {
    let repo = Repo::new();
    let out = repo.xtask(&["ci", "changes", "--base", "origin/nope", "--head", "HEAD"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("fetch"), "{err}");
    let out = repo.xtask(&["ci", "changes"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--base"));
}
