//! The uv workspace as its files state it: the members the root `pyproject.toml` lists
//! (globs expanded as uv does, minus `exclude`), each member's `[project]` name and
//! dependencies, the import names it provides, and the small rules about Python files
//! (which are tests, which module a file is).

use std::fs;

use camino::{Utf8Path, Utf8PathBuf};

use crate::Error;

pub(crate) fn read(path: &Utf8Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn parse_toml(path: &Utf8Path) -> Result<Option<toml::Value>, Error> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(None) };
    toml::from_str(&text).map(Some).map_err(|e| Error::Toml { path: path.to_owned(), message: e.message().to_owned() })
}

/// The uv workspace members listed in the root `pyproject.toml`, globs expanded, minus
/// `exclude`, each a folder with a `pyproject.toml` (relative, `/`-separated), in the
/// order the list names them.
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
    let excluded: Vec<String> = list("exclude").iter().flat_map(|e| expand_glob(root, e)).collect();
    let mut out = Vec::new();
    for pattern in list("members") {
        for dir in expand_glob(root, &pattern) {
            if !excluded.contains(&dir) && root.join(&dir).join("pyproject.toml").is_file() && !out.contains(&dir) {
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

/// `[project] name` and the names of `[project] dependencies` (PEP 503-normalised) of a
/// folder's `pyproject.toml` (none when it has no such file).
pub fn read_project(dir: &Utf8Path) -> Result<(Option<String>, Vec<String>), Error> {
    let Some(value) = parse_toml(&dir.join("pyproject.toml"))? else { return Ok((None, Vec::new())) };
    let project = value.get("project");
    let name = project.and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
    let deps = project
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).map(|r| normalize(&requirement_name(r))).collect())
        .unwrap_or_default();
    Ok((name, deps))
}

/// The distribution name at the start of a PEP 508 requirement.
fn requirement_name(req: &str) -> String {
    req.trim().chars().take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')).collect()
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

/// Import names under `src/`: packages (folders with `__init__.py`) and single modules.
pub(crate) fn src_modules(dir: &Utf8Path) -> Vec<String> {
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
pub(crate) fn module_name(rel: &str) -> Option<(String, bool)> {
    let path = rel.strip_prefix("src/")?.strip_suffix(".py")?;
    match path.strip_suffix("/__init__") {
        Some(pkg) => Some((pkg.replace('/', "."), true)),
        None => Some((path.replace('/', "."), false)),
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

/// Python files below `dir`, skipping virtual environments, caches and hidden folders.
pub(crate) fn python_files(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
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
}
