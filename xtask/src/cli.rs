//! The command line: clap definitions, the grouped command list, and the seed recipe
//! names that are rewritten to their canonical form before parsing.

use std::process::ExitCode;

use camino::Utf8PathBuf;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::commands::build::BuildArgs;
use crate::commands::doctor::DoctorArgs;
use crate::commands::test::TestArgs;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, publish and deploy the TradAI monorepo",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Repository root (default: the nearest folder above the current one with an xtask.toml)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<Utf8PathBuf>,
    /// More logging: -v for steps, -vv for every command run
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never install a missing tool; name it and stop instead (also XTASK_OFFLINE=1)
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the tools and services the build needs, with the fix for each missing one
    Doctor(DoctorArgs),
    /// Run every test: the tool's Rust tests and every Python package's pytest
    Test(TestArgs),
    /// List, install or locate the tools the commands provision for themselves (uv, linters, test servers)
    Tools(crate::commands::tools::ToolsArgs),
    /// Show the pinned upstream Python bases and what builds here use; --pull fetches them, --update re-pins them
    BaseImages(crate::commands::base_images::BaseImagesArgs),
    /// Measure the build speed claims side by side (no-op, one change, cold, hashing, registry, assembler)
    Bench(crate::commands::bench::BenchArgs),
    /// Fuzz the .dockerignore matcher, the Dockerfile reader and the .env reader for a bounded time each (cargo-fuzz)
    Fuzz(crate::commands::fuzz::FuzzArgs),
    /// Build the tradai-common wheel, lambda-base and every Lambda image that changed
    LambdaBuildAll(BuildArgs),
    /// Build the named Lambda images (and what they are built from)
    LambdaBuild(LambdaBuildArgs),
    /// Full Lambda pipeline: version, wheel, lambda-base, every Lambda, publish
    LambdaBootstrap(crate::commands::build::BootstrapArgs),
    /// Build the 4 service images (linux/amd64)
    DockerBuild(BuildArgs),
    /// Print the target graph as Mermaid or DOT; --changed highlights what a change affects, --html draws it
    Graph(crate::commands::graph::GraphArgs),
    /// Build what changed and push every Lambda image (lambda-base included)
    LambdaPushAll(BuildArgs),
    /// Build and push one or more service images
    ServicePush(ServicePushArgs),
    /// Build and push all 4 service images
    ServicePushAll(BuildArgs),
    /// Log Docker in to the ECR registry (token from ECR, passed on stdin)
    ServiceEcrLogin,
    /// Show every ECS service: counts, task definition, image digest, deployment state
    EcsStatus(crate::commands::ops::ecs::EcsStatusArgs),
    /// Force a new deployment of one ECS service and wait until it settles
    EcsForceDeploy(crate::commands::ops::ecs::EcsForceDeployArgs),
    /// Redeploy the trading services (strategy-service, dry-run-trading, live-trading)
    EcsForceDeployAll(crate::commands::ops::ecs::EcsForceDeployAllArgs),
    /// Show the consolidated EC2 group: capacity, instances, instance refreshes
    AsgStatus(crate::commands::ops::asg::AsgStatusArgs),
    /// Replace the consolidated EC2 instances (instance refresh) and wait until done
    AsgRefresh(crate::commands::ops::asg::AsgRefreshArgs),
    /// Get a CodeArtifact token (12h) and write it where pip and uv read their index
    CodeartifactLogin(crate::commands::ops::codeartifact::CodeartifactLoginArgs),
    /// Build tradai-strategy's wheel if it changed and upload it to the package index
    PublishAllLibs(crate::commands::ops::publish::PublishAllLibsArgs),
    /// Check that ECR holds every Lambda image for a tag, with digests
    LambdaCheckImages(crate::commands::ops::lambda_images::LambdaCheckImagesArgs),
    /// Roll back to a release tag: retag latest, update Lambdas, redeploy (--dry-run lists the steps)
    Rollback(crate::commands::ops::rollback::RollbackArgs),
    /// The CI gate: `ci` runs every job as a pull request does; `ci <job>` runs one (`ci --help`)
    Ci(crate::commands::ci::CiArgs),
    /// Check the docs are true to the tool: every command documented, mentions and links valid
    DocsFreshness(crate::commands::docs::DocsFreshnessArgs),
    /// Build the documentation site (MkDocs, strict: every link, anchor and nav entry checked)
    DocsBuild(crate::commands::docs_site::DocsBuildArgs),
    /// Build the .devcontainer image; --push sends it to GHCR (latest and the commit tag)
    DevcontainerBuild(crate::commands::devcontainer::DevcontainerBuildArgs),
    /// Create infra/.env from infra/.env.example (never overwrites an existing one)
    InfraSetup(crate::commands::infra::SetupArgs),
    /// Preview one stack, or all four in order; --expect-no-changes fails on drift
    #[command(override_usage = "cargo xtask infra-preview [OPTIONS] [STACK] <ENV>")]
    InfraPreview(crate::commands::infra::PreviewArgs),
    /// Post the summary `infra-preview --pr-comment` wrote on a pull request (replaces the environment's last one)
    InfraPrComment(crate::commands::infra::PrCommentArgs),
    /// Deploy one stack unless its inputs are unchanged: images for compute, state backup, preview, up
    InfraUp(crate::commands::infra::UpArgs),
    /// Deploy everything in order (persistent, foundation, images, compute, edge), skipping unchanged stacks
    InfraBootstrap(crate::commands::infra::BootstrapArgs),
    /// Print a stack's outputs as JSON (secrets masked unless --show-secrets)
    InfraOutputs(crate::commands::infra::OutputsArgs),
    /// Show a stack's lock (owner, age) and its drift; --cancel releases a stale lock, --write records the drift
    InfraRecover(crate::commands::infra::RecoverArgs),
    /// Destroy a stack's resources after a backup (never persistent; asks to confirm)
    InfraDestroy(crate::commands::infra::DestroyArgs),
}

