//! Image registries: where images are published and the cache every machine shares.
//!
//! A tag named after a target's input hash (`inputs-<32 hex>`) is the remote cache key:
//! if a registry holds it, no machine needs to build that target again. Tags are added
//! to an existing manifest by writing the manifest under the new tag, without pulling or
//! re-uploading layers. [`OciRegistry`] speaks the OCI distribution API to any registry
//! (its push and read side is in [`crate::distribution`]); the ECR implementation lives
//! with the AWS code, shares this trait, and hands out an [`OciRegistry`] logged in with
//! its token for pushes that need no Docker daemon. Images built by Docker still go
//! through `docker push`.

use std::time::Duration;

use anyhow::{Result, bail};
use xtask_engine::{Cmd, ProcessError};

use crate::distribution::{Auth, Credentials, Failure, Scope, check_digest, sha256_digest};

/// A manifest as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The operations the build needs from a registry.
pub trait Registry: Send + Sync {
    /// How the registry is named in messages and state (`127.0.0.1:5000`, `ecr`).
    fn name(&self) -> String;
    /// The reference Docker pushes to and pulls from.
    fn reference(&self, repository: &str, tag: &str) -> String;
    /// Looks up `(repository, tag)` pairs; one answer per pair, `None` when absent.
    /// Implementations batch where the registry's API allows it.
    fn lookup(&self, wanted: &[(String, String)]) -> Result<Vec<Option<Manifest>>>;
    /// Points `tag` at an existing manifest without moving any layer.
    fn put_tag(&self, repository: &str, manifest: &Manifest, tag: &str) -> Result<()>;
    /// Makes `docker push` and `docker pull` work (credentials on stdin, never argv).
    fn docker_login(&self) -> Result<()> {
        Ok(())
    }
    /// The distribution API client for this registry, authenticated: what pushes and
    /// reads images without Docker ([`OciRegistry::push_image`], `fetch_manifest`,
    /// `fetch_blob`).
    fn distribution(&self) -> Result<&OciRegistry> {
        bail!("registry {} has no distribution API client; publish to it with `docker push`", self.name())
    }
}

/// Media types a manifest lookup accepts.
pub(crate) const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// The media type assumed for a manifest that names none.
const DEFAULT_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Any registry speaking the OCI distribution API, addressed as `host[:port]`.
pub struct OciRegistry {
    pub(crate) host: String,
    pub(crate) base_url: String,
    pub(crate) agent: ureq::Agent,
    pub(crate) auth: Auth,
}

/// Whether `host[:port]` is a loopback address, the only place plain HTTP is allowed.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.starts_with("127.") || name == "::1"
}

impl OciRegistry {
    /// A registry at `host[:port]`: HTTP on loopback addresses, HTTPS everywhere else.
    /// Anonymous until [`OciRegistry::with_credentials`]; registries that hand out tokens
    /// to anonymous clients (public Docker Hub, GHCR and ECR Public images) work as they are.
    pub fn new(host: &str) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            bail!("invalid registry `{host}`; use `local`, `ecr` or a host[:port] such as 127.0.0.1:5000");
        }
        let scheme = if is_loopback(host) { "http" } else { "https" };
        // Docker Hub's images are named `docker.io/...`, but its API is elsewhere.
        let api_host = match host {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        // No overall deadline, since a layer upload may take minutes; a connection that
        // stops moving for a minute is a failure (and is retried).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_per_write(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(OciRegistry { host: host.to_owned(), base_url: format!("{scheme}://{api_host}"), agent, auth: Auth::new(None) })
    }

    /// The same registry, logging in with `credentials`: Basic auth where the registry
    /// asks for it (ECR, htpasswd), and to obtain tokens where it asks for those.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.auth = Auth::new(Some(credentials));
        self
    }

    /// The credentials this client logs in with, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.auth.credentials()
    }

    pub(crate) fn manifest_url(&self, repository: &str, reference: &str) -> String {
        format!("{}/v2/{repository}/manifests/{reference}", self.base_url)
    }

    /// Checks that the registry answers the distribution API.
    pub fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base_url);
        self.retry(&format!("reach registry {}", self.host), || {
            // Any answer below 500 is a registry (a 401 is one asking for a login).
            let resp = self.agent.get(&url).call().map_err(Failure::transport)?;
            match resp.status().as_u16() {
                s if s >= 500 => Err(Failure::Fatal(anyhow::anyhow!("registry {} answered {s} at {url}", self.host))),
                _ => Ok(()),
            }
        })
    }

    /// The manifest `repository:reference` (tag or digest) as stored, `None` when absent.
    /// Its digest is checked: against the reference when that is a digest, and against
    /// the registry's `Docker-Content-Digest` otherwise.
    pub(crate) fn get_manifest(&self, repository: &str, reference: &str) -> Result<Option<Manifest>> {
        let url = self.manifest_url(repository, reference);
        let scope = Scope::pull(repository);
        self.retry(&format!("look up {repository}:{reference} in registry {}", self.host), || {
            let mut resp = self.send(&url, &scope, |auth| {
                let req = self.agent.get(&url).header("Accept", ACCEPT);
                let req = match auth {
                    Some(a) => req.header("Authorization", a),
                    None => req,
                };
                req.call().map_err(Failure::transport)
            })?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Ok(None),
                code => {
                    return Err(crate::distribution::status_failure(&mut resp, format!("look up {repository}:{reference} in registry {} ({code})", self.host)));
                }
            }
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let content_type = header("Content-Type").map(|t| t.split(';').next().unwrap_or("").trim().to_owned()).unwrap_or_default();
            let claimed = header("Docker-Content-Digest");
            let bytes = resp
                .body_mut()
                .read_to_vec()
                .map_err(|e| Failure::transport(anyhow::anyhow!("failed to read the manifest of {repository}:{reference}: {e}")))?;
            let digest = sha256_digest(&bytes);
            let expected = if check_digest(reference).is_ok() { Some(reference.to_owned()) } else { claimed.filter(|c| c.starts_with("sha256:")) };
            if let Some(expected) = expected
                && expected != digest
            {
                return Err(Failure::Fatal(anyhow::anyhow!(
                    "registry {} served {repository}:{reference} as {expected} but its bytes hash to {digest}; the registry's copy is corrupt",
                    self.host
                )));
            }
            let media_type = match content_type.as_str() {
                "" | "application/json" | "text/plain" => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.into()),
                t => t.to_owned(),
            };
            Ok(Some(Manifest { digest, media_type, bytes }))
        })
    }
}

