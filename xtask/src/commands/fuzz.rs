//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `xtask/fuzz/` for a bounded time
//! each, so the three readers of files a user writes by hand (the `.dockerignore`
//! matcher, the Dockerfile reader of the assembler, the `infra/.env` reader) are shown
//! to answer any input with a result or an error, never a panic.
//!
//! How it runs on a stable toolchain: cargo-fuzz (provisioned, pinned, by `tools.rs`) is
//! asked for `--sanitizer none`. The sanitizers need the nightly-only `-Zsanitizer`, but
//! the coverage instrumentation libFuzzer steers by (`-Cpasses=sancov-module` and
//! `-Cllvm-args=-sanitizer-coverage-*`) is stable, and the fuzzed modules hold no
//! `unsafe` code for AddressSanitizer to watch: a panic (an assertion, an out-of-range
//! index or slice, an arithmetic overflow, since cargo-fuzz keeps debug assertions on)
//! aborts, and libFuzzer reports the input. So nothing needs `RUSTC_BOOTSTRAP`.
//!
//! Where things are: the targets and their seed corpora (`xtask/fuzz/corpus/<target>/`)
//! are committed; the build (`target/xtask/fuzz/build/`), the corpus the runs grow
//! (`target/xtask/fuzz/corpus/<target>/`, read with the seeds and kept between runs),
//! crash inputs (`target/xtask/fuzz/artifacts/<target>/`) and each run's full libFuzzer
//! output (`target/xtask/fuzz/logs/<target>.log`) are not. After a run without a crash
//! the saved corpus is minimised, so it stays small however often the command runs.

use std::fs;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, ValueEnum};
use xtask_engine::{Cmd, ProcessError};

use crate::project::Project;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The targets to fuzz, one after the other (default: all three)
    #[arg(value_enum, value_name = "TARGET")]
    pub targets: Vec<FuzzTarget>,
    /// How long to fuzz each target, in seconds
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
    /// Also stop each target after N inputs, whichever bound comes first
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: Option<u64>,
    /// Run this one input (a crash the fuzzer saved) through the target instead of fuzzing
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seconds", "runs"])]
    pub input: Option<Utf8PathBuf>,
}

/// The fuzz targets, as named in `xtask/fuzz/Cargo.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FuzzTarget {
    Dockerignore,
    Dockerfile,
    Dotenv,
}

impl FuzzTarget {
    fn name(self) -> &'static str {
        match self {
            FuzzTarget::Dockerignore => "dockerignore",
            FuzzTarget::Dockerfile => "dockerfile",
            FuzzTarget::Dotenv => "dotenv",
        }
    }

    /// What it fuzzes, for the line that starts it.
    fn subject(self) -> &'static str {
        match self {
            FuzzTarget::Dockerignore => "the .dockerignore matcher, xtask/engine/src/ignore.rs",
            FuzzTarget::Dockerfile => "the Dockerfile reader, xtask/plugins/image/src/assemble/dockerfile.rs",
            FuzzTarget::Dotenv => "the .env reader, xtask/pulumi/src/dotenv.rs",
        }
    }
}

/// Where one run reads and writes.
struct Layout {
    /// The cargo-fuzz project (`xtask/fuzz/`).
    project: Utf8PathBuf,
    /// `<target>/xtask/fuzz/`.
    work: Utf8PathBuf,
}

impl Layout {
    fn seeds(&self, t: FuzzTarget) -> Utf8PathBuf {
        self.project.join("corpus").join(t.name())
    }
    fn corpus(&self, t: FuzzTarget) -> Utf8PathBuf {
        self.work.join("corpus").join(t.name())
    }
    fn artifacts(&self, t: FuzzTarget) -> Utf8PathBuf {
        self.work.join("artifacts").join(t.name())
    }
    fn log(&self, t: FuzzTarget) -> Utf8PathBuf {
        self.work.join("logs").join(format!("{}.log", t.name()))
    }
}

