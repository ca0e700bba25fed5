//! `ci changes` and `ci verdict`: what a change affects, and the one status branch protection requires.

use xtask_ci::changes::{RustCrate, RustWorkspace};

use super::*;

/// `cargo xtask ci changes`.
pub(super) fn changes(project: &Project, github: &Github, args: &ChangesArgs) -> Result<ExitCode> {
    let repo = discover(project)?;
    let workspace = rust_workspace(&project.root)?;
    // Tests follow the files and their imports; images follow the engine's input hashes;
    // the tool's own tests follow its crate graph.
    let mut affected = match (&args.base, args.all) {
        (_, true) => {
            let mut a = xtask_ci::everything(repo);
            a.set_targets(&crate::changes::all_targets(project)?);
            a
        }
        (Some(base), false) => {
            let files = xtask_ci::git::changed_files(&project.root, base, args.head.as_deref())?;
            let mut a = xtask_ci::analyze(repo, &files).context("failed to read the Python imports")?;
            a.set_targets(&crate::changes::changed_targets(project, base, args.head.as_deref())?);
            a
        }
        (None, false) => {
            bail!("pass --base <ref> to compare with a ref, or --all to select everything")
        }
    };
    affected.set_rust(&workspace, args.all);
    let json = serde_json::to_string_pretty(&affected).context("failed to encode the result")?;
    println!("{json}");
    eprintln!("{}", describe(&affected));
    write_outputs(github, &affected)?;
    github.summary(&changes_summary(&affected))?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn describe(a: &Affected) -> String {
    let list = |v: &[String]| {
        if v.is_empty() { "none".to_owned() } else { v.join(", ") }
    };
    let scope = if a.all && a.changed_files.is_empty() {
        "everything selected".to_owned()
    } else {
        format!("{} changed file(s)", a.changed_files.len())
    };
    format!(
        "{scope}: tests {}{}; Lambda images {}{}; service images {}; tool crates {}",
        list(&a.packages),
        if a.lambda_tests { " + lambdas" } else { "" },
        list(&a.lambdas),
        if a.lambda_base { " (lambda-base rebuilt)" } else { "" },
        list(&a.services),
        list(&a.rust_crates)
    )
}

pub(super) fn write_outputs(github: &Github, a: &Affected) -> Result<()> {
    let bool_str = |b: bool| if b { "true" } else { "false" }.to_owned();
    let outputs: Vec<(&str, String)> = vec![
        ("matrix", json(&a.matrix)),
        ("any", bool_str(a.any)),
        ("packages", json(&a.packages)),
        ("integration", bool_str(a.integration)),
        ("lambda_tests", bool_str(a.lambda_tests)),
        ("wheel", bool_str(a.wheel)),
        ("lambda_base", bool_str(a.lambda_base)),
        ("lambdas", json(&a.lambdas)),
        ("lambda_images", json(&a.lambda_images)),
        ("services", json(&a.services)),
        ("service_images", json(&a.service_images)),
        ("images", bool_str(a.images)),
        ("infra", bool_str(a.infra)),
        ("docs", bool_str(a.docs)),
        ("rust", bool_str(a.rust)),
        ("rust_crates", json(&a.rust_crates)),
        ("workflows", bool_str(a.workflows)),
    ];
    for (name, value) in outputs {
        github.set_output(name, &value).context("failed to write $GITHUB_OUTPUT")?;
    }
    Ok(())
}

/// Compact JSON for a job output.
pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn changes_summary(a: &Affected) -> String {
    let mut rows = Vec::new();
    for (target, why) in &a.reasons {
        rows.push(vec![format!("`{target}`"), why.join("; ")]);
    }
    let mut s = format!("### Change detection\n\n{}\n\n", describe(a));
    if !rows.is_empty() {
        s.push_str(&markdown_table(&["affected", "why"], &rows));
    }
    s
}

/// The tool's Cargo workspace at `root`, for rule 7 of change detection: the member
/// crates and their dependencies on each other from `cargo metadata --no-deps` (no
/// registry access), plus two edges no manifest records, read from each crate's Rust
/// sources: files it compiles in from outside its folder (`include_str!` and
/// `include_bytes!` of a literal path, as xtask-repo does with deployment.toml), and
/// workspace crates its tests build and run by name (`"-p", "xtask-pulumi-double"`). A
/// repository with no `Cargo.toml` at its root has no crates.
pub(super) fn rust_workspace(root: &Utf8Path) -> Result<RustWorkspace> {
    let manifest = root.join("Cargo.toml");
    if !manifest.is_file() {
        return Ok(RustWorkspace::default());
    }
    let metadata =
        cargo_metadata::MetadataCommand::new().manifest_path(&manifest).no_deps().exec().map_err(|e| anyhow::anyhow!("{e}")).with_context(
            || format!("failed to read the Cargo workspace of {manifest} (`cargo metadata`); fix the manifest, then run again"),
        )?;
    let ws_root = &metadata.workspace_root;
    let members = metadata.workspace_packages();
    let names: Vec<String> = members.iter().map(|p| p.name.to_string()).collect();
    let mut crates: Vec<RustCrate> = members
        .iter()
        .map(|p| {
            let dir =
                p.manifest_path.parent().and_then(|d| d.strip_prefix(ws_root).ok()).map(|d| d.as_str().to_owned()).unwrap_or_default();
            let deps = p
                .dependencies
                .iter()
                .filter(|d| d.path.is_some() && names.contains(&d.name) && d.name != p.name.as_str())
                .map(|d| d.name.clone())
                .collect();
            RustCrate { name: p.name.to_string(), dir, deps, inputs: Default::default() }
        })
        .collect();
    let dirs: Vec<String> = crates.iter().map(|c| c.dir.clone()).collect();
    for krate in &mut crates {
        let nested: Vec<&str> = dirs.iter().map(String::as_str).filter(|d| *d != krate.dir && is_below(d, &krate.dir)).collect();
        let mut sources = Vec::new();
        rust_sources(&ws_root.join(&krate.dir), &krate.dir, &nested, &mut sources);
        for (rel, text) in sources {
            let file_dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for included in included_paths(&text) {
                if let Some(path) = normalize(&format!("{file_dir}/{included}"))
                    && !is_below(&path, &krate.dir)
                {
                    krate.inputs.insert(path);
                }
            }
            for name in names.iter().filter(|n| **n != krate.name && runs_by_name(&text, n)) {
                krate.deps.insert(name.clone());
            }
        }
    }
    Ok(RustWorkspace { crates })
}

/// Whether `path` lies in folder `dir` (every path lies in the root, `""`).
fn is_below(path: &str, dir: &str) -> bool {
    dir.is_empty() || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The `.rs` files under `abs` (whose path relative to the root is `rel`), with their
/// text: nested crates, `target` folders and hidden folders left out.
fn rust_sources(abs: &Utf8Path, rel: &str, nested: &[&str], out: &mut Vec<(String, String)>) {
    let Ok(entries) = abs.read_dir_utf8() else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let child = if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") };
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if name.starts_with('.') || name == "target" || nested.contains(&child.as_str()) {
                continue;
            }
            rust_sources(entry.path(), &child, nested, out);
        } else if name.ends_with(".rs")
            && let Ok(text) = fs::read_to_string(entry.path())
        {
            out.push((child, text));
        }
    }
}