impl Registry for OciRegistry {
    fn name(&self) -> String {
        self.host.clone()
    }

    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    fn lookup(&self, wanted: &[(String, String)]) -> Result<Vec<Option<Manifest>>> {
        // The distribution API has no batch call; ask in parallel instead.
        std::thread::scope(|s| {
            let handles: Vec<_> = wanted.iter().map(|(repo, tag)| s.spawn(move || self.get_manifest(repo, tag))).collect();
            handles.into_iter().map(|h| h.join().expect("lookup thread panicked")).collect()
        })
    }

    fn put_tag(&self, repository: &str, manifest: &Manifest, tag: &str) -> Result<()> {
        self.put_manifest(repository, tag, manifest)?;
        Ok(())
    }

    fn distribution(&self) -> Result<&OciRegistry> {
        Ok(self)
    }
}

/// Pushes a local image to `reference` with `docker push`, retrying with backoff.
pub fn docker_push(image_id: &str, reference: &str, registry: &str) -> Result<()> {
    Cmd::new("docker", format!("tag {image_id} as {reference}")).args(["tag", image_id, reference]).run()?;
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=4 {
        match Cmd::new("docker", format!("push {reference}")).args(["push", "--quiet", reference]).run() {
            Ok(_) => return Ok(()),
            Err(ProcessError::Failed { stderr, .. }) if attempt < 4 => {
                tracing::info!(%reference, attempt, stderr = %stderr.trim(), "push failed; retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(ProcessError::Failed { stderr, .. }) => {
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
                bail!("failed to push {reference} to registry {registry} after {attempt} attempts: {last}; check that the registry is running, then run the command again (finished images are not pushed twice)");
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns on the last attempt")
}

/// Pulls `reference` and returns its local image id.
pub fn docker_pull(reference: &str) -> Result<String> {
    Cmd::new("docker", format!("pull {reference}")).args(["pull", "--quiet", reference]).run()?;
    let out = Cmd::new("docker", format!("read the id of {reference}")).args(["image", "inspect", "--format", "{{.Id}}", reference]).run()?;
    Ok(out.stdout.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in ["127.0.0.1:5000", "localhost:5000", "localhost", "127.1.2.3", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example.com", "10.0.0.1:5000", "123.dkr.ecr.eu-central-1.amazonaws.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn invalid_hosts_are_rejected_with_the_valid_forms() {
        let err = OciRegistry::new("http://x/y").err().unwrap().to_string();
        assert!(err.contains("use `local`, `ecr` or a host[:port]"), "{err}");
    }

    #[test]
    fn an_unreachable_registry_is_named_after_retries() {
        // Port 9 (discard) on loopback is closed here: connection refused, quickly.
        let reg = OciRegistry::new("127.0.0.1:9").unwrap();
        let err = reg.lookup(&[("tradai/x".into(), "latest".into())]).unwrap_err().to_string();
        assert!(err.contains("registry 127.0.0.1:9") && err.contains("after 4 attempts"), "{err}");
    }
}