impl FuzzArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let mut targets: Vec<FuzzTarget> = Vec::new();
        for t in if self.targets.is_empty() { FuzzTarget::value_variants() } else { &self.targets[..] } {
            if !targets.contains(t) {
                targets.push(*t);
            }
        }
        if self.input.is_some() && targets.len() != 1 {
            bail!("--input runs one target; name it: `cargo xtask fuzz <dockerignore|dockerfile|dotenv> --input FILE`");
        }
        let layout = Layout { project: fuzz_project(project)?, work: project.target_dir().join("xtask/fuzz") };
        let cargo_fuzz = project.tools().cargo_fuzz()?;
        build(&cargo_fuzz, &layout)?;
        if let Some(input) = &self.input {
            return reproduce(&cargo_fuzz, &layout, targets[0], input);
        }
        let mut crashed = Vec::new();
        for t in targets {
            match self.fuzz(&cargo_fuzz, &layout, t)? {
                Outcome::Clean(stats) => {
                    let saved = count_files(&layout.corpus(t));
                    eprintln!(
                        "{}: {}; no crash",
                        t.name(),
                        stats.describe(saved, &relative(layout.corpus(t).as_str(), project_root(&layout)))
                    );
                }
                Outcome::Crash(message) => {
                    eprintln!("error: {message}");
                    crashed.push(t.name());
                }
            }
        }
        if crashed.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        bail!("{} fuzz target(s) crashed: {}", crashed.len(), crashed.join(", "))
    }

    /// Fuzzes one target for the time (and runs) asked; a crash is an outcome, not an
    /// error, so the other targets still run.
    fn fuzz(&self, cargo_fuzz: &Utf8Path, layout: &Layout, t: FuzzTarget) -> Result<Outcome> {
        let (seeds, corpus, artifacts, log) = (layout.seeds(t), layout.corpus(t), layout.artifacts(t), layout.log(t));
        let seed_count = count_files(&seeds);
        if seed_count == 0 {
            bail!("the seed corpus {seeds} is missing or empty; restore it with `git checkout -- {seeds}`");
        }
        for dir in [&corpus, &artifacts, &log.parent().map(Utf8Path::to_owned).unwrap_or_default()] {
            fs::create_dir_all(dir).with_context(|| format!("failed to create {dir}"))?;
        }
        eprintln!(
            "fuzzing {} ({}) for {} s, from {seed_count} seed input(s) and {} saved by earlier runs",
            t.name(),
            t.subject(),
            self.seconds,
            count_files(&corpus)
        );
        let mut libfuzzer = vec![
            format!("-max_total_time={}", self.seconds),
            // One input that takes this long is a hang worth reporting, not a slow run.
            "-timeout=10".to_owned(),
            format!("-artifact_prefix={artifacts}/"),
            "-print_final_stats=1".to_owned(),
        ];
        if let Some(runs) = self.runs {
            libfuzzer.push(format!("-runs={runs}"));
        }
        // New inputs go to the first folder; the committed seeds are only read.
        let cmd = cargo_fuzz_cmd(cargo_fuzz, layout, "run", format!("fuzz {}", t.name()))
            .args([t.name(), corpus.as_str(), seeds.as_str(), "--"])
            .args(libfuzzer);
        let (ok, output) = match cmd.run() {
            Ok(done) => (true, done.stderr),
            Err(ProcessError::Failed { stderr, .. }) => (false, stderr),
            Err(e) => return Err(e.into()),
        };
        fs::write(&log, &output).with_context(|| format!("failed to write {log}"))?;
        if ok {
            let stats = Stats::parse(&output).with_context(|| format!("libFuzzer's output has no final statistics; see {log}"))?;
            minimise(cargo_fuzz, layout, t)?;
            return Ok(Outcome::Clean(stats));
        }
        let crash = Crash::parse(&output);
        let Some(input) = crash.input else {
            bail!(
                "fuzzing {} failed before any input ran: {}; see {log}",
                t.name(),
                crash.kind.as_deref().unwrap_or("no libFuzzer report")
            );
        };
        let why = match (crash.kind, crash.panic) {
            (_, Some(panic)) => format!("panicked at {panic}"),
            (Some(kind), None) => kind,
            (None, None) => "failed".to_owned(),
        };
        let input = relative(&input, project_root(layout));
        Ok(Outcome::Crash(format!(
            "fuzz target {} {why}; the input is saved as {input}; reproduce with `cargo xtask fuzz {} --input {input}` (full output: {})",
            t.name(),
            t.name(),
            relative(log.as_str(), project_root(layout))
        )))
    }
}

