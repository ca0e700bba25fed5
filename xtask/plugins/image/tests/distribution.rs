//! The distribution client against a real registry (Debian's `docker-registry` on
//! loopback): pushes of small synthetic images (a config JSON and gzip tar layers under a
//! Docker v2 schema 2 manifest) that mount shared layers and skip present ones, manifests
//! and blobs read back and verified, an index resolved to a platform, a blob source that
//! changed refused, and Basic auth.

mod support;

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Mutex;

use anyhow::Result;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::Digest as _;
use support::registry::TestRegistry;
use xtask_image::distribution::{BlobRef, BlobSource, Credentials, PushReport, sha256_digest};
use xtask_image::registry::{Manifest, OciRegistry};

const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Blobs in memory, recording which were opened (an upload reads its blob; a mount or a
/// blob already present does not).
#[derive(Default)]
struct Blobs {
    bytes: HashMap<String, Vec<u8>>,
    opened: Mutex<Vec<String>>,
}

impl Blobs {
    fn add(&mut self, bytes: Vec<u8>) -> BlobRef {
        let r = BlobRef { digest: sha256_digest(&bytes), size: bytes.len() as u64 };
        self.bytes.insert(r.digest.clone(), bytes);
        r
    }

    fn opened(&self) -> Vec<String> {
        std::mem::take(&mut *self.opened.lock().unwrap())
    }
}

impl BlobSource for Blobs {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        self.opened.lock().unwrap().push(digest.to_owned());
        let bytes = self.bytes.get(digest).ok_or_else(|| anyhow::anyhow!("no blob {digest}"))?;
        Ok(Box::new(Cursor::new(bytes.clone())))
    }
}

/// A gzip tar layer holding one file; returns (compressed bytes, diff id).
fn layer(path: &str, content: &[u8]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, path, content).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&tar));
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// A synthetic image: config and layers added to `blobs`, and its schema 2 manifest.
struct Image {
    manifest: Manifest,
    /// Config first, then the layers.
    blobs: Vec<BlobRef>,
}

fn image(blobs: &mut Blobs, arch: &str, layers: &[(Vec<u8>, String)]) -> Image {
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()},
    });
    let config = blobs.add(serde_json::to_vec(&config).unwrap());
    let layer_refs: Vec<BlobRef> = layers.iter().map(|(bytes, _)| blobs.add(bytes.clone())).collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.size, "digest": config.digest},
        "layers": layer_refs.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": l.size, "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let mut all = vec![config];
    all.extend(layer_refs);
    Image { manifest: Manifest { digest: sha256_digest(&bytes), media_type: MANIFEST_V2.into(), bytes }, blobs: all }
}

fn push(reg: &OciRegistry, repo: &str, tag: &str, img: &Image, mount_from: &[&str], blobs: &Blobs) -> PushReport {
    let mount_from: Vec<String> = mount_from.iter().map(|s| s.to_string()).collect();
    reg.push_image(repo, &[tag.to_owned()], &img.manifest, &img.blobs, &mount_from, blobs).unwrap()
}

fn counts(r: &PushReport) -> (usize, usize, usize) {
    (r.present, r.mounted, r.uploaded)
}

#[test]
fn shared_layers_are_mounted_and_present_blobs_skipped() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(&registry.host).unwrap();
    let mut blobs = Blobs::default();
    let (base, app) = (layer("base.txt", b"the base layer"), layer("app.txt", b"the app layer"));
    let a = image(&mut blobs, "amd64", &[base.clone(), app]);
    let b = image(&mut blobs, "arm64", &[base]);
    assert_eq!(a.blobs[1], b.blobs[1], "the two images share their first layer");

    let first = push(&reg, "a", "v1", &a, &[], &blobs);
    assert_eq!(counts(&first), (0, 0, 3));
    assert_eq!(first.uploaded_bytes, a.blobs.iter().map(|b| b.size).sum::<u64>());
    assert_eq!(first.digest, a.manifest.digest);
    blobs.opened();

    let second = push(&reg, "b", "v1", &b, &["a"], &blobs);
    assert_eq!(counts(&second), (0, 1, 1), "{second:?}");
    assert_eq!(second.uploaded_bytes, b.blobs[0].size, "only B's config moved");
    assert_eq!(blobs.opened(), [b.blobs[0].digest.clone()], "the mounted layer was never read");
    let (status, served, _) = registry.get(&format!("b/blobs/{}", b.blobs[1].digest), "*/*");
    assert_eq!(status, 200);
    assert_eq!(served, blobs.bytes[&b.blobs[1].digest], "b serves the mounted layer");

    let again = push(&reg, "a", "v2", &a, &["b"], &blobs);
    assert_eq!(counts(&again), (3, 0, 0));
    assert_eq!(again.uploaded_bytes, 0);
    assert!(blobs.opened().is_empty());

    // Every tag names the manifest pushed, byte for byte.
    for (repo, tag, img) in [("a", "v1", &a), ("a", "v2", &a), ("b", "v1", &b)] {
        let (status, bytes, digest) = registry.get(&format!("{repo}/manifests/{tag}"), MANIFEST_V2);
        assert_eq!((status, digest.as_deref()), (200, Some(img.manifest.digest.as_str())), "{repo}:{tag}");
        assert_eq!(bytes, img.manifest.bytes);
    }
}

