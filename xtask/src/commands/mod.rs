//! One module per command family; `run` is the dispatch.

pub mod base_images;
pub mod bench;
pub mod build;
pub mod ci;
pub mod devcontainer;
pub mod docs;
pub mod docs_site;
pub mod doctor;
pub mod fuzz;
pub mod graph;
pub mod infra;
pub mod ops;
pub mod test;
pub mod tools;

use std::process::ExitCode;

use anyhow::Result;

use clap::CommandFactory as _;

use crate::cli::{Cli, Command};
use crate::project::Project;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let Some(command) = cli.command else {
        return Ok(ExitCode::SUCCESS);
    };
    let root = cli.global.root.as_deref();
    match command {
        Command::Doctor(args) => args.run(root),
        Command::Test(args) => args.run(&Project::locate(root)?),
        Command::Tools(args) => args.run(&Project::locate(root)?),
        Command::BaseImages(args) => args.run(&Project::locate(root)?),
        Command::Bench(args) => args.run(&Project::locate(root)?),
        Command::Fuzz(args) => args.run(&Project::locate(root)?),
        Command::LambdaBuildAll(args) => build::run(&Project::locate(root)?, build::Selection::AllLambdas, &args),
        Command::LambdaBuild(args) => build::run(&Project::locate(root)?, build::Selection::Lambdas(args.names.clone()), &args.build),
        Command::LambdaBootstrap(args) => build::bootstrap(&Project::locate(root)?, &args),
        Command::DockerBuild(args) => build::run(&Project::locate(root)?, build::Selection::Services, &args),
        Command::Graph(args) => args.run(&Project::locate(root)?),
        Command::LambdaPushAll(args) => build::run(&Project::locate(root)?, build::Selection::LambdaPush, &args),
        Command::ServicePush(args) => {
            build::run(&Project::locate(root)?, build::Selection::ServicePush(args.services.clone()), &args.build)
        }
        Command::ServicePushAll(args) => build::run(&Project::locate(root)?, build::Selection::ServicePush(Vec::new()), &args),
        Command::ServiceEcrLogin => {
            use xtask_image::registry::Registry as _;
            let ecr = crate::ecr::EcrRegistry::connect(&Project::locate(root)?)?;
            ecr.docker_login()?;
            eprintln!("Docker is logged in to {} (the token is valid for 12 hours)", ecr.name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ci(args) => args.run(&Project::locate(root)?, crate::cli::Cli::command()),
        Command::DocsFreshness(args) => args.run(&Project::locate(root)?, &crate::cli::Cli::command()),
        Command::DocsBuild(args) => args.run(&Project::locate(root)?),
        Command::DevcontainerBuild(args) => args.run(&Project::locate(root)?),
        Command::EcsStatus(args) => args.run(&Project::locate(root)?),
        Command::EcsForceDeploy(args) => args.run(&Project::locate(root)?),
        Command::EcsForceDeployAll(args) => args.run(&Project::locate(root)?),
        Command::AsgStatus(args) => args.run(&Project::locate(root)?),
        Command::AsgRefresh(args) => args.run(&Project::locate(root)?),
        Command::CodeartifactLogin(args) => args.run(&Project::locate(root)?),
        Command::PublishAllLibs(args) => args.run(&Project::locate(root)?),
        Command::LambdaCheckImages(args) => args.run(&Project::locate(root)?),
        Command::Rollback(args) => args.run(&Project::locate(root)?),
        Command::InfraSetup(args) => args.run(root),
        Command::InfraPreview(args) => args.run(root),
        Command::InfraPrComment(args) => args.run(),
        Command::InfraUp(args) => args.run(root),
        Command::InfraBootstrap(args) => args.run(root),
        Command::InfraOutputs(args) => args.run(root),
        Command::InfraRecover(args) => args.run(root),
        Command::InfraDestroy(args) => args.run(root),
    }
}
