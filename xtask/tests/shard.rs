//! `--shard I/N`: the targets that must be built split into N disjoint parts whose union
//! is the whole plan, with the registry as the only thing the runners share.
//!
//! The rule the tool implements (`xtask_engine::shard`), asserted here exactly: a target
//! that another image is built on (lambda-base, and the wheel and site-packages tree it
//! is made from) is shard 1's; every other image is dealt round-robin; a shard builds a
//! target only when every dependency it must build is built by that same shard, and a
//! dependency another shard builds is always shard 1's, is listed in `shard.waits_for`,
//! and is taken from the registry once shard 1 has pushed it. No shard ever builds on
//! a target a later shard builds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::registry::TestRegistry;
use support::*;

const LAMBDAS: [&str; 7] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
const BASE: &str = "tradai/lambda-base";
const SITE: &str = "site-packages:tradai-common";
const WHEEL: &str = "tradai-common";

/// What each target of the fixture is built from (the graph `Project::targets_with` makes).
fn deps_of(id: &str) -> Vec<&'static str> {
    match id {
        WHEEL => vec![],
        SITE => vec![WHEEL],
        BASE => vec![SITE],
        lambda if lambda.starts_with("tradai/lambda-") => vec![BASE],
        other => panic!("unexpected target {other}"),
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "xtask failed:\n{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn with(targets: &[(String, String, serde_json::Value)], status: &str) -> BTreeSet<String> {
    with_status(targets, status).into_iter().map(str::to_owned).collect()
}

/// One shard's dry run: what it would build, what it waits for, and its assignment.
struct Part {
    index: usize,
    builds: BTreeSet<String>,
    waits_for: Vec<String>,
    assignment: BTreeMap<String, Vec<usize>>,
}

fn dry_run(f: &Fixture, host: &str, index: usize, count: usize) -> Part {
    let shard = format!("{index}/{count}");
    let out = f.xtask(&["lambda-push-all", "--registry", host, "--dry-run", "--json", "--shard", &shard]);
    let v = json(&out);
    let targets = parse_targets(&out.stdout);
    let builds = with(&targets, "would-build");
    assert_eq!(ids(&v["shard"]["builds"]).into_iter().collect::<BTreeSet<_>>(), builds, "`shard.builds` is what the plan builds");
    assert_eq!(v["shard"]["index"], index);
    assert_eq!(v["shard"]["count"], count);
    let assignment: BTreeMap<String, Vec<usize>> = serde_json::from_value(v["shard"]["assignment"].clone()).unwrap();
    // Every target another shard builds says which, as the assignment has it.
    for (id, status, t) in &targets {
        let reason = t["reason"].as_str().unwrap();
        if let Some(rest) = reason.strip_prefix("built by shard ") {
            assert_eq!(status, "skipped", "{id}");
            let owner: usize = rest.split('/').next().unwrap().parse().unwrap();
            assert_ne!(owner, index, "{id}: {reason}");
            assert_eq!(assignment[id], [owner], "{id}: {reason}");
        }
    }
    let mut steps: Vec<(String, String)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "push")
        .map(|s| (s["target"].as_str().unwrap().to_owned(), s["action"].as_str().unwrap().to_owned()))
        .collect();
    steps.sort();
    let pushed: BTreeSet<String> = steps.into_iter().map(|(t, _)| t).collect();
    let images: BTreeSet<String> = builds.iter().filter(|b| b.starts_with("tradai/")).cloned().collect();
    assert_eq!(pushed, images, "a shard pushes exactly the images it builds");
    Part { index, builds, waits_for: ids(&v["shard"]["waits_for"]), assignment }
}

