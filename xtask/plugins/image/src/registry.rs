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

pub use crate::distribution::{Manifest, OciRegistry, is_loopback};


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
        for h in ["127.0.0.1:5000", "localhost:5000", "localhost", "LOCALHOST:1", "127.1.2.3", "[::1]:5000", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        // Names that only look like loopback are hosts like any other.
        for h in [
            "registry.example.com",
            "10.0.0.1:5000",
            "123.dkr.ecr.eu-central-1.amazonaws.com",
            "127.evil.com",
            "127.0.0.1.nip.io:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
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
