//! Splitting the builds of a plan across N runners (`--shard I/N`), with the remote
//! cache (the registry) as the one thing the runners share.
//!
//! The split is made after planning (up-to-date targets, registry hits and pruning are
//! decided first), but who builds what is decided from the plan's graph alone, never from
//! what must be built: shards plan at different moments (one may plan after another has
//! already pushed half its images), and they agree only if the assignment ignores what
//! each found in the cache. The rule:
//!
//! 1. **First phase.** A shared target (one whose output travels through the remote cache:
//!    an image) that another shared target is built on (lambda-base) belongs to shard 1.
//! 2. **The rest** of the shared targets, sorted by id, are dealt round-robin, counting on
//!    from the first phase, so shard 1 gets fewer of them. A hash of the id would keep a
//!    target on its shard even when images are added, but with a handful of images it is
//!    uneven: SHA-256 modulo 3 puts the repository's 18 Lambda images 9/4/5, dealing puts
//!    them 6/6/6. Dealing keeps a target on its shard for as long as the set of images
//!    is the same, which is all that shards of one run need.
//! 3. **Local targets** (outputs that stay on the runner: the wheel, the site-packages
//!    tree, wheelhouses, the Debian stand-in) cannot be shared, so each is built by the
//!    shard that builds something on it. In this repository each feeds one image, except
//!    the stand-in, which every shard that builds on it builds itself.
//! 4. **Waiting.** A shard whose builds need a first-phase target that must be built (a
//!    changed lambda-base) does not build it: it waits until the remote cache holds it,
//!    then builds on it. Only shards 2..N wait, and only for shard 1, which never waits,
//!    so shards run at once cannot deadlock; run one after another in order, nobody waits.
//!
//! So every target that must be built is built by exactly one shard (local targets with
//! dependents in several shards aside), their union is the unsharded plan's, and no shard
//! builds on a target a later shard builds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::plan::{Decision, Plan, PlanItem, RemoteCache};
use crate::state::Output;

