//! Publishing to a registry, and the registry as the remote build cache.
//!
//! Before building, every planned image's input-hash tag is looked up in the registry;
//! a hit is skipped. Then, still before anything runs, [`plan_publish`] decides for every
//! image whether its layers are pushed (built here, or up to date here but missing from
//! the registry) and which tags are written (the version and `latest`, as the existing
//! manifest under more names); `--dry-run` and `--json` show these steps. The executor
//! carries each one out as soon as that image exists ([`publish_planned`]), so one image
//! is pushed while another builds. The digest of every push is recorded in the state
//! store and checked against the registry on the next run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use anyhow::{Result, bail};
use serde::Serialize;
use xtask_engine::{Decision, InputHash, Output, Plan, PlanItem, RemoteCache, RemoteHit, State, StateStore};
use xtask_image::Assembler;
use xtask_image::distribution::BlobRef;
use xtask_image::registry::{Manifest, OciRegistry, Registry, docker_push};

use crate::project::Project;

/// Where images go: the local engine only, or a registry.
pub enum RegistryChoice {
    Local,
    Remote(Box<dyn Registry>),
}

/// The registry setting, resolved the same way by every command: `--registry`, else
/// `XTASK_REGISTRY`, else `xtask.toml`'s `[registry] default`, else `local`.
pub fn setting(project: &Project, flag: Option<&str>) -> String {
    configured(project, flag).unwrap_or_else(|| "local".into())
}

/// The same resolution for commands that deploy images a registry holds (`infra-*` for
/// compute, `rollback`): with nothing configured they read ECR, where deployments pull
/// from; `local` is not a registry to deploy from.
pub fn deploy_setting(project: &Project, flag: Option<&str>) -> String {
    configured(project, flag).unwrap_or_else(|| "ecr".into())
}

fn configured(project: &Project, flag: Option<&str>) -> Option<String> {
    let env = std::env::var("XTASK_REGISTRY").ok().filter(|v| !v.is_empty());
    flag.map(str::to_owned).or(env).or_else(|| project.config.registry.default.clone())
}

/// Connects to the registry the setting names (see [`setting`]).
pub fn choose(project: &Project, flag: Option<&str>) -> Result<RegistryChoice> {
    let value = setting(project, flag);
    match value.as_str() {
        "local" => Ok(RegistryChoice::Local),
        "ecr" => Ok(RegistryChoice::Remote(Box::new(crate::ecr::EcrRegistry::connect(project)?))),
        host => {
            let reg = OciRegistry::new(host)?.allow_insecure(&project.config.registry.insecure);
            reg.ping()?;
            Ok(RegistryChoice::Remote(Box::new(reg)))
        }
    }
}

/// The registry seen as the engine's remote cache; remembers what it found, by image and
/// hash tag (a run may plan twice, on two bases, and ask about two hashes of one image).
pub struct RegistryCache<'a> {
    pub registry: &'a dyn Registry,
    found: Mutex<HashMap<(String, String), Option<Manifest>>>,
    /// `docker login` runs once, and only when a push or pull needs it.
    login: std::sync::OnceLock<Result<(), String>>,
    /// The repository whose compute stack's published image manifest records each image
    /// published (see [`xtask_pulumi::images::record_published`]); `None` records nothing.
    manifest_root: Option<camino::Utf8PathBuf>,
}

impl<'a> RegistryCache<'a> {
    pub fn new(registry: &'a dyn Registry) -> Self {
        RegistryCache { registry, found: Mutex::default(), login: std::sync::OnceLock::new(), manifest_root: None }
    }

    /// Records every image this run publishes in the published image manifest of the
    /// repository at `root` (`infra/compute/.image-manifests/<registry>.json`), so the
    /// compute program deploys exactly what was pushed, whoever runs it.
    pub fn recording_digests_in(mut self, root: &camino::Utf8Path) -> Self {
        self.manifest_root = Some(root.to_owned());
        self
    }

