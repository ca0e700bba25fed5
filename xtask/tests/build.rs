//! Incremental builds, driven through the real binary against temporary fixture
//! repositories and the machine's Docker engine.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::*;

fn image_exists(id: &str) -> bool {
    Command::new("docker").args(["image", "inspect", id]).output().unwrap().status.success()
}

/// One file of an image, read through a created (never started) container.
fn file_in_image(image: &str, path: &str) -> String {
    let created = Command::new("docker").args(["create", image, "none"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let cid = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let read = Command::new("sh").arg("-c").arg(format!("docker cp {cid}:{path} - | tar -xO")).output().unwrap();
    let _ = Command::new("docker").args(["rm", &cid]).output();
    assert!(read.status.success(), "{path}: {}", String::from_utf8_lossy(&read.stderr));
    String::from_utf8_lossy(&read.stdout).into_owned()
}

#[test]
fn only_what_changed_is_rebuilt() {
    let f = Fixture::new(&["alpha", "beta", "gamma"]);

    let cold = f.build_json(&["lambda-build-all"]);
    let ids: Vec<&str> = cold.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha", "tradai/lambda-beta", "tradai/lambda-gamma"]);
    assert_eq!(with_status(&cold, "built").len(), 6, "{cold:?}");
    for (_, _, t) in &cold {
        let hash = t["input_hash"].as_str().unwrap();
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let kind = match t["id"].as_str().unwrap() {
            "tradai-common" => "wheel",
            "site-packages:tradai-common" => "site-packages",
            _ => "image",
        };
        assert_eq!(t["kind"], kind);
    }

    // lambda-base holds the installed tree where the upstream image keeps its packages.
    let base = cold.iter().find(|(id, _, _)| id == "tradai/lambda-base").unwrap().2["artifact"].as_str().unwrap().to_owned();
    let site = "/var/lang/lib/python3.11/site-packages";
    assert_eq!(file_in_image(&base, &format!("{site}/tradai_common/__init__.py")), "VERSION = 1\n");
    assert_eq!(file_in_image(&base, &format!("{site}/tradai_common-0.1.0.dist-info/INSTALLER")), "xtask\n");

    let again = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&again, "skipped").len(), 6, "unchanged tree must skip everything: {again:?}");

    // An mtime-only change and a change to a file .dockerignore excludes rebuild nothing.
    let handler = f.path().join("lambdas/alpha/handler.py");
    fs::File::options().write(true).open(&handler).unwrap().set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    f.append("lambdas/alpha/tests/test_handler.py", "# more tests\n");
    f.append("libs/tradai-common/tests/test_x.py", "# tests are not in the wheel\n");
    assert_eq!(with_status(&f.build_json(&["lambda-build-all"]), "built"), Vec::<&str>::new());

    f.append("lambdas/alpha/handler.py", "# changed\n");
    let one = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&one, "built"), ["tradai/lambda-alpha"]);
    let alpha = &one.iter().find(|(id, _, _)| id == "tradai/lambda-alpha").unwrap().2;
    assert_eq!(alpha["changes"][0], "file handler.py modified");

    f.append("libs/tradai-common/src/tradai_common/__init__.py", "VERSION = 2\n");
    let explain = f.xtask(&["lambda-build-all", "--dry-run", "--explain"]);
    let text = stderr(&explain);
    assert!(text.contains("tradai-common will build: file src/tradai_common/__init__.py modified"), "{text}");
    assert!(text.contains("site-packages:tradai-common will build: dependency tradai-common changed"), "{text}");
    assert!(text.contains("tradai/lambda-base will build: dependency site-packages:tradai-common changed"), "{text}");
    assert!(text.contains("tradai/lambda-beta will build: dependency tradai/lambda-base changed"), "{text}");
    let common = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&common, "built").len(), 6, "a tradai-common change rebuilds wheel, tree, base and every lambda: {common:?}");

    // Removing one image from the engine rebuilds exactly that one.
    let beta_id = common.iter().find(|(id, _, _)| id == "tradai/lambda-beta").unwrap().2["artifact"].as_str().unwrap().to_owned();
    let rmi = Command::new("docker").args(["rmi", "--force", &beta_id]).output().unwrap();
    assert!(rmi.status.success(), "{}", String::from_utf8_lossy(&rmi.stderr));
    let after_rmi = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&after_rmi, "built"), ["tradai/lambda-beta"]);
    let beta = &after_rmi.iter().find(|(id, _, _)| id == "tradai/lambda-beta").unwrap().2;
    assert!(image_exists(beta["artifact"].as_str().unwrap()));

    // A new folder with a Dockerfile is picked up without any list to edit.
    f.add_lambda("delta");
    let added = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&added, "built"), ["tradai/lambda-delta"]);

    // `lambda-build <name>` builds just that one and what it is built from.
    f.append("lambdas/gamma/handler.py", "# g\n");
    f.append("lambdas/delta/handler.py", "# d\n");
    let named = f.build_json(&["lambda-build", "gamma"]);
    let ids: Vec<&str> = named.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-gamma"]);
    assert_eq!(with_status(&named, "built"), ["tradai/lambda-gamma"]);
}

