//! Targets, the plugin trait, and the build plan.
//!
//! Planning resolves the selected targets and everything they are built from, hashes
//! each one's inputs in dependency order (a target's manifest carries the input hashes of
//! its dependencies) and decides, before any build runs, what is built and why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::filecache::FileCache;
use crate::inputs::{Change, InputHash, InputManifest};
use crate::state::{Output, State};

/// A plugin's view of one target: say your inputs, whether an output still exists, and
/// how to build it. The engine knows nothing else about artifact kinds.
pub trait Builder: Send + Sync {
    /// `wheel`, `image`, ...
    fn kind(&self) -> &'static str;
    /// The target's own inputs (files and parameters); the engine adds its dependencies.
    fn inputs(&self, id: &str, files: &FileCache) -> Result<InputManifest>;
    /// Whether what an earlier build produced is still there. `Err` means the answer is
    /// unknown (the engine is unreachable, say); that stops planning with the message.
    fn output_exists(&self, output: &Output) -> Result<bool>;
    /// Produces the output. Returning `Ok` promises the output exists now.
    fn build(&self, job: &BuildJob<'_>) -> Result<Output>;
    /// How the target would be built, in a few words, when the plugin has a choice to
    /// report (`--explain` shows it).
    fn how(&self) -> Option<String> {
        None
    }
    /// Whether an earlier output is still there, and which of the names the run promises
    /// for it (a `latest` tag, say) are missing. The default asks [`Builder::output_exists`].
    fn presence(&self, output: &Output) -> Result<Presence> {
        Ok(if self.output_exists(output)? { Presence::Present { missing_names: Vec::new() } } else { Presence::Missing })
    }
    /// Gives an existing output back the names [`Builder::presence`] found missing.
    fn restore_names(&self, _output: &Output, _names: &[String]) -> Result<()> {
        Ok(())
    }
    /// An output for exactly `hash` that exists although the state has no record of it
    /// (the state was deleted, or the inputs went back to an earlier version): the local
    /// cache a plugin's artifacts carry with them, such as an image tagged with the hash.
    fn adopt(&self, _id: &str, _hash: &InputHash) -> Result<Option<RemoteHit>> {
        Ok(None)
    }
}

/// What [`Builder::presence`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Present { missing_names: Vec<String> },
    Missing,
}

/// A shared cache of outputs keyed by input hash (a registry holding a tag named after
/// the hash). Asked once per plan for every target that would otherwise build.
pub trait RemoteCache {
    /// Returns the hits among `wanted` (target id, kind, input hash), keyed by target id.
    fn lookup(&self, wanted: &[(&str, &str, &InputHash)]) -> Result<HashMap<String, RemoteHit>>;
    /// Asks again, past any answer remembered from planning, whether the cache holds one
    /// target's output now: right before it is built, another run may have put it there.
    fn recheck(&self, _id: &str, _kind: &str, _hash: &InputHash) -> Result<Option<RemoteHit>> {
        Ok(None)
    }
}

/// A copy of a target's output found outside this machine's state.
#[derive(Debug, Clone)]
pub struct RemoteHit {
    /// Where it was found, for the skip reason ("registry 127.0.0.1:5000").
    pub location: String,
    pub output: Output,
}

/// One buildable thing.
#[derive(Clone)]
pub struct Target {
    pub id: String,
    pub deps: Vec<String>,
    pub builder: Arc<dyn Builder>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("id", &self.id).field("kind", &self.builder.kind()).field("deps", &self.deps).finish()
    }
}

/// What a build gets to work with.
pub struct BuildJob<'a> {
    pub id: &'a str,
    pub input_hash: &'a InputHash,
    /// What was hashed: a builder streams exactly these inputs, never a fresh look.
    pub inputs: &'a InputManifest,
    /// The outputs of the targets this one is built from, with their input hashes.
    pub deps: &'a BTreeMap<String, (InputHash, Output)>,
}

/// Why a target will be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildReason {
    NeverBuilt,
    InputsChanged(Vec<Change>),
    OutputMissing(String),
}

