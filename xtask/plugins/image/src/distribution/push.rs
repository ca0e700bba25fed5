//! The push side of the distribution client: blobs checked, mounted or uploaded on a few
//! threads, then the manifest put under each tag (steps 1 to 4 of the module doc of `distribution`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use anyhow::{Context as _, Result, anyhow, bail};
use sha2::{Digest as _, Sha256};
use ureq::SendBody;

use super::{Failure, Scope, authorize, check_digest, hasher_digest, sha256_digest};
use super::{Manifest, OciRegistry};

/// A blob an image needs: its config or one of its layers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// `sha256:<64 hex>`
    pub digest: String,
    pub size: u64,
}

/// Where a push reads blobs from. Opened once per upload attempt: a retried upload opens
/// the blob again and sends it from its first byte.
pub trait BlobSource: Sync {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>>;
}

impl<F> BlobSource for F
where
    F: Fn(&str) -> Result<Box<dyn Read + Send>> + Sync,
{
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        self(digest)
    }
}

/// What a push did, blob by blob (each distinct blob counted once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The manifest digest the registry confirmed.
    pub digest: String,
    /// Blobs the repository already held.
    pub present: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Blobs uploaded.
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

/// Blobs checked and uploaded at once. Registries and CDNs take a few parallel uploads
/// well; more mostly splits the same bandwidth.
const PARALLEL_BLOBS: usize = 4;
/// Repositories probed with HEAD to find one to mount a blob from, when the caller names
/// several and none is known to hold it.
const MAX_MOUNT_PROBES: usize = 8;

/// Which repositories hold which blob, per registry host, as learned in this process: the
/// mount sources of later pushes. Process-wide rather than per client, so that every
/// client of one registry (a publish pool may make several) shares what was learned.
static BLOB_HOMES: LazyLock<Mutex<BlobHomes>> = LazyLock::new(Mutex::default);

/// `(registry host, blob digest)` -> repositories holding the blob.
type BlobHomes = HashMap<(String, String), BTreeSet<String>>;

pub(super) fn remember_home(host: &str, digest: &str, repository: &str) {
    let mut homes = BLOB_HOMES.lock().unwrap_or_else(|e| e.into_inner());
    homes.entry((host.to_owned(), digest.to_owned())).or_default().insert(repository.to_owned());
}

fn known_homes(host: &str, digest: &str) -> Vec<String> {
    let homes = BLOB_HOMES.lock().unwrap_or_else(|e| e.into_inner());
    homes.get(&(host.to_owned(), digest.to_owned())).map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

/// Blobs being pushed by some thread of this process, per registry host: a second push
/// of the same blob (two images on one base, published at once) waits for the first and
/// then mounts it, instead of uploading the same bytes twice.
static IN_FLIGHT: LazyLock<(Mutex<HashSet<BlobKey>>, std::sync::Condvar)> = LazyLock::new(Default::default);

/// `(registry host, blob digest)`.
type BlobKey = (String, String);

/// This thread's claim on pushing one blob; released (and waiters woken) on drop.
struct Claim {
    key: (String, String),
    /// Whether another thread was pushing the blob first.
    waited: bool,
}

impl Claim {
    fn take(host: &str, digest: &str) -> Claim {
        let key = (host.to_owned(), digest.to_owned());
        let (lock, cvar) = &*IN_FLIGHT;
        let mut busy = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut waited = false;
        while busy.contains(&key) {
            waited = true;
            busy = cvar.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.insert(key.clone());
        Claim { key, waited }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let (lock, cvar) = &*IN_FLIGHT;
        lock.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
        cvar.notify_all();
    }
}

/// Percent-encodes a query value as Go's `url.QueryEscape` does (what registries parse).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `key=value` added to its query, keeping the parameters already there.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_query_value(value))
}

/// Resolves a `Location` header against the URL of the request it answered: absolute
/// (`https://...`), scheme-relative (`//host/...`), absolute-path (`/v2/...`) or relative.
fn resolve_location(request_url: &str, location: &str) -> String {
    let (scheme, rest) = request_url.split_once("://").unwrap_or(("https", request_url));
    let origin_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..origin_end]);
    if location.contains("://") {
        location.to_owned()
    } else if let Some(r) = location.strip_prefix("//") {
        format!("{scheme}://{r}")
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = request_url.split(['?', '#']).next().unwrap_or(request_url);
        let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(path.len())];
        format!("{dir}{location}")
    }
}

