//! The image prerequisite of a stack: every image it deploys must be in ECR before any
//! `pulumi` call, and the digests found are handed to the program in a manifest so that
//! Lambda functions are pinned to exactly what was checked.
//!
//! Looking images up is the [`ImageRegistry`] trait; the code that talks to registries
//! implements it. This module owns the policy: what is required, what a miss says, and the manifest.
//!
//! The manifest has two writers with one format. The `infra-*` commands write the digests
//! they just checked at `--image-tag` and hand the file to the program in [`MANIFEST_VAR`].
//! Publishing (`lambda-bootstrap`, `lambda-push-all`, `service-push*`) records every image
//! it makes `latest` in the registry in the *published manifest* of that registry,
//! `infra/compute/.image-manifests/<registry>.json` ([`published_manifest_path`]), which
//! the compute program reads when the variable is unset, so `pulumi up` run by hand in
//! `infra/compute` after a publish pins exactly what was pushed.

use std::collections::BTreeMap;
use std::fs::File;

use camino::{Utf8Path, Utf8PathBuf};

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

/// Where publishing records digests, relative to the repository root: beside the compute
/// program that reads them, in a folder that ignores itself for git (`.gitignore` of `*`).
pub const PUBLISHED_DIR: &str = "infra/compute/.image-manifests";

/// The file name of a registry's published manifest: the registry's name (`<account>.dkr.
/// ecr.<region>.amazonaws.com`, or `host:port`) with every character other than ASCII
/// letters, digits, `.`, `_` and `-` replaced by `_`, then `.json`. The compute program
/// (`infra/compute/modules/image_manifest.py`, `registry_file_name`) applies the same rule.
pub fn published_file_name(registry: &str) -> String {
    let safe: String = registry.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    format!("{safe}.json")
}

/// The published manifest of `registry` in the repository at `root`; `None` when the
/// repository has no compute program (`infra/compute/Pulumi.yaml`), which is the only reader.
pub fn published_manifest_path(root: &Utf8Path, registry: &str) -> Option<Utf8PathBuf> {
    root.join("infra/compute/Pulumi.yaml").is_file().then(|| root.join(PUBLISHED_DIR).join(published_file_name(registry)))
}

/// Records that `registry` now holds `digest` as the image the stacks deploy from
/// `repository` (its `latest`), in the registry's published manifest. A read-modify-write
/// under an exclusive lock, replaced atomically: publishing runs images in parallel and
/// two commands (`lambda-push-all`, `service-push-all`) may run at once, and neither may
/// lose the other's entries. An unchanged entry is not rewritten. Returns the file written,
/// or `None` when the repository has no compute program.
pub fn record_published(root: &Utf8Path, registry: &str, repository: &str, digest: &str) -> Result<Option<Utf8PathBuf>, PreflightError> {
    let Some(path) = published_manifest_path(root, registry) else { return Ok(None) };
    let fail = |detail: String| PreflightError::Manifest { path: path.to_string(), detail };
    if !is_digest(digest) {
        return Err(fail(format!("{repository} was published with a malformed digest {digest:?}")));
    }
    let dir = path.parent().map(Utf8Path::to_owned).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# Written by cargo xtask when it publishes images; never committed.\n*\n").map_err(|e| fail(e.to_string()))?;
    }
    let lock = File::options().create(true).truncate(false).write(true).open(dir.join(".lock")).map_err(|e| fail(e.to_string()))?;
    lock.lock().map_err(|e| fail(format!("cannot lock: {e}")))?;
    let mut images = read_published(&path).map_err(fail)?;
    if images.get(repository).map(String::as_str) == Some(digest) {
        return Ok(Some(path));
    }
    images.insert(repository.to_owned(), digest.to_owned());
    let doc = serde_json::json!({ "registry": registry, "images": images });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| fail(e.to_string()))?;
    xtask_engine::atomic::write_atomically(&path, format!("{text}\n").as_bytes()).map_err(|e| fail(format!("{e:#}")))?;
    Ok(Some(path))
}

/// The images of a published manifest; an absent file is empty. A file that does not
/// parse is an error rather than silently replaced: it may hold the only record of what
/// was pushed.
pub fn read_published(path: &Utf8Path) -> Result<BTreeMap<String, String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.to_string()),
    };
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("it is not valid JSON ({e}); delete it and publish again"))?;
    let images = doc.get("images").and_then(serde_json::Value::as_object).ok_or("it has no \"images\" object; delete it and publish again")?;
    Ok(images.iter().filter_map(|(k, v)| v.as_str().map(|d| (k.clone(), d.to_owned()))).collect())
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

    #[test]
    fn published_file_names_keep_hosts_readable_and_replace_the_rest() {
        // The same vectors are in infra/compute/tests/test_image_manifest.py.
        assert_eq!(published_file_name("123456789012.dkr.ecr.eu-central-1.amazonaws.com"), "123456789012.dkr.ecr.eu-central-1.amazonaws.com.json");
        assert_eq!(published_file_name("127.0.0.1:5000"), "127.0.0.1_5000.json");
        assert_eq!(published_file_name("registry/../x"), "registry_.._x.json");
    }

    #[test]
    fn publishing_merges_digests_per_registry_and_ignores_itself_for_git() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        // No compute program: nothing is written.
        assert_eq!(record_published(root, "127.0.0.1:5000", "tradai/lambda-a", &digest(1)).unwrap(), None);
        std::fs::create_dir_all(root.join("infra/compute")).unwrap();
        std::fs::write(root.join("infra/compute/Pulumi.yaml"), "name: tradai-compute\n").unwrap();
        let path = record_published(root, "127.0.0.1:5000", "tradai/lambda-a", &digest(1)).unwrap().unwrap();
        record_published(root, "127.0.0.1:5000", "tradai/backend", &digest(2)).unwrap();
        record_published(root, "127.0.0.1:5000", "tradai/lambda-a", &digest(3)).unwrap();
        record_published(root, "other:1", "tradai/lambda-a", &digest(4)).unwrap();
        assert_eq!(path, root.join("infra/compute/.image-manifests/127.0.0.1_5000.json"));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"registry": "127.0.0.1:5000", "images": {"tradai/backend": digest(2), "tradai/lambda-a": digest(3)}}));
        assert_eq!(read_published(&root.join("infra/compute/.image-manifests/other_1.json")).unwrap()["tradai/lambda-a"], digest(4));
        assert_eq!(std::fs::read_to_string(root.join("infra/compute/.image-manifests/.gitignore")).unwrap().lines().last(), Some("*"));
        // A malformed digest is refused, and a corrupt file is reported, not replaced.
        assert!(record_published(root, "127.0.0.1:5000", "tradai/x", "latest").is_err());
        std::fs::write(&path, "{").unwrap();
        let e = record_published(root, "127.0.0.1:5000", "tradai/x", &digest(5)).unwrap_err().to_string();
        assert!(e.contains("not valid JSON") && e.contains("publish again"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{");
    }

    #[test]
    fn concurrent_publishers_lose_no_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("infra/compute")).unwrap();
        std::fs::write(root.join("infra/compute/Pulumi.yaml"), "name: tradai-compute\n").unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                s.spawn(move || {
                    for i in 0..10u8 {
                        record_published(root, "r:1", &format!("tradai/i{t}-{i}"), &digest(t * 10 + i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(read_published(&root.join("infra/compute/.image-manifests/r_1.json")).unwrap().len(), 40);
    }
}
