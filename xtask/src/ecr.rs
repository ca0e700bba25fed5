//! Amazon ECR as a [`Registry`]: lookups and retags through the ECR API (one
//! BatchGetImage per repository for up to 100 tags; PutImage writes an existing manifest
//! under a new tag), pushes through `docker push` after a `docker login` that receives
//! the authorization token on stdin, never on a command line. Images pushed without
//! Docker go through the distribution API client [`Registry::distribution`] hands out,
//! logged in with the same token (Basic auth, user `AWS`), held in memory only.
//!
//! The account and region come from the standard AWS configuration chain, with
//! `AWS_PROFILE` and `AWS_REGION` from `infra/.env` as fallbacks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use xtask_aws::{Aws, AwsSettings, EcrToken};
use xtask_engine::Cmd;
use xtask_image::distribution::Credentials;
use xtask_image::registry::{Manifest, OciRegistry, Registry};

use crate::project::Project;

pub struct EcrRegistry {
    aws: Aws,
    host: String,
    /// Made on first use from a login token, which lasts 12 hours: longer than a run.
    distribution: OnceLock<OciRegistry>,
}

/// The distribution API client for the registry an ECR login token is for: its endpoint
/// host, and the token's user (`AWS`) and password as Basic credentials, the login
/// `docker login` is given, so a push without Docker authenticates as `docker push` does.
pub fn distribution_client(token: &EcrToken) -> Result<OciRegistry> {
    Ok(OciRegistry::new(&token.registry)?.with_credentials(Credentials::new(token.username.as_str(), token.password.expose())))
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
    /// A distribution API client of its own for this registry (a new login token).
    pub fn distribution_owned(&self) -> Result<OciRegistry> {
        distribution_client(&self.aws.authorization_token()?)
    }

    pub fn connect(project: &Project) -> Result<Self> {
        let aws = Aws::connect(&aws_settings(project, None)?)?;
        let host = aws.registry_host()?;
        Ok(EcrRegistry { aws, host, distribution: OnceLock::new() })
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

    fn distribution(&self) -> Result<&OciRegistry> {
        if let Some(client) = self.distribution.get() {
            return Ok(client);
        }
        let client = distribution_client(&self.aws.authorization_token()?)?;
        // Two threads asking at once both log in; one client is kept, which is harmless.
        Ok(self.distribution.get_or_init(|| client))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use xtask_aws::Secret;

    use super::*;

    #[test]
    fn the_distribution_client_logs_in_as_docker_does() {
        // A loopback stand-in for the ECR endpoint (moto does not serve the distribution
        // API): it answers 404 and keeps the Authorization header it was sent.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorization = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
            (&stream).write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
            authorization
        });
        let token = EcrToken { registry: host.clone(), username: "AWS".into(), password: Secret::new("s3cret"), expires_at: None };
        let client = distribution_client(&token).unwrap();
        assert_eq!(client.name(), host);
        assert_eq!(client.lookup(&[("tradai/x".into(), "latest".into())]).unwrap(), [None]);
        // ECR's Basic credentials are base64("AWS:<password>"), the token GetAuthorizationToken returns.
        assert_eq!(server.join().unwrap().as_deref(), Some("Basic QVdTOnMzY3JldA=="));
        let shown = format!("{:?}", client.credentials());
        assert!(shown.contains("AWS") && !shown.contains("s3cret"), "{shown}");
    }
}
