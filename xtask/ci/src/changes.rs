//! What a set of changed files affects: the test matrix entries to run and the images to
//! rebuild, each with the reason, derived from the [`Repo`] model.
//!
//! The rules, in the order they are applied:
//! 1. A workspace file (`pyproject.toml`, `uv.lock`, `Cargo.*`, `.python-version`)
//!    affects every matrix entry and the Lambda tests.
//! 2. A package is affected by its own files.
//! 3. A change to the shared library's source affects the packages whose files import the
//!    changed modules, or a module that imports them (followed through the library's own
//!    imports and through the packages they depend on). Its `pyproject.toml`, its
//!    `__init__.py` or a non-Python file under `src/` affect every package that imports it.
//! 4. A change to any other library's `pyproject.toml` or `src/` affects the packages that
//!    depend on it (declared in `[project] dependencies` or imported), transitively.
//! 5. Integration tests run for their own files and imports, when the shared library is
//!    affected, or when two or more packages are.
//! 6. Images follow the build engine's inputs: a Lambda image is affected by its context
//!    (`.dockerignore` applied), by `lambdas/base/` and by the shared library's wheel
//!    inputs; a service image by its context, by the wheel inputs of the workspace
//!    packages it depends on, and by `uv.lock` and the root `pyproject.toml`; every image
//!    by the tool's configuration and the Python base recipe.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::repo::{LAMBDAS_DIR, Repo, WORKSPACE_FILES, coverage_threshold, is_test_file, wheel_filter};

/// One job of the GitHub Actions test matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixEntry {
    pub package: String,
    pub path: String,
    pub coverage: u8,
}

/// `strategy.matrix` of the test job: `{"include": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Matrix {
    pub include: Vec<MatrixEntry>,
}

/// The result of change detection, printed as JSON by `cargo xtask ci changes`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Affected {
    /// The files that changed, as given.
    pub changed_files: Vec<String>,
    /// True when everything was selected (`--all`, or a workspace file changed).
    pub all: bool,
    /// The affected matrix entries, in matrix order.
    pub packages: Vec<String>,
    /// The test matrix of those entries.
    pub matrix: Matrix,
    /// Whether any matrix entry is affected (an empty matrix is an error in Actions).
    pub any: bool,
    /// Whether the integration tests run.
    pub integration: bool,
    /// Whether the Lambda handler tests (`lambdas/`) run.
    pub lambda_tests: bool,
    /// Whether the shared library's wheel is rebuilt.
    pub wheel: bool,
    /// Whether the lambda-base image is rebuilt.
    pub lambda_base: bool,
    /// Lambda functions whose image is affected, by name.
    pub lambdas: Vec<String>,
    /// The same as image names (`tradai/lambda-<name>`).
    pub lambda_images: Vec<String>,
    /// Services whose image is affected, by name.
    pub services: Vec<String>,
    /// The same as image names (`tradai/<name>`).
    pub service_images: Vec<String>,
    /// Whether any image is affected.
    pub images: bool,
    /// Whether a Pulumi program changed (`infra/`).
    pub infra: bool,
    /// Whether documentation changed (`docs/`, any `*.md`, `mkdocs.yml`).
    pub docs: bool,
    /// Whether the build tool or the workflows changed (`xtask/`, `.cargo/`,
    /// `.github/`, `Cargo.*`): the tool's own tests run.
    pub rust: bool,
    /// Whether a workflow changed (`.github/`): the workflow checks run.
    pub workflows: bool,
    /// Why each target is affected: `package:<name>`, `lambda-tests`, `image:<image>`.
    pub reasons: BTreeMap<String, Vec<String>>,
}

/// Everything affected, as on a push, a tag or a scheduled run.
pub fn everything(repo: &Repo) -> Affected {
    let mut a = Affected { all: true, ..Affected::default() };
    let why = "full run (--all)".to_owned();
    for p in &repo.packages {
        a.reasons.entry(format!("package:{}", p.name)).or_default().push(why.clone());
    }
    a.lambda_tests = true;
    a.wheel = repo.shared.is_some();
    a.lambda_base = repo.lambda_base.is_some();
    a.lambdas = repo.lambdas.iter().map(|l| l.name.clone()).collect();
    a.services = repo.services.iter().map(|s| s.context.name.clone()).collect();
    a.infra = true;
    a.docs = true;
    a.rust = true;
    a.workflows = true;
    finish(repo, a)
}

