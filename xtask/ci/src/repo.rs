//! The repository as change detection sees it, discovered from its files: the test
//! matrix (the uv workspace members plus the integration tests), what each package imports,
//! the module graph of the shared library, and the Lambda and service image contexts.
//!
//! Nothing here is a hand-kept list of paths: members come from the root
//! `pyproject.toml`, dependencies from each member's `[project] dependencies` and from its
//! imports, Lambda functions and services from their Dockerfiles.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::Error;
use crate::imports::referenced_modules;

/// Files at the root that change every package's environment: any change to them runs
/// the whole test matrix.
pub const WORKSPACE_FILES: &[&str] = &["pyproject.toml", "uv.lock", "Cargo.toml", "Cargo.lock", ".python-version"];

/// The project name of the shared library, the one package tracked per submodule.
pub const SHARED_LIB: &str = "tradai-common";

/// The integration test folder: a matrix entry of its own, with no pyproject.
pub const INTEGRATION_DIR: &str = "tests/integration";

/// The folder of the Lambda functions (`lambdas/<name>/Dockerfile`) and of their tests.
pub const LAMBDAS_DIR: &str = "lambdas";

/// Coverage thresholds of the test matrix (the seeds' values); every other entry needs 60%.
const COVERAGE: &[(&str, u8)] = &[("cli", 45), ("integration", 0), ("lambdas", 60)];
const DEFAULT_COVERAGE: u8 = 60;

/// The coverage a test suite must reach.
pub fn coverage_threshold(name: &str) -> u8 {
    COVERAGE.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or(DEFAULT_COVERAGE)
}

/// One entry of the test matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// The matrix name: the folder name without the `tradai-` prefix (`common`, `backend`).
    pub name: String,
    /// Its folder, relative to the root.
    pub dir: String,
    /// `[project] name`, when it is a workspace member.
    pub project: Option<String>,
    /// The import names it provides (`src/<name>/`).
    pub modules: Vec<String>,
    /// Workspace packages it depends on directly (declared or imported), by matrix name.
    pub deps: BTreeSet<String>,
    /// Shared-library modules that any of its files imports, tests included.
    pub shared_imports: BTreeSet<String>,
    /// Shared-library modules that its non-test files import: what it passes on to the
    /// packages that depend on it.
    pub shared_imports_src: BTreeSet<String>,
}

/// The shared library's module graph.
#[derive(Debug, Clone, Default)]
pub struct SharedLib {
    /// Its matrix name.
    pub package: String,
    /// Its folder, relative to the root.
    pub dir: String,
    /// Its import name (`tradai_common`).
    pub import_name: String,
    /// Dotted module name -> file, relative to the package folder.
    pub modules: BTreeMap<String, String>,
    /// Module -> the shared modules it imports (parents included).
    pub imports: BTreeMap<String, BTreeSet<String>>,
}

impl SharedLib {
    /// The module a file of the package is, when it is a Python module under `src/`.
    pub fn module_of(&self, rel: &str) -> Option<&str> {
        self.modules.iter().find(|(_, path)| path.as_str() == rel).map(|(m, _)| m.as_str())
    }