#[test]
fn clones_in_different_folders_hash_identically() {
    let a = Fixture::new(&["alpha", "beta"]);
    let b = tempfile::tempdir().unwrap();
    // Copy with a different umask-like mode on directories and fresh mtimes.
    let status = Command::new("cp").arg("-r").arg(format!("{}/.", a.path().display())).arg(b.path()).status().unwrap();
    assert!(status.success());
    for entry in walk(b.path()) {
        if entry.is_dir() {
            fs::set_permissions(&entry, fs::Permissions::from_mode(0o700)).unwrap();
        } else {
            fs::set_permissions(&entry, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let out_a = a.xtask(&["lambda-build-all", "--dry-run", "--json"]);
    let out_b = xtask_in(b.path(), &["lambda-build-all", "--dry-run", "--json"], &[]);
    assert!(out_a.status.success() && out_b.status.success(), "{}", stderr(&out_b));
    let hashes = |o: &std::process::Output| parse_targets(&o.stdout).into_iter().map(|(id, _, t)| (id, t["input_hash"].as_str().unwrap().to_owned())).collect::<Vec<_>>();
    assert_eq!(hashes(&out_a), hashes(&out_b));
    let statuses = parse_targets(&out_a.stdout);
    assert!(statuses.iter().all(|(_, s, _)| s == "would-build" || s == "skipped"));

    // The executable bit is an input: flipping it changes exactly that lambda's hash.
    let handler = b.path().join("lambdas/alpha/handler.py");
    fs::set_permissions(&handler, fs::Permissions::from_mode(0o700)).unwrap();
    let out_b2 = xtask_in(b.path(), &["lambda-build-all", "--dry-run", "--json"], &[]);
    let (ha, hb) = (hashes(&out_a), hashes(&out_b2));
    let differing: Vec<&str> = ha.iter().zip(&hb).filter(|(x, y)| x.1 != y.1).map(|(x, _)| x.0.as_str()).collect();
    assert_eq!(differing, ["tradai/lambda-alpha"]);
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn bad_input_is_a_one_line_error_and_records_nothing() {
    let f = Fixture::new(&["alpha", "beta"]);

    let out = f.xtask(&["lambda-build", "nope", "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown lambda nope; valid names: alpha, beta"), "{err}");

    fs::create_dir_all(f.path().join("lambdas/orphan")).unwrap();
    f.write("lambdas/orphan/handler.py", "x = 1\n");
    let out = f.xtask(&["lambda-build-all", "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("lambda folder(s) without a Dockerfile: orphan"), "{err}");
    fs::remove_dir_all(f.path().join("lambdas/orphan")).unwrap();

    let out = f.xtask_env(&["lambda-build-all"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Docker engine"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A Dockerfile that fails: the others still build, the run fails, nothing is recorded
    // for the failed target, and the next run retries only that one.
    f.write("lambdas/beta/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY does-not-exist.py /var/task/\n");
    let out = f.xtask(&["lambda-build-all", "--json"]);
    assert!(!out.status.success());
    let t = parse_targets(&out.stdout);
    assert_eq!(with_status(&t, "failed"), ["tradai/lambda-beta"]);
    assert_eq!(with_status(&t, "built"), ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base", "tradai/lambda-alpha"]);
    let err = stderr(&out);
    assert!(err.contains("does-not-exist.py"), "the failure shows Docker's reason: {err}");
    assert!(err.contains("1 target(s) failed: tradai/lambda-beta"), "{err}");
    let state = fs::read_to_string(f.path().join("target/xtask/state.json")).unwrap();
    assert!(!state.contains("tradai/lambda-beta"), "a failed build must not be recorded");

    f.write("lambdas/beta/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY handler.py /var/task/\n");
    let t = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&t, "built"), ["tradai/lambda-beta"]);
}

#[test]
fn corrupt_state_killed_runs_and_concurrent_runs_recover() {
    let f = Fixture::new(&["alpha", "beta", "gamma"]);
    f.build_json(&["lambda-build-all"]);

    // Corrupt state: warned about, discarded, rebuilt; the next run is a no-op again.
    fs::write(f.path().join("target/xtask/state.json"), "{\"version\": 1, \"targets\": {\"trunc").unwrap();
    let out = f.xtask(&["lambda-build-all", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: discarded"), "{}", stderr(&out));
    assert_eq!(with_status(&f.build_json(&["lambda-build-all"]), "skipped").len(), 6);

    // SIGKILL at several points of a run that rebuilds everything.
    for (round, delay_ms) in [200u64, 1500, 4000].into_iter().enumerate() {
        f.append("libs/tradai-common/src/tradai_common/__init__.py", &format!("ROUND = {round}\n"));
        let mut child = f.command(&["lambda-build-all"]).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_state_matches_engine(&f);
    }
    let finish = f.build_json(&["lambda-build-all"]);
    assert!(with_status(&finish, "failed").is_empty());
    assert_eq!(with_status(&f.build_json(&["lambda-build-all"]), "skipped").len(), 6);

    // Two runs at once: both succeed and the state they leave is complete.
    f.append("lambdas/alpha/handler.py", "# both\n");
    f.append("lambdas/gamma/handler.py", "# both\n");
    let one = f.command(&["lambda-build-all"]).output();
    let (a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| f.command(&["lambda-build-all"]).output().unwrap());
        (one.unwrap(), h.join().unwrap())
    });
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    assert_state_matches_engine(&f);
    assert_eq!(with_status(&f.build_json(&["lambda-build-all"]), "skipped").len(), 6);
}

/// Every image the state store records must exist in the engine.
fn assert_state_matches_engine(f: &Fixture) {
    let path = f.path().join("target/xtask/state.json");
    let Ok(text) = fs::read_to_string(&path) else { return };
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is never left torn");
    for (id, rec) in state["targets"].as_object().unwrap() {
        let artifact = rec["output"]["artifact"].as_str().unwrap();
        if artifact.starts_with("sha256:") {
            assert!(image_exists(artifact), "state records {id} as {artifact}, which the engine does not hold");
        } else {
            assert!(std::path::Path::new(artifact).exists(), "state records {id} as {artifact}, which does not exist");
        }
    }
}

#[test]
fn the_engine_is_a_cache_when_the_state_is_lost_and_promised_tags_are_restored() {
    // A name no other test uses, since this test turns `latest` tags on.
    let name = format!("cache-{}", std::process::id());
    let f = Fixture::new(&[&name]);
    f.write("xtask.toml", &fs::read_to_string(f.path().join("xtask.toml")).unwrap().replace("tag-latest = false", "tag-latest = true"));
    let repository = format!("tradai/lambda-{name}");
    let cold = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&cold, "built").len(), 4, "{cold:?}");
    let image = cold.iter().find(|(id, _, _)| *id == repository).unwrap().2["artifact"].as_str().unwrap().to_owned();

    // `cargo clean`: the tool's state and the wheel are gone; the engine still holds every
    // image under its hash tag, so nothing is built.
    fs::remove_dir_all(f.path().join("target")).unwrap();
    let dry = f.xtask(&["lambda-build-all", "--dry-run", "--explain"]);
    let said = stderr(&dry);
    assert!(!said.contains("will build") && said.contains(&format!("found in the Docker engine as {repository}:inputs-")), "{said}");
    let after_clean = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&after_clean, "built"), Vec::<&str>::new(), "{after_clean:?}");
    let lambda = &after_clean.iter().find(|(id, _, _)| *id == repository).unwrap().2;
    assert!(lambda["reason"].as_str().unwrap().starts_with(&format!("found in the Docker engine as {repository}:inputs-")), "{lambda}");
    assert_eq!(lambda["artifact"], image.as_str());
    // Adopted images are recorded: the next run finds them in its state.
    let again = f.build_json(&["lambda-build-all"]);
    let lambda = &again.iter().find(|(id, _, _)| *id == repository).unwrap().2;
    assert_eq!((lambda["status"].as_str(), lambda["reason"].as_str()), (Some("skipped"), Some("up to date")));

    // Only the `latest` tag removed: it is put back, nothing is rebuilt.
    let latest = format!("{repository}:latest");
    let rmi = Command::new("docker").args(["rmi", &latest]).output().unwrap();
    assert!(rmi.status.success(), "{}", String::from_utf8_lossy(&rmi.stderr));
    let restored = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&restored, "built"), Vec::<&str>::new(), "{restored:?}");
    let lambda = &restored.iter().find(|(id, _, _)| *id == repository).unwrap().2;
    assert_eq!(lambda["reason"].as_str().unwrap(), format!("up to date; restores {latest}"));
    let inspect = Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &latest]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), image, "latest names the image again");

    let _ = Command::new("docker").args(["rmi", "--force", &image]).output();
}

