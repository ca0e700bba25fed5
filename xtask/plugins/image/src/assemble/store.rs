//! A content-addressed store of OCI blobs under the target directory
//! (`blobs/sha256/<hex>`, as an OCI image layout keeps them), with named references
//! (`refs/<kind>/<key>` holding a manifest digest): the images the assembler writes, and
//! the base images it reads from the local engine or a registry, each kept once by digest.
//!
//! Every write goes to a unique temporary file in the store and is renamed into place
//! once its digest is known and checked, so a crash or two runs at once never leave a
//! blob whose name is not its content.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A content descriptor: what a manifest says about one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// Fields this tool does not interpret (`urls`, `annotations`, `platform`), kept as read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A single-platform image manifest (Docker v2 schema 2 or OCI; the fields are the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image in the store: its manifest (exact bytes and parsed) and its config.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub manifest_digest: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    pub config: serde_json::Value,
}

impl StoredImage {
    /// The manifest's media type (declared in the manifest, else Docker v2 schema 2).
    pub fn media_type(&self) -> &str {
        self.manifest.media_type.as_deref().unwrap_or(DOCKER_MANIFEST)
    }

    /// Whether the image uses OCI media types (else Docker's).
    pub fn is_oci(&self) -> bool {
        self.media_type() == OCI_MANIFEST
    }

    /// The Docker engine's id for this image: the digest of its config.
    pub fn image_id(&self) -> &str {
        &self.manifest.config.digest
    }

    /// The uncompressed digests of the layers, from the config.
    pub fn diff_ids(&self) -> Result<Vec<String>> {
        let ids = self.config.pointer("/rootfs/diff_ids").and_then(|v| v.as_array()).context("the image config has no rootfs.diff_ids")?;
        let ids: Vec<String> = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        if ids.len() != self.manifest.layers.len() {
            bail!("the image config lists {} layers and its manifest {}", ids.len(), self.manifest.layers.len());
        }
        Ok(ids)
    }
}

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: Utf8PathBuf,
}

/// The hex part of `sha256:<hex>`, checked.
pub fn hex_of(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => bail!("`{digest}` is not a sha256 digest"),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", xtask_engine::filecache::hex(&Sha256::digest(bytes)))
}

impl BlobStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Utf8Path) -> Result<Self> {
        fs::create_dir_all(root.join("blobs/sha256")).with_context(|| format!("failed to create the image store at {root}"))?;
        fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobStore { root: root.to_owned() })
    }

    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    pub fn path(&self, digest: &str) -> Result<Utf8PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// A temporary file inside the store, for a blob being written.
    pub fn temp(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new().prefix(".blob-").tempfile_in(self.root.join("tmp")).context("failed to create a temporary file in the image store")
    }

    /// Moves a finished temporary file into place as `digest`.
    pub fn persist(&self, file: tempfile::NamedTempFile, digest: &str) -> Result<()> {
        let dest = self.path(digest)?;
        file.as_file().sync_all().ok();
        file.persist(&dest).map_err(|e| e.error).with_context(|| format!("failed to store blob {digest}"))?;
        Ok(())
    }

    /// Stores bytes; returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let digest = digest_of(bytes);
        if !self.has(&digest) {
            let mut f = self.temp()?;
            f.write_all(bytes)?;
            self.persist(f, &digest)?;
        }
        Ok(digest)
    }

    /// Stores the bytes read from `source`, checking they have `digest`.
    pub fn put_verified(&self, digest: &str, source: &mut dyn Read) -> Result<u64> {
        let mut f = self.temp()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = source.read(&mut buf).with_context(|| format!("failed to read blob {digest}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])?;
            size += n as u64;
        }
        let got = format!("sha256:{}", xtask_engine::filecache::hex(&hasher.finalize()));
        if got != digest {
            bail!("blob {digest} arrived with digest {got}; it was not stored");
        }
        self.persist(f, digest)?;
        Ok(size)
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.path(digest)?;
        fs::read(&p).with_context(|| format!("blob {digest} is not in the image store {}", self.root))
    }

    pub fn open_blob(&self, digest: &str) -> Result<fs::File> {
        let p = self.path(digest)?;
        fs::File::open(&p).with_context(|| format!("blob {digest} is not in the image store {}", self.root))
    }

    /// Stores a manifest and its config (both exact bytes); returns the image.
    pub fn put_image(&self, manifest_bytes: &[u8], config_bytes: &[u8]) -> Result<StoredImage> {
        let manifest: ImageManifest = serde_json::from_slice(manifest_bytes).context("not an image manifest")?;
        if digest_of(config_bytes) != manifest.config.digest {
            bail!("the config does not match the manifest's config digest {}", manifest.config.digest);
        }
        self.put(config_bytes)?;
        let manifest_digest = self.put(manifest_bytes)?;
        let config = serde_json::from_slice(config_bytes).context("the image config is not JSON")?;
        Ok(StoredImage { manifest_digest, manifest_bytes: manifest_bytes.to_vec(), manifest, config })
    }

    /// Reads an image by manifest digest; its config must be in the store too.
    pub fn image(&self, manifest_digest: &str) -> Result<StoredImage> {
        let manifest_bytes = self.read(manifest_digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).with_context(|| format!("blob {manifest_digest} is not an image manifest"))?;
        let config = serde_json::from_slice(&self.read(&manifest.config.digest)?).context("the image config is not JSON")?;
        Ok(StoredImage { manifest_digest: manifest_digest.to_owned(), manifest_bytes, manifest, config })
    }

    /// Whether the image and every blob it names are in the store.
    pub fn is_complete(&self, manifest_digest: &str) -> bool {
        let Ok(image) = self.image(manifest_digest) else { return false };
        image.manifest.layers.iter().all(|l| self.has(&l.digest))
    }

    fn ref_path(&self, kind: &str, key: &str) -> Utf8PathBuf {
        let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
        self.root.join("refs").join(kind).join(safe)
    }

    /// The manifest digest recorded under `kind/key`, if any.
    pub fn get_ref(&self, kind: &str, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.ref_path(kind, key)).ok()?;
        let d = text.trim().to_owned();
        hex_of(&d).is_ok().then_some(d)
    }

    /// Records `digest` under `kind/key` (atomically).
    pub fn set_ref(&self, kind: &str, key: &str, digest: &str) -> Result<()> {
        let path = self.ref_path(kind, key);
        let dir = path.parent().expect("refs have a folder");
        fs::create_dir_all(dir)?;
        let mut f = tempfile::Builder::new().prefix(".ref-").tempfile_in(dir)?;
        f.write_all(digest.as_bytes())?;
        f.persist(&path).map_err(|e| e.error).with_context(|| format!("failed to write {path}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_named_by_content_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(Utf8Path::from_path(dir.path()).unwrap()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, digest_of(b"hello"));
        assert_eq!(store.read(&d).unwrap(), b"hello");
        let wrong = digest_of(b"other");
        let err = store.put_verified(&wrong, &mut &b"hello"[..]).unwrap_err().to_string();
        assert!(err.contains("was not stored"), "{err}");
        assert!(!store.has(&wrong));
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "no temporary file is left behind");
        assert!(hex_of("sha256:xyz").is_err());
    }

    #[test]
    fn refs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(Utf8Path::from_path(dir.path()).unwrap()).unwrap();
        let d = digest_of(b"x");
        assert_eq!(store.get_ref("docker-id", "sha256:abc"), None);
        store.set_ref("docker-id", "sha256:abc", &d).unwrap();
        assert_eq!(store.get_ref("docker-id", "sha256:abc"), Some(d));
    }
}
