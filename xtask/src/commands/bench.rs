//! `cargo xtask bench`: the speed claims, measured side by side in one run on this
//! repository (machines here are noisy, so every comparison runs back to back).
//!
//! - `noop`: `lambda-bootstrap` with everything up to date vs the seeds' sequential recipe
//!   (uv build, then docker build of lambda-base and each Lambda in turn) with Docker's
//!   layer cache warm; then the same no-op as a developer types it, `cargo xtask
//!   lambda-build-all` on this checkout (Cargo, the launcher, the binary), vs the recipe.
//! - `one-change`: one handler edited: `lambda-build-all` vs the sequential recipe.
//! - `cold`: a tradai-common change rebuilds everything with no reusable layer: `-j 1` vs
//!   `-j 2`.
//! - `hash`: hashing throughput of the engine vs `sha256sum` over the same files.
//! - `registry`: a fresh machine (empty state, images removed from the engine) against a
//!   registry that holds everything vs the sequential recipe on a cold layer cache.
//! - `assemble`: the daemonless assembler against Docker for the same result: a handler
//!   edit into the local engine (vs `docker build`), a handler edit pushed to a loopback
//!   registry (vs `docker build` + `docker push`), and a tradai-common edit with all 18
//!   images pushed (vs the sequential recipe + `docker push` of each).
//!
//! Runs work on a copy of the repository under `target/bench/`, seeded with this
//! checkout's state so that the Python base is not rebuilt.

use std::fs;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, ValueEnum};
use xtask_engine::{BuildContext, Cmd, DockerIgnore, FileCache};

use crate::project::Project;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmarks to run (default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Bench>,
    /// An OCI registry host[:port] for the `registry` benchmark (default: start Debian's
    /// docker-registry on a free loopback port)
    #[arg(long)]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bench {
    Noop,
    OneChange,
    Cold,
    Hash,
    Registry,
    Assemble,
}

struct Bed {
    root: Utf8PathBuf,
    exe: std::path::PathBuf,
    tools: crate::tools::Toolbox,
}

