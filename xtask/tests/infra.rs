//! `cargo xtask infra-*` end to end: the real binary, a temporary copy of the repository's
//! Pulumi programs (`infra/<stack>/Pulumi*.yaml`, `__main__.py`, `modules/`), the Pulumi
//! test double (`xtask/pulumi-double`, first on PATH) and a real OCI registry on loopback
//! holding the images compute deploys. The double logs every invocation (argv and the
//! names of its environment variables), which is what the ordering assertions read.

mod support;
#[path = "support/moto.rs"]
mod moto;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use moto::Moto;
use support::registry::TestRegistry;

const PASSPHRASE: &str = "pp-Zq8v-never-show-me-9472";
const LAMBDAS: [&str; 2] = ["health-check", "drift-monitor"];
const SERVICES: [&str; 1] = ["backend"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds the double once per test process; returns the `pulumi` executable.
fn double_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo).args(["build", "-q", "-p", "xtask-pulumi-double"]).current_dir(repo_root()).output().unwrap();
        assert!(out.status.success(), "building the pulumi double failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let exe = support::bin().parent().unwrap().join("pulumi");
        assert!(exe.is_file(), "no double at {}", exe.display());
        exe
    })
}

/// A temporary repository with the real Pulumi programs and an `infra/.env`.
struct Repo {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn copy_program(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name == "modules" {
                copy_program(&path, &to.join(&name));
            }
        } else if name.starts_with("Pulumi") || name.ends_with(".py") {
            fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Buildable images on the one-file fixture base, so that the image layers of
        // infra-bootstrap build and push for real (in the binary's own process).
        support::ensure_fixture_base();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let base = support::FIXTURE_BASE;
        write("xtask.toml", &format!("[build]\nplatform = \"linux/amd64\"\ntag-latest = false\n\n[python-base]\nlambda = \"{base}\"\nservice = \"{base}\"\n"));
        write(
            "libs/tradai-common/pyproject.toml",
            "[project]\nname = \"tradai-common\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.targets.wheel]\npackages = [\"src/tradai_common\"]\n",
        );
        write("libs/tradai-common/src/tradai_common/__init__.py", "VERSION = 1\n");
        write("lambdas/base/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY site-packages/ /var/lang/lib/python3.11/site-packages/\n");
        for name in LAMBDAS {
            write(&format!("lambdas/{name}/Dockerfile"), "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY handler.py /var/task/\n");
            write(&format!("lambdas/{name}/handler.py"), "def lambda_handler(event, context):\n    return {}\n");
        }
        for name in SERVICES {
            write(&format!("services/{name}/Dockerfile"), "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY wheels/ /opt/wheels/\n");
            write(&format!("services/{name}/requirements.txt"), "six==1.16.0\n");
        }
        for stack in ["persistent", "foundation", "compute", "edge"] {
            copy_program(&repo_root().join("infra").join(stack), &root.join("infra").join(stack));
        }
        fs::copy(repo_root().join("infra/.env.example"), root.join("infra/.env.example")).unwrap();
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(double_exe(), bin.join("pulumi")).unwrap();
        let repo = Repo { dir, bin };
        repo.write_env(&format!(
            "# test settings\nS3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE='{PASSPHRASE}'\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n",
            repo.path().join("state").display()
        ));
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_env(&self, text: &str) {
        fs::write(self.path().join("infra/.env"), text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.path().join("pulumi.log")
    }

    /// Runs the binary with PATH holding the double first, and the log.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        self.run_with_path(args, env, &path)
    }

    fn run_with_path(&self, args: &[&str], env: &[(&str, &str)], path: &str) -> Output {
        let mut c = Command::new(support::bin());
        // The machine's environment (its TLS settings reach PyPI for the image builds),
        // minus everything that would change what the commands read.
        for (k, _) in std::env::vars() {
            let settings = ["PULUMI_", "AWS_", "XTASK_", "GITHUB_", "CARGO_TARGET_DIR"].iter().any(|p| k.starts_with(p));
            if settings || k == "S3_PULUMI_BACKEND_URL" {
                c.env_remove(k);
            }
        }
        c.env("PATH", path).env("HOME", self.path()).env("PULUMI_DOUBLE_LOG", self.log_path());
        c.args(args).arg("--root").arg(self.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("xtask runs")
    }

    /// Every logged invocation, in order.
    fn log(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}"))).collect()
    }

    fn clear_log(&self) {
        let _ = fs::remove_file(self.log_path());
    }

    /// The log as short words: `up compute`, `preview edge`, ...
    fn steps(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|e| {
                let argv: Vec<&str> = e["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
                let cwd = argv.iter().position(|a| *a == "--cwd").map(|i| argv[i + 1]).unwrap_or("");
                let stack = Path::new(cwd).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let words: Vec<&str> = argv.iter().take_while(|a| !a.starts_with('-')).copied().collect();
                format!("{} {stack}", words.join(" "))
            })
            .collect()
    }

    fn ups(&self) -> Vec<String> {
        self.steps().into_iter().filter(|s| s.starts_with("up ")).collect()
    }

    /// Pushes a small image `repo:latest` to the registry; returns its digest.
    fn push_image(&self, reg: &TestRegistry, repo: &str) -> String {
        let blob = |bytes: &[u8]| -> (String, usize) {
            let f = self.path().join("blob");
            fs::write(&f, bytes).unwrap();
            let sum = Command::new("sha256sum").arg(&f).output().unwrap();
            let digest = format!("sha256:{}", String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap());
            // Start an upload, then finish it with the whole blob (the registry answers the
            // POST with the upload's Location).
            let start = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-D", "-", "-X", "POST"])
                .arg(format!("http://{}/v2/{repo}/blobs/uploads/", reg.host))
                .output()
                .unwrap();
            let head = String::from_utf8_lossy(&start.stdout).into_owned();
            let location = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no upload location: {head}"));
            let location = if location.starts_with('/') { format!("http://{}{location}", reg.host) } else { location };
            let sep = if location.contains('?') { '&' } else { '?' };
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary"])
                .arg(format!("@{}", f.display()))
                .arg(format!("{location}{sep}digest={digest}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "blob upload to {repo}");
            (digest, bytes.len())
        };
        let (layer, layer_size) = blob(format!("layer of {repo}").as_bytes());
        let (config, config_size) = blob(format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{layer}\"]}},\"config\":{{\"Labels\":{{\"repo\":\"{repo}\"}}}}}}").as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config_size, "digest": config},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer_size, "digest": layer}],
        });
        let f = self.path().join("manifest.json");
        fs::write(&f, manifest.to_string()).unwrap();
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/vnd.docker.distribution.manifest.v2+json", "--data-binary"])
            .arg(format!("@{}", f.display()))
            .arg(format!("http://{}/v2/{repo}/manifests/latest", reg.host))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "manifest upload to {repo}");
        reg.digest(repo, "latest").expect("pushed image has a digest")
    }

    /// A registry holding every image compute deploys, except `missing`.
    fn registry_with_images(&self, missing: &[&str]) -> TestRegistry {
        let reg = TestRegistry::start();
        let repos = LAMBDAS.iter().map(|l| format!("tradai/lambda-{l}")).chain(SERVICES.iter().map(|s| format!("tradai/{s}")));
        for repo in repos {
            if !missing.contains(&repo.as_str()) {
                self.push_image(&reg, &repo);
            }
        }
        reg
    }

    fn state(&self, stack: &str, env: &str) -> Value {
        let p = self.path().join(format!("state/.pulumi/stacks/tradai-{stack}/{env}.json"));
        serde_json::from_str(&fs::read_to_string(&p).unwrap_or_else(|_| panic!("no state at {}", p.display()))).unwrap()
    }
}