impl std::fmt::Display for BuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildReason::NeverBuilt => f.write_str("never built"),
            BuildReason::InputsChanged(changes) => {
                let deps: Vec<_> = changes.iter().filter(|c| matches!(c, Change::Dependency { .. })).collect();
                let files = changes.iter().filter(|c| matches!(c, Change::File { .. })).count();
                let params: Vec<_> = changes.iter().filter(|c| matches!(c, Change::Param { .. } | Change::Scheme { .. })).collect();
                let mut parts = Vec::new();
                if files > 0 {
                    let first = changes.iter().find(|c| matches!(c, Change::File { .. })).expect("counted");
                    parts.push(if files == 1 { first.to_string() } else { format!("{first} and {} more files", files - 1) });
                }
                parts.extend(params.iter().map(ToString::to_string));
                parts.extend(deps.iter().map(ToString::to_string));
                if parts.is_empty() {
                    f.write_str("inputs changed")
                } else {
                    f.write_str(&parts.join(", "))
                }
            }
            BuildReason::OutputMissing(what) => write!(f, "{what}"),
        }
    }
}

/// The decision for one target.
#[derive(Debug, Clone)]
pub enum Decision {
    Build(BuildReason),
    /// Up to date; the output already exists (locally or in a registry).
    Skip {
        reason: String,
        output: Output,
        remote: bool,
        /// Found without a record in the state (adopted): recorded when the run starts.
        record: bool,
        /// Names the output lacks, given back to it without a rebuild.
        restore: Vec<String>,
    },
}

/// One target in the plan.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub id: String,
    pub kind: &'static str,
    pub deps: Vec<String>,
    pub input_hash: InputHash,
    pub inputs: InputManifest,
    pub decision: Decision,
}

/// Everything a run will do, in dependency order, decided before anything runs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

impl Plan {
    pub fn to_build(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|i| matches!(i.decision, Decision::Build(_)))
    }
}

/// JSON view of a plan item or a build result.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub id: String,
    pub kind: String,
    pub status: Status,
    pub input_hash: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The content digest of the artifact where it has one besides its id (an assembled
    /// image's manifest digest: what a registry serves it as).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// When its build started, in seconds after the run started (for the timeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Built,
    Skipped,
    WouldBuild,
    Failed,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Built => "built",
            Status::Skipped => "skipped",
            Status::WouldBuild => "would-build",
            Status::Failed => "failed",
        })
    }
}

/// Errors the user can fix by naming targets differently.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("unknown target `{name}`; valid targets: {valid}")]
    Unknown { name: String, valid: String },
    #[error("dependency cycle through {0}")]
    Cycle(String),
}

/// Returns `selected` and everything they are built from, dependencies first.
pub fn closure<'a>(targets: &'a [Target], selected: &[String]) -> Result<Vec<&'a Target>> {
    let by_id: HashMap<&str, &Target> = targets.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let mut visiting = BTreeSet::new();
    fn visit<'a>(
        id: &str,
        by_id: &HashMap<&str, &'a Target>,
        order: &mut Vec<&'a Target>,
        done: &mut BTreeSet<String>,
        visiting: &mut BTreeSet<String>,
    ) -> Result<()> {
        if done.contains(id) {
            return Ok(());
        }
        let Some(t) = by_id.get(id) else {
            let mut valid: Vec<&str> = by_id.keys().copied().collect();
            valid.sort_unstable();
            bail!(SelectError::Unknown { name: id.to_owned(), valid: valid.join(", ") });
        };
        if !visiting.insert(id.to_owned()) {
            bail!(SelectError::Cycle(id.to_owned()));
        }
        for d in &t.deps {
            visit(d, by_id, order, done, visiting)?;
        }
        visiting.remove(id);
        done.insert(id.to_owned());
        order.push(*t);
        Ok(())
    }
    for s in selected {
        visit(s, &by_id, &mut order, &mut done, &mut visiting)?;
    }
    Ok(order)
}

