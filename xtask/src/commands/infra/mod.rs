//! The infrastructure commands: `infra-setup`, `infra-preview`, `infra-up`,
//! `infra-bootstrap`, `infra-outputs`, `infra-recover` and `infra-destroy`.
//!
//! Each resolves the stack graph (`xtask_pulumi::graph`), checks what it can before any
//! `pulumi` call (arguments, `infra/.env`, the `pulumi` executable, confirmation for prod,
//! the images compute deploys), then drives the CLI through `xtask_pulumi::Pulumi`.
//! Progress goes to stderr; stdout carries only JSON (`infra-outputs`, `--json`).
//!
//! This module holds the arguments and what the commands share; `session.rs` what is done
//! to one stack (images, backups, the skip decision, the deployment), `deploy.rs` the
//! commands that preview and deploy, `recover.rs` and `destroy.rs` the other two.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use xtask_engine::{InputHash, State};
use xtask_pulumi::graph::{self, DestroyPolicy, Env, ImageSet, Layer, Stack};
use xtask_pulumi::images::{self, ImageRegistry, MANIFEST_VAR, Required};
use xtask_pulumi::preview::{Counts, StackSummary};
use xtask_pulumi::records::{self, Records, StateProbe, Verdict};
use xtask_pulumi::{DebugFlags, Needs, PreviewDigest, Pulumi, PulumiError, Settings, StackId};

use crate::commands::build::{self, BuildArgs, Selection};
use crate::commands::ops;
use crate::commands::ops::lambda_images::{ImageState, check_lambda_images};
use crate::project::{Project, lambda_image};
use crate::publish::{self, RegistryChoice};

mod deploy;
mod destroy;
mod recover;
mod session;

fn parse_stack(s: &str) -> Result<Stack, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}
fn parse_env(s: &str) -> Result<Env, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}
fn parse_layer(s: &str) -> Result<Layer, String> {
    s.parse().map_err(|e: graph::UnknownName| e.to_string())
}
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    xtask_pulumi::lock::parse_duration(s)
}

/// Confirmation of changes to prod without a prompt.
#[derive(Debug, Args, Clone)]
pub struct ProdArgs {
    /// Confirm a change to prod without the typed prompt (for CI)
    #[arg(long)]
    pub yes_prod: bool,
}

/// Where the state is: the configured backend, or, only when asked, this machine.
#[derive(Debug, Args, Clone, Default)]
pub struct BackendArgs {
    /// Keep the state in <target>/pulumi-state on this machine (dev and staging only), when no S3_PULUMI_BACKEND_URL is set
    #[arg(long)]
    pub local_state: bool,
}

/// Pulumi's own debugging output, passed through (the guide's debug procedure).
#[derive(Debug, Args, Clone, Default)]
pub struct DebugArgs {
    /// Pass --diff to pulumi: a rich diff of every change (with a preview, the properties each change touches)
    #[arg(long)]
    pub diff: bool,
    /// Pass `--logtostderr -v=N` to pulumi: its logs at level N (9 traces everything), shown as they come
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=11))]
    pub pulumi_verbose: Option<u8>,
}

