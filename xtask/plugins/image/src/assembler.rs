//! The assembler as a builder: decides, per image, whether it is assembled without a
//! daemon or built with `docker build`; finds the base image's manifest, config and
//! directories (in the store, in the local engine, or in the registry it lives in); and
//! delivers what it assembled: to the local engine with one `docker load` per run, or
//! to a registry through the distribution API ([`crate::publish_assembled`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use camino::Utf8Path;
use xtask_engine::{BuildJob, Output};

use crate::assemble::store::{BlobStore, StoredImage};
use crate::assemble::{self, Assembly, Context, Support, archive, dockerfile};
use crate::docker::DockerEngine;
use crate::registry::{OciRegistry, Registry as _};

/// `Output.detail` keys of an assembled image.
pub const DETAIL_BUILDER: &str = "builder";
/// The manifest digest: what a registry serves the image as.
pub const DETAIL_MANIFEST: &str = "digest";
pub const ASSEMBLED: &str = "assembled";

/// Connects to a registry.
pub type RemoteFactory = Box<dyn Fn() -> Result<OciRegistry> + Send + Sync>;

/// Which builder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuilderChoice {
    /// The assembler wherever the Dockerfile allows, `docker build` elsewhere.
    #[default]
    Auto,
    /// `docker build` everywhere.
    Docker,
}

/// Shared by every image of a run.
pub struct Assembler {
    pub store: BlobStore,
    pub choice: BuilderChoice,
    /// Whether assembled images go into the local engine (when no registry is used).
    pub deliver_local: bool,
    /// Connects to the run's registry, where images found there are read from.
    remote_factory: Option<RemoteFactory>,
    remote: std::sync::OnceLock<Result<Arc<OciRegistry>, String>>,
    /// Where each base blob not in the store can be read: the reference it came with.
    origins: Mutex<BTreeMap<String, String>>,
    pending: Mutex<Vec<(String, Vec<String>)>>,
    /// Layers the engine holds: those of every base read from it.
    in_engine: Mutex<BTreeSet<String>>,
    /// Registries of bases reached over plain HTTP although not loopback.
    insecure: Vec<String>,
}

impl Assembler {
    pub fn new(store_dir: &Utf8Path, choice: BuilderChoice, deliver_local: bool) -> Result<Self> {
        Ok(Assembler {
            store: BlobStore::open(store_dir)?,
            choice,
            deliver_local,
            remote_factory: None,
            remote: std::sync::OnceLock::new(),
            origins: Mutex::default(),
            pending: Mutex::default(),
            in_engine: Mutex::default(),
            insecure: Vec::new(),
        })
    }

    /// Base registries to reach over plain HTTP (`[registry] insecure` of `xtask.toml`).
    pub fn with_insecure(mut self, insecure: &[String]) -> Self {
        self.insecure = insecure.to_vec();
        self
    }

    /// Names the run's registry (connected on first use), where images found there are read.
    pub fn with_registry(mut self, connect: RemoteFactory) -> Self {
        self.remote_factory = Some(connect);
        self
    }

    fn remote(&self) -> Option<Result<Arc<OciRegistry>>> {
        let factory = self.remote_factory.as_ref()?;
        let r = self.remote.get_or_init(|| factory().map(Arc::new).map_err(|e| format!("{e:#}")));
        Some(r.clone().map_err(|e| anyhow::anyhow!(e)))
    }

    /// Which builder an image's Dockerfile gets, and why.
    pub fn decide(&self, dockerfile: &Utf8Path) -> Result<(bool, String)> {
        if self.choice == BuilderChoice::Docker {
            return Ok((false, "docker build (--builder docker)".to_owned()));
        }
        let text = std::fs::read_to_string(dockerfile).with_context(|| format!("failed to read {dockerfile}"))?;
        let df = dockerfile::parse(&text).with_context(|| format!("in {dockerfile}"))?;
        Ok(match assemble::support(&df) {
            Support::Assemble => (true, "assembled without Docker (files and config only)".to_owned()),
            Support::Docker(why) => (false, format!("docker build ({why})")),
        })
    }

    /// Whether an assembled output still exists where this run needs it.
    pub fn output_exists(&self, output: &Output, engine: &DockerEngine) -> Result<bool> {
        if !self.in_store(output) {
            return Ok(false);
        }
        if self.deliver_local { engine.has_image(&output.artifact) } else { Ok(true) }
    }

    /// Whether the image store holds an assembled output (its manifest and config).
    pub fn in_store(&self, output: &Output) -> bool {
        output.detail.get(DETAIL_MANIFEST).is_some_and(|m| self.store.has(m)) && self.store.has(&output.artifact)
    }