#[test]
fn blobs_are_mounted_from_where_this_process_put_them_or_found_them() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(&registry.host).unwrap();
    let mut blobs = Blobs::default();
    let shared = layer("shared.txt", b"shared by all");
    let one = image(&mut blobs, "amd64", std::slice::from_ref(&shared));
    let two = image(&mut blobs, "arm64", &[shared.clone(), layer("two.txt", b"only two")]);
    push(&reg, "x/one", "v1", &one, &[], &blobs);
    // No hint: the client remembers that x/one got the layer.
    let r = push(&reg, "x/two", "v1", &two, &[], &blobs);
    assert_eq!(counts(&r), (0, 1, 2), "{r:?}");

    // A layer this process never saw, put by someone else in `elsewhere`: of several
    // hints, the one holding it is found and mounted from.
    let mut other = Blobs::default();
    let foreign = layer("foreign.txt", b"uploaded by another tool");
    registry.upload_raw("elsewhere", &foreign.0, &sha256_digest(&foreign.0));
    let three = image(&mut other, "amd64", &[foreign]);
    let r = push(&reg, "x/three", "v1", &three, &["nothing-here", "elsewhere"], &other);
    assert_eq!(counts(&r), (0, 1, 1), "{r:?}");
    assert_eq!(other.opened(), [three.blobs[0].digest.clone()]);
}

#[test]
fn manifests_and_blobs_read_back_verified() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(&registry.host).unwrap();
    let mut blobs = Blobs::default();
    let img = image(&mut blobs, "amd64", &[layer("f", b"some content")]);
    push(&reg, "r", "v1", &img, &[], &blobs);

    for reference in ["v1", img.manifest.digest.as_str()] {
        let m = reg.fetch_manifest("r", reference, "linux/amd64").unwrap();
        assert_eq!(m, img.manifest, "fetched by {reference}");
    }
    for blob in &img.blobs {
        let mut out = Vec::new();
        let n = reg.fetch_blob("r", &blob.digest, &mut out).unwrap();
        assert_eq!((n, &out), (blob.size, &blobs.bytes[&blob.digest]));
    }

    let err = reg.fetch_blob("r", "sha256:1234", &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("invalid digest `sha256:1234`"), "{err}");
    let absent = sha256_digest(b"never pushed");
    let err = reg.fetch_blob("r", &absent, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains(&format!("has no blob {absent} in r")), "{err}");
    let err = reg.fetch_manifest("r", "nope", "linux/amd64").unwrap_err().to_string();
    assert!(err.contains("has no image r:nope"), "{err}");

    // Corrupt the registry's copy of the layer: same size, other bytes.
    let layer = &img.blobs[1];
    let file = registry.blob_file(&layer.digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = reg.fetch_blob("r", &layer.digest, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("its copy is corrupt") && err.contains(&layer.digest), "{err}");

    // Likewise the stored manifest, fetched by its digest.
    let file = registry.blob_file(&img.manifest.digest);
    let text = std::fs::read_to_string(&file).unwrap().replacen("\"schemaVersion\": 2", "\"schemaVersion\":  2", 1);
    std::fs::write(&file, text).unwrap();
    let err = reg.fetch_manifest("r", &img.manifest.digest, "linux/amd64").unwrap_err().to_string();
    assert!(err.contains("the registry's copy is corrupt"), "{err}");
}

#[test]
fn an_index_resolves_to_the_platform_asked() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(&registry.host).unwrap();
    let mut blobs = Blobs::default();
    let amd = image(&mut blobs, "amd64", &[layer("arch", b"amd64")]);
    let arm = image(&mut blobs, "arm64", &[layer("arch", b"arm64")]);
    for img in [&amd, &arm] {
        // No tag: the entries of an index are put by digest.
        let r = reg.push_image("multi", &[], &img.manifest, &img.blobs, &[], &blobs).unwrap();
        assert_eq!(r.digest, img.manifest.digest);
    }
    let entry = |img: &Image, arch: &str| {
        serde_json::json!({"mediaType": MANIFEST_V2, "size": img.manifest.bytes.len(), "digest": img.manifest.digest,
            "platform": {"architecture": arch, "os": "linux"}})
    };
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")]});
    let bytes = serde_json::to_vec(&index).unwrap();
    let index = Manifest { digest: sha256_digest(&bytes), media_type: MANIFEST_LIST.into(), bytes };
    let r = reg.push_image("multi", &["latest".into()], &index, &[], &[], &blobs).unwrap();
    assert_eq!((r.digest.as_str(), counts(&r)), (index.digest.as_str(), (0, 0, 0)));

    assert_eq!(reg.fetch_manifest("multi", "latest", "linux/arm64").unwrap(), arm.manifest);
    assert_eq!(reg.fetch_manifest("multi", "latest", "linux/amd64").unwrap(), amd.manifest);
    assert_eq!(reg.fetch_manifest("multi", &index.digest, "linux/arm64/v8").unwrap(), arm.manifest);
    let err = reg.fetch_manifest("multi", "latest", "linux/s390x").unwrap_err().to_string();
    assert!(err.contains("no manifest for linux/s390x; it offers linux/amd64, linux/arm64"), "{err}");
}

