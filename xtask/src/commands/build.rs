//! The build commands: `lambda-build-all`, `lambda-build`, `lambda-bootstrap`,
//! `docker-build`. Each resolves its targets, plans, prints or executes the plan, and
//! reports.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use xtask_engine::plan::{closure, make_plan};
use xtask_engine::shard::{Shard, Split};
use xtask_engine::{Decision, ExecOptions, Progress, Status, TargetReport, execute_with};
use xtask_image::registry::OciRegistry;
use xtask_image::{Assembler, DockerEngine};

use crate::bases::{Base, Bases, Role, python_base_id};
use crate::project::{Project, lambda_base_id, lambda_image, service_image};
use crate::publish::{self, RegistryCache, RegistryChoice};

/// Options shared by every build command.
#[derive(Debug, Args, Clone, Default)]
pub struct BuildArgs {
    /// Print what would be built and skipped, and why; build nothing
    #[arg(long)]
    pub dry_run: bool,
    /// For every target that builds, list what changed since its last build
    #[arg(long)]
    pub explain: bool,
    /// Print one JSON object on stdout (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
    /// Builds to run at once, 1 or more (default: the number of cores)
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Stop at the first failure instead of building everything else that can be built
    #[arg(long)]
    pub fail_fast: bool,
    /// Where images go and are looked up: `local` (the Docker engine only), `ecr`, or an
    /// OCI registry `host[:port]` (default: XTASK_REGISTRY, then xtask.toml, then local)
    #[arg(long, value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Publish to ECR even when the images are built on the Debian stand-in base rather
    /// than AWS's (refused by default)
    #[arg(long)]
    pub allow_standin_base: bool,
    /// `auto` assembles images whose Dockerfile has only files and config (no RUN)
    /// without Docker, and runs `docker build` for the rest; `docker` runs `docker build`
    /// for every image
    #[arg(long, value_enum, default_value_t = Builder::Auto)]
    pub builder: Builder,
    /// Also write the run's timeline (one bar per target, built or up to date) as a
    /// self-contained HTML page to FILE
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<camino::Utf8PathBuf>,
    /// Build only part I of N of what must be built, for N runners sharing a registry:
    /// shard 1 also builds what the others are built on (lambda-base), and the others
    /// wait for it in the registry, up to XTASK_SHARD_WAIT seconds (default 1800; see
    /// docs/architecture.md#sharding)
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

/// How long a shard waits for what another shard builds and it builds on (lambda-base)
/// to appear in the registry, unless `XTASK_SHARD_WAIT` gives other seconds: long enough
/// for shard 1 to build the wheel and lambda-base on a cold runner, short enough that a
/// failed shard 1 does not hold the others until the job's own timeout.
const SHARD_WAIT_SECS: u64 = 1800;

fn shard_wait() -> Result<std::time::Duration> {
    let secs = match std::env::var("XTASK_SHARD_WAIT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map_err(|_| anyhow::anyhow!("XTASK_SHARD_WAIT=`{v}` is not a number of seconds; give a whole number such as 1800"))?,
        _ => SHARD_WAIT_SECS,
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// `-j N`: at least one build at a time (`-j 0` would mean nothing can run).
fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("0 builds at once can build nothing; give 1 or more (the default is the number of cores)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of builds; give 1 or more")),
    }
}

/// The `--builder` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Builder {
    #[default]
    Auto,
    Docker,
}

/// `lambda-bootstrap`: the build options, and Stage 5 of the seeds' pipeline.
#[derive(Debug, Args, Clone)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// After publishing, point each Lambda function `tradai-<name>-<env>` whose image
    /// digest changed at its new image, by digest, and wait until each update is applied
    #[arg(long, requires = "registry")]
    pub update_functions: bool,
    #[command(flatten)]
    pub change: crate::commands::ops::ChangeArgs,
}