/// The layers `infra-bootstrap` ran, in order, from its `==> [i/n] <layer> (<env>)` lines.
fn layers_run(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("==> [")?.split_once("] ").map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned()))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}", out.status, stdout(out), stderr(out));
}

/// Fails with exactly one line on stderr, which contains every needle.
#[track_caller]
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure, got success\nstderr:\n{}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in: {}", lines[0]);
    }
}

#[test]
fn bootstrap_runs_every_layer_in_order_with_backups_and_the_image_manifest() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    // The passphrase also in the process environment: Docker, run by the image layers in
    // the same process, must not get it. A `docker` first on PATH records what it sees.
    let real_docker = String::from_utf8(Command::new("sh").args(["-c", "command -v docker"]).output().unwrap().stdout).unwrap();
    let seen = repo.path().join("docker-saw");
    fs::write(
        repo.bin.join("docker"),
        format!(
            "#!/bin/sh\nif [ -n \"$PULUMI_CONFIG_PASSPHRASE\" ]; then echo passphrase >> '{0}'; else echo clean >> '{0}'; fi\nexec {1} \"$@\"\n",
            seen.display(),
            real_docker.trim()
        ),
    )
    .unwrap();
    fs::set_permissions(repo.bin.join("docker"), fs::Permissions::from_mode(0o755)).unwrap();
    let env = [("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)];
    let out = repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host], &env);
    assert_ok(&out);
    let saw = fs::read_to_string(&seen).unwrap_or_default();
    assert!(saw.contains("clean") && !saw.contains("passphrase"), "docker ran, and never with the passphrase: {saw:?}");
    assert_eq!(layers_run(&out), ["persistent", "foundation", "lambda-images", "service-images", "compute", "edge"]);
    assert_eq!(repo.ups(), ["up persistent", "up foundation", "up compute", "up edge"], "{:?}", repo.steps());
    // Each stack: a state backup (export), created on first use, previewed, then deployed.
    let steps = repo.steps();
    let persistent: Vec<&String> = steps.iter().filter(|s| s.ends_with(" persistent")).collect();
    assert_eq!(persistent, ["stack export persistent", "stack init persistent", "stack export persistent", "preview persistent", "up persistent"]);
    // The image layers built and pushed every image to the same registry, in this process.
    let err = stderr(&out);
    for image in ["tradai/lambda-base", "tradai/lambda-health-check", "tradai/lambda-drift-monitor", "tradai/backend"] {
        assert!(err.contains(&format!("built    {image}")), "{image} built:\n{err}");
        assert!(reg.digest(image, "latest").is_some(), "{image}:latest in the registry");
    }
    // Every pulumi call: non-interactive, explicit stack and folder, the passphrase only
    // in the environment.
    for e in repo.log().iter().filter(|e| e["argv"].is_array()) {
        let argv: Vec<&str> = e["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(argv.contains(&"--non-interactive"), "{argv:?}");
        let i = argv.iter().position(|a| *a == "--stack").expect("--stack");
        assert_eq!(argv[i + 1], "dev");
        let cwd = argv[argv.iter().position(|a| *a == "--cwd").expect("--cwd") + 1];
        assert!(cwd.starts_with(&repo.path().join("infra").display().to_string()), "{cwd}");
        let env: Vec<&str> = e["env"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(env.contains(&"PULUMI_CONFIG_PASSPHRASE") && env.contains(&"PULUMI_BACKEND_URL"), "{env:?}");
    }
    // The compute program got the digests the registry holds, by manifest.
    let manifest_path = repo.path().join("target/xtask/pulumi/image-manifest-dev.json");
    let manifest: Value = serde_json::from_str(&fs::read_to_string(&manifest_path).unwrap()).unwrap();
    for l in LAMBDAS {
        let r = format!("tradai/lambda-{l}");
        assert_eq!(manifest["images"][&r].as_str(), reg.digest(&r, "latest").as_deref(), "{r}");
    }
    assert_eq!(manifest["images"]["tradai/backend"].as_str(), reg.digest("tradai/backend", "latest").as_deref());
    assert_eq!(repo.state("compute", "dev")["images"], manifest["images"], "the double read the manifest through TRADAI_IMAGE_MANIFEST");
    let compute_up = repo.log().into_iter().find(|e| e["argv"][0] == "up" && e["argv"].to_string().contains("infra/compute")).unwrap();
    assert!(compute_up["env"].as_array().unwrap().iter().any(|v| v == "TRADAI_IMAGE_MANIFEST"));
    // One private state backup per deployed stack.
    let backups: Vec<PathBuf> = fs::read_dir(repo.path().join("target/xtask/pulumi-backups")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(backups.len(), 4, "{backups:?}");
    for b in &backups {
        assert_eq!(fs::metadata(b).unwrap().permissions().mode() & 0o777, 0o600, "{}", b.display());
        let v: Value = serde_json::from_str(&fs::read_to_string(b).unwrap()).unwrap();
        assert_eq!(v["version"], 3, "{}", b.display());
    }
    assert_eq!(fs::metadata(repo.path().join("target/xtask/pulumi-backups")).unwrap().permissions().mode() & 0o777, 0o700);
    for stack in ["persistent", "foundation", "compute", "edge"] {
        assert_eq!(repo.state(stack, "dev")["updates"], 1, "{stack}");
    }
}

#[test]
fn bootstrap_stops_at_the_failing_layer_and_resumes_with_from() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    let env = [("PULUMI_DOUBLE_FAIL", "compute")];
    let out = repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host], &env);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("error: infra-bootstrap dev stopped at layer compute:"), "{err}");
    assert!(last.contains("`cargo xtask infra-bootstrap dev --from compute`"), "{last}");
    assert!(last.contains("(pulumi exited with status 4)"), "{last}");
    assert!(err.contains("creating Lambda Function"), "pulumi's own error is shown: {err}");
    assert_eq!(repo.ups(), ["up persistent", "up foundation", "up compute"]);
    assert!(!repo.steps().iter().any(|s| s.ends_with(" edge")), "nothing ran for edge: {:?}", repo.steps());

    repo.clear_log();
    let out = repo.run(&["infra-bootstrap", "dev", "--from", "compute", "--registry", &reg.host], &[]);
    assert_ok(&out);
    assert_eq!(repo.ups(), ["up compute", "up edge"]);
    assert_eq!(repo.state("edge", "dev")["updates"], 1);
    assert_eq!(repo.state("persistent", "dev")["updates"], 1, "persistent was not deployed again");
}

