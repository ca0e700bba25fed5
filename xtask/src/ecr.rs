//! Amazon ECR as a [`Registry`]: lookups and retags through the ECR API (one
//! BatchGetImage per repository for up to 100 tags; PutImage writes an existing manifest
//! under a new tag), pushes through `docker push` after a `docker login` that receives
//! the authorization token on stdin, never on a command line.
//!
//! The account and region come from the standard AWS configuration chain, with
//! `AWS_PROFILE` and `AWS_REGION` from `infra/.env` as fallbacks.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use xtask_aws::{Aws, AwsSettings};
use xtask_engine::Cmd;
use xtask_image::registry::{Manifest, Registry};

use crate::project::Project;

pub struct EcrRegistry {
    aws: Aws,
    host: String,
}

/// The AWS settings of the project: the process environment first, then `infra/.env`.
pub fn aws_settings(project: &Project, env: Option<&str>) -> Result<AwsSettings> {
    let path = project.root.join("infra/.env");
    let mut settings = AwsSettings { env: env.map(str::to_owned), ..AwsSettings::default() };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let dotenv = xtask_pulumi::dotenv::parse(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        settings.profile = dotenv.get("AWS_PROFILE").filter(|v| !v.is_empty()).map(str::to_owned);
        settings.region = dotenv.get("AWS_REGION").filter(|v| !v.is_empty()).map(str::to_owned);
    }
    Ok(settings)
}

impl EcrRegistry {
    /// Connects with the project's AWS settings and learns the registry host.
    pub fn connect(project: &Project) -> Result<Self> {
        let aws = Aws::connect(&aws_settings(project, None)?)?;
        let host = aws.registry_host()?;
        Ok(EcrRegistry { aws, host })
    }
}

impl Registry for EcrRegistry {
    fn name(&self) -> String {
        self.host.clone()
    }

    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    fn lookup(&self, wanted: &[(String, String)]) -> Result<Vec<Option<Manifest>>> {
        let mut by_repo: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (repo, tag) in wanted {
            by_repo.entry(repo.as_str()).or_default().push(tag.clone());
        }
        let mut found: BTreeMap<(String, String), Manifest> = BTreeMap::new();
        for (repo, tags) in by_repo {
            for f in self.aws.batch_get_images(repo, &tags)? {
                let media_type = f.media_type.unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
                found.insert((repo.to_owned(), f.tag), Manifest { digest: f.digest, media_type, bytes: f.manifest.into_bytes() });
            }
        }
        Ok(wanted.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn put_tag(&self, repository: &str, manifest: &Manifest, tag: &str) -> Result<()> {
        let text = String::from_utf8(manifest.bytes.clone()).context("manifest is not UTF-8")?;
        self.aws.put_image_tag(repository, &text, Some(&manifest.media_type), tag)?;
        Ok(())
    }

    fn docker_login(&self) -> Result<()> {
        let token = self.aws.authorization_token()?;
        Cmd::new("docker", format!("log in to {}", token.registry))
            .args(["login", "--username", token.username.as_str(), "--password-stdin", token.registry.as_str()])
            .stdin_bytes(token.password.expose().as_bytes().to_vec())
            .run()?;
        Ok(())
    }
}
