//! The container image plugin: builds an image from a hashed build context with the
//! Docker engine, and knows whether an image it built still exists.

pub mod assemble;
pub mod assembler;
pub mod distribution;
pub mod docker;
pub mod pybase;
pub mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xtask_engine::{BuildContext, BuildJob, Builder, DockerIgnore, ExtraFile, FileCache, InputHash, InputManifest, Output, Presence, RemoteHit};

pub use assembler::{Assembler, BuilderChoice};
pub use docker::DockerEngine;

/// The value of one build argument.
#[derive(Debug, Clone)]
pub enum ArgValue {
    /// A fixed string.
    Literal(String),
    /// The image built by another target (passed by image id, hashed by that target's
    /// input hash).
    Target(String),
    /// An image that is not built here: `reference` is what the build is given, `pin`
    /// what identifies its content in the input hash (the registry digest of a pinned
    /// upstream image, else the local image id).
    External { reference: String, pin: String },
}

/// How to build one image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Repository name without registry, e.g. `tradai/lambda-health-check`.
    pub repository: String,
    pub context_dir: Utf8PathBuf,
    pub dockerfile: Utf8PathBuf,
    pub build_args: BTreeMap<String, ArgValue>,
    pub platform: String,
    /// Dependency outputs placed into the build context (see [`ContextFrom`]).
    pub context_from: Vec<ContextFrom>,
    /// Also tag the local image `<repository>:latest` (off in test fixtures, so that
    /// they never move a developer's `latest`).
    pub tag_latest: bool,
}

/// A dependency's output placed into an image's build context: a file artifact lands as
/// `<dest>/<file name>`, a folder artifact is copied, recursively, under `<dest>/`. What
/// it holds is covered by the dependency's input hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFrom {
    /// The dependency target whose artifact is placed.
    pub target: String,
    /// The folder of the context it lands in, relative and `/`-separated (`wheels`).
    pub dest: String,
}

impl ContextFrom {
    pub fn new(target: impl Into<String>, dest: impl Into<String>) -> Self {
        ContextFrom { target: target.into(), dest: dest.into() }
    }
}

/// [`Builder`] for one image.
pub struct ImageBuilder {
    pub spec: ImageSpec,
    pub engine: Arc<DockerEngine>,
    /// The daemonless assembler, for Dockerfiles it can build (`None`: always `docker build`).
    pub assembler: Option<Arc<Assembler>>,
}

impl ImageBuilder {
    pub fn new(spec: ImageSpec, engine: Arc<DockerEngine>, assembler: Option<Arc<Assembler>>) -> Self {
        ImageBuilder { spec, engine, assembler }
    }

    /// Which builder makes this image, and why (for `--explain` and `--dry-run`).
    pub fn builder_choice(&self) -> Result<(bool, String)> {
        match &self.assembler {
            Some(a) => a.decide(&self.spec.dockerfile),
            None => Ok((false, "docker build".to_owned())),
        }
    }

    /// The build arguments as the build sees them: a target's image by its output.
    fn resolved_args(&self, job: &BuildJob<'_>, pull: bool) -> Result<Vec<(String, String)>> {
        let mut args: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.spec.build_args {
            let value = match v {
                ArgValue::Literal(s) => s.clone(),
                ArgValue::Target(t) => {
                    let artifact = &job.deps.get(t).with_context(|| format!("{t} is not a dependency of {}", job.id))?.1.artifact;
                    if artifact.starts_with("sha256:") || !pull {
                        artifact.clone()
                    } else {
                        // Found in a registry rather than built here: fetch it to build on.
                        registry::docker_pull(artifact)?
                    }
                }
                ArgValue::External { reference, .. } => reference.clone(),
            };
            args.push((k.clone(), value));
        }
        Ok(args)
    }

