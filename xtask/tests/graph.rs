//! `cargo xtask graph`: the build engine's targets and edges as Mermaid, DOT and an HTML
//! page, with `--changed` marking what an edit affects, against the state or a git ref.
//! Runs point Docker at a socket that does not exist: the graph asks the engine nothing,
//! and neither does `--changed` while the bases are pinned by digest. (The fixtures' base
//! is a local image with no digest, which counts by its image id, so `--changed` against
//! their state asks the engine for that id, as a build does.)

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;

/// Docker unreachable: any call to the engine would fail the command.
const NO_DOCKER: &[(&str, &str)] = &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")];

fn graph(f: &Fixture, args: &[&str]) -> String {
    graph_env(f, args, NO_DOCKER)
}

fn graph_env(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["graph"];
    all.extend_from_slice(args);
    let out = f.xtask_env(&all, env);
    assert!(out.status.success(), "graph {args:?} failed:\n{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A fixture with two lambdas and a service.
fn fixture() -> Fixture {
    let f = Fixture::new(&["alpha", "beta"]);
    f.write("services/web/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY wheels/ /wheels/\n");
    f.write("services/web/requirements.txt", "six==1.16.0\n");
    f
}

/// `from -> to` pairs of a DOT graph, legend aside.
fn dot_edges(dot: &str) -> BTreeSet<(String, String)> {
    dot.lines()
        .filter_map(|l| l.trim().strip_suffix(';')?.split_once(" -> "))
        .map(|(a, b)| (a.trim_matches('"').to_owned(), b.trim_matches('"').to_owned()))
        .collect()
}

/// The ids a DOT graph gives `class="<class>"`, legend aside.
fn with_class(dot: &str, class: &str) -> BTreeSet<String> {
    dot.lines()
        .filter(|l| l.contains(&format!("class=\"{class}\"")) && !l.contains("\"legend:"))
        .map(|l| l.trim().split('"').nth(1).unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

const EDGES: [(&str, &str); 5] = [
    ("tradai-common", "site-packages:tradai-common"),
    ("site-packages:tradai-common", "tradai/lambda-base"),
    ("tradai/lambda-base", "tradai/lambda-alpha"),
    ("tradai/lambda-base", "tradai/lambda-beta"),
    ("wheels:web", "tradai/web"),
];

#[test]
fn the_graph_is_the_engines_targets_and_edges_in_mermaid_and_dot() {
    let f = fixture();
    let expected: BTreeSet<(String, String)> = EDGES.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect();

    let dot = graph(&f, &["--format", "dot"]);
    assert!(dot.starts_with("digraph targets {") && dot.contains("rankdir=LR;"), "{dot}");
    assert_eq!(dot_edges(&dot), expected);
    for (id, kind) in [("tradai-common", "wheel"), ("wheels:web", "wheelhouse"), ("tradai/web", "image"), ("tradai/lambda-alpha", "image")]
    {
        assert!(dot.contains(&format!("\"{id}\" [label=\"{id}\\n{kind}\"]")), "{id}: {dot}");
    }
    assert!(!dot.contains("class=") && !dot.contains("legend"), "no highlight without --changed");

    let mermaid = graph(&f, &[]);
    assert!(mermaid.contains("flowchart LR\n"), "mermaid is the default: {mermaid}");
    let arrows: BTreeSet<&str> = mermaid.lines().filter(|l| l.contains(" --> ")).map(str::trim).collect();
    let want: BTreeSet<&str> = [
        "tradai_common --> site_packages_tradai_common",
        "site_packages_tradai_common --> tradai_lambda_base",
        "tradai_lambda_base --> tradai_lambda_alpha",
        "tradai_lambda_base --> tradai_lambda_beta",
        "wheels_web --> tradai_web",
    ]
    .into_iter()
    .collect();
    assert_eq!(arrows, want);
    assert!(mermaid.contains("    tradai_lambda_alpha[\"tradai/lambda-alpha<br/>image\"]\n"), "{mermaid}");

    // The same targets the build plans: every id of a dry run is a node.
    let plan = f.build_json(&["lambda-build-all", "--dry-run"]);
    for (id, _, _) in &plan {
        assert!(dot.contains(&format!("\"{id}\" [label=")), "{id} is in the graph");
    }

    // Bases pinned by digest, as this repository's are: --changed asks no engine either.
    let pin = format!("example.invalid/python:3.11@sha256:{}", "a".repeat(64));
    f.write("xtask.toml", &format!("[python-base]\nlambda = \"{pin}\"\nservice = \"{pin}\"\n"));
    let dot = graph(&f, &["--changed", "--format", "dot"]);
    assert_eq!(with_class(&dot, "changed").len(), 7, "never built here, all of them: {dot}");
}

#[test]
fn changed_marks_what_an_edit_affects_since_the_last_build() {
    let f = fixture();
    f.build_json(&["lambda-build-all"]);

    // Just built: the lambdas' side is unchanged; the service was never built here.
    let dot = graph_env(&f, &["--changed", "--format", "dot"], &[]);
    assert_eq!(with_class(&dot, "changed"), set(&["tradai/web", "wheels:web"]), "{dot}");
    assert!(with_class(&dot, "affected").is_empty(), "{dot}");
    assert!(dot.contains("tradai/web: never built here\\l"), "{dot}");

    // One handler: that lambda alone.
    f.append("lambdas/alpha/handler.py", "# edited\n");
    let dot = graph_env(&f, &["--changed", "--format", "dot"], &[]);
    assert_eq!(with_class(&dot, "changed"), set(&["tradai/lambda-alpha", "tradai/web", "wheels:web"]), "{dot}");
    assert!(dot.contains("tradai/lambda-alpha: file handler.py modified\\l"), "the legend says why: {dot}");

    // The shared library: its wheel changed, and everything built from it is affected.
    f.append("libs/tradai-common/src/tradai_common/__init__.py", "EDITED = True\n");
    let mermaid = graph_env(&f, &["--changed"], &[]);
    for id in ["tradai_common", "tradai_lambda_alpha"] {
        assert!(mermaid.lines().any(|l| l.trim_start().starts_with(&format!("{id}[")) && l.ends_with(":::changed")), "{id}: {mermaid}");
    }
    for id in ["site_packages_tradai_common", "tradai_lambda_base", "tradai_lambda_beta"] {
        assert!(mermaid.lines().any(|l| l.trim_start().starts_with(&format!("{id}[")) && l.ends_with(":::affected")), "{id}: {mermaid}");
    }
    assert!(mermaid.contains("classDef changed ") && mermaid.contains("classDef affected "), "{mermaid}");
    assert!(mermaid.contains("legend_affected[\"affected: built from a changed target (3)<br/>site-packages:tradai-common<br/>tradai/lambda-base<br/>tradai/lambda-beta\"]:::affected"), "{mermaid}");

    // The page: written, self-contained, with the same marks.
    let page = f.path().join("graph.html");
    let out = f.xtask_env(&["graph", "--changed", "--html", page.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "with --html and no --format nothing is printed");
    assert!(stderr(&out).contains("4 changed, 3 affected, 0 unchanged of 7 targets"), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && html.contains("<svg"), "self-contained");
    assert_eq!(html.matches("<rect ").count(), 7, "one box per target");
    assert!(html.contains("<li><code>tradai/lambda-alpha</code>: file handler.py modified</li>"), "{html}");
    assert!(html.contains("<li><code>tradai/lambda-beta</code>: dependency tradai/lambda-base changed</li>"), "{html}");
}

fn git(f: &Fixture, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=graph-test", "-c", "user.email=graph-test@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn base_compares_with_the_tree_a_branch_forked_from() {
    let f = fixture();
    f.write(".gitignore", "target/\n");
    git(&f, &["init", "-q", "-b", "main"]);
    git(&f, &["add", "-A"]);
    git(&f, &["commit", "-q", "-m", "base"]);
    f.append("lambdas/beta/handler.py", "# edited\n");

    let dot = graph(&f, &["--base", "main", "--format", "dot"]);
    assert_eq!(with_class(&dot, "changed"), set(&["tradai/lambda-beta"]), "--base implies --changed: {dot}");
    assert!(with_class(&dot, "affected").is_empty());
    assert!(dot.contains("Legend: compared with main (where this branch forked from it)"), "{dot}");

    let out = f.xtask_env(&["graph", "--base", "no-such-ref"], NO_DOCKER);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
