//! `cargo xtask devcontainer-build`: builds the development container of `.devcontainer/`
//! and, with `--push`, pushes it to GitHub's container registry (devcontainer-prebuild.yml),
//! tagged `latest` and with the commit.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use xtask_engine::Cmd;

use crate::project::Project;

#[derive(Debug, Args)]
pub struct DevcontainerBuildArgs {
    /// Push the image (`latest` and the commit tag) after building it
    #[arg(long)]
    pub push: bool,
    /// Image name without a tag (default: $DEVCONTAINER_IMAGE, else
    /// ghcr.io/<$GITHUB_REPOSITORY>/devcontainer, else tradai/devcontainer)
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// Print the commands in order and run none
    #[arg(long)]
    pub dry_run: bool,
}

/// One command of the plan, and what it needs on stdin (the registry token).
struct Step {
    cmd: Cmd,
    stdin_from_env: Option<&'static str>,
}

impl DevcontainerBuildArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let context = project.root.join(".devcontainer");
        if !context.join("Dockerfile").is_file() {
            bail!("no .devcontainer/Dockerfile under {}; add one (see docs/ci.md)", project.root);
        }
        let image = image_name(self.image.as_deref(), |k| std::env::var(k).ok());
        let commit = Cmd::new("git", "read the commit for the image tag")
            .args(["rev-parse", "--short=12", "HEAD"])
            .dir(project.root.clone())
            .run()
            .map(|f| f.stdout.trim().to_owned())
            .unwrap_or_else(|_| "unversioned".into());
        let mut steps = vec![Step {
            cmd: Cmd::new("docker", "build the devcontainer image")
                .args(["build", "--platform", "linux/amd64", "--file", context.join("Dockerfile").as_str()])
                .args(["--tag", &format!("{image}:latest"), "--tag", &format!("{image}:{commit}"), context.as_str()]),
            stdin_from_env: None,
        }];
        if self.push {
            let registry = image.split('/').next().unwrap_or_default().to_owned();
            if registry.contains('.') || registry.contains(':') {
                if std::env::var("GITHUB_TOKEN").is_ok_and(|t| !t.is_empty()) || self.dry_run {
                    let user = std::env::var("GITHUB_ACTOR").unwrap_or_else(|_| "token".into());
                    steps.push(Step {
                        cmd: Cmd::new("docker", format!("log in to {registry}")).args([
                            "login",
                            registry.as_str(),
                            "--username",
                            user.as_str(),
                            "--password-stdin",
                        ]),
                        stdin_from_env: Some("GITHUB_TOKEN"),
                    });
                } else {
                    eprintln!("GITHUB_TOKEN is not set: pushing with the credentials docker already has for {registry}");
                }
            }
            for tag in ["latest", commit.as_str()] {
                steps.push(Step {
                    cmd: Cmd::new("docker", format!("push {image}:{tag}")).args(["push", &format!("{image}:{tag}")]),
                    stdin_from_env: None,
                });
            }
        }
        if self.dry_run {
            for (i, step) in steps.iter().enumerate() {
                let stdin = step.stdin_from_env.map(|v| format!("  (${v} on stdin)")).unwrap_or_default();
                println!("{}. {}{stdin}", i + 1, step.cmd.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        for step in steps {
            eprintln!("== {}", step.cmd.purpose());
            let mut cmd = step.cmd;
            if let Some(var) = step.stdin_from_env {
                let token = std::env::var(var).with_context(|| format!("{var} is not set; export it or run `docker login` yourself"))?;
                cmd = cmd.stdin_bytes(token.into_bytes());
            } else {
                cmd = cmd.inherit_output();
            }
            cmd.run()?;
        }
        eprintln!("devcontainer image {image}:{commit} {}", if self.push { "built and pushed" } else { "built" });
        Ok(ExitCode::SUCCESS)
    }
}

/// The image name: the flag, the environment, the repository's GHCR name, or a local one.
/// Docker names are lowercase.
fn image_name(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let name = flag
        .map(str::to_owned)
        .or_else(|| nonempty(env("DEVCONTAINER_IMAGE")))
        .or_else(|| nonempty(env("GITHUB_REPOSITORY")).map(|r| format!("ghcr.io/{r}/devcontainer")))
        .unwrap_or_else(|| xtask_repo::names().image("devcontainer"));
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_name_prefers_flag_then_env_then_repository() {
        let env = |k: &str| match k {
            "GITHUB_REPOSITORY" => Some("Acme/TradAI".to_owned()),
            _ => None,
        };
        assert_eq!(image_name(None, env), "ghcr.io/acme/tradai/devcontainer");
        assert_eq!(image_name(Some("x/y"), env), "x/y");
        assert_eq!(image_name(None, |_| None), "tradai/devcontainer");
        assert_eq!(image_name(None, |k| (k == "DEVCONTAINER_IMAGE").then(|| "reg.io/dc".to_owned())), "reg.io/dc");
    }
}