#[derive(Debug, Args)]
pub struct LambdaBuildArgs {
    /// Lambda names, as the folders under lambdas/
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Debug, Args)]
pub struct ServicePushArgs {
    /// Service names, as the folders under services/
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// How the commands are grouped in `cargo xtask --help`.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("Setup", &["doctor", "tools", "base-images", "test", "bench", "fuzz"]),
    ("Build", &["lambda-build-all", "lambda-build", "lambda-bootstrap", "docker-build", "graph"]),
    ("Publish", &["lambda-push-all", "service-push", "service-push-all", "service-ecr-login"]),
    (
        "Operations",
        &[
            "ecs-status",
            "ecs-force-deploy",
            "ecs-force-deploy-all",
            "asg-status",
            "asg-refresh",
            "codeartifact-login",
            "publish-all-libs",
            "lambda-check-images",
            "rollback",
        ],
    ),
    ("CI", &["ci", "docs-freshness", "docs-build", "devcontainer-build"]),
    ("Infrastructure", &["infra-setup", "infra-preview", "infra-pr-comment", "infra-up", "infra-bootstrap", "infra-outputs", "infra-recover", "infra-destroy"]),
];

use crate::aliases::ALIASES;

/// The grouped command list shown by `--help` and by `cargo xtask` alone.
pub fn grouped_commands() -> String {
    let cmd = Cli::command();
    let width = cmd.get_subcommands().map(|s| s.get_name().len()).max().unwrap_or(10);
    let mut out = String::new();
    for (group, names) in GROUPS {
        out.push_str(&format!("{group}:\n"));
        for name in *names {
            let about = cmd.find_subcommand(name).and_then(|s| s.get_about()).map(|a| a.to_string()).unwrap_or_default();
            out.push_str(&format!("  {name:<width$}  {about}\n"));
        }
        out.push('\n');
    }
    if !ALIASES.is_empty() {
        out.push_str("Seed recipe names (same arguments as `just <name>`):\n");
        let width = ALIASES.iter().map(|(a, _)| a.len()).max().unwrap_or(width);
        for (alias, expansion) in ALIASES {
            out.push_str(&format!("  {alias:<width$}  = {}\n", expansion.join(" ")));
        }
        out.push('\n');
    }
    out
}