#[test]
fn bootstrap_stops_when_publishing_images_fails() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    // The service image cannot build: the fixture base has no shell to RUN anything.
    fs::write(repo.path().join("services/backend/Dockerfile"), "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nRUN false\n").unwrap();
    let out = repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.lines().last().unwrap().contains("stopped at layer service-images"), "{err}");
    assert!(err.contains("--from service-images"), "{err}");
    assert_eq!(repo.ups(), ["up persistent", "up foundation"]);
    assert!(reg.digest("tradai/lambda-health-check", "latest").is_some(), "the Lambda layer before it was published");
    assert!(err.contains("failed   tradai/backend"), "{err}");
}

#[test]
fn bootstrap_dry_run_prints_the_steps_and_runs_nothing() {
    let repo = Repo::new();
    let out = repo.run(&["infra-bootstrap", "dev", "--dry-run"], &[]);
    assert_ok(&out);
    let text = stdout(&out);
    let layers: Vec<&str> = text.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(layers, ["persistent", "foundation", "lambda-images", "service-images", "compute", "edge"], "{text}");
    assert!(text.contains("lambda-bootstrap --registry ecr"), "{text}");
    assert!(text.contains("check the images in the registry"), "{text}");
    let out = repo.run(&["infra-bootstrap", "dev", "--dry-run", "--from", "compute"], &[]);
    assert_ok(&out);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    // With a registry it can read, the image layers show their own build and push steps.
    let reg = TestRegistry::start();
    let out = repo.run(&["infra-bootstrap", "dev", "--dry-run", "--registry", &reg.host], &[]);
    assert_ok(&out);
    let err = stderr(&out);
    for step in ["would-build tradai/lambda-health-check", "would push     tradai/lambda-health-check:inputs-", "would-build tradai/backend", "would tag      tradai/backend:latest"] {
        assert!(err.contains(step), "`{step}` missing:\n{err}");
    }
    assert!(reg.catalog().is_empty(), "a dry run pushes nothing");
    assert!(repo.log().is_empty(), "a dry run calls nothing");
}