#[test]
fn a_blob_source_that_changed_is_refused_and_nothing_is_stored() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(&registry.host).unwrap();
    let mut blobs = Blobs::default();
    let img = image(&mut blobs, "amd64", &[layer("f", b"as assembled")]);
    let layer = img.blobs[1].clone();
    // The file behind the layer changed after assembly: same size, other bytes.
    let mut changed = blobs.bytes[&layer.digest].clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xff;
    blobs.bytes.insert(layer.digest.clone(), changed);

    let err = reg.push_image("c", &["v1".into()], &img.manifest, &img.blobs, &[], &blobs).unwrap_err().to_string();
    assert!(err.contains(&format!("gave bytes for {}", layer.digest)) && err.contains("assemble it again"), "{err}");
    assert_eq!(registry.get(&format!("c/blobs/{}", layer.digest), "*/*").0, 404, "the upload never completed");
    assert_eq!(registry.get("c/manifests/v1", MANIFEST_V2).0, 404, "no manifest without its blobs");

    // A manifest whose digest is not that of its bytes is refused before anything moves.
    let mut wrong = img.manifest.clone();
    wrong.digest = sha256_digest(b"something else");
    let err = reg.push_image("c", &["v1".into()], &wrong, &img.blobs, &[], &blobs).unwrap_err().to_string();
    assert!(err.contains("but its bytes hash to"), "{err}");
}

#[test]
fn basic_auth_registries_need_and_accept_the_right_password() {
    let registry = TestRegistry::with_basic_auth("ci", "right-password");
    let mut blobs = Blobs::default();
    let img = image(&mut blobs, "amd64", &[layer("f", b"private")]);
    let push_to = |reg: &OciRegistry| reg.push_image("private", &["v1".into()], &img.manifest, &img.blobs, &[], &blobs);

    let no_login = std::path::PathBuf::from("/nonexistent/docker/config.json");
    let anonymous = OciRegistry::new(&registry.host).unwrap().with_docker_config(no_login);
    let err = push_to(&anonymous).unwrap_err().to_string();
    assert!(err.contains("asks for a user name and password and none is configured"), "{err}");

    let wrong = OciRegistry::new(&registry.host).unwrap().with_credentials(Credentials::new("ci", "wrong-password"));
    let err = push_to(&wrong).unwrap_err().to_string();
    assert!(err.contains("refused") && err.contains("user `ci`"), "{err}");
    assert!(!err.contains("wrong-password"), "the password leaked: {err}");

    let right = OciRegistry::new(&registry.host).unwrap().with_credentials(Credentials::new("ci", "right-password"));
    let r = push_to(&right).unwrap();
    assert_eq!(counts(&r), (0, 0, 2));
    assert_eq!(right.fetch_manifest("private", "v1", "linux/amd64").unwrap(), img.manifest);
    let mut out = Vec::new();
    right.fetch_blob("private", &img.blobs[1].digest, &mut out).unwrap();
    assert_eq!(out, blobs.bytes[&img.blobs[1].digest]);
    assert_eq!(registry.get("private/manifests/v1", MANIFEST_V2).0, 401, "the registry does ask for a login");
}

#[test]
fn the_login_docker_login_left_is_used_for_a_real_registry() {
    use base64::Engine as _;
    let registry = TestRegistry::with_basic_auth("ci", "pass-from-docker-config");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    // What `docker login 127.0.0.1:<port>` writes when no credential store is configured.
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:pass-from-docker-config");
    std::fs::write(&config, format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, registry.host)).unwrap();

    let mut blobs = Blobs::default();
    let img = image(&mut blobs, "amd64", &[layer("f", b"logged in")]);
    let reg = OciRegistry::new(&registry.host).unwrap().with_docker_config(config);
    let r = reg.push_image("private", &["v1".into()], &img.manifest, &img.blobs, &[], &blobs).unwrap();
    assert_eq!(counts(&r), (0, 0, 2));
    assert_eq!(reg.fetch_manifest("private", "v1", "linux/amd64").unwrap(), img.manifest);
    assert_eq!(reg.credentials().map(Credentials::username), Some("ci"));
}
