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

impl Infra {
    /// The project and its Pulumi settings; `backend` says whether `--local-state` was
    /// given, `debug` which of Pulumi's debugging flags every call passes.
    fn open(root: Option<&Utf8Path>, backend: &BackendArgs, debug: DebugFlags) -> Result<Infra> {
        let project = Project::locate(root)?;
        let local = backend.local_state.then(|| project.target_dir().join("pulumi-state"));
        let settings = Settings::load(&project.root, local.as_deref())?;
        let pulumi = Pulumi::new(&project.root, &project.state_dir(), settings).with_debug(debug);
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
        // Always said, so that nobody deploys against a backend they did not mean.
        if let Some(backend) = &settings.backend {
            eprintln!("{}", backend.describe());
        }
        Ok(())
    }

    fn id(stack: Stack, env: Env) -> StackId {
        StackId { stack, env }
    }

    /// The images a stack needs, checked in the registry; writes the manifest and returns
    /// the environment that hands it to the program, and the digests (inputs of the stack).
    fn image_preflight(&self, id: StackId, args: &ImageArgs) -> Result<(ProgramEnv, BTreeMap<String, String>)> {
        let Some(digests) = self.image_digests(id, args)? else {
            return Ok((Vec::new(), BTreeMap::new()));
        };
        let path = self.project.state_dir().join(format!("pulumi/image-manifest-{}.json", id.env));
        images::write_manifest(&path, &digests)?;
        eprintln!(
            "{id}: all {} images present in {} (tag {}); digests handed over in {path}",
            digests.len(),
            args.registry_name(&self.project),
            args.image_tag
        );
        Ok((vec![(MANIFEST_VAR.to_owned(), path.to_string())], digests))
    }

