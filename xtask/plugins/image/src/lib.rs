//! The container image plugin: builds an image from a hashed build context with the
//! Docker engine, and knows whether an image it built still exists.

pub mod docker;
pub mod pybase;
pub mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xtask_engine::{BuildContext, BuildJob, Builder, DockerIgnore, ExtraFile, FileCache, InputManifest, Output};

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
    /// Dependency targets whose output files are placed under `wheels/` in the context.
    pub wheels_from: Vec<String>,
    /// Also tag the local image `<repository>:latest` (off in test fixtures, so that
    /// they never move a developer's `latest`).
    pub tag_latest: bool,
}

/// [`Builder`] for one image.
pub struct ImageBuilder {
    pub spec: ImageSpec,
    pub engine: Arc<DockerEngine>,
}

impl ImageBuilder {
    pub fn new(spec: ImageSpec, engine: Arc<DockerEngine>) -> Self {
        ImageBuilder { spec, engine }
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
        for w in &self.spec.wheels_from {
            m.params.insert(format!("wheels-from:{w}"), "wheels/".into());
        }
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        self.engine.has_image(&output.artifact)
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        // The context as it was hashed; the tar writer checks every file's digest.
        let ctx = BuildContext::from_fingerprints(&self.spec.context_dir, &job.inputs.files)?;
        let mut extra = Vec::new();
        for dep in &self.spec.wheels_from {
            let (_, out) = job.deps.get(dep).with_context(|| format!("{dep} is not a dependency of {}", job.id))?;
            let path = Utf8PathBuf::from(&out.artifact);
            for file in wheel_files(&path)? {
                let name = file.file_name().expect("wheel files have names").to_owned();
                extra.push(ExtraFile { dest: format!("wheels/{name}"), source: file });
            }
        }
        let (dockerfile_name, inject) = self.dockerfile_in_context();
        if inject {
            extra.push(ExtraFile { dest: dockerfile_name.clone(), source: self.spec.dockerfile.clone() });
        }
        let tar = ctx.write_tar(Vec::new(), &extra)?;
        let mut args: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.spec.build_args {
            let value = match v {
                ArgValue::Literal(s) => s.clone(),
                ArgValue::Target(t) => {
                    let artifact = &job.deps.get(t).with_context(|| format!("{t} is not a dependency of {}", job.id))?.1.artifact;
                    if artifact.starts_with("sha256:") {
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

/// The wheel files a wheel target produced: its artifact is a wheel file or a folder of them.
fn wheel_files(path: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in path.read_dir_utf8().with_context(|| format!("failed to list {path}"))? {
        let entry = entry?;
        if entry.path().extension() == Some("whl") {
            out.push(entry.path().to_owned());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("no wheel files in {path}");
    }
    Ok(out)
}
