//! The infrastructure commands: `infra-setup`, `infra-preview`, `infra-up`,
//! `infra-bootstrap`, `infra-outputs`, `infra-recover` and `infra-destroy`.
//!
//! Each resolves the stack graph (`xtask_pulumi::graph`), checks what it can before any
//! `pulumi` call (arguments, `infra/.env`, the `pulumi` executable, confirmation for prod,
//! the images compute deploys), then drives the CLI through `xtask_pulumi::Pulumi`.
//! Progress goes to stderr; stdout carries only JSON (`infra-outputs`, `--json`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use xtask_pulumi::graph::{self, DestroyPolicy, Env, ImageSet, Layer, Stack};
use xtask_pulumi::images::{self, ImageRegistry, MANIFEST_VAR, Required};
use xtask_pulumi::{Needs, PreviewDigest, Pulumi, PulumiError, Settings, StackId};

use crate::commands::build::{self, BuildArgs, Selection};
use crate::commands::ops;
use crate::commands::ops::lambda_images::{ImageState, check_lambda_images};
use crate::project::{Project, lambda_image};
use crate::publish::{self, RegistryChoice};

fn parse_stack(s: &str) -> Result<Stack, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}
fn parse_env(s: &str) -> Result<Env, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}
fn parse_layer(s: &str) -> Result<Layer, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}

/// Confirmation of changes to prod without a prompt.
#[derive(Debug, Args, Clone)]
pub struct ProdArgs {
    /// Confirm a change to prod without the typed prompt (for CI)
    #[arg(long)]
    pub yes_prod: bool,
}

/// Where the images compute deploys are checked.
#[derive(Debug, Args, Clone)]
pub struct ImageArgs {
    /// Registry holding the images compute deploys: `ecr` or host[:port] (default: XTASK_REGISTRY, then xtask.toml, then ecr)
    #[arg(long, value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Tag whose digest compute pins each image to
    #[arg(long, value_name = "TAG", default_value = "latest")]
    pub image_tag: String,
}