    /// The digests of the images a stack deploys, checked in the registry at `--image-tag`
    /// (one error naming every missing image); `None` for a stack that deploys none.
    fn image_digests(&self, id: StackId, args: &ImageArgs) -> Result<Option<BTreeMap<String, String>>> {
        let sets = id.stack.spec().images;
        if sets.is_empty() {
            return Ok(None);
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
        Ok(Some(images::check_images(lookup.as_ref(), &name, id.env, &required)?))
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

    /// `infra-up` for one stack, prerequisites checked: images, lock, then whether its
    /// inputs changed since its last successful `up` here (unchanged, with the state that
    /// `up` left: skipped), backup, preview (and the persistent guard), `pulumi up`, and
    /// the record of that `up`.
    fn deploy(&self, id: StackId, allow_replace: bool, images: &ImageArgs, run: &mut StackRun) -> Result<Deployed> {
        let (extra_env, digests) = self.image_preflight(id, images)?;
        if let Some(holder) = self.pulumi.local_lock_holder(id) {
            return Err(PulumiError::Locked { id, holder }.into());
        }
        let upstream = self.upstream_outputs(id, run)?;
        let inputs = records::stack_manifest(&self.project.root.join("infra"), id, &upstream, &digests)?;
        let backend = self.pulumi.settings().backend_url().to_owned();
        let mut verdict = records::verdict(records::find(&run.records, &backend, id), &inputs, run.skip.force);
        if let Verdict::Unchanged { recorded_at, state } = &verdict {
            let when = records::when(*recorded_at);
            verdict = match self.probe(id) {
                Ok(p) if p.state == *state => {
                    eprintln!("{id}: skipped: its inputs and its state are those of its last up here ({when}); --force deploys it anyway");
                    if run.skip.explain {
                        eprintln!("    inputs {} (program, shared package, settings, upstream outputs, image digests)", &inputs.hash().as_str()[..12]);
                    }
                    run.outputs.insert(id.stack, p.outputs);
                    return Ok(Deployed::Skipped { why: format!("unchanged since {when}") });
                }
                Ok(_) => Verdict::Run {
                    reason: format!(
                        "its inputs are unchanged, but its state is not the one its last up here left ({when}): an up from elsewhere, a pulumi command run by hand or a refresh wrote it since"
                    ),
                    changes: Vec::new(),
                },
                Err(PulumiError::StackNotFound { .. }) => {
                    Verdict::Run { reason: "it no longer exists in the state backend".into(), changes: Vec::new() }
                }
                Err(e) => return Err(e.into()),
            };
        }
        if let Verdict::Run { reason, changes } = &verdict {
            eprintln!("{id}: deploying: {reason}");
            if run.skip.explain {
                for c in changes {
                    eprintln!("    {c}");
                }
            }
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
        // The record: what it was deployed from and the state it left. Without it the
        // next run simply deploys again, so a failure here is a warning.
        match self.probe(id) {
            Ok(p) => {
                run.outputs.insert(id.stack, p.outputs.clone());
                if let Err(e) = run.store.record(&backend, id, inputs, &p) {
                    eprintln!("warning: {e}; the next infra-up of {id} deploys it again");
                }
            }
            Err(e) => eprintln!("warning: {id} is deployed, but its state could not be read to record the deployment ({e}); the next infra-up deploys it again"),
        }
        Ok(Deployed::Ran { counts: preview.counts() })
    }

    /// `pulumi stack export` (captured, never written to a file) reduced to the hashes a
    /// record keeps: the whole state, and the outputs downstream stacks read.
    fn probe(&self, id: StackId) -> Result<StateProbe, PulumiError> {
        let purpose = "read the state";
        let out = self.pulumi.run_captured(id, purpose, self.pulumi.command(id, purpose, &["stack", "export"]))?;
        StateProbe::from_export(id, &out.stdout).map_err(|e| PulumiError::BadOutput { id, command: "pulumi stack export".into(), problem: e.to_string() })
    }

    /// The hash of each upstream's outputs: known from this run when the upstream was
    /// deployed or probed in it, else read from its state now (never from an older
    /// record, which another machine's `up` may have made stale).
    fn upstream_outputs(&self, id: StackId, run: &mut StackRun) -> Result<BTreeMap<Stack, InputHash>> {
        let mut out = BTreeMap::new();
        for up in id.stack.spec().upstreams {
            let hash = match run.outputs.get(up) {
                Some(h) => h.clone(),
                None => {
                    let p = self.probe(Infra::id(*up, id.env)).with_context(|| format!("{id} reads the outputs of {up}"))?;
                    run.outputs.insert(*up, p.outputs.clone());
                    p.outputs
                }
            };
            out.insert(*up, hash);
        }
        Ok(out)
    }

    /// What `infra-up` would do with a stack, decided without running `pulumi`: its inputs
    /// against its record, upstream outputs as their records have them, images as the
    /// registry holds them now. `ahead` lists the stacks that would deploy before it.
    fn dry_verdict(&self, id: StackId, images: &ImageArgs, run: &StackRun, ahead: &[Stack]) -> Result<String> {
        if self.pulumi.settings().backend.is_none() {
            bail!("no state backend is configured, so no record applies; set S3_PULUMI_BACKEND_URL (or pass --local-state)");
        }
        let backend = self.pulumi.settings().backend_url().to_owned();
        let mut upstream = BTreeMap::new();
        for up in id.stack.spec().upstreams {
            match records::find(&run.records, &backend, Infra::id(*up, id.env)).and_then(records::recorded_outputs) {
                Some(h) => {
                    upstream.insert(*up, h);
                }
                None => return Ok(format!("would deploy: no record here of {up}'s outputs (it has not been deployed from here)")),
            }
        }
        let digests = self.image_digests(id, images)?.unwrap_or_default();
        let inputs = records::stack_manifest(&self.project.root.join("infra"), id, &upstream, &digests)?;
        Ok(match records::verdict(records::find(&run.records, &backend, id), &inputs, run.skip.force) {
            Verdict::Run { reason, changes } => {
                let mut s = format!("would deploy: {reason}");
                if run.skip.explain {
                    for c in changes {
                        s.push_str(&format!("\n      {c}"));
                    }
                }
                s
            }
            Verdict::Unchanged { recorded_at, .. } => {
                let mut s = format!("would be skipped: its inputs are those of its last up here ({})", records::when(recorded_at));
                s.push_str(", if the state is still the one that up left");
                let before: Vec<&str> = id.stack.spec().upstreams.iter().filter(|u| ahead.contains(u)).map(|u| u.name()).collect();
                if !before.is_empty() {
                    s.push_str(&format!(" and the outputs of {} do not change when it deploys", before.join(", ")));
                }
                s
            }
        })
    }

    /// Builds and publishes one image set in this process: the same run as
    /// `lambda-bootstrap` or `service-push-all`, with the layer's registry.
    fn publish_images(&self, set: ImageSet, images: &ImageArgs) -> Result<()> {
        publish_images(&self.project, set, images, false)
    }
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
                "fill in: {} (every infra command stops while S3_PULUMI_BACKEND_URL is empty, unless given --local-state for a dev or staging state on this machine)",
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
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, env)?;
        // Prerequisites first, before any pulumi call.
        let mut failures: Vec<String> = Vec::new();
        let mut extra: BTreeMap<Stack, Vec<(String, String)>> = BTreeMap::new();
        let mut not_ready: BTreeMap<Stack, String> = BTreeMap::new();
        for stack in &stacks {
            match infra.image_preflight(Infra::id(*stack, env), &self.images) {
                Ok((e, _)) => {
                    extra.insert(*stack, e);
                }
                Err(e) => {
                    failures.push(format!("{}: {e:#}", Infra::id(*stack, env)));
                    not_ready.insert(*stack, "not previewed: its images are not ready".to_owned());
                }
            }
        }
        let mut drifted: Vec<String> = Vec::new();
        let mut results = Vec::new();
        let mut summaries: Vec<StackSummary> = Vec::new();
        for stack in &stacks {
            let id = Infra::id(*stack, env);
            let Some(env_vars) = extra.get(stack) else {
                summaries.push(StackSummary { stack: *stack, result: Err(not_ready.get(stack).cloned().unwrap_or_default()) });
                continue;
            };
            match infra.pulumi.preview(id, env_vars) {
                Ok(p) => {
                    print_preview(id, &p);
                    if p.has_changes() {
                        drifted.push(format!("{id} ({})", p.summary()));
                    }
                    let counts = p.counts();
                    summaries.push(StackSummary { stack: *stack, result: Ok(counts) });
                    results.push(serde_json::json!({
                        "stack": stack.name(), "env": env.name(), "summary": p.summary(), "counts": counts,
                        "changeSummary": p.change_summary, "changes": p.changes(),
                    }));
                }
                Err(e) => {
                    eprintln!("{id}: preview failed: {e}");
                    failures.push(format!("{id}: {e}"));
                    summaries.push(StackSummary { stack: *stack, result: Err("preview failed".to_owned()) });
                }
            }
        }
        // The summary: the terminal, the GitHub step summary and, when asked, the pull
        // request comment, all before any failure is reported, so a failed stack shows too.
        eprintln!("\n{}", xtask_pulumi::preview::text_table(&summaries).trim_end());
        xtask_engine::github::Github::detect().summary(&xtask_pulumi::preview::markdown(&format!("Pulumi preview: {env}"), &summaries))?;
        if let Some(path) = &self.pr_comment {
            let text = xtask_pulumi::preview::pr_comment(env, &summaries);
            xtask_engine::atomic::write_atomically(path, text.as_bytes()).with_context(|| format!("cannot write the pull request comment {path}"))?;
            eprintln!("pull request comment written to {path} (`cargo xtask infra-pr-comment {path} --pr <number>` posts it)");
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
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        let id = Infra::id(self.stack, self.env);
        if self.dry_run {
            println!("{id}: {}", dry_decision(&Ok(infra), id, &self.images, &self.skip, &[]));
            return Ok(ExitCode::SUCCESS);
        }
        infra.ready(Needs::Cloud, self.env)?;
        confirm_prod(self.env, &format!("deploy {} to prod", self.stack), &self.prod)?;
        let mut run = StackRun::new(&infra.project, &self.skip)?;
        let done = infra.deploy(id, self.allow_replace, &self.images, &mut run)?;
        report_deployment(self.env, &[done.summary(self.stack)])?;
        Ok(ExitCode::SUCCESS)
    }
}

impl PrCommentArgs {
    /// Posts the comment on the pull request with the GitHub CLI (`gh`, on every GitHub
    /// runner; `GH_TOKEN` in the environment), replacing the one an earlier run posted for
    /// the same environment (found by the marker on its first line) so that a pull request
    /// carries one current preview per environment.
    pub fn run(self) -> Result<ExitCode> {
        let file = self.file.clone();
        let body = std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}; write it with `cargo xtask infra-preview <env> --pr-comment {}`", self.file))?;
        let marker = body.lines().next().filter(|l| l.starts_with("<!-- cargo-xtask infra-preview ")).map(str::to_owned);
        let Some(marker) = marker else {
            bail!("{file} was not written by `cargo xtask infra-preview --pr-comment` (its first line is not the preview marker); write it with that command");
        };
        let repo = match self.repo.clone().or_else(|| std::env::var("GITHUB_REPOSITORY").ok().filter(|r| !r.is_empty())) {
            Some(r) => r,
            None => bail!("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY"),
        };
        let pr = self.pr;
        let jq = format!(".[] | select(.user.type == \"Bot\") | select(.body | startswith({marker:?})) | .id");
        let found = xtask_engine::Cmd::new("gh", "find this environment's earlier preview comment")
            .args(["api", "--paginate", &format!("repos/{repo}/issues/{pr}/comments"), "--jq", &jq])
            .run()?;
        match found.stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) {
            Some(comment) => {
                let comment: u64 = comment.parse().with_context(|| format!("gh listed a comment id that is not a number: {comment:?}"))?;
                xtask_engine::Cmd::new("gh", "replace the preview comment")
                    .args(["api", "--method", "PATCH", &format!("repos/{repo}/issues/comments/{comment}"), "-F", &format!("body=@{file}")])
                    .run()?;
                eprintln!("replaced the preview comment {comment} on {repo}#{pr}");
            }
            None => {
                xtask_engine::Cmd::new("gh", "post the preview comment")
                    .args(["pr", "comment", &pr.to_string(), "--repo", &repo, "--body-file", file.as_str()])
                    .run()?;
                eprintln!("posted the preview comment on {repo}#{pr}");
            }
        }
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
            let mut ahead: Vec<Stack> = Vec::new();
            let mut decisions: Vec<String> = Vec::new();
            let infra = Infra::open(root, &self.backend, self.debug.flags());
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
                if let Layer::Stack(s) = layer {
                    decisions.push(format!("  {:<11} {}", s.name(), dry_decision(&infra, Infra::id(*s, env), &self.images, &self.skip, &ahead)));
                    ahead.push(*s);
                }
            }
            // Which stacks would be skipped, from the records alone (no pulumi call).
            eprintln!("\nthe stacks of {env}:");
            for d in &decisions {
                eprintln!("{d}");
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
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, env)?;
        confirm_prod(env, "deploy every layer to prod", &self.prod)?;
        let mut run = StackRun::new(&infra.project, &self.skip)?;
        let mut summaries: Vec<StackSummary> = Vec::new();
        let total = layers.len();
        for (i, layer) in layers.iter().enumerate() {
            eprintln!("==> [{}/{total}] {layer} ({env})", i + 1);
            github_group(&format!("infra-bootstrap {env}: {layer}"));
            let result = match layer {
                Layer::Stack(s) => infra.deploy(Infra::id(*s, env), self.allow_replace, &self.images, &mut run).map(|d| summaries.push(d.summary(*s))),
                Layer::Images(set) => infra.publish_images(*set, &self.images),
            };
            github_endgroup();
            if let Err(e) = result {
                report_deployment(env, &summaries)?;
                bail!(
                    "infra-bootstrap {env} stopped at layer {layer}: {e:#}; fix it and resume with `cargo xtask infra-bootstrap {env} --from {layer}`"
                );
            }
        }
        report_deployment(env, &summaries)?;
        let skipped = summaries.iter().filter(|s| s.result.is_err()).count();
        eprintln!("infra-bootstrap {env}: all {total} layer(s) done ({skipped} stack(s) skipped as unchanged)");
        Ok(ExitCode::SUCCESS)
    }
}

