//! Which build targets a change affects, decided by the build engine itself: every
//! target's input hash is computed for both trees of the change, with the same hashing
//! and the same target graph a build uses, and a target is affected exactly when its hash
//! differs. Nothing here re-codes what an image is built from.
//!
//! A tree is a git revision, exported with `git archive` into a scratch folder, or the
//! working tree as it is. The upstream bases count by their pinned digests (no Docker
//! call is made); the stand-in only where `xtask.toml` selects it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::Utf8Path;
use xtask_ci::{TargetChange, TargetRole};
use xtask_engine::plan::closure;
use xtask_engine::{FileCache, InputHash, InputManifest, Target};
use xtask_image::DockerEngine;

use crate::bases::Bases;
use crate::project::Project;

/// Every target of a tree, with its input hash and inputs.
pub type Hashes = BTreeMap<String, (InputHash, InputManifest)>;

/// The input hashes of every target of the repository at `root`, as planned from scratch.
pub fn hashes_of(root: &Utf8Path) -> Result<Hashes> {
    let project = Project::locate(Some(root))?;
    let bases = Bases::pinned(&project.config.python_base)?;
    // Hashing never asks the engine anything; the handle is only part of the targets.
    let engine = Arc::new(DockerEngine::new());
    let targets = project.targets_with(&engine, &bases, None)?;
    let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
    input_hashes(&closure(&targets, &ids)?, &FileCache::in_memory())
}

/// The input hash and inputs of every target of `order` (dependencies first), as
/// planning computes them, without planning's questions to the engine (whether an output
/// exists, whether an image for the hash can be adopted): hashing needs only the files.
pub fn input_hashes(order: &[&Target], files: &FileCache) -> Result<Hashes> {
    let mut out = Hashes::new();
    for t in order {
        let mut inputs = t.builder.inputs(&t.id, files)?;
        for d in &t.deps {
            let (hash, _) = out.get(d).with_context(|| format!("{d} is hashed before {}", t.id))?;
            inputs.deps.insert(d.clone(), hash.clone());
        }
        out.insert(t.id.clone(), (inputs.hash(), inputs));
    }
    Ok(out)
}

/// The hashes of the tree at `rev`, exported from git into a scratch folder.
fn hashes_at(project: &Project, rev: &str) -> Result<Hashes> {
    let scratch = project.state_dir().join("ci");
    std::fs::create_dir_all(&scratch).with_context(|| format!("failed to create {scratch}"))?;
    let dir =
        tempfile::Builder::new().prefix("tree-").tempdir_in(&scratch).with_context(|| format!("failed to create a folder in {scratch}"))?;
    let dest = Utf8Path::from_path(dir.path()).context("scratch path is not UTF-8")?;
    // `git archive | tar -x`: the tree as committed, modes included, without a checkout.
    // Like every child not given them, git and tar never see Pulumi's secrets.
    let withhold = |mut e: duct::Expression| {
        for name in xtask_engine::process::withheld() {
            e = e.env_remove(name);
        }
        e
    };
    withhold(duct::cmd("git", ["-C", project.root.as_str(), "archive", "--format=tar", rev]))
        .pipe(withhold(duct::cmd("tar", ["-x", "-C", dest.as_str()])))
        .stdout_null()
        .stderr_capture()
        .run()
        .map_err(|e| anyhow::anyhow!("cannot export {rev} with git archive: {e}"))?;
    if !dest.join("xtask.toml").is_file() {
        bail!("{rev} has no xtask.toml at its root; compare commits of this repository");
    }
    hashes_of(dest)
}

/// The merge base of `base` and `head` (HEAD when none), as `ci changes` compares from.
fn fork_point(root: &Utf8Path, base: &str, head: Option<&str>) -> Result<String> {
    let out = xtask_engine::Cmd::new("git", "find where the change forked from the base")
        .args(["merge-base", base, head.unwrap_or("HEAD")])
        .dir(root)
        .run()
        .map_err(|e| anyhow::anyhow!("{e}; fetch the base first (`git fetch origin <branch>`, or `fetch-depth: 0` in actions/checkout)"))?;
    Ok(out.stdout.trim().to_owned())
}

/// The targets whose input hash differs between the fork point of `base` and `head`
/// (the working tree when `head` is `None`), with what changed in each.
pub fn changed_targets(project: &Project, base: &str, head: Option<&str>) -> Result<Vec<TargetChange>> {
    let before = hashes_at(project, &fork_point(&project.root, base, head)?)?;
    let after = match head {
        Some(rev) => hashes_at(project, rev)?,
        None => hashes_of(&project.root)?,
    };
    diff(project, &before, &after)
}

/// Every target, as changed, for `ci changes --all`.
pub fn all_targets(project: &Project) -> Result<Vec<TargetChange>> {
    let hashes = hashes_of(&project.root)?;
    let roles = roles(project)?;
    Ok(hashes.keys().map(|id| TargetChange { id: id.clone(), role: role_of(&roles, id), why: vec!["full run (--all)".into()] }).collect())
}

fn diff(project: &Project, before: &Hashes, after: &Hashes) -> Result<Vec<TargetChange>> {
    let roles = roles(project)?;
    let mut out = Vec::new();
    for (id, (hash, inputs)) in after {
        let why = match before.get(id) {
            None => vec!["new target".to_owned()],
            Some((old, _)) if old == hash => continue,
            Some((_, old_inputs)) => inputs.changes(old_inputs).iter().map(ToString::to_string).collect(),
        };
        out.push(TargetChange { id: id.clone(), role: role_of(&roles, id), why });
    }
    Ok(out)
}

/// What each target is, from the repository model.
fn roles(project: &Project) -> Result<BTreeMap<String, TargetRole>> {
    let repo = project.repository()?;
    let names = repo.names();
    let mut roles = BTreeMap::from([
        (names.wheel_target(xtask_repo::SHARED_LIB), TargetRole::Wheel),
        (names.lambda_base_image().to_owned(), TargetRole::LambdaBase),
    ]);
    roles.extend(repo.lambdas.iter().map(|l| (l.image.clone(), TargetRole::Lambda(l.name.clone()))));
    roles.extend(repo.services.iter().map(|s| (s.image.clone(), TargetRole::Service(s.name.clone()))));
    Ok(roles)
}

fn role_of(roles: &BTreeMap<String, TargetRole>, id: &str) -> TargetRole {
    roles.get(id).cloned().unwrap_or(TargetRole::Other)
}