impl DebugArgs {
    fn flags(&self) -> DebugFlags {
        DebugFlags { diff: self.diff, verbose: self.pulumi_verbose }
    }
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

/// Skipping stacks whose inputs are those of their last successful `up` here.
#[derive(Debug, Args, Clone, Default)]
pub struct SkipArgs {
    /// Deploy every stack even when its inputs are those of its last successful up here
    #[arg(long)]
    pub force: bool,
    /// Say why each stack deploys or is skipped, and list what changed since its last up
    #[arg(long)]
    pub explain: bool,
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
    /// Also write the summary as a pull request comment (Markdown) to FILE, for
    /// `infra-pr-comment` to post
    #[arg(long, value_name = "FILE")]
    pub pr_comment: Option<Utf8PathBuf>,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub debug: DebugArgs,
}

#[derive(Debug, Args)]
pub struct PrCommentArgs {
    /// The comment `infra-preview --pr-comment FILE` wrote
    #[arg(value_name = "FILE")]
    pub file: Utf8PathBuf,
    /// The pull request's number
    #[arg(long, value_name = "NUMBER")]
    pub pr: u64,
    /// The repository, OWNER/NAME (default: GITHUB_REPOSITORY)
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Option<String>,
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
    /// Say whether the stack would deploy or be skipped, and why; run nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub skip: SkipArgs,
    #[command(flatten)]
    pub prod: ProdArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub debug: DebugArgs,
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
    pub skip: SkipArgs,
    #[command(flatten)]
    pub prod: ProdArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub debug: DebugArgs,
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
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The stack `infra-recover` works on: one of the four, or `all` with `--instructions`
/// (after a failed `infra-bootstrap`, whose error names the stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverTarget {
    One(Stack),
    All,
}

fn parse_recover_target(s: &str) -> Result<RecoverTarget, String> {
    if s == "all" { Ok(RecoverTarget::All) } else { parse_stack(s).map(RecoverTarget::One) }
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// persistent, foundation, compute or edge (`all` with --instructions)
    #[arg(value_parser = parse_recover_target)]
    pub stack: RecoverTarget,
    #[arg(value_parser = parse_env)]
    pub env: Env,
    /// Print the recovery procedure for a failed deployment and run nothing (also to the GitHub step summary); what CI prints on failure
    #[arg(long, conflicts_with_all = ["cancel", "write", "force"])]
    pub instructions: bool,
    /// Release the stack's lock (`pulumi cancel`), once no update is running; refused for a lock younger than --min-lock-age, or of unknown age, unless --force
    #[arg(long)]
    pub cancel: bool,
    /// With --cancel: release the lock however young it is, or when its age cannot be read (S3)
    #[arg(long, requires = "cancel")]
    pub force: bool,
    /// With --cancel: the age a lock must have reached to be released without --force (15m, 1h, 90s)
    #[arg(long, value_name = "AGE", default_value = "15m", value_parser = parse_age)]
    pub min_lock_age: std::time::Duration,
    /// Also write the refreshed state (after a backup); without it nothing is written
    #[arg(long)]
    pub write: bool,
    #[command(flatten)]
    pub prod: ProdArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
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
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub debug: DebugArgs,
}

/// Variables handed to a Pulumi program (the image manifest's path, for compute).
type ProgramEnv = Vec<(String, String)>;

/// What the stacks of one `infra-up` or `infra-bootstrap` run share: the records of past
/// `up`s (read once), the hash of each stack's outputs as this run found or left them,
/// and the skip options.
struct StackRun {
    store: Records,
    records: State,
    outputs: BTreeMap<Stack, InputHash>,
    skip: SkipArgs,
}

impl StackRun {
    fn new(project: &Project, skip: &SkipArgs) -> Result<StackRun> {
        let store = Records::new(&project.state_dir());
        let records = store.load()?;
        if let Some(why) = &records.discarded {
            eprintln!("warning: {why}; every stack deploys");
        }
        Ok(StackRun { store, records, outputs: BTreeMap::new(), skip: skip.clone() })
    }
}

/// What `infra-up` did with one stack.
enum Deployed {
    /// Previewed (these counts) and deployed.
    Ran { counts: Counts },
    /// Skipped: its inputs and state were those of its last `up` here.
    Skipped { why: String },
}

impl Deployed {
    fn summary(&self, stack: Stack) -> StackSummary {
        match self {
            Deployed::Ran { counts } => StackSummary { stack, result: Ok(*counts) },
            Deployed::Skipped { why } => StackSummary { stack, result: Err(format!("skipped: {why}")) },
        }
    }
}

/// The per-stack table of a deployment, on the terminal and in the GitHub step summary.
fn report_deployment(env: Env, summaries: &[StackSummary]) -> Result<()> {
    if summaries.is_empty() {
        return Ok(());
    }
    eprintln!("\n{}", xtask_pulumi::preview::text_table(summaries).trim_end());
    xtask_engine::github::Github::detect().summary(&xtask_pulumi::preview::markdown(&format!("Pulumi deploy: {env}"), summaries))
}

/// One repository's infrastructure: the project, and Pulumi with its settings.
struct Infra {
    project: Project,
    pulumi: Pulumi,
}

/// What `infra-up` would do with one stack, for the dry runs: from the records alone.
fn dry_decision(infra: &Result<Infra>, id: StackId, images: &ImageArgs, skip: &SkipArgs, ahead: &[Stack]) -> String {
    let decide = || -> Result<String> {
        let infra = infra.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let run = StackRun::new(&infra.project, skip)?;
        infra.dry_verdict(id, images, &run, ahead)
    };
    decide().unwrap_or_else(|e| format!("undecided: {e:#}"))
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
