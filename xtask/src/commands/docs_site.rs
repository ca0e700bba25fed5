//! `cargo xtask docs-build`: the documentation site. `mkdocs build --strict` over
//! `mkdocs.yml` (README.md as the home page, docs/ and the area READMEs), with MkDocs and
//! mkdocs-material pinned and installed by the tool itself on first use. Strict mode fails
//! the build on a link to a missing page or anchor, and on a page left out of the nav.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use xtask_ci::{Diagnostic, Github};
use xtask_engine::{Cmd, ProcessError};

use crate::project::Project;
use crate::tools::Toolbox;

#[derive(Debug, Args)]
pub struct DocsBuildArgs {
    /// Folder to write the site into (default: `<target>/xtask/site`); MkDocs empties it
    /// first, so it must be new, empty or an earlier site
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,
}

impl DocsBuildArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let root = &project.root;
        let config = root.join("mkdocs.yml");
        if !config.is_file() {
            bail!("no mkdocs.yml at {root}; the site's configuration belongs at the repository root (see docs/ci.md)");
        }
        let out = match &self.out {
            Some(dir) => absolute(dir)?,
            None => project.target_dir().join("xtask/site"),
        };
        check_out_dir(root, &out)?;

        let env = Toolbox::current(root).docs_site()?;
        let started = Instant::now();
        let build = Cmd::new(env.join("bin/mkdocs").as_str(), "build the documentation site (mkdocs build --strict)")
            // Not `--quiet`: MkDocs 1.6 then drops warnings before strict mode counts
            // them, and a broken link passes.
            .args(["build", "--strict", "--config-file", config.as_str(), "--site-dir", out.as_str()])
            .dir(root)
            // mkdocs-material's notice about MkDocs 2.0, printed on every build.
            .env("NO_MKDOCS_2_WARNING", "1")
            .run();
        let github = Github::detect();
        match build {
            Ok(_) => {
                let pages = count_pages(&out);
                let seconds = started.elapsed().as_secs_f64();
                eprintln!("site built in {out}: {pages} pages, every link and anchor resolves ({seconds:.1} s)");
                github.summary(&format!(
                    "### Documentation site\n\n{pages} pages built with `mkdocs build --strict`: every link and anchor resolves.\n"
                ))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(ProcessError::Failed { stderr, .. }) => {
                let problems = problems(&stderr);
                if problems.is_empty() {
                    // Not a finding of strict mode (a broken mkdocs.yml or hook): show what
                    // MkDocs said.
                    bail!("mkdocs build failed:\n{}", stderr.trim_end());
                }
                xtask_ci::github::annotate(&github, &problems);
                for p in &problems {
                    eprintln!("error: {}", p.display());
                }
                eprintln!(
                    "error: mkdocs build --strict found {} problem(s); fix the links, anchors, nav entries or mkdocs.yml settings named above",
                    problems.len()
                );
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `dir` made absolute against the working folder, as the user typed it.
fn absolute(dir: &Utf8Path) -> Result<Utf8PathBuf> {
    if dir.is_absolute() {
        return Ok(dir.to_owned());
    }
    let cwd = std::env::current_dir().context("failed to read the working folder")?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|p| anyhow::anyhow!("the working folder {} is not UTF-8", p.display()))?;
    Ok(cwd.join(dir))
}

/// MkDocs deletes everything in the folder it builds into: refuse a folder that holds
/// the repository or anything but an earlier site.
fn check_out_dir(root: &Utf8Path, out: &Utf8Path) -> Result<()> {
    if root.starts_with(out) || out.starts_with(root.join("docs")) {
        bail!("--out {out} would hold or sit inside the documentation sources; pick a folder outside them, such as target/xtask/site");
    }
    let Ok(mut entries) = out.read_dir_utf8() else { return Ok(()) };
    let empty = entries.next().is_none();
    if !empty && !out.join("sitemap.xml").is_file() {
        bail!(
            "--out {out} is not empty and holds no earlier site (no sitemap.xml); MkDocs empties the folder it builds into, so pick a new or empty one"
        );
    }
    Ok(())
}

/// The site's pages: every `index.html` (one per page with directory URLs), outside the
/// theme's assets.
fn count_pages(out: &Utf8Path) -> usize {
    let mut count = 0;
    let mut todo = vec![out.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = dir.read_dir_utf8() else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path != out.join("assets") && path != out.join("search") {
                    todo.push(path.to_owned());
                }
            } else if entry.file_name() == "index.html" {
                count += 1;
            }
        }
    }
    count
}

/// The warnings and errors of a failed strict build, each with the file it names. MkDocs
/// prints `WARNING -  Doc file 'docs/ci.md' contains a link ...`; a message can go on
/// over indented lines (the pages missing from the nav, one per line).
fn problems(stderr: &str) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut current: Option<String> = None;
    let flush = |message: Option<String>, out: &mut Vec<Diagnostic>| {
        if let Some(m) = message {
            let d = Diagnostic::new("docs-site", m.clone());
            out.push(match named_file(&m) {
                Some(file) => d.at(file, None, None),
                None => d,
            });
        }
    };
    for line in stderr.lines() {
        let level = ["WARNING", "ERROR"].iter().find_map(|l| line.strip_prefix(l).and_then(|rest| rest.trim_start().strip_prefix('-')));
        if let Some(message) = level {
            flush(current.take(), &mut out);
            current = Some(message.trim().to_owned());
        } else if let Some(m) = current.as_mut()
            && line.starts_with(' ')
            && !line.trim().is_empty()
        {
            m.push(' ');
            m.push_str(line.trim());
        } else {
            flush(current.take(), &mut out);
        }
    }
    flush(current, &mut out);
    out
}

/// The file a MkDocs message is about (`Doc file 'X' ...`), a path from the repository
/// root because the site keeps the repository's layout.
fn named_file(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Doc file '")?;
    Some(rest[..rest.find('\'')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_mode_findings_are_read_with_their_files() {
        let stderr = "INFO    -  Cleaning site directory\n\
            WARNING -  Doc file 'README.md' contains a link 'docs/nothing.md', but the target is not found among documentation files.\n\
            WARNING -  The following pages exist in the docs directory, but are not included in the \"nav\" configuration:\n  - docs/new.md\n\n\
            Aborted with 2 warnings in strict mode!\n";
        let p = problems(stderr);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].file.as_deref(), Some("README.md"));
        assert!(p[0].message.contains("'docs/nothing.md'"), "{}", p[0].message);
        assert_eq!(p[1].file, None);
        assert!(p[1].message.ends_with("configuration: - docs/new.md"), "{}", p[1].message);
        assert!(problems("Traceback (most recent call last):\n  File \"x\"\n").is_empty());
    }

    #[test]
    fn the_out_folder_is_refused_when_it_holds_sources_or_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        assert!(check_out_dir(root, root).is_err(), "the repository itself");
        assert!(check_out_dir(root, &root.join("docs/site")).is_err(), "inside docs/");
        assert!(check_out_dir(root, &root.join("target/xtask/site")).is_ok(), "a new folder");
        std::fs::create_dir_all(root.join("other")).unwrap();
        assert!(check_out_dir(root, &root.join("other")).is_ok(), "an empty folder");
        std::fs::write(root.join("other/notes.txt"), "mine").unwrap();
        let err = check_out_dir(root, &root.join("other")).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        std::fs::write(root.join("other/sitemap.xml"), "").unwrap();
        assert!(check_out_dir(root, &root.join("other")).is_ok(), "an earlier site");
    }
}
