//! Moving images between the store and the local Docker engine in Docker's archive
//! format (the format of `docker save` and `docker load`): reading a base image out of
//! the engine once, and loading every image a run assembled with a single `docker load`.
//!
//! The format is a tar holding `manifest.json` (`[{Config, RepoTags, Layers}]`), each
//! image's config, and its layers as tar files, compressed or not. `docker load` skips a
//! layer whose chain the engine already holds without opening its file, so layers of a
//! base the engine has are left out of the archive; if the engine turns out to lack one,
//! the load is repeated with every layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use super::layer::{self, WrittenLayer};
use super::store::{self, BlobStore, Descriptor, ImageManifest, StoredImage};

/// The store reference kind under which images read from the engine are kept, by id.
pub const DOCKER_ID: &str = "docker-id";

/// Reads the engine's image `image_id` into the store (once: later calls answer from the
/// store), as a Docker v2 schema 2 image with gzip layers.
pub fn import_from_engine(store: &BlobStore, image_id: &str) -> Result<StoredImage> {
    if let Some(d) = store.get_ref(DOCKER_ID, image_id)
        && store.is_complete(&d)
    {
        return store.image(&d);
    }
    let reader = xtask_engine::Cmd::new("docker", format!("read the base image {image_id} from the Docker engine"))
        .args(["save", image_id])
        .reader()
        .with_context(|| format!("failed to start `docker save {image_id}`"))?;
    let image = import_archive(store, reader).with_context(|| format!("failed to read the base image {image_id} from the Docker engine"))?;
    if image.image_id() != image_id {
        bail!("`docker save {image_id}` gave image {}; the engine changed during the run, run again", image.image_id());
    }
    store.set_ref(DOCKER_ID, image_id, &image.manifest_digest)?;
    Ok(image)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    layers: Vec<String>,
}

/// Imports the single image of a Docker archive stream.
pub fn import_archive(store: &BlobStore, source: impl Read) -> Result<StoredImage> {
    let mut ar = tar::Archive::new(source);
    let mut layers: BTreeMap<String, WrittenLayer> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut jsons: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in ar.entries().context("not a Docker archive")? {
        let mut entry = entry.context("the Docker archive is cut short")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.ends_with("layer.tar") {
            if entry.header().entry_type().is_symlink() {
                let target = entry.link_name()?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                links.insert(path.clone(), super::clean_abs(&format!("{dir}/{target}")));
                continue;
            }
            let written = layer::import_layer(store, &mut entry)?;
            layers.insert(path, written);
        } else if path.ends_with(".json") && !path.contains('/') {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            jsons.insert(path, bytes);
        }
    }
    let manifest = jsons.get("manifest.json").context("the Docker archive has no manifest.json")?;
    let entries: Vec<ArchiveEntry> = serde_json::from_slice(manifest).context("the Docker archive's manifest.json is not valid")?;
    let [entry] = entries.as_slice() else { bail!("expected one image in the Docker archive, found {}", entries.len()) };
    let config_bytes = jsons.get(&entry.config).with_context(|| format!("the Docker archive lacks {}", entry.config))?;
    let mut descriptors = Vec::new();
    for l in &entry.layers {
        let key = links.get(l).unwrap_or(l);
        let w = layers.get(key).with_context(|| format!("the Docker archive lacks {l}"))?;
        descriptors.push(Descriptor { media_type: store::DOCKER_LAYER_GZIP.into(), digest: w.digest.clone(), size: w.size, other: BTreeMap::new() });
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(store::DOCKER_MANIFEST.into()),
        config: Descriptor {
            media_type: store::DOCKER_CONFIG.into(),
            digest: store::digest_of(config_bytes),
            size: config_bytes.len() as u64,
            other: BTreeMap::new(),
        },
        layers: descriptors,
        annotations: None,
    };
    let image = store.put_image(&serde_json::to_vec(&manifest)?, config_bytes)?;
    // The layers were compressed here, so check the config's diff_ids name what was read.
    let expected = image.diff_ids()?;
    let got: Vec<String> = entry.layers.iter().map(|l| layers[links.get(l).unwrap_or(l)].diff_id.clone()).collect();
    if expected != got {
        bail!("the layers of the Docker archive do not match its config's diff_ids");
    }
    Ok(image)
}

/// One image to load, with the tags it gets in the engine.
pub struct ToLoad<'a> {
    pub image: &'a StoredImage,
    pub tags: Vec<String>,
}

/// Writes the Docker archive of `images`; layers in `omit` are left out (the engine has them).
pub fn write_archive(store: &BlobStore, images: &[ToLoad<'_>], omit: &BTreeSet<String>, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut manifest = Vec::new();
    let mut add_blob = |tar: &mut tar::Builder<_>, digest: &str| -> Result<String> {
        let name = format!("blobs/sha256/{}", store::hex_of(digest)?);
        if written.insert(digest.to_owned()) {
            let file = store.open_blob(digest)?;
            let mut h = tar::Header::new_gnu();
            h.set_size(file.metadata()?.len());
            h.set_mode(0o644);
            h.set_mtime(layer::LAYER_MTIME);
            tar.append_data(&mut h, &name, file)?;
        }
        Ok(name)
    };
    for item in images {
        let config = add_blob(&mut tar, item.image.image_id())?;
        let mut layers = Vec::new();
        for l in &item.image.manifest.layers {
            if omit.contains(&l.digest) {
                layers.push(format!("blobs/sha256/{}", store::hex_of(&l.digest)?));
            } else {
                layers.push(add_blob(&mut tar, &l.digest)?);
            }
        }
        manifest.push(json!({ "Config": config, "RepoTags": item.tags, "Layers": layers }));
    }
    let bytes = serde_json::to_vec(&manifest)?;
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(layer::LAYER_MTIME);
    tar.append_data(&mut h, "manifest.json", bytes.as_slice())?;
    tar.into_inner()?.flush()?;
    Ok(())
}

/// Loads `images` into the engine with one `docker load`. Layers in `present` are
/// believed to be in the engine already and are not sent; if that belief is wrong the
/// load is repeated with them.
pub fn load_into_engine(store: &BlobStore, images: &[ToLoad<'_>], present: &BTreeSet<String>) -> Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    let attempt = |omit: &BTreeSet<String>| -> Result<std::result::Result<(), String>> {
        let file = store.temp()?;
        write_archive(store, images, omit, std::io::BufWriter::new(file.as_file()))?;
        let path = camino::Utf8Path::from_path(file.path()).context("the image store path is not UTF-8")?;
        let out = xtask_engine::Cmd::new("docker", format!("load {} image(s) into the Docker engine", images.len()))
            .args(["load", "--quiet", "--input", path.as_str()])
            .run();
        Ok(out.map(|_| ()).map_err(|e| format!("{e}")))
    };
    match attempt(present)? {
        Ok(()) => Ok(()),
        Err(_) if !present.is_empty() => {
            tracing::info!("the engine lacks a base layer; loading again with every layer");
            attempt(&BTreeSet::new())?.map_err(|e| anyhow::anyhow!(e))
        }
        Err(e) => bail!(e),
    }
}
