//! `cargo xtask docs-freshness`: is the documentation still true to the tool? Every
//! command of `cargo xtask --help` is documented (README.md or docs/), every
//! `cargo xtask <name>` the documentation mentions is a real command, and every relative
//! link in a Markdown file resolves.

use std::collections::BTreeSet;
use std::fs;
use std::process::ExitCode;

use anyhow::Result;
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use xtask_ci::github::markdown_table;
use xtask_ci::{Diagnostic, Github};

use crate::aliases::ALIASES;
use crate::project::Project;

#[derive(Debug, Args)]
pub struct DocsFreshnessArgs {}

/// Folders never searched for Markdown.
const SKIP_DIRS: &[&str] = &["target", "node_modules", "__pycache__"];

impl DocsFreshnessArgs {
    /// `cli` is the command line's definition (`Cli::command()`), whose commands the docs
    /// must mention.
    pub fn run(&self, project: &Project, cli: &clap::Command) -> Result<ExitCode> {
        let github = Github::detect();
        let root = &project.root;
        let markdown = markdown_files(root);
        let documented: Vec<&Utf8PathBuf> = markdown.iter().filter(|p| is_command_doc(root, p)).collect();
        let commands: BTreeSet<String> = cli.get_subcommands().map(|c| c.get_name().to_owned()).collect();
        let aliases: BTreeSet<String> = ALIASES.iter().map(|(a, _)| (*a).to_owned()).collect();

        let mut problems = Vec::new();
        let mut texts = Vec::new();
        for path in &markdown {
            let rel = path.strip_prefix(root).unwrap_or(path).to_string();
            let Ok(text) = fs::read_to_string(path) else { continue };
            problems.extend(stale_mentions(&rel, &text, &commands, &aliases));
            problems.extend(broken_links(root, path, &rel, &text));
            if documented.contains(&path) {
                texts.push(text);
            }
        }
        let all_docs = texts.join("\n");
        for command in &commands {
            if !mentions(&all_docs, command) {
                problems
                    .push(Diagnostic::new("docs", format!("`cargo xtask {command}` is not documented; describe it in README.md or docs/")));
            }
        }

        let rows = vec![
            vec!["Markdown files".into(), markdown.len().to_string()],
            vec![
                "commands documented".into(),
                format!("{}/{}", commands.iter().filter(|c| mentions(&all_docs, c)).count(), commands.len()),
            ],
            vec!["problems".into(), problems.len().to_string()],
        ];
        github.summary(&format!("### Documentation freshness\n\n{}", markdown_table(&["check", "result"], &rows)))?;
        xtask_ci::github::annotate(&github, &problems);
        if problems.is_empty() {
            eprintln!("docs are fresh: {} Markdown files, {} commands documented, every link resolves", markdown.len(), commands.len());
            return Ok(ExitCode::SUCCESS);
        }
        for p in &problems {
            eprintln!("error: {}", p.display());
        }
        eprintln!("error: {} documentation problem(s)", problems.len());
        Ok(ExitCode::FAILURE)
    }
}

/// README.md and docs/ describe the commands; other READMEs describe their folder.
fn is_command_doc(root: &Utf8Path, path: &Utf8Path) -> bool {
    path == root.join("README.md") || path.starts_with(root.join("docs"))
}

/// Every `*.md` of the repository, outside hidden, build and environment folders.
fn markdown_files(root: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = dir.read_dir_utf8() else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if !name.starts_with('.') && !SKIP_DIRS.contains(&name) {
                    todo.push(entry.path().to_owned());
                }
            } else if name.ends_with(".md") {
                out.push(entry.path().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Whether `word` appears as a whole command name (hyphens are part of names).
fn mentions(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// `cargo xtask <name>` mentions whose name is no command or seed alias.
fn stale_mentions(rel: &str, text: &str, commands: &BTreeSet<String>, aliases: &BTreeSet<String>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("cargo xtask ") {
            // The name: lowercase letters, digits, `-` and a trailing `*`; a sentence's
            // full stop or a closing backtick ends it.
            let rest = &line[at + "cargo xtask ".len()..];
            let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*')).unwrap_or(rest.len());
            let word = &rest[..end];
            // Placeholders (`<command>`), options and empty words are not names.
            if word.is_empty() || !word.starts_with(|c: char| c.is_ascii_lowercase()) {
                continue;
            }
            // `infra-*` stands for a family of commands: at least one must exist.
            if let Some(prefix) = word.strip_suffix('*') {
                if !commands.iter().chain(aliases).any(|c| c.starts_with(prefix)) {
                    out.push(
                        Diagnostic::new(
                            "docs",
                            format!("no command matches `cargo xtask {word}`; update the text or see `cargo xtask --help`"),
                        )
                        .at(rel, Some(index as u32 + 1), None),
                    );
                }
                continue;
            }
            if !commands.contains(word) && !aliases.contains(word) {
                out.push(
                    Diagnostic::new(
                        "docs",
                        format!("`cargo xtask {word}` is not a command (any more); update the text or see `cargo xtask --help`"),
                    )
                    .at(rel, Some(index as u32 + 1), None),
                );
            }
        }
    }
    out
}

/// Relative Markdown links (`[text](path)`) whose target does not exist.
fn broken_links(root: &Utf8Path, path: &Utf8Path, rel: &str, text: &str) -> Vec<Diagnostic> {
    use pulldown_cmark::{Event, Parser, Tag};
    let mut out = Vec::new();
    let base = path.parent().unwrap_or(root);
    // A real Markdown parser: code blocks, inline code and reference links as Markdown
    // means them.
    for (event, range) in Parser::new(text).into_offset_iter() {
        let Event::Start(Tag::Link { dest_url, .. }) = event else { continue };
        let target = dest_url.as_ref();
        if target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let file = target.split('#').next().unwrap_or(target);
        let resolved = if let Some(abs) = file.strip_prefix('/') { root.join(abs) } else { base.join(file) };
        if !resolved.exists() {
            let line = text[..range.start].matches('\n').count() as u32 + 1;
            out.push(Diagnostic::new("docs", format!("link to `{target}` does not resolve (no {resolved})")).at(rel, Some(line), None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_need_whole_names() {
        assert!(mentions("run `cargo xtask ci` first", "ci"));
        assert!(!mentions("run lambda-build-all", "lambda-build"));
        assert!(mentions("| lambda-build | x |", "lambda-build"));
    }

    #[test]
    fn stale_mentions_skip_placeholders() {
        let commands: BTreeSet<String> = ["ci".to_owned()].into();
        let d = stale_mentions(
            "README.md",
            "`cargo xtask ci` and `cargo xtask <command>`, `cargo xtask c*`, cargo xtask ci.\nthen cargo xtask gone --x and cargo xtask z*\n",
            &commands,
            &BTreeSet::new(),
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(
            d[0].display(),
            "README.md:2: docs: `cargo xtask gone` is not a command (any more); update the text or see `cargo xtask --help`"
        );
    }

    #[test]
    fn broken_links_are_found_outside_code_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::write(root.join("docs/a.md"), "").unwrap();
        let text = "[ok](docs/a.md#part) [web](https://x.y) [gone](docs/b.md)\n```\n[in code](nope.md)\n```\n`[inline](nope.md)`\n\nSee [the ref][r].\n\n[r]: docs/missing.md\n";
        let d = broken_links(root, &root.join("README.md"), "README.md", text);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].display().starts_with("README.md:1: docs: link to `docs/b.md` does not resolve"), "{}", d[0].display());
        assert!(d[1].display().starts_with("README.md:7: docs: link to `docs/missing.md` does not resolve"), "{}", d[1].display());
    }
}