/// What `changed` (paths relative to the root, `/`-separated) affects.
pub fn analyze(repo: &Repo, changed: &[String]) -> Affected {
    let mut a = Affected { changed_files: changed.to_vec(), ..Affected::default() };
    let hit = |a: &mut Affected, key: String, why: String| {
        let list = a.reasons.entry(key).or_default();
        if list.len() < 5 && !list.contains(&why) {
            list.push(why);
        }
    };

    let wheel_filter = wheel_filter();
    // Shared-library modules that changed; `None` in the set stands for "the whole
    // library" (its pyproject, __init__ or data files).
    let mut shared_changed: BTreeSet<String> = BTreeSet::new();
    let mut shared_whole: Option<String> = None;
    // Libraries whose packaged code changed (rule 4), with the first file.
    let mut libs_changed: BTreeMap<String, String> = BTreeMap::new();
    let mut all_images: Option<String> = None;
    let mut service_lock: Option<String> = None;

    for file in changed {
        let file = file.as_str();
        if WORKSPACE_FILES.contains(&file) {
            a.all = true;
            for p in &repo.packages {
                hit(&mut a, format!("package:{}", p.name), format!("workspace file {file}"));
            }
            hit(&mut a, "lambda-tests".into(), format!("workspace file {file}"));
            a.lambda_tests = true;
            if file == "uv.lock" || file == "pyproject.toml" {
                service_lock.get_or_insert_with(|| file.to_owned());
            }
        }
        for p in &repo.packages {
            let Some(rel) = under(file, &p.dir) else { continue };
            hit(&mut a, format!("package:{}", p.name), format!("own file {file}"));
            let packaged = rel == "pyproject.toml" || rel.starts_with("src/");
            if !packaged || is_test_file(rel) {
                continue;
            }
            match &repo.shared {
                Some(shared) if shared.package == p.name => match shared.module_of(rel) {
                    Some(m) if m != shared.import_name => {
                        shared_changed.insert(m.to_owned());
                    }
                    _ => {
                        shared_whole.get_or_insert_with(|| file.to_owned());
                    }
                },
                _ => {
                    libs_changed.entry(p.name.clone()).or_insert_with(|| file.to_owned());
                }
            }
        }
        if let Some(rel) = under(file, LAMBDAS_DIR) {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            if name != "Dockerfile" && name != ".dockerignore" && !name.ends_with(".md") {
                a.lambda_tests = true;
                hit(&mut a, "lambda-tests".into(), format!("own file {file}"));
            }
        }
        if repo.image_inputs.iter().any(|input| file == input || input.ends_with('/') && file.starts_with(input.as_str())) {
            all_images.get_or_insert_with(|| file.to_owned());
        }
        if let Some(base) = &repo.lambda_base
            && let Some(rel) = under(file, &base.dir)
            && base.includes(rel)
        {
            a.lambda_base = true;
            hit(&mut a, format!("image:{}", base.image), format!("context file {file}"));
        }
        if let Some(shared) = &repo.shared
            && let Some(rel) = under(file, &shared.dir)
            && !wheel_filter.is_excluded(rel)
        {
            a.wheel = true;
            hit(&mut a, "wheel".into(), format!("wheel input {file}"));
        }
        for l in &repo.lambdas {
            if let Some(rel) = under(file, &l.dir)
                && l.includes(rel)
            {
                a.lambdas.push(l.name.clone());
                hit(&mut a, format!("image:{}", l.image), format!("context file {file}"));
            }
        }
        for s in &repo.services {
            if let Some(rel) = under(file, &s.context.dir)
                && s.context.includes(rel)
            {
                a.services.push(s.context.name.clone());
                hit(&mut a, format!("image:{}", s.context.image), format!("context file {file}"));
            }
        }
        if file.starts_with("infra/") {
            a.infra = true;
        }
        if file.starts_with("docs/") || file.ends_with(".md") || file == "mkdocs.yml" {
            a.docs = true;
        }
        if ["xtask/", ".cargo/", ".github/"].iter().any(|p| file.starts_with(p)) || file == "Cargo.toml" || file == "Cargo.lock"
        {
            a.rust = true;
        }
        if file.starts_with(".github/") {
            a.workflows = true;
        }
    }

    // Rule 3: the shared library, module by module.
    if let Some(shared) = &repo.shared {
        let affected_modules = shared.dependents(&shared_changed);
        for p in &repo.packages {
            if p.name == shared.package {
                continue;
            }
            let watch = repo.shared_watch(&p.name);
            if let Some(file) = &shared_whole
                && !watch.is_empty()
            {
                hit(&mut a, format!("package:{}", p.name), format!("{file} changes all of {}", shared.import_name));
                continue;
            }
            if let Some(m) = watch.iter().find(|m| affected_modules.contains(*m)) {
                hit(&mut a, format!("package:{}", p.name), format!("{} changed and it uses {m}", describe(&shared_changed)));
            }
        }
        let lambda_hit = if shared_whole.is_some() && !repo.lambda_shared_imports.is_empty() {
            shared_whole.clone()
        } else {
            repo.lambda_shared_imports
                .iter()
                .find(|m| affected_modules.contains(*m))
                .map(|m| format!("{} changed and the Lambdas use {m}", describe(&shared_changed)))
        };
        if let Some(why) = lambda_hit {
            a.lambda_tests = true;
            hit(&mut a, "lambda-tests".into(), why);
        }
    }

    // Rule 4: other libraries, whole.
    for p in &repo.packages {
        for dep in repo.transitive_deps(&p.name) {
            if let Some(file) = libs_changed.get(&dep) {
                hit(&mut a, format!("package:{}", p.name), format!("depends on {dep} ({file})"));
            }
        }
    }

    // Rule 5: integration.
    if repo.package("integration").is_some() {
        let affected: Vec<&str> = repo
            .packages
            .iter()
            .filter(|p| p.name != "integration" && a.reasons.contains_key(&format!("package:{}", p.name)))
            .map(|p| p.name.as_str())
            .collect();
        if let Some(shared) = &repo.shared
            && affected.contains(&shared.package.as_str())
        {
            hit(&mut a, "package:integration".into(), format!("{} is affected", shared.package));
        }
        if affected.len() >= 2 {
            hit(&mut a, "package:integration".into(), format!("{} packages are affected ({})", affected.len(), affected.join(", ")));
        }
    }

    // Rule 6: images.
    if let Some(file) = &all_images {
        a.wheel |= repo.shared.is_some();
        a.lambda_base |= repo.lambda_base.is_some();
        a.lambdas.extend(repo.lambdas.iter().map(|l| l.name.clone()));
        a.services.extend(repo.services.iter().map(|s| s.context.name.clone()));
        for image in repo.lambdas.iter().map(|l| &l.image).chain(repo.services.iter().map(|s| &s.context.image)) {
            hit(&mut a, format!("image:{image}"), format!("every image is built from {file}"));
        }
    }
    if a.wheel && repo.lambda_base.is_some() {
        a.lambda_base = true;
    }
    if a.lambda_base {
        for l in &repo.lambdas {
            a.lambdas.push(l.name.clone());
            hit(&mut a, format!("image:{}", l.image), "lambda-base is rebuilt".into());
        }
    }
    for s in &repo.services {
        let Some(package) = &s.package else { continue };
        if let Some(file) = &service_lock {
            a.services.push(s.context.name.clone());
            hit(&mut a, format!("image:{}", s.context.image), format!("locked dependencies ({file})"));
        }
        for dep in repo.transitive_deps(package) {
            let Some(d) = repo.package(&dep) else { continue };
            let touched = changed.iter().find(|f| under(f, &d.dir).is_some_and(|rel| !wheel_filter.is_excluded(rel)));
            if let Some(file) = touched {
                a.services.push(s.context.name.clone());
                hit(&mut a, format!("image:{}", s.context.image), format!("its wheelhouse carries {dep} ({file})"));
            }
        }
    }
    finish(repo, a)
}

