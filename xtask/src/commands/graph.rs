//! `cargo xtask graph`: the target graph the build engine uses (the same targets and
//! edges as `Project::targets_with`, made from the repository model), as Mermaid, DOT or
//! a self-contained HTML page, with `--changed` highlighting what a change affects.
//!
//! Nothing is built, and no Docker call is made: the graph and the input hashes come
//! from the files alone (the one exception: `--changed` with a base that `xtask.toml`
//! names without a digest, which counts by the engine's image id for it, as in a build). `--changed` compares every target's input hash with its last
//! build recorded in the state (hashed on the base that build used, upstream or the
//! Debian stand-in), or, with `--base REF`, with the tree where the branch forked from
//! REF, exactly as `ci changes` does (`crate::changes`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use camino::Utf8PathBuf;
use clap::Args;
use xtask_engine::graph::{Graph, Mark, Node};
use xtask_engine::plan::closure;
use xtask_engine::{BuildReason, Change, State};
use xtask_image::DockerEngine;

use crate::bases::{Base, BaseSource, Bases, ImageRef, Role, python_base_id};
use crate::project::{Project, lambda_base_id, service_image};

/// Options of `cargo xtask graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// `mermaid` (a flowchart; GitHub renders it inside a ```mermaid block) or `dot`
    /// (Graphviz); the default is mermaid, and with --html nothing is printed unless given
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Highlight what a change affects: the targets whose input hash differs from their
    /// last build recorded here (or from --base), with a legend listing them
    #[arg(long)]
    pub changed: bool,
    /// Compare with the tree where this branch forked from REF (as `ci changes --base`
    /// does) instead of the last recorded builds; implies --changed
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Also write a self-contained HTML page with the graph drawn as SVG to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<Utf8PathBuf>,
}

/// The text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

