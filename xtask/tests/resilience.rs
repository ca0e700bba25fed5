//! Kills and races, through the real binary on fixture repositories and the machine's
//! Docker engine (and a loopback registry for the clones):
//! - SIGKILL at random moments of full rebuilds: after each kill every record in the state
//!   names an artifact that exists with the recorded id, the next run converges and the
//!   run after it builds nothing;
//! - two runs at once on one tree, and two clones sharing one engine and one registry:
//!   both finish, no target is built twice for one input hash, and the state stays valid.
//!
//! The kill moments come from a seeded generator; the seed is printed, and
//! `XTASK_KILL_SEED=<n>` replays a run.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::registry::TestRegistry;
use support::{Fixture, stderr, with_status};

/// Every record in the state names an artifact that exists with the recorded id; returns
/// how many records there are. The state file is never torn.
fn assert_records_are_true(root: &Path) -> usize {
    assert_records_are_true_with(root, None)
}

/// [`assert_records_are_true`], where a record may also name an image in `registry`.
fn assert_records_are_true_with(root: &Path, registry: Option<&TestRegistry>) -> usize {
    let Ok(text) = fs::read_to_string(root.join("target/xtask/state.json")) else { return 0 };
    let state: serde_json::Value = serde_json::from_str(&text).expect("the state is never left torn");
    let targets = state["targets"].as_object().expect("a targets map");
    let in_store = |digest: &str| root.join("target/xtask/oci/blobs/sha256").join(digest.trim_start_matches("sha256:")).is_file();
    for (id, rec) in targets {
        let artifact = rec["output"]["artifact"].as_str().unwrap();
        if rec["output"]["detail"]["builder"] == "assembled" {
            // Assembled: the image is in the tool's image store (its config is the id, its
            // manifest the digest); the engine gets it when the run delivers it.
            let manifest = rec["output"]["detail"]["digest"].as_str().unwrap();
            assert!(in_store(artifact) && in_store(manifest), "state records {id} as {artifact} ({manifest}), which the image store does not hold");
        } else if let Some(reg) = registry.filter(|r| artifact.starts_with(&format!("{}/", r.host))) {
            // Found in the registry: it holds the tag with the digest recorded.
            let (repo, tag) = artifact[reg.host.len() + 1..].rsplit_once(':').unwrap();
            assert_eq!(reg.digest(repo, tag).as_deref(), rec["output"]["pushed"][&reg.host].as_str(), "state records {id} as {artifact}");
        } else if artifact.starts_with("sha256:") {
            let out = Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", artifact]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), artifact, "state records {id} as {artifact}, which the engine does not hold");
        } else {
            assert!(Path::new(artifact).exists(), "state records {id} as {artifact}, which does not exist");
        }
    }
    targets.len()
}

