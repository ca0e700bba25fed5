//! `rollback <tag>`: the seeds' rollback procedure as one command. The images published
//! under `<tag>` are found in the registry by tag; those it lacks are rebuilt from the
//! tag's sources (a git worktree) and pushed; then everything is re-pointed at the tag's
//! digests: `latest` on every image repository (the services and the consolidated host
//! run `:latest`, and the next compute deploy pins the Lambdas to it), each Lambda
//! function updated by digest, the ECS services redeployed and, where the API services
//! run on the consolidated EC2 host (dev, staging), an instance refresh. Every step is
//! decided before anything changes: `--dry-run` prints them and changes nothing, and
//! `--json` lists them as the build commands do (`steps`, each with `target`, `action`
//! (`build`, `tag`, `skip`, `update-function`, `redeploy`) and `reason`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use clap::Args;
use xtask_aws::{Aws, RefreshPreferences, ResourceKind};
use xtask_engine::Cmd;
use xtask_image::registry::{Manifest, Registry};

use super::ecs::{cluster_name, ecs_service_name, known_services};
use super::{ChangeArgs, Env, WaitArgs, Watch, asg, confirm, connect, ecs, names};
use crate::commands::build::{self, BuildArgs, Selection};
use crate::project::Project;
use crate::publish::{self, RegistryChoice, Step};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to go back to: a tag the images were published under (v1.2.2)
    #[arg(value_name = "TAG")]
    pub tag: String,
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Registry the images are in: `ecr` or an OCI registry `host[:port]` (default: XTASK_REGISTRY, then xtask.toml, then ecr)
    #[arg(long, value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Print every step (with current and target digests) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object on stdout: every step (`steps`), the notes and what failed
    /// (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// One image repository and what the tag and `latest` point at.
struct Image {
    repository: String,
    /// Lambda name for Lambda images.
    lambda: Option<String>,
    target: Option<Manifest>,
    latest: Option<String>,
}

/// Everything a rollback does, decided before anything changes.
struct Plan {
    images: Vec<Image>,
    /// Lambda functions to point at the tag's images.
    functions: Vec<Function>,
    /// ECS service names to redeploy.
    services: Vec<(String, String)>,
    /// Services not redeployed on ECS, and why.
    notes: Vec<String>,
    refresh_group: Option<String>,
}

/// A Lambda function, the image URI it should run, and what it runs now.
struct Function {
    name: String,
    uri: String,
    /// The digest it should run (`None` until a missing image is rebuilt).
    digest: Option<String>,
    current_uri: Option<String>,
    current_digest: Option<String>,
}

impl Function {
    fn up_to_date(&self) -> bool {
        self.current_uri.as_deref() == Some(self.uri.as_str())
            || self.digest.as_ref().is_some_and(|d| {
                self.current_digest.as_deref() == Some(d.as_str()) || self.current_uri.as_deref().is_some_and(|u| u.ends_with(d.as_str()))
            })
    }
}

impl Plan {
    fn missing(&self) -> Vec<&Image> {
        self.images.iter().filter(|i| i.target.is_none()).collect()
    }
}