#[test]
fn the_run_is_drawn_as_a_timeline_page_and_a_step_summary_gantt() {
    let f = Fixture::new(&["alpha", "beta"]);
    let page = f.path().join("timeline.html");
    let summary = f.path().join("summary.md");
    let out = f.xtask_env(
        &["lambda-build-all", "--timeline", page.to_str().unwrap()],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<rect ").count(), 5, "one bar per target");
    assert!(html.contains("5 built, 0 up to date, 0 failed"), "{html}");
    for id in ["tradai-common", "tradai/lambda-base", "tradai/lambda-alpha", "tradai/lambda-beta"] {
        assert!(html.contains(&format!("<title>{id} — built in ")), "{id} has a bar");
    }
    let md = fs::read_to_string(&summary).unwrap();
    assert!(md.contains("```mermaid\ngantt\n") && md.contains("    section built\n    tradai-common :active, "), "{md}");

    // A run with nothing to do: every target a short grey mark.
    let out = f.xtask(&["lambda-build-all", "--timeline", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read_to_string(&page).unwrap().contains("0 built, 5 up to date, 0 failed; 0 ms of building"));
}

#[test]
fn state_lives_in_the_cargo_target_directory() {
    let f = Fixture::new(&["alpha"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let t = {
        let mut cmd = f.command(&["lambda-build-all", "--json"]);
        cmd.env("CARGO_TARGET_DIR", elsewhere.path());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        parse_targets(&out.stdout)
    };
    assert_eq!(with_status(&t, "built").len(), 4, "{t:?}");
    assert!(elsewhere.path().join("xtask/state.json").is_file(), "state follows CARGO_TARGET_DIR");
    assert!(!f.path().join("target").exists(), "nothing is written to the default target/");

    // The same through `build.target-dir` in the repository's .cargo/config.toml.
    f.write(".cargo/config.toml", "[build]\ntarget-dir = \"out\"\n");
    let out = f.xtask(&["lambda-build-all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(f.path().join("out/xtask/state.json").is_file());
    assert!(!f.path().join("target").exists());
}

#[test]
fn github_groups_of_parallel_builds_never_interleave() {
    let f = Fixture::new(&["alpha", "beta", "gamma"]);
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = f.xtask_env(
        &["lambda-build-all", "-j", "3"],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", summary.path().to_str().unwrap())],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let mut open: Option<&str> = None;
    let mut groups = 0;
    for line in err.lines() {
        if let Some(title) = line.strip_prefix("::group::") {
            assert!(open.is_none(), "group `{title}` opened inside `{}`:\n{err}", open.unwrap_or_default());
            open = Some(title);
            groups += 1;
        } else if line == "::endgroup::" {
            assert!(open.take().is_some(), "an endgroup without a group:\n{err}");
        }
    }
    assert!(open.is_none(), "{err}");
    assert_eq!(groups, 6, "one group per build (wheel, site-packages, lambda-base, three Lambdas):\n{err}");
    let text = std::fs::read_to_string(summary.path()).unwrap();
    assert!(text.contains("### Lambda images") && text.contains("| `tradai/lambda-beta` | built |"), "{text}");
}