/// Runs `lambda-bootstrap`.
pub fn bootstrap(project: &Project, args: &BootstrapArgs) -> Result<ExitCode> {
    if let (true, Some(shard)) = (args.update_functions, args.build.shard) {
        bail!(
            "--update-functions needs every image, and shard {shard} publishes only its part; run the shards without it, then `lambda-bootstrap --update-functions` once, unsharded, after them"
        );
    }
    if args.update_functions {
        crate::commands::ops::confirm(&args.change, "update the Lambda functions")?;
    }
    let update = args.update_functions.then_some(&args.change);
    run_with(project, Selection::Bootstrap, &args.build, update)
}

/// Which targets a command builds.
#[derive(Debug, Clone)]
pub enum Selection {
    AllLambdas,
    Lambdas(Vec<String>),
    Bootstrap,
    LambdaPush,
    Services,
    ServicePush(Vec<String>),
}

impl Selection {
    /// What the run builds, as a heading.
    fn title(&self) -> &'static str {
        match self {
            Selection::Services | Selection::ServicePush(_) => "Service images",
            _ => "Lambda images",
        }
    }

    /// Whether the command publishes what it built.
    fn publishes(&self) -> bool {
        matches!(self, Selection::Bootstrap | Selection::LambdaPush | Selection::ServicePush(_))
    }

    /// Whether pushing is the command's whole point (so `local` is an error, not a default).
    fn pushes(&self) -> bool {
        matches!(self, Selection::LambdaPush | Selection::ServicePush(_))
    }
}

pub fn run(project: &Project, selection: Selection, args: &BuildArgs) -> Result<ExitCode> {
    run_with(project, selection, args, None)
}

/// The build and publish run as a library call, for the commands that build as one of
/// their steps (`rollback`, from a worktree of a release tag): an error unless every
/// target built and every image published.
pub fn run_checked(project: &Project, selection: Selection, args: &BuildArgs) -> Result<()> {
    let what = format!("{selection:?}");
    if run_with(project, selection, args, None)? == ExitCode::SUCCESS {
        Ok(())
    } else {
        bail!("building and publishing in {} failed ({what}; the targets that failed are listed above)", project.root)
    }
}

