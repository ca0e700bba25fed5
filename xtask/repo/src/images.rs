//! The images the repository builds, discovered from their Dockerfiles: every
//! `lambdas/<name>/Dockerfile` but `base` is a Lambda function, `lambdas/base` is the
//! image they are all built on, every `services/<name>/Dockerfile` is a service. Each
//! comes with its build context and its image repository name.
//!
//! A folder that looks like one but cannot be built or named is reported, never skipped
//! in silence: a Lambda folder with a handler and no Dockerfile, or a name that cannot be
//! an image, function or ECS service name, is an error; a folder that is no image at all
//! is a warning.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::Error;
pub use crate::deployment::LAMBDA_BASE_DIR_NAME;
use crate::deployment::{Deployment, NAME_RULE, is_valid_name};
use crate::python::read_project;

/// The folder of the Lambda functions (`lambdas/<name>/Dockerfile`) and of their tests.
pub const LAMBDAS_DIR: &str = "lambdas";
/// The folder of the services (`services/<name>/Dockerfile`).
pub const SERVICES_DIR: &str = "services";

/// Where an image is built from, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildContext {
    /// The context folder.
    pub dir: Utf8PathBuf,
    /// Its Dockerfile.
    pub dockerfile: Utf8PathBuf,
}

impl BuildContext {
    fn of(dir: Utf8PathBuf) -> BuildContext {
        BuildContext { dockerfile: dir.join("Dockerfile"), dir }
    }
}

/// A Lambda function's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lambda {
    /// The function's name, its folder's (`health-check`).
    pub name: String,
    /// Its image repository (`tradai/lambda-health-check`).
    pub image: String,
    pub context: BuildContext,
}

/// A service's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Its folder's name (`backend`).
    pub name: String,
    /// Its image repository (`tradai/backend`).
    pub image: String,
    pub context: BuildContext,
    /// Where its Python dependencies come from; `None` when it states none (an error only
    /// for commands that build it).
    pub source: Option<ServiceSource>,
}

/// Where a service's wheels come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ServiceSource {
    /// A Python project: its `[project] name`, and the workspace members it is built from
    /// (itself and, transitively, every member its `[project] dependencies` name),
    /// relative and sorted, so that a change to a library it does not use never
    /// rebuilds its image.
    Workspace { project: String, members: Vec<Utf8PathBuf> },
    /// A pinned `requirements.txt`.
    Requirements(Utf8PathBuf),
}

/// What was found under `lambdas/` and `services/`.
pub(crate) struct Found {
    pub lambda_base: BuildContext,
    pub lambdas: Vec<Lambda>,
    pub services: Vec<Service>,
    pub warnings: Vec<String>,
}

/// One workspace member as the service closure needs it: folder, project, dependencies.
pub(crate) struct MemberDeps<'a> {
    pub dir: &'a str,
    pub project: Option<&'a str>,
    pub dependencies: &'a [String],
}