/// Reads a blob for upload while checking it: more or fewer bytes than its size, or a
/// different sha256, fails the read (so the registry never completes the upload) and
/// leaves the reason in `problem`.
struct Verifying<'a> {
    inner: Box<dyn Read + Send>,
    blob: &'a BlobRef,
    hasher: Sha256,
    count: u64,
    problem: Option<String>,
}

impl<'a> Verifying<'a> {
    fn new(inner: Box<dyn Read + Send>, blob: &'a BlobRef) -> Self {
        Verifying { inner, blob, hasher: Sha256::new(), count: 0, problem: None }
    }

    fn fail(&mut self, problem: String) -> std::io::Result<usize> {
        self.problem = Some(problem.clone());
        Err(std::io::Error::other(problem))
    }
}

impl Read for Verifying<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let digest = &self.blob.digest;
        let size = self.blob.size;
        if n == 0 {
            if self.count < size {
                let count = self.count;
                return self
                    .fail(format!("the blob source ended blob {digest} after {count} of its {size} bytes; assemble the image again"));
            }
            return Ok(0);
        }
        self.count += n as u64;
        if self.count > size {
            return self.fail(format!("the blob source gave more than the {size} bytes of blob {digest}; assemble the image again"));
        }
        self.hasher.update(&buf[..n]);
        if self.count == size {
            let actual = hasher_digest(self.hasher.clone());
            if actual != *digest {
                return self.fail(format!(
                    "the blob source gave bytes for {digest} whose digest is {actual}: the file changed after the image was assembled; assemble it again"
                ));
            }
        }
        Ok(n)
    }
}

/// How a blob got into the repository.
enum Outcome {
    Present,
    Mounted,
    Uploaded(u64),
}

/// Where an upload session starts, or that a mount made one unnecessary.
enum Started {
    Mounted,
    Session(String),
}

/// Runs `work` over `items` on at most `workers` scoped threads; the first failure stops
/// the others from taking new items and is returned.
fn in_parallel<T: Sync, R: Send>(items: &[T], workers: usize, work: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let done: Vec<(usize, Result<R>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = work(item);
                        if r.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        out.push((i, r));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| vec![(usize::MAX, Err(anyhow!("a push thread panicked")))])).collect()
    });
    let mut done = done;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

impl OciRegistry {
    /// Pushes an image: every blob of `blobs` (config and layers) that `repository` lacks,
    /// mounted from another repository where possible, then `manifest` under each of
    /// `tags` (the first tag is the one that matters; with no tag, the manifest is put by
    /// its digest, as the entries of an index must be before the index).
    ///
    /// `mount_from` names repositories of this registry that may hold some of the blobs
    /// (the base image's, say); repositories this process pushed the same blobs to are
    /// tried first. `manifest.bytes` are sent exactly as given, never re-serialised.
    pub fn push_image(
        &self,
        repository: &str,
        tags: &[String],
        manifest: &Manifest,
        blobs: &[BlobRef],
        mount_from: &[String],
        source: &dyn BlobSource,
    ) -> Result<PushReport> {
        check_digest(&manifest.digest).context("invalid manifest digest")?;
        let actual = sha256_digest(&manifest.bytes);
        if actual != manifest.digest {
            bail!(
                "the manifest for {repository} is said to be {} but its bytes hash to {actual}; compute the digest from the bytes pushed",
                manifest.digest
            );
        }
        let mut seen = HashSet::new();
        let unique: Vec<&BlobRef> = blobs.iter().filter(|b| seen.insert(b.digest.as_str())).collect();
        for b in &unique {
            check_digest(&b.digest).with_context(|| format!("invalid blob digest in the image for {repository}"))?;
        }
        // Mount sources per blob: repositories known to hold it first, then the hints.
        let plans: Vec<(&BlobRef, Vec<String>, Vec<String>)> = unique
            .iter()
            .map(|b| {
                let known: Vec<String> = known_homes(&self.host, &b.digest).into_iter().filter(|r| r != repository).collect();
                let hints: Vec<String> = mount_from.iter().filter(|r| *r != repository && !known.contains(r)).cloned().collect();
                (*b, known, hints)
            })
            .collect();
        let readable: BTreeSet<&str> = plans.iter().flat_map(|(_, k, h)| k.iter().chain(h)).map(String::as_str).collect();
        let scope = Scope::push(repository, readable);

        let outcomes = in_parallel(&plans, PARALLEL_BLOBS, |(blob, known, hints)| {
            let what = format!("push blob {} to {repository} in registry {}", blob.digest, self.host);
            let claim = Claim::take(&self.host, &blob.digest);
            // Another thread just pushed it: mount it from there.
            let known = if claim.waited {
                known_homes(&self.host, &blob.digest).into_iter().filter(|r| r != repository).collect()
            } else {
                known.clone()
            };
            let outcome = self.retry(&what, || self.push_blob(repository, blob, &known, hints, source, &scope))?;
            remember_home(&self.host, &blob.digest, repository);
            Ok(outcome)
        })?;
        let mut report = PushReport::default();
        for o in outcomes {
            match o {
                Outcome::Present => report.present += 1,
                Outcome::Mounted => report.mounted += 1,
                Outcome::Uploaded(bytes) => {
                    report.uploaded += 1;
                    report.uploaded_bytes += bytes;
                }
            }
        }

        let references: Vec<&str> =
            if tags.is_empty() { vec![manifest.digest.as_str()] } else { tags.iter().map(String::as_str).collect() };
        for reference in references {
            report.digest = self.put_manifest(repository, reference, manifest)?;
        }
        tracing::info!(
            repository,
            digest = %report.digest,
            present = report.present,
            mounted = report.mounted,
            uploaded = report.uploaded,
            uploaded_bytes = report.uploaded_bytes,
            "pushed image"
        );
        Ok(report)
    }

