//! `cargo xtask base-images`: the pinned upstream Python bases, whether this machine
//! holds or can pull them, and what the builds will use; `--pull` fetches them now and
//! `--update` re-pins them to the digests their tags point at today.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use xtask_image::DockerEngine;

use crate::bases::{Base, BaseSource, Bases, ImageRef, Role, probe_registry};
use crate::project::Project;

#[derive(Debug, Args)]
pub struct BaseImagesArgs {
    /// Pull the pinned bases the local engine lacks
    #[arg(long, conflicts_with = "update")]
    pub pull: bool,
    /// Pull each base's tag and pin xtask.toml to the digest it points at now
    #[arg(long)]
    pub update: bool,
}

/// What a build on this machine will use for one role, and why.
pub fn verdict(project: &Project, base: &Base) -> (bool, String) {
    match base {
        Base::StandIn { reason } => (true, format!("the Debian stand-in: {reason}")),
        Base::Upstream { image, local: Some(_) } => (false, format!("{} from the local engine", image.exact())),
        Base::Upstream { image, local: None } => {
            match probe_registry(image, Duration::from_secs(project.config.python_base.pull_timeout.min(10))) {
                Ok(()) => (false, format!("{} pulled on the first build that needs it", image.exact())),
                Err(why) => (true, format!("the Debian stand-in: {} cannot be pulled ({why})", image.exact())),
            }
        }
    }
}

impl BaseImagesArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let engine = DockerEngine::new();
        if self.update {
            return self.update(project, &engine);
        }
        let mut bases = Bases::resolve(&project.config.python_base, &engine, true)?;
        if self.pull {
            let say = |l: &str| eprintln!("{l}");
            if bases.pull_missing(&project.config.python_base, &engine, &[Role::Lambda, Role::Service], &say) {
                return Ok(ExitCode::FAILURE);
            }
        }
        for (role, base) in [("lambda", &bases.lambda), ("service", &bases.service)] {
            let pinned = match role {
                "lambda" => &project.config.python_base.lambda,
                _ => &project.config.python_base.service,
            };
            let (_, uses) = verdict(project, base);
            println!("{role:<8} {pinned}\n         builds use {uses}");
        }
        Ok(ExitCode::SUCCESS)
    }

    fn update(&self, project: &Project, engine: &DockerEngine) -> Result<ExitCode> {
        let cfg = &project.config.python_base;
        if cfg.source == BaseSource::StandIn {
            eprintln!("note: xtask.toml selects the stand-in; the pins are updated all the same");
        }
        let path = project.root.join("xtask.toml");
        let mut text = std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
        let mut changed = false;
        for (key, current) in [("lambda", &cfg.lambda), ("service", &cfg.service)] {
            let image = ImageRef::parse(current)?;
            let tagged = image.tagged();
            eprintln!("pulling {tagged} to read its digest");
            engine
                .pull(&tagged, Duration::from_secs(cfg.pull_timeout), Duration::from_secs(30 * 60))
                .with_context(|| format!("cannot pull {tagged}; run this where its registry is reachable"))?;
            let digest =
                engine.repo_digest(&tagged, &image.name)?.with_context(|| format!("the engine holds no registry digest for {tagged}"))?;
            let pinned = image.pinned_to(&digest);
            if &pinned == current {
                println!("{key:<8} {pinned} (unchanged)");
                continue;
            }
            let quoted = format!("\"{current}\"");
            if !text.contains(&quoted) {
                bail!("{path} does not set [python-base] {key} = {quoted}; add `{key} = \"{pinned}\"` under [python-base]");
            }
            text = text.replacen(&quoted, &format!("\"{pinned}\""), 1);
            println!("{key:<8} {current} -> {pinned}");
            changed = true;
        }
        if changed {
            xtask_engine::atomic::write_atomically(&path, text.as_bytes())?;
            eprintln!("updated {path}; every image built on a re-pinned base will rebuild");
        }
        Ok(ExitCode::SUCCESS)
    }
}