/// Finds the Lambdas and services under `root`, checking their names.
pub(crate) fn discover(root: &Utf8Path, deployment: &Deployment, members: &[MemberDeps<'_>]) -> Result<Found, Error> {
    let names = deployment.names();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut lambdas = Vec::new();
    let mut without_dockerfile = Vec::new();
    for (name, dir) in folders(root, LAMBDAS_DIR)? {
        if name == LAMBDA_BASE_DIR_NAME {
            continue;
        }
        let rel = Utf8PathBuf::from(LAMBDAS_DIR).join(&name);
        if dir.join("Dockerfile").is_file() {
            if !is_valid_name(&name) {
                problems.push(format!("{rel}: `{name}` {NAME_RULE}; rename the folder"));
            } else if let Some(why) = names.lambda_name_problem(&name, &deployment.environments) {
                problems.push(format!("{rel}: {why}; rename the folder to a shorter name"));
            } else {
                lambdas.push(Lambda { image: names.lambda_image(&name), name, context: BuildContext::of(rel) });
            }
        } else if dir.join("handler.py").is_file() {
            without_dockerfile.push(name);
        } else {
            warnings.push(format!("{rel}/ has no Dockerfile and no handler.py: it is not a Lambda function and is not built"));
        }
    }
    if !without_dockerfile.is_empty() {
        problems.push(format!(
            "lambda folder(s) without a Dockerfile: {}; add lambdas/<name>/Dockerfile (FROM ${{BASE_IMAGE}}, see lambdas/README.md)",
            without_dockerfile.join(", ")
        ));
    }

    let mut services = Vec::new();
    for (name, dir) in folders(root, SERVICES_DIR)? {
        let rel = Utf8PathBuf::from(SERVICES_DIR).join(&name);
        if !dir.join("Dockerfile").is_file() {
            warnings.push(format!("{rel}/ has no Dockerfile: it is not a service image and is not built"));
            continue;
        }
        if !is_valid_name(&name) {
            problems.push(format!("{rel}: `{name}` {NAME_RULE}; rename the folder"));
            continue;
        }
        let source = service_source(root, &rel, members)?;
        services.push(Service { image: names.service_image(&name), name, context: BuildContext::of(rel), source });
    }

    // Two folders must never publish to the same repository (a service `lambda-x` and a
    // Lambda `x`, or a service named like a base).
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    owners.entry(names.lambda_base_image().to_owned()).or_default().push(format!("{LAMBDAS_DIR}/{LAMBDA_BASE_DIR_NAME}"));
    owners.entry(names.python_base_image().to_owned()).or_default().push("the Debian stand-in base".to_owned());
    for l in &lambdas {
        owners.entry(l.image.clone()).or_default().push(l.context.dir.to_string());
    }
    for s in &services {
        owners.entry(s.image.clone()).or_default().push(s.context.dir.to_string());
    }
    for (image, by) in owners.iter().filter(|(_, by)| by.len() > 1) {
        problems.push(format!("{} would all be the image {image}; rename one of the folders", by.join(" and ")));
    }

    if !problems.is_empty() {
        return Err(Error::Layout(problems.join("\n")));
    }
    let lambda_base = BuildContext::of(Utf8PathBuf::from(LAMBDAS_DIR).join(LAMBDA_BASE_DIR_NAME));
    Ok(Found { lambda_base, lambdas, services, warnings })
}

/// The sub-folders of `root/parent` that can be images, by name, sorted: hidden folders
/// and Python's `__pycache__`-like ones are never images. A missing parent has none.
fn folders(root: &Utf8Path, parent: &str) -> Result<Vec<(String, Utf8PathBuf)>, Error> {
    let dir = root.join(parent);
    let entries = match dir.read_dir_utf8() {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io { path: dir.clone(), source })?;
        let name = entry.file_name();
        if name.starts_with('.') || name.starts_with("__") || !entry.path().is_dir() {
            continue;
        }
        out.push((name.to_owned(), entry.path().to_owned()));
    }
    out.sort();
    Ok(out)
}

/// A service's wheel source: its own `pyproject.toml` (with the workspace members it
/// depends on), else its `requirements.txt`.
fn service_source(root: &Utf8Path, rel: &Utf8Path, members: &[MemberDeps<'_>]) -> Result<Option<ServiceSource>, Error> {
    let (project, dependencies) = read_project(&root.join(rel))?;
    if let Some(project) = project {
        return Ok(Some(ServiceSource::Workspace { project, members: closure(rel.as_str(), &dependencies, members) }));
    }
    let requirements = rel.join("requirements.txt");
    Ok(root.join(&requirements).is_file().then_some(ServiceSource::Requirements(requirements)))
}

/// `dir` and every member reachable from `dependencies` through the members' declared
/// dependencies, sorted.
fn closure(dir: &str, dependencies: &[String], members: &[MemberDeps<'_>]) -> Vec<Utf8PathBuf> {
    let by_project: BTreeMap<String, &MemberDeps<'_>> =
        members.iter().filter_map(|m| m.project.map(|p| (crate::python::normalize(p), m))).collect();
    let mut seen = vec![dir.to_owned()];
    let mut queue: Vec<&[String]> = vec![dependencies];
    while let Some(deps) = queue.pop() {
        for dep in deps {
            if let Some(member) = by_project.get(dep)
                && !seen.iter().any(|s| s == member.dir)
            {
                seen.push(member.dir.to_owned());
                queue.push(member.dependencies);
            }
        }
    }
    // Sorted as paths (component by component), as the wheelhouse hashes them.
    let mut out: Vec<Utf8PathBuf> = seen.into_iter().map(Utf8PathBuf::from).collect();
    out.sort();
    out
}