#[test]
fn up_compute_with_a_missing_lambda_image_fails_before_any_pulumi_call() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&["tradai/lambda-drift-monitor"]);
    let out = repo.run(&["infra-up", "compute", "dev", "--registry", &reg.host], &[]);
    assert_one_line_error(
        &out,
        &["1 image(s) missing from", "tradai/lambda-drift-monitor", &format!("`cargo xtask lambda-bootstrap --registry {}`", reg.host)],
    );
    assert!(!stderr(&out).contains("tradai/lambda-health-check"), "only the missing image is named");
    assert!(repo.log().is_empty(), "pulumi was called: {:?}", repo.steps());
}

#[test]
fn destroy_persistent_is_refused_and_other_stacks_need_confirmation() {
    let repo = Repo::new();
    let out = repo.run(&["infra-destroy", "persistent", "dev", "--yes"], &[]);
    assert_one_line_error(&out, &["refusing to destroy persistent/dev", "never destroyed"]);
    assert!(repo.log().is_empty());

    for stack in ["persistent", "foundation"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev"], &[]));
    }
    repo.clear_log();
    let out = repo.run(&["infra-destroy", "foundation", "dev"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing to destroy every resource of foundation/dev without confirmation; pass --yes"), "{}", stderr(&out));
    assert!(repo.log().is_empty(), "refused before any pulumi call");
    let out = repo.run(&["infra-destroy", "foundation", "dev", "--yes"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("compute, edge read foundation's outputs"), "{}", stderr(&out));
    assert_eq!(repo.steps(), ["stack export foundation", "destroy foundation"]);
    assert_eq!(repo.state("foundation", "dev")["resources"], serde_json::json!([]));
}

#[test]
fn prod_changes_without_confirmation_are_refused() {
    let repo = Repo::new();
    for args in [
        &["infra-up", "persistent", "prod"][..],
        &["infra-up-foundation", "prod"],
        &["infra-bootstrap", "prod"],
        &["infra-destroy", "edge", "prod", "--yes"],
        &["infra-recover", "edge", "prod"],
    ] {
        let out = repo.run(args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("prod") && err.contains("without confirmation; pass --yes-prod"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert!(repo.log().is_empty(), "nothing reached pulumi: {:?}", repo.steps());
    let out = repo.run(&["infra-up", "persistent", "prod", "--yes-prod"], &[]);
    assert_ok(&out);
    assert_eq!(repo.state("persistent", "prod")["updates"], 1);
}

#[test]
fn a_persistent_preview_with_a_replacement_stops_infra_up_unless_allowed() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    repo.clear_log();
    let replace = [("PULUMI_DOUBLE_PREVIEW_OPS", "persistent:replace")];
    let out = repo.run(&["infra-up", "persistent", "dev"], &replace);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert!(last.contains("stopped before deploying persistent/dev: its preview would 1 to replace"), "{err}");
    assert!(last.contains("--allow-replace"), "{last}");
    assert_eq!(repo.steps(), ["stack export persistent", "preview persistent"], "no `up` after the preview");
    assert_eq!(repo.state("persistent", "dev")["updates"], 1);

    // Other stacks are not guarded.
    assert_ok(&repo.run(&["infra-up", "foundation", "dev"], &[("PULUMI_DOUBLE_PREVIEW_OPS", "replace")]));
    // And persistent proceeds when allowed.
    assert_ok(&repo.run(&["infra-up", "persistent", "dev", "--allow-replace"], &replace));
    assert_eq!(repo.state("persistent", "dev")["updates"], 2);
}

#[test]
fn every_seed_recipe_for_infrastructure_works_under_its_seed_name() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    fs::remove_file(repo.path().join("infra/.env")).unwrap();
    // infra-setup creates infra/.env from the template; then the test fills it in.
    let out = repo.run(&["infra-setup"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("fill in:") && stderr(&out).contains("PULUMI_CONFIG_PASSPHRASE"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(repo.path().join("infra/.env")).unwrap(), fs::read_to_string(repo.path().join("infra/.env.example")).unwrap());
    assert_eq!(fs::metadata(repo.path().join("infra/.env")).unwrap().permissions().mode() & 0o777, 0o600);
    repo.write_env(&format!(
        "S3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n",
        repo.path().join("state").display()
    ));
    let images = ["--registry", reg.host.as_str()];
    let env: [(&str, &str); 0] = [];
    let recipes: Vec<Vec<&str>> = vec![
        vec!["infra-up-persistent", "dev"],
        vec!["infra-preview-persistent", "dev"],
        vec!["infra-up-foundation", "dev"],
        vec!["infra-preview-foundation", "dev"],
        [&["infra-up-compute", "dev"][..], &images].concat(),
        [&["infra-preview-compute", "dev"][..], &images].concat(),
        vec!["infra-up-edge", "dev"],
        vec!["infra-preview-edge", "dev"],
        [&["infra-preview", "dev"][..], &images].concat(),
        vec!["infra-outputs", "persistent", "dev"],
        vec!["infra-outputs", "foundation", "dev"],
        vec!["infra-outputs", "compute", "dev"],
        vec!["infra-outputs", "edge", "dev"],
        vec!["infra-recover", "foundation", "dev"],
        [&["infra-bootstrap", "dev"][..], &images].concat(),
        vec!["infra-setup"],
    ];
    for args in &recipes {
        let out = repo.run(args, &env);
        assert_ok(&out);
    }
    let out = repo.run(&["infra-outputs", "compute", "dev"], &[]);
    let outputs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(outputs["stack_name"], "tradai-compute-dev");
    assert!(stderr(&repo.run(&["infra-setup"], &[])).contains("already exists; left unchanged"));
}

#[test]
fn unknown_names_missing_settings_and_a_missing_pulumi_are_one_line_errors_with_the_fix() {
    let repo = Repo::new();
    assert_one_line_error(&repo.run(&["infra-up", "network", "dev"], &[]), &["unknown stack `network`", "valid stacks: persistent, foundation, compute, edge"]);
    assert_one_line_error(&repo.run(&["infra-up-compute", "qa"], &[]), &["unknown environment `qa`", "valid environments: dev, staging, prod"]);
    assert_one_line_error(&repo.run(&["infra-preview", "qa"], &[]), &["unknown environment `qa`", "dev, staging, prod"]);
    assert_one_line_error(&repo.run(&["infra-preview", "network", "dev"], &[]), &["unknown stack `network`"]);
    assert_one_line_error(&repo.run(&["infra-bootstrap", "dev", "--from", "images"], &[]), &["unknown layer `images`", "lambda-images"]);

    // A value missing from infra/.env (and from the environment).
    repo.write_env("S3_PULUMI_BACKEND_URL=\nPULUMI_CONFIG_PASSPHRASE=\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n");
    assert_one_line_error(
        &repo.run(&["infra-up", "persistent", "dev"], &[]),
        &["missing settings for pulumi: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE);", "set them in infra/.env", "infra-setup"],
    );
    // ... and the process environment fills it in (it wins over the file).
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)]));
    // A malformed line names the line, not its value.
    repo.write_env(&format!("PULUMI_CONFIG_PASSPHRASE=\"{PASSPHRASE}\nAWS_PROFILE=tradai\n"));
    let out = repo.run(&["infra-outputs", "persistent", "dev"], &[]);
    assert_one_line_error(&out, &["infra/.env cannot be read: line 1: PULUMI_CONFIG_PASSPHRASE: unterminated double quote"]);
    assert!(!stderr(&out).contains(PASSPHRASE));

    // No pulumi on PATH.
    repo.write_env(&format!("PULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n"));
    let out = repo.run_with_path(&["infra-up", "persistent", "dev"], &[], "/usr/bin:/bin");
    assert_one_line_error(&out, &["the `pulumi` executable was not found on PATH; install the Pulumi CLI"]);
}

#[test]
fn the_default_backend_is_local_files_under_target_and_prod_refuses_it() {
    let repo = Repo::new();
    repo.write_env(&format!("PULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n"));
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    assert!(repo.path().join("target/pulumi-state/.pulumi/stacks/tradai-persistent/dev.json").is_file());
    let out = repo.run(&["infra-up", "persistent", "prod", "--yes-prod"], &[]);
    assert_one_line_error(&out, &["prod would use the local state backend", "set S3_PULUMI_BACKEND_URL"]);
}

#[test]
fn a_locked_stack_points_to_infra_recover_which_releases_it_and_shows_drift() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    // An update dies and leaves its lock.
    let out = repo.run(&["infra-up", "foundation", "dev"], &[("PULUMI_DOUBLE_CRASH", "foundation")]);
    assert!(!out.status.success());
    assert!(stderr(&out).lines().last().unwrap().contains("infra-recover foundation dev"), "{}", stderr(&out));
    repo.clear_log();
    let out = repo.run(&["infra-up", "foundation", "dev"], &[]);
    assert_one_line_error(&out, &["stack foundation/dev is locked by another update (held by", "run `cargo xtask infra-recover foundation dev`"]);
    assert!(repo.log().is_empty(), "the lock is found before any pulumi call");

    let out = repo.run(&["infra-recover", "foundation", "dev"], &[("PULUMI_DOUBLE_DRIFT", "foundation")]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("foundation/dev: removed the lock (held by"), "{err}");
    assert!(err.contains("the cloud differs from the state: 1 to update"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(repo.steps(), ["cancel foundation", "refresh foundation"]);
    assert_eq!(repo.state("foundation", "dev")["refreshes"], 0, "no state was written");

    let out = repo.run(&["infra-recover", "foundation", "dev", "--write"], &[]);
    assert_ok(&out);
    assert_eq!(repo.state("foundation", "dev")["refreshes"], 1);
    assert_ok(&repo.run(&["infra-up", "foundation", "dev"], &[]));
    assert_eq!(repo.state("foundation", "dev")["updates"], 2);
}

#[test]
fn recover_releases_a_lock_left_by_another_process() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    let lock = repo.path().join("state/.pulumi/locks/organization/tradai-persistent/dev");
    fs::create_dir_all(&lock).unwrap();
    fs::write(lock.join("x.json"), r#"{"pid": 7, "username": "ci", "hostname": "runner", "timestamp": "t"}"#).unwrap();
    let out = repo.run(&["infra-recover", "persistent", "dev"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("removed the lock (held by ci@runner, pid 7, since t)"), "{}", stderr(&out));
    assert!(!lock.join("x.json").exists());
}

#[test]
fn outputs_are_json_with_secrets_masked_unless_asked() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    let out = repo.run(&["infra-outputs", "persistent", "dev"], &[]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["connection_secret"], "[secret]");
    assert_eq!(v["stack_name"], "tradai-persistent-dev");
    let out = repo.run(&["infra-outputs", "persistent", "dev", "--show-secrets"], &[]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["connection_secret"], "double-secret-tradai-persistent-dev");
}

#[test]
fn preview_expect_no_changes_fails_on_drift_and_previews_all_stacks_in_order() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    for stack in ["persistent", "foundation", "compute", "edge"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev", "--registry", &reg.host], &[]));
    }
    repo.clear_log();
    let out = repo.run(&["infra-preview", "dev", "--expect-no-changes", "--registry", &reg.host, "--json"], &[]);
    assert_ok(&out);
    assert_eq!(repo.steps(), ["preview persistent", "preview foundation", "preview compute", "preview edge"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["stacks"].as_array().unwrap().len(), 4);
    assert_eq!(v["stacks"][0]["summary"], "no changes");

    let out = repo.run(&["infra-preview", "dev", "--expect-no-changes", "--registry", &reg.host], &[("PULUMI_DOUBLE_PREVIEW_OPS", "edge:update")]);
    assert!(!out.status.success());
    let last = stderr(&out).lines().last().unwrap().to_owned();
    assert!(last.contains("changes found where none were expected: edge/dev (1 to update)"), "{last}");
    // Without the flag, changes are fine.
    assert_ok(&repo.run(&["infra-preview", "edge", "dev"], &[("PULUMI_DOUBLE_PREVIEW_OPS", "edge:update")]));
}

#[test]
fn stack_not_found_and_a_wrong_passphrase_are_clear_on_new_and_old_clis() {
    let repo = Repo::new();
    for legacy in ["0", "1"] {
        let env = [("PULUMI_DOUBLE_LEGACY_EXIT", legacy)];
        let out = repo.run(&["infra-outputs", "edge", "dev"], &env);
        assert_one_line_error(&out, &["stack edge/dev does not exist in the state backend", "`cargo xtask infra-up edge dev`"]);
    }
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    for legacy in ["0", "1"] {
        let env = [("PULUMI_DOUBLE_LEGACY_EXIT", legacy), ("PULUMI_CONFIG_PASSPHRASE", "not-the-right-one")];
        let out = repo.run(&["infra-outputs", "persistent", "dev"], &env);
        assert_one_line_error(&out, &["cannot decrypt persistent/dev", "is not the passphrase the stack was created with"]);
        assert!(!stderr(&out).contains("not-the-right-one"));
    }
}

#[test]
fn the_passphrase_never_appears_in_output_logs_files_or_argv() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&["tradai/backend"]);
    let env: [(&str, &str); 0] = [];
    let mut outputs = Vec::new();
    let runs: Vec<Vec<&str>> = vec![
        vec!["infra-bootstrap", "dev", "--registry", &reg.host, "-vv"],
        vec!["infra-up", "compute", "dev", "--registry", &reg.host, "-vv"],
        vec!["infra-outputs", "persistent", "dev", "--show-secrets"],
        vec!["infra-recover", "persistent", "dev", "--write", "-vv"],
        vec!["infra-preview", "dev", "--registry", &reg.host, "-vv"],
        vec!["infra-destroy", "edge", "dev", "--yes"],
        vec!["infra-bootstrap", "dev", "--dry-run"],
    ];
    for args in &runs {
        outputs.push(repo.run(args, &env));
    }
    outputs.push(repo.run(&["infra-up", "foundation", "dev"], &[("PULUMI_DOUBLE_FAIL", "foundation"), ("PULUMI_DOUBLE_LEGACY_EXIT", "1")]));
    // The runs did reach pulumi.
    assert!(repo.log().len() > 10);
    for out in &outputs {
        assert!(!stdout(out).contains(PASSPHRASE) && !stderr(out).contains(PASSPHRASE), "{}\n{}", stdout(out), stderr(out));
    }
    let log = fs::read_to_string(repo.log_path()).unwrap();
    assert!(!log.contains(PASSPHRASE), "the invocation log holds the passphrase");
    for e in repo.log().iter().filter(|e| e["argv"].is_array()) {
        assert!(e["env"].as_array().unwrap().iter().any(|v| v == "PULUMI_CONFIG_PASSPHRASE"), "{e}");
    }
    // No file the tool or the double wrote holds it (infra/.env itself aside).
    let mut dirs = vec![repo.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p != repo.path().join("infra/.env") {
                let bytes = fs::read(&p).unwrap_or_default();
                assert!(!String::from_utf8_lossy(&bytes).contains(PASSPHRASE), "{} holds the passphrase", p.display());
            }
        }
    }
}