impl OutputsArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let infra = Infra::open(root, &self.backend, DebugFlags::default())?;
        infra.ready(Needs::State, self.env)?;
        let outputs = infra.pulumi.outputs(Infra::id(self.stack, self.env), self.show_secrets)?;
        println!("{}", serde_json::to_string_pretty(&outputs)?);
        Ok(ExitCode::SUCCESS)
    }
}

impl RecoverArgs {
    /// Shows the stack's lock (owner, age) and how the cloud differs from the state.
    /// Nothing is released unless `--cancel` says so, and not a lock younger than
    /// `--min-lock-age` (or of unknown age) without `--force`: `pulumi cancel` deletes the
    /// lock of an update that may still be running on a colleague's machine.
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        if self.instructions {
            return print_recovery_instructions(self.stack, self.env);
        }
        let RecoverTarget::One(stack) = self.stack else {
            bail!("infra-recover works on one stack; name it (persistent, foundation, compute or edge), or pass --instructions for the procedure");
        };
        let env = self.env;
        let id = Infra::id(stack, env);
        let infra = Infra::open(root, &self.backend, DebugFlags::default())?;
        infra.ready(Needs::Cloud, env)?;
        if self.cancel || self.write {
            confirm_prod(env, &format!("release the lock of {stack} in prod or write its refreshed state"), &self.prod)?;
        }
        let Some(backend) = infra.pulumi.settings().backend.clone() else {
            bail!("no state backend is configured");
        };
        let by_hand = format!(
            "PULUMI_BACKEND_URL='{}' pulumi cancel --yes --stack {env} --cwd infra/{stack}",
            backend.shown_url()
        );
        let locks = infra.pulumi.local_locks(id);
        let now = xtask_pulumi::lock::now();
        match &locks {
            Some(locks) if locks.is_empty() => eprintln!("{id}: not locked"),
            Some(locks) => {
                for l in locks {
                    eprintln!("{id}: locked by {} ({})", l.describe_at(now), l.path);
                }
            }
            None => {
                let folder = xtask_pulumi::lock::lock_folder(&backend, &stack.project(), env.name());
                let look = if backend.url.starts_with("s3://") {
                    format!("; list it with `aws s3 ls {folder}` and read its owner and time with `aws s3 cp {folder}<file>.json -`")
                } else {
                    String::new()
                };
                eprintln!("{id}: the tool cannot read locks on {}; a lock, if any, is a file in {folder}{look}", backend.shown_url());
            }
        }
        let locked = !matches!(&locks, Some(l) if l.is_empty());
        if self.cancel {
            match &locks {
                Some(l) if l.is_empty() => eprintln!("{id}: no lock to release"),
                known => {
                    if !self.force {
                        let ages: Option<Vec<std::time::Duration>> = known.as_ref().and_then(|l| l.iter().map(|x| x.age_at(now)).collect());
                        match ages.and_then(|a| a.into_iter().min()) {
                            None => bail!(
                                "refusing to release the lock of {id}: its age cannot be read here, so an update may still be running; check that none is (ask whoever deploys {env}), then rerun with --force"
                            ),
                            Some(age) if age < self.min_lock_age => bail!(
                                "refusing to release the lock of {id}: it is {} old, younger than --min-lock-age {}, so its update may still be running; wait for it, ask its owner, or rerun with --force",
                                xtask_pulumi::lock::format_age(age),
                                xtask_pulumi::lock::format_age(self.min_lock_age)
                            ),
                            Some(_) => {}
                        }
                    }
                    infra.pulumi.cancel(id)?;
                    eprintln!("{id}: lock released (`pulumi cancel`)");
                }
            }
        } else if locks.is_none() {
            eprintln!(
                "{id}: if it is locked and no update is running, release it with `cargo xtask infra-recover {stack} {env} --cancel --force` (by hand: `{by_hand}`)"
            );
        } else if locked {
            eprintln!(
                "{id}: once no update is running, release it with `cargo xtask infra-recover {stack} {env} --cancel` (by hand: `{by_hand}`)"
            );
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
            eprintln!("{id}: nothing was written; `cargo xtask infra-recover {stack} {env} --write` records the drift in the state (after a backup)");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The recovery procedure after a failed deployment, as the seed's workflow printed it:
/// on stderr and, under GitHub Actions, in the step summary with an error annotation. It
/// runs nothing: whether a lock may be released is for a person to decide.
fn print_recovery_instructions(target: RecoverTarget, env: Env) -> Result<ExitCode> {
    let stack = match target {
        RecoverTarget::One(s) => s.name().to_owned(),
        RecoverTarget::All => "<stack>".to_owned(),
    };
    let mut steps = [
        format!("See who holds the stack's lock and since when, and how the cloud differs from the state (writes nothing): `cargo xtask infra-recover {stack} {env}`"),
        format!(
            "Only once no update is running (ask whoever deploys {env}), release the lock: `cargo xtask infra-recover {stack} {env} --cancel`; a lock younger than 15 minutes (`--min-lock-age`), or of unknown age (S3), also needs `--force`"
        ),
        format!("To write the drift into the state, after a backup: `cargo xtask infra-recover {stack} {env} --write`"),
        format!("Deploy again: `cargo xtask infra-up {stack} {env}`, or `cargo xtask infra-bootstrap {env} --from <layer>` to resume a bootstrap"),
    ];
    if env.is_production() {
        steps.iter_mut().skip(1).take(2).for_each(|s| s.push_str(" (prod: add `--yes-prod`)"));
    }
    let heading = match target {
        RecoverTarget::One(s) => format!("Deployment of {s} to {env} failed"),
        RecoverTarget::All => format!("Deployment to {env} failed; `<stack>` is the stack the error names (infra-bootstrap: \"stopped at layer <stack>\")"),
    };
    eprintln!("{heading}. Nothing was released: a lock may belong to an update still running elsewhere.");
    for (i, step) in steps.iter().enumerate() {
        eprintln!("  {}. {step}", i + 1);
    }
    let github = xtask_engine::github::Github::detect();
    let mut md = format!("### {heading}\n\nNothing was released: a lock may belong to an update still running elsewhere.\n\n");
    for (i, step) in steps.iter().enumerate() {
        md.push_str(&format!("{}. {step}\n", i + 1));
    }
    github.summary(&md)?;
    github.error(&xtask_engine::github::Annotation {
        title: "Infrastructure deployment failed",
        message: &format!("no lock was released; recover with `cargo xtask infra-recover {stack} {env}` (steps in the job summary)"),
        ..Default::default()
    });
    Ok(ExitCode::SUCCESS)
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
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, self.env)?;
        let downstream = self.stack.downstreams();
        if !downstream.is_empty() {
            let names: Vec<&str> = downstream.iter().map(|s| s.name()).collect();
            eprintln!("note: {} read {}'s outputs; destroy them first or they break", names.join(", "), self.stack);
        }
        let action = format!("destroy every resource of {id}");
        let (flag, flag_name) = if self.env.is_production() { (self.prod.yes_prod, "--yes-prod") } else { (self.yes, "--yes") };
        // Without the flag and without a terminal to ask on, refuse before any pulumi call.
        let can_ask = std::io::IsTerminal::is_terminal(&std::io::stdin()) && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !flag && !can_ask {
            confirm(self.env, &action, false, flag_name)?;
        }
        // The backup is also what says which resources outlive the destroy, shown before
        // the confirmation is asked for.
        let backup = infra.backup(id, "destroy", false)?;
        eprintln!("{id}: state backed up to {backup}");
        let export = std::fs::read_to_string(&backup).with_context(|| format!("cannot read the state backup {backup}"))?;
        let kept = xtask_pulumi::export::kept_on_destroy(&export).unwrap_or_default();
        let protected = kept.iter().any(|k| k.why == xtask_pulumi::export::Why::Protected);
        if !kept.is_empty() {
            eprintln!("{id}: {} resource(s) stay after the destroy:", kept.len());
            for k in &kept {
                eprintln!("    {:<60} {}", xtask_pulumi::preview::short_urn(&k.urn), k.why.explain());
            }
            if protected {
                eprintln!(
                    "{id}: pulumi destroy runs with --exclude-protected: it deletes the rest and keeps the protected resources and what they depend on"
                );
            }
        }
        confirm(self.env, &action, flag, flag_name)?;
        infra.pulumi.destroy(id, protected)?;
        if kept.is_empty() {
            eprintln!("{id}: destroyed");
        } else {
            eprintln!("{id}: destroyed, except the {} resource(s) listed above", kept.len());
        }
        Ok(ExitCode::SUCCESS)
    }
}