impl RollbackArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.change.env;
        let tag = self.tag.as_str();
        if !self.dry_run {
            confirm(&self.change, &format!("roll everything back to {tag}"))?;
        }
        let registry_name = publish::deploy_setting(project, self.registry.as_deref());
        let registry = match publish::choose(project, Some(&registry_name))? {
            RegistryChoice::Remote(r) => r,
            RegistryChoice::Local => {
                bail!("rollback finds the images of {tag} in a registry, and `local` is not one; pass --registry ecr (or host[:port])")
            }
        };
        let aws = connect(project, env)?;
        let mut watch = Watch::new();
        let mut plan = make_plan(project, registry.as_ref(), &aws, env, tag)?;
        let planned = steps(&plan, tag);
        print_plan(&mut watch, &plan, &planned, registry.as_ref(), env, tag);
        let mut report = Report { env: env.name(), tag, registry: registry.name(), dry_run: self.dry_run, ..Report::default() };
        report.steps = planned.into_iter().map(|p| p.step).collect();
        if self.dry_run {
            // The rebuild's own steps, planned in a worktree of the tag and not run.
            if !plan.missing().is_empty() {
                rebuild(project, &plan, &registry_name, tag, &mut watch, true)?;
            }
            report.notes = plan.notes;
            return self.finish(report);
        }

        if !plan.missing().is_empty() {
            rebuild(project, &plan, &registry_name, tag, &mut watch, false)?;
            plan = make_plan(project, registry.as_ref(), &aws, env, tag)?;
            let still: Vec<&str> = plan.missing().iter().map(|i| i.repository.as_str()).collect();
            if !still.is_empty() {
                bail!(
                    "after rebuilding from {tag}, the registry still lacks {tag} for {}; a commit with several v* tags is versioned by one of them: push these images with `cargo xtask lambda-push-all` / `service-push` from a checkout of {tag}",
                    still.join(", ")
                );
            }
            // The rebuild's steps, then what the plan made after it does.
            report.steps.retain(|s| s.action == "build");
            report.steps.extend(steps(&plan, tag).into_iter().map(|p| p.step));
        }
        report.notes = plan.notes.clone();

        let mut failures: Vec<String> = Vec::new();
        // 1. `latest` on every repository (nothing is pulled or pushed).
        for image in &plan.images {
            let Some(m) = &image.target else { continue };
            if image.latest.as_deref() == Some(m.digest.as_str()) {
                continue;
            }
            match registry.put_tag(&image.repository, m, "latest") {
                Ok(()) => {
                    watch.line(&format!("tagged   {}:latest -> {} ({tag})", image.repository, m.digest));
                    // `latest` moved: the compute stack's published image manifest follows it.
                    if let Err(e) = xtask_pulumi::images::record_published(&project.root, &registry.name(), &image.repository, &m.digest) {
                        failures.push(format!("{}: {e}", image.repository));
                    }
                }
                Err(e) => failures.push(format!("{}:latest: {e:#}", image.repository)),
            }
        }
        // 2. Lambda functions, by digest.
        for f in plan.functions.iter().filter(|f| !f.up_to_date()) {
            match aws.update_function_image(&f.name, &f.uri, self.wait.timeout_or(600), self.wait.poll()) {
                Ok(_) => watch.line(&format!("updated  {} -> {}", f.name, f.uri)),
                Err(e) => failures.push(format!("{}: {e}", f.name)),
            }
        }
        // 3. The consolidated host's refresh is started first; ECS deployments run and
        // are waited for meanwhile.
        let refresh = match &plan.refresh_group {
            Some(_) => match asg::start_refresh(
                &aws,
                env,
                RefreshPreferences { min_healthy_percentage: 100, max_healthy_percentage: 200 },
                &mut watch,
            ) {
                Ok(id) => Some(id),
                Err(e) => {
                    failures.push(format!("{e:#}"));
                    None
                }
            },
            None => None,
        };
        if !plan.services.is_empty()
            && let Err(e) = ecs::deploy(&aws, &cluster_name(env), &plan.services, &self.wait, env)
        {
            failures.push(format!("{e:#}"));
        }
        if let (Some(id), false) = (refresh, self.wait.no_wait)
            && let Err(e) = asg::wait_refresh(&aws, env, &id, &self.wait, &mut watch)
        {
            failures.push(format!("{e:#}"));
        }
        if failures.is_empty() {
            watch.line(&format!("rolled back {env} to {tag}"));
            return self.finish(report);
        }
        drop(watch);
        report.failures = failures.clone();
        self.finish(report)?;
        bail!(
            "the rollback to {tag} is incomplete ({} problem(s): {}); fix them and run `cargo xtask rollback {tag} --env {env}` again (retags and Lambda updates already done are skipped)",
            failures.len(),
            failures.join("; ")
        )
    }

    /// Prints the report on stdout with `--json`.
    fn finish(&self, report: Report<'_>) -> Result<ExitCode> {
        if self.json {
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &report).context("failed to write the JSON report")?;
            writeln!(stdout)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What `--json` prints: every step, decided before anything changed, and how it went.
#[derive(Debug, Default, serde::Serialize)]
struct Report<'a> {
    env: &'a str,
    tag: &'a str,
    registry: String,
    dry_run: bool,
    steps: Vec<Step>,
    /// What is left alone, and why (a missing function, a service on the consolidated host).
    notes: Vec<String>,
    /// What failed in a real run.
    failures: Vec<String>,
}