    /// Logs Docker in to the registry, once per run.
    pub fn ensure_login(&self) -> Result<()> {
        self.login.get_or_init(|| self.registry.docker_login().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
    }

    /// Looks up the input-hash tags of `items` (id, hash), reusing earlier answers.
    fn lookup_many(&self, items: &[(&str, &InputHash)]) -> Result<Vec<Option<Manifest>>> {
        let keys: Vec<(String, String)> = items.iter().map(|(id, h)| ((*id).to_owned(), h.tag())).collect();
        let missing: Vec<(String, String)> = {
            let found = self.found.lock().expect("lock");
            keys.iter().filter(|k| !found.contains_key(*k)).cloned().collect()
        };
        if !missing.is_empty() {
            let answers = self.registry.lookup(&missing)?;
            let mut found = self.found.lock().expect("lock");
            for (key, answer) in missing.into_iter().zip(answers) {
                found.insert(key, answer);
            }
        }
        let found = self.found.lock().expect("lock");
        Ok(keys.iter().map(|k| found.get(k).cloned().flatten()).collect())
    }

    fn forget(&self, id: &str) {
        self.found.lock().expect("lock").retain(|(image, _), _| image != id);
    }
}

impl RemoteCache for RegistryCache<'_> {
    fn lookup(&self, wanted: &[(&str, &str, &InputHash)]) -> Result<HashMap<String, RemoteHit>> {
        let images: Vec<(&str, &InputHash)> = wanted.iter().filter(|(_, kind, _)| *kind == "image").map(|(id, _, h)| (*id, *h)).collect();
        let answers = self.lookup_many(&images)?;
        let mut hits = HashMap::new();
        for ((id, hash), answer) in images.into_iter().zip(answers) {
            if let Some(m) = answer {
                let mut output = Output { artifact: self.registry.reference(id, &hash.tag()), ..Output::default() };
                output.pushed.insert(self.registry.name(), m.digest.clone());
                hits.insert(id.to_owned(), RemoteHit { location: format!("registry {}", self.registry.name()), output });
            }
        }
        Ok(hits)
    }

    fn recheck(&self, id: &str, kind: &str, hash: &InputHash) -> Result<Option<RemoteHit>> {
        self.forget(id);
        Ok(self.lookup(&[(id, kind, hash)])?.remove(id))
    }
}

/// What publishing did for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub id: String,
    pub registry: String,
    /// `pushed` (layers uploaded) or `tagged` (already there; only tags written).
    pub action: &'static str,
    pub digest: String,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For an image pushed through the distribution API: what happened to its blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobCounts>,
}

/// How the blobs of one pushed image reached the registry.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct BlobCounts {
    /// Already in the repository.
    pub present: usize,
    /// Mounted from another repository of the registry (no bytes sent).
    pub mounted: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

/// What publishing will do for one image, decided before anything runs.
#[derive(Debug, Clone)]
pub struct PlannedPublish {
    /// Why its layers are pushed, when they are (`None`: the registry holds them).
    pub push: Option<String>,
    /// A note worth printing (a re-push after the registry lost or changed an image).
    pub note: Option<String>,
    /// The tags written after the hash tag: the version and `latest`.
    pub tags: Vec<String>,
}

/// One step of a run, as `--dry-run` prints it and `--json` lists it (`"steps"`).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub target: String,
    /// `build`, `skip`, `push`, `tag` or `update-function`.
    pub action: &'static str,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Decides, for every image of the plan that will exist after the run, whether its layers
/// must be pushed and which tags are written. Images that are up to date locally are
/// looked up in the registry in one batch; those that will be built are pushed; those
/// found in the registry are only tagged.
pub fn plan_publish(plan: &Plan, cache: &RegistryCache<'_>, state: &State, version: &str) -> Result<BTreeMap<String, PlannedPublish>> {
    let name = cache.registry.name();
    let images: Vec<&PlanItem> = plan
        .items
        .iter()
        .filter(|i| i.kind == "image")
        .filter(|i| !matches!(&i.decision, Decision::Skip { output, .. } if output.artifact.is_empty()))
        .collect();
    let local: Vec<(&str, &InputHash)> =
        images.iter().filter(|i| matches!(i.decision, Decision::Skip { remote: false, .. })).map(|i| (i.id.as_str(), &i.input_hash)).collect();
    let found: HashMap<&str, Option<Manifest>> = local.iter().map(|(id, _)| *id).zip(cache.lookup_many(&local)?).collect();
    let tags = vec![version.to_owned(), "latest".to_owned()];
    let mut out = BTreeMap::new();
    for item in images {
        let hash_tag = item.input_hash.tag();
        let (push, note) = match &item.decision {
            Decision::Build(_) => (Some(format!("built in this run; the registry lacks {hash_tag}")), None),
            Decision::Skip { remote: true, .. } => (None, None),
            Decision::Skip { .. } => {
                let recorded = state.targets.get(&item.id).filter(|r| r.input_hash == item.input_hash).and_then(|r| r.output.pushed.get(&name));
                match (found.get(item.id.as_str()).cloned().flatten(), recorded) {
                    (Some(m), Some(d)) if &m.digest != d => {
                        let why = format!("registry held {} for {hash_tag}, not the recorded {d} (overwritten); pushed again", m.digest);
                        (Some(why.clone()), Some(why))
                    }
                    (Some(_), _) => (None, None),
                    (None, Some(d)) => {
                        let why = format!("registry no longer holds {hash_tag} (recorded digest {d}); pushed again");
                        (Some(why.clone()), Some(why))
                    }
                    (None, None) => (Some(format!("up to date here; the registry lacks {hash_tag}")), None),
                }
            }
        };
        out.insert(item.id.clone(), PlannedPublish { push, note, tags: tags.clone() });
    }
    Ok(out)
}