/// xorshift64*: enough to spread kill moments, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[test]
fn twenty_kills_at_random_moments_leave_only_true_records() {
    let f = Fixture::new(&["alpha", "beta"]);
    let started = Instant::now();
    let cold = f.build_json(&["lambda-build-all"]);
    let full = started.elapsed();
    assert_eq!(with_status(&cold, "built").len(), 5, "{cold:?}");

    let seed = std::env::var("XTASK_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("kill seed {seed} (XTASK_KILL_SEED={seed} replays it); a full rebuild takes {full:?}");
    let mut rng = Rng(seed);
    // Moments spread over the whole of a rebuild, capped so the suite stays short.
    let window = full.as_millis().clamp(500, 8000) as u64;
    let mut records_seen = Vec::new();
    for round in 0..20 {
        // Every round changes tradai-common: everything rebuilds.
        f.append("libs/tradai-common/src/tradai_common/__init__.py", &format!("ROUND = {round}\n"));
        let mut child = f.command(&["lambda-build-all"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(window)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        records_seen.push(assert_records_are_true(f.path()));
    }
    eprintln!("20 kills survived; records in the state after each: {records_seen:?}");

    let converge = f.build_json(&["lambda-build-all"]);
    assert!(with_status(&converge, "failed").is_empty(), "{converge:?}");
    assert_records_are_true(f.path());
    let after = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&after, "skipped").len(), 5, "the run after converging builds nothing: {after:?}");
}

/// Which targets each run built.
fn built(runs: &[&[(String, String, serde_json::Value)]]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for run in runs {
        for id in with_status(run, "built") {
            *count.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    count
}

fn run_json(f: &Fixture, args: &[&str]) -> Vec<(String, String, serde_json::Value)> {
    let out = f.xtask(args);
    assert!(out.status.success(), "{}", stderr(&out));
    support::parse_targets(&out.stdout)
}

#[test]
fn two_runs_at_once_on_one_tree_build_each_target_once() {
    let f = Fixture::new(&["alpha", "beta", "gamma"]);
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| run_json(&f, &["lambda-build-all", "--json"]));
        (run_json(&f, &["lambda-build-all", "--json"]), other.join().unwrap())
    });
    let count = built(&[&a, &b]);
    assert!(count.values().all(|n| *n == 1), "a target was built twice: {count:?}");
    assert_eq!(count.len(), 6, "everything was built by one run or the other: {count:?}");
    let skipped_meanwhile = [&a, &b].iter().flat_map(|r| r.iter()).filter(|(_, s, t)| s == "skipped" && t["reason"] == "built by another run meanwhile").count();
    assert!(skipped_meanwhile > 0, "the second run waited for the first: {a:?} {b:?}");
    assert_eq!(assert_records_are_true(f.path()), 6);
    assert_eq!(with_status(&f.build_json(&["lambda-build-all"]), "skipped").len(), 6);
}

#[test]
fn two_clones_sharing_one_engine_and_registry_build_each_image_once() {
    let registry = TestRegistry::start();
    let one = Fixture::new(&["alpha", "beta"]);
    let two = Fixture::clone_of(&one);
    let args = ["lambda-bootstrap", "--json", "--registry", registry.host.as_str()];
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| run_json(&two, &args));
        (run_json(&one, &args), other.join().unwrap())
    });
    // Wheels are files of each clone; every image is built once, by one clone or the other.
    let count = built(&[&a, &b]);
    let images: BTreeMap<&String, &usize> = count.iter().filter(|(id, _)| id.starts_with("tradai/")).collect();
    assert!(images.values().all(|n| **n == 1), "an image was built twice for one hash: {count:?}");
    assert_eq!(images.len(), 3, "{count:?}");
    for f in [&one, &two] {
        assert_records_are_true_with(f.path(), Some(&registry));
        let again = f.build_json(&["lambda-bootstrap", "--registry", registry.host.as_str()]);
        assert!(with_status(&again, "built").is_empty(), "{again:?}");
    }
    for image in ["tradai/lambda-base", "tradai/lambda-alpha", "tradai/lambda-beta"] {
        assert!(registry.catalog().iter().any(|r| r == image), "{image} is in the registry: {:?}", registry.catalog());
    }
}

#[test]
fn sigterm_starts_no_new_build_records_what_finished_and_exits_143() {
    use std::io::{BufRead as _, BufReader};
    let f = Fixture::new(&["alpha", "beta"]);
    let mut child = f.command(&["lambda-build-all", "-j", "1", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    // The first build starts: the wheel (uv build, seconds).
    while !said.contains("building tradai-common") {
        assert!(err.read_line(&mut said).unwrap() > 0, "the run ended before building: {said}");
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    said.push_str(&rest);
    assert_eq!(out.status.code(), Some(143), "{said}");
    assert!(said.contains("SIGTERM received: no new build starts; waiting for the 1 running to finish"), "{said}");
    let targets = support::parse_targets(&out.stdout);
    assert_eq!(with_status(&targets, "built"), ["tradai-common"], "the running build finished: {said}");
    for (id, status, t) in &targets[1..] {
        assert_eq!((status.as_str(), t["reason"].as_str()), ("failed", Some("not started: the run was interrupted")), "{id}");
    }
    assert_eq!(assert_records_are_true(f.path()), 1, "only what finished is recorded");
    let next = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&next, "built").len(), 4, "the next run builds the rest: {next:?}");
}