/// Looks up the tag and `latest` for every image, the image each Lambda function runs,
/// and which services and group exist.
fn make_plan(project: &Project, registry: &dyn Registry, aws: &Aws, env: Env, tag: &str) -> Result<Plan> {
    let repo = project.repository()?;
    let mut repos: Vec<(String, Option<String>)> = repo.lambdas.iter().map(|l| (l.image.clone(), Some(l.name.clone()))).collect();
    repos.extend(repo.services.iter().map(|s| (s.image.clone(), None)));
    let mut wanted = Vec::new();
    for (repo, _) in &repos {
        wanted.push((repo.clone(), tag.to_owned()));
        wanted.push((repo.clone(), "latest".to_owned()));
    }
    let answers =
        registry.lookup(&wanted).with_context(|| format!("cannot look up the images of {tag} in registry {}", registry.name()))?;
    let mut found: BTreeMap<(String, String), Manifest> = BTreeMap::new();
    for (key, answer) in wanted.into_iter().zip(answers) {
        if let Some(m) = answer {
            found.insert(key, m);
        }
    }
    let images: Vec<Image> = repos
        .into_iter()
        .map(|(repo, lambda)| Image {
            target: found.get(&(repo.clone(), tag.to_owned())).cloned(),
            latest: found.get(&(repo.clone(), "latest".to_owned())).map(|m| m.digest.clone()),
            repository: repo,
            lambda,
        })
        .collect();

    let mut functions = Vec::new();
    let mut notes = Vec::new();
    for image in &images {
        let Some(lambda) = &image.lambda else { continue };
        let name = names().lambda_function(lambda, env.name());
        let reference = registry.reference(&image.repository, "x");
        let repo_ref = reference.trim_end_matches(":x");
        let digest = image.target.as_ref().map(|m| m.digest.clone());
        let uri = format!("{repo_ref}@{}", digest.as_deref().unwrap_or("<digest after the rebuild>"));
        match aws.function_image(&name) {
            Ok(current) => functions.push(Function {
                current_uri: current.as_ref().map(|c| c.image_uri.clone()),
                current_digest: current.and_then(|c| c.digest),
                name,
                uri,
                digest,
            }),
            // The compute stack creates the functions; one that is missing is not rolled back.
            Err(e) if e.is_not_found(ResourceKind::LambdaFunction) => notes.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }

    let mut services = Vec::new();
    let names: Vec<(String, String)> = known_services(project)?.into_iter().map(|s| (ecs_service_name(&s, env), s)).collect();
    let cluster = cluster_name(env);
    let described = match aws.describe_services(&cluster, &names.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()) {
        Ok(d) => d,
        Err(e) if e.is_not_found(ResourceKind::EcsCluster) => {
            notes.push(format!("ECS cluster {cluster} does not exist: no ECS service to redeploy"));
            xtask_aws::EcsServices::default()
        }
        Err(e) => return Err(e.into()),
    };
    let api_services = repo.service_names();
    for (name, service) in names {
        if described.found.iter().any(|s| s.name == name) {
            services.push((service, name));
        } else if super::consolidated(env) && api_services.contains(&service) {
            notes.push(format!("{service} runs on the consolidated EC2 host in {env}"));
        } else {
            notes.push(format!("{name} is not in cluster {cluster}; not redeployed"));
        }
    }
    let group = asg::group_name(env);
    let refresh_group = match aws.describe_auto_scaling_group(&group) {
        Ok(_) => Some(group),
        Err(e) if e.is_not_found(ResourceKind::AutoScalingGroup) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Plan { images, functions, services, notes, refresh_group })
}

fn short(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(h) => format!("sha256:{}", &h[..h.len().min(12)]),
        None => d.to_owned(),
    }
}

/// One step of a rollback: as `--json` lists it, and as the plan listing prints it.
struct Planned {
    step: Step,
    line: String,
}