enum Outcome {
    Clean(Stats),
    Crash(String),
}

/// The folder the `xtask/fuzz/` project sits two levels under (the repository), for
/// shorter paths in messages.
fn project_root(layout: &Layout) -> &Utf8Path {
    layout.project.parent().and_then(Utf8Path::parent).unwrap_or(&layout.project)
}

fn relative(path: &str, root: &Utf8Path) -> String {
    Utf8Path::new(path).strip_prefix(root).map(|p| p.to_string()).unwrap_or_else(|_| path.to_owned())
}

/// The cargo-fuzz project of the tool's own source (the targets fuzz the tool, not the
/// repository it builds), else the one in the repository at `--root`.
fn fuzz_project(project: &Project) -> Result<Utf8PathBuf> {
    let own = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let candidates = [own, project.root.join("xtask/fuzz")];
    candidates.iter().find(|d| d.join("Cargo.toml").is_file()).cloned().with_context(|| {
        format!(
            "the fuzz targets are not at {} nor {}; run `cargo xtask fuzz` in a checkout of the repository",
            candidates[0], candidates[1]
        )
    })
}

/// A cargo-fuzz command with the options every step shares (the same options each time,
/// so that `run`'s own build of its target is a no-op after [`build`]).
fn cargo_fuzz_cmd(cargo_fuzz: &Utf8Path, layout: &Layout, action: &str, purpose: String) -> Cmd {
    let mut cmd = Cmd::new(cargo_fuzz.as_str(), purpose)
        .args([action, "--fuzz-dir", layout.project.as_str(), "--sanitizer", "none"])
        .args(["--target-dir", layout.work.join("build").as_str()]);
    // cargo-fuzz runs `cargo` from PATH: make that the Cargo that runs this tool.
    if let Some(dir) =
        std::env::var_os("CARGO").map(std::path::PathBuf::from).filter(|c| c.is_absolute()).and_then(|c| c.parent().map(|d| d.to_owned()))
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)));
        if let Ok(joined) = joined {
            cmd = cmd.env("PATH", joined);
        }
    }
    cmd
}

/// Builds every target with coverage instrumentation, showing Cargo's progress (the
/// first build compiles the three crates and their dependencies: minutes, once).
fn build(cargo_fuzz: &Utf8Path, layout: &Layout) -> Result<()> {
    eprintln!("building the fuzz targets with coverage instrumentation");
    cargo_fuzz_cmd(cargo_fuzz, layout, "build", "build the fuzz targets".to_owned()).inherit_output().run()?;
    Ok(())
}