/// Every step of a run in order: each target's build or skip, then what publishing does
/// for each image.
pub fn steps(plan: &Plan, publishing: Option<&BTreeMap<String, PlannedPublish>>) -> Vec<Step> {
    let mut out = Vec::new();
    for item in &plan.items {
        let (action, reason) = match &item.decision {
            Decision::Build(r) => ("build", r.to_string()),
            Decision::Skip { reason, .. } => ("skip", reason.clone()),
        };
        out.push(Step { target: item.id.clone(), action, reason, tag: None });
    }
    for (id, p) in publishing.into_iter().flatten() {
        let hash_tag = plan.items.iter().find(|i| &i.id == id).map(|i| i.input_hash.tag()).unwrap_or_default();
        if let Some(why) = &p.push {
            out.push(Step { target: id.clone(), action: "push", reason: why.clone(), tag: Some(hash_tag) });
        }
        for t in &p.tags {
            out.push(Step { target: id.clone(), action: "tag", reason: "the existing manifest under another tag".into(), tag: Some(t.clone()) });
        }
    }
    out
}

/// Carries out what [`plan_publish`] decided for one image whose output now exists:
/// pushes its layers when planned, writes its tags, and records the digest pushed.
pub fn publish_planned(
    item: &PlanItem,
    planned: &PlannedPublish,
    output: &Output,
    cache: &RegistryCache<'_>,
    store: &StateStore,
    assembler: &Assembler,
) -> Result<Published> {
    let registry = cache.registry;
    let name = registry.name();
    let hash_tag = item.input_hash.tag();
    let local_image = Some(output.artifact.as_str()).filter(|a| a.starts_with("sha256:"));
    let assembled = output.detail.get(xtask_image::assembler::DETAIL_BUILDER).map(String::as_str) == Some(xtask_image::assembler::ASSEMBLED);
    let mut blobs = None;
    // Planned as a push, but another run put it in the registry meanwhile: only tags.
    let meanwhile = local_image.is_none() && !assembled && output.pushed.contains_key(&name);
    let (manifest, action) = match planned.push.as_ref().filter(|_| !meanwhile) {
        Some(_) if assembled => {
            let (m, counts) = push_assembled(item, output, cache, assembler)?;
            blobs = Some(counts);
            (m, "pushed")
        }
        Some(_) => (push(&item.id, &hash_tag, local_image, cache)?, "pushed"),
        None => match cache.lookup_many(&[(item.id.as_str(), &item.input_hash)])?.pop().flatten() {
            Some(m) => (m, "tagged"),
            None => bail!("registry {name} no longer holds {}:{hash_tag}; run again to push it", item.id),
        },
    };
    let mut tags = vec![hash_tag];
    // The tags are independent writes of one manifest: written at once, they cost one
    // round trip instead of one each.
    std::thread::scope(|s| {
        let writes: Vec<_> = planned.tags.iter().map(|tag| s.spawn(|| registry.put_tag(&item.id, &manifest, tag))).collect();
        writes.into_iter().try_for_each(|w| w.join().expect("a tag write panicked"))
    })?;
    tags.extend(planned.tags.iter().cloned());
    if local_image.is_some() {
        store.record_pushed(&item.id, &item.input_hash, &name, &manifest.digest)?;
    }
    // The image is now `latest` in the registry: the compute stack's manifest says so.
    if let Some(root) = &cache.manifest_root {
        xtask_pulumi::images::record_published(root, &name, &item.id, &manifest.digest)
            .map_err(|e| anyhow::anyhow!("{} is published, but its digest was not recorded: {e}; publish again", item.id))?;
    }
    Ok(Published { id: item.id.clone(), registry: name, action, digest: manifest.digest, tags, note: planned.note.clone(), blobs })
}