fn run_with(
    project: &Project,
    selection: Selection,
    args: &BuildArgs,
    update: Option<&crate::commands::ops::ChangeArgs>,
) -> Result<ExitCode> {
    let registry_setting = publish::setting(project, args.registry.as_deref());
    if selection.pushes() && registry_setting == "local" {
        bail!("nowhere to push: no registry is configured; pass --registry ecr (or host:port), or set XTASK_REGISTRY");
    }
    let engine = Arc::new(DockerEngine::new());
    let mut bases = Bases::resolve(&project.config.python_base, &engine, args.dry_run)?;
    let selected: Vec<String> = match &selection {
        Selection::AllLambdas | Selection::Bootstrap | Selection::LambdaPush => {
            let mut s = vec![lambda_base_id().to_owned()];
            s.extend(project.lambdas()?.iter().map(|n| lambda_image(n)));
            s
        }
        Selection::Lambdas(names) => {
            let known = project.lambdas()?;
            let unknown: Vec<&String> = names.iter().filter(|n| !known.contains(n)).collect();
            if !unknown.is_empty() {
                let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
                bail!("unknown lambda {}; valid names: {}", list.join(", "), choices(&known, "lambdas/<name>/Dockerfile"));
            }
            names.iter().map(|n| lambda_image(n)).collect()
        }
        Selection::Services => project.services()?.iter().map(|s| service_image(s)).collect(),
        Selection::ServicePush(names) => {
            let known = project.services()?;
            let names = if names.is_empty() { known.clone() } else { names.clone() };
            let unknown: Vec<&str> = names.iter().filter(|n| !known.contains(n)).map(String::as_str).collect();
            if !unknown.is_empty() {
                bail!("unknown service {}; valid services: {}", unknown.join(", "), choices(&known, "services/<name>/Dockerfile"));
            }
            names.iter().map(|s| service_image(s)).collect()
        }
    };
    let progress = Progress::detect(false);

    let store = project.state_store();
    let state = store.load()?;
    if let Some(why) = &state.discarded {
        progress.line(&format!("warning: {why}; every target will be rebuilt"));
    }
    let registry = publish::choose(project, args.registry.as_deref())?;
    let cache = match &registry {
        RegistryChoice::Remote(r) => Some(RegistryCache::new(r.as_ref()).recording_digests_in(&project.root)),
        RegistryChoice::Local => None,
    };
    let publishing = selection.publishes() && cache.is_some();
    let version = if publishing { version(project) } else { String::new() };
    if publishing {
        progress.line(&format!("version {version}"));
    }
    let files = project.file_cache();
    let remote = cache.as_ref().map(|c| c as &dyn xtask_engine::RemoteCache);
    let choice = match args.builder {
        Builder::Auto => xtask_image::BuilderChoice::Auto,
        Builder::Docker => xtask_image::BuilderChoice::Docker,
    };
    // Assembled images go to the registry when there is one, else into the local engine.
    let mut assembler = Assembler::new(&project.image_store_dir(), choice, matches!(registry, RegistryChoice::Local))?
        .with_insecure(&project.config.registry.insecure);
    if !matches!(registry, RegistryChoice::Local) {
        // Images found in the registry are read from it when something is assembled on them.
        let (setting, project) = (registry_setting.clone(), project.clone());
        assembler = assembler.with_registry(Box::new(move || match setting.as_str() {
            "ecr" => crate::ecr::EcrRegistry::connect(&project)?.distribution_owned(),
            host => Ok(OciRegistry::new(host)?.allow_insecure(&project.config.registry.insecure)),
        }));
    }
    let assembler = Arc::new(assembler);
    // With --shard, the plan is split once made (skips, registry hits and pruning
    // decided first): the targets other shards build become skips saying so.
    let plan_with = |bases: &Bases| -> Result<(Vec<xtask_engine::Target>, xtask_engine::Plan, Option<Split>)> {
        let targets = project.targets_with(&engine, bases, Some(assembler.clone()))?;
        let order = closure(&targets, &selected)?;
        let mut plan = make_plan(&order, &selected, &state, &files, remote)?;
        // Images are what the registry carries from one runner to another.
        let split = args.shard.map(|shard| xtask_engine::shard::split(&mut plan, shard, &|i| i.kind == "image"));
        Ok((targets, plan, split))
    };
    // Where the upstream base is missing and the last build here was on the stand-in,
    // plan on the stand-in first: when that is all up to date, the run is a no-op, with
    // no pull attempted. Otherwise plan on the upstream base and pull it if a build needs it.
    let absent = bases.missing(&[Role::Lambda, Role::Service]);
    let built_on_stand_in = state.targets.values().any(|r| r.inputs.deps.contains_key(python_base_id()));
    let mut kept = None;
    if built_on_stand_in && !absent.is_empty() {
        let mut guess = bases.clone();
        for (role, image) in &absent {
            guess.set(*role, Base::StandIn { reason: format!("{} is not in the local Docker engine", image.exact()) });
        }
        let (t, p, sp) = plan_with(&guess)?;
        if p.to_build().next().is_none() {
            progress.line(&format!(
                "up to date on the Debian stand-in base ({} is not in the local engine; `cargo xtask base-images --pull` fetches it)",
                absent[0].1.exact()
            ));
            kept = Some((guess, t, p, sp));
        }
    }
    let (targets, mut plan, split) = match kept {
        Some((guess, t, p, sp)) => {
            bases = guess;
            (t, p, sp)
        }
        None => {
            let (mut targets, mut plan, mut split) = plan_with(&bases)?;
            // The pinned upstream bases are pulled only when something will be built on them.
            let roles = base_roles_to_build(project, &plan)?;
            let say = |l: &str| progress.line(l);
            let cfg = &project.config.python_base;
            // A base the assembler builds on is read from its registry; one `docker build`
            // builds on is pulled into the engine.
            let (read, pull): (Vec<Role>, Vec<Role>) = roles.iter().partition(|r| role_is_assembled(project, &assembler, **r));
            let platform = project.config.build.platform.clone();
            let fell_back = if args.dry_run {
                bases.probe_missing(cfg, &roles, &say)
            } else {
                let a = bases.read_missing(&read, &|reference| assembler.prefetch_base(reference, &platform), &say);
                bases.pull_missing(cfg, &engine, &pull, &say) || a
            };
            if fell_back {
                (targets, plan, split) = plan_with(&bases)?;
            }
            (targets, plan, split)
        }
    };
    files.save()?;

    if let Some(split) = &split {
        shard_line(split, &progress);
        if !split.waits_for.is_empty() {
            // What this shard builds on comes from the shard that builds it, through the
            // registry; a run that does not publish there cannot receive it.
            let Some(cache) = cache.as_ref().filter(|_| publishing) else {
                bail!(
                    "shard {} builds on {}, which shard 1/{} builds, and only a run that publishes to a registry shares it between shards: use a publishing command (lambda-push-all, lambda-bootstrap or service-push-all with --registry), or run shard 1/{} first on this machine",
                    split.shard(),
                    split.waits_for.join(", "),
                    split.count,
                    split.count
                );
            };
            if !args.dry_run {
                let place = format!("registry {}", cache.registry.name());
                let say = |l: &str| progress.line(l);
                split.wait_for_dependencies(&mut plan, cache, &place, shard_wait()?, std::time::Duration::from_secs(2), &say)?;
            }
        }
    }

    if let Some(reason) = bases.stand_in().filter(|_| plan.items.iter().any(|i| i.id == python_base_id())) {
        if publishing && registry_setting == "ecr" && !args.allow_standin_base {
            bail!(
                "refusing to publish to ECR images built on the Debian stand-in base ({reason}); production images must run on AWS's base: make it pullable (`cargo xtask base-images`), or pass --allow-standin-base"
            );
        }
        if plan.to_build().any(|i| i.id == python_base_id()) {
            let verb = if args.dry_run { "would build" } else { "building" };
            progress.line(&format!(
                "{verb} the Debian-based stand-in {} from {} ({reason}; debootstrap, a few minutes, once)",
                python_base_id(),
                project.config.python_base.recipe
            ));
        } else if plan.to_build().next().is_some() {
            // Images are built on the stand-in the engine already holds: say why.
            let verb = if args.dry_run { "would build" } else { "building" };
            progress.line(&format!("{verb} on the Debian-based stand-in {} ({reason})", python_base_id()));
        }
    }

    if args.explain {
        for item in &plan.items {
            if let Decision::Build(reason) = &item.decision {
                let how = targets.iter().find(|t| t.id == item.id).and_then(|t| t.builder.how());
                let how = how.map(|h| format!(" [{h}]")).unwrap_or_default();
                progress.line(&format!("{} will build: {reason}{how}", item.id));
                for change in xtask_engine::plan::changes_of(reason) {
                    progress.line(&format!("    {change}"));
                }
            }
        }
    }

    // The whole run, decided before anything runs: builds, skips, pushes and tags.
    let publish_plan = match (&cache, publishing) {
        // A shard publishes (pushes and tags) the images it owns, built or not; the
        // other shards publish theirs.
        (Some(cache), true) => match &split {
            Some(split) => {
                let own = xtask_engine::Plan { items: plan.items.iter().filter(|i| split.owns(&i.id)).cloned().collect() };
                Some(publish::plan_publish(&own, cache, &state, &version)?)
            }
            None => Some(publish::plan_publish(&plan, cache, &state, &version)?),
        },
        _ => None,
    };
    let mut steps = publish::steps(&plan, publish_plan.as_ref());
    if let Some(change) = update {
        for name in project.lambdas()? {
            steps.push(publish::Step {
                target: lambda_image(&name),
                action: "update-function",
                reason: format!("point {} at the new image by digest, if its running digest differs", crate::commands::ops::resource_name(&name, change.env)),
                tag: None,
            });
        }
    }

    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let outcomes: std::sync::Mutex<Vec<Result<publish::Published, (String, String)>>> = std::sync::Mutex::default();
    let reports: Vec<TargetReport> = if args.dry_run {
        let r: Vec<TargetReport> = plan.items.iter().map(|i| i.dry_report()).collect();
        for t in &r {
            progress.line(&format!("{:<11} {} ({})", t.status.to_string(), t.id, t.reason));
        }
        for s in steps.iter().filter(|s| !matches!(s.action, "build" | "skip")) {
            let tag = s.tag.as_deref().map(|t| format!(":{t}")).unwrap_or_default();
            progress.line(&format!("would {:<8} {}{tag} ({})", s.action, s.target, s.reason));
        }
        r
    } else {
        // Every build into the local engine ends in `docker` (`docker build`, or the one
        // `docker load` of what was assembled): without it, stop before building anything
        // rather than record images the engine never gets.
        if matches!(registry, RegistryChoice::Local) && plan.to_build().next().is_some() && crate::tools::find_program("docker").is_none() {
            bail!(
                "`docker` was not found on PATH, and this build puts its images in the local Docker engine; install Docker Engine or put `docker` on PATH, then run again (`cargo xtask doctor` checks)"
            );
        }
        // A target found in the registry that something will be built on is pulled.
        if let Some(cache) = &cache {
            let pulled: Vec<&str> =
                plan.items.iter().filter(|i| matches!(i.decision, Decision::Skip { remote: true, .. })).map(|i| i.id.as_str()).collect();
            if plan.to_build().any(|i| i.deps.iter().any(|d| pulled.contains(&d.as_str()))) {
                cache.ensure_login()?;
            }
        }
        // Each image is published the moment it exists, on the same -j workers as the builds.
        let after = |item: &xtask_engine::PlanItem, output: &xtask_engine::Output| {
            let (Some(cache), Some(planned)) = (&cache, publish_plan.as_ref().and_then(|p| p.get(&item.id))) else { return };
            let result = publish::publish_planned(item, planned, output, cache, &store, &assembler).map_err(|e| (item.id.clone(), format!("{e:#}")));
            outcomes.lock().expect("lock").push(result);
        };
        let after: Option<xtask_engine::After<'_>> = if publish_plan.is_some() { Some(&after) } else { None };
        let remote = cache.as_ref().map(|c| c as &(dyn xtask_engine::RemoteCache + Sync));
        let r = execute_with(&plan, &targets, &store, ExecOptions { jobs, fail_fast: args.fail_fast }, &progress, after, remote);
        progress.summary(&r);
        r
    };
    // Every image assembled for the local engine goes in with one `docker load`.
    let mut load_failed = false;
    if assembler.has_pending() {
        let started = std::time::Instant::now();
        match assembler.flush() {
            Ok(n) => progress.line(&format!("loaded {n} assembled image(s) into the Docker engine ({:.2} s)", started.elapsed().as_secs_f64())),
            Err(e) => {
                progress.line(&format!("failed to load the assembled images into the Docker engine: {e:#}; run again (they are rebuilt in milliseconds)"));
                load_failed = true;
            }
        }
    }

    let mut published = Vec::new();
    let mut publish_failures = Vec::new();
    if publish_plan.is_some() && !args.dry_run {
        for outcome in outcomes.into_inner().expect("lock") {
            match outcome {
                Ok(p) => published.push(p),
                Err(f) => publish_failures.push(f),
            }
        }
        published.sort_by(|a, b| a.id.cmp(&b.id));
        publish_failures.sort();
        // An image that failed to build is not published, and says so.
        for r in reports.iter().filter(|r| r.status == Status::Failed && publish_plan.as_ref().is_some_and(|p| p.contains_key(&r.id))) {
            publish_failures.push((r.id.clone(), "not published: it was not built".to_owned()));
        }
        for (id, note) in publish::notes(&published) {
            progress.line(&format!("note: {id}: {note}"));
        }
        if !published.is_empty() {
            progress.line(&publish::table(&published));
        }
        for (id, e) in &publish_failures {
            progress.line(&format!("failed to publish {id}: {e}"));
        }
    } else if selection.publishes() && matches!(registry, RegistryChoice::Local) && !args.dry_run {
        progress.line("registry is `local`: images stay in the local Docker engine (use --registry to publish)");
    }

    let mut functions = Vec::new();
    let mut function_failures = 0;
    if let (Some(change), false) = (update, args.dry_run) {
        let registry = match &registry {
            RegistryChoice::Remote(r) => r.as_ref(),
            RegistryChoice::Local => bail!("--update-functions needs a registry the functions can pull from; pass --registry ecr"),
        };
        if !publish_failures.is_empty() || reports.iter().any(|r| r.status == Status::Failed) {
            progress.line("not updating Lambda functions: some images failed to build or publish (nothing is deployed half-done)");
        } else {
            let aws = crate::commands::ops::connect(project, change.env)?;
            functions = update_functions(&aws, registry, &project.lambdas()?, &published, change.env, &progress);
            function_failures = functions.iter().filter(|f| f.action == "failed").count();
        }
    }

    let title = match &split {
        Some(split) => format!("{} (shard {})", selection.title(), split.shard()),
        None => selection.title().to_owned(),
    };
    write_step_summary(&title, &reports, &published)?;
    if let Some(path) = &args.timeline {
        let page = xtask_engine::timeline::html_page(&title, &reports);
        xtask_engine::atomic::write_atomically(path, page.as_bytes()).with_context(|| format!("failed to write the timeline to {path}"))?;
        progress.line(&format!("timeline written to {path}"));
    }

    if args.json {
        let mut out = serde_json::json!({ "targets": reports, "steps": steps });
        if publishing {
            out["version"] = serde_json::json!(version);
            out["published"] = serde_json::to_value(&published)?;
        }
        if update.is_some() {
            out["functions"] = serde_json::to_value(&functions)?;
        }
        if let Some(split) = &split {
            out["shard"] = serde_json::to_value(split)?;
        }
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
    }
    let failed: Vec<&TargetReport> = reports.iter().filter(|r| r.status == Status::Failed).collect();
    if failed.is_empty() && publish_failures.is_empty() && function_failures == 0 && !load_failed {
        return Ok(ExitCode::SUCCESS);
    }
    if function_failures > 0 {
        eprintln!("error: {function_failures} Lambda function update(s) failed");
    }
    if load_failed {
        eprintln!("error: the images built were not loaded into the Docker engine (why is said above); fix that and run again");
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|r| r.id.as_str()).collect();
        eprintln!("error: {} target(s) failed: {}", failed.len(), names.join(", "));
    }
    if !publish_failures.is_empty() {
        let names: Vec<&str> = publish_failures.iter().map(|(id, _)| id.as_str()).collect();
        eprintln!("error: {} image(s) not published: {}", names.len(), names.join(", "));
    }
    Ok(ExitCode::FAILURE)
}

