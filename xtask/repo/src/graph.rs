//! What the Python code imports: for every test-matrix entry, the workspace packages it
//! depends on (declared in `[project] dependencies` or imported anywhere in its files), the
//! shared library's modules it imports, and the shared library's own module graph.
//!
//! Reading every Python file takes a while next to a no-op build, so the repository
//! model computes this on first use ([`crate::Repository::imports`]); builds never ask.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;

use crate::Error;
use crate::imports::referenced_modules;
use crate::python::{is_test_file, module_name, python_files, read};

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

/// What one matrix entry's files import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageImports {
    /// Matrix entries it depends on directly (declared or imported).
    pub deps: BTreeSet<String>,
    /// Shared-library modules any of its files imports, tests included.
    pub shared: BTreeSet<String>,
    /// Shared-library modules its non-test files import: what it passes on to the
    /// packages that depend on it.
    pub shared_src: BTreeSet<String>,
}

/// The import graph of the repository.
#[derive(Debug, Clone, Default)]
pub struct Imports {
    /// By matrix name.
    pub packages: BTreeMap<String, PackageImports>,
    pub shared: Option<SharedLib>,
    /// Shared-library modules imported anywhere under `lambdas/`.
    pub lambda_shared_imports: BTreeSet<String>,
}

impl Imports {
    /// The matrix entries `name` depends on, directly or not.
    pub fn transitive_deps(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(n) = todo.pop() {
            for d in self.packages.get(&n).map(|p| &p.deps).into_iter().flatten() {
                if out.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        out.remove(name);
        out
    }

    /// The shared modules a package's tests can reach: its own imports and what the
    /// source of every package it depends on imports.
    pub fn shared_watch(&self, name: &str) -> BTreeSet<String> {
        let mut out = self.packages.get(name).map(|p| p.shared.clone()).unwrap_or_default();
        let shared = self.shared.as_ref().map(|s| s.package.as_str());
        // The library's own modules reach a package only through the imports above,
        // followed module by module by `SharedLib::dependents`.
        for dep in self.transitive_deps(name).iter().filter(|d| Some(d.as_str()) != shared) {
            if let Some(p) = self.packages.get(dep) {
                out.extend(p.shared_src.iter().cloned());
            }
        }
        out
    }
}

/// One matrix entry as the import analysis reads it.
pub(crate) struct Entry<'a> {
    pub name: &'a str,
    pub dir: &'a str,
    pub project: Option<&'a str>,
    pub modules: &'a [String],
    pub declared: &'a [String],
}

/// Reads every Python file of the matrix entries and of `lambdas_dir`. `shared_lib` is
/// the project name of the library whose modules are followed one by one.
pub(crate) fn analyze(root: &Utf8Path, entries: &[Entry<'_>], shared_lib: &str, lambdas_dir: &str) -> Result<Imports, Error> {
    let shared = match entries.iter().find(|e| e.project == Some(shared_lib)) {
        Some(e) => Some(shared_module_graph(root, e)?),
        None => None,
    };
    // Which entry provides each top-level import name, and each project name.
    let providers: BTreeMap<&str, &str> = entries.iter().flat_map(|e| e.modules.iter().map(|m| (m.as_str(), e.name))).collect();
    let by_project: BTreeMap<String, &str> =
        entries.iter().filter_map(|e| e.project.map(|p| (crate::python::normalize(p), e.name))).collect();

    let mut packages = BTreeMap::new();
    for entry in entries {
        let mut found = PackageImports {
            deps: entry.declared.iter().filter_map(|d| by_project.get(d).map(|n| (*n).to_owned())).collect(),
            ..PackageImports::default()
        };
        let dir = root.join(entry.dir);
        for file in python_files(&dir) {
            let rel = file.strip_prefix(&dir).map(|p| p.as_str().to_owned()).unwrap_or_default();
            let current = module_name(&rel);
            let referenced = referenced_modules(&read(&file)?, current.as_ref().map(|(m, init)| (m.as_str(), *init)));
            for module in &referenced {
                let top = module.split('.').next().unwrap_or_default();
                if let Some(provider) = providers.get(top) {
                    found.deps.insert((*provider).to_owned());
                }
            }
            if let Some(shared) = &shared {
                let used = shared.known(&referenced);
                if !is_test_file(&rel) {
                    found.shared_src.extend(used.iter().cloned());
                }
                found.shared.extend(used);
            }
        }
        found.deps.remove(entry.name);
        packages.insert(entry.name.to_owned(), found);
    }

    let mut lambda_shared_imports = BTreeSet::new();
    if let Some(shared) = &shared {
        for file in python_files(&root.join(lambdas_dir)) {
            lambda_shared_imports.extend(shared.known(&referenced_modules(&read(&file)?, None)));
        }
    }
    Ok(Imports { packages, shared, lambda_shared_imports })
}

fn shared_module_graph(root: &Utf8Path, entry: &Entry<'_>) -> Result<SharedLib, Error> {
    let mut lib = SharedLib { package: entry.name.to_owned(), dir: entry.dir.to_owned(), ..SharedLib::default() };
    let Some(import_name) = entry.modules.first().cloned() else { return Ok(lib) };
    lib.import_name = import_name.clone();
    let dir = root.join(entry.dir);
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