/// Shrinks the saved corpus to the inputs that still add coverage (libFuzzer's
/// `-merge=1` into a fresh folder, which then replaces it). libFuzzer saves every input
/// that reached new code or was a smaller copy of one and deletes none, so without this
/// the folder grows by thousands of files a run and loading it would eat the time given
/// to fuzzing. A failed merge keeps the folder as it was.
fn minimise(cargo_fuzz: &Utf8Path, layout: &Layout, t: FuzzTarget) -> Result<()> {
    let corpus = layout.corpus(t);
    let merged = layout.work.join("corpus").join(format!("{}.merging", t.name()));
    let _ = fs::remove_dir_all(&merged);
    fs::create_dir_all(&merged).with_context(|| format!("failed to create {merged}"))?;
    let merge = cargo_fuzz_cmd(cargo_fuzz, layout, "run", format!("minimise the {} corpus", t.name()))
        .args([t.name(), merged.as_str(), corpus.as_str(), "--", "-merge=1", &format!("-artifact_prefix={}/", layout.artifacts(t))])
        .run();
    if let Err(e) = merge {
        let _ = fs::remove_dir_all(&merged);
        eprintln!("warning: the {} corpus was not minimised ({e}); it is kept as it was", t.name());
        return Ok(());
    }
    fs::remove_dir_all(&corpus).with_context(|| format!("failed to remove {corpus}"))?;
    fs::rename(&merged, &corpus).with_context(|| format!("failed to move {merged} to {corpus}"))
}

/// Runs one saved input through a target, with its output shown.
fn reproduce(cargo_fuzz: &Utf8Path, layout: &Layout, t: FuzzTarget, input: &Utf8Path) -> Result<ExitCode> {
    if !input.is_file() {
        bail!("{input} is not a file; give the path libFuzzer printed after `Test unit written to`");
    }
    let artifacts = layout.artifacts(t);
    fs::create_dir_all(&artifacts).with_context(|| format!("failed to create {artifacts}"))?;
    let run = cargo_fuzz_cmd(cargo_fuzz, layout, "run", format!("run {input} through the {} fuzz target", t.name()))
        .args([t.name(), input.as_str(), "--", &format!("-artifact_prefix={artifacts}/")])
        .inherit_output()
        .run();
    match run {
        Ok(_) => {
            eprintln!("{input} runs through {} without a crash", t.name());
            Ok(ExitCode::SUCCESS)
        }
        Err(ProcessError::Failed { stderr, .. }) => {
            let crash = Crash::parse(&stderr);
            let why = crash.panic.map(|p| format!("panics at {p}")).or(crash.kind).unwrap_or_else(|| "fails".to_owned());
            bail!("{input} still crashes the {} fuzz target: it {why}", t.name())
        }
        Err(e) => Err(e.into()),
    }
}

fn count_files(dir: &Utf8Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).filter(|e| e.file_type().is_ok_and(|t| t.is_file())).count())
        .unwrap_or(0)
}

/// What libFuzzer reports when a run ends without a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stats {
    runs: u64,
    seconds: u64,
    /// Inputs in the corpus at the end (seeds and saved ones, as libFuzzer counts them).
    corpus: u64,
    /// Code edges covered.
    coverage: u64,
}