/// The literal paths of `include_str!("...")` and `include_bytes!("...")` in `text`.
fn included_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for mac in ["include_str!(", "include_bytes!("] {
        for (at, _) in text.match_indices(mac) {
            let rest = text[at + mac.len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split_once('"')).map(|(lit, _)| lit) {
                out.push(lit.to_owned());
            }
        }
    }
    out
}

/// Whether `text` builds or runs workspace crate `name` by name: `"-p", "<name>"` or
/// `"--package", "<name>"` on one line.
fn runs_by_name(text: &str, name: &str) -> bool {
    let quoted = format!("\"{name}\"");
    text.lines().any(|l| l.contains(&quoted) && (l.contains("\"-p\"") || l.contains("\"--package\"")))
}

/// `a/b/../c` as `a/c`; `None` when it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// `cargo xtask ci verdict`: the single status a branch protection rule can require.
pub(super) fn verdict(github: &Github, args: &VerdictArgs) -> Result<ExitCode> {
    let text = match &args.needs {
        Some(t) => t.clone(),
        None => std::env::var("NEEDS").context("pass --needs '<json>' or set NEEDS to ${{ toJSON(needs) }}")?,
    };
    let needs: serde_json::Value = serde_json::from_str(&text).context("--needs is not JSON; pass ${{ toJSON(needs) }}")?;
    let Some(jobs) = needs.as_object() else { bail!("--needs must be a JSON object of jobs; pass ${{{{ toJSON(needs) }}}}") };
    let mut bad = Vec::new();
    let mut rows = Vec::new();
    for (name, job) in jobs {
        let result = job.get("result").and_then(|r| r.as_str()).unwrap_or("unknown");
        rows.push(vec![name.clone(), result.to_owned()]);
        if !matches!(result, "success" | "skipped") {
            bad.push(format!("{name} ({result})"));
        }
    }
    github.summary(&format!("### CI verdict\n\n{}", markdown_table(&["job", "result"], &rows)))?;
    if bad.is_empty() {
        eprintln!("every job succeeded or was not needed ({} jobs)", jobs.len());
        Ok(ExitCode::SUCCESS)
    } else {
        xtask_ci::github::annotate(github, &[Diagnostic::new("CI verdict", format!("jobs that did not succeed: {}", bad.join(", ")))]);
        eprintln!("error: jobs that did not succeed: {}; open them in the run for their errors", bad.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_never_climb_above_the_root() {
        assert_eq!(normalize("xtask/repo/src/../../../infra/x.toml").as_deref(), Some("infra/x.toml"));
        assert_eq!(normalize("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("a/../../etc"), None);
        assert_eq!(
            included_paths("const F: &str = include_str!( \"../x.toml\");\nlet b = include_bytes!(\"y.bin\");"),
            ["../x.toml", "y.bin"]
        );
        assert!(runs_by_name(r#"cmd.args(["build", "-q", "-p", "xtask-pulumi-double"])"#, "xtask-pulumi-double"));
        assert!(!runs_by_name(r#"let name = "xtask-pulumi-double";"#, "xtask-pulumi-double"));
        assert!(is_below("xtask/engine/src", "xtask") && !is_below("xtask-other/x", "xtask") && is_below("any", ""));
    }

    /// This repository's own workspace, read with `cargo metadata`: every member, the
    /// manifest edges, and the two edges only the sources show.
    #[test]
    fn the_repository_workspace_is_read_with_its_hidden_edges() {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ws = rust_workspace(root).unwrap();
        let get = |name: &str| ws.crates.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} in {:#?}", ws.crates));
        for name in ["xtask", "xtask-engine", "xtask-ci", "xtask-repo", "xtask-aws", "xtask-pulumi", "xtask-pulumi-double"] {
            get(name);
        }
        let bin = get("xtask");
        assert_eq!(bin.dir, "xtask");
        assert!(bin.deps.contains("xtask-engine") && bin.deps.contains("xtask-ci"), "{:?}", bin.deps);
        assert!(bin.deps.contains("xtask-pulumi-double"), "the binary's tests build the Pulumi double by name: {:?}", bin.deps);
        assert_eq!(get("xtask-engine").dir, "xtask/engine");
        assert!(get("xtask-repo").inputs.contains("infra/shared/tradai_infra_shared/deployment.toml"), "{:?}", get("xtask-repo").inputs);
        // The binary's folder holds the others; their sources are theirs, not its.
        assert!(!bin.inputs.iter().any(|i| i.starts_with("xtask/")), "{:?}", bin.inputs);
        let hit = ws.affected(&["infra/shared/tradai_infra_shared/deployment.toml".to_owned()]);
        assert!(hit.contains_key("xtask-repo") && hit.contains_key("xtask") && !hit.contains_key("xtask-engine"), "{hit:?}");
    }

    #[test]
    fn no_cargo_workspace_means_no_crates() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = rust_workspace(Utf8Path::from_path(tmp.path()).unwrap()).unwrap();
        assert!(ws.crates.is_empty());
    }
}
