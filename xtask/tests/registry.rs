//! The registry as publish target and shared cache, against a real registry on loopback.

mod support;

use std::process::Command;

use support::registry::TestRegistry;
use support::*;

fn remove_local_images(targets: &[(String, String, serde_json::Value)]) {
    for (_, _, t) in targets {
        if let Some(a) = t["artifact"].as_str().filter(|a| a.starts_with("sha256:")) {
            let _ = Command::new("docker").args(["rmi", "--force", a]).output();
        }
    }
}

#[test]
fn a_fresh_machine_builds_nothing_the_registry_holds() {
    let reg = TestRegistry::start();
    let f = Fixture::new(&["alpha", "beta", "gamma"]);

    let first = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let version = v["version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("manual-") && version.len() == "manual-".len() + 14, "{version}");
    let published = v["published"].as_array().unwrap();
    assert_eq!(published.len(), 4, "lambda-base and three lambdas: {published:?}");
    assert!(published.iter().all(|p| p["action"] == "pushed"));
    let targets = parse_targets(&first.stdout);
    for (id, _, t) in targets.iter().filter(|(_, _, t)| t["kind"] == "image") {
        let tag = format!("inputs-{}", &t["input_hash"].as_str().unwrap()[..32]);
        let d = reg.digest(id, &tag).unwrap_or_else(|| panic!("{id}:{tag} not in registry"));
        assert_eq!(reg.digest(id, &version).as_deref(), Some(d.as_str()));
        assert_eq!(reg.digest(id, "latest").as_deref(), Some(d.as_str()));
    }
    let state = std::fs::read_to_string(f.path().join("target/xtask/state.json")).unwrap();
    assert!(state.contains(&reg.host), "push digests are recorded");

    // A fresh clone: no state, none of the built images in the engine.
    remove_local_images(&targets);
    let clone = tempfile::tempdir().unwrap();
    assert!(Command::new("cp").arg("-r").arg(format!("{}/.", f.path().display())).arg(clone.path()).status().unwrap().success());
    std::fs::remove_dir_all(clone.path().join("target")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new manual-<seconds> version
    let second = xtask_in(clone.path(), &["lambda-bootstrap", "--registry", &reg.host, "--json"], &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    let t2 = parse_targets(&second.stdout);
    assert!(with_status(&t2, "built").is_empty(), "nothing is built: {t2:?}");
    for (id, status, t) in &t2 {
        assert_eq!(status, "skipped", "{id}");
        if t["kind"] == "image" {
            assert_eq!(t["reason"], format!("found in registry {}", reg.host), "{id}");
        }
    }
    let v2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let version2 = v2["version"].as_str().unwrap();
    assert_ne!(version2, version);
    assert!(v2["published"].as_array().unwrap().iter().all(|p| p["action"] == "tagged"), "no layer is pushed again: {}", v2["published"]);
    for (id, _, _) in t2.iter().filter(|(_, _, t)| t["kind"] == "image") {
        assert!(reg.digest(id, version2).is_some(), "{id} has the new version tag");
    }

    // Deleting one image from the registry: exactly that target is rebuilt and pushed.
    let beta = t2.iter().find(|(id, _, _)| id == "tradai/lambda-beta").unwrap();
    let beta_tag = format!("inputs-{}", &beta.2["input_hash"].as_str().unwrap()[..32]);
    let beta_digest = reg.digest("tradai/lambda-beta", &beta_tag).unwrap();
    reg.delete("tradai/lambda-beta", &beta_digest);
    let third = xtask_in(clone.path(), &["lambda-bootstrap", "--registry", &reg.host, "--json"], &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    let t3 = parse_targets(&third.stdout);
    assert_eq!(with_status(&t3, "built"), ["tradai/lambda-beta"], "{t3:?}");
    let v3: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    let pushed: Vec<&str> = v3["published"].as_array().unwrap().iter().filter(|p| p["action"] == "pushed").map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(pushed, ["tradai/lambda-beta"]);
    assert!(reg.digest("tradai/lambda-beta", &beta_tag).is_some());

    // A recorded push that the registry lost (lifecycle policy) is noticed and pushed again
    // from the local image, without a rebuild.
    let d = reg.digest("tradai/lambda-beta", &beta_tag).unwrap();
    reg.delete("tradai/lambda-beta", &d);
    let fourth = xtask_in(clone.path(), &["lambda-push-all", "--registry", &reg.host, "--json"], &[]);
    assert!(fourth.status.success(), "{}", stderr(&fourth));
    let t4 = parse_targets(&fourth.stdout);
    assert!(with_status(&t4, "built").is_empty(), "{t4:?}");
    let err = stderr(&fourth);
    assert!(err.contains("registry no longer holds"), "{err}");
    assert!(reg.digest("tradai/lambda-beta", &beta_tag).is_some());
}

#[test]
fn an_unreachable_registry_is_a_clear_error() {
    let f = Fixture::new(&["alpha"]);
    let out = f.xtask(&["lambda-bootstrap", "--registry", "127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("registry 127.0.0.1:9") && err.contains("check that the registry is running"), "{err}");
    assert!(!err.contains("panicked"));
    assert!(!f.path().join("target/xtask/state.json").exists(), "nothing recorded");
    let out = f.xtask(&["lambda-bootstrap", "--registry", "https://nope/x"]);
    assert!(stderr(&out).contains("use `local`, `ecr` or a host[:port]"), "{}", stderr(&out));
}

#[test]
fn a_registry_that_dies_mid_push_leaves_nothing_falsely_recorded_and_the_next_run_finishes() {
    let mut reg = TestRegistry::start();
    let f = Fixture::new(&["alpha", "beta", "gamma", "delta", "epsilon"]);
    f.build_json(&["lambda-build-all"]);

    // Publish one image at a time and cut the registry as soon as the first one lands.
    let child = f.command(&["lambda-bootstrap", "--registry", &reg.host, "-j", "1"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while reg.catalog().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing was pushed within a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    reg.kill();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    eprintln!("run with the registry cut: success={}", out.status.success());
    if !out.status.success() {
        assert!(err.contains(&format!("registry {}", reg.host)), "the failure names the registry: {err}");
        assert!(err.contains("not published"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // Every push the state records is really in the registry.
    reg.restart();
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.path().join("target/xtask/state.json")).unwrap()).unwrap();
    for (id, rec) in state["targets"].as_object().unwrap() {
        if let Some(digest) = rec["output"]["pushed"][&reg.host].as_str() {
            let tag = format!("inputs-{}", &rec["input_hash"].as_str().unwrap()[..32]);
            assert_eq!(reg.digest(id, &tag).as_deref(), Some(digest), "{id} is recorded as pushed");
        }
    }

    // The next run publishes the rest and builds nothing.
    let again = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(with_status(&parse_targets(&again.stdout), "built").is_empty());
    for name in ["base", "alpha", "beta", "gamma", "delta", "epsilon"] {
        assert!(reg.digest(&format!("tradai/lambda-{name}"), "latest").is_some(), "{name} published");
    }
}

/// `(target, action, tag)` of the `steps` of a `--json` run.
fn steps(stdout: &[u8]) -> Vec<(String, String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["target"].as_str().unwrap().to_owned(), s["action"].as_str().unwrap().to_owned(), s["tag"].as_str().map(str::to_owned)))
        .collect()
}

fn of<'a>(steps: &'a [(String, String, Option<String>)], action: &str) -> Vec<&'a str> {
    steps.iter().filter(|(_, a, _)| a == action).map(|(t, _, _)| t.as_str()).collect()
}

#[test]
fn the_dry_run_lists_every_push_and_tag_and_the_run_does_exactly_that() {
    let reg = TestRegistry::start();
    let f = Fixture::new(&["alpha", "beta"]);
    let images = ["tradai/lambda-alpha", "tradai/lambda-base", "tradai/lambda-beta"];

    let dry = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let planned = steps(&dry.stdout);
    assert_eq!(of(&planned, "build"), ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha", "tradai/lambda-beta"]);
    assert_eq!(of(&planned, "push"), images, "every image is pushed under its hash tag");
    for (target, action, tag) in &planned {
        if action == "push" {
            assert!(tag.as_deref().is_some_and(|t| t.starts_with("inputs-")), "{target}: {tag:?}");
        }
    }
    let tags: Vec<(&str, &str)> = planned.iter().filter(|(_, a, _)| a == "tag").map(|(t, _, tag)| (t.as_str(), tag.as_deref().unwrap())).collect();
    assert_eq!(tags.len(), 6, "version and latest for each image: {tags:?}");
    assert!(tags.iter().filter(|(_, t)| *t == "latest").count() == 3);
    assert!(stderr(&dry).contains("would push"), "{}", stderr(&dry));
    assert!(reg.catalog().is_empty(), "a dry run pushes nothing");

    // The run does what the dry run said.
    let run = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let mut pushed: Vec<&str> =
        v["published"].as_array().unwrap().iter().filter(|p| p["action"] == "pushed").map(|p| p["id"].as_str().unwrap()).collect();
    pushed.sort_unstable();
    assert_eq!(pushed, images);

    // Nothing changed: no build, no push; only the version and latest tags are written.
    let again = steps(&f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--dry-run", "--json"]).stdout);
    assert!(of(&again, "build").is_empty() && of(&again, "push").is_empty(), "{again:?}");
    assert_eq!(of(&again, "tag").len(), 6);

    // The registry lost one image: the plan says it is pushed again, and why.
    let gone = "tradai/lambda-beta";
    let t = parse_targets(&run.stdout);
    let hash = t.iter().find(|(id, _, _)| id == gone).unwrap().2["input_hash"].as_str().unwrap().to_owned();
    let digest = reg.digest(gone, &format!("inputs-{}", &hash[..32])).unwrap();
    reg.delete(gone, &digest);
    let dry = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let push: Vec<&serde_json::Value> = v["steps"].as_array().unwrap().iter().filter(|s| s["action"] == "push").collect();
    assert_eq!(push.len(), 1, "{push:?}");
    assert_eq!(push[0]["target"], gone);
    assert!(push[0]["reason"].as_str().unwrap().contains("registry no longer holds"), "{}", push[0]);
}