/// Sorts, deduplicates and derives the summary fields from the reasons.
fn finish(repo: &Repo, mut a: Affected) -> Affected {
    a.packages =
        repo.packages.iter().filter(|p| a.all || a.reasons.contains_key(&format!("package:{}", p.name))).map(|p| p.name.clone()).collect();
    if a.all {
        a.lambda_tests = true;
    }
    a.integration = a.packages.iter().any(|p| p == "integration");
    a.matrix = Matrix {
        include: a
            .packages
            .iter()
            .filter_map(|name| repo.package(name))
            .map(|p| MatrixEntry { package: p.name.clone(), path: p.dir.clone(), coverage: coverage_threshold(&p.name) })
            .collect(),
    };
    a.any = !a.packages.is_empty();
    a.lambdas.sort();
    a.lambdas.dedup();
    a.services.sort();
    a.services.dedup();
    if a.lambda_base && !a.reasons.contains_key("image:tradai/lambda-base") {
        let why = if a.wheel { "the wheel is rebuilt" } else { "full run (--all)" };
        a.reasons.entry("image:tradai/lambda-base".into()).or_default().push(why.into());
    }
    a.lambda_images = a.lambdas.iter().filter_map(|n| repo.lambdas.iter().find(|l| &l.name == n)).map(|l| l.image.clone()).collect();
    a.service_images =
        a.services.iter().filter_map(|n| repo.services.iter().find(|s| &s.context.name == n)).map(|s| s.context.image.clone()).collect();
    a.images = a.wheel || a.lambda_base || !a.lambdas.is_empty() || !a.services.is_empty();
    a
}

/// `file` relative to `dir` when it lies below it.
fn under<'a>(file: &'a str, dir: &str) -> Option<&'a str> {
    file.strip_prefix(dir)?.strip_prefix('/').filter(|rest| !rest.is_empty())
}

fn describe(modules: &BTreeSet<String>) -> String {
    let list: Vec<&str> = modules.iter().map(String::as_str).collect();
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_requires_a_path_boundary() {
        assert_eq!(under("libs/tradai-data/src/x.py", "libs/tradai-data"), Some("src/x.py"));
        assert_eq!(under("libs/tradai-database/x.py", "libs/tradai-data"), None);
        assert_eq!(under("libs/tradai-data", "libs/tradai-data"), None);
    }
}