fn command_with_groups() -> clap::Command {
    let template = format!(
        "{{about}}\n\n{{usage-heading}} {{usage}}\n\n{}Options:\n{{options}}\n\nRun `cargo xtask <command> --help` for a command's options.",
        grouped_commands()
    );
    Cli::command().help_template(template)
}

/// Parses arguments; on bad input prints one line naming the problem and the fix.
pub fn parse(args: Vec<String>) -> Result<Cli, ExitCode> {
    let matches = match command_with_groups().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return Err(report_clap_error(e, &args)),
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return Err(report_clap_error(e, &args)),
    };
    if cli.command.is_none() {
        let _ = command_with_groups().print_help();
        return Err(ExitCode::SUCCESS);
    }
    Ok(cli)
}

fn report_clap_error(e: clap::Error, args: &[String]) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::InvalidSubcommand => {
            let name = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => "?".into(),
            };
            // `ci nope`: the unknown name is one of a command's own subcommands.
            if let Some(parent) = parent_command(args, &name) {
                let valid: Vec<&str> = parent.get_subcommands().map(|s| s.get_name()).collect();
                let parent = parent.get_name();
                eprintln!("error: unknown `{parent}` subcommand `{name}`; valid: {} (see `cargo xtask {parent} --help`)", valid.join(", "));
                return ExitCode::from(2);
            }
            let valid: Vec<String> = GROUPS.iter().flat_map(|(_, n)| n.iter().map(|s| (*s).to_owned())).collect();
            eprintln!("error: unknown command `{name}`; valid commands: {} (see `cargo xtask --help`)", valid.join(", "));
            return ExitCode::from(2);
        }
        _ => {}
    }
    // Condense clap's multi-line message into one line: the message and its tips.
    let rendered = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with("Usage:") || l.starts_with("For more information") {
            continue;
        }
        parts.push(l.to_owned());
    }
    eprintln!("{}", parts.join(" "));
    ExitCode::from(2)
}

/// The command with subcommands that comes before the unknown `name` on the command
/// line, if any (`ci` in `cargo xtask ci nope`).
fn parent_command(args: &[String], name: &str) -> Option<clap::Command> {
    let cli = Cli::command();
    let at = args.iter().skip(1).position(|a| a == name)?;
    args.iter().skip(1).take(at).find_map(|a| cli.find_subcommand(a)).filter(|c| c.has_subcommands()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_is_in_exactly_one_group_and_groups_name_real_commands() {
        let cmd = Cli::command();
        let grouped: Vec<&str> = GROUPS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        for sub in cmd.get_subcommands() {
            let n = grouped.iter().filter(|g| **g == sub.get_name()).count();
            assert_eq!(n, 1, "{} must be listed in exactly one help group", sub.get_name());
        }
        for g in grouped {
            assert!(cmd.find_subcommand(g).is_some(), "help group names unknown command {g}");
        }
    }

    #[test]
    fn an_unknown_subcommand_is_put_to_its_command() {
        let parent = |line: &str, name: &str| {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            parent_command(&args, name).map(|c| c.get_name().to_owned())
        };
        assert_eq!(parent("xtask --root /r ci nope", "nope").as_deref(), Some("ci"));
        assert_eq!(parent("xtask frobnicate ci", "frobnicate"), None, "a command after the unknown name is not its parent");
        assert_eq!(parent("xtask frobnicate", "frobnicate"), None);
    }

    #[test]
    fn aliases_expand_to_real_commands() {
        for (alias, expansion) in ALIASES {
            assert!(Cli::command().find_subcommand(expansion[0]).is_some(), "{alias} expands to unknown {}", expansion[0]);
            let args = crate::aliases::expand_aliases(vec!["xtask".into(), (*alias).into(), "dev".into()]);
            assert_eq!(&args[1..args.len() - 1], *expansion);
        }
    }
}