    /// The modules that import any of `changed`, directly or through other modules,
    /// together with `changed` itself.
    pub fn dependents(&self, changed: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = changed.clone();
        loop {
            let before = out.len();
            for (module, deps) in &self.imports {
                if !out.contains(module) && deps.iter().any(|d| out.contains(d)) {
                    out.insert(module.clone());
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Keeps the names that are modules of the library; `pkg.*` stands for every module
    /// under `pkg`.
    fn known(&self, referenced: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for name in referenced {
            if let Some(prefix) = name.strip_suffix(".*") {
                let under = format!("{prefix}.");
                out.extend(self.modules.keys().filter(|m| m.starts_with(&under)).cloned());
            } else if self.modules.contains_key(name) {
                out.insert(name.clone());
            }
        }
        out
    }
}

/// Everything change detection needs to know about the repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: Utf8PathBuf,
    /// The test matrix, in workspace order, then `integration`.
    pub packages: Vec<Package>,
    pub shared: Option<SharedLib>,
    /// Shared-library modules imported anywhere under `lambdas/`.
    pub lambda_shared_imports: BTreeSet<String>,
}

impl Repo {
    /// Reads the repository at `root`: the test matrix and what each entry imports.
    /// (Which images a change affects is the build engine's answer, not this model's.)
    pub fn discover(root: &Utf8Path) -> Result<Repo, Error> {
        let members = workspace_members(root)?;
        let mut packages = Vec::new();
        let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for dir in &members {
            let (project, deps) = read_project(&root.join(dir))?;
            let name = matrix_name(dir);
            declared.insert(name.clone(), deps);
            packages.push(Package {
                name,
                dir: dir.clone(),
                project,
                modules: src_modules(&root.join(dir)),
                deps: BTreeSet::new(),
                shared_imports: BTreeSet::new(),
                shared_imports_src: BTreeSet::new(),
            });
        }
        if root.join(INTEGRATION_DIR).is_dir() {
            packages.push(Package {
                name: "integration".into(),
                dir: INTEGRATION_DIR.into(),
                project: None,
                modules: Vec::new(),
                deps: BTreeSet::new(),
                shared_imports: BTreeSet::new(),
                shared_imports_src: BTreeSet::new(),
            });
        }

        let shared = match packages.iter().find(|p| p.project.as_deref() == Some(SHARED_LIB)) {
            Some(p) => Some(shared_lib(root, p)?),
            None => None,
        };

        // Which package provides each top-level import name.
        let providers: BTreeMap<String, String> =
            packages.iter().flat_map(|p| p.modules.iter().map(|m| (m.clone(), p.name.clone()))).collect();
        let by_project: BTreeMap<String, String> =
            packages.iter().filter_map(|p| p.project.as_ref().map(|proj| (normalize(proj), p.name.clone()))).collect();

        for package in &mut packages {
            let mut deps: BTreeSet<String> =
                declared.get(&package.name).into_iter().flatten().filter_map(|d| by_project.get(&normalize(d)).cloned()).collect();
            for file in python_files(&root.join(&package.dir)) {
                let rel = file.strip_prefix(root.join(&package.dir)).map(|p| p.as_str().to_owned()).unwrap_or_default();
                let text = read(&file)?;
                let current = module_name(&rel);
                let referenced = referenced_modules(&text, current.as_ref().map(|(m, init)| (m.as_str(), *init)));
                for module in &referenced {
                    let top = module.split('.').next().unwrap_or_default();
                    if let Some(provider) = providers.get(top) {
                        deps.insert(provider.clone());
                    }
                }
                if let Some(shared) = &shared {
                    let used = shared.known(&referenced);
                    if !is_test_file(&rel) {
                        package.shared_imports_src.extend(used.iter().cloned());
                    }
                    package.shared_imports.extend(used);
                }
            }
            deps.remove(&package.name);
            package.deps = deps;
        }

        let mut lambda_shared_imports = BTreeSet::new();
        if let Some(shared) = &shared {
            for file in python_files(&root.join(LAMBDAS_DIR)) {
                lambda_shared_imports.extend(shared.known(&referenced_modules(&read(&file)?, None)));
            }
        }

        Ok(Repo { root: root.to_owned(), packages, shared, lambda_shared_imports })
    }

    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// The workspace packages `name` depends on, directly or not.
    pub fn transitive_deps(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(n) = todo.pop() {
            if let Some(p) = self.package(&n) {
                for d in &p.deps {
                    if out.insert(d.clone()) {
                        todo.push(d.clone());
                    }
                }
            }
        }
        out.remove(name);
        out
    }

    /// The shared modules a package's tests can reach: its own imports and what the
    /// source of every package it depends on imports.
    pub fn shared_watch(&self, name: &str) -> BTreeSet<String> {
        let mut out = self.package(name).map(|p| p.shared_imports.clone()).unwrap_or_default();
        let shared = self.shared.as_ref().map(|s| s.package.as_str());
        // The library's own modules reach a package only through the imports above,
        // followed module by module by `SharedLib::dependents`.
        for dep in self.transitive_deps(name).iter().filter(|d| Some(d.as_str()) != shared) {
            if let Some(p) = self.package(dep) {
                out.extend(p.shared_imports_src.iter().cloned());
            }
        }
        out
    }
}

/// Whether a file of a package is a test file: under a `tests` folder, or named like one.
pub fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    rel.split('/').any(|seg| seg == "tests" || seg == "test")
        || name.starts_with("test_")
        || name.ends_with("_test.py")
        || name == "conftest.py"
}

fn matrix_name(dir: &str) -> String {
    let last = dir.rsplit('/').next().unwrap_or(dir);
    last.strip_prefix("tradai-").unwrap_or(last).to_owned()
}

/// A distribution name in PEP 503 normal form: runs of `-`, `_` and `.` become one `-`,
/// lower case. The one definition every command uses.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.extend(c.to_lowercase());
            last_sep = false;
        }
    }
    out
}