impl ImageArgs {
    fn registry_name(&self, project: &Project) -> String {
        publish::deploy_setting(project, self.registry.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// `[STACK] ENV`: a stack and the environment, or only the environment for all four stacks in order
    #[arg(value_name = "ENV", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    /// Fail (non-zero) when any previewed stack has changes: a drift check
    #[arg(long)]
    pub expect_no_changes: bool,
    /// Print one JSON object on stdout (progress goes to stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// persistent, foundation, compute or edge
    #[arg(value_parser = parse_stack)]
    pub stack: Stack,
    /// dev, staging or prod
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Let a persistent deploy delete or replace resources its preview shows
    #[arg(long)]
    pub allow_replace: bool,
    #[command(flatten)]
    pub prod: ProdArgs,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// dev, staging or prod
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Resume at this layer: persistent, foundation, lambda-images, service-images, compute, edge
    #[arg(long, value_name = "LAYER", value_parser = parse_layer)]
    pub from: Option<Layer>,
    /// Print the steps in order and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Let the persistent layer delete or replace resources its preview shows
    #[arg(long)]
    pub allow_replace: bool,
    #[command(flatten)]
    pub prod: ProdArgs,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    #[arg(value_parser = parse_stack)]
    pub stack: Stack,
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Show secret outputs in clear text instead of `[secret]`
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[arg(value_parser = parse_stack)]
    pub stack: Stack,
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Also write the refreshed state (after a backup); without it nothing is written
    #[arg(long)]
    pub write: bool,
    #[command(flatten)]
    pub prod: ProdArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[arg(value_parser = parse_stack)]
    pub stack: Stack,
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Confirm without the typed prompt (dev and staging; prod needs --yes-prod)
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub prod: ProdArgs,
}

/// One repository's infrastructure: the project, and Pulumi with its settings.
struct Infra {
    project: Project,
    pulumi: Pulumi,
}

impl Infra {
    fn open(root: Option<&Utf8Path>) -> Result<Infra> {
        let project = Project::locate(root)?;
        let settings = Settings::load(&project.root)?;
        let pulumi = Pulumi::new(&project.root, &project.state_dir(), settings);
        Ok(Infra { project, pulumi })
    }

    /// Everything that can fail before Pulumi runs: the executable, the settings, the
    /// backend. Says every missing setting at once.
    fn ready(&self, needs: Needs, env: Env) -> Result<()> {
        self.pulumi.ensure_installed()?;
        let settings = self.pulumi.settings();
        settings.require(needs)?;
        settings.require_shared_backend_for(env.is_production())?;
        settings.prepare_backend()?;
        tracing::info!(backend = %settings.backend.url, "pulumi state backend");
        Ok(())
    }

    fn id(stack: Stack, env: Env) -> StackId {
        StackId { stack, env }
    }

    /// The images a stack needs, checked in the registry; writes the manifest and returns
    /// the environment that hands it to the program.
    fn image_preflight(&self, id: StackId, args: &ImageArgs) -> Result<Vec<(String, String)>> {
        let sets = id.stack.spec().images;
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut required = Vec::new();
        for set in sets {
            let repositories = match set {
                ImageSet::Lambda => self.project.lambdas()?.iter().map(|n| lambda_image(n)).collect(),
                ImageSet::Service => self.project.services()?.iter().map(|s| crate::project::service_image(s)).collect(),
            };
            required.push(Required { set: *set, repositories });
        }
        let name = args.registry_name(&self.project);
        let lookup: Box<dyn ImageRegistry + '_> = if name == "ecr" {
            // ECR: the operations' Lambda image check (`lambda-check-images`), same calls.
            let aws = ops::connect(&self.project, id.env).with_context(|| format!("cannot check the images {id} deploys in ECR"))?;
            Box::new(EcrImages { project: &self.project, aws, tag: args.image_tag.clone() })
        } else {
            match publish::choose(&self.project, Some(&name)).with_context(|| format!("cannot check the images {id} deploys"))? {
                RegistryChoice::Local => {
                    bail!("{id} deploys images from a registry, and `local` is not one; pass --registry ecr (or host[:port])")
                }
                RegistryChoice::Remote(registry) => Box::new(RegistryImages { registry, tag: args.image_tag.clone() }),
            }
        };
        let digests = images::check_images(lookup.as_ref(), &name, id.env, &required)?;
        let path = self.project.state_dir().join(format!("pulumi/image-manifest-{}.json", id.env));
        images::write_manifest(&path, &digests)?;
        eprintln!("{id}: all {} images present in {name} (tag {}); digests handed over in {path}", digests.len(), args.image_tag);
        Ok(vec![(MANIFEST_VAR.to_owned(), path.to_string())])
    }

    /// Backs up the state; a stack that does not exist yet is created first when `create`.
    fn backup(&self, id: StackId, reason: &str, create: bool) -> Result<Utf8PathBuf> {
        match self.pulumi.backup(id, reason) {
            Ok(p) => Ok(p),
            Err(PulumiError::StackNotFound { .. }) if create => {
                eprintln!("{id}: stack {} does not exist yet; creating it", id.stack.project());
                self.pulumi.init(id)?;
                Ok(self.pulumi.backup(id, reason)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `infra-up` for one stack, prerequisites checked: images, lock, backup, preview
    /// (and the persistent guard), then `pulumi up`.
    fn deploy(&self, id: StackId, allow_replace: bool, images: &ImageArgs) -> Result<()> {
        let extra_env = self.image_preflight(id, images)?;
        if let Some(holder) = self.pulumi.local_lock_holder(id) {
            return Err(PulumiError::Locked { id, holder }.into());
        }
        let backup = self.backup(id, "up", true)?;
        eprintln!("{id}: state backed up to {backup}");
        let preview = self.pulumi.preview(id, &extra_env)?;
        print_preview(id, &preview);
        let destructive = preview.destructive();
        if id.stack.spec().guard_replacements && !destructive.is_empty() && !allow_replace {
            let list: Vec<String> = destructive.iter().map(|s| format!("{} {}", s.op, xtask_pulumi::preview::short_urn(&s.urn))).collect();
            bail!(
                "stopped before deploying {id}: its preview would {} ({}); {} holds data and is never replaced silently; review with `cargo xtask infra-preview {} {}` and rerun with --allow-replace if this is intended",
                preview.summary(),
                list.join(", "),
                id.stack,
                id.stack,
                id.env
            );
        }
        self.pulumi.up(id, &extra_env)?;
        eprintln!("{id}: deployed");
        Ok(())
    }

    /// Builds and publishes one image set in this process: the same run as
    /// `lambda-bootstrap` or `service-push-all`, with the layer's registry.
    fn publish_images(&self, set: ImageSet, images: &ImageArgs) -> Result<()> {
        publish_images(&self.project, set, images, false)
    }
}

/// The build and publish run of an image layer; with `dry_run`, its steps are printed.
fn publish_images(project: &Project, set: ImageSet, images: &ImageArgs, dry_run: bool) -> Result<()> {
    let args = BuildArgs { registry: Some(images.registry_name(project)), dry_run, ..BuildArgs::default() };
    let selection = match set {
        ImageSet::Lambda => Selection::Bootstrap,
        ImageSet::Service => Selection::ServicePush(Vec::new()),
    };
    build::run_checked(project, selection, &args)
}

/// Digests from ECR: the Lambda images through [`check_lambda_images`] (the check behind
/// `lambda-check-images`), the other images with the same BatchGetImage call. A missing
/// repository counts as a missing image.
struct EcrImages<'a> {
    project: &'a Project,
    aws: xtask_aws::Aws,
    tag: String,
}

impl ImageRegistry for EcrImages<'_> {
    fn digests(&self, _env: Env, repositories: &[String]) -> Result<BTreeMap<String, Option<String>>, String> {
        let check = check_lambda_images(self.project, &self.aws, &self.tag).map_err(|e| format!("{e:#}"))?;
        let mut found: BTreeMap<String, Option<String>> = check
            .images
            .into_iter()
            .map(|i| {
                let digest = match i.state {
                    ImageState::Present { digest } => Some(digest),
                    ImageState::Missing | ImageState::NoRepository => None,
                };
                (i.repository, digest)
            })
            .collect();
        for repo in repositories.iter().filter(|r| !found.contains_key(*r)).collect::<Vec<_>>() {
            let digest = match self.aws.batch_get_images(repo, std::slice::from_ref(&self.tag)) {
                Ok(images) => images.into_iter().find(|f| f.tag == self.tag).map(|f| f.digest),
                Err(e) if e.is_not_found(xtask_aws::ResourceKind::EcrRepository) => None,
                Err(e) => return Err(e.to_string()),
            };
            found.insert(repo.clone(), digest);
        }
        Ok(repositories.iter().map(|r| (r.clone(), found.get(r).cloned().flatten())).collect())
    }
}

/// Digests from any other registry through the registry code's `Registry` trait: the
/// digest of `<repository>:<tag>`, one batched lookup.
struct RegistryImages {
    registry: Box<dyn xtask_image::registry::Registry>,
    tag: String,
}

impl ImageRegistry for RegistryImages {
    fn digests(&self, _env: Env, repositories: &[String]) -> Result<BTreeMap<String, Option<String>>, String> {
        let wanted: Vec<(String, String)> = repositories.iter().map(|r| (r.clone(), self.tag.clone())).collect();
        let found = self.registry.lookup(&wanted).map_err(|e| format!("{e:#}"))?;
        Ok(repositories.iter().cloned().zip(found.into_iter().map(|m| m.map(|m| m.digest))).collect())
    }
}

fn print_preview(id: StackId, preview: &PreviewDigest) {
    eprintln!("{id}: {}", preview.summary());
    let changes = preview.changes();
    for s in changes.iter().take(30) {
        eprintln!("    {:<10} {}", s.op, xtask_pulumi::preview::short_urn(&s.urn));
    }
    if changes.len() > 30 {
        eprintln!("    ... and {} more", changes.len() - 30);
    }
}

/// Asks for the environment name to be typed on a terminal, unless `flag` confirms.
fn confirm(env: Env, action: &str, flag: bool, flag_name: &str) -> Result<()> {
    crate::confirm::typed(env.name(), action, flag, flag_name)
}

fn confirm_prod(env: Env, action: &str, prod: &ProdArgs) -> Result<()> {
    if env.is_production() { confirm(env, action, prod.yes_prod, "--yes-prod") } else { Ok(()) }
}

fn github_group(title: &str) {
    let gh = xtask_engine::github::Github::detect();
    if gh.actions {
        gh.group(title);
    }
}
fn github_endgroup() {
    xtask_engine::github::Github::detect().end_group();
}

impl SetupArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let project = Project::locate(root)?;
        let target = project.root.join("infra/.env");
        let template = project.root.join("infra/.env.example");
        if target.exists() {
            eprintln!("infra/.env already exists; left unchanged");
            return Ok(ExitCode::SUCCESS);
        }
        let text = std::fs::read_to_string(&template)
            .map_err(|_| anyhow::anyhow!("{template} is missing; restore it with `git checkout -- infra/.env.example`"))?;
        let parsed = xtask_pulumi::dotenv::parse(&text).map_err(|e| anyhow::anyhow!("{template} cannot be read: {e}; fix the template"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .with_context(|| format!("cannot create {target}"))?;
        file.write_all(text.as_bytes()).with_context(|| format!("cannot write {target}"))?;
        let empty: Vec<&str> = parsed.keys().into_iter().filter(|k| parsed.get(k).is_some_and(str::is_empty)).collect();
        eprintln!("created infra/.env from infra/.env.example (readable by you only)");
        if !empty.is_empty() {
            eprintln!(
                "fill in: {} (an empty S3_PULUMI_BACKEND_URL means the local state backend under target/pulumi-state)",
                empty.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl PreviewArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let (stacks, env): (Vec<Stack>, Env) = match self.words.as_slice() {
            [env] => (graph::deployment_order(), env.parse()?),
            [stack, env] => (vec![stack.parse()?], env.parse()?),
            _ => bail!("expected `[STACK] ENV`; for example `cargo xtask infra-preview dev` or `cargo xtask infra-preview compute dev`"),
        };
        let infra = Infra::open(root)?;
        infra.ready(Needs::Cloud, env)?;
        // Prerequisites first, before any pulumi call.
        let mut failures: Vec<String> = Vec::new();
        let mut extra: BTreeMap<Stack, Vec<(String, String)>> = BTreeMap::new();
        for stack in &stacks {
            match infra.image_preflight(Infra::id(*stack, env), &self.images) {
                Ok(e) => {
                    extra.insert(*stack, e);
                }
                Err(e) => failures.push(format!("{}: {e:#}", Infra::id(*stack, env))),
            }
        }
        let mut drifted: Vec<String> = Vec::new();
        let mut results = Vec::new();
        for stack in &stacks {
            let id = Infra::id(*stack, env);
            let Some(env_vars) = extra.get(stack) else {
                continue;
            };
            match infra.pulumi.preview(id, env_vars) {
                Ok(p) => {
                    print_preview(id, &p);
                    if p.has_changes() {
                        drifted.push(format!("{id} ({})", p.summary()));
                    }
                    results.push(serde_json::json!({
                        "stack": stack.name(), "env": env.name(), "summary": p.summary(),
                        "changeSummary": p.change_summary, "changes": p.changes(),
                    }));
                }
                Err(e) => {
                    eprintln!("{id}: preview failed: {e}");
                    failures.push(format!("{id}: {e}"));
                }
            }
        }
        if self.json {
            let doc = serde_json::json!({ "env": env.name(), "stacks": results, "failures": failures });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        if !failures.is_empty() {
            bail!("preview failed for {}", failures.join("; "));
        }
        if self.expect_no_changes && !drifted.is_empty() {
            bail!(
                "changes found where none were expected: {}; review them with `cargo xtask infra-preview <stack> {env}`",
                drifted.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl UpArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let infra = Infra::open(root)?;
        infra.ready(Needs::Cloud, self.env)?;
        confirm_prod(self.env, &format!("deploy {} to prod", self.stack), &self.prod)?;
        infra.deploy(Infra::id(self.stack, self.env), self.allow_replace, &self.images)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl BootstrapArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let layers = graph::layers_from(self.from);
        let env = self.env;
        if self.dry_run {
            let project = Project::locate(root)?;
            println!("infra-bootstrap {env}: {} step(s)", layers.len());
            for (i, layer) in layers.iter().enumerate() {
                let what = match layer {
                    Layer::Stack(s) => {
                        let mut w = String::new();
                        if !s.spec().images.is_empty() {
                            w.push_str("check the images in the registry, write the image manifest, ");
                        }
                        w.push_str(&format!("back up the state, pulumi preview, pulumi up ({} / {env})", s.project()));
                        if s.spec().guard_replacements {
                            w.push_str(", stop if the preview deletes or replaces a resource");
                        }
                        w
                    }
                    Layer::Images(set) => format!(
                        "build and publish them in this process, as `cargo xtask {} --registry {}` does",
                        set.publish_command(),
                        self.images.registry_name(&project)
                    ),
                };
                println!("  {}. {:<15} {what}", i + 1, layer.name());
            }
            // The image layers' own steps: builds, pushes and tags, planned and not run.
            for layer in &layers {
                if let Layer::Images(set) = layer {
                    eprintln!("\n{} of {env}:", layer.name());
                    if let Err(e) = publish_images(&project, *set, &self.images, true) {
                        eprintln!("  cannot plan the {} here: {e:#}", set.name());
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let infra = Infra::open(root)?;
        infra.ready(Needs::Cloud, env)?;
        confirm_prod(env, "deploy every layer to prod", &self.prod)?;
        let total = layers.len();
        for (i, layer) in layers.iter().enumerate() {
            eprintln!("==> [{}/{total}] {layer} ({env})", i + 1);
            github_group(&format!("infra-bootstrap {env}: {layer}"));
            let result = match layer {
                Layer::Stack(s) => infra.deploy(Infra::id(*s, env), self.allow_replace, &self.images),
                Layer::Images(set) => infra.publish_images(*set, &self.images),
            };
            github_endgroup();
            if let Err(e) = result {
                bail!(
                    "infra-bootstrap {env} stopped at layer {layer}: {e:#}; fix it and resume with `cargo xtask infra-bootstrap {env} --from {layer}`"
                );
            }
        }
        eprintln!("infra-bootstrap {env}: all {total} layer(s) done");
        Ok(ExitCode::SUCCESS)
    }
}

impl OutputsArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let infra = Infra::open(root)?;
        infra.ready(Needs::State, self.env)?;
        let outputs = infra.pulumi.outputs(Infra::id(self.stack, self.env), self.show_secrets)?;
        println!("{}", serde_json::to_string_pretty(&outputs)?);
        Ok(ExitCode::SUCCESS)
    }
}

impl RecoverArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let id = Infra::id(self.stack, self.env);
        let infra = Infra::open(root)?;
        infra.ready(Needs::Cloud, self.env)?;
        confirm_prod(self.env, &format!("cancel any pending update of {} in prod and refresh it", self.stack), &self.prod)?;
        let holder = infra.pulumi.local_lock_holder(id);
        infra.pulumi.cancel(id)?;
        match holder {
            Some(h) => eprintln!("{id}: removed the lock{h}"),
            None => eprintln!("{id}: no pending update left a lock (or the backend holds it remotely; `pulumi cancel` released it)"),
        }
        let drift = infra.pulumi.refresh_preview(id)?;
        if drift.has_changes() {
            eprintln!("{id}: the cloud differs from the state: {}", drift.summary());
            for s in drift.changes() {
                eprintln!("    {:<10} {}", s.op, xtask_pulumi::preview::short_urn(&s.urn));
            }
        } else {
            eprintln!("{id}: the state matches the cloud (no drift)");
        }
        if self.write {
            let backup = infra.backup(id, "refresh", false)?;
            eprintln!("{id}: state backed up to {backup}");
            infra.pulumi.refresh(id)?;
            eprintln!("{id}: state refreshed from the cloud");
        } else if drift.has_changes() {
            eprintln!(
                "{id}: nothing was written; `cargo xtask infra-recover {} {} --write` records the drift in the state (after a backup)",
                self.stack, self.env
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl DestroyArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let id = Infra::id(self.stack, self.env);
        let spec = self.stack.spec();
        if spec.destroy == DestroyPolicy::Never {
            bail!(
                "refusing to destroy {id}: {} holds the data ({}) and is never destroyed; destroy compute or edge instead",
                self.stack,
                spec.summary
            );
        }
        let infra = Infra::open(root)?;
        infra.ready(Needs::Cloud, self.env)?;
        let downstream = self.stack.downstreams();
        if !downstream.is_empty() {
            let names: Vec<&str> = downstream.iter().map(|s| s.name()).collect();
            eprintln!("note: {} read {}'s outputs; destroy them first or they break", names.join(", "), self.stack);
        }
        let action = format!("destroy every resource of {id}");
        if self.env.is_production() {
            confirm(self.env, &action, self.prod.yes_prod, "--yes-prod")?;
        } else {
            confirm(self.env, &action, self.yes, "--yes")?;
        }
        let backup = infra.backup(id, "destroy", false)?;
        eprintln!("{id}: state backed up to {backup}");
        infra.pulumi.destroy(id)?;
        eprintln!("{id}: destroyed");
        Ok(ExitCode::SUCCESS)
    }
}
