//! The image prerequisite of a stack: every image it deploys must be in ECR before any
//! `pulumi` call, and the digests found are handed to the program in a manifest so that
//! Lambda functions are pinned to exactly what was checked.
//!
//! Looking images up is the [`ImageRegistry`] trait; the code that talks to registries
//! implements it. This module owns the policy: what is required, what a miss says, and the manifest.

use std::collections::BTreeMap;

use camino::Utf8Path;

use crate::graph::{Env, ImageSet};

/// The variable that tells the compute program where the manifest is.
pub const MANIFEST_VAR: &str = "TRADAI_IMAGE_MANIFEST";

/// Answers "which digest does the registry hold for each of these repositories".
pub trait ImageRegistry {
    /// For each repository name (`tradai/lambda-health-check`), the digest
    /// (`sha256:<64 hex>`) of the image the stacks deploy, or `None` when there is none.
    /// `Err` when the registry cannot be asked at all (credentials, network).
    fn digests(&self, env: Env, repositories: &[String]) -> Result<BTreeMap<String, Option<String>>, String>;
}

/// The images one set requires.
#[derive(Debug, Clone)]
pub struct Required {
    pub set: ImageSet,
    pub repositories: Vec<String>,
}

/// Why a stack's images are not ready.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("{count} image(s) missing from {registry} for {env}: {names}; publish them with {fixes}, then rerun", count = .missing.len(), names = .missing.join(", "))]
    Missing { registry: String, env: Env, missing: Vec<String>, fixes: String },
    #[error("cannot check the images in {registry} for {env}: {detail}")]
    Check { registry: String, env: Env, detail: String },
    #[error("the registry returned a malformed digest for {repository} (expected sha256:<64 hex>); republish it with {fix}")]
    BadDigest { repository: String, fix: String },
    #[error("cannot write the image manifest {path}: {detail}")]
    Manifest { path: String, detail: String },
}

fn fix_command(set: ImageSet, registry: &str) -> String {
    format!("`cargo xtask {} --registry {registry}`", set.publish_command())
}

/// Asks the registry once for every required image; returns all digests, or one error
/// naming every missing image and the command that publishes each set to the registry
/// called `registry_name` in `--registry` (`ecr`, or `host[:port]`).
pub fn check_images(
    registry: &dyn ImageRegistry,
    registry_name: &str,
    env: Env,
    required: &[Required],
) -> Result<BTreeMap<String, String>, PreflightError> {
    let all: Vec<String> = required.iter().flat_map(|r| r.repositories.iter().cloned()).collect();
    let found = registry.digests(env, &all).map_err(|detail| PreflightError::Check { registry: registry_name.to_owned(), env, detail })?;
    let mut digests = BTreeMap::new();
    let mut missing = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for req in required {
        for repo in &req.repositories {
            match found.get(repo).cloned().flatten() {
                Some(d) if is_digest(&d) => {
                    digests.insert(repo.clone(), d);
                }
                Some(_) => return Err(PreflightError::BadDigest { repository: repo.clone(), fix: fix_command(req.set, registry_name) }),
                None => {
                    missing.push(repo.clone());
                    let fix = fix_command(req.set, registry_name);
                    if !fixes.contains(&fix) {
                        fixes.push(fix);
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(PreflightError::Missing { registry: registry_name.to_owned(), env, missing, fixes: fixes.join(" and ") });
    }
    Ok(digests)
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Writes `{"images": {"<repository>": "sha256:..."}}`, the format the compute program
/// reads from [`MANIFEST_VAR`].
pub fn write_manifest(path: &Utf8Path, digests: &BTreeMap<String, String>) -> Result<(), PreflightError> {
    let doc = serde_json::json!({ "images": digests });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| PreflightError::Manifest { path: path.to_string(), detail: e.to_string() })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PreflightError::Manifest { path: path.to_string(), detail: e.to_string() })?;
    }
    xtask_engine::atomic::write_atomically(path, format!("{text}\n").as_bytes())
        .map_err(|e| PreflightError::Manifest { path: path.to_string(), detail: format!("{e:#}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    struct Fixed(BTreeMap<String, String>, std::cell::Cell<usize>);
    impl ImageRegistry for Fixed {
        fn digests(&self, _env: Env, repositories: &[String]) -> Result<BTreeMap<String, Option<String>>, String> {
            self.1.set(self.1.get() + 1);
            Ok(repositories.iter().map(|r| (r.clone(), self.0.get(r).cloned())).collect())
        }
    }

    fn required() -> Vec<Required> {
        vec![
            Required { set: ImageSet::Lambda, repositories: vec!["tradai/lambda-a".into(), "tradai/lambda-b".into()] },
            Required { set: ImageSet::Service, repositories: vec!["tradai/backend".into()] },
        ]
    }

    #[test]
    fn all_present_returns_every_digest_from_one_lookup() {
        let held: BTreeMap<String, String> =
            [("tradai/lambda-a", 1), ("tradai/lambda-b", 2), ("tradai/backend", 3)].into_iter().map(|(r, n)| (r.to_owned(), digest(n))).collect();
        let reg = Fixed(held.clone(), Default::default());
        assert_eq!(check_images(&reg, "ecr", Env::Dev, &required()).unwrap(), held);
        assert_eq!(reg.1.get(), 1);
    }

    #[test]
    fn missing_images_are_all_named_with_the_command_that_publishes_them() {
        let reg = Fixed([("tradai/lambda-a".to_owned(), digest(1))].into_iter().collect(), Default::default());
        let e = check_images(&reg, "ecr", Env::Dev, &required()).unwrap_err().to_string();
        assert_eq!(
            e,
            "2 image(s) missing from ecr for dev: tradai/lambda-b, tradai/backend; publish them with `cargo xtask lambda-bootstrap --registry ecr` and `cargo xtask service-push-all --registry ecr`, then rerun"
        );
    }

    #[test]
    fn malformed_digests_are_refused() {
        let reg = Fixed([("tradai/lambda-a".to_owned(), "latest".to_owned())].into_iter().collect(), Default::default());
        let e = check_images(&reg, "ecr", Env::Dev, &required()[..1]).unwrap_err();
        assert!(matches!(e, PreflightError::BadDigest { .. }), "{e}");
    }

    #[test]
    fn manifest_has_the_format_the_compute_program_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let path = camino::Utf8PathBuf::from_path_buf(tmp.path().join("m/manifest.json")).unwrap();
        let digests: BTreeMap<String, String> = [("tradai/lambda-a".to_owned(), digest(7))].into_iter().collect();
        write_manifest(&path, &digests).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"images": {"tradai/lambda-a": digest(7)}}));
    }
}