impl GraphArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let graph = self.graph(project)?;
        if let Some(path) = &self.html {
            let page = xtask_engine::graph::html_page(&graph);
            xtask_engine::atomic::write_atomically(path, page.as_bytes())
                .with_context(|| format!("failed to write the graph to {path}"))?;
            eprintln!("graph written to {path}");
        }
        if self.html.is_none() || self.format.is_some() {
            let text = match self.format.unwrap_or(Format::Mermaid) {
                Format::Mermaid => xtask_engine::graph::mermaid(&graph),
                Format::Dot => xtask_engine::graph::dot(&graph),
            };
            print!("{text}");
        }
        if let Some(against) = &graph.compared_with {
            let count = |m| graph.nodes.iter().filter(|n| n.mark == m).count();
            eprintln!(
                "{} changed, {} affected, {} unchanged of {} targets (compared with {against})",
                count(Mark::Changed),
                count(Mark::Affected),
                count(Mark::Unchanged),
                graph.nodes.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The graph, marked when a comparison was asked for.
    fn graph(&self, project: &Project) -> Result<Graph> {
        let state = match (self.changed, &self.base) {
            (true, None) => Some(project.state_store().load()?),
            _ => None,
        };
        if let Some(why) = state.as_ref().and_then(|s| s.discarded.as_ref()) {
            eprintln!("warning: {why}; every target counts as changed");
        }
        // The handle is part of the targets; nothing asks the engine anything, but for a
        // base xtask.toml names without a digest (see `bases_as_last_built`).
        let engine = Arc::new(DockerEngine::new());
        let bases = match &state {
            Some(state) => bases_as_last_built(project, state, &engine)?,
            None => Bases::pinned(&project.config.python_base)?,
        };
        let targets = project.targets_with(&engine, &bases, None)?;
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        let order = closure(&targets, &ids)?;
        let mut nodes: Vec<Node> = order
            .iter()
            .map(|t| Node { id: t.id.clone(), kind: t.builder.kind().to_owned(), deps: t.deps.clone(), mark: Mark::Unchanged, why: None })
            .collect();
        let compared_with = if let Some(state) = &state {
            let hashes = crate::changes::input_hashes(&order, &project.file_cache())?;
            for node in &mut nodes {
                let (hash, inputs) = &hashes[&node.id];
                (node.mark, node.why) = match state.targets.get(&node.id) {
                    None => (Mark::Changed, Some("never built here".to_owned())),
                    Some(rec) if &rec.input_hash == hash => (Mark::Unchanged, None),
                    Some(rec) => classify(inputs.changes(&rec.inputs)),
                };
            }
            Some("the last build recorded here".to_owned())
        } else if let Some(base) = &self.base {
            let changes: BTreeMap<String, Vec<String>> =
                crate::changes::changed_targets(project, base, None)?.into_iter().map(|c| (c.id, c.why)).collect();
            for node in &mut nodes {
                let Some(why) = changes.get(&node.id) else { continue };
                // `ci changes` gives each change as text; a dependency's reads "dependency <id> ...".
                let own: Vec<&String> = why.iter().filter(|w| !w.starts_with("dependency ")).collect();
                (node.mark, node.why) =
                    if own.is_empty() { (Mark::Affected, Some(why.join(", "))) } else { (Mark::Changed, Some(summary(&own))) };
            }
            Some(format!("{base} (where this branch forked from it)"))
        } else {
            None
        };
        Ok(Graph { title: format!("Build targets of {}", xtask_repo::names().project()), nodes, compared_with })
    }
}

/// Changed (its own inputs differ) or affected (only what it is built from differs), and why.
fn classify(changes: Vec<Change>) -> (Mark, Option<String>) {
    let (deps, own): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(|c| matches!(c, Change::Dependency { .. }));
    if own.is_empty() {
        (Mark::Affected, Some(deps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")))
    } else {
        (Mark::Changed, Some(BuildReason::InputsChanged(own).to_string()))
    }
}

/// The first change and how many more.
fn summary(changes: &[&String]) -> String {
    match changes {
        [] => String::new(),
        [one] => (*one).clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// The bases as the last recorded builds used them: a role whose images were last built
/// on the Debian stand-in is hashed on it, as the next build on this machine would be
/// while the upstream base is missing here (without asking the engine whether it is).
fn bases_as_last_built(project: &Project, state: &State, engine: &DockerEngine) -> Result<Bases> {
    let cfg = &project.config.python_base;
    // A base pinned by digest counts by its digest. One named without a digest counts by
    // the id of the image the engine holds under that name, as planning hashes it: only
    // then is the engine asked (this repository pins both).
    let unpinned = [&cfg.lambda, &cfg.service].iter().any(|r| ImageRef::parse(r).is_ok_and(|i| i.digest.is_none()));
    let mut bases = if unpinned && cfg.source == BaseSource::Upstream { Bases::resolve(cfg, engine, true)? } else { Bases::pinned(cfg)? };
    let on_stand_in = |id: &str| state.targets.get(id).is_some_and(|r| r.inputs.deps.contains_key(python_base_id()));
    let reason = || Base::StandIn { reason: "the last build recorded here was on the stand-in".into() };
    if on_stand_in(lambda_base_id()) {
        bases.set(Role::Lambda, reason());
    }
    if project.services()?.iter().any(|s| on_stand_in(&service_image(s))) {
        bases.set(Role::Service, reason());
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtask_engine::inputs::ChangeKind;

    #[test]
    fn a_target_whose_only_change_is_a_dependency_is_affected_not_changed() {
        let dep = Change::Dependency { id: "tradai/lambda-base".into(), kind: ChangeKind::Modified };
        let file = Change::File { path: "handler.py".into(), kind: ChangeKind::Modified };
        assert_eq!(classify(vec![dep.clone()]), (Mark::Affected, Some("dependency tradai/lambda-base changed".into())));
        assert_eq!(classify(vec![dep, file]), (Mark::Changed, Some("file handler.py modified".into())));
    }
}
