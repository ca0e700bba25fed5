//! The Debian-built stand-in for the upstream Python base images.
//!
//! The Lambda images are built `FROM public.ecr.aws/lambda/python:3.11` and the services
//! `FROM python:3.11-slim` when those can be had. Where no registry is reachable, this
//! target produces an equivalent from Debian packages alone: `debootstrap` makes a
//! bookworm root file system with Python 3.11, `docker import` turns it into an image,
//! and a Dockerfile adds `awslambdaric` and `boto3` from wheels downloaded beforehand,
//! with the Lambda image's conventions (`LAMBDA_TASK_ROOT=/var/task`, the runtime
//! interface client as entry point). Its recipe (the Dockerfile folder, the suite and the
//! package list) is hashed like any target's inputs.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use xtask_engine::{BuildContext, BuildJob, Builder, Cmd, DockerIgnore, ExtraFile, FileCache, InputManifest, Output, Program};

use crate::docker::{BuildRequest, DockerEngine};

/// Debian release and packages of the root file system.
pub const SUITE: &str = "bookworm";
pub const PACKAGES: &str = "python3,python3-pip,ca-certificates";

/// Builds the Debian Python base from the recipe folder (Dockerfile + requirements.txt).
pub struct PythonBaseBuilder {
    pub repository: String,
    pub recipe_dir: Utf8PathBuf,
    /// Scratch space for the root file system and downloaded wheels.
    pub work_dir: Utf8PathBuf,
    pub platform: String,
    pub engine: Arc<DockerEngine>,
    /// debootstrap, provisioned on first use.
    pub debootstrap: Program,
}

impl PythonBaseBuilder {
    fn mirror() -> String {
        std::env::var("XTASK_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned())
    }
}

impl Builder for PythonBaseBuilder {
    /// A local artifact only: never looked up in, or pushed to, a remote registry.
    fn kind(&self) -> &'static str {
        "local-image"
    }

    fn inputs(&self, id: &str, files: &FileCache) -> Result<InputManifest> {
        if !self.recipe_dir.join("Dockerfile").is_file() {
            bail!(
                "{id}: the stand-in's recipe {} has no Dockerfile; restore it or set [python-base] recipe in xtask.toml",
                self.recipe_dir
            );
        }
        let ignore = DockerIgnore::with_builtins(None)?;
        let ctx = BuildContext::scan(&self.recipe_dir, &ignore, files)?;
        let mut m = InputManifest::new("image", id).with_context(&ctx);
        m.params.insert("debootstrap-suite".into(), SUITE.into());
        m.params.insert("debootstrap-packages".into(), PACKAGES.into());
        m.params.insert("platform".into(), self.platform.clone());
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        self.engine.has_image(&output.artifact)
    }

    /// The stand-in takes minutes to build: one tagged with this hash in the engine is used.
    fn adopt(&self, _id: &str, hash: &xtask_engine::InputHash) -> Result<Option<xtask_engine::RemoteHit>> {
        self.engine.hash_tagged(&self.repository, hash)
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        if !xtask_engine::process::is_root() {
            bail!(
                "building the Debian stand-in base needs root (debootstrap); run as root, or make the pinned upstream base pullable (`cargo xtask base-images` shows why it is not used)"
            );
        }
        let work = self.work_dir.join(format!("pybase-{}", &job.input_hash.as_str()[..16]));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).with_context(|| format!("failed to create {work}"))?;
        let rootfs = work.join("rootfs");
        let result = (|| -> Result<Output> {
            self.debootstrap
                .cmd(format!("create a Debian {SUITE} root file system with Python 3.11"))?
                .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE, rootfs.as_str(), &Self::mirror()])
                .run()?;
            // Debian marks its Python as externally managed; in this image it is the only one.
            let _ = fs::remove_file(rootfs.join("usr/lib/python3.11/EXTERNALLY-MANAGED"));
            let _ = fs::remove_dir_all(rootfs.join("var/cache/apt/archives"));
            let tarball = work.join("rootfs.tar");
            Cmd::new("tar", "pack the root file system").args(["-C", rootfs.as_str(), "-cf", tarball.as_str(), "."]).run()?;
            let rootfs_ref = format!("{}-rootfs:{}", self.repository, job.input_hash.tag());
            let imported = Cmd::new("docker", "import the root file system as an image")
                .args(["import", tarball.as_str(), rootfs_ref.as_str()])
                .run()?;
            let rootfs_id = imported.stdout.trim().to_owned();
            let wheels = work.join("wheels");
            Cmd::new("python3", "download the awslambdaric and boto3 wheels")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--only-binary=:all:",
                    "--platform",
                    "manylinux2014_x86_64",
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                    "--dest",
                    wheels.as_str(),
                    "--requirement",
                ])
                .arg(self.recipe_dir.join("requirements.txt").as_str())
                .run()?;
            let ctx = BuildContext::from_fingerprints(&self.recipe_dir, &job.inputs.files)?;
            let mut extra = Vec::new();
            for entry in wheels.read_dir_utf8()? {
                let entry = entry?;
                extra.push(ExtraFile { dest: format!("wheels/{}", entry.file_name()), source: entry.path().to_owned() });
            }
            extra.sort_by(|a, b| a.dest.cmp(&b.dest));
            let tar = ctx.write_tar(Vec::new(), &extra)?;
            let hash_ref = format!("{}:{}", self.repository, job.input_hash.tag());
            let image_id = self.engine.build(&BuildRequest {
                purpose: format!("build image {}", self.repository),
                dockerfile: "Dockerfile",
                tags: &[hash_ref.clone(), format!("{}:latest", self.repository)],
                build_args: &[("ROOTFS".to_owned(), rootfs_id)],
                platform: &self.platform,
                context_tar: tar,
            })?;
            let mut detail = BTreeMap::new();
            detail.insert("reference".into(), hash_ref);
            Ok(Output { artifact: image_id, detail, ..Output::default() })
        })();
        let _ = fs::remove_dir_all(&work);
        result
    }
}