/// One line on what this shard builds of the whole, and what it waits for.
fn shard_line(split: &Split, progress: &Progress) {
    let mut line = format!(
        "shard {}: {} of the {} targets to build are this shard's; the other shards build the rest",
        split.shard(),
        split.builds.len(),
        split.to_build_in_all
    );
    if !split.waits_for.is_empty() {
        line.push_str(&format!("; it builds on {} from shard 1/{} (waited for in the registry)", split.waits_for.join(", "), split.count));
    }
    progress.line(&line);
}

/// The valid names for an "unknown name" error, or where they would come from when
/// there are none.
fn choices(known: &[String], folder: &str) -> String {
    if known.is_empty() { format!("none (there is no {folder})") } else { known.join(", ") }
}

/// Whether the images built on a base role are all assembled (so the base is read from
/// its registry rather than pulled into the engine).
fn role_is_assembled(project: &Project, assembler: &Assembler, role: Role) -> bool {
    let Ok(repo) = project.repository() else { return false };
    let dockerfiles: Vec<camino::Utf8PathBuf> = match role {
        Role::Lambda => vec![repo.path(&repo.lambda_base.dockerfile)],
        Role::Service => repo.services.iter().map(|s| repo.path(&s.context.dockerfile)).collect(),
    };
    dockerfiles.iter().all(|d| assembler.decide(d).is_ok_and(|(assembled, _)| assembled))
}

