//! `cargo xtask`: builds, publishes and deploys the TradAI monorepo.
//!
//! `main` parses the command line and dispatches; each command family lives in its own
//! module under `commands/`.

mod aliases;
mod bases;
mod changes;
mod cli;
mod commands;
mod confirm;
mod deployment;
mod ecr;
mod project;
mod publish;
mod target_dir;
mod tools;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = aliases::expand_aliases(std::env::args().collect());
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.global.verbose);
    if cli.global.offline {
        tools::set_offline();
    }
    // Pulumi's secrets go to the pulumi processes that are given them, never to Docker,
    // uv or git started along the way (infra-bootstrap builds images in this process).
    xtask_engine::process::withhold_from_children(&["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN"]);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().with_target(false).try_init();
}
