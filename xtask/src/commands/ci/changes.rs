//! `ci changes` and `ci verdict`: what a change affects, and the one status branch protection requires.

use super::*;

/// `cargo xtask ci changes`.
pub(super) fn changes(project: &Project, github: &Github, args: &ChangesArgs) -> Result<ExitCode> {
    let repo = discover(project)?;
    // Tests follow the files and their imports; images follow the engine's input hashes.
    let affected = match (&args.base, args.all) {
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
        "{scope}: tests {}{}; Lambda images {}{}; service images {}",
        list(&a.packages),
        if a.lambda_tests { " + lambdas" } else { "" },
        list(&a.lambdas),
        if a.lambda_base { " (lambda-base rebuilt)" } else { "" },
        list(&a.services)
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
