//! Publishing to a registry, and the registry as the remote build cache.
//!
//! Before building, every planned image's input-hash tag is looked up in the registry;
//! a hit is skipped. After building, every image is made present in the registry under
//! its input-hash tag (pushed only when the registry lacks it), then tagged with the
//! version and `latest` by writing the existing manifest under those tags. The digest of
//! every push is recorded in the state store and checked against the registry on the
//! next run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use anyhow::{Result, bail};
use serde::Serialize;
use xtask_engine::{Decision, InputHash, Output, Plan, RemoteCache, RemoteHit, State, StateStore, Status, TargetReport};
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
            let reg = OciRegistry::new(host)?;
            reg.ping()?;
            Ok(RegistryChoice::Remote(Box::new(reg)))
        }
    }
}

/// The registry seen as the engine's remote cache; remembers what it found.
pub struct RegistryCache<'a> {
    pub registry: &'a dyn Registry,
    found: Mutex<HashMap<String, Option<Manifest>>>,
    /// `docker login` runs once, and only when a push or pull needs it.
    login: std::sync::OnceLock<Result<(), String>>,
}

impl<'a> RegistryCache<'a> {
    pub fn new(registry: &'a dyn Registry) -> Self {
        RegistryCache { registry, found: Mutex::default(), login: std::sync::OnceLock::new() }
    }

    /// Logs Docker in to the registry, once per run.
    pub fn ensure_login(&self) -> Result<()> {
        self.login.get_or_init(|| self.registry.docker_login().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
    }

    /// Looks up the input-hash tags of `items` (id, hash), reusing earlier answers.
    fn lookup_many(&self, items: &[(&str, &InputHash)]) -> Result<Vec<Option<Manifest>>> {
        let missing: Vec<(String, String)> = {
            let found = self.found.lock().expect("lock");
            items.iter().filter(|(id, _)| !found.contains_key(*id)).map(|(id, h)| ((*id).to_owned(), h.tag())).collect()
        };
        if !missing.is_empty() {
            let answers = self.registry.lookup(&missing)?;
            let mut found = self.found.lock().expect("lock");
            for ((id, _), answer) in missing.into_iter().zip(answers) {
                found.insert(id, answer);
            }
        }
        let found = self.found.lock().expect("lock");
        Ok(items.iter().map(|(id, _)| found.get(*id).cloned().flatten()).collect())
    }

    fn forget(&self, id: &str) {
        self.found.lock().expect("lock").remove(id);
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
}

/// Makes every image of the plan that built or was up to date present in the registry
/// under its input-hash tag, the version and `latest`. Returns what was done, and the
/// error of every image that could not be published.
pub fn publish(
    plan: &Plan,
    reports: &[TargetReport],
    cache: &RegistryCache<'_>,
    state: &State,
    store: &StateStore,
    version: &str,
    jobs: usize,
) -> (Vec<Published>, Vec<(String, String)>) {
    let status: HashMap<&str, &TargetReport> = reports.iter().map(|r| (r.id.as_str(), r)).collect();
    let work: Vec<_> = plan
        .items
        .iter()
        .filter(|i| i.kind == "image")
        .filter(|i| status.get(i.id.as_str()).is_some_and(|r| r.status == Status::Built || r.status == Status::Skipped))
        .filter(|i| !matches!(&i.decision, Decision::Skip { output, .. } if output.artifact.is_empty()))
        .collect();
    let results: Mutex<Vec<Result<Published, (String, String)>>> = Mutex::default();
    let queue = Mutex::new(work.into_iter());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some(item) = queue.lock().expect("lock").next() else {
                        break;
                    };
                    let r = publish_one(item.id.as_str(), &item.input_hash, status[item.id.as_str()], cache, state, store, version)
                        .map_err(|e| (item.id.clone(), format!("{e:#}")));
                    results.lock().expect("lock").push(r);
                }
            });
        }
    });
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for r in results.into_inner().expect("lock") {
        match r {
            Ok(p) => done.push(p),
            Err(f) => failed.push(f),
        }
    }
    done.sort_by(|a, b| a.id.cmp(&b.id));
    failed.sort();
    (done, failed)
}

fn publish_one(
    id: &str,
    hash: &InputHash,
    report: &TargetReport,
    cache: &RegistryCache<'_>,
    state: &State,
    store: &StateStore,
    version: &str,
) -> Result<Published> {
    let registry = cache.registry;
    let name = registry.name();
    let hash_tag = hash.tag();
    let recorded = state.targets.get(id).filter(|r| &r.input_hash == hash).and_then(|r| r.output.pushed.get(&name)).cloned();
    let local_image = report.artifact.clone().filter(|a| a.starts_with("sha256:"));
    let existing = cache.lookup_many(&[(id, hash)])?.pop().flatten();
    let mut note = None;
    let (manifest, action) = match (existing, &recorded) {
        (Some(m), Some(d)) if &m.digest != d && local_image.is_some() => {
            note = Some(format!("registry held {} for {hash_tag}, not the recorded {d} (overwritten); pushed again", m.digest));
            (push(id, &hash_tag, local_image.as_deref(), cache)?, "pushed")
        }
        (Some(m), _) => (m, "tagged"),
        (None, Some(d)) => {
            note = Some(format!("registry no longer holds {hash_tag} (recorded digest {d}); pushed again"));
            (push(id, &hash_tag, local_image.as_deref(), cache)?, "pushed")
        }
        (None, None) => (push(id, &hash_tag, local_image.as_deref(), cache)?, "pushed"),
    };
    let mut tags = vec![hash_tag];
    for tag in [version, "latest"] {
        registry.put_tag(id, &manifest, tag)?;
        tags.push(tag.to_owned());
    }
    if local_image.is_some() {
        store.record_pushed(id, hash, &name, &manifest.digest)?;
    }
    Ok(Published { id: id.to_owned(), registry: name, action, digest: manifest.digest, tags, note })
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
    let w = published.iter().map(|p| p.id.len()).max().unwrap_or(6).max(6);
    let mut s = format!("\n{:<w$}  {:<7}  {:<19}  tags\n", "image", "action", "digest");
    for p in published {
        let short = p.digest.get(..19).unwrap_or(&p.digest);
        s.push_str(&format!("{:<w$}  {:<7}  {short}  {}\n", p.id, p.action, p.tags.join(", ")));
    }
    let pushed = published.iter().filter(|p| p.action == "pushed").count();
    s.push_str(&format!("{pushed} pushed, {} already present (tags added)", published.len() - pushed));
    s
}

/// Notes to show (re-pushes after a digest mismatch or deletion).
pub fn notes(published: &[Published]) -> BTreeMap<&str, &str> {
    published.iter().filter_map(|p| p.note.as_deref().map(|n| (p.id.as_str(), n))).collect()
}
