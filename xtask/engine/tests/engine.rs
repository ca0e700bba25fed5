//! The engine's core (plan, execute, record, report) driven by a fake builder that
//! records its calls and can fail or take its time: decisions, pruning, remote hits,
//! fail-fast, blocked dependents and the `-j` limit. Plans are compared with golden
//! files in `tests/golden/` (`XTASK_BLESS=1` rewrites them after an intended change).
//! No Docker, no network: the suite runs in well under a second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xtask_engine::plan::{closure, make_plan};
use xtask_engine::{
    BuildJob, Builder, Decision, ExecOptions, FileCache, InputHash, InputManifest, Output, Plan, PlanItem, Presence, Progress, RemoteCache, RemoteHit,
    StateStore, Status, Target, TargetReport, execute, execute_then,
};

/// What every fake builder shares: the calls made, the builds running at once, and
/// which outputs still exist.
#[derive(Default)]
struct World {
    calls: Mutex<Vec<String>>,
    /// Build starts and ends, and `after` steps, in the order they happened.
    events: Mutex<Vec<String>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    gone: Mutex<HashSet<String>>,
    /// Outputs by the input hash they were built for: the artifacts' own cache, as an
    /// engine holds images tagged with their hash.
    by_hash: Mutex<HashMap<String, String>>,
    /// Targets whose output lost a name the run promises (a `latest` tag).
    unnamed: Mutex<HashSet<String>>,
}

/// A target whose one input is a string, and whose build can fail or be slow.
struct Fake {
    world: Arc<World>,
    input: Mutex<String>,
    fail: bool,
    delay: Duration,
}

impl Builder for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn inputs(&self, id: &str, _files: &FileCache) -> Result<InputManifest> {
        let mut m = InputManifest::new("fake", id);
        m.params.insert("input".into(), self.input.lock().unwrap().clone());
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        Ok(!self.world.gone.lock().unwrap().contains(&output.artifact))
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        let now = self.world.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.world.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.world.calls.lock().unwrap().push(job.id.to_owned());
        self.world.events.lock().unwrap().push(format!("start {}", job.id));
        std::thread::sleep(self.delay);
        self.world.events.lock().unwrap().push(format!("end {}", job.id));
        self.world.running.fetch_sub(1, Ordering::SeqCst);
        // Every dependency's output is handed over.
        assert!(job.deps.values().all(|(_, o)| o.artifact.starts_with("artifact:")), "{:?}", job.deps);
        if self.fail {
            bail!("{} failed on purpose", job.id);
        }
        // Named after the input version, not the hash, so that golden files keep no hashes.
        let artifact = format!("artifact:{}:{}", job.id, job.inputs.params["input"]);
        self.world.by_hash.lock().unwrap().insert(job.input_hash.as_str().to_owned(), artifact.clone());
        Ok(Output { artifact, ..Output::default() })
    }

    fn presence(&self, output: &Output) -> Result<Presence> {
        if !self.output_exists(output)? {
            return Ok(Presence::Missing);
        }
        let id = output.artifact.split(':').nth(1).unwrap_or_default().to_owned();
        let missing_names = if self.world.unnamed.lock().unwrap().contains(&id) { vec![format!("{id}:latest")] } else { Vec::new() };
        Ok(Presence::Present { missing_names })
    }

    fn restore_names(&self, output: &Output, names: &[String]) -> Result<()> {
        let id = output.artifact.split(':').nth(1).unwrap_or_default();
        self.world.unnamed.lock().unwrap().remove(id);
        self.world.events.lock().unwrap().push(format!("restore {}", names.join(" ")));
        Ok(())
    }

    fn adopt(&self, _id: &str, hash: &InputHash) -> Result<Option<RemoteHit>> {
        let found = self.world.by_hash.lock().unwrap().get(hash.as_str()).cloned();
        Ok(found.filter(|a| !self.world.gone.lock().unwrap().contains(a)).map(|artifact| RemoteHit {
            location: "the fake cache".into(),
            output: Output { artifact, ..Output::default() },
        }))
    }
}

/// A graph of fake targets over one state folder.
struct Bed {
    world: Arc<World>,
    fakes: BTreeMap<String, Arc<Fake>>,
    targets: Vec<Target>,
    store: StateStore,
    _dir: tempfile::TempDir,
}