/// Pushes an assembled image from the image store through the distribution API: each
/// blob checked with HEAD, mounted from the repositories of the images it is built on
/// where the registry holds it there, uploaded otherwise, and the manifest put last.
fn push_assembled(item: &PlanItem, output: &Output, cache: &RegistryCache<'_>, assembler: &Assembler) -> Result<(Manifest, BlobCounts)> {
    let manifest_digest = output.detail.get(xtask_image::assembler::DETAIL_MANIFEST).map(String::as_str).unwrap_or_default();
    let image = assembler.store.image(manifest_digest)?;
    let client = cache.registry.distribution()?;
    let blobs: Vec<BlobRef> = std::iter::once(&image.manifest.config)
        .chain(&image.manifest.layers)
        .map(|d| BlobRef { digest: d.digest.clone(), size: d.size })
        .collect();
    let manifest = Manifest { digest: image.manifest_digest.clone(), media_type: image.media_type().to_owned(), bytes: image.manifest_bytes.clone() };
    let source = |digest: &str| assembler.open_blob(digest);
    // Layers are mounted from the images this one is built on: the dependencies pushed in
    // this run, and a base read from this same registry.
    let mut mount_from = item.deps.clone();
    mount_from.extend(assembler.base_repositories(&client.name()));
    let report = client.push_image(&item.id, &[item.input_hash.tag()], &manifest, &blobs, &mount_from, &source)?;
    cache.forget(&item.id);
    let counts = BlobCounts { present: report.present, mounted: report.mounted, uploaded: report.uploaded, uploaded_bytes: report.uploaded_bytes };
    Ok((manifest, counts))
}

fn push(id: &str, hash_tag: &str, local_image: Option<&str>, cache: &RegistryCache<'_>) -> Result<Manifest> {
    let registry = cache.registry;
    let Some(image) = local_image else {
        bail!("{id} is not in the local engine and registry {} does not hold it; build it first", registry.name());
    };
    cache.ensure_login()?;
    docker_push(image, &registry.reference(id, hash_tag), &registry.name())?;
    cache.forget(id);
    match registry.lookup(&[(id.to_owned(), hash_tag.to_owned())])?.pop().flatten() {
        Some(m) => Ok(m),
        None => bail!("pushed {id}:{hash_tag} but registry {} does not list it", registry.name()),
    }
}

/// A table of what was published, for stderr.
pub fn table(published: &[Published]) -> String {
    let rows: Vec<Vec<String>> = published
        .iter()
        .map(|p| vec![p.id.clone(), p.action.to_owned(), p.digest.get(..19).unwrap_or(&p.digest).to_owned(), p.tags.join(", ")])
        .collect();
    let mut s = format!("\n{}", xtask_engine::report::text_table(&["image", "action", "digest", "tags"], &rows));
    let pushed = published.iter().filter(|p| p.action == "pushed").count();
    s.push_str(&format!("{pushed} pushed, {} already present (tags added)", published.len() - pushed));
    s
}

/// Notes to show (re-pushes after a digest mismatch or deletion).
pub fn notes(published: &[Published]) -> BTreeMap<&str, &str> {
    published.iter().filter_map(|p| p.note.as_deref().map(|n| (p.id.as_str(), n))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry holding `repository:tag` pairs, counting the lookups it answers.
    struct Holding {
        tags: Vec<(String, String)>,
        asked: Mutex<Vec<(String, String)>>,
    }

    impl Registry for Holding {
        fn name(&self) -> String {
            "test".into()
        }
        fn reference(&self, repository: &str, tag: &str) -> String {
            format!("test/{repository}:{tag}")
        }
        fn lookup(&self, wanted: &[(String, String)]) -> Result<Vec<Option<Manifest>>> {
            self.asked.lock().unwrap().extend(wanted.iter().cloned());
            Ok(wanted
                .iter()
                .map(|w| self.tags.contains(w).then(|| Manifest { digest: format!("sha256:{}", w.1), media_type: String::new(), bytes: vec![] }))
                .collect())
        }
        fn put_tag(&self, _: &str, _: &Manifest, _: &str) -> Result<()> {
            Ok(())
        }
    }

    fn hash(text: &str) -> InputHash {
        let mut m = xtask_engine::InputManifest::new("image", "x");
        m.params.insert("p".into(), text.into());
        m.hash()
    }

    #[test]
    fn answers_are_remembered_per_image_and_hash_not_per_image() {
        let (on_upstream, on_stand_in) = (hash("upstream"), hash("stand-in"));
        let registry = Holding { tags: vec![("tradai/lambda-a".into(), on_stand_in.tag())], asked: Mutex::default() };
        let cache = RegistryCache::new(&registry);
        // A run plans on the upstream base first, then again on the stand-in: the second
        // question is a different one and must reach the registry.
        assert!(cache.lookup_many(&[("tradai/lambda-a", &on_upstream)]).unwrap()[0].is_none());
        assert!(cache.lookup_many(&[("tradai/lambda-a", &on_stand_in)]).unwrap()[0].is_some());
        // Asked again: answered from memory.
        assert!(cache.lookup_many(&[("tradai/lambda-a", &on_stand_in)]).unwrap()[0].is_some());
        assert_eq!(registry.asked.lock().unwrap().len(), 2);
    }
}
