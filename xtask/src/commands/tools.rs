//! `cargo xtask tools`: the tools the commands provision for themselves, where they live,
//! and a way to install them ahead of time or find one (the tests use `tools path`).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::project::Project;
use crate::tools::{Group, SystemTool, Toolbox, find_program};

#[derive(Debug, Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    pub action: Option<ToolsAction>,
}

#[derive(Debug, Subcommand)]
pub enum ToolsAction {
    /// List the tools, their pins and whether they are installed (the default)
    List,
    /// Install the named tools now (default: every one that can be installed here)
    Install {
        #[arg(value_enum)]
        names: Vec<ToolName>,
    },
    /// Print the path of one tool, installing it first when missing
    Path {
        #[arg(value_enum)]
        name: ToolName,
    },
}

/// Every tool the commands can provision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToolName {
    Uv,
    TestServers,
    WorkflowLint,
    Debootstrap,
    DockerRegistry,
}

impl ToolName {
    /// Its path: the executable, or the environment folder of a dependency group.
    fn provide(self, tools: &Toolbox) -> Result<String> {
        Ok(match self {
            ToolName::Uv => tools.uv()?.into_string(),
            ToolName::TestServers => tools.group(Group::TestServers)?.into_string(),
            ToolName::WorkflowLint => tools.group(Group::WorkflowLint)?.into_string(),
            ToolName::Debootstrap => tools.system(SystemTool::Debootstrap)?.into_string(),
            ToolName::DockerRegistry => tools.system(SystemTool::DockerRegistry)?.into_string(),
        })
    }
}

impl ToolsArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let tools = project.tools();
        match &self.action {
            None | Some(ToolsAction::List) => {
                println!("tools folder: {}", tools.dir);
                for t in tools.states() {
                    let state = if t.installed { "installed" } else { "installed on first use" };
                    println!("  {:<16} {:<10} {:<24} {}", t.name, t.pin, state, t.path);
                }
                for s in [SystemTool::Debootstrap, SystemTool::DockerRegistry] {
                    let state = match find_program(s.program()) {
                        Some(p) => format!("present          {p}"),
                        None => "system package, installed when needed (root on Debian/Ubuntu)".to_owned(),
                    };
                    println!("  {:<16} {:<10} {state}", s.program(), "system");
                }
                Ok(ExitCode::SUCCESS)
            }
            Some(ToolsAction::Install { names }) => {
                let names = if names.is_empty() { ToolName::value_variants().to_vec() } else { names.clone() };
                let mut failed = 0;
                for n in names {
                    if let Err(e) = n.provide(&tools) {
                        eprintln!("error: {e:#}");
                        failed += 1;
                    }
                }
                Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Some(ToolsAction::Path { name }) => {
                println!("{}", name.provide(&tools)?);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