#[test]
fn shards_are_disjoint_complete_respect_lambda_base_and_build_each_image_once() {
    let reg = TestRegistry::start();
    let f = Fixture::new(&LAMBDAS);
    let whole = parse_targets(&f.xtask(&["lambda-push-all", "--registry", &reg.host, "--dry-run", "--json"]).stdout);
    let everything = with(&whole, "would-build");
    assert_eq!(everything.len(), 3 + LAMBDAS.len(), "the wheel, site-packages, lambda-base and every lambda: {everything:?}");

    let parts: Vec<Part> = (1..=3).map(|i| dry_run(&f, &reg.host, i, 3)).collect();
    // Disjoint, and together the whole plan.
    for a in &parts {
        for b in parts.iter().filter(|b| b.index > a.index) {
            let both: Vec<&String> = a.builds.intersection(&b.builds).collect();
            assert!(both.is_empty(), "shards {} and {} both build {both:?}", a.index, b.index);
        }
    }
    let union: BTreeSet<String> = parts.iter().flat_map(|p| p.builds.iter().cloned()).collect();
    assert_eq!(union, everything, "the shards together build what the unsharded run builds");
    // Balanced: the 8 images 3/3/2, lambda-base counted in shard 1.
    let images: Vec<usize> = parts.iter().map(|p| p.builds.iter().filter(|b| b.starts_with("tradai/")).count()).collect();
    assert!(images.iter().max().unwrap() - images.iter().min().unwrap() <= 1, "{images:?}");
    // The rule: a dependency that must be built is built by the same shard, or by shard 1
    // and waited for; never by a later shard.
    let builder_of = |id: &str| parts.iter().find(|p| p.builds.contains(id)).map(|p| p.index);
    for part in &parts {
        assert_eq!(part.assignment, parts[0].assignment, "every shard computes the same assignment");
        let mut waits: BTreeSet<&str> = BTreeSet::new();
        for target in &part.builds {
            for dep in deps_of(target) {
                let Some(by) = builder_of(dep) else { continue };
                if by != part.index {
                    assert_eq!(by, 1, "shard {} builds {target} on {dep}, which shard {by} builds", part.index);
                    assert!(part.waits_for.iter().any(|w| w == dep), "shard {} must wait for {dep}", part.index);
                    waits.insert(dep);
                }
            }
        }
        assert_eq!(
            part.waits_for.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            waits,
            "shard {} waits for exactly that",
            part.index
        );
    }
    for id in [WHEEL, SITE, BASE] {
        assert_eq!(builder_of(id), Some(1), "{id} is shard 1's");
    }
    assert!(parts[0].waits_for.is_empty(), "shard 1 never waits");
    for part in &parts[1..] {
        assert_eq!(part.waits_for, [BASE], "shard {} builds lambdas and waits for lambda-base", part.index);
    }
    // Stable: another clone (another runner) splits the same way.
    let other = Fixture::clone_of(&f);
    assert_eq!(dry_run(&other, &reg.host, 2, 3).builds, parts[1].builds);

    // Really built, one shard after another, each in a clone of its own (its own state;
    // the registry is all they share).
    let mut built: BTreeMap<String, usize> = BTreeMap::new();
    for part in &parts {
        let runner = Fixture::clone_of(&f);
        let shard = format!("{}/3", part.index);
        let out = runner.xtask(&["lambda-push-all", "--registry", &reg.host, "--json", "--shard", &shard]);
        let v = json(&out);
        let targets = parse_targets(&out.stdout);
        let here = with(&targets, "built");
        assert_eq!(here, part.builds, "shard {shard} builds what its dry run said: {}", stderr(&out));
        // Run after shard 1, it finds lambda-base in the registry.
        assert!(ids(&v["shard"]["waits_for"]).is_empty(), "run in order, nobody waits");
        for id in here.iter().filter(|b| b.starts_with("tradai/")) {
            *built.entry(id.clone()).or_default() += 1;
        }
        let pushed: BTreeSet<String> = v["published"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["action"] == "pushed")
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(pushed, here.iter().filter(|b| b.starts_with("tradai/")).cloned().collect(), "shard {shard} pushes what it built");
    }
    let images: BTreeSet<String> = everything.iter().filter(|b| b.starts_with("tradai/")).cloned().collect();
    assert_eq!(built.keys().cloned().collect::<BTreeSet<_>>(), images, "every image was built");
    assert!(built.values().all(|n| *n == 1), "every image was built exactly once: {built:?}");
    for (id, _, t) in whole.iter().filter(|(id, _, _)| id.starts_with("tradai/")) {
        let tag = format!("inputs-{}", &t["input_hash"].as_str().unwrap()[..32]);
        assert!(reg.digest(id, &tag).is_some(), "{id}:{tag} is in the registry");
    }

    // The unsharded run afterwards, on a fresh runner, builds nothing.
    let last = Fixture::clone_of(&f);
    let out = last.xtask(&["lambda-push-all", "--registry", &reg.host, "--json"]);
    json(&out);
    let targets = parse_targets(&out.stdout);
    assert!(with(&targets, "built").is_empty(), "{targets:?}");
    assert!(targets.iter().all(|(_, s, _)| s == "skipped"), "{targets:?}");
}

