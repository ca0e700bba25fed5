//! The upstream Python bases are pinned inputs, and upstream comes first: a loopback
//! registry plays the upstream registry, serving a base under a test name.
//!
//! - present in the engine: used, nothing pulled (the registry is even stopped);
//! - absent but pullable: pulled, then built on;
//! - unreachable: the Debian stand-in, with one line saying why;
//! - `use = "stand-in"`: the stand-in, never pulled; never looked up in ECR, and
//!   publishing it to ECR is refused without `--allow-standin-base`;
//! - `base-images --update` re-pins xtask.toml to what the tag points at now.

#[path = "support/moto.rs"]
mod moto;
mod support;

use std::process::Command;

use support::registry::TestRegistry;
use support::*;

/// Builds a tiny unique image, pushes it as `<host>/test/python:<tag>` and removes every
/// local copy, so the engine does not hold it. Returns its registry digest.
fn serve_base(reg: &TestRegistry, tag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let marker =
        format!("{}-{}-{tag}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    std::fs::create_dir_all(dir.path().join("root/etc")).unwrap();
    std::fs::write(dir.path().join("root/etc/upstream-base"), &marker).unwrap();
    let tar = dir.path().join("root.tar");
    assert!(Command::new("tar").arg("-C").arg(dir.path().join("root")).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
    let reference = format!("{}/test/python:{tag}", reg.host);
    let out = Command::new("docker").arg("import").arg(&tar).arg(&reference).output().unwrap();
    assert!(out.status.success(), "docker import: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("docker").args(["push", &reference]).output().unwrap();
    assert!(out.status.success(), "docker push: {}", String::from_utf8_lossy(&out.stderr));
    let digest = reg.digest("test/python", tag).expect("the registry holds the pushed base");
    forget_base(&reg.host, &digest);
    let out = Command::new("docker").args(["rmi", "--force", &reference]).output().unwrap();
    assert!(out.status.success(), "docker rmi: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!engine_holds(&reg.host, &digest));
    digest
}

fn engine_holds(host: &str, digest: &str) -> bool {
    Command::new("docker").args(["image", "inspect", &format!("{host}/test/python@{digest}")]).output().unwrap().status.success()
}

fn forget_base(host: &str, digest: &str) {
    let _ = Command::new("docker").args(["rmi", "--force", &format!("{host}/test/python@{digest}")]).output();
}

fn pin(f: &Fixture, reference: &str, extra: &str) {
    let recipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/python-base");
    for file in ["Dockerfile", "requirements.txt", "lambda-entrypoint.sh"] {
        f.write(&format!("docker/python-base/{file}"), &std::fs::read_to_string(recipe.join(file)).unwrap());
    }
    f.write(
        "xtask.toml",
        &format!(
            "[build]\ntag-latest = false\n\n[python-base]\nlambda = \"{reference}\"\nservice = \"{reference}\"\npull-timeout = 5\n{extra}"
        ),
    );
}

#[test]
fn with_docker_build_a_pinned_base_is_pulled_when_missing_then_used_from_the_engine_without_pulling() {
    let mut reg = TestRegistry::start();
    let digest = serve_base(&reg, "3.11");
    let f = Fixture::new(&["alpha"]);
    pin(&f, &format!("{}/test/python:3.11@{digest}", reg.host), "");

    // `docker build` needs the base in the engine. Absent but pullable: pulled, and the
    // images are built on it.
    let out = f.xtask(&["lambda-build-all", "--json", "--builder", "docker"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("pulling the upstream base {}/test/python@{digest}", reg.host)), "{err}");
    assert!(!err.contains("stand-in"), "{err}");
    let t = parse_targets(&out.stdout);
    let ids: Vec<&str> = t.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha"]);
    assert!(engine_holds(&reg.host, &digest));

    // Present: nothing is pulled, even with the registry gone.
    reg.kill();
    f.append("libs/tradai-common/src/tradai_common/__init__.py", "CHANGED = 1\n");
    let out = f.xtask(&["lambda-build-all", "--json", "--builder", "docker"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("pulling") && !err.contains("stand-in"), "{err}");
    assert_eq!(with_status(&parse_targets(&out.stdout), "built"), ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha"]);

    // The digest is an input: pinning another digest rebuilds everything built on it.
    reg.restart();
    let other = serve_base(&reg, "3.11-next");
    pin(&f, &format!("{}/test/python:3.11@{other}", reg.host), "");
    let t = f.build_json(&["lambda-build-all", "--dry-run", "--builder", "docker"]);
    assert_eq!(with_status(&t, "would-build"), ["tradai/lambda-base", "tradai/lambda-alpha"]);
    forget_base(&reg.host, &digest);
}

#[test]
fn a_pinned_base_is_read_from_its_registry_once_then_from_the_image_store() {
    let mut reg = TestRegistry::start();
    let digest = serve_base(&reg, "3.11");
    let f = Fixture::new(&["alpha"]);
    pin(&f, &format!("{}/test/python:3.11@{digest}", reg.host), "");

    // The assembler reads the base's manifest, config and layers from the registry; the
    // engine is never asked to pull it.
    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("read the upstream base {}/test/python@{digest} from its registry", reg.host)), "{err}");
    assert!(!err.contains("pulling") && !err.contains("stand-in"), "{err}");
    assert!(!engine_holds(&reg.host, &digest), "not pulled into the engine");

    // Read once: with the registry gone, a rebuild on it still works.
    reg.kill();
    f.append("libs/tradai-common/src/tradai_common/__init__.py", "CHANGED = 1\n");
    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("pulling") && !err.contains("stand-in"), "{err}");
    assert_eq!(with_status(&parse_targets(&out.stdout), "built"), ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha"]);
}

#[test]
fn an_unreachable_base_falls_back_to_the_stand_in_with_the_reason() {
    let mut reg = TestRegistry::start();
    let digest = serve_base(&reg, "3.11");
    reg.kill();
    let f = Fixture::new(&["alpha"]);
    let reference = format!("{}/test/python:3.11@{digest}", reg.host);
    pin(&f, &reference, "");

    let out = f.xtask(&["lambda-build-all", "--dry-run", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err.lines().find(|l| l.contains("stand-in")).unwrap_or_else(|| panic!("no stand-in line: {err}"));
    assert!(line.contains("would build the Debian-based stand-in tradai/python-base"), "{line}");
    assert!(line.contains(&format!("{}/test/python@{digest} could not be pulled", reg.host)), "it says why: {line}");
    assert_eq!(err.lines().filter(|l| l.contains("stand-in")).count(), 1, "one line: {err}");
    let ids: Vec<String> = parse_targets(&out.stdout).into_iter().map(|(id, _, _)| id).collect();
    assert!(ids.contains(&"tradai/python-base".to_owned()), "{ids:?}");
}

#[test]
fn the_stand_in_is_local_only_and_publishing_it_to_ecr_needs_a_flag() {
    let reg = TestRegistry::start();
    let digest = serve_base(&reg, "3.11");
    let f = Fixture::new(&["alpha"]);
    pin(&f, &format!("{}/test/python:3.11@{digest}", reg.host), "use = \"stand-in\"\n");

    // Selected in xtask.toml: the stand-in, and no pull is tried.
    let out = f.xtask(&["lambda-build-all", "--dry-run", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("xtask.toml selects it") && !err.contains("pull"), "{err}");
    assert!(!engine_holds(&reg.host, &digest));

    let m = moto::Moto::start();
    m.seed(
        "ecr = boto3.client('ecr')\nfor r in ['tradai/lambda-base', 'tradai/lambda-alpha']:\n    ecr.create_repository(repositoryName=r)\n",
    );
    let run = |args: &[&str]| {
        let mut cmd = f.command(args);
        m.configure(&mut cmd);
        cmd.output().unwrap()
    };
    let out = run(&["lambda-push-all", "--registry", "ecr", "--dry-run"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("refusing to publish to ECR images built on the Debian stand-in base") && err.contains("--allow-standin-base"),
        "{err}"
    );

    let out = run(&["lambda-push-all", "--registry", "ecr", "--dry-run", "--allow-standin-base", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = parse_targets(&out.stdout);
    let base = t.iter().find(|(id, _, _)| id == "tradai/python-base").expect("the stand-in is planned");
    assert_eq!(base.2["kind"], "local-image");
    assert!(m.operations().iter().any(|o| o == "BatchGetImage"), "ECR was asked about the other images");
    let recorded = std::fs::read_to_string(m.recording_path()).unwrap();
    assert!(!recorded.contains("python-base"), "ECR was asked about the stand-in");
}

#[test]
fn base_images_update_repins_to_what_the_tag_points_at_now() {
    let reg = TestRegistry::start();
    let old = serve_base(&reg, "3.11");
    let new = serve_base(&reg, "3.11");
    assert_ne!(old, new);
    let f = Fixture::new(&[]);
    pin(&f, &format!("{}/test/python:3.11@{old}", reg.host), "# kept: a comment\n");

    let out = f.xtask(&["base-images", "--update"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(f.path().join("xtask.toml")).unwrap();
    assert!(toml.contains(&format!("lambda = \"{}/test/python:3.11@{new}\"", reg.host)), "{toml}");
    assert!(toml.contains(&format!("service = \"{}/test/python:3.11@{new}\"", reg.host)), "{toml}");
    assert!(toml.contains("# kept: a comment"), "{toml}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("@{old} -> ")), "{}", String::from_utf8_lossy(&out.stdout));

    // Up to date: nothing changes.
    let out = f.xtask(&["base-images", "--update"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(unchanged)"));
    assert_eq!(std::fs::read_to_string(f.path().join("xtask.toml")).unwrap(), toml);
    forget_base(&reg.host, &new);
    let _ = Command::new("docker").args(["rmi", "--force", &format!("{}/test/python:3.11", reg.host)]).output();
}

#[test]
fn a_malformed_pin_is_one_line_naming_the_expected_form() {
    let f = Fixture::new(&["alpha"]);
    pin(&f, "public.ecr.aws/lambda/python:3.11@sha256:1234", "");
    let out = f.xtask(&["lambda-build-all", "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("malformed digest") && err.contains("64 lowercase hex digits"), "{err}");
}

#[test]
fn push_commands_with_no_registry_fail_in_one_line() {
    let f = Fixture::new(&["alpha"]);
    for args in [&["lambda-push-all"][..], &["service-push", "backend"], &["service-push-all"]] {
        let out = f.xtask_env(args, &[("XTASK_REGISTRY", "")]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("nowhere to push") && err.contains("--registry") && err.contains("XTASK_REGISTRY"), "{err}");
    }
    // lambda-bootstrap keeps its local default, and says nothing was published.
    let out = f.xtask(&["lambda-bootstrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("registry is `local`: images stay in the local Docker engine"), "{}", stderr(&out));
}

/// `doctor --format json`'s row for `name`: (status, detail).
fn doctor_row(f: &Fixture, name: &str) -> (String, String) {
    let out = f.xtask(&["doctor", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name} row: {rows}"));
    (row["status"].as_str().unwrap().to_owned(), row["detail"].as_str().unwrap().to_owned())
}

fn plans_stand_in(f: &Fixture) -> bool {
    f.build_json(&["lambda-build-all", "--dry-run"]).iter().any(|(id, _, _)| id == "tradai/python-base")
}

#[test]
fn doctor_says_what_the_build_then_does() {
    let mut reg = TestRegistry::start();
    let digest = serve_base(&reg, "3.11");
    let f = Fixture::new(&["alpha"]);
    pin(&f, &format!("{}/test/python:3.11@{digest}", reg.host), "");

    // Pullable: the base is pulled on the first build, and debootstrap is not needed.
    let (status, detail) = doctor_row(&f, "Lambda base");
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.contains("pulled on the first build"), "{detail}");
    let (status, detail) = doctor_row(&f, "debootstrap");
    assert!(status == "not-needed" || (status == "ok" && detail.contains("not needed here")), "{status}: {detail}");
    assert!(!plans_stand_in(&f));

    // Unreachable: the stand-in, and debootstrap is needed.
    reg.kill();
    let (status, detail) = doctor_row(&f, "Lambda base");
    assert_eq!(status, "fallback", "{detail}");
    assert!(detail.contains("the Debian stand-in") && detail.contains("is not reachable"), "{detail}");
    let (status, detail) = doctor_row(&f, "debootstrap");
    assert_ne!(status, "not-needed", "{detail}");
    assert!(detail.contains("needed") && !detail.contains("not needed"), "{status}: {detail}");
    assert!(plans_stand_in(&f));
}