/// Every step of `plan`, in the order a rollback carries them out: rebuilds, `latest`
/// tags, Lambda function updates, ECS redeploys, the consolidated host's refresh.
fn steps(plan: &Plan, tag: &str) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut add = |target: &str, action: &'static str, reason: String, step_tag: Option<&str>, line: String| {
        out.push(Planned { step: Step { target: target.to_owned(), action, reason, tag: step_tag.map(str::to_owned) }, line });
    };
    for i in plan.missing() {
        add(
            &i.repository,
            "build",
            format!("the registry lacks {tag}: rebuilt from the sources of {tag} and pushed"),
            Some(tag),
            format!("rebuild from the sources of {tag} (git worktree) and push: {}", i.repository),
        );
    }
    for i in &plan.images {
        let target = i.target.as_ref().map(|m| short(&m.digest)).unwrap_or_else(|| "<rebuilt>".into());
        match (&i.latest, &i.target) {
            (Some(l), Some(m)) if *l == m.digest => add(
                &i.repository,
                "skip",
                format!("latest is already {tag}'s {target}"),
                Some("latest"),
                format!("keep     {}:latest (already {target})", i.repository),
            ),
            (l, _) => {
                let now = l.as_deref().map(short).unwrap_or_else(|| "(none)".into());
                add(
                    &i.repository,
                    "tag",
                    format!("point latest at {tag}'s {target} (now {now}); nothing is pulled or pushed"),
                    Some("latest"),
                    format!("tag      {}:latest {now} -> {target}", i.repository),
                );
            }
        }
    }
    for f in &plan.functions {
        // A URI pinned by digest says what runs; otherwise the digest Lambda resolved.
        let current = f.current_uri.as_deref().and_then(|u| u.rsplit_once('@').map(|(_, d)| d)).or(f.current_digest.as_deref()).map(short);
        if f.up_to_date() {
            let digest = f.digest.as_deref().map(short).unwrap_or_default();
            add(&f.name, "skip", format!("the function already runs {digest}"), None, format!("keep     {} (already on {digest})", f.name));
        } else {
            let now = current.unwrap_or_else(|| "(none)".into());
            add(
                &f.name,
                "update-function",
                format!("point the function at {} by digest (now {now})", f.uri),
                None,
                format!("update   {} {now} -> {}", f.name, f.uri),
            );
        }
    }
    for (_, name) in &plan.services {
        add(
            name,
            "redeploy",
            "force a new ECS deployment: the service's tasks pull :latest".to_owned(),
            None,
            format!("redeploy {name} (ECS, pulls :latest)"),
        );
    }
    if let Some(g) = &plan.refresh_group {
        add(
            g,
            "redeploy",
            "instance refresh of the consolidated EC2 host: the new instances pull :latest".to_owned(),
            None,
            format!("refresh  {g} (the consolidated EC2 host pulls :latest)"),
        );
    }
    out
}

fn print_plan(watch: &mut Watch, plan: &Plan, planned: &[Planned], registry: &dyn Registry, env: Env, tag: &str) {
    let missing = plan.missing();
    watch.line(&format!(
        "rollback of {env} to {tag} (registry {}): {} of {} images found under {tag}",
        registry.name(),
        plan.images.len() - missing.len(),
        plan.images.len()
    ));
    for (n, p) in planned.iter().enumerate() {
        watch.line(&format!("{:>3}. {}", n + 1, p.line));
    }
    for note in &plan.notes {
        watch.line(&format!("     note: {note}"));
    }
}

/// Builds and pushes the images the registry lacks from a worktree of `tag`, with the
/// same build and publish run as `lambda-push-all` and `service-push`, in this process,
/// so they carry the tag as version. With `dry_run`, prints that run's steps instead.
fn rebuild(project: &Project, plan: &Plan, registry: &str, tag: &str, watch: &mut Watch, dry_run: bool) -> Result<()> {
    let missing = plan.missing();
    let resolved = Cmd::new("git", format!("find the commit of {tag}"))
        .args(["rev-parse", "--verify", "--quiet", &format!("refs/tags/{tag}^{{commit}}")])
        .dir(&project.root)
        .run();
    if !matches!(&resolved, Ok(o) if !o.stdout.trim().is_empty()) || !tag.starts_with('v') {
        let names: Vec<&str> = missing.iter().map(|i| i.repository.as_str()).collect();
        bail!(
            "the registry lacks {tag} for {}, and {tag} is not a v* git tag of this repository to rebuild them from; check the tag (`git tag -l 'v*'`) or publish them first",
            names.join(", ")
        );
    }
    let dir = Utf8PathBuf::from(format!("{}/rollback-{}", project.state_dir(), sanitize(tag)));
    let _ =
        Cmd::new("git", "remove a stale rollback worktree").args(["worktree", "remove", "--force", dir.as_str()]).dir(&project.root).run();
    Cmd::new("git", format!("check out {tag} into a worktree"))
        .args(["worktree", "add", "--detach", dir.as_str(), tag])
        .dir(&project.root)
        .run()?;
    let result = (|| -> Result<()> {
        let worktree = Project::locate(Some(&dir))?;
        let args = BuildArgs { registry: Some(registry.to_owned()), dry_run, ..BuildArgs::default() };
        let verb = if dry_run { "would build" } else { "building" };
        if missing.iter().any(|i| i.lambda.is_some()) {
            watch.line(&format!("{verb} the Lambda images of {tag} in {dir}"));
            build::run_checked(&worktree, Selection::LambdaPush, &args)?;
        }
        let services: Vec<String> = worktree
            .repository()?
            .services
            .iter()
            .filter(|s| missing.iter().any(|i| i.lambda.is_none() && i.repository == s.image))
            .map(|s| s.name.clone())
            .collect();
        if !services.is_empty() {
            watch.line(&format!("{verb} the service images of {tag}: {}", services.join(", ")));
            build::run_checked(&worktree, Selection::ServicePush(services), &args)?;
        }
        Ok(())
    })();
    let _ = Cmd::new("git", "remove the rollback worktree").args(["worktree", "remove", "--force", dir.as_str()]).dir(&project.root).run();
    result
}