fn read(path: &Utf8Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn parse_toml(path: &Utf8Path) -> Result<Option<toml::Value>, Error> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(None) };
    toml::from_str(&text).map(Some).map_err(|e| Error::Toml { path: path.to_owned(), message: e.message().to_owned() })
}

/// The uv workspace members listed in the root `pyproject.toml`, globs expanded, minus
/// `exclude`, each a folder with a `pyproject.toml` (relative, `/`-separated).
pub fn workspace_members(root: &Utf8Path) -> Result<Vec<String>, Error> {
    let Some(value) = parse_toml(&root.join("pyproject.toml"))? else { return Ok(Vec::new()) };
    let workspace = value.get("tool").and_then(|t| t.get("uv")).and_then(|u| u.get("workspace"));
    let list = |key: &str| -> Vec<String> {
        workspace
            .and_then(|w| w.get(key))
            .and_then(|m| m.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(|s| s.trim_end_matches('/').to_owned())).collect())
            .unwrap_or_default()
    };
    let excluded = list("exclude");
    let mut out = Vec::new();
    for pattern in list("members") {
        for dir in expand_glob(root, &pattern) {
            let is_excluded = excluded.iter().any(|e| expand_glob(root, e).contains(&dir));
            if !is_excluded && root.join(&dir).join("pyproject.toml").is_file() && !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    Ok(out)
}

/// The folders a uv workspace pattern names (`libs/*`), relative to `root`, sorted: uv
/// expands members with glob, and so does this, with the `glob` crate.
fn expand_glob(root: &Utf8Path, pattern: &str) -> Vec<String> {
    let full = format!("{}/{}", glob::Pattern::escape(root.as_str()), pattern.trim_start_matches("./"));
    let Ok(paths) = glob::glob(&full) else { return Vec::new() };
    let mut out: Vec<String> = paths
        .flatten()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.strip_prefix(root.as_std_path()).ok().and_then(|r| r.to_str()).map(str::to_owned))
        .filter(|r| !r.is_empty())
        .collect();
    out.sort();
    out
}

/// `[project] name` and the names of `[project] dependencies` of a folder's
/// `pyproject.toml` (none when it has no such file).
pub fn read_project(dir: &Utf8Path) -> Result<(Option<String>, Vec<String>), Error> {
    let Some(value) = parse_toml(&dir.join("pyproject.toml"))? else { return Ok((None, Vec::new())) };
    let project = value.get("project");
    let name = project.and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
    let deps = project
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).map(requirement_name).collect())
        .unwrap_or_default();
    Ok((name, deps))
}

/// The distribution name at the start of a PEP 508 requirement.
fn requirement_name(req: &str) -> String {
    req.trim().chars().take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')).collect()
}

/// Import names under `src/`: packages (folders with `__init__.py`) and single modules.
fn src_modules(dir: &Utf8Path) -> Vec<String> {
    let Ok(entries) = dir.join("src").read_dir_utf8() else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            if e.path().join("__init__.py").is_file() { Some(name.to_owned()) } else { name.strip_suffix(".py").map(str::to_owned) }
        })
        .collect();
    out.sort();
    out
}

/// The dotted module of a package file under `src/`, and whether it is an `__init__.py`.
fn module_name(rel: &str) -> Option<(String, bool)> {
    let path = rel.strip_prefix("src/")?.strip_suffix(".py")?;
    match path.strip_suffix("/__init__") {
        Some(pkg) => Some((pkg.replace('/', "."), true)),
        None => Some((path.replace('/', "."), false)),
    }
}