impl Bed {
    /// `(id, deps)` in any order; `fail` and `slow` name targets that fail or sleep.
    fn new(graph: &[(&str, &[&str])], fail: &[&str], slow: &[&str]) -> Bed {
        let world = Arc::new(World::default());
        let mut fakes = BTreeMap::new();
        let mut targets = Vec::new();
        for (id, deps) in graph {
            let fake = Arc::new(Fake {
                world: world.clone(),
                input: Mutex::new("v1".into()),
                fail: fail.contains(id),
                delay: if slow.contains(id) { Duration::from_millis(25) } else { Duration::ZERO },
            });
            fakes.insert((*id).to_owned(), fake.clone());
            targets.push(Target { id: (*id).to_owned(), deps: deps.iter().map(|d| (*d).to_owned()).collect(), builder: fake });
        }
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(Utf8Path::from_path(dir.path()).unwrap());
        Bed { world, fakes, targets, store, _dir: dir }
    }

    fn plan(&self, selected: &[&str], remote: Option<&dyn RemoteCache>) -> Plan {
        let selected: Vec<String> = selected.iter().map(|s| (*s).to_owned()).collect();
        let order = closure(&self.targets, &selected).unwrap();
        make_plan(&order, &selected, &self.store.load().unwrap(), &FileCache::in_memory(), remote).unwrap()
    }

    fn run(&self, plan: &Plan, jobs: usize, fail_fast: bool) -> Vec<TargetReport> {
        self.world.calls.lock().unwrap().clear();
        execute(plan, &self.targets, &self.store, ExecOptions { jobs, fail_fast }, &Progress::plain())
    }

    fn edit(&self, id: &str, input: &str) {
        *self.fakes[id].input.lock().unwrap() = input.to_owned();
    }

    fn calls(&self) -> Vec<String> {
        self.world.calls.lock().unwrap().clone()
    }

    fn recorded(&self) -> Vec<String> {
        self.store.load().unwrap().targets.keys().cloned().collect()
    }
}

/// A plan as text, one line per target: id, decision and reason (hashes left out so the
/// golden files survive a change of hashing scheme).
fn render(plan: &Plan) -> String {
    let mut s = String::new();
    for i in &plan.items {
        let (what, why) = match &i.decision {
            Decision::Build(r) => ("build", r.to_string()),
            Decision::Skip { reason, remote, .. } => (if *remote { "skip (remote)" } else { "skip" }, reason.clone()),
        };
        s.push_str(&format!("{:<8} {:<14} {why}\n", i.id, what));
    }
    s
}

fn golden(name: &str, plan: &Plan) {
    let path = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"));
    let actual = render(plan);
    if std::env::var("XTASK_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no golden file {path}; run with XTASK_BLESS=1 to write it"));
    assert_eq!(actual, expected, "plan differs from {path} (XTASK_BLESS=1 rewrites it after an intended change)");
}

fn statuses(reports: &[TargetReport]) -> Vec<(String, Status)> {
    reports.iter().map(|r| (r.id.clone(), r.status)).collect()
}

/// wheel -> base -> {a, b}; c stands alone.
const GRAPH: &[(&str, &[&str])] = &[("wheel", &[]), ("base", &["wheel"]), ("a", &["base"]), ("b", &["base"]), ("c", &[])];
const ALL: &[&str] = &["a", "b", "c"];

#[test]
fn first_run_builds_everything_in_dependency_order_then_nothing() {
    let bed = Bed::new(GRAPH, &[], &[]);
    let plan = bed.plan(ALL, None);
    golden("first-run", &plan);
    let reports = bed.run(&plan, 1, false);
    assert!(reports.iter().all(|r| r.status == Status::Built), "{reports:?}");
    let calls = bed.calls();
    let pos = |id: &str| calls.iter().position(|c| c == id).unwrap();
    assert!(pos("wheel") < pos("base") && pos("base") < pos("a") && pos("base") < pos("b"), "{calls:?}");
    assert_eq!(bed.recorded(), ["a", "b", "base", "c", "wheel"]);

    let again = bed.plan(ALL, None);
    golden("nothing-changed", &again);
    bed.run(&again, 2, false);
    assert!(bed.calls().is_empty(), "nothing is built twice: {:?}", bed.calls());
}