impl Bed {
    fn xtask(&self, args: &[&str]) -> Result<Duration> {
        let started = Instant::now();
        // The bench copy keeps its state in its own target/, whatever the checkout's is.
        let out = std::process::Command::new(&self.exe)
            .args(args)
            .arg("--root")
            .arg(self.root.as_str())
            .env("CARGO_TARGET_DIR", self.root.join("target").as_str())
            .stdout(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("`cargo xtask {}` failed in the bench copy:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(started.elapsed())
    }

    fn edit(&self, rel: &str, marker: &str) -> Result<()> {
        let p = self.root.join(rel);
        let mut text = fs::read_to_string(&p)?;
        text.push_str(&format!("# bench {marker}\n"));
        fs::write(&p, text)?;
        Ok(())
    }

    /// The seeds' recipe: uv build, then docker build of lambda-base and each Lambda in
    /// turn, all with the classic builder and without a network, like the tool's builds.
    /// lambda-base's context needs the wheel installed into `site-packages/`, as the tool
    /// does it.
    fn seed_recipe(&self, lambdas: &[String], python_base: &str) -> Result<Duration> {
        let started = Instant::now();
        let dist = self.root.join("target/bench-wheel");
        let site = self.root.join("lambdas/base/site-packages");
        let _ = fs::remove_dir_all(&dist);
        let _ = fs::remove_dir_all(&site);
        Cmd::new(self.tools.uv()?.as_str(), "build the wheel (seed recipe)")
            .args(["build", "--wheel", "--quiet", "--out-dir", dist.as_str(), "libs/tradai-common"])
            .dir(&self.root)
            .run()?;
        let wheel = dist
            .read_dir_utf8()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().to_owned())
            .find(|p| p.extension() == Some("whl"))
            .context("uv build produced no wheel (seed recipe)")?;
        xtask_wheel::site_packages::install_wheel(&wheel, &site)?;
        let docker = |args: Vec<String>, what: &str| -> Result<()> {
            Cmd::new("docker", what.to_owned()).env("DOCKER_BUILDKIT", "0").args(args).dir(&self.root).run()?;
            Ok(())
        };
        docker(
            vec![
                "build".into(),
                "--network=none".into(),
                "-q".into(),
                "-t".into(),
                "bench/lambda-base:seed".into(),
                "--build-arg".into(),
                format!("PYTHON_BASE={python_base}"),
                "lambdas/base".into(),
            ],
            "build lambda-base (seed recipe)",
        )?;
        for name in lambdas {
            docker(
                vec![
                    "build".into(),
                    "--network=none".into(),
                    "-q".into(),
                    "-t".into(),
                    format!("bench/lambda-{name}:seed"),
                    "--build-arg".into(),
                    "BASE_IMAGE=bench/lambda-base:seed".into(),
                    format!("lambdas/{name}"),
                ],
                "build a lambda (seed recipe)",
            )?;
        }
        let _ = fs::remove_dir_all(&dist);
        let _ = fs::remove_dir_all(&site);
        Ok(started.elapsed())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn line(name: &str, ours: Duration, theirs: Duration, theirs_name: &str) {
    let ratio = theirs.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    println!("{name:<34} xtask {:>9}   {theirs_name} {:>9}   ratio {ratio:>7.1}x", secs(ours), secs(theirs));
}

/// Copies what the builds read (not target/, .git or virtualenvs) into `dest`.
fn copy_repo(src: &Utf8Path, dest: &Utf8Path) -> Result<()> {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest)?;
    for top in ["xtask.toml", "pyproject.toml", "uv.lock", "libs", "lambdas", "services", "docker"] {
        let from = src.join(top);
        if from.exists() {
            Cmd::new("cp", format!("copy {top} into the bench copy")).args(["-a", from.as_str(), dest.as_str()]).run()?;
        }
    }
    // Seed with this checkout's state: the images it built are reused, as on a developer's machine.
    let state = crate::target_dir::target_dir(src).join("xtask/state.json");
    if state.is_file() {
        fs::create_dir_all(dest.join("target/xtask"))?;
        fs::copy(&state, dest.join("target/xtask/state.json"))?;
    }
    Ok(())
}

impl BenchArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let all = self.only.is_empty();
        let wants = |b: Bench| all || self.only.contains(&b);
        let exe = std::env::current_exe().context("cannot find the running binary")?;
        let bed = Bed { root: project.state_dir().join("bench/repo"), exe, tools: project.tools() };
        let lambdas = project.lambdas()?;

        if wants(Bench::Hash) {
            hash_bench(project)?;
        }
        if !(wants(Bench::Noop) || wants(Bench::OneChange) || wants(Bench::Cold) || wants(Bench::Registry) || wants(Bench::Assemble)) {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("preparing: building this checkout's Lambda images (once)");
        let out = std::process::Command::new(&bed.exe).args(["lambda-build-all", "--root", project.root.as_str()]).output()?;
        if !out.status.success() {
            bail!("lambda-build-all failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        copy_repo(&project.root, &bed.root)?;
        bed.xtask(&["lambda-build-all"])?;
        // Steady state, as on any machine after its first build: the copy's image store
        // holds the base (read once from its registry or the engine) and lambda-base
        // assembled on it. (A tradai-common edit that is kept: the copy is the bench's own.)
        bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("warm {}", xtask_engine::state::now_secs()))?;
        bed.xtask(&["lambda-build-all"])?;
        let python_base = python_base_ref(project)?;
        println!(
            "{} Lambda images; Python base {python_base}; {} cores",
            lambdas.len(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );

        if wants(Bench::Noop) {
            bed.seed_recipe(&lambdas, &python_base)?; // warm Docker's layer cache for the recipe
            let ours = bed.xtask(&["lambda-bootstrap"])?;
            let theirs = bed.seed_recipe(&lambdas, &python_base)?;
            line("up to date: lambda-bootstrap", ours, theirs, "seed recipe (warm cache)");
            if let Some(typed) = as_typed(project)? {
                let theirs = bed.seed_recipe(&lambdas, &python_base)?;
                line("up to date, as typed (cargo xtask)", typed, theirs, "seed recipe (warm cache)");
            }
        }
        if wants(Bench::OneChange) {
            // Markers are unique per run, so Docker's layer cache never has the result.
            let stamp = xtask_engine::state::now_secs();
            bed.edit("lambdas/health-check/handler.py", &format!("one-change xtask {stamp}"))?;
            let ours = bed.xtask(&["lambda-build-all"])?;
            bed.edit("lambdas/health-check/handler.py", &format!("one-change seed {stamp}"))?;
            let theirs = bed.seed_recipe(&lambdas, &python_base)?;
            line("one handler changed", ours, theirs, "seed recipe (warm cache)");
        }
        if wants(Bench::Cold) {
            bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("cold-j1 {}", xtask_engine::state::now_secs()))?;
            let j1 = bed.xtask(&["lambda-build-all", "-j", "1"])?;
            bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("cold-j2 {}", xtask_engine::state::now_secs()))?;
            let j2 = bed.xtask(&["lambda-build-all", "-j", "2"])?;
            line("cold (common changed): -j 2 vs -j 1", j2, j1, "-j 1");
        }
        if wants(Bench::Registry) {
            registry_bench(&bed, self.registry.as_deref(), &lambdas, &python_base)?;
        }
        if wants(Bench::Assemble) {
            assemble_bench(&bed, self.registry.as_deref(), &lambdas, &python_base)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `cargo xtask lambda-build-all` on this checkout, everything up to date, as a developer
/// types it: the `cargo` on PATH (rustup's proxy, usually), the alias, the launcher, the
/// binary. One warm-up run (it also lets the launcher rebuild if its stamp is stale), then
/// the median of five, since one run of a tenth of a second is at the mercy of the
/// machine. `None`, said why, when this binary was not built from a workspace with the
/// launcher (the alias runs from that workspace's root).
fn as_typed(project: &Project) -> Result<Option<Duration>> {
    let workspace = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask lives in a workspace")?;
    if !workspace.join("xtask/launcher/Cargo.toml").is_file() {
        eprintln!("skipped the as-typed no-op: {workspace} has no xtask/launcher (the binary was built elsewhere)");
        return Ok(None);
    }
    let run = || -> Result<Duration> {
        let command = |cargo: &std::ffi::OsStr| {
            let mut c = std::process::Command::new(cargo);
            c.arg("xtask").arg("lambda-build-all").current_dir(workspace).stdout(std::process::Stdio::null());
            if project.root != workspace {
                c.args(["--root", project.root.as_str()]);
            }
            c
        };
        let started = Instant::now();
        let out = match command("cargo".as_ref()).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                command(&std::env::var_os("CARGO").context("no `cargo` on PATH and no CARGO set")?).output()?
            }
            other => other.context("cannot run `cargo xtask`")?,
        };
        let took = started.elapsed();
        if !out.status.success() {
            bail!("`cargo xtask lambda-build-all` failed in {workspace}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(took)
    };
    run()?;
    let mut times = (0..5).map(|_| run()).collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(Some(times[times.len() / 2]))
}

/// The reference the recipe builds lambda-base from: the upstream base if the engine has
/// it, else the Debian-built stand-in.
fn python_base_ref(project: &Project) -> Result<String> {
    let engine = xtask_image::DockerEngine::new();
    match crate::bases::Bases::resolve(&project.config.python_base, &engine, true)?.lambda {
        crate::bases::Base::Upstream { image, local: Some(_) } => Ok(image.exact()),
        _ => Ok(format!("{}:latest", crate::bases::python_base_id())),
    }
}

fn registry_bench(bed: &Bed, host: Option<&str>, lambdas: &[String], python_base: &str) -> Result<()> {
    let mut server = None;
    let host = match host {
        Some(h) => h.to_owned(),
        None => {
            let (child, h, dir) = start_registry(bed)?;
            server = Some((child, dir));
            h
        }
    };
    bed.xtask(&["lambda-bootstrap", "--registry", &host])?;
    // The fresh machine: no state, none of the tool's Lambda images in the engine.
    let filter = format!("reference={}*", crate::project::lambda_image(""));
    let images = Cmd::new("docker", "list the Lambda images")
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", filter.as_str()])
        .run()?;
    let refs: Vec<&str> = images.stdout.lines().filter(|l| !l.is_empty()).collect();
    if !refs.is_empty() {
        let _ = Cmd::new("docker", "remove the Lambda images").arg("rmi").arg("--force").args(refs.iter().copied()).run();
    }
    let _ = fs::remove_dir_all(bed.root.join("target/xtask"));
    let ours = bed.xtask(&["lambda-bootstrap", "--registry", &host])?;
    // The recipe on a fresh runner: no layer cache, so every layer is built.
    bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("fresh-seed {}", xtask_engine::state::now_secs()))?;
    let theirs = bed.seed_recipe(lambdas, python_base)?;
    line("fresh machine, registry has all", ours, theirs, "seed recipe (cold cache)");
    if let Some((mut child, _dir)) = server {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

/// The assembler's three claims, each side by side with what Docker does for the same
/// result: a handler edit into the local engine (`docker build`), a handler edit pushed
/// (`docker build` + `docker push`), and a tradai-common edit with all 18 images pushed
/// (the seed recipe + `docker push` of each). Docker's side always starts warm: its layer
/// cache and the registry hold everything but the edit.
fn assemble_bench(bed: &Bed, host: Option<&str>, lambdas: &[String], python_base: &str) -> Result<()> {
    let docker = |args: &[&str], what: &str| -> Result<()> {
        Cmd::new("docker", what.to_owned()).env("DOCKER_BUILDKIT", "0").args(args.iter().copied()).dir(&bed.root).run()?;
        Ok(())
    };
    let base_arg = format!("BASE_IMAGE={}:latest", crate::project::lambda_base_id());
    let build_one = |tag: &str| docker(&["build", "--network=none", "-q", "-t", tag, "--build-arg", base_arg.as_str(), "lambdas/health-check"], "build a lambda (docker)");
    let stamp = xtask_engine::state::now_secs();

    // 1. A handler edit, into the local engine.
    build_one("bench/lambda-health-check:docker")?; // warm Docker's cache
    bed.edit("lambdas/health-check/handler.py", &format!("assemble-local xtask {stamp}"))?;
    let ours = bed.xtask(&["lambda-build", "health-check"])?;
    bed.edit("lambdas/health-check/handler.py", &format!("assemble-local docker {stamp}"))?;
    let started = Instant::now();
    build_one("bench/lambda-health-check:docker")?;
    line("handler edit -> local engine", ours, started.elapsed(), "docker build");

    // 2. A handler edit, pushed to a registry that holds everything else.
    let mut server = None;
    let host = match host {
        Some(h) => h.to_owned(),
        None => {
            let (child, h, dir) = start_registry(bed)?;
            server = Some((child, dir));
            h
        }
    };
    bed.xtask(&["lambda-push-all", "--registry", &host])?;
    let remote = format!("{host}/bench/lambda-health-check:docker");
    let push_one = || -> Result<()> {
        build_one("bench/lambda-health-check:docker")?;
        docker(&["tag", "bench/lambda-health-check:docker", &remote], "tag for the registry")?;
        docker(&["push", "-q", &remote], "push a lambda (docker)")
    };
    push_one()?; // the registry holds the base layers before the timed run
    bed.edit("lambdas/health-check/handler.py", &format!("assemble-push xtask {stamp}"))?;
    let ours = bed.xtask(&["lambda-push-all", "--registry", &host])?;
    bed.edit("lambdas/health-check/handler.py", &format!("assemble-push docker {stamp}"))?;
    let started = Instant::now();
    push_one()?;
    line("handler edit -> pushed", ours, started.elapsed(), "docker build + push");

    // 3. tradai-common edited: lambda-base and the 17 Lambdas rebuilt and pushed.
    let push_all = || -> Result<()> {
        for name in std::iter::once("base".to_owned()).chain(lambdas.iter().cloned()) {
            let local = format!("bench/lambda-{name}:seed");
            let remote = format!("{host}/bench/lambda-{name}:seed");
            docker(&["tag", &local, &remote], "tag for the registry")?;
            docker(&["push", "-q", &remote], "push (seed recipe)")?;
        }
        Ok(())
    };
    bed.seed_recipe(lambdas, python_base)?;
    push_all()?; // the registry holds the base layers before the timed run
    bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("assemble-all xtask {stamp}"))?;
    let ours = bed.xtask(&["lambda-push-all", "--registry", &host])?;
    bed.edit("libs/tradai-common/src/tradai_common/__init__.py", &format!("assemble-all seed {stamp}"))?;
    let started = Instant::now();
    bed.seed_recipe(lambdas, python_base)?;
    push_all()?;
    line("tradai-common edit -> 18 pushed", ours, started.elapsed(), "seed recipe + push");

    if let Some((mut child, _dir)) = server {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

fn start_registry(bed: &Bed) -> Result<(std::process::Child, String, tempfile::TempDir)> {
    let program = bed.tools.system(crate::tools::SystemTool::DockerRegistry)?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )?;
    let child = std::process::Command::new(program.as_str())
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let host = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&host).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not start on {host}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, host, dir))
}

/// Hashing throughput over a generated corpus (64 MiB in 1 MiB files, plus the
/// repository's own sources): the engine's cold hashing vs `sha256sum` of the same files.
fn hash_bench(project: &Project) -> Result<()> {
    let dir = project.root.join("target/bench/hash-corpus");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..64 {
        let mut buf = vec![0u8; 1 << 20];
        for chunk in buf.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        fs::write(dir.join(format!("blob-{i:03}.bin")), buf)?;
    }
    for top in ["libs", "lambdas", "services"] {
        Cmd::new("cp", "copy sources into the corpus").args(["-a", project.root.join(top).as_str(), dir.as_str()]).run()?;
    }
    let ignore = DockerIgnore::default();
    let cache = FileCache::in_memory();
    let started = Instant::now();
    let ctx = BuildContext::scan(&dir, &ignore, &cache)?;
    let ours = started.elapsed();
    let files: Vec<String> =
        ctx.entries.iter().filter(|(_, e)| matches!(e, xtask_engine::EntryKind::File { .. })).map(|(p, _)| p.clone()).collect();
    let bytes = cache.stats().bytes_read;
    let list = dir.join("../hash-corpus.files");
    fs::write(&list, files.join("\0"))?;
    let started = Instant::now();
    Cmd::new("sh", "hash the corpus with sha256sum").args(["-c", &format!("xargs -0 -a {list} sha256sum > /dev/null")]).dir(&dir).run()?;
    let theirs = started.elapsed();
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "hashing {} files, {mib:.0} MiB: xtask {:.0} MiB/s, sha256sum {:.0} MiB/s",
        files.len(),
        mib / ours.as_secs_f64(),
        mib / theirs.as_secs_f64()
    );
    line("hash the corpus", ours, theirs, "sha256sum");
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}