    /// Assembles one image. `base_of` maps the FROM reference to a dependency's output
    /// when it names one.
    pub fn build(
        &self,
        spec: &crate::ImageSpec,
        job: &BuildJob<'_>,
        context: &Context,
        build_args: &BTreeMap<String, String>,
        engine: &DockerEngine,
    ) -> Result<Output> {
        let text = std::fs::read(&spec.dockerfile).with_context(|| format!("failed to read {}", spec.dockerfile))?;
        if let Some(hashed) = job.inputs.params.get("dockerfile") {
            use sha2::Digest as _;
            if &xtask_engine::filecache::hex(&sha2::Sha256::digest(&text)) != hashed {
                bail!("{} changed after it was hashed; run again so that its new content is hashed and built", spec.dockerfile);
            }
        }
        let text = String::from_utf8(text).with_context(|| format!("{} is not UTF-8", spec.dockerfile))?;
        let df = dockerfile::parse(&text).with_context(|| format!("in {}", spec.dockerfile))?;
        let reference = assemble::base_reference(&df, build_args)?;
        let base = self.base(&reference, job, engine)?;
        let dirs = assemble::dir_index(&self.store, &base.manifest.layers, &|l| self.read_layer(&reference, job, l))?;
        let a = Assembly { dockerfile: &df, name: spec.dockerfile.as_str(), build_args, context, store: &self.store };
        let image = assemble::assemble(&a, &base, &dirs)?;
        if self.deliver_local {
            // `docker load` needs every layer the engine lacks.
            let in_engine = self.in_engine.lock().expect("lock").clone();
            for l in base.manifest.layers.iter().filter(|l| !in_engine.contains(&l.digest)) {
                self.read_layer(&reference, job, l)?;
            }
        }
        let hash_ref = format!("{}:{}", spec.repository, job.input_hash.tag());
        if self.deliver_local {
            let mut tags = vec![hash_ref.clone()];
            if spec.tag_latest {
                tags.push(format!("{}:latest", spec.repository));
            }
            self.pending.lock().expect("lock").push((image.manifest_digest.clone(), tags));
        }
        let mut detail = BTreeMap::new();
        detail.insert("reference".into(), hash_ref);
        detail.insert(DETAIL_BUILDER.into(), ASSEMBLED.into());
        detail.insert(DETAIL_MANIFEST.into(), image.manifest_digest.clone());
        Ok(Output { artifact: image.image_id().to_owned(), detail, ..Output::default() })
    }

    /// The base image named `reference`: a dependency's output, an image of the local
    /// engine (read once with `docker save`), or an image of a registry (its manifest and
    /// config only).
    fn base(&self, reference: &str, job: &BuildJob<'_>, engine: &DockerEngine) -> Result<StoredImage> {
        if let Some((_, out)) = job.deps.values().find(|(_, o)| o.artifact == reference)
            && let Some(m) = out.detail.get(DETAIL_MANIFEST).filter(|m| self.store.has(m))
        {
            let image = self.store.image(m)?;
            if self.deliver_local && engine.has_image(image.image_id())? {
                self.in_engine.lock().expect("lock").extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
            }
            return Ok(image);
        }
        if reference.starts_with("sha256:") {
            let image = archive::import_from_engine(&self.store, reference)?;
            self.in_engine.lock().expect("lock").extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
            return Ok(image);
        }
        let platform = job.inputs.params.get("platform").map(String::as_str).unwrap_or("linux/amd64");
        // The registry the base lives in first: its manifest and config are all it takes.
        // The engine's copy only when the registry cannot answer (it is read whole).
        match self.read_from_registry(reference, platform) {
            Ok(image) => Ok(image),
            Err(e) => match engine.resolve(reference)? {
                Some(id) => {
                    let image = archive::import_from_engine(&self.store, &id)?;
                    self.in_engine.lock().expect("lock").extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
                    Ok(image)
                }
                None => Err(e),
            },
        }
    }

    /// Reads a base's manifest and config from its registry into the store, so that a
    /// run knows before building whether the base can be had (`Bases::read_missing`).
    pub fn prefetch_base(&self, reference: &str, platform: &str) -> Result<()> {
        self.read_from_registry(reference, platform).map(|_| ())
    }

    fn read_from_registry(&self, reference: &str, platform: &str) -> Result<StoredImage> {
        if let Some(d) = self.store.get_ref("registry", reference).filter(|d| self.store.has(d))
            && let Ok(image) = self.store.image(&d)
        {
            self.note_origins(&image, reference);
            return Ok(image);
        }
        let (client, repository, tag) = self.client_for(reference)?;
        resolvable(&client.name())?;
        let manifest = client.fetch_manifest(&repository, &tag, platform).with_context(|| format!("failed to read the base image {reference}"))?;
        let parsed: assemble::store::ImageManifest = serde_json::from_slice(&manifest.bytes).context("the base's manifest is not an image manifest")?;
        let mut config = Vec::new();
        client.fetch_blob(&repository, &parsed.config.digest, &mut config)?;
        let image = self.store.put_image(&manifest.bytes, &config)?;
        self.note_origins(&image, reference);
        // A tag can move; only a reference by digest is kept for later runs.
        if reference.contains("@sha256:") {
            self.store.set_ref("registry", reference, &image.manifest_digest)?;
        }
        Ok(image)
    }