/// The bases that something in the plan will be built on.
fn base_roles_to_build(project: &Project, plan: &xtask_engine::Plan) -> Result<Vec<Role>> {
    let services: Vec<String> = project.services()?.iter().map(|s| service_image(s)).collect();
    let mut roles = Vec::new();
    if plan.to_build().any(|i| i.id == lambda_base_id()) {
        roles.push(Role::Lambda);
    }
    if plan.to_build().any(|i| services.contains(&i.id)) {
        roles.push(Role::Service);
    }
    Ok(roles)
}

/// What Stage 5 did for one Lambda function.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionReport {
    pub function: String,
    /// `updated`, `unchanged` or `failed`.
    pub action: &'static str,
    pub image_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Points every Lambda function whose running digest differs from its published image
/// at that image, by digest; functions already on it are left alone.
fn update_functions(
    aws: &xtask_aws::Aws,
    registry: &dyn xtask_image::registry::Registry,
    lambdas: &[String],
    published: &[publish::Published],
    env: crate::commands::ops::Env,
    progress: &Progress,
) -> Vec<FunctionReport> {
    let mut out = Vec::new();
    let images = lambdas.iter().filter_map(|name| published.iter().find(|p| p.id == lambda_image(name)).map(|p| (name.as_str(), p)));
    for (name, p) in images {
        let function = crate::commands::ops::resource_name(name, env);
        let host = registry.reference(&p.id, "x");
        let repo_ref = host.trim_end_matches(":x");
        let image_uri = format!("{repo_ref}@{}", p.digest);
        let result = (|| -> Result<&'static str> {
            let current = aws.function_image(&function)?;
            let same = current.as_ref().is_some_and(|c| c.image_uri.ends_with(&p.digest) || c.digest.as_deref() == Some(p.digest.as_str()));
            if same {
                return Ok("unchanged");
            }
            aws.update_function_image(&function, &image_uri, std::time::Duration::from_secs(600), std::time::Duration::from_secs(2))?;
            Ok("updated")
        })();
        let report = match result {
            Ok(action) => FunctionReport { function, action, image_uri, error: None },
            Err(e) => FunctionReport { function, action: "failed", image_uri, error: Some(format!("{e:#}")) },
        };
        match &report.error {
            Some(e) => progress.line(&format!("failed   {}: {e}", report.function)),
            None => progress.line(&format!("{:<9}{} -> {}", report.action, report.function, report.image_uri)),
        }
        out.push(report);
    }
    out
}

