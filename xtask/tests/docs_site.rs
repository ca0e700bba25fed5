//! `cargo xtask docs-build` through the real binary: the repository's site has a page for
//! the README and for every guide and area README, every internal link and anchor of the
//! built HTML points at something the site holds, and strict mode fails a build whose docs
//! link to a missing page or anchor. MkDocs is the real one, installed by the tool into its
//! tools folder on first use (shared with every other run of this binary).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn xtask(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--root").arg(root).args(args);
    for var in ["GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "XTASK_OFFLINE"] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The Markdown files mkdocs.yml's nav names, as repository paths.
fn nav_pages(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("mkdocs.yml")).unwrap();
    let nav = text.split("\nnav:\n").nth(1).expect("mkdocs.yml has a nav");
    nav.lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.trim().strip_prefix("- ")?.rsplit_once(": ").map(|(_, p)| p.trim().to_owned()))
        .filter(|p| p.ends_with(".md"))
        .collect()
}

/// Where the site puts the page of a repository Markdown file (directory URLs; a README
/// is its folder's page).
fn page_of(md: &str) -> String {
    let stem = md.strip_suffix(".md").unwrap();
    match stem.strip_suffix("README") {
        Some(dir) => format!("{dir}index.html"),
        None => format!("{stem}/index.html"),
    }
}

/// Every value of `href="..."` and `src="..."` in an HTML text.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in [" href=\"", " src=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

fn html_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir).into_iter().map(|e| e.unwrap().into_path()).filter(|p| p.extension().is_some_and(|e| e == "html")).collect()
}

/// Copies what the site is built from (mkdocs.yml, docs/, every README the nav names)
/// into a fresh repository folder.
fn copy_of_docs() -> tempfile::TempDir {
    let src = repo();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("xtask.toml"), "[build]\nplatform = \"linux/amd64\"\n").unwrap();
    let mut files = vec!["mkdocs.yml".to_owned()];
    files.extend(nav_pages(&src));
    for entry in walkdir::WalkDir::new(src.join("docs")) {
        let p = entry.unwrap().into_path();
        if p.is_file() {
            files.push(p.strip_prefix(&src).unwrap().to_string_lossy().into_owned());
        }
    }
    for f in files {
        let to = dir.path().join(&f);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(src.join(&f), to).unwrap();
    }
    dir
}

