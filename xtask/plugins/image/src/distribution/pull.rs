//! The read side of the distribution client: a manifest for a platform (an index resolved
//! to its entry) and blobs streamed, every one checked against its digest.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::push::remember_home;
use super::{Failure, Scope, authorize, check_digest, hasher_digest};
use super::{Manifest, OciRegistry};

/// An image platform, `os/architecture[/variant]` (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform { os: os.into(), architecture: arch.into(), variant: None }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform { os: os.into(), architecture: arch.into(), variant: Some(v.into()) })
            }
            _ => bail!("invalid platform `{s}`; use os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// The media types of manifests that list other manifests.
const INDEX_TYPES: [&str; 2] = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// The manifests an index lists, with their platforms.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    platform: Option<IndexPlatform>,
}

#[derive(Deserialize)]
struct IndexPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl IndexPlatform {
    fn shown(&self) -> String {
        Platform { os: self.os.clone(), architecture: self.architecture.clone(), variant: self.variant.clone() }.to_string()
    }
}

/// The entry for `wanted`: an exact match first; without a variant asked, any variant of
/// the os and architecture; `arm64/v8` also matches an `arm64` entry without variant (v8
/// is the only arm64 variant).
fn pick_platform<'a>(entries: &'a [IndexEntry], wanted: &Platform) -> Option<&'a IndexEntry> {
    let same_arch = |e: &&IndexEntry| e.platform.as_ref().is_some_and(|p| p.os == wanted.os && p.architecture == wanted.architecture);
    let variant = |e: &IndexEntry| e.platform.as_ref().and_then(|p| p.variant.clone());
    entries.iter().filter(same_arch).find(|e| variant(e) == wanted.variant).or_else(|| match wanted.variant.as_deref() {
        None => entries.iter().find(same_arch),
        Some("v8") if wanted.architecture == "arm64" => entries.iter().filter(same_arch).find(|e| variant(e).is_none()),
        Some(_) => None,
    })
}

impl OciRegistry {
    /// The image manifest of `repository:reference` (a tag or digest) for `platform`
    /// (`linux/amd64`): an image index or manifest list is resolved to its entry for the
    /// platform, fetched by digest. A single-platform manifest is returned as it is (its
    /// platform is in its config, which the caller reads anyway). Digests are verified.
    pub fn fetch_manifest(&self, repository: &str, reference: &str, platform: &str) -> Result<Manifest> {
        let wanted: Platform = platform.parse()?;
        let missing = || anyhow!("registry {} has no image {repository}:{reference}; check the repository and tag", self.host);
        let top = self.get_manifest(repository, reference)?.ok_or_else(missing)?;
        if !INDEX_TYPES.contains(&top.media_type.as_str()) {
            return Ok(top);
        }
        let index: Index = serde_json::from_slice(&top.bytes)
            .with_context(|| format!("the index of {repository}:{reference} in registry {} is not valid JSON", self.host))?;
        let Some(entry) = pick_platform(&index.manifests, &wanted) else {
            let offered: Vec<String> = index.manifests.iter().filter_map(|e| e.platform.as_ref().map(IndexPlatform::shown)).collect();
            bail!(
                "image {repository}:{reference} has no manifest for {wanted}; it offers {}",
                if offered.is_empty() { "no platforms".into() } else { offered.join(", ") }
            );
        };
        check_digest(&entry.digest).with_context(|| format!("the index of {repository}:{reference} lists an invalid digest"))?;
        let child = self.get_manifest(repository, &entry.digest)?.ok_or_else(|| {
            anyhow!("registry {} lacks manifest {} that the index of {repository}:{reference} lists for {wanted}", self.host, entry.digest)
        })?;
        if let Some(size) = entry.size
            && size != child.bytes.len() as u64
        {
            bail!("manifest {} of {repository} has {} bytes but its index says {size}", entry.digest, child.bytes.len());
        }
        if INDEX_TYPES.contains(&child.media_type.as_str()) {
            bail!("the {wanted} entry of {repository}:{reference} is itself an index; nested indexes are not supported");
        }
        Ok(child)
    }

    /// Streams blob `digest` of `repository` into `out` and returns its size. The sha256
    /// is verified at the end: on a mismatch the error says so, and what was written must
    /// be discarded. A failure before the first byte is retried; after it, it is not
    /// (`out` cannot be rewound).
    pub fn fetch_blob(&self, repository: &str, digest: &str, out: &mut dyn Write) -> Result<u64> {
        check_digest(digest)?;
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url);
        let scope = Scope::pull(repository);
        let mut written: u64 = 0;
        self.retry(&format!("fetch blob {digest} of {repository} from registry {}", self.host), || {
            let mut resp = self.send(&url, &scope, |auth| authorize(self.agent.get(&url), auth).call().map_err(Failure::transport))?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Err(Failure::Fatal(anyhow!("registry {} has no blob {digest} in {repository}", self.host))),
                _ => return Err(self.unexpected(&mut resp, &format!("fetch blob {digest} of {repository}"))),
            }
            let mut reader = resp.body_mut().as_reader();
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if written == 0 => return Err(Failure::transport(anyhow!("download of blob {digest} broke off: {e}"))),
                    Err(e) => {
                        return Err(Failure::Fatal(anyhow!("download of blob {digest} of {repository} broke off after {written} bytes: {e}; discard the partial output and try again")));
                    }
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| Failure::Fatal(anyhow!("failed to write blob {digest}: {e}")))?;
                written += n as u64;
            }
            let actual = hasher_digest(hasher);
            if actual != digest {
                return Err(Failure::Fatal(anyhow!(
                    "registry {} served blob {digest} of {repository} with content whose digest is {actual}: its copy is corrupt; discard what was written",
                    self.host
                )));
            }
            remember_home(&self.host, digest, repository);
            Ok(written)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_bad_ones_say_the_form() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()), ("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            let err = bad.parse::<Platform>().unwrap_err().to_string();
            assert!(err.contains("use os/architecture[/variant]"), "{bad}: {err}");
        }
    }

    fn entry(digest: &str, os: &str, arch: &str, variant: Option<&str>) -> IndexEntry {
        IndexEntry {
            digest: digest.into(),
            size: None,
            platform: Some(IndexPlatform { os: os.into(), architecture: arch.into(), variant: variant.map(str::to_owned) }),
        }
    }

    #[test]
    fn platform_choice_prefers_exact_variants() {
        let entries = [
            entry("amd", "linux", "amd64", None),
            entry("v6", "linux", "arm", Some("v6")),
            entry("v7", "linux", "arm", Some("v7")),
            entry("arm64", "linux", "arm64", None),
            entry("att", "unknown", "unknown", None),
        ];
        let pick = |p: &str| pick_platform(&entries, &p.parse().unwrap()).map(|e| e.digest.as_str());
        assert_eq!(pick("linux/amd64"), Some("amd"));
        assert_eq!(pick("linux/arm/v7"), Some("v7"));
        assert_eq!(pick("linux/arm"), Some("v6"));
        assert_eq!(pick("linux/arm64/v8"), Some("arm64"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("windows/amd64"), None);
    }
}
