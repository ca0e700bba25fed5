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
    let result = commands::run(cli);
    if let Err(e) = &result {
        eprintln!("error: {e:#}{}", io_fix(e));
    }
    // Stopped by Ctrl-C or SIGTERM (after letting the work in flight end cleanly): the
    // exit code says so, as a shell's would, whatever the command made of it.
    if let Some(signal) = xtask_engine::interrupt::received() {
        return ExitCode::from(xtask_engine::interrupt::exit_code(signal));
    }
    result.unwrap_or(ExitCode::FAILURE)
}

/// The fix for an error that ends in the file system refusing a write (a read-only or
/// full disk, a file where a folder should be, no permission), which the message of the
/// system call does not say; empty for every other error.
fn io_fix(e: &anyhow::Error) -> &'static str {
    use std::io::ErrorKind;
    let Some(kind) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()).map(std::io::Error::kind) else { return "" };
    match kind {
        ErrorKind::ReadOnlyFilesystem => {
            "; the file system is read-only: make it writable, or move the tool's folder with CARGO_TARGET_DIR"
        }
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "; the disk is full: free some space, or move the tool's folder with CARGO_TARGET_DIR"
        }
        ErrorKind::AlreadyExists => "; something already stands at that path: move or remove it",
        ErrorKind::NotADirectory => "; a file stands where that path needs a folder: move or remove it",
        ErrorKind::PermissionDenied => "; check the owner and permissions of that path",
        _ => "",
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // The AWS SDK logs its endpoint parameters at debug level, the caller's credentials
    // among them, whose Debug shows the access key id: those two lines are never shown,
    // whatever the level (the more specific directive wins over `debug` or XTASK_LOG's).
    for quiet in ["aws_smithy_runtime::client::orchestrator::endpoints=info", "aws_smithy_runtime::client::orchestrator::auth=info"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().with_target(false).try_init();
}