fn sanitize(tag: &str) -> String {
    tag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: u8) -> Manifest {
        Manifest { digest: format!("sha256:{}", format!("{n:x}").repeat(64)), media_type: String::new(), bytes: Vec::new() }
    }

    /// dev on v2, rolled back to v1: one image to retag, one already there, one to
    /// rebuild; one function to update; two ECS services and the consolidated group.
    fn plan() -> Plan {
        let image = |repository: &str, lambda: Option<&str>, target: Option<u8>, latest: u8| Image {
            repository: repository.into(),
            lambda: lambda.map(str::to_owned),
            target: target.map(manifest),
            latest: Some(manifest(latest).digest),
        };
        Plan {
            images: vec![
                image("tradai/lambda-a", Some("a"), Some(1), 2),
                image("tradai/backend", None, Some(3), 3),
                image("tradai/lambda-b", Some("b"), None, 4),
            ],
            functions: vec![Function {
                name: "tradai-a-dev".into(),
                uri: format!("r/tradai/lambda-a@{}", manifest(1).digest),
                digest: Some(manifest(1).digest),
                current_uri: Some(format!("r/tradai/lambda-a@{}", manifest(2).digest)),
                current_digest: None,
            }],
            services: vec![
                ("dry-run-trading".into(), "tradai-dry-run-trading-dev".into()),
                ("live-trading".into(), "tradai-live-trading-dev".into()),
            ],
            notes: vec!["backend runs on the consolidated EC2 host in dev".into()],
            refresh_group: Some("tradai-consolidated-dev".into()),
        }
    }

    #[test]
    fn every_step_is_in_the_json_list_redeploys_included() {
        let planned = steps(&plan(), "v1");
        let json = serde_json::to_value(planned.iter().map(|p| &p.step).collect::<Vec<_>>()).unwrap();
        let rows: Vec<(&str, &str)> =
            json.as_array().unwrap().iter().map(|s| (s["action"].as_str().unwrap(), s["target"].as_str().unwrap())).collect();
        assert_eq!(
            rows,
            [
                ("build", "tradai/lambda-b"),
                ("tag", "tradai/lambda-a"),
                ("skip", "tradai/backend"),
                ("tag", "tradai/lambda-b"),
                ("update-function", "tradai-a-dev"),
                ("redeploy", "tradai-dry-run-trading-dev"),
                ("redeploy", "tradai-live-trading-dev"),
                ("redeploy", "tradai-consolidated-dev"),
            ]
        );
        assert!(json.as_array().unwrap().iter().all(|s| !s["reason"].as_str().unwrap().is_empty()), "{json}");
        assert_eq!(json[1]["tag"], "latest");
        assert!(json[7]["reason"].as_str().unwrap().contains("instance refresh"), "{json}");
        // The listing prints the same steps, one line each.
        let lines: Vec<&str> = planned.iter().map(|p| p.line.as_str()).collect();
        assert!(lines[0].starts_with("rebuild from the sources of v1 (git worktree) and push: tradai/lambda-b"), "{lines:?}");
        assert_eq!(lines[5], "redeploy tradai-dry-run-trading-dev (ECS, pulls :latest)");
        assert_eq!(lines[7], "refresh  tradai-consolidated-dev (the consolidated EC2 host pulls :latest)");
    }

    #[test]
    fn the_json_report_carries_the_steps_and_notes() {
        let p = plan();
        let report = Report {
            env: "dev",
            tag: "v1",
            registry: "127.0.0.1:5000".into(),
            dry_run: true,
            steps: steps(&p, "v1").into_iter().map(|s| s.step).collect(),
            notes: p.notes.clone(),
            failures: vec![],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!((v["env"].as_str(), v["tag"].as_str(), v["dry_run"].as_bool()), (Some("dev"), Some("v1"), Some(true)));
        assert_eq!(v["steps"].as_array().unwrap().iter().filter(|s| s["action"] == "redeploy").count(), 3);
        assert_eq!(v["notes"][0], "backend runs on the consolidated EC2 host in dev");
    }
}
