//! What a set of changed files affects: the test matrix entries to run (rules 1 to 5,
//! derived from the [`Repository`] model and its Python imports), and the images to
//! rebuild (rule 6, handed in by the build engine), each with the reason.
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
//! 6. Images are the build engine's own answer: a target is affected exactly when its
//!    input hash differs between the two trees ([`Affected::set_targets`]); nothing here
//!    re-codes what an image is built from.
//! 7. The tool's own Rust crates follow the Cargo workspace's crate graph
//!    ([`RustWorkspace`], read with `cargo metadata`): a crate is affected by its own
//!    files, by a file it compiles in from elsewhere, and by any crate it depends on or
//!    runs in its tests; the Cargo workspace files, the toolchain and the lockfiles that
//!    pin the tool's own Python tools affect every crate ([`Affected::set_rust`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use xtask_repo::{LAMBDAS_DIR, Repository, is_test_file};

/// Files at the root that change every package's environment: any change to them runs
/// the whole test matrix.
pub const WORKSPACE_FILES: &[&str] = &["pyproject.toml", "uv.lock", "Cargo.toml", "Cargo.lock", ".python-version"];

/// What a build target is, for the summary fields of [`Affected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRole {
    /// The shared library's wheel.
    Wheel,
    /// The image every Lambda is built on.
    LambdaBase,
    /// A Lambda function's image, by function name.
    Lambda(String),
    /// A service's image, by service name.
    Service(String),
    /// Anything else (a service's wheelhouse, the stand-in base).
    Other,
}

/// One target whose input hash differs between the two trees, and what changed.
#[derive(Debug, Clone)]
pub struct TargetChange {
    pub id: String,
    pub role: TargetRole,
    pub why: Vec<String>,
}

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
    /// Whether a crate of the tool's Cargo workspace is affected (rule 7): its own tests
    /// run (`cargo xtask ci rust`).
    pub rust: bool,
    /// The affected crates, by package name, sorted.
    pub rust_crates: Vec<String>,
    /// Whether a workflow changed (`.github/`): the workflow checks run.
    pub workflows: bool,
    /// Why each target is affected: `package:<name>`, `lambda-tests`, `image:<image>`,
    /// `target:<id>` (the wheel and the wheelhouses images are built from).
    pub reasons: BTreeMap<String, Vec<String>>,
}

/// Everything affected, as on a push, a tag or a scheduled run.
pub fn everything(repo: &Repository) -> Affected {
    let mut a = Affected { all: true, ..Affected::default() };
    let why = "full run (--all)".to_owned();
    for p in repo.matrix() {
        a.reasons.entry(format!("package:{}", p.name)).or_default().push(why.clone());
    }
    a.lambda_tests = true;
    a.infra = true;
    a.docs = true;
    a.workflows = true;
    finish(repo, a)
}