    fn ignore(&self) -> Result<DockerIgnore> {
        let path = self.spec.context_dir.join(".dockerignore");
        let text = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("failed to read {path}")),
        };
        DockerIgnore::with_builtins(text.as_deref()).with_context(|| format!("in {path}"))
    }

    /// The files the dependencies in [`ImageSpec::context_from`] place into the build
    /// context, in a stable order: each dependency in turn, its files sorted. Fails when a
    /// dependency is missing from the job, an artifact is neither file nor folder, a
    /// folder holds a symbolic link, or two files would land on the same path.
    pub fn dependency_files(&self, job: &BuildJob<'_>) -> Result<Vec<ExtraFile>> {
        let mut extra = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        for from in &self.spec.context_from {
            let (_, out) = job
                .deps
                .get(&from.target)
                .with_context(|| format!("{} is not a dependency of {}; add it to the target's deps", from.target, job.id))?;
            let artifact = Utf8PathBuf::from(&out.artifact);
            let dest = from.dest.trim_end_matches('/');
            for (rel, source) in artifact_files(&artifact)? {
                let file = ExtraFile { dest: format!("{dest}/{rel}"), source };
                if !taken.insert(file.dest.clone()) {
                    bail!("{}: two dependencies place {} in the build context; give them different `dest` folders", job.id, file.dest);
                }
                extra.push(file);
            }
        }
        Ok(extra)
    }

    /// Where the Dockerfile is inside the tar stream: its own path when it lives in the
    /// context, otherwise a reserved name the context cannot contain.
    fn dockerfile_in_context(&self) -> (String, bool) {
        match self.spec.dockerfile.strip_prefix(&self.spec.context_dir) {
            Ok(rel) => (rel.as_str().to_owned(), false),
            Err(_) => (".xtask.Dockerfile".to_owned(), true),
        }
    }
}

impl Builder for ImageBuilder {
    fn kind(&self) -> &'static str {
        "image"
    }

    fn inputs(&self, id: &str, files: &FileCache) -> Result<InputManifest> {
        if !self.spec.dockerfile.is_file() {
            bail!("{id}: no Dockerfile at {}; add one or remove the folder", self.spec.dockerfile);
        }
        let ctx = BuildContext::scan(&self.spec.context_dir, &self.ignore()?, files)?;
        let mut m = InputManifest::new("image", id).with_context(&ctx);
        let meta = fs::metadata(&self.spec.dockerfile)?;
        m.params.insert("dockerfile".into(), files.digest(&self.spec.dockerfile, &meta)?);
        m.params.insert("platform".into(), self.spec.platform.clone());
        for (k, v) in &self.spec.build_args {
            let value = match v {
                ArgValue::Literal(s) => s.clone(),
                ArgValue::Target(t) => format!("image of target {t}"),
                ArgValue::External { reference, pin } => format!("{reference} {pin}"),
            };
            m.params.insert(format!("build-arg:{k}"), value);
        }
        for from in &self.spec.context_from {
            check_context_dest(id, &from.dest)?;
            m.params.insert(format!("context-from:{}", from.target), format!("{}/", from.dest.trim_end_matches('/')));
        }
        Ok(m)
    }

    fn how(&self) -> Option<String> {
        Some(match self.builder_choice() {
            Ok((_, why)) => why,
            Err(e) => format!("docker build ({e:#})"),
        })
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        match (&self.assembler, output.detail.get(assembler::DETAIL_BUILDER)) {
            (Some(a), Some(b)) if b == assembler::ASSEMBLED => a.output_exists(output, &self.engine),
            _ => self.engine.has_image(&output.artifact),
        }
    }

    /// Also whether `<repository>:latest` still names the output, when the run promises
    /// that tag in the engine. On the usual path this is the one lookup made: `latest`
    /// naming the output proves the output is there.
    fn presence(&self, output: &Output) -> Result<Presence> {
        let assembled = output.detail.get(assembler::DETAIL_BUILDER).is_some_and(|b| b == assembler::ASSEMBLED);
        let in_engine = !assembled || self.assembler.as_ref().is_some_and(|a| a.deliver_local);
        if !(self.spec.tag_latest && in_engine) {
            return Ok(if self.output_exists(output)? { Presence::Present { missing_names: Vec::new() } } else { Presence::Missing });
        }
        let latest = format!("{}:latest", self.spec.repository);
        let named = self.engine.resolve(&latest)?.as_deref() == Some(output.artifact.as_str());
        // `latest` naming the image proves the engine holds it: one lookup in all.
        let exists = match (&self.assembler, assembled) {
            (Some(a), true) if named => a.in_store(output),
            (Some(a), true) => a.output_exists(output, &self.engine)?,
            _ => named || self.engine.has_image(&output.artifact)?,
        };
        Ok(match (exists, named) {
            (false, _) => Presence::Missing,
            (true, true) => Presence::Present { missing_names: Vec::new() },
            (true, false) => Presence::Present { missing_names: vec![latest] },
        })
    }

    fn restore_names(&self, output: &Output, names: &[String]) -> Result<()> {
        for name in names {
            self.engine.tag(&output.artifact, name)?;
        }
        Ok(())
    }

    fn adopt(&self, _id: &str, hash: &InputHash) -> Result<Option<RemoteHit>> {
        self.engine.hash_tagged(&self.spec.repository, hash)
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        // The context as it was hashed; the tar writer checks every file's digest.
        let ctx = BuildContext::from_fingerprints(&self.spec.context_dir, &job.inputs.files)?;
        let mut extra = self.dependency_files(job)?;
        let (dockerfile_name, inject) = self.dockerfile_in_context();
        if inject {
            extra.push(ExtraFile { dest: dockerfile_name.clone(), source: self.spec.dockerfile.clone() });
        }
        if let Some(asm) = &self.assembler {
            if asm.decide(&self.spec.dockerfile)?.0 {
                let args: BTreeMap<String, String> = self.resolved_args(job, false)?.into_iter().collect();
                let context = assemble::Context::new(&ctx, &extra);
                match asm.build(&self.spec, job, &context, &args, &self.engine) {
                    Ok(out) => return Ok(out),
                    Err(e) if e.downcast_ref::<assemble::Unsupported>().is_some() => {
                        tracing::info!(image = %self.spec.repository, reason = %e, "building with docker build instead");
                    }
                    Err(e) => return Err(e),
                }
            }
            // `docker build` on top of an image assembled in this run needs it in the engine.
            if assembler::needs_flush(job) {
                asm.flush()?;
            }
        }
        let tar = ctx.write_tar(Vec::new(), &extra)?;
        let args = self.resolved_args(job, true)?;
        let hash_ref = format!("{}:{}", self.spec.repository, job.input_hash.tag());
        let mut tags = vec![hash_ref.clone()];
        if self.spec.tag_latest {
            tags.push(format!("{}:latest", self.spec.repository));
        }
        let image_id = self.engine.build(&docker::BuildRequest {
            purpose: format!("build image {}", self.spec.repository),
            dockerfile: &dockerfile_name,
            tags: &tags,
            build_args: &args,
            platform: &self.spec.platform,
            context_tar: tar,
        })?;
        let mut detail = BTreeMap::new();
        detail.insert("reference".into(), hash_ref);
        Ok(Output { artifact: image_id, detail, ..Output::default() })
    }
}