impl Stats {
    /// Reads libFuzzer's last status line (`#N DONE cov: C ft: F corp: K/Sb ...`) and its
    /// `Done N runs in S second(s)` line.
    fn parse(output: &str) -> Option<Stats> {
        let (runs, seconds) = output.lines().rev().find_map(|l| {
            let rest = l.strip_prefix("Done ")?;
            let (runs, rest) = rest.split_once(" runs in ")?;
            let (secs, _) = rest.split_once(' ')?;
            Some((runs.parse().ok()?, secs.parse().ok()?))
        })?;
        let status = output.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: ")).unwrap_or_default();
        let field = |name: &str| -> Option<u64> {
            let after = status.split_once(&format!(" {name}: "))?.1;
            after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        Some(Stats { runs, seconds, corpus: field("corp").unwrap_or(0), coverage: field("cov").unwrap_or(0) })
    }

    /// One line: runs, speed, corpus (and how many files the runs so far saved where),
    /// coverage.
    fn describe(&self, saved: usize, corpus_dir: &str) -> String {
        let per_second = self.runs.checked_div(self.seconds).unwrap_or(self.runs);
        format!(
            "{} runs in {} s ({per_second}/s); corpus {} inputs ({saved} saved in {corpus_dir}); {} edges covered",
            self.runs, self.seconds, self.corpus, self.coverage
        )
    }
}

/// What libFuzzer and the Rust panic hook print about a crash.
#[derive(Debug, Default, PartialEq, Eq)]
struct Crash {
    /// `deadly signal`, `timeout after 10 seconds`, `out-of-memory ...`.
    kind: Option<String>,
    /// `<file>:<line>:<col>: <message>` of the panic, when one was printed.
    panic: Option<String>,
    /// Where libFuzzer saved the input.
    input: Option<String>,
}

impl Crash {
    fn parse(output: &str) -> Crash {
        let lines: Vec<&str> = output.lines().collect();
        let kind = lines.iter().find_map(|l| l.split_once("ERROR: libFuzzer: ").map(|(_, k)| k.trim().to_owned()));
        let panic = lines.iter().position(|l| l.contains(" panicked at ")).map(|i| {
            let place = lines[i].split_once(" panicked at ").map(|(_, p)| p.trim_end_matches(':')).unwrap_or_default();
            match lines.get(i + 1).map(|m| m.trim()).filter(|m| !m.is_empty() && !m.starts_with("note:")) {
                Some(message) => format!("{place}: {message}"),
                None => place.to_owned(),
            }
        });
        let input = lines.iter().rev().find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim().to_owned()));
        Crash { kind, panic, input }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
INFO: Seed: 1234
#2\tINITED cov: 310 ft: 900 corp: 11/1200b exec/s: 0 rss: 40Mb
#8192\tpulse  cov: 350 ft: 1500 corp: 60/4000b lim: 120 exec/s: 4096 rss: 45Mb
#301220\tDONE   cov: 402 ft: 2211 corp: 97/6173b lim: 4096 exec/s: 9716 rss: 60Mb
Done 301220 runs in 31 second(s)
stat::number_of_executed_units: 301220
stat::average_exec_per_sec:     9716
stat::new_units_added:          86
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              60
";

    #[test]
    fn final_statistics_are_read_from_libfuzzer_output() {
        let s = Stats::parse(CLEAN).expect("statistics");
        assert_eq!(s, Stats { runs: 301_220, seconds: 31, corpus: 97, coverage: 402 });
        let text = s.describe(90, "target/xtask/fuzz/corpus/dotenv");
        assert_eq!(text, "301220 runs in 31 s (9716/s); corpus 97 inputs (90 saved in target/xtask/fuzz/corpus/dotenv); 402 edges covered");
        assert_eq!(Stats::parse("INFO: Seed: 1\n#2\tINITED cov: 3 ft: 4 corp: 1/1b\n"), None, "no `Done` line, no statistics");
    }

    #[test]
    fn a_panic_report_gives_the_place_message_and_saved_input() {
        let out = "\
#1000\tNEW    cov: 300 ft: 800 corp: 20/300b
thread '<unnamed>' panicked at xtask/pulumi/src/dotenv.rs:88:25:
byte index 1 is out of range of ``
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
==4242== ERROR: libFuzzer: deadly signal
MS: 1 ChangeByte-; base unit: 0000
artifact_prefix='/w/target/xtask/fuzz/artifacts/dotenv/'; Test unit written to /w/target/xtask/fuzz/artifacts/dotenv/crash-abc123
Base64: Jw==
";
        let c = Crash::parse(out);
        assert_eq!(c.kind.as_deref(), Some("deadly signal"));
        assert_eq!(c.panic.as_deref(), Some("xtask/pulumi/src/dotenv.rs:88:25: byte index 1 is out of range of ``"));
        assert_eq!(c.input.as_deref(), Some("/w/target/xtask/fuzz/artifacts/dotenv/crash-abc123"));

        let hang = "ALARM: working on the last Unit for 11 seconds\n==7== ERROR: libFuzzer: timeout after 11 seconds\nTest unit written to ./timeout-1\n";
        let c = Crash::parse(hang);
        assert_eq!((c.kind.as_deref(), c.panic, c.input.as_deref()), (Some("timeout after 11 seconds"), None, Some("./timeout-1")));
    }
}