    /// One attempt at getting `blob` into `repository`: check, mount, or upload.
    fn push_blob(
        &self,
        repository: &str,
        blob: &BlobRef,
        known: &[String],
        hints: &[String],
        source: &dyn BlobSource,
        scope: &Scope,
    ) -> Result<Outcome, Failure> {
        if self.blob_exists(repository, &blob.digest, scope)? {
            return Ok(Outcome::Present);
        }
        let from = match (known.first(), hints) {
            (Some(k), _) => Some(k.clone()),
            (None, []) => None,
            (None, [only]) => Some(only.clone()),
            (None, many) => {
                let mut found = None;
                for candidate in many.iter().take(MAX_MOUNT_PROBES) {
                    if self.blob_exists(candidate, &blob.digest, scope)? {
                        found = Some(candidate.clone());
                        break;
                    }
                }
                found
            }
        };
        let location = match self.start_upload(repository, &blob.digest, from.as_deref(), scope)? {
            Started::Mounted => return Ok(Outcome::Mounted),
            Started::Session(location) => location,
        };
        self.upload(&location, blob, source, scope)?;
        Ok(Outcome::Uploaded(blob.size))
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`. A blob found is remembered as held by `repository`.
    fn blob_exists(&self, repository: &str, digest: &str, scope: &Scope) -> Result<bool, Failure> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url);
        let mut resp = self.send(&url, scope, |auth| authorize(self.agent.head(&url), auth).call().map_err(Failure::transport))?;
        match resp.status().as_u16() {
            200 => {
                remember_home(&self.host, digest, repository);
                Ok(true)
            }
            404 => Ok(false),
            _ => Err(self.unexpected(&mut resp, &format!("check for blob {digest} in {repository}"))),
        }
    }

    /// Starts an upload session, or mounts the blob from `mount_from` when given.
    fn start_upload(&self, repository: &str, digest: &str, mount_from: Option<&str>, scope: &Scope) -> Result<Started, Failure> {
        let mut url = format!("{}/v2/{repository}/blobs/uploads/", self.base_url);
        if let Some(from) = mount_from {
            url = with_query(&with_query(&url, "mount", digest), "from", from);
        }
        let mut resp = self.send(&url, scope, |auth| authorize(self.agent.post(&url), auth).send_empty().map_err(Failure::transport))?;
        match resp.status().as_u16() {
            201 if mount_from.is_some() => {
                tracing::debug!(repository, digest, from = mount_from, "mounted blob");
                Ok(Started::Mounted)
            }
            202 => match resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                Some(location) => Ok(Started::Session(resolve_location(&url, location))),
                None => Err(Failure::Fatal(anyhow!(
                    "registry {} started an upload to {repository} without saying where (no Location header)",
                    self.host
                ))),
            },
            _ => Err(self.unexpected(&mut resp, &format!("start an upload of blob {digest} to {repository}"))),
        }
    }

    /// Sends the whole blob to the upload session at `location` and closes it
    /// (`PUT <location>?digest=<digest>`).
    fn upload(&self, location: &str, blob: &BlobRef, source: &dyn BlobSource, scope: &Scope) -> Result<(), Failure> {
        let url = with_query(location, "digest", &blob.digest);
        let mut resp = self.send(&url, scope, |auth| {
            let opened = source
                .open(&blob.digest)
                .map_err(|e| Failure::Fatal(e.context(format!("failed to read blob {} to upload it", blob.digest))))?;
            let mut reader = Verifying::new(opened, blob);
            let req = authorize(self.agent.put(&url), auth)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", blob.size.to_string());
            let sent = req.send(SendBody::from_reader(&mut reader));
            if let Some(problem) = reader.problem.take() {
                return Err(Failure::Fatal(anyhow!(problem)));
            }
            sent.map_err(|e| Failure::transport(anyhow!("upload of blob {} broke off: {e}", blob.digest)))
        })?;
        match resp.status().as_u16() {
            201 | 204 => {
                let confirmed = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok());
                match confirmed {
                    Some(d) if d != blob.digest => Err(Failure::Fatal(anyhow!(
                        "registry {} stored blob {} under digest {d}; the registry changed the content",
                        self.host,
                        blob.digest
                    ))),
                    _ => Ok(()),
                }
            }
            // The session expired or was lost (a registry restart): start again.
            404 => Err(Failure::transport(anyhow!("registry {} lost the upload session of blob {}", self.host, blob.digest))),
            _ => Err(self.unexpected(&mut resp, &format!("upload blob {}", blob.digest))),
        }
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the digest the registry confirmed.
    pub(crate) fn put_manifest(&self, repository: &str, reference: &str, manifest: &Manifest) -> Result<String> {
        let url = self.manifest_url(repository, reference);
        let scope = Scope::push(repository, []);
        self.retry(&format!("put the manifest of {repository}:{reference} in registry {}", self.host), || {
            let mut resp = self.send(&url, &scope, |auth| {
                authorize(self.agent.put(&url), auth)
                    .header("Content-Type", &manifest.media_type)
                    .send(&manifest.bytes[..])
                    .map_err(Failure::transport)
            })?;
            if !matches!(resp.status().as_u16(), 200..=202) {
                return Err(self.unexpected(&mut resp, &format!("put the manifest of {repository}:{reference}")));
            }
            match resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()) {
                Some(d) if d != manifest.digest => Err(Failure::Fatal(anyhow!(
                    "registry {} stored the manifest of {repository}:{reference} as {d}, not {}; it changed the bytes",
                    self.host,
                    manifest.digest
                ))),
                _ => Ok(manifest.digest.clone()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_absolute_and_relative() {
        let post = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/?mount=x&from=y";
        assert_eq!(resolve_location(post, "https://s3.example/up?sig=1"), "https://s3.example/up?sig=1");
        assert_eq!(resolve_location(post, "/v2/a/b/blobs/uploads/u1?_state=s"), "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=s");
        assert_eq!(resolve_location(post, "//other:1/x"), "http://other:1/x");
        assert_eq!(resolve_location(post, "u2"), "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2");
        assert_eq!(with_query("http://h/u?_state=a%2Bb", "digest", "sha256:ab"), "http://h/u?_state=a%2Bb&digest=sha256%3Aab");
        assert_eq!(with_query("http://h/u", "from", "tradai/lambda-base"), "http://h/u?from=tradai%2Flambda-base");
    }

    #[test]
    fn a_blob_source_giving_other_bytes_fails_the_read() {
        let blob = BlobRef { digest: sha256_digest(b"hello"), size: 5 };
        let mut out = Vec::new();
        let mut ok = Verifying::new(Box::new(&b"hello"[..]), &blob);
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        for (bytes, says) in
            [(&b"jello"[..], "whose digest is"), (&b"hell"[..], "after 4 of its 5 bytes"), (&b"hello!"[..], "more than the 5 bytes")]
        {
            let mut v = Verifying::new(Box::new(bytes), &blob);
            assert!(v.read_to_end(&mut Vec::new()).is_err());
            assert!(v.problem.as_deref().unwrap_or("").contains(says), "{:?}", v.problem);
        }
    }
}