/// A `dest` folder must stay inside the build context.
fn check_context_dest(id: &str, dest: &str) -> Result<()> {
    let trimmed = dest.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') || trimmed.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        bail!("{id}: `{dest}` is not a folder inside the build context; give a relative path such as `wheels`");
    }
    Ok(())
}

/// The files of an artifact with their paths below the `dest` folder: a file is itself
/// (by name); a folder is every file below it, sorted.
fn artifact_files(path: &Utf8Path) -> Result<Vec<(String, Utf8PathBuf)>> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{path} is gone; run again to rebuild it"))?;
    if meta.is_file() {
        let name = path.file_name().with_context(|| format!("{path} has no file name"))?;
        return Ok(vec![(name.to_owned(), path.to_owned())]);
    }
    if !meta.is_dir() {
        bail!("{path} is neither a file nor a folder; only those can be placed in a build context");
    }
    // A plain recursive walk: walkdir is not a dependency of this crate, and this is the
    // whole of what is needed from it here.
    fn walk(root: &Utf8Path, dir: &Utf8Path, out: &mut Vec<(String, Utf8PathBuf)>) -> Result<()> {
        for entry in dir.read_dir_utf8().with_context(|| format!("failed to list {dir}"))? {
            let entry = entry.with_context(|| format!("failed to list {dir}"))?;
            let kind = entry.file_type().with_context(|| format!("cannot stat {}", entry.path()))?;
            if kind.is_dir() {
                walk(root, entry.path(), out)?;
            } else if kind.is_file() {
                let rel = entry.path().strip_prefix(root).expect("walked below it");
                out.push((rel.as_str().to_owned(), entry.path().to_owned()));
            } else {
                bail!("{} is a symbolic link or special file; a folder placed in a build context may hold regular files only", entry.path());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(path, path, &mut out)?;
    out.sort();
    if out.is_empty() {
        bail!("{path} holds no files; run again to rebuild it");
    }
    Ok(out)
}