#[test]
fn a_change_rebuilds_the_target_and_its_dependents_only() {
    let bed = Bed::new(GRAPH, &[], &[]);
    bed.run(&bed.plan(ALL, None), 2, false);
    bed.edit("base", "v2");
    let plan = bed.plan(ALL, None);
    golden("base-changed", &plan);
    bed.run(&plan, 2, false);
    let mut calls = bed.calls();
    calls.sort();
    assert_eq!(calls, ["a", "b", "base"]);
}

#[test]
fn a_vanished_output_is_rebuilt_with_the_reason() {
    let bed = Bed::new(GRAPH, &[], &[]);
    let reports = bed.run(&bed.plan(ALL, None), 2, false);
    let c = reports.iter().find(|r| r.id == "c").unwrap().artifact.clone().unwrap();
    bed.world.gone.lock().unwrap().insert(c);
    let plan = bed.plan(ALL, None);
    golden("output-gone", &plan);
    bed.run(&plan, 2, false);
    assert_eq!(bed.calls(), ["c"]);
}

#[test]
fn outputs_made_for_the_exact_hash_are_adopted_when_the_state_is_lost() {
    let bed = Bed::new(GRAPH, &[], &[]);
    bed.run(&bed.plan(ALL, None), 2, false);
    // `cargo clean`: the state goes, the artifacts stay.
    std::fs::remove_file(bed.store.path()).unwrap();
    let plan = bed.plan(ALL, None);
    golden("state-lost", &plan);
    bed.run(&plan, 2, false);
    assert!(bed.calls().is_empty(), "adopted, not rebuilt: {:?}", bed.calls());
    assert_eq!(bed.recorded(), ["a", "b", "base", "c", "wheel"], "adopted outputs are recorded");
    assert!(bed.plan(ALL, None).items.iter().all(|i| matches!(&i.decision, Decision::Skip { reason, .. } if reason == "up to date")));

    // Back to an earlier version of the inputs: its outputs still exist, nothing builds.
    bed.edit("c", "v2");
    bed.run(&bed.plan(ALL, None), 2, false);
    assert_eq!(bed.calls(), ["c"]);
    bed.edit("c", "v1");
    let plan = bed.plan(ALL, None);
    let c = plan.items.iter().find(|i| i.id == "c").unwrap();
    assert!(matches!(&c.decision, Decision::Skip { reason, record: true, .. } if reason == "found in the fake cache, made earlier for these exact inputs"), "{c:?}");
    bed.run(&plan, 2, false);
    assert!(bed.calls().is_empty(), "{:?}", bed.calls());
}

#[test]
fn a_missing_name_is_restored_without_a_rebuild() {
    let bed = Bed::new(GRAPH, &[], &[]);
    bed.run(&bed.plan(ALL, None), 2, false);
    bed.world.unnamed.lock().unwrap().insert("b".into());
    let plan = bed.plan(ALL, None);
    let b = plan.items.iter().find(|i| i.id == "b").unwrap();
    assert!(matches!(&b.decision, Decision::Skip { reason, .. } if reason == "up to date; restores b:latest"), "{b:?}");
    bed.world.events.lock().unwrap().clear();
    bed.run(&plan, 2, false);
    assert!(bed.calls().is_empty(), "{:?}", bed.calls());
    assert_eq!(*bed.world.events.lock().unwrap(), ["restore b:latest"]);
    assert!(bed.world.unnamed.lock().unwrap().is_empty());
}

#[test]
fn two_runs_at_once_build_each_target_once() {
    // Slow builds, so that both runs plan everything before either has built anything.
    let bed = Bed::new(GRAPH, &[], &["wheel", "base", "a", "b", "c"]);
    let (p1, p2) = (bed.plan(ALL, None), bed.plan(ALL, None));
    assert_eq!(p1.to_build().count(), 5);
    let opts = ExecOptions { jobs: 2, fail_fast: false };
    let (r1, r2) = std::thread::scope(|s| {
        let one = s.spawn(|| execute(&p1, &bed.targets, &bed.store, opts, &Progress::plain()));
        let two = s.spawn(|| execute(&p2, &bed.targets, &bed.store, opts, &Progress::plain()));
        (one.join().unwrap(), two.join().unwrap())
    });
    let mut calls = bed.calls();
    calls.sort();
    assert_eq!(calls, ["a", "b", "base", "c", "wheel"], "each target built by one run only");
    for id in ["wheel", "base", "a", "b", "c"] {
        let statuses: Vec<Status> = [&r1, &r2].iter().map(|r| r.iter().find(|t| t.id == id).unwrap().status).collect();
        assert!(statuses.contains(&Status::Built) && statuses.contains(&Status::Skipped), "{id}: {statuses:?}");
        let other = [&r1, &r2].iter().flat_map(|r| r.iter()).find(|t| t.id == id && t.status == Status::Skipped).unwrap();
        assert_eq!(other.reason, "built by another run meanwhile");
    }
    assert_eq!(bed.recorded().len(), 5);
}