/// Python files below `dir`, skipping virtual environments, caches and hidden folders.
fn python_files(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0 || !(name.starts_with('.') || name == "__pycache__" || name == "node_modules")
        })
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".py"))
        .filter_map(|e| Utf8PathBuf::from_path_buf(e.into_path()).ok())
        .collect();
    out.sort();
    out
}

fn shared_lib(root: &Utf8Path, package: &Package) -> Result<SharedLib, Error> {
    let Some(import_name) = package.modules.first().cloned() else {
        return Ok(SharedLib { package: package.name.clone(), dir: package.dir.clone(), ..SharedLib::default() });
    };
    let dir = root.join(&package.dir);
    let mut lib =
        SharedLib { package: package.name.clone(), dir: package.dir.clone(), import_name: import_name.clone(), ..SharedLib::default() };
    let mut sources = Vec::new();
    for file in python_files(&dir.join("src").join(&import_name)) {
        let rel = file.strip_prefix(&dir).map(|p| p.as_str().to_owned()).unwrap_or_default();
        if let Some((module, is_init)) = module_name(&rel) {
            lib.modules.insert(module.clone(), rel);
            sources.push((module, is_init, file));
        }
    }
    for (module, is_init, file) in sources {
        let referenced = referenced_modules(&read(&file)?, Some((&module, is_init)));
        let mut deps = lib.known(&referenced);
        deps.remove(&module);
        lib.imports.insert(module, deps);
    }
    Ok(lib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_globbed_as_uv_does_and_exclusions_apply() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        for p in ["libs/a", "libs/b", "libs/notes", "services/api", "services/mlflow"] {
            fs::create_dir_all(root.join(p)).unwrap();
            if p != "libs/notes" {
                fs::write(root.join(p).join("pyproject.toml"), "[project]\nname = \"x\"\n").unwrap();
            }
        }
        fs::write(
            root.join("pyproject.toml"),
            "[tool.uv.workspace]\nmembers = [\"libs/*\", \"services/*\", \"./libs/a\"]\nexclude = [\"services/mlflow\"]\n",
        )
        .unwrap();
        assert_eq!(workspace_members(root).unwrap(), ["libs/a", "libs/b", "services/api"]);
    }

    #[test]
    fn matrix_names_drop_the_project_prefix() {
        assert_eq!(matrix_name("libs/tradai-common"), "common");
        assert_eq!(matrix_name("services/data-collection"), "data-collection");
    }

    #[test]
    fn requirement_names_and_normalisation() {
        assert_eq!(requirement_name("tradai-common>=0.1.0"), "tradai-common");
        assert_eq!(requirement_name("fastapi[all] >=0.115; python_version>'3'"), "fastapi");
        assert_eq!(normalize("Tradai_Common"), "tradai-common");
        assert_eq!(normalize("Tradai.-Strategy"), "tradai-strategy");
    }

    #[test]
    fn module_names_of_src_files() {
        assert_eq!(module_name("src/tradai_common/aws.py"), Some(("tradai_common.aws".into(), false)));
        assert_eq!(module_name("src/tradai_common/__init__.py"), Some(("tradai_common".into(), true)));
        assert_eq!(module_name("tests/test_aws.py"), None);
    }

    #[test]
    fn test_files_are_recognised() {
        assert!(is_test_file("tests/test_x.py"));
        assert!(is_test_file("conftest.py"));
        assert!(is_test_file("src/pkg/x_test.py"));
        assert!(!is_test_file("src/pkg/testing.py"));
    }


    #[test]
    fn dependents_follow_imports_transitively() {
        let mut lib = SharedLib::default();
        for m in ["p", "p.settings", "p.aws", "p.state", "p.models"] {
            lib.modules.insert(m.into(), String::new());
        }
        lib.imports.insert("p.aws".into(), ["p".into(), "p.settings".into()].into());
        lib.imports.insert("p.state".into(), ["p".into(), "p.aws".into(), "p.models".into()].into());
        lib.imports.insert("p.settings".into(), ["p".into()].into());
        lib.imports.insert("p.models".into(), ["p".into()].into());
        let d = lib.dependents(&["p.settings".into()].into());
        assert_eq!(d, ["p.aws", "p.settings", "p.state"].into_iter().map(String::from).collect());
        let d = lib.dependents(&["p.models".into()].into());
        assert_eq!(d, ["p.models", "p.state"].into_iter().map(String::from).collect());
    }
}