/// Spawns a sharded publish whose stderr lines arrive on the returned channel.
fn spawn(f: &Fixture, host: &str, shard: &str, env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = f.command(&["lambda-push-all", "--registry", host, "--json", "--shard", shard]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with `{needle}` within a minute; stderr so far:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn shards_run_at_once_wait_for_lambda_base_from_shard_one() {
    let reg = TestRegistry::start();
    let f = Fixture::new(&["alpha", "beta", "gamma", "delta"]);
    // Shards 2 and 3 start first, on runners of their own, and wait for lambda-base...
    let (r2, r3, r1) = (Fixture::clone_of(&f), Fixture::clone_of(&f), Fixture::clone_of(&f));
    let mut later = Vec::new();
    for (runner, shard) in [(&r2, "2/3"), (&r3, "3/3")] {
        let (child, rx) = spawn(runner, &reg.host, shard, &[]);
        let mut seen = Vec::new();
        wait_for_line(&rx, "waiting for tradai/lambda-base", &mut seen);
        assert!(seen.iter().any(|l| l.contains("shard 1/3 builds it")), "{seen:?}");
        later.push((shard, child, rx, seen));
    }
    // ...which shard 1 builds and pushes; then they build their lambdas on it.
    let first = r1.xtask(&["lambda-push-all", "--registry", &reg.host, "--json", "--shard", "1/3"]);
    let mut built: BTreeMap<String, usize> = BTreeMap::new();
    let v1 = json(&first);
    assert!(ids(&v1["shard"]["builds"]).contains(&BASE.to_owned()));
    for id in with(&parse_targets(&first.stdout), "built").into_iter().filter(|b| b.starts_with("tradai/")) {
        *built.entry(id).or_default() += 1;
    }
    for (shard, child, rx, mut seen) in later {
        let out = child.wait_with_output().unwrap();
        seen.extend(rx.try_iter());
        assert!(out.status.success(), "shard {shard} failed:\n{}", seen.join("\n"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ids(&v["shard"]["waits_for"]), [BASE], "shard {shard}");
        let targets = parse_targets(&out.stdout);
        let base = targets.iter().find(|(id, _, _)| id == BASE).unwrap();
        assert_eq!(base.1, "skipped", "shard {shard} does not build lambda-base");
        assert_eq!(base.2["reason"], format!("found in registry {}, built by shard 1/3", reg.host), "shard {shard}");
        let here = with(&targets, "built");
        assert!(!here.is_empty() && here.iter().all(|b| b.starts_with("tradai/lambda-") && b != BASE), "shard {shard} built {here:?}");
        for id in here {
            *built.entry(id).or_default() += 1;
        }
        assert!(seen.iter().any(|l| l.contains("tradai/lambda-base is in registry")), "{seen:?}");
    }
    assert_eq!(built.len(), 5, "lambda-base and 4 lambdas: {built:?}");
    assert!(built.values().all(|n| *n == 1), "each built once: {built:?}");
    let again = Fixture::clone_of(&f).xtask(&["lambda-push-all", "--registry", &reg.host, "--json"]);
    json(&again);
    assert!(with(&parse_targets(&again.stdout), "built").is_empty(), "{}", stderr(&again));
}

#[test]
fn a_shard_gives_up_on_a_missing_lambda_base_and_a_run_that_cannot_share_it_is_refused() {
    let reg = TestRegistry::start();
    let f = Fixture::new(&["alpha", "beta", "gamma"]);
    // Shard 1 never runs: shard 2 stops after XTASK_SHARD_WAIT seconds, naming shard 1.
    let started = Instant::now();
    let out = f.xtask_env(&["lambda-push-all", "--registry", &reg.host, "--shard", "2/2"], &[("XTASK_SHARD_WAIT", "2")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("tradai/lambda-base (inputs-") && err.contains(&format!("did not appear in registry {} within 2 s", reg.host)),
        "{err}"
    );
    assert!(err.contains("check shard 1/2's run"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(reg.catalog().is_empty(), "nothing was pushed: {:?}", reg.catalog());

    // Without publishing, shard 2 could never receive lambda-base: refused before building.
    let out = f.xtask(&["lambda-build-all", "--shard", "2/2", "--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("only a run that publishes to a registry shares it between shards") && err.contains("run shard 1/2 first"),
        "{err}"
    );

    // Bad values: one line naming the form, exit 2.
    for bad in ["0/2", "3/2", "x"] {
        let out = f.xtask(&["lambda-build-all", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&format!("`{bad}` is not a shard")) && err.contains("I/N with 1 <= I <= N"), "{err}");
    }
    // --update-functions needs every image: refused with a shard.
    let out = f.xtask(&["lambda-bootstrap", "--registry", &reg.host, "--update-functions", "--shard", "1/2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--update-functions needs every image"), "{}", stderr(&out));
}