#[test]
fn the_site_has_every_page_and_every_internal_link_resolves() {
    let root = repo();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let started = std::time::Instant::now();
    let out = xtask(&root, &["docs-build", "--out", site.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    eprintln!("docs-build took {:.1} s", started.elapsed().as_secs_f64());
    assert!(err.contains(&format!("site built in {}", site.display())), "{err}");

    // The home page is README.md, rendered.
    let index = fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("TradAI monorepo and"), "the home page is not README.md");
    assert!(index.contains("How <code>cargo xtask</code> runs"), "README's headings are on the home page");

    // A page for every guide in docs/ (whether or not the nav names it) and every README
    // the nav names.
    let mut expected: Vec<String> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    assert!(expected.len() >= 5, "{expected:?}");
    let nav = nav_pages(&root);
    for readme in ["README.md", "infra/README.md", "lambdas/README.md", "libs/README.md", "services/README.md"] {
        assert!(nav.iter().any(|p| p == readme), "the nav names {readme}: {nav:?}");
    }
    expected.extend(nav);
    for md in &expected {
        let page = site.join(page_of(md));
        assert!(page.is_file(), "no page {} for {md}", page.display());
        let first_heading = fs::read_to_string(root.join(md)).unwrap().lines().find(|l| l.starts_with("# ")).map(|h| h[2..].to_owned());
        if let Some(h) = first_heading.filter(|h| !h.contains('`')) {
            assert!(fs::read_to_string(&page).unwrap().contains(&h), "{} does not show {md}'s title {h:?}", page.display());
        }
    }

    // Every relative link and asset of every page points at a file of the site, and every
    // fragment at an id on the page it names.
    let mut ids: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut checked = 0;
    let mut broken = Vec::new();
    for page in html_files(&site) {
        let html = fs::read_to_string(&page).unwrap();
        for link in links(&html) {
            if link.is_empty() || link.contains("://") || link.starts_with("mailto:") || link.starts_with("data:") || link.starts_with("//")
            {
                continue;
            }
            let (path, fragment) = link.split_once('#').map_or((link.as_str(), None), |(p, f)| (p, Some(f)));
            let path = path.split('?').next().unwrap();
            // 404.html, served at any depth, links from the site's root.
            let mut target = match path.strip_prefix('/') {
                Some(from_root) => site.join(from_root),
                None if path.is_empty() => page.clone(),
                None => page.parent().unwrap().join(path),
            };
            if path.ends_with('/') || path == "." || path == ".." || target.is_dir() {
                target = target.join("index.html");
            }
            checked += 1;
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{}: {link}", page.strip_prefix(&site).unwrap().display()));
                continue;
            };
            assert!(target.starts_with(site.canonicalize().unwrap()), "{link} leaves the site");
            if let Some(f) = fragment.filter(|f| !f.is_empty() && target.extension().is_some_and(|e| e == "html")) {
                let text = ids.entry(target.clone()).or_insert_with(|| fs::read_to_string(&target).unwrap());
                if !text.contains(&format!("id=\"{f}\"")) {
                    broken.push(format!("{}: {link} (no such anchor)", page.strip_prefix(&site).unwrap().display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "links that do not resolve in the built site:\n{}", broken.join("\n"));
    // The README's links to the guides and the area READMEs are among them.
    assert!(index.contains("href=\"docs/architecture/#assembled-images-no-daemon\""), "README's link to an architecture section");
    assert!(index.contains("href=\"infra/\""), "README's link to infra/README.md");
    assert!(checked > 500, "only {checked} links checked");
}

#[test]
fn strict_mode_fails_on_a_broken_link_or_anchor() {
    let copy = copy_of_docs();
    let root = copy.path();
    let site = root.join("target/site");
    let site_arg = site.to_str().unwrap();

    // The copy as it is builds: what fails below fails because of the planted links.
    let clean = xtask(root, &["docs-build", "--out", site_arg]);
    assert!(clean.status.success(), "{}", stderr(&clean));

    let ci = root.join("docs/ci.md");
    let mut text = fs::read_to_string(&ci).unwrap();
    text.push_str("\nSee [the gone guide](gone.md) and [a missing section](operations.md#no-such-section).\n");
    fs::write(&ci, text).unwrap();
    let out = xtask(root, &["docs-build", "--out", site_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: docs/ci.md: docs-site: Doc file 'docs/ci.md' contains a link 'gone.md'"), "{err}");
    assert!(err.contains("does not contain an anchor '#no-such-section'"), "{err}");
    assert!(err.contains("mkdocs build --strict found 2 problem(s)"), "{err}");

    // A new guide nobody added to the nav fails too.
    fs::write(&ci, fs::read_to_string(repo().join("docs/ci.md")).unwrap()).unwrap();
    fs::write(root.join("docs/new-guide.md"), "# New\n").unwrap();
    let out = xtask(root, &["docs-build", "--out", site_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not included in the \"nav\" configuration: - docs/new-guide.md"), "{err}");
}

#[test]
fn a_folder_holding_other_files_is_never_emptied() {
    let copy = copy_of_docs();
    let mine = copy.path().join("mine");
    fs::create_dir_all(&mine).unwrap();
    fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let out = xtask(copy.path(), &["docs-build", "--out", mine.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("is not empty and holds no earlier site"), "{err}");
    assert_eq!(fs::read_to_string(mine.join("notes.txt")).unwrap(), "keep me");

    fs::remove_file(copy.path().join("mkdocs.yml")).unwrap();
    let out = xtask(copy.path(), &["docs-build"]);
    assert!(stderr(&out).contains("no mkdocs.yml at"), "{}", stderr(&out));
    assert!(!out.status.success());
}
