//! `ci shards`: how many runners a sharded build should use, decided from its own dry run.
//!
//! `cargo xtask ci shards -- lambda-bootstrap --registry ecr` runs the command with
//! `--dry-run --json` (which asks the registry what it holds, and builds nothing), counts
//! the images it would build, and writes the shard matrix of a workflow's build job as a
//! job output: `{"shard": ["1/3", "2/3", "3/3"]}` for `--shard ${{ matrix.shard }}`. A
//! run with little to build gets one shard; nothing to build gets none (`count` 0), so
//! the workflow skips the matrix and only the final, unsharded step runs.

use super::*;

#[derive(Debug, Args)]
pub struct ShardsArgs {
    /// At most this many shards
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub max: u32,
    /// Images one shard builds before another shard is worth its runner's start-up
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_shard: u32,
    /// The build or publish command to plan, with its flags (after `--`)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Shards for `images` images to build: one per `per_shard` images, rounded up, at most
/// `max`; none when nothing is to be built.
pub(super) fn shard_count(images: usize, per_shard: u32, max: u32) -> usize {
    images.div_ceil(per_shard.max(1) as usize).min(max as usize)
}

/// The images a `--dry-run --json` report would build: `targets` whose `kind` is
/// `image` and `status` is `would-build`.
fn images_to_build(report: &serde_json::Value) -> Result<Vec<String>> {
    let targets = report.get("targets").and_then(|t| t.as_array()).context("the dry run's JSON has no `targets` list")?;
    Ok(targets
        .iter()
        .filter(|t| t.get("kind").and_then(|k| k.as_str()) == Some("image"))
        .filter(|t| t.get("status").and_then(|s| s.as_str()) == Some("would-build"))
        .filter_map(|t| t.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        .collect())
}

/// `cargo xtask ci shards`.
pub(super) fn shards(project: &Project, github: &Github, args: &ShardsArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("failed to find the running cargo xtask binary")?;
    let exe = exe.to_str().context("the cargo xtask binary's path is not UTF-8")?;
    let shown = args.command.join(" ");
    // The dry run's own step summary is welcome in the job; its job outputs are not.
    let done = Cmd::new(exe, format!("plan `{shown}` (dry run)"))
        .arg("--root")
        .arg(project.root.as_str())
        .args(args.command.iter().cloned())
        .args(["--dry-run", "--json"])
        .env_remove("GITHUB_OUTPUT")
        .dir(&project.root)
        .run()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("`cargo xtask {shown} --dry-run --json` failed; run it to see why"))?;
    eprint!("{}", done.stderr);
    let report: serde_json::Value = serde_json::from_str(&done.stdout).with_context(|| {
        format!("`cargo xtask {shown} --dry-run --json` did not print one JSON object; is it a build or publish command?")
    })?;
    let images = images_to_build(&report)?;
    let count = shard_count(images.len(), args.per_shard, args.max);
    let list: Vec<String> = (1..=count).map(|i| format!("{i}/{count}")).collect();
    // An empty matrix is an error in Actions even in a skipped job: `1/1` stands in, and
    // the job runs only when `count` is not 0.
    let matrix = serde_json::json!({ "shard": if list.is_empty() { vec!["1/1".to_owned()] } else { list.clone() } });
    let line = match count {
        0 => format!("{shown}: nothing to build; no shards"),
        n => format!("{shown}: {} image(s) to build in {n} shard(s) of up to {} ({})", images.len(), args.per_shard, list.join(", ")),
    };
    eprintln!("{line}");
    github.set_output("count", &count.to_string()).context("failed to write $GITHUB_OUTPUT")?;
    github.set_output("images", &images.len().to_string()).context("failed to write $GITHUB_OUTPUT")?;
    github
        .set_output("matrix", &serde_json::to_string(&matrix).context("failed to encode the matrix")?)
        .context("failed to write $GITHUB_OUTPUT")?;
    github.summary(&format!("### Shards\n\n{line}\n"))?;
    println!("{}", serde_json::json!({ "images": images, "count": count, "matrix": matrix }));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_grow_with_the_work_up_to_the_limit() {
        assert_eq!(shard_count(0, 6, 4), 0);
        assert_eq!(shard_count(1, 6, 4), 1);
        assert_eq!(shard_count(6, 6, 4), 1);
        assert_eq!(shard_count(7, 6, 4), 2);
        assert_eq!(shard_count(18, 6, 4), 3, "lambda-base and 17 Lambdas");
        assert_eq!(shard_count(100, 6, 4), 4);
    }

    #[test]
    fn only_images_to_build_count() {
        let report = serde_json::json!({"targets": [
            {"id": "tradai-common", "kind": "wheel", "status": "would-build"},
            {"id": "tradai/lambda-base", "kind": "image", "status": "would-build"},
            {"id": "tradai/lambda-a", "kind": "image", "status": "skipped"},
            {"id": "tradai/lambda-b", "kind": "image", "status": "would-build"},
        ]});
        assert_eq!(images_to_build(&report).unwrap(), ["tradai/lambda-base", "tradai/lambda-b"]);
        assert!(images_to_build(&serde_json::json!({})).unwrap_err().to_string().contains("`targets`"));
    }
}