#[test]
fn a_signal_starts_no_new_build_lets_the_running_one_finish_and_records_only_it() {
    let bed = Bed::new(GRAPH, &[], &["wheel", "base", "a", "b", "c"]);
    let plan = bed.plan(ALL, None);
    let reports = std::thread::scope(|s| {
        let run = s.spawn(|| execute(&plan, &bed.targets, &bed.store, ExecOptions { jobs: 1, fail_fast: false }, &Progress::plain()));
        while !bed.world.events.lock().unwrap().iter().any(|e| e == "start wheel") {
            std::thread::sleep(Duration::from_millis(1));
        }
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        run.join().unwrap()
    });
    assert_eq!(bed.calls(), ["wheel"], "nothing started after the signal");
    assert_eq!(statuses(&reports)[0], ("wheel".to_owned(), Status::Built), "the running build finished");
    for r in &reports[1..] {
        assert_eq!((r.status, r.reason.as_str()), (Status::Failed, "not started: the run was interrupted"), "{}", r.id);
    }
    assert_eq!(bed.recorded(), ["wheel"]);
    assert_eq!(xtask_engine::interrupt::received(), Some(signal_hook::consts::SIGTERM));
}

/// A registry holding the outputs of some targets, by input hash.
struct Remote {
    holds: Vec<&'static str>,
    asked: Mutex<Vec<String>>,
}

impl RemoteCache for Remote {
    fn lookup(&self, wanted: &[(&str, &str, &InputHash)]) -> Result<HashMap<String, RemoteHit>> {
        let mut hits = HashMap::new();
        for (id, _, _) in wanted {
            self.asked.lock().unwrap().push((*id).to_owned());
            if self.holds.contains(id) {
                let output = Output { artifact: format!("artifact:{id}:remote"), ..Output::default() };
                hits.insert((*id).to_owned(), RemoteHit { location: "registry test".into(), output });
            }
        }
        Ok(hits)
    }
}

#[test]
fn remote_hits_are_skipped_and_what_only_they_needed_is_pruned() {
    let bed = Bed::new(GRAPH, &[], &[]);
    let remote = Remote { holds: vec!["a", "b"], asked: Mutex::default() };
    let plan = bed.plan(&["a", "b"], Some(&remote));
    golden("remote-hits", &plan);
    let mut asked = remote.asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["a", "b", "base", "wheel"], "one batch, every target that would build");
    bed.run(&plan, 2, false);
    assert!(bed.calls().is_empty(), "a fresh machine builds nothing the registry holds: {:?}", bed.calls());

    // One image missing from the registry: it and what it is built from are built.
    let remote = Remote { holds: vec!["a"], asked: Mutex::default() };
    let plan = bed.plan(&["a", "b"], Some(&remote));
    golden("remote-partial", &plan);
    bed.run(&plan, 2, false);
    assert_eq!(bed.calls(), ["wheel", "base", "b"]);
}

#[test]
fn a_failure_blocks_its_dependents_and_nothing_else() {
    let bed = Bed::new(GRAPH, &["base"], &[]);
    let reports = bed.run(&bed.plan(ALL, None), 1, false);
    let s = statuses(&reports);
    assert_eq!(
        s,
        [
            ("wheel".into(), Status::Built),
            ("base".into(), Status::Failed),
            ("a".into(), Status::Failed),
            ("b".into(), Status::Failed),
            ("c".into(), Status::Built)
        ]
    );
    let a = reports.iter().find(|r| r.id == "a").unwrap();
    assert_eq!(a.error.as_deref(), Some("not built: dependency base failed"));
    let base = reports.iter().find(|r| r.id == "base").unwrap();
    assert_eq!(base.error.as_deref(), Some("base failed on purpose"));
    assert_eq!(bed.recorded(), ["c", "wheel"], "only what was built is recorded");
    assert!(!bed.calls().contains(&"a".to_owned()));
}