/// Creates ECR repositories `create` in moto and puts an image tagged `latest` into each
/// of `put`; returns the digest moto gives each put image.
fn seed_ecr(moto: &Moto, create: &[String], put: &[String]) -> std::collections::BTreeMap<String, String> {
    let code = format!(
        "ecr = boto3.client('ecr')\n\
         m = json.dumps({{'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json', \
         'config': {{'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': 2, 'digest': 'sha256:' + '1' * 64}}, 'layers': []}})\n\
         for r in {create:?}:\n    ecr.create_repository(repositoryName=r)\n\
         for r in {put:?}:\n    print(r, ecr.put_image(repositoryName=r, imageTag='latest', imageManifest=m)['image']['imageId']['imageDigest'])\n"
    );
    moto.seed(&code)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, d)| (r.to_owned(), d.trim().to_owned()))
        .collect()
}

#[test]
fn up_compute_checks_ecr_through_the_aws_api_before_any_pulumi_call() {
    let moto = Moto::start();
    let repo = Repo::new();
    // CI style: credentials in the environment, no profile.
    repo.write_env(&format!(
        "S3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE='{PASSPHRASE}'\nAWS_REGION=eu-central-1\n",
        repo.path().join("state").display()
    ));
    let moto_env = moto.env();
    let env: Vec<(&str, &str)> = moto_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for stack in ["persistent", "foundation"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev"], &env));
    }
    let repos: Vec<String> = LAMBDAS.iter().map(|l| format!("tradai/lambda-{l}")).chain(SERVICES.iter().map(|s| format!("tradai/{s}"))).collect();
    let all_but_one: Vec<String> = repos.iter().filter(|r| *r != "tradai/lambda-drift-monitor").cloned().collect();
    let mut digests = seed_ecr(&moto, &repos, &all_but_one);
    assert_eq!(digests.len(), all_but_one.len());
    repo.clear_log();
    // The default registry is ECR.
    let out = repo.run(&["infra-up", "compute", "dev"], &env);
    assert_one_line_error(&out, &["1 image(s) missing from ecr for dev: tradai/lambda-drift-monitor", "`cargo xtask lambda-bootstrap --registry ecr`"]);
    assert!(repo.log().is_empty(), "pulumi was called: {:?}", repo.steps());

    digests.extend(seed_ecr(&moto, &[], &["tradai/lambda-drift-monitor".to_owned()]));
    let out = repo.run(&["infra-up", "compute", "dev"], &env);
    assert_ok(&out);
    let manifest: Value = serde_json::from_str(&fs::read_to_string(repo.path().join("target/xtask/pulumi/image-manifest-dev.json")).unwrap()).unwrap();
    assert_eq!(manifest, serde_json::json!({ "images": digests }));
    assert_eq!(repo.state("compute", "dev")["images"], manifest["images"]);
}

