//! Image registries: where images are published and the cache every machine shares.
//!
//! A tag named after a target's input hash (`inputs-<32 hex>`) is the remote cache key:
//! if a registry holds it, no machine needs to build that target again. Tags are added
//! to an existing manifest by writing the manifest under the new tag, without pulling or
//! re-uploading layers. [`OciRegistry`] speaks the OCI distribution API to any registry;
//! the ECR implementation lives with the AWS code and shares this trait, and both push
//! through `docker push`.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use xtask_engine::{Cmd, ProcessError};

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
}

/// Media types a manifest lookup accepts.
const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Any registry speaking the OCI distribution API, addressed as `host[:port]`.
pub struct OciRegistry {
    host: String,
    base_url: String,
    agent: ureq::Agent,
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
    pub fn new(host: &str) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            bail!("invalid registry `{host}`; use `local`, `ecr` or a host[:port] such as 127.0.0.1:5000");
        }
        let scheme = if is_loopback(host) { "http" } else { "https" };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(OciRegistry { host: host.to_owned(), base_url: format!("{scheme}://{host}"), agent })
    }

    fn manifest_url(&self, repository: &str, reference: &str) -> String {
        format!("{}/v2/{repository}/manifests/{reference}", self.base_url)
    }

    /// Checks that the registry answers the distribution API.
    pub fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base_url);
        let resp = with_retries(&format!("reach registry {}", self.host), || self.agent.get(&url).call())?;
        if resp.status().as_u16() >= 500 {
            bail!("registry {} answered {} at {url}", self.host, resp.status());
        }
        Ok(())
    }

    fn get_manifest(&self, repository: &str, reference: &str) -> Result<Option<Manifest>> {
        let url = self.manifest_url(repository, reference);
        let mut resp = with_retries(&format!("look up {repository}:{reference} in registry {}", self.host), || {
            self.agent.get(&url).header("Accept", ACCEPT).call()
        })?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            code => bail!("registry {} answered {code} for {repository}:{reference}", self.host),
        }
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let media_type = header("Content-Type").unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
        let digest = header("Docker-Content-Digest");
        let bytes = resp.body_mut().read_to_vec().with_context(|| format!("failed to read the manifest of {repository}:{reference}"))?;
        let digest = match digest {
            Some(d) => d,
            None => format!("sha256:{}", xtask_engine::filecache::hex(&sha256(&bytes))),
        };
        Ok(Some(Manifest { digest, media_type, bytes }))
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
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
        let url = self.manifest_url(repository, tag);
        let resp = with_retries(&format!("tag {repository}:{tag} in registry {}", self.host), || {
            self.agent.put(&url).header("Content-Type", &manifest.media_type).send(&manifest.bytes[..])
        })?;
        if !resp.status().is_success() {
            bail!("registry {} refused tag {repository}:{tag} ({})", self.host, resp.status());
        }
        Ok(())
    }
}

/// Retries transport failures (refused, reset, timed out) with backoff: 0.5 s, 1 s, 2 s.
fn with_retries<T>(what: &str, mut call: impl FnMut() -> Result<T, ureq::Error>) -> Result<T> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match call() {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 4 => {
                tracing::info!(%what, attempt, error = %e, "retrying");
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            Err(e) => bail!("failed to {what} after {attempt} attempts: {e}; check that the registry is running and reachable"),
        }
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