    /// The repositories of registry `host` that bases were read from: where their layers
    /// can be mounted from when pushing to that registry.
    pub fn base_repositories(&self, host: &str) -> Vec<String> {
        let origins = self.origins.lock().expect("lock");
        let mut repos: Vec<String> = origins
            .values()
            .filter_map(|reference| self.client_for(reference).ok().filter(|(c, _, _)| c.name() == host).map(|(_, repo, _)| repo))
            .collect();
        repos.sort();
        repos.dedup();
        repos
    }

    fn note_origins(&self, image: &StoredImage, reference: &str) {
        let mut origins = self.origins.lock().expect("lock");
        for l in &image.manifest.layers {
            origins.entry(l.digest.clone()).or_insert_with(|| reference.to_owned());
        }
    }

    /// A client for the registry `reference` lives in, its repository and tag or digest.
    fn client_for(&self, reference: &str) -> Result<(Arc<OciRegistry>, String, String)> {
        let (name, tag) = match reference.split_once('@') {
            Some((n, d)) => (n.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(n, _)| n).unwrap_or(n), d.to_owned()),
            None => match reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                Some((n, t)) => (n, t.to_owned()),
                None => (reference, "latest".to_owned()),
            },
        };
        let (first, rest) = name.split_once('/').unwrap_or(("", name));
        let is_host = first.contains('.') || first.contains(':') || first == "localhost";
        let (host, repository) = if is_host {
            (first.to_owned(), rest.to_owned())
        } else if name.contains('/') {
            ("registry-1.docker.io".to_owned(), name.to_owned())
        } else {
            ("registry-1.docker.io".to_owned(), format!("library/{name}"))
        };
        if let Some(r) = self.remote() {
            let r = r?;
            if r.name() == host {
                return Ok((r, repository, tag));
            }
        }
        Ok((Arc::new(OciRegistry::new(&host)?.allow_insecure(&self.insecure)), repository, tag))
    }

    /// Reads one layer of the base, from the store or else from the registry the base
    /// came from (stored, so that it is read once).
    fn read_layer(&self, reference: &str, _job: &BuildJob<'_>, layer: &assemble::store::Descriptor) -> Result<Box<dyn std::io::Read + Send>> {
        self.origins.lock().expect("lock").entry(layer.digest.clone()).or_insert_with(|| reference.to_owned());
        self.open_blob(&layer.digest)
    }

    /// Opens a blob of an assembled image: from the store, else from the registry of the
    /// base it came with (stored on the way, so it is read once).
    pub fn open_blob(&self, digest: &str) -> Result<Box<dyn std::io::Read + Send>> {
        if !self.store.has(digest) {
            let origin = self.origins.lock().expect("lock").get(digest).cloned();
            let Some(reference) = origin else {
                bail!("blob {digest} is not in the image store {}; run with --builder docker, or clear the store and run again", self.store.root());
            };
            let (client, repository, _) = self.client_for(&reference)?;
            let mut file = self.store.temp()?;
            client.fetch_blob(&repository, digest, file.as_file_mut())?;
            self.store.persist(file, digest)?;
        }
        Ok(Box::new(self.store.open_blob(digest)?))
    }

    /// Whether images wait to be loaded into the engine.
    pub fn has_pending(&self) -> bool {
        !self.pending.lock().expect("lock").is_empty()
    }

    /// Loads every image assembled so far into the local engine, with one `docker load`.
    pub fn flush(&self) -> Result<usize> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("lock"));
        if pending.is_empty() {
            return Ok(0);
        }
        let images: Vec<StoredImage> = pending.iter().map(|(m, _)| self.store.image(m)).collect::<Result<_>>()?;
        let mut present = self.in_engine.lock().expect("lock").clone();
        let loads: Vec<archive::ToLoad<'_>> =
            images.iter().zip(&pending).map(|(image, (_, tags))| archive::ToLoad { image, tags: tags.clone() }).collect();
        archive::load_into_engine(&self.store, &loads, &present)?;
        present.extend(images.iter().flat_map(|i| i.manifest.layers.iter().map(|l| l.digest.clone())));
        *self.in_engine.lock().expect("lock") = present;
        Ok(loads.len())
    }
}

/// Fails at once when a registry's host name does not resolve: a name that does not
/// resolve now will not a second later, so the base falls back (or the build stops)
/// without the backoff meant for a registry that is busy.
fn resolvable(host: &str) -> Result<()> {
    use std::net::ToSocketAddrs as _;
    let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit())) { host.to_owned() } else { format!("{host}:443") };
    match with_port.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => bail!("registry host {host} has no address"),
        Err(e) => bail!("registry host {host} cannot be resolved ({e}); check the network, or pin a base this machine can reach"),
    }
}

/// The dependency images of a job that were assembled but are not in the engine yet:
/// a `docker build` on top of one needs it loaded first.
pub fn needs_flush(job: &BuildJob<'_>) -> bool {
    job.deps.values().any(|(_, o)| o.detail.get(DETAIL_BUILDER).map(String::as_str) == Some(ASSEMBLED))
}