#[test]
fn bootstrap_publishes_real_images_that_compute_then_pins() {
    // The image layers for real: `lambda-bootstrap` and `service-push-all` as subprocesses
    // of the binary, building with Docker and pushing to a loopback registry.
    let fixture = support::Fixture::new(&["health-check"]);
    let root = fixture.path();
    for stack in ["persistent", "foundation", "compute", "edge"] {
        copy_program(&repo_root().join("infra").join(stack), &root.join("infra").join(stack));
    }
    fs::write(
        root.join("infra/.env"),
        format!("S3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE='{PASSPHRASE}'\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n", root.join("state").display()),
    )
    .unwrap();
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(double_exe(), bin.join("pulumi")).unwrap();
    let reg = TestRegistry::start();
    let log = root.join("pulumi.log");
    // The machine's environment (Docker, uv), minus anything that would change the run.
    let mut c = Command::new(support::bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("PULUMI_") || k.starts_with("AWS_") || k.starts_with("XTASK_") || k == "S3_PULUMI_BACKEND_URL" || k == "GITHUB_ACTIONS" {
            c.env_remove(k);
        }
    }
    c.env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())).env("PULUMI_DOUBLE_LOG", &log);
    c.args(["infra-bootstrap", "dev", "--registry", &reg.host, "--root"]).arg(root);
    let out = c.output().unwrap();
    assert_ok(&out);
    let digest = reg.digest("tradai/lambda-health-check", "latest").expect("lambda-bootstrap pushed the image with the latest tag");
    let manifest: Value = serde_json::from_str(&fs::read_to_string(root.join("target/xtask/pulumi/image-manifest-dev.json")).unwrap()).unwrap();
    assert_eq!(manifest, serde_json::json!({ "images": { "tradai/lambda-health-check": digest } }));
    let text = fs::read_to_string(&log).unwrap();
    let ups: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["argv"][0] == "up")
        .map(|e| e["argv"].to_string())
        .collect();
    assert_eq!(ups.len(), 4);
    for (up, stack) in ups.iter().zip(["persistent", "foundation", "compute", "edge"]) {
        assert!(up.contains(&format!("infra/{stack}")), "{up}");
    }
}