/// Hashes and decides every target in `order` (dependencies first). Targets that would
/// build are looked up in `remote` in one batch; a hit is skipped. A target that is only
/// a dependency (not in `requested`) and whose dependents are all skipped is not needed
/// and is skipped too: a fresh machine whose registry holds every image builds nothing.
pub fn make_plan(
    order: &[&Target],
    requested: &[String],
    state: &State,
    files: &FileCache,
    remote: Option<&dyn RemoteCache>,
) -> Result<Plan> {
    let mut hashes: HashMap<String, InputHash> = HashMap::new();
    let mut items = Vec::with_capacity(order.len());
    for t in order {
        let mut inputs = t.builder.inputs(&t.id, files)?;
        for d in &t.deps {
            let h = hashes.get(d).expect("dependencies are planned first");
            inputs.deps.insert(d.clone(), h.clone());
        }
        let input_hash = inputs.hash();
        let decision = decide_locally(t, &inputs, &input_hash, state)?;
        hashes.insert(t.id.clone(), input_hash.clone());
        items.push(PlanItem { id: t.id.clone(), kind: t.builder.kind(), deps: t.deps.clone(), input_hash, inputs, decision });
    }
    if let Some(remote) = remote {
        let wanted: Vec<(&str, &str, &InputHash)> = items
            .iter()
            .filter(|i| matches!(i.decision, Decision::Build(_)))
            .map(|i| (i.id.as_str(), i.kind, &i.input_hash))
            .collect();
        if !wanted.is_empty() {
            let mut hits = remote.lookup(&wanted)?;
            for item in &mut items {
                if let Some(hit) = hits.remove(&item.id) {
                    item.decision = Decision::Skip {
                        reason: format!("found in {}", hit.location),
                        output: hit.output,
                        remote: true,
                        record: false,
                        restore: Vec::new(),
                    };
                }
            }
        }
    }
    prune_unneeded(&mut items, requested);
    Ok(Plan { items })
}

fn prune_unneeded(items: &mut [PlanItem], requested: &[String]) {
    for i in (0..items.len()).rev() {
        if requested.contains(&items[i].id) || !matches!(items[i].decision, Decision::Build(_)) {
            continue;
        }
        let id = items[i].id.clone();
        let mut dependents = items.iter().filter(|d| d.deps.contains(&id)).peekable();
        if dependents.peek().is_none() {
            continue;
        }
        if dependents.all(|d| matches!(d.decision, Decision::Skip { .. })) {
            items[i].decision = Decision::Skip {
                reason: "not needed: everything built from it is up to date".to_owned(),
                output: Output::default(),
                remote: false,
                record: false,
                restore: Vec::new(),
            };
        }
    }
}

fn decide_locally(t: &Target, inputs: &InputManifest, hash: &InputHash, state: &State) -> Result<Decision> {
    let reason = match state.targets.get(&t.id) {
        None => BuildReason::NeverBuilt,
        Some(rec) if &rec.input_hash != hash => BuildReason::InputsChanged(inputs.changes(&rec.inputs)),
        Some(rec) => match t.builder.presence(&rec.output)? {
            Presence::Present { missing_names } => {
                let reason = match missing_names.as_slice() {
                    [] => "up to date".to_owned(),
                    names => format!("up to date; restores {}", names.join(", ")),
                };
                return Ok(Decision::Skip { reason, output: rec.output.clone(), remote: false, record: false, restore: missing_names });
            }
            Presence::Missing => BuildReason::OutputMissing(format!("{} no longer exists", rec.output.artifact)),
        },
    };
    // Before building, the output may exist anyway, made for this very hash.
    if let Some(hit) = t.builder.adopt(&t.id, hash)? {
        let restore = match t.builder.presence(&hit.output)? {
            Presence::Present { missing_names } => missing_names,
            Presence::Missing => return Ok(Decision::Build(reason)),
        };
        let mut why = format!("found in {}, made earlier for these exact inputs", hit.location);
        if !restore.is_empty() {
            why.push_str(&format!("; restores {}", restore.join(", ")));
        }
        return Ok(Decision::Skip { reason: why, output: hit.output, remote: false, record: true, restore });
    }
    Ok(Decision::Build(reason))
}

impl PlanItem {
    /// The report line for a dry run.
    pub fn dry_report(&self) -> TargetReport {
        let (status, reason, changes, artifact, digest) = match &self.decision {
            Decision::Build(r) => (Status::WouldBuild, r.to_string(), changes_of(r), None, None),
            Decision::Skip { reason, output, .. } => {
                (Status::Skipped, reason.clone(), Vec::new(), Some(output.artifact.clone()).filter(|a| !a.is_empty()), output.detail.get("digest").cloned())
            }
        };
        TargetReport {
            id: self.id.clone(),
            kind: self.kind.to_owned(),
            status,
            input_hash: self.input_hash.to_string(),
            reason,
            changes,
            artifact,
            digest,
            seconds: None,
            started: None,
            error: None,
        }
    }
}

/// Every individual change behind a rebuild, for `--explain` and `--json`.
pub fn changes_of(reason: &BuildReason) -> Vec<String> {
    match reason {
        BuildReason::InputsChanged(c) => c.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}