/// What `changed` (paths relative to the root, `/`-separated) affects. Reads the
/// repository's imports (once per model).
pub fn analyze(repo: &Repository, changed: &[String]) -> Result<Affected, xtask_repo::Error> {
    let imports = repo.imports()?;
    let mut a = Affected { changed_files: changed.to_vec(), ..Affected::default() };
    let hit = |a: &mut Affected, key: String, why: String| {
        let list = a.reasons.entry(key).or_default();
        if list.len() < 5 && !list.contains(&why) {
            list.push(why);
        }
    };

    // Shared-library modules that changed; `None` in the set stands for "the whole
    // library" (its pyproject, __init__ or data files).
    let mut shared_changed: BTreeSet<String> = BTreeSet::new();
    let mut shared_whole: Option<String> = None;
    // Libraries whose packaged code changed (rule 4), with the first file.
    let mut libs_changed: BTreeMap<String, String> = BTreeMap::new();

    for file in changed {
        let file = file.as_str();
        if WORKSPACE_FILES.contains(&file) {
            a.all = true;
            for p in repo.matrix() {
                hit(&mut a, format!("package:{}", p.name), format!("workspace file {file}"));
            }
            hit(&mut a, "lambda-tests".into(), format!("workspace file {file}"));
            a.lambda_tests = true;
        }
        for p in repo.matrix() {
            let Some(rel) = under(file, &p.dir) else { continue };
            hit(&mut a, format!("package:{}", p.name), format!("own file {file}"));
            let packaged = rel == "pyproject.toml" || rel.starts_with("src/");
            if !packaged || is_test_file(rel) {
                continue;
            }
            match &imports.shared {
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
        if file.starts_with("infra/") {
            a.infra = true;
        }
        if file.starts_with("docs/") || file.ends_with(".md") || file == "mkdocs.yml" {
            a.docs = true;
        }
        if file.starts_with(".github/") {
            a.workflows = true;
        }
    }

    // Rule 3: the shared library, module by module.
    if let Some(shared) = &imports.shared {
        let affected_modules = shared.dependents(&shared_changed);
        for p in repo.matrix() {
            if p.name == shared.package {
                continue;
            }
            let watch = imports.shared_watch(&p.name);
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
        let lambda_hit = if shared_whole.is_some() && !imports.lambda_shared_imports.is_empty() {
            shared_whole.clone()
        } else {
            imports
                .lambda_shared_imports
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
    for p in repo.matrix() {
        for dep in imports.transitive_deps(&p.name) {
            if let Some(file) = libs_changed.get(&dep) {
                hit(&mut a, format!("package:{}", p.name), format!("depends on {dep} ({file})"));
            }
        }
    }

    // Rule 5: integration.
    if repo.matrix().any(|s| s.kind == xtask_repo::SuiteKind::Integration) {
        let affected: Vec<&str> = repo
            .matrix()
            .filter(|p| p.name != "integration" && a.reasons.contains_key(&format!("package:{}", p.name)))
            .map(|p| p.name.as_str())
            .collect();
        if let Some(shared) = &imports.shared
            && affected.contains(&shared.package.as_str())
        {
            hit(&mut a, "package:integration".into(), format!("{} is affected", shared.package));
        }
        if affected.len() >= 2 {
            hit(&mut a, "package:integration".into(), format!("{} packages are affected ({})", affected.len(), affected.join(", ")));
        }
    }

    Ok(finish(repo, a))
}

/// Sorts, deduplicates and derives the summary fields from the reasons.
fn finish(repo: &Repository, mut a: Affected) -> Affected {
    a.packages =
        repo.matrix().filter(|p| a.all || a.reasons.contains_key(&format!("package:{}", p.name))).map(|p| p.name.clone()).collect();
    if a.all {
        a.lambda_tests = true;
    }
    a.integration = a.packages.iter().any(|p| p == "integration");
    a.matrix = Matrix {
        include: a
            .packages
            .iter()
            .filter_map(|name| repo.suite(name))
            .map(|p| MatrixEntry { package: p.name.clone(), path: p.dir.clone(), coverage: p.coverage.unwrap_or_default() })
            .collect(),
    };
    a.any = !a.packages.is_empty();
    a
}

impl Affected {
    /// Rule 6: the targets the build engine found changed (their input hashes differ
    /// between the two trees), with what changed in each.
    pub fn set_targets(&mut self, changed: &[TargetChange]) {
        for c in changed {
            match &c.role {
                TargetRole::Wheel => self.wheel = true,
                TargetRole::LambdaBase => self.lambda_base = true,
                TargetRole::Lambda(name) => {
                    self.lambdas.push(name.clone());
                    self.lambda_images.push(c.id.clone());
                }
                TargetRole::Service(name) => {
                    self.services.push(name.clone());
                    self.service_images.push(c.id.clone());
                }
                TargetRole::Other => {}
            }
            // Images under `image:`, the wheel and the wheelhouses they are built from
            // under `target:`.
            let kind = if matches!(c.role, TargetRole::Wheel | TargetRole::Other) { "target" } else { "image" };
            let list = self.reasons.entry(format!("{kind}:{}", c.id)).or_default();
            for why in c.why.iter().take(5) {
                if !list.contains(why) {
                    list.push(why.clone());
                }
            }
        }
        for v in [&mut self.lambdas, &mut self.lambda_images, &mut self.services, &mut self.service_images] {
            v.sort();
            v.dedup();
        }
        self.images = self.wheel || self.lambda_base || !self.lambdas.is_empty() || !self.services.is_empty();
    }
}

/// Files that affect every crate of the tool's Cargo workspace: its manifest and lock,
/// the toolchain pin, nextest's configuration, and the uv workspace's `pyproject.toml`
/// and `uv.lock`, which pin the Python tools the tool provisions and its tests run
/// (moto, pypiserver, the workflow linters).
pub const RUST_WORKSPACE_FILES: &[&str] =
    &["Cargo.toml", "Cargo.lock", "rust-toolchain", "rust-toolchain.toml", ".config/nextest.toml", "pyproject.toml", "uv.lock"];

/// Folders whose files affect every crate (Cargo's configuration: the `xtask` alias,
/// build flags).
pub const RUST_WORKSPACE_DIRS: &[&str] = &[".cargo/"];

/// One crate of the tool's Cargo workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RustCrate {
    /// The package name (`xtask-engine`).
    pub name: String,
    /// Its folder relative to the root, `/`-separated; empty for a package at the root.
    pub dir: String,
    /// The workspace crates it depends on: normal, build and dev dependencies, and the
    /// ones its tests build and run by name (`cargo build -p <crate>`), which no manifest
    /// records.
    pub deps: BTreeSet<String>,
    /// Files outside its folder that it compiles in (`include_str!`), relative to the root.
    pub inputs: BTreeSet<String>,
}

/// The tool's Cargo workspace as rule 7 needs it: the member crates and their graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RustWorkspace {
    pub crates: Vec<RustCrate>,
}

impl RustWorkspace {
    /// The crate whose folder holds `file`: the deepest one, since crate folders nest
    /// (`xtask/` holds `xtask/engine/`).
    pub fn owner(&self, file: &str) -> Option<&RustCrate> {
        self.crates.iter().filter(|c| c.dir.is_empty() || under(file, &c.dir).is_some()).max_by_key(|c| c.dir.len())
    }

    /// The crates `changed` affects, each with why (at most five reasons): their own
    /// files, files they compile in, the workspace files, then every crate that depends on
    /// an affected one, transitively.
    pub fn affected(&self, changed: &[String]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut hit = |name: &str, why: String| {
            let list = out.entry(name.to_owned()).or_default();
            if list.len() < 5 && !list.contains(&why) {
                list.push(why);
            }
        };
        for file in changed {
            if RUST_WORKSPACE_FILES.contains(&file.as_str()) || RUST_WORKSPACE_DIRS.iter().any(|d| file.starts_with(d)) {
                for c in &self.crates {
                    hit(&c.name, format!("workspace file {file}"));
                }
                continue;
            }
            if let Some(c) = self.owner(file) {
                hit(&c.name, format!("own file {file}"));
            }
            for c in self.crates.iter().filter(|c| c.inputs.contains(file)) {
                hit(&c.name, format!("compiles in {file}"));
            }
        }
        // Dependents, until nothing new is reached.
        loop {
            let reached: Vec<(String, String)> = self
                .crates
                .iter()
                .filter(|c| !out.contains_key(&c.name))
                .filter_map(|c| c.deps.iter().find(|d| out.contains_key(*d)).map(|d| (c.name.clone(), format!("depends on {d}"))))
                .collect();
            if reached.is_empty() {
                break;
            }
            for (name, why) in reached {
                out.entry(name).or_default().push(why);
            }
        }
        out
    }
}

impl Affected {
    /// Rule 7: the crates of the tool's own workspace that `changed_files` affect, or all
    /// of them when `everything` (a push, a tag, a scheduled run). `rust` says whether the
    /// tool's tests run at all.
    pub fn set_rust(&mut self, workspace: &RustWorkspace, everything: bool) {
        let affected = if everything {
            workspace.crates.iter().map(|c| (c.name.clone(), vec!["full run (--all)".to_owned()])).collect()
        } else {
            workspace.affected(&self.changed_files)
        };
        self.rust_crates = affected.keys().cloned().collect();
        self.rust = !self.rust_crates.is_empty();
        for (name, why) in affected {
            self.reasons.insert(format!("crate:{name}"), why);
        }
    }
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

    /// The shape of this repository's workspace: the binary at `xtask/` holding the
    /// library crates in subfolders, one of them compiling in a file from `infra/`, and a
    /// test double only the binary's tests run.
    fn workspace() -> RustWorkspace {
        let krate = |name: &str, dir: &str, deps: &[&str], inputs: &[&str]| RustCrate {
            name: name.into(),
            dir: dir.into(),
            deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            inputs: inputs.iter().map(|d| (*d).to_owned()).collect(),
        };
        RustWorkspace {
            crates: vec![
                krate("xtask", "xtask", &["xtask-ci", "xtask-engine", "xtask-repo", "xtask-pulumi-double"], &[]),
                krate("xtask-engine", "xtask/engine", &[], &[]),
                krate("xtask-repo", "xtask/repo", &["xtask-engine"], &["infra/shared/deployment.toml"]),
                krate("xtask-ci", "xtask/ci", &["xtask-repo"], &[]),
                krate("xtask-pulumi-double", "xtask/pulumi-double", &[], &[]),
            ],
        }
    }

    fn rust_after(changed: &[&str]) -> Affected {
        let mut a = Affected { changed_files: changed.iter().map(|f| (*f).to_owned()).collect(), ..Affected::default() };
        a.set_rust(&workspace(), false);
        a
    }

    #[test]
    fn a_crate_file_affects_the_deepest_crate_and_its_dependents() {
        let a = rust_after(&["xtask/repo/src/lib.rs"]);
        assert!(a.rust);
        assert_eq!(a.rust_crates, ["xtask", "xtask-ci", "xtask-repo"]);
        assert_eq!(a.reasons["crate:xtask-repo"], ["own file xtask/repo/src/lib.rs"]);
        assert_eq!(a.reasons["crate:xtask-ci"], ["depends on xtask-repo"]);
        // The engine is below xtask-repo in the graph, not above it: untouched.
        assert!(!a.reasons.contains_key("crate:xtask-engine"));
        // A file of the binary's own folder is the binary's alone.
        assert_eq!(rust_after(&["xtask/src/main.rs"]).rust_crates, ["xtask"]);
        assert_eq!(rust_after(&["xtask/tests/workflows.rs"]).rust_crates, ["xtask"]);
    }

    #[test]
    fn test_doubles_and_compiled_in_files_count_and_other_files_do_not() {
        assert_eq!(rust_after(&["xtask/pulumi-double/src/main.rs"]).rust_crates, ["xtask", "xtask-pulumi-double"]);
        let a = rust_after(&["infra/shared/deployment.toml"]);
        assert_eq!(a.rust_crates, ["xtask", "xtask-ci", "xtask-repo"]);
        assert_eq!(a.reasons["crate:xtask-repo"], ["compiles in infra/shared/deployment.toml"]);
        let a = rust_after(&["libs/tradai-common/src/tradai_common/models.py", "docs/ci.md", ".github/workflows/ci.yml"]);
        assert!(!a.rust && a.rust_crates.is_empty(), "{:?}", a.rust_crates);
        // A folder that merely starts like a crate's is not inside it.
        assert!(rust_after(&["xtask/engine-notes.md"]).rust_crates == ["xtask"]);
    }

    #[test]
    fn workspace_files_affect_every_crate_and_everything_selects_all() {
        for file in ["Cargo.lock", "uv.lock", ".cargo/config.toml", "rust-toolchain.toml"] {
            assert_eq!(rust_after(&[file]).rust_crates.len(), 5, "{file}");
        }
        let mut a = Affected::default();
        a.set_rust(&workspace(), true);
        assert_eq!(a.rust_crates.len(), 5);
        assert_eq!(a.reasons["crate:xtask-engine"], ["full run (--all)"]);
        let mut none = Affected::default();
        none.set_rust(&RustWorkspace::default(), true);
        assert!(!none.rust, "a repository without a Cargo workspace has no Rust tests to run");
    }

    #[test]
    fn under_requires_a_path_boundary() {
        assert_eq!(under("libs/tradai-data/src/x.py", "libs/tradai-data"), Some("src/x.py"));
        assert_eq!(under("libs/tradai-database/x.py", "libs/tradai-data"), None);
        assert_eq!(under("libs/tradai-data", "libs/tradai-data"), None);
    }
}
