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
        // Files unique to this repository in lambda-base's and each service's context:
        // its images get hashes of their own, so the engine, shared by every test, never
        // hands one test the images another built.
        let id = format!("{}\n", root.display());
        write("lambdas/base/.fixture-id", &id);
        for name in SERVICES {
            write(&format!("services/{name}/.fixture-id"), &id);
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
        self.command_with_path(args, env, path).output().expect("xtask runs")
    }

    /// The command [`Repo::run`] runs, to start it in the background.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        self.command_with_path(args, env, &path)
    }

    fn command_with_path(&self, args: &[&str], env: &[(&str, &str)], path: &str) -> Command {
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
        c
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

/// The line every infra command prints once its settings are checked: which backend it uses.
const BACKEND_LINE: &str = "state backend: ";

/// Fails with exactly one line on stderr (besides the backend line), which contains every
/// needle.
#[track_caller]
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure, got success\nstderr:\n{}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(BACKEND_LINE)).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in: {}", lines[0]);
    }
}

/// Fails, and the last line on stderr is the error, with every needle.
#[track_caller]
fn assert_fails_with(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure, got success\nstderr:\n{}", stderr(out));
    let err = stderr(out);
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "the last line is not the error:\n{err}");
    for n in needles {
        assert!(last.contains(n), "{n:?} not in: {last}");
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
    // Each stack: a state backup (export), created on first use, previewed, deployed, then
    // its state read (export) for the record that lets the next run skip it.
    let steps = repo.steps();
    let persistent: Vec<&String> = steps.iter().filter(|s| s.ends_with(" persistent")).collect();
    assert_eq!(
        persistent,
        ["stack export persistent", "stack init persistent", "stack export persistent", "preview persistent", "up persistent", "stack export persistent"]
    );
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
    // Pulumi reports a failed resource on stdout and exits 1; its reason reaches the error line.
    assert!(last.contains("(pulumi exited with status 1): aws:lambda/function:Function (health-check): creating Lambda Function"), "{last}");
    assert!(err.contains("Diagnostics:"), "pulumi's own output is shown as it comes: {err}");
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
        &["infra-recover", "edge", "prod", "--cancel"],
        &["infra-recover", "edge", "prod", "--write"],
    ] {
        let out = repo.run(args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("prod") && err.contains("without confirmation; pass --yes-prod"), "{args:?}: {err}");
        assert_eq!(err.lines().filter(|l| !l.starts_with(BACKEND_LINE)).count(), 1, "{args:?}: {err}");
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
    // Its inputs are unchanged (the replacement stands for drift): --force previews it.
    let out = repo.run(&["infra-up", "persistent", "dev", "--force"], &replace);
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
    assert_ok(&repo.run(&["infra-up", "persistent", "dev", "--allow-replace", "--force"], &replace));
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
        &[
            "missing settings for pulumi: S3_PULUMI_BACKEND_URL (the shared state backend",
            "--local-state",
            "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE);",
            "set them in infra/.env",
            "infra-setup",
        ],
    );
    // ... and the process environment fills it in (it wins over the file).
    assert_ok(&repo.run(&["infra-up", "persistent", "dev", "--local-state"], &[("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)]));
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
fn no_backend_stops_every_environment_and_local_state_is_only_used_when_asked() {
    let repo = Repo::new();
    repo.write_env(&format!("S3_PULUMI_BACKEND_URL=\nPULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n"));
    // dev and staging too: nothing configured is never a silent local default.
    for args in [&["infra-up", "persistent", "dev"][..], &["infra-up", "persistent", "staging"], &["infra-preview", "dev"], &["infra-outputs", "edge", "dev"], &["infra-recover", "edge", "dev"], &["infra-destroy", "edge", "dev", "--yes"]] {
        assert_one_line_error(&repo.run(args, &[]), &["missing settings for pulumi: S3_PULUMI_BACKEND_URL (the shared state backend"]);
    }
    assert!(repo.log().is_empty(), "nothing reached pulumi: {:?}", repo.steps());
    assert!(!repo.path().join("target/pulumi-state").exists());

    // --local-state: a folder under the target directory, said so on one line.
    let out = repo.run(&["infra-up", "persistent", "dev", "--local-state"], &[]);
    assert_ok(&out);
    let state = repo.path().join("target/pulumi-state");
    let line = format!("{BACKEND_LINE}file://{} (--local-state: on this machine only)", state.display());
    assert_eq!(stderr(&out).lines().filter(|l| l.starts_with(BACKEND_LINE)).collect::<Vec<_>>(), [line.as_str()], "{}", stderr(&out));
    assert!(state.join(".pulumi/stacks/tradai-persistent/dev.json").is_file());
    // Prod's state lives only in the shared backend.
    let out = repo.run(&["infra-up", "persistent", "prod", "--yes-prod", "--local-state"], &[]);
    assert_one_line_error(&out, &["--local-state keeps state on this machine, and prod's state lives only in the shared backend", "set S3_PULUMI_BACKEND_URL"]);
    // --local-state beside a configured backend is a conflict, not a silent choice.
    repo.write_env(&format!("S3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n", repo.path().join("state").display()));
    assert_one_line_error(&repo.run(&["infra-outputs", "persistent", "dev", "--local-state"], &[]), &["--local-state and S3_PULUMI_BACKEND_URL both name a state backend"]);
    // Every infra command that runs pulumi names its backend, from the variable.
    for args in [&["infra-outputs", "persistent", "dev"][..], &["infra-recover", "persistent", "dev"], &["infra-preview", "persistent", "dev"]] {
        let out = repo.run(args, &[]);
        let want = format!("{BACKEND_LINE}file://{} (from S3_PULUMI_BACKEND_URL)", repo.path().join("state").display());
        assert!(stderr(&out).lines().any(|l| l == want), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn the_backend_line_never_shows_a_credential() {
    let repo = Repo::new();
    // A backend URL with credentials (a Postgres DIY backend): the double cannot use it,
    // but the line is printed before any pulumi call, and the failure is redacted too.
    repo.write_env(&format!("S3_PULUMI_BACKEND_URL=postgres://deploy:s3cr3t-pw@db.internal/pulumi?sslmode=require&password=s3cr3t-pw\nPULUMI_CONFIG_PASSPHRASE={PASSPHRASE}\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n"));
    let out = repo.run(&["infra-outputs", "persistent", "dev"], &[]);
    let err = stderr(&out);
    assert!(err.lines().any(|l| l == "state backend: postgres://***@db.internal/pulumi?sslmode=require&password=*** (from S3_PULUMI_BACKEND_URL)"), "{err}");
    assert!(!err.contains("s3cr3t-pw") && !stdout(&out).contains("s3cr3t-pw"), "{err}");
}

/// Writes a DIY lock for `stack`/dev as Pulumi does, taken `age_secs` ago (UTC, RFC 3339).
fn write_lock(repo: &Repo, stack: &str, age_secs: u64) -> PathBuf {
    let dir = repo.path().join(format!("state/.pulumi/locks/organization/tradai-{stack}/dev"));
    fs::create_dir_all(&dir).unwrap();
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
    let out = Command::new("date").args(["-u", "-d"]).arg(format!("@{}", then.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())).arg("+%Y-%m-%dT%H:%M:%S.123456789Z").output().unwrap();
    let ts = String::from_utf8(out.stdout).unwrap();
    let path = dir.join("5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f.json");
    fs::write(&path, format!(r#"{{"pid":7,"username":"ci","hostname":"runner","timestamp":"{}"}}"#, ts.trim())).unwrap();
    path
}

#[test]
fn a_lock_is_shown_with_owner_and_age_and_released_only_with_cancel() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    // An update dies and leaves its lock.
    let out = repo.run(&["infra-up", "foundation", "dev"], &[("PULUMI_DOUBLE_CRASH", "foundation")]);
    assert!(!out.status.success());
    assert!(stderr(&out).lines().last().unwrap().contains("infra-recover foundation dev"), "{}", stderr(&out));
    repo.clear_log();
    let out = repo.run(&["infra-up", "foundation", "dev"], &[]);
    assert_one_line_error(&out, &["stack foundation/dev is locked by another update (held by ", " ago)", "`cargo xtask infra-recover foundation dev` shows who holds the lock"]);
    assert!(repo.log().is_empty(), "the lock is found before any pulumi call");

    // Without --cancel: the lock's owner and age, the drift, and nothing released.
    let out = repo.run(&["infra-recover", "foundation", "dev"], &[("PULUMI_DOUBLE_DRIFT", "foundation")]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("foundation/dev: locked by ") && err.contains(" ago ("), "{err}");
    assert!(err.contains("release it with `cargo xtask infra-recover foundation dev --cancel`"), "{err}");
    assert!(err.contains("(by hand: `PULUMI_BACKEND_URL='file://") && err.contains("pulumi cancel --yes --stack dev --cwd infra/foundation`)"), "{err}");
    assert!(err.contains("the cloud differs from the state: 1 to update"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(repo.steps(), ["refresh foundation"], "no cancel");
    assert_eq!(fs::read_dir(repo.path().join("state/.pulumi/locks/organization/tradai-foundation/dev")).unwrap().count(), 1);

    // --cancel: the crashed update's lock is seconds old, younger than the default 15m.
    let out = repo.run(&["infra-recover", "foundation", "dev", "--cancel"], &[]);
    assert_fails_with(&out, &["refusing to release the lock of foundation/dev: it is ", "younger than --min-lock-age 15m,", "rerun with --force"]);
    assert!(stderr(&out).contains("foundation/dev: locked by "), "the lock is shown first");
    // --min-lock-age 0 (or --force) releases it.
    repo.clear_log();
    let out = repo.run(&["infra-recover", "foundation", "dev", "--cancel", "--min-lock-age", "0"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("foundation/dev: lock released"), "{}", stderr(&out));
    assert_eq!(repo.steps(), ["cancel foundation", "refresh foundation"]);
    assert_eq!(repo.state("foundation", "dev")["refreshes"], 0, "no state was written");

    let out = repo.run(&["infra-recover", "foundation", "dev", "--write"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("foundation/dev: not locked"), "{}", stderr(&out));
    assert_eq!(repo.state("foundation", "dev")["refreshes"], 1);
    assert_ok(&repo.run(&["infra-up", "foundation", "dev", "--force"], &[]));
    assert_eq!(repo.state("foundation", "dev")["updates"], 2);
}

#[test]
fn recover_refuses_a_young_lock_or_one_of_unknown_age_unless_forced() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    // A colleague's update, 3 minutes old: refused at the default age, released past a
    // smaller one.
    let lock = write_lock(&repo, "persistent", 180);
    let out = repo.run(&["infra-recover", "persistent", "dev"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("persistent/dev: locked by ci@runner (pid 7) since "), "{}", stderr(&out));
    assert!(stderr(&out).contains(", 3m"), "the age: {}", stderr(&out));
    assert_fails_with(&repo.run(&["infra-recover", "persistent", "dev", "--cancel"], &[]), &["it is 3m", "younger than --min-lock-age 15m,"]);
    assert!(lock.exists());
    assert_one_line_error(&repo.run(&["infra-recover", "persistent", "dev", "--cancel", "--min-lock-age", "forever"], &[]), &["`forever` is not a duration"]);
    assert_ok(&repo.run(&["infra-recover", "persistent", "dev", "--cancel", "--min-lock-age", "2m"], &[]));
    assert!(!lock.exists());
    // An hour old: released at the default age.
    let lock = write_lock(&repo, "persistent", 3600);
    assert_ok(&repo.run(&["infra-recover", "persistent", "dev", "--cancel"], &[]));
    assert!(!lock.exists());
    // A lock whose time cannot be read: only with --force.
    let lock = write_lock(&repo, "persistent", 0);
    fs::write(&lock, r#"{"pid": 7, "username": "ci", "hostname": "runner", "timestamp": "t"}"#).unwrap();
    assert_fails_with(&repo.run(&["infra-recover", "persistent", "dev", "--cancel"], &[]), &["its age cannot be read here", "--force"]);
    assert!(lock.exists());
    assert_ok(&repo.run(&["infra-recover", "persistent", "dev", "--cancel", "--force"], &[]));
    assert!(!lock.exists());
    // --force means nothing without --cancel.
    assert!(stderr(&repo.run(&["infra-recover", "persistent", "dev", "--force"], &[])).contains("--cancel"));
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

#[test]
fn recovery_instructions_run_nothing_and_are_all_the_deploy_workflow_does_on_failure() {
    let repo = Repo::new();
    let summary = repo.path().join("summary.md");
    let env = [("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())];
    let out = repo.run(&["infra-recover", "compute", "prod", "--instructions"], &env);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.starts_with("Deployment of compute to prod failed. Nothing was released"), "{err}");
    assert!(err.contains("release the lock: `cargo xtask infra-recover compute prod --cancel`") && err.contains("(prod: add `--yes-prod`)"), "{err}");
    assert!(err.contains("::error title=Infrastructure deployment failed::no lock was released"), "{err}");
    assert!(fs::read_to_string(&summary).unwrap().starts_with("### Deployment of compute to prod failed"));
    assert!(repo.log().is_empty(), "nothing ran");
    // After a failed infra-bootstrap the workflow does not know the stack: `all`.
    let out = repo.run(&["infra-recover", "all", "dev", "--instructions"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("`cargo xtask infra-recover <stack> dev --cancel`"), "{}", stderr(&out));
    assert_one_line_error(&repo.run(&["infra-recover", "all", "dev"], &[]), &["infra-recover works on one stack"]);
    assert!(stderr(&repo.run(&["infra-recover", "edge", "dev", "--instructions", "--cancel"], &[])).contains("cannot be used with"));
    // The deploy workflow: every infra-recover it runs only prints the instructions.
    let workflow = fs::read_to_string(repo_root().join(".github/workflows/deploy-infra.yml")).unwrap();
    let calls: Vec<&str> = workflow.lines().filter(|l| l.contains("cargo xtask infra-recover")).collect();
    assert!(!calls.is_empty(), "the workflow prints the recovery instructions");
    for call in calls {
        assert!(call.contains("--instructions") && !call.contains("--cancel"), "{call}");
    }
}

/// Starts `args` in the background and waits until the double's `up` of `stack`/dev holds
/// its lock (it runs slowly: `PULUMI_DOUBLE_UP_DELAY_MS`).
fn start_slow_up(repo: &Repo, stack: &str, args: &[&str]) -> std::process::Child {
    let mut c = repo.command(args, &[("PULUMI_DOUBLE_UP_DELAY_MS", "700")]);
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let locks = repo.path().join(format!("state/.pulumi/locks/organization/tradai-{stack}/dev"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while fs::read_dir(&locks).map_or(0, Iterator::count) == 0 {
        assert!(std::time::Instant::now() < deadline, "pulumi up of {stack} never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Into the first resource step.
    std::thread::sleep(std::time::Duration::from_millis(200));
    child
}

fn signal(child: &std::process::Child, name: &str) {
    assert!(Command::new("kill").args([name, &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn sigint_during_up_reaches_pulumi_which_cancels_and_releases_the_lock_and_the_tool_exits_130() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    let child = start_slow_up(&repo, "foundation", &["infra-up", "foundation", "dev"]);
    // SIGINT to the tool alone (pulumi runs in a process group of its own, as a Ctrl-C
    // typed at the terminal would reach only the tool).
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("xtask: SIGINT received; passed on to pulumi"), "{err}");
    // The tool kept reading pulumi's output until it exited: pulumi's own lines are there.
    assert!(err.contains("^C received; cancelling. If you would like to terminate immediately, press ^C again."), "{err}");
    assert!(err.contains("error: update cancelled"), "{err}");
    let last = err.lines().last().unwrap();
    assert_eq!(
        last,
        "error: stopped on SIGINT: pulumi, run to deploy for foundation/dev, got it and exited with status 8 (update cancelled); it released the stack's lock"
    );
    let locks = repo.path().join("state/.pulumi/locks/organization/tradai-foundation/dev");
    assert_eq!(fs::read_dir(&locks).unwrap().count(), 0, "no lock left behind");
    assert_eq!(repo.state("foundation", "dev")["updates"], 0, "the update did not complete");
    // Nothing to recover: the next deploy just runs.
    assert_ok(&repo.run(&["infra-up", "foundation", "dev"], &[]));
    assert_eq!(repo.state("foundation", "dev")["updates"], 1);
}

#[test]
fn sigterm_during_bootstrap_stops_it_with_143_and_no_lock() {
    let repo = Repo::new();
    let child = start_slow_up(&repo, "persistent", &["infra-bootstrap", "dev", "--from", "persistent", "--registry", "127.0.0.1:9"]);
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("SIGTERM received; cancelling."), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("error: infra-bootstrap dev stopped at layer persistent: stopped on SIGTERM: pulumi, run to deploy for persistent/dev"), "{last}");
    assert!(last.contains("it released the stack's lock") && last.contains("--from persistent"), "{last}");
    assert!(!repo.steps().iter().any(|s| s.ends_with(" foundation")), "nothing ran after the signal: {:?}", repo.steps());
    assert_eq!(fs::read_dir(repo.path().join("state/.pulumi/locks/organization/tradai-persistent/dev")).unwrap().count(), 0);
}

#[test]
fn a_failed_previews_reason_reaches_the_user() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    // Pulumi reports a resource that fails in a preview on stdout (in the digest's
    // diagnostics), exits 1 and says nothing on stderr; the reason is still the error's.
    for legacy in ["0", "1"] {
        let env = [("PULUMI_DOUBLE_FAIL", "persistent:preview"), ("PULUMI_DOUBLE_LEGACY_EXIT", legacy)];
        let out = repo.run(&["infra-preview", "persistent", "dev"], &env);
        assert!(!out.status.success());
        let status = if legacy == "1" { "255" } else { "1" };
        let want = format!(
            "persistent/dev: preview failed: failed to preview the changes for persistent/dev (pulumi exited with status {status}): aws:s3/bucketV2:BucketV2 (configs): Preview failed: creating S3 Bucket (tradai-configs-dev): InvalidBucketName"
        );
        assert!(stderr(&out).contains(&want), "{}", stderr(&out));
        assert!(stderr(&out).lines().last().unwrap().contains("InvalidBucketName"), "{}", stderr(&out));
    }
    // The same preview inside infra-up.
    let out = repo.run(&["infra-up", "persistent", "dev", "--force"], &[("PULUMI_DOUBLE_FAIL", "persistent:preview")]);
    assert_fails_with(&out, &["failed to preview the changes for persistent/dev (pulumi exited with status 1):", "InvalidBucketName"]);
    // A StackReference to a stack that was never deployed: told which, and how to deploy it.
    // (edge exists, created by hand; foundation, which it reads, does not.)
    let init = Command::new(double_exe())
        .args(["stack", "init", "--stack", "dev", "--non-interactive", "--cwd"])
        .arg(repo.path().join("infra/edge"))
        .env("PULUMI_BACKEND_URL", format!("file://{}", repo.path().join("state").display()))
        .env("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = repo.run(&["infra-preview", "edge", "dev"], &[]);
    let last = stderr(&out).lines().last().unwrap().to_owned();
    assert!(
        last.contains("failed to preview the changes for edge/dev: it reads the outputs of foundation/dev, which does not exist in this state backend")
            && last.contains("deploy it first with `cargo xtask infra-up foundation dev`"),
        "{last}"
    );
}

#[test]
fn destroy_lists_what_stays_and_keeps_protected_resources() {
    let repo = Repo::new();
    let flags = [("PULUMI_DOUBLE_PROTECT", "foundation:rds"), ("PULUMI_DOUBLE_RETAIN", "foundation:sqs")];
    for stack in ["persistent", "foundation"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev"], &flags));
    }
    repo.clear_log();
    let out = repo.run(&["infra-destroy", "foundation", "dev", "--yes"], &[]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("foundation/dev: 2 resource(s) stay after the destroy:"), "{err}");
    let line = |needle: &str| err.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle} line in {err}")).to_owned();
    assert!(line("tradai:index:Module::rds").ends_with("protected: not deleted, and stays in the state"), "{err}");
    assert!(line("tradai:index:Module::sqs").ends_with("retain-on-delete: removed from the state, left in the cloud"), "{err}");
    assert!(err.contains("pulumi destroy runs with --exclude-protected"), "{err}");
    // The list comes from the backup, before the destroy; pulumi is told to keep them.
    assert_eq!(repo.steps(), ["stack export foundation", "destroy foundation"]);
    let destroy = repo.log().into_iter().find(|e| e["argv"][0] == "destroy").unwrap();
    assert!(destroy["argv"].as_array().unwrap().iter().any(|a| a == "--exclude-protected"), "{destroy}");
    let left: Vec<String> = repo.state("foundation", "dev")["resources"].as_array().unwrap().iter().map(|r| r["urn"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, ["urn:pulumi:dev::tradai-foundation::tradai:index:Module::rds"]);
    assert!(err.lines().any(|l| l == "foundation/dev: destroyed, except the 2 resource(s) listed above"), "{err}");

    // A stack with nothing protected: no list, no --exclude-protected.
    let repo = Repo::new();
    for stack in ["persistent", "foundation"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev"], &[]));
    }
    repo.clear_log();
    let out = repo.run(&["infra-destroy", "foundation", "dev", "--yes"], &[]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("stay after the destroy"), "{}", stderr(&out));
    let destroy = repo.log().into_iter().find(|e| e["argv"][0] == "destroy").unwrap();
    assert!(!destroy["argv"].as_array().unwrap().iter().any(|a| a == "--exclude-protected"), "{destroy}");
    assert!(stderr(&out).lines().any(|l| l == "foundation/dev: destroyed"), "{}", stderr(&out));
}

#[test]
fn diff_and_pulumi_verbose_pass_through_to_pulumi() {
    let repo = Repo::new();
    let env = [("PULUMI_DOUBLE_PREVIEW_OPS", "persistent:update")];
    let out = repo.run(&["infra-up", "persistent", "dev", "--diff", "--pulumi-verbose", "9"], &env);
    assert_ok(&out);
    let argv = |word: &str| -> Vec<String> {
        let e = repo.log().into_iter().find(|e| e["argv"][0] == word).unwrap_or_else(|| panic!("no {word} call"));
        e["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    };
    for word in ["preview", "up"] {
        let a = argv(word);
        for flag in ["--diff", "--logtostderr", "-v=9"] {
            assert!(a.contains(&flag.to_owned()), "{word}: {a:?}");
        }
    }
    // The backup gets the logs too, but --diff only goes where Pulumi has it.
    let export = argv("stack");
    assert!(export.contains(&"-v=9".to_owned()) && !export.contains(&"--diff".to_owned()), "{export:?}");
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.starts_with('I') && l.contains(" double.go:1] pulumi double") && l.contains("verbosity 9")), "pulumi's logs are shown: {err}");
    assert!(err.contains("persistent/dev: what each change touches (--diff):"), "{err}");
    assert!(err.contains("tradai:index:Module::cloudtrail: tags.Owner (update)"), "{err}");
    assert_one_line_error(&repo.run(&["infra-preview", "persistent", "dev", "--pulumi-verbose", "0"], &[]), &["--pulumi-verbose"]);
    // destroy takes them too.
    assert_ok(&repo.run(&["infra-up", "foundation", "dev"], &[]));
    repo.clear_log();
    assert_ok(&repo.run(&["infra-destroy", "foundation", "dev", "--yes", "--diff"], &[]));
    assert!(argv("destroy").contains(&"--diff".to_owned()));
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

// ---------------------------------------------------------------------------------------
// The published image manifest, preview summaries, and stacks skipped by input hash.
// ---------------------------------------------------------------------------------------

/// The published manifest publishing to `reg` wrote, as JSON.
fn published_manifest(repo: &Repo, reg: &TestRegistry) -> Value {
    let path = repo.path().join(format!("infra/compute/.image-manifests/{}.json", reg.host.replace(':', "_")));
    serde_json::from_str(&fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn publishing_records_the_pushed_digests_where_the_compute_program_reads_them() {
    let repo = Repo::new();
    let reg = TestRegistry::start();
    assert_ok(&repo.run(&["lambda-bootstrap", "--registry", &reg.host], &[]));
    let lambdas = published_manifest(&repo, &reg);
    assert_eq!(lambdas["registry"], reg.host.as_str());
    let images = lambdas["images"].as_object().unwrap();
    let mut expected = vec!["tradai/lambda-base".to_owned()];
    expected.extend(LAMBDAS.iter().map(|l| format!("tradai/lambda-{l}")));
    expected.sort();
    assert_eq!(images.keys().cloned().collect::<Vec<_>>(), expected);
    for (repository, digest) in images {
        assert_eq!(Some(digest.as_str().unwrap().to_owned()), reg.digest(repository, "latest"), "{repository}: the digest `latest` points at");
    }
    // The service push adds its image to the same file; the Lambda entries stay.
    assert_ok(&repo.run(&["service-push-all", "--registry", &reg.host], &[]));
    let all = published_manifest(&repo, &reg);
    assert_eq!(all["images"]["tradai/backend"].as_str(), reg.digest("tradai/backend", "latest").as_deref());
    assert_eq!(all["images"]["tradai/lambda-health-check"], lambdas["images"]["tradai/lambda-health-check"]);
    // The folder keeps itself out of git.
    assert_eq!(fs::read_to_string(repo.path().join("infra/compute/.image-manifests/.gitignore")).unwrap().lines().last(), Some("*"));
    // A handler edit republishes that Lambda; the manifest follows the registry.
    fs::write(repo.path().join("lambdas/health-check/handler.py"), "def lambda_handler(event, context):\n    return {'v': 2}\n").unwrap();
    assert_ok(&repo.run(&["lambda-push-all", "--registry", &reg.host], &[]));
    let after = published_manifest(&repo, &reg);
    assert_ne!(after["images"]["tradai/lambda-health-check"], lambdas["images"]["tradai/lambda-health-check"]);
    assert_eq!(after["images"]["tradai/lambda-health-check"].as_str(), reg.digest("tradai/lambda-health-check", "latest").as_deref());
    assert_eq!(after["images"]["tradai/lambda-drift-monitor"], lambdas["images"]["tradai/lambda-drift-monitor"]);
}

/// Deploys the four stacks with `infra-up` (images from `reg`).
fn deploy_all(repo: &Repo, reg: &TestRegistry) {
    for stack in ["persistent", "foundation", "compute", "edge"] {
        assert_ok(&repo.run(&["infra-up", stack, "dev", "--registry", &reg.host], &[]));
    }
}

#[test]
fn preview_counts_reach_the_terminal_json_step_summary_and_pr_comment() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    deploy_all(&repo, &reg);
    // One of each change, as the double's previews report them in `changeSummary`: a
    // module added to foundation (create), one removed from edge (delete), an update of
    // persistent and a replacement in compute.
    fs::write(repo.path().join("infra/foundation/modules/extra.py"), "EXTRA = 1\n").unwrap();
    fs::remove_file(repo.path().join("infra/edge/modules/waf.py")).unwrap();
    let summary = repo.path().join("step-summary.md");
    let comment = repo.path().join("preview-dev.md");
    let env = [("PULUMI_DOUBLE_PREVIEW_OPS", "persistent:update,compute:replace"), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())];
    let out = repo.run(&["infra-preview", "dev", "--json", "--registry", &reg.host, "--pr-comment", comment.to_str().unwrap()], &env);
    assert_ok(&out);
    let expected = [("persistent", [0, 1, 0, 0]), ("foundation", [1, 0, 0, 0]), ("compute", [0, 0, 0, 1]), ("edge", [0, 0, 1, 0])];
    // The terminal: one row per stack.
    let err = stderr(&out);
    for (stack, [c, u, d, r]) in expected {
        let row = err.lines().find(|l| l.split_whitespace().next() == Some(stack) && l.contains("changes")).unwrap_or_else(|| panic!("no row for {stack}:\n{err}"));
        assert_eq!(row.split_whitespace().collect::<Vec<_>>(), [stack, &c.to_string(), &u.to_string(), &d.to_string(), &r.to_string(), "changes"]);
    }
    // --json.
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for (i, (stack, [c, u, d, r])) in expected.iter().enumerate() {
        let s = &v["stacks"][i];
        assert_eq!(s["stack"], *stack);
        assert_eq!((&s["counts"]["create"], &s["counts"]["update"], &s["counts"]["delete"], &s["counts"]["replace"]), (&Value::from(*c), &Value::from(*u), &Value::from(*d), &Value::from(*r)), "{s}");
    }
    // The GitHub step summary and the pull request comment: the same Markdown table.
    let summary = fs::read_to_string(&summary).unwrap();
    let comment_text = fs::read_to_string(&comment).unwrap();
    assert_eq!(comment_text.lines().next(), Some("<!-- cargo-xtask infra-preview dev -->"));
    for text in [&summary, &comment_text] {
        assert!(text.contains("### Pulumi preview: dev"), "{text}");
        for (stack, [c, u, d, r]) in expected {
            assert!(text.contains(&format!("| `{stack}` | {c} | {u} | {d} | {r} | changes |")), "{stack} in:\n{text}");
        }
    }

    // Posting it: `gh` (a recording stand-in first on PATH) lists the comments, finds no
    // earlier preview of dev and adds one; the next time it replaces that one.
    let gh_log = repo.path().join("gh.log");
    let found = repo.path().join("gh-found");
    fs::write(
        repo.bin.join("gh"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = api ] && [ \"$2\" = --paginate ]; then cat '{}' 2>/dev/null; fi\nexit 0\n",
            gh_log.display(),
            found.display()
        ),
    )
    .unwrap();
    fs::set_permissions(repo.bin.join("gh"), fs::Permissions::from_mode(0o755)).unwrap();
    let post = ["infra-pr-comment", comment.to_str().unwrap(), "--pr", "7", "--repo", "tradai/monorepo"];
    assert_ok(&repo.run(&post, &[]));
    fs::write(&found, "4242\n").unwrap();
    assert_ok(&repo.run(&post, &[]));
    let calls: Vec<String> = fs::read_to_string(&gh_log).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(calls[0].starts_with("api --paginate repos/tradai/monorepo/issues/7/comments --jq ") && calls[0].contains("<!-- cargo-xtask infra-preview dev -->"), "{}", calls[0]);
    assert_eq!(calls[1], format!("pr comment 7 --repo tradai/monorepo --body-file {}", comment.display()));
    assert_eq!(calls[3], format!("api --method PATCH repos/tradai/monorepo/issues/comments/4242 -F body=@{}", comment.display()));
    // A file that is not a preview comment is refused before gh runs.
    fs::write(&comment, "hello\n").unwrap();
    assert_one_line_error(&repo.run(&post, &[]), &["was not written by `cargo xtask infra-preview --pr-comment`"]);
}

/// The calls `pulumi` got, as words: `up edge`, `stack export compute`, ...
fn calls_of(repo: &Repo, word: &str) -> Vec<String> {
    repo.steps().into_iter().filter(|s| s.starts_with(word)).collect()
}

#[test]
fn bootstrap_twice_on_an_unchanged_tree_makes_no_second_up() {
    let repo = Repo::new();
    let reg = TestRegistry::start();
    let started = std::time::Instant::now();
    let first = repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host], &[]);
    let first_time = started.elapsed();
    assert_ok(&first);
    assert_eq!(repo.ups(), ["up persistent", "up foundation", "up compute", "up edge"]);
    assert!(stderr(&first).contains("persistent/dev: deploying: no record here of a successful up"), "{}", stderr(&first));
    repo.clear_log();

    let started = std::time::Instant::now();
    let second = repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host], &[]);
    let second_time = started.elapsed();
    assert_ok(&second);
    // No `up`, no preview: one state read per stack, to check nobody changed it since.
    assert_eq!(repo.ups(), Vec::<String>::new(), "{:?}", repo.steps());
    assert_eq!(repo.steps(), ["stack export persistent", "stack export foundation", "stack export compute", "stack export edge"]);
    let err = stderr(&second);
    for stack in ["persistent", "foundation", "compute", "edge"] {
        assert!(err.contains(&format!("{stack}/dev: skipped: its inputs and its state are those of its last up here")), "{stack}:\n{err}");
    }
    assert!(err.contains("all 6 layer(s) done (4 stack(s) skipped as unchanged)"), "{err}");
    for stack in ["persistent", "foundation", "compute", "edge"] {
        assert_eq!(repo.state(stack, "dev")["updates"], 1, "{stack}");
    }
    // --force deploys them all again.
    repo.clear_log();
    let started = std::time::Instant::now();
    assert_ok(&repo.run(&["infra-bootstrap", "dev", "--registry", &reg.host, "--force"], &[]));
    let forced_time = started.elapsed();
    assert_eq!(repo.ups(), ["up persistent", "up foundation", "up compute", "up edge"]);
    // The numbers for the report (shown with --no-capture).
    println!(
        "infra-bootstrap dev through the double: first run {:.2} s, second run (unchanged) {:.2} s, unchanged with --force {:.2} s",
        first_time.as_secs_f64(),
        second_time.as_secs_f64(),
        forced_time.as_secs_f64()
    );
}

#[test]
fn an_edit_deploys_its_stack_and_the_stacks_whose_upstream_outputs_changed() {
    let repo = Repo::new();
    let reg = repo.registry_with_images(&[]);
    deploy_all(&repo, &reg);
    // A program edit that leaves foundation's outputs as they were: foundation deploys;
    // compute and edge read the same outputs and stay skipped.
    let vpc = repo.path().join("infra/foundation/modules/vpc.py");
    fs::write(&vpc, format!("{}\n# a comment\n", fs::read_to_string(&vpc).unwrap())).unwrap();
    repo.clear_log();
    let dry = repo.run(&["infra-up", "foundation", "dev", "--dry-run", "--explain"], &[]);
    assert_ok(&dry);
    assert!(stdout(&dry).starts_with("foundation/dev: would deploy: infra/foundation/modules/vpc.py modified since its last up ("), "{}", stdout(&dry));
    assert!(repo.log().is_empty(), "a dry run calls nothing");
    let out = repo.run(&["infra-up", "foundation", "dev", "--registry", &reg.host, "--explain"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("foundation/dev: deploying: infra/foundation/modules/vpc.py modified since its last up"), "{}", stderr(&out));
    assert!(stderr(&out).contains("\n    infra/foundation/modules/vpc.py modified\n"), "--explain lists the change: {}", stderr(&out));
    for stack in ["compute", "edge", "persistent"] {
        repo.clear_log();
        let out = repo.run(&["infra-up", stack, "dev", "--registry", &reg.host], &[]);
        assert_ok(&out);
        assert!(stderr(&out).contains(&format!("{stack}/dev: skipped")), "{stack}: {}", stderr(&out));
        assert_eq!(repo.ups(), Vec::<String>::new(), "{stack}");
    }

    // A module added to foundation changes its outputs (the double counts resources in
    // them): foundation deploys, and so do compute and edge, which read them; persistent,
    // upstream of it, does not.
    fs::write(repo.path().join("infra/foundation/modules/extra.py"), "EXTRA = 1\n").unwrap();
    for (stack, deploys) in [("persistent", false), ("foundation", true), ("compute", true), ("edge", true)] {
        repo.clear_log();
        let out = repo.run(&["infra-up", stack, "dev", "--registry", &reg.host, "--explain"], &[]);
        assert_ok(&out);
        assert_eq!(repo.ups().len(), usize::from(deploys), "{stack}: {}", stderr(&out));
        if stack == "compute" {
            assert!(stderr(&out).contains("compute/dev: deploying: the outputs of foundation changed since its last up"), "{}", stderr(&out));
        }
    }
    // An edit of the shared package is an input of every stack.
    let shared = repo.path().join("infra/shared/tradai_infra_shared/config.py");
    fs::create_dir_all(shared.parent().unwrap()).unwrap();
    fs::write(&shared, "X = 1\n").unwrap();
    repo.clear_log();
    let dry = repo.run(&["infra-bootstrap", "dev", "--dry-run", "--registry", &reg.host], &[]);
    assert_ok(&dry);
    let err = stderr(&dry);
    assert!(err.contains("persistent  would deploy: infra/shared/tradai_infra_shared/config.py added since its last up"), "{err}");
    assert!(err.contains("edge        would deploy: infra/shared/tradai_infra_shared/config.py added"), "{err}");
    assert!(repo.log().is_empty(), "a dry run calls nothing");
}

#[test]
fn a_lost_record_or_a_state_changed_elsewhere_deploys_again() {
    let repo = Repo::new();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    repo.clear_log();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    assert_eq!(repo.ups(), Vec::<String>::new());
    // Another machine (another target folder, so no record of ours) deploys persistent.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = repo.path().join("other-target");
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[("CARGO_TARGET_DIR", other.to_str().unwrap())]));
    repo.clear_log();
    let out = repo.run(&["infra-up", "persistent", "dev"], &[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("its state is not the one its last up here left"), "{}", stderr(&out));
    assert_eq!(repo.ups(), ["up persistent"]);
    // The record lost: it deploys, and records again.
    fs::remove_dir_all(repo.path().join("target/xtask/pulumi-stacks")).unwrap();
    repo.clear_log();
    let out = repo.run(&["infra-up", "persistent", "dev"], &[]);
    assert!(stderr(&out).contains("deploying: no record here of a successful up against this state backend"), "{}", stderr(&out));
    assert_eq!(repo.ups(), ["up persistent"]);
    // Another backend is another deployment.
    repo.write_env(&format!(
        "S3_PULUMI_BACKEND_URL=file://{}\nPULUMI_CONFIG_PASSPHRASE='{PASSPHRASE}'\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n",
        repo.path().join("state2").display()
    ));
    repo.clear_log();
    assert_ok(&repo.run(&["infra-up", "persistent", "dev"], &[]));
    assert_eq!(repo.ups(), ["up persistent"]);
    assert!(calls_of(&repo, "stack init").len() == 1);
}