/// One part of N: `index` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// A `--shard` value that is not `I/N` with `1 <= I <= N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{value}` is not a shard ({why}); write it as I/N with 1 <= I <= N, e.g. --shard 2/3")]
pub struct ShardError {
    value: String,
    why: &'static str,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(value: &str) -> Result<Shard, ShardError> {
        let error = |why| ShardError { value: value.to_owned(), why };
        let (i, n) = value.split_once('/').ok_or_else(|| error("it has no `/`"))?;
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| error("I and N are whole numbers"));
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 {
            return Err(error("N is 0"));
        }
        if index == 0 || index > count {
            return Err(error("I is outside 1..N"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What one shard does with a plan, as `--json` reports it (`"shard"`).
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub index: usize,
    pub count: usize,
    /// For every target of the plan, the shards that build it when it must be built.
    pub assignment: BTreeMap<String, Vec<usize>>,
    /// The targets this shard builds, in plan order.
    pub builds: Vec<String>,
    /// Targets another shard builds that this shard's builds are built on: this shard
    /// waits until the remote cache holds them.
    pub waits_for: Vec<String>,
    /// How many targets the whole plan had to build, every shard's together.
    pub to_build_in_all: usize,
}

impl Split {
    pub fn shard(&self) -> Shard {
        Shard { index: self.index, count: self.count }
    }

    /// Whether this shard is the one that builds (and publishes) `id`.
    pub fn owns(&self, id: &str) -> bool {
        self.assignment.get(id).is_some_and(|s| s.contains(&self.index))
    }

    /// The shards that build `id`, as `1/3` or `1/3, 2/3`.
    fn owners(&self, id: &str) -> String {
        let shards = self.assignment.get(id).map(Vec::as_slice).unwrap_or_default();
        shards.iter().map(|s| format!("{s}/{}", self.count)).collect::<Vec<_>>().join(", ")
    }

    /// Waits until `cache` holds every target of [`Split::waits_for`], asking every
    /// `poll`, for at most `timeout`; each is then a registry hit this shard builds on.
    /// `place` names the cache in messages ("registry 127.0.0.1:5000").
    pub fn wait_for_dependencies(
        &self,
        plan: &mut Plan,
        cache: &dyn RemoteCache,
        place: &str,
        timeout: Duration,
        poll: Duration,
        say: &dyn Fn(&str),
    ) -> Result<()> {
        for id in &self.waits_for {
            let Some(item) = plan.items.iter_mut().find(|i| &i.id == id) else { continue };
            let owners = self.owners(id);
            let started = Instant::now();
            let mut said = false;
            let hit = loop {
                if let Some(hit) = cache.recheck(&item.id, item.kind, &item.input_hash)? {
                    break hit;
                }
                if !said {
                    say(&format!("waiting for {id} ({}): shard {owners} builds it and this shard builds on it", item.input_hash.tag()));
                    said = true;
                }
                if started.elapsed() >= timeout {
                    bail!(
                        "{id} ({}) did not appear in {place} within {} s; shard {owners} builds it and this shard builds on it: check shard {owners}'s run, then run this shard again",
                        item.input_hash.tag(),
                        timeout.as_secs()
                    );
                }
                std::thread::sleep(poll);
            };
            if said {
                say(&format!("{id} is in {place} after {:.0} s", started.elapsed().as_secs_f64()));
            }
            item.decision = Decision::Skip {
                reason: format!("found in {}, built by shard {owners}", hit.location),
                output: hit.output,
                remote: true,
                record: false,
                restore: Vec::new(),
            };
        }
        Ok(())
    }
}

/// Splits `plan` for `shard`: the targets another shard builds become skips saying which
/// shard builds them, and the ones this shard builds on are listed in
/// [`Split::waits_for`] (still to be fetched with [`Split::wait_for_dependencies`]).
/// `shared` says which targets' outputs the remote cache carries between runners.
pub fn split(plan: &mut Plan, shard: Shard, shared: &dyn Fn(&PlanItem) -> bool) -> Split {
    let assignment = assign(&plan.items, shard.count, shared);
    let index_of: HashMap<&str, usize> = plan.items.iter().enumerate().map(|(i, item)| (item.id.as_str(), i)).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.items.len()];
    for (i, item) in plan.items.iter().enumerate() {
        for d in &item.deps {
            if let Some(&j) = index_of.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    let must_build = |item: &PlanItem| matches!(item.decision, Decision::Build(_));
    let to_build_in_all = plan.items.iter().filter(|i| must_build(i)).count();

    // Which targets this shard builds, dependents first (the plan lists dependencies first):
    // a shared target when it is this shard's, a local one when something built here needs it.
    let mut here = vec![false; plan.items.len()];
    for i in (0..plan.items.len()).rev() {
        let item = &plan.items[i];
        if !must_build(item) {
            continue;
        }
        let mine = assignment.get(&item.id).is_some_and(|s| s.contains(&shard.index));
        here[i] = if shared(item) || dependents[i].is_empty() { mine } else { dependents[i].iter().any(|&d| here[d]) };
    }
    let needed: BTreeSet<usize> = (0..plan.items.len())
        .filter(|&i| here[i])
        .flat_map(|i| plan.items[i].deps.iter().filter_map(|d| index_of.get(d.as_str()).copied()))
        .collect();

    let mut builds = Vec::new();
    let mut waits_for = Vec::new();
    for (i, item) in plan.items.iter_mut().enumerate() {
        if here[i] {
            builds.push(item.id.clone());
            continue;
        }
        if !matches!(item.decision, Decision::Build(_)) {
            continue;
        }
        let owners = assignment.get(&item.id).map(Vec::as_slice).unwrap_or_default();
        let owners = owners.iter().map(|s| format!("{s}/{}", shard.count)).collect::<Vec<_>>().join(", ");
        let reason = if needed.contains(&i) {
            waits_for.push(item.id.clone());
            format!("built by shard {owners}; this shard waits for it in the registry and builds on it")
        } else {
            format!("built by shard {owners}")
        };
        item.decision = Decision::Skip { reason, output: Output::default(), remote: false, record: false, restore: Vec::new() };
    }
    Split { index: shard.index, count: shard.count, assignment, builds, waits_for, to_build_in_all }
}

/// Who builds each target when it must be built (see the module's rule), from the graph
/// alone.
fn assign(items: &[PlanItem], count: usize, shared: &dyn Fn(&PlanItem) -> bool) -> BTreeMap<String, Vec<usize>> {
    let by_id: HashMap<&str, &PlanItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    // The shared targets each target is built on, through local targets in between.
    fn shared_below<'a>(
        item: &'a PlanItem,
        by_id: &HashMap<&str, &'a PlanItem>,
        shared: &dyn Fn(&PlanItem) -> bool,
        out: &mut BTreeSet<&'a str>,
    ) {
        for d in &item.deps {
            let Some(dep) = by_id.get(d.as_str()) else { continue };
            if shared(dep) {
                out.insert(dep.id.as_str());
            } else {
                shared_below(dep, by_id, shared, out);
            }
        }
    }
    let mut first_phase = BTreeSet::new();
    for item in items.iter().filter(|i| shared(i)) {
        shared_below(item, &by_id, shared, &mut first_phase);
    }
    let has_dependents: BTreeSet<&str> = items.iter().flat_map(|i| i.deps.iter().map(String::as_str)).collect();
    let mut dealt: Vec<&str> = items
        .iter()
        .filter(|i| !first_phase.contains(i.id.as_str()) && (shared(i) || !has_dependents.contains(i.id.as_str())))
        .map(|i| i.id.as_str())
        .collect();
    dealt.sort_unstable();

    let mut assignment: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for id in &first_phase {
        assignment.insert((*id).to_owned(), vec![1]);
    }
    for (n, id) in dealt.iter().enumerate() {
        assignment.insert((*id).to_owned(), vec![(first_phase.len() + n) % count + 1]);
    }
    // Local targets go with what is built on them: dependents come later in the plan.
    for i in (0..items.len()).rev() {
        let id = items[i].id.as_str();
        if assignment.contains_key(id) {
            continue;
        }
        let mut shards: Vec<usize> = items[i + 1..]
            .iter()
            .filter(|d| d.deps.iter().any(|x| x == id))
            .flat_map(|d| assignment.get(&d.id).cloned().unwrap_or_default())
            .collect();
        shards.sort_unstable();
        shards.dedup();
        assignment.insert(id.to_owned(), shards);
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::InputManifest;
    use crate::plan::{BuildReason, RemoteHit};

    fn item(id: &str, kind: &'static str, deps: &[&str], build: bool) -> PlanItem {
        let inputs = InputManifest::new(kind, id);
        let decision = if build {
            Decision::Build(BuildReason::NeverBuilt)
        } else {
            Decision::Skip {
                reason: "up to date".into(),
                output: Output { artifact: format!("{id}-out"), ..Output::default() },
                remote: false,
                record: false,
                restore: vec![],
            }
        };
        PlanItem { id: id.into(), kind, deps: deps.iter().map(|d| (*d).to_owned()).collect(), input_hash: inputs.hash(), inputs, decision }
    }

    /// The repository's shape: wheel -> site-packages -> lambda-base -> lambdas, and one
    /// service with its wheelhouse.
    fn plan(lambdas: usize, base_builds: bool) -> Plan {
        let mut items = vec![
            item("tradai-common", "wheel", &[], base_builds),
            item("site-packages:tradai-common", "site-packages", &["tradai-common"], base_builds),
            item("tradai/lambda-base", "image", &["site-packages:tradai-common"], base_builds),
        ];
        for n in 0..lambdas {
            items.push(item(&format!("tradai/lambda-{n:02}"), "image", &["tradai/lambda-base"], true));
        }
        items.push(item("wheels:web", "wheelhouse", &[], true));
        items.push(item("tradai/web", "image", &["wheels:web"], true));
        Plan { items }
    }

    fn image(i: &PlanItem) -> bool {
        i.kind == "image"
    }

    fn splits(lambdas: usize, base_builds: bool, n: usize) -> Vec<(Split, Plan)> {
        (1..=n)
            .map(|index| {
                let mut p = plan(lambdas, base_builds);
                let s = split(&mut p, Shard { index, count: n }, &image);
                (s, p)
            })
            .collect()
    }

    #[test]
    fn bad_shards_are_refused_with_the_form() {
        for bad in ["0/2", "3/2", "x", "1/0", "a/b", "2", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}` is not a shard")) && e.contains("write it as I/N with 1 <= I <= N"), "{e}");
        }
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
    }

    #[test]
    fn shards_are_disjoint_complete_balanced_and_first_phase_goes_to_shard_one() {
        let all: Vec<String> = plan(17, true).to_build().map(|i| i.id.clone()).collect();
        let parts = splits(17, true, 3);
        let mut union = Vec::new();
        for (s, p) in &parts {
            assert_eq!(s.builds, p.to_build().map(|i| i.id.clone()).collect::<Vec<_>>(), "what it builds is what is left to build");
            assert_eq!(s.to_build_in_all, all.len());
            union.extend(s.builds.iter().cloned());
        }
        let unique: BTreeSet<&String> = union.iter().collect();
        assert_eq!(unique.len(), union.len(), "no target is built twice: {union:?}");
        assert_eq!(unique, all.iter().collect(), "every target is built");
        // lambda-base and what it is made from are shard 1's; the others wait for it.
        for id in ["tradai-common", "site-packages:tradai-common", "tradai/lambda-base"] {
            assert!(parts[0].0.builds.iter().any(|b| b == id), "{id} in shard 1");
        }
        assert!(parts[0].0.waits_for.is_empty());
        assert_eq!(parts[1].0.waits_for, ["tradai/lambda-base"]);
        assert_eq!(parts[2].0.waits_for, ["tradai/lambda-base"]);
        // 19 images (lambda-base, 17 lambdas, the service) dealt 7/6/6: shard 1's
        // first-phase image counts.
        let images: Vec<usize> = parts
            .iter()
            .map(|(s, p)| s.builds.iter().filter(|b| p.items.iter().any(|i| &&i.id == b && i.kind == "image")).count())
            .collect();
        assert_eq!(images, [7, 6, 6]);
        // The service's wheelhouse goes with the service.
        let web = parts.iter().position(|(s, _)| s.builds.contains(&"tradai/web".to_owned())).unwrap();
        assert!(parts[web].0.builds.contains(&"wheels:web".to_owned()));
    }

    #[test]
    fn the_assignment_ignores_what_the_cache_already_holds() {
        // Shard 2 planning after shard 1 pushed lambda-base and its own lambdas, or before:
        // the same targets are shard 2's either way, and it waits only in the second case.
        let before = splits(8, true, 3);
        let mut after_plan = plan(8, false);
        for item in after_plan.items.iter_mut().filter(|i| before[0].0.builds.contains(&i.id)) {
            item.decision = Decision::Skip {
                reason: "found in registry".into(),
                output: Output::default(),
                remote: true,
                record: false,
                restore: vec![],
            };
        }
        let after = split(&mut after_plan, Shard { index: 2, count: 3 }, &image);
        assert_eq!(after.assignment, before[1].0.assignment);
        assert_eq!(after.builds, before[1].0.builds);
        assert!(after.waits_for.is_empty(), "lambda-base is a hit now: {:?}", after.waits_for);
        // With nothing but one lambda to build, its owner builds it and nobody waits.
        let parts = splits(8, false, 3);
        let built: Vec<&String> = parts.iter().flat_map(|(s, _)| &s.builds).collect();
        assert_eq!(built.len(), 10, "8 lambdas, the wheelhouse and the service");
        assert!(parts.iter().all(|(s, _)| s.waits_for.is_empty()));
    }

    #[test]
    fn a_local_target_feeding_images_of_several_shards_is_built_by_each_of_them() {
        let mut items = vec![item("python-base", "local-image", &[], true)];
        for n in 0..3 {
            items.push(item(&format!("tradai/svc-{n}"), "image", &["python-base"], true));
        }
        let mut p = Plan { items };
        let s = split(&mut p, Shard { index: 2, count: 3 }, &image);
        assert_eq!(s.assignment["python-base"], [1, 2, 3]);
        assert_eq!(s.builds, ["python-base", "tradai/svc-1"]);
        assert!(s.waits_for.is_empty(), "a local target is never waited for");
    }

    struct Later {
        asked: std::sync::Mutex<usize>,
        after: usize,
    }

    impl RemoteCache for Later {
        fn lookup(&self, _: &[(&str, &str, &crate::InputHash)]) -> Result<HashMap<String, RemoteHit>> {
            Ok(HashMap::new())
        }
        fn recheck(&self, id: &str, _: &str, _: &crate::InputHash) -> Result<Option<RemoteHit>> {
            let mut asked = self.asked.lock().unwrap();
            *asked += 1;
            Ok((*asked > self.after)
                .then(|| RemoteHit { location: "registry r".into(), output: Output { artifact: format!("r/{id}"), ..Output::default() } }))
        }
    }

    #[test]
    fn a_shard_waits_for_what_it_builds_on_and_gives_up_after_the_timeout() {
        let mut p = plan(4, true);
        let s = split(&mut p, Shard { index: 2, count: 2 }, &image);
        let cache = Later { asked: std::sync::Mutex::new(0), after: 2 };
        let lines = std::sync::Mutex::new(Vec::new());
        let say = |l: &str| lines.lock().unwrap().push(l.to_owned());
        s.wait_for_dependencies(&mut p, &cache, "registry r", Duration::from_secs(5), Duration::from_millis(1), &say).unwrap();
        assert_eq!(*cache.asked.lock().unwrap(), 3, "asked until it was there");
        let base = p.items.iter().find(|i| i.id == "tradai/lambda-base").unwrap();
        let Decision::Skip { output, remote: true, reason, .. } = &base.decision else { panic!("{:?}", base.decision) };
        assert_eq!(output.artifact, "r/tradai/lambda-base");
        assert_eq!(reason, "found in registry r, built by shard 1/2");
        assert!(lines.lock().unwrap()[0].starts_with("waiting for tradai/lambda-base"), "{:?}", lines.lock().unwrap());

        let mut p = plan(4, true);
        let s = split(&mut p, Shard { index: 2, count: 2 }, &image);
        let never = Later { asked: std::sync::Mutex::new(0), after: usize::MAX };
        let e = s.wait_for_dependencies(&mut p, &never, "registry r", Duration::ZERO, Duration::ZERO, &|_| {}).unwrap_err().to_string();
        assert!(
            e.contains("tradai/lambda-base")
                && e.contains("did not appear in registry r within 0 s")
                && e.contains("check shard 1/2's run"),
            "{e}"
        );
    }
}