/// Under GitHub Actions, appends the table of images built and skipped (and published)
/// to the job's step summary.
fn write_step_summary(title: &str, reports: &[TargetReport], published: &[publish::Published]) -> Result<()> {
    let mut text = xtask_engine::report::markdown_summary(title, reports);
    if !published.is_empty() {
        let rows: Vec<Vec<String>> = published
            .iter()
            .map(|p| vec![format!("`{}`", p.id), p.action.to_owned(), format!("`{}`", p.digest), p.tags.join(", ")])
            .collect();
        text.push('\n');
        text.push_str(&xtask_engine::github::markdown_table(&["image", "published", "digest", "tags"], &rows));
    }
    xtask_engine::github::Github::detect().summary(&text)
}

/// The release version: the `v*` tag on HEAD, or `manual-YYYYMMDDHHMMSS` (UTC), as the
/// seeds' Stage 1 computes it.
pub fn version(project: &Project) -> String {
    let tag = xtask_engine::Cmd::new("git", "read the version tag of HEAD")
        .args(["describe", "--tags", "--exact-match", "--match", "v*", "HEAD"])
        .dir(&project.root)
        .run();
    match tag {
        Ok(o) if !o.stdout.trim().is_empty() => o.stdout.trim().to_owned(),
        _ => format!("manual-{}", xtask_engine::state::utc_stamp(xtask_engine::state::now_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_status_variant_is_serialised_kebab_case() {
        assert_eq!(serde_json::to_string(&Status::WouldBuild).unwrap(), "\"would-build\"");
    }
}