#[test]
fn fail_fast_starts_nothing_after_the_first_failure() {
    let bed = Bed::new(&[("x", &[]), ("y", &[]), ("z", &[])], &["x"], &[]);
    let reports = bed.run(&bed.plan(&["x", "y", "z"], None), 1, true);
    assert_eq!(bed.calls(), ["x"]);
    for r in reports.iter().filter(|r| r.id != "x") {
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.error.as_deref(), Some("not started: an earlier target failed and --fail-fast is set"));
    }
    // Without it, everything that can be built is.
    let bed = Bed::new(&[("x", &[]), ("y", &[]), ("z", &[])], &["x"], &[]);
    bed.run(&bed.plan(&["x", "y", "z"], None), 1, false);
    assert_eq!(bed.calls(), ["x", "y", "z"]);
}

#[test]
fn no_more_than_j_builds_run_at_once_and_independent_ones_overlap() {
    let graph: &[(&str, &[&str])] = &[("p", &[]), ("q", &[]), ("r", &[]), ("s", &[]), ("t", &[])];
    let ids = ["p", "q", "r", "s", "t"];
    for jobs in [1, 2, 3] {
        let bed = Bed::new(graph, &[], &ids);
        bed.run(&bed.plan(&ids, None), jobs, false);
        assert_eq!(bed.world.most_at_once.load(Ordering::SeqCst), jobs, "-j {jobs}");
    }
}

#[test]
fn selection_errors_name_the_valid_targets_and_cycles() {
    let bed = Bed::new(GRAPH, &[], &[]);
    let e = closure(&bed.targets, &["nope".to_owned()]).unwrap_err().to_string();
    assert_eq!(e, "unknown target `nope`; valid targets: a, b, base, c, wheel");
    let cyclic = Bed::new(&[("m", &["n"]), ("n", &["m"])], &[], &[]);
    let e = closure(&cyclic.targets, &["m".to_owned()]).unwrap_err().to_string();
    assert!(e.starts_with("dependency cycle through"), "{e}");
}

#[test]
fn after_steps_run_as_soon_as_each_output_exists_within_the_job_limit() {
    let bed = Bed::new(&[("slow", &[]), ("fast", &[]), ("done", &[])], &[], &["slow"]);
    bed.run(&bed.plan(&["done"], None), 1, false);
    bed.world.events.lock().unwrap().clear();
    let plan = bed.plan(&["slow", "fast", "done"], None);
    let events = &bed.world.events;
    let after = |item: &PlanItem, output: &Output| {
        assert!(output.artifact.starts_with("artifact:"), "{output:?}");
        events.lock().unwrap().push(format!("after {}", item.id));
    };
    let reports = execute_then(&plan, &bed.targets, &bed.store, ExecOptions { jobs: 2, fail_fast: false }, &Progress::plain(), Some(&after));
    assert!(reports.iter().all(|r| r.status != Status::Failed), "{reports:?}");
    let log = events.lock().unwrap().clone();
    let at = |e: &str| log.iter().position(|l| l == e).unwrap_or_else(|| panic!("no `{e}` in {log:?}"));
    // Pipelined: the fast image's step runs while the slow one is still building.
    assert!(at("after fast") < at("end slow"), "{log:?}");
    assert!(at("end slow") < at("after slow"), "{log:?}");
    // The up-to-date target gets its step too, once; every step runs once.
    for id in ["slow", "fast", "done"] {
        assert_eq!(log.iter().filter(|l| **l == format!("after {id}")).count(), 1, "{log:?}");
    }
    assert!(!log.contains(&"start done".to_owned()), "up to date: not rebuilt");

    // A failed build gets no step.
    let failing = Bed::new(&[("bad", &[])], &["bad"], &[]);
    let ran = Mutex::new(Vec::new());
    let record = |item: &PlanItem, _: &Output| ran.lock().unwrap().push(item.id.clone());
    execute_then(&failing.plan(&["bad"], None), &failing.targets, &failing.store, ExecOptions { jobs: 1, fail_fast: false }, &Progress::plain(), Some(&record));
    assert!(ran.lock().unwrap().is_empty());
}
