//! The image assembler: builds an image from a Dockerfile with no `RUN` by writing its
//! layers and config directly, with no Docker daemon and no container.
//!
//! Each `COPY`/`ADD` of local files becomes one deterministic layer ([`layer`]) placed on
//! top of the base image's manifest; `ENV`, `ARG`, `WORKDIR`, `USER`, `LABEL`, `CMD`,
//! `ENTRYPOINT` and `EXPOSE` change the config as `docker build` does. The result is an
//! OCI/Docker manifest in the [`store`], whose digest is known before anything is pushed
//! or loaded. A Dockerfile using anything else is built by `docker build`: [`support`]
//! says so, and why, from the text alone; a case only the evaluation can see (a source
//! that is a symbolic link, `--chown` by user name) ends in an [`Unsupported`] error
//! that the caller answers the same way.
//!
//! A layer also holds every parent directory of what it writes, with the metadata the
//! base gives it (as the diff `docker build` commits does): a parent missing from a
//! layer would be created 0755 root:root by whoever unpacks it, and on overlay file
//! systems that new directory hides the base's own (a 0700 `/srv` would become 0755). So
//! the assembler knows the base's directories ([`DirIndex`]): read once from its layers,
//! kept by layer chain, and carried forward to every image assembled on it.

pub mod archive;
pub mod dockerfile;
pub mod layer;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use serde_json::{Value, json};

use dockerfile::{Args, Dockerfile, Instruction, Vars, expand_word, expand_words, name_values};
use layer::{Content, Entry, EntryData};
use store::{BlobStore, Descriptor, ImageManifest, StoredImage};

/// The `created` time of assembled images and their history: fixed, so that the same
/// inputs give the same config digest.
pub const CREATED: &str = "1980-01-01T00:00:00Z";

/// Whether the assembler can build a Dockerfile, decided from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Assemble,
    /// `docker build` runs instead, for the reason given.
    Docker(String),
}

/// An instruction or case the assembler leaves to `docker build`, found while evaluating.
#[derive(Debug)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Unsupported {}

fn unsupported(line: usize, why: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Unsupported(format!("line {line}: {why}")))
}

/// Decides from the text alone whether the assembler builds this Dockerfile.
pub fn support(df: &Dockerfile) -> Support {
    let froms = df.instructions.iter().filter(|i| i.keyword == "FROM").count();
    if froms > 1 {
        return Support::Docker(format!("{froms} build stages (FROM); the assembler builds single-stage Dockerfiles"));
    }
    for i in &df.instructions {
        let why = match i.keyword.as_str() {
            "FROM" => {
                if !i.flags.is_empty() {
                    Some(format!("FROM --{}", i.flags[0].0))
                } else {
                    match &i.args {
                        Args::Text(t) if t.split_whitespace().next().is_some_and(|b| b.eq_ignore_ascii_case("scratch")) => {
                            Some("FROM scratch".to_owned())
                        }
                        _ => None,
                    }
                }
            }
            "COPY" | "ADD" => i.flags.iter().find(|(n, _)| n != "chown" && n != "chmod").map(|(n, _)| format!("{} --{n}", i.keyword)),
            "ARG" | "ENV" | "LABEL" | "WORKDIR" | "USER" | "CMD" | "ENTRYPOINT" | "EXPOSE" => None,
            other => Some(other.to_owned()),
        };
        if let Some(why) = why {
            return Support::Docker(format!("line {}: {why} needs a container (the assembler handles files and config only)", i.line));
        }
    }
    Support::Assemble
}

/// One path in the build context, as the assembler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextEntry {
    Dir,
    File { content: Content, executable: bool },
    Symlink(String),
}

/// The build context exactly as it would be streamed to `docker build`: the scanned
/// files plus the files dependencies put into it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub entries: BTreeMap<String, ContextEntry>,
}

impl Context {
    pub fn new(ctx: &xtask_engine::BuildContext, extra: &[xtask_engine::ExtraFile]) -> Context {
        let mut entries = BTreeMap::new();
        for (rel, kind) in &ctx.entries {
            let e = match kind {
                xtask_engine::EntryKind::Dir => ContextEntry::Dir,
                xtask_engine::EntryKind::Symlink { target } => ContextEntry::Symlink(target.clone()),
                xtask_engine::EntryKind::File { executable, digest } => ContextEntry::File {
                    content: Content::Context { path: ctx.root.join(rel), digest: digest.clone() },
                    executable: *executable,
                },
            };
            entries.insert(rel.clone(), e);
        }
        for f in extra {
            let mut acc = String::new();
            for part in f.dest.split('/').collect::<Vec<_>>().split_last().map(|(_, dirs)| dirs).unwrap_or(&[]) {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(part);
                entries.entry(acc.clone()).or_insert(ContextEntry::Dir);
            }
            // The tar stream sends these 0644 (see `BuildContext::write_tar`).
            entries.insert(f.dest.clone(), ContextEntry::File { content: Content::Output { path: f.source.clone() }, executable: false });
        }
        Context { entries }
    }
}

/// The owner and mode of one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirMeta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl DirMeta {
    /// How `docker build` creates a directory the image lacks.
    pub const CREATED: DirMeta = DirMeta { mode: 0o755, uid: 0, gid: 0 };
}

/// The directories of an image's file tree (paths without the leading `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirIndex {
    pub dirs: BTreeMap<String, DirMeta>,
}

impl DirIndex {
    pub fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains_key(path)
    }

    /// Applies one layer's tar stream (whiteouts included).
    pub fn apply_layer(&mut self, reader: impl std::io::Read) -> Result<()> {
        let mut ar = tar::Archive::new(reader);
        for entry in ar.entries().context("a layer is not a tar")? {
            let entry = entry.context("a layer is cut short")?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let path = raw.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_owned();
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if name == ".wh..wh..opq" {
                let prefix = format!("{parent}/");
                self.dirs.retain(|d, _| !d.starts_with(&prefix));
            } else if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = if parent.is_empty() { gone.to_owned() } else { format!("{parent}/{gone}") };
                let prefix = format!("{gone}/");
                self.dirs.retain(|d, _| d != &gone && !d.starts_with(&prefix));
            } else if path.is_empty() {
                continue;
            } else if entry.header().entry_type().is_dir() {
                let h = entry.header();
                self.dirs.insert(path, DirMeta { mode: h.mode()? & 0o7777, uid: h.uid()?, gid: h.gid()? });
            } else {
                let prefix = format!("{path}/");
                self.dirs.retain(|d, _| d != &path && !d.starts_with(&prefix));
            }
        }
        Ok(())
    }

    /// Applies a layer written here.
    fn apply_entries(&mut self, entries: &BTreeMap<String, Entry>) {
        for (p, e) in entries {
            match e.data {
                EntryData::Dir => {
                    self.dirs.insert(p.clone(), DirMeta { mode: e.mode, uid: e.uid, gid: e.gid });
                }
                _ => {
                    let prefix = format!("{p}/");
                    self.dirs.retain(|d, _| d != p && !d.starts_with(&prefix));
                }
            }
        }
    }
}

/// The key of a layer chain: the directories of an image depend on nothing else.
pub fn chain_key(layers: &[Descriptor]) -> String {
    let mut text = String::new();
    for l in layers {
        text.push_str(&l.digest);
        text.push('\n');
    }
    store::digest_of(text.as_bytes())
}

/// What the assembler needs besides the Dockerfile.
pub struct Assembly<'a> {
    pub dockerfile: &'a Dockerfile,
    /// How the Dockerfile is named in messages.
    pub name: &'a str,
    pub build_args: &'a BTreeMap<String, String>,
    pub context: &'a Context,
    pub store: &'a BlobStore,
}

/// The base reference `FROM` names, with the build arguments applied.
pub fn base_reference(df: &Dockerfile, build_args: &BTreeMap<String, String>) -> Result<String> {
    let mut meta = Vars::new();
    for i in &df.instructions {
        match i.keyword.as_str() {
            "ARG" => {
                for (name, default) in arg_decls(i, &meta, df.escape)? {
                    if let Some(v) = build_args.get(&name).cloned().or(default) {
                        meta.insert(name, v);
                    }
                }
            }
            "FROM" => {
                let Args::Text(t) = &i.args else { bail!("line {}: FROM takes an image reference", i.line) };
                let image = t.split_whitespace().next().unwrap_or("");
                let r = expand_word(image, &meta, df.escape)?;
                if r.is_empty() {
                    bail!("line {}: FROM names no image (is a build argument missing?)", i.line);
                }
                return Ok(r);
            }
            _ => {}
        }
    }
    bail!("no FROM instruction")
}

fn arg_decls(i: &Instruction, vars: &Vars, escape: char) -> Result<Vec<(String, Option<String>)>> {
    let Args::Text(t) = &i.args else { bail!("line {}: ARG takes NAME[=default]", i.line) };
    let mut out = Vec::new();
    for w in t.split_whitespace() {
        match w.split_once('=') {
            Some((k, v)) => out.push((k.to_owned(), Some(expand_word(v, vars, escape)?))),
            None => out.push((w.to_owned(), None)),
        }
    }
    if out.is_empty() {
        bail!("line {}: ARG needs a name", i.line);
    }
    Ok(out)
}

/// The stage's variables: declared ARGs, overridden by the environment.
fn stage_vars(args: &Vars, env: &[String]) -> Vars {
    let mut v = args.clone();
    for e in env {
        if let Some((k, val)) = e.split_once('=') {
            v.insert(k.to_owned(), val.to_owned());
        }
    }
    v
}

fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A context-relative source path, cleaned; `None` if it leaves the context.
fn clean_source(src: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in src.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn parse_chown(value: &str, line: usize) -> Result<(u64, u64)> {
    let (u, g) = value.split_once(':').unwrap_or((value, value));
    match (u.parse::<u64>(), g.parse::<u64>()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(unsupported(line, format!("--chown={value} names a user or group; numeric ids are assembled, names need the base's /etc/passwd"))),
    }
}

fn parse_chmod(value: &str, line: usize) -> Result<u32> {
    match u32::from_str_radix(value, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => bail!("line {line}: --chmod={value} is not an octal mode such as 755"),
    }
}

/// Assembles the image on `base` (the image FROM names), whose directories are
/// `base_dirs`; the new image's directories are kept in the store for images built on it.
pub fn assemble(a: &Assembly<'_>, base: &StoredImage, base_dirs: &DirIndex) -> Result<StoredImage> {
    if let Support::Docker(why) = support(a.dockerfile) {
        return Err(anyhow::Error::new(Unsupported(why)));
    }
    let escape = a.dockerfile.escape;
    let mut image = base.config.clone();
    let obj = image.as_object_mut().context("the base image config is not a JSON object")?;
    for stale in ["container", "container_config", "docker_version", "parent", "id", "comment"] {
        obj.remove(stale);
    }
    obj.insert("created".into(), json!(CREATED));
    let mut config = obj.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut env: Vec<String> =
        config.get("Env").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let mut history: Vec<Value> = obj.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut diff_ids = base.diff_ids()?;
    let mut layers = base.manifest.layers.clone();
    let oci = base.is_oci();

    let mut meta = Vars::new();
    let mut args = Vars::new();
    let mut in_stage = false;
    let mut cmd_set = false;
    let mut dirs = base_dirs.clone();
    let shell: Vec<String> = config
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);

    for i in &a.dockerfile.instructions {
        let vars = stage_vars(&args, &env);
        let mut layer_entries: Option<BTreeMap<String, Entry>> = None;
        match i.keyword.as_str() {
            "ARG" if !in_stage => {
                for (name, default) in arg_decls(i, &meta, escape)? {
                    if let Some(v) = a.build_args.get(&name).cloned().or(default) {
                        meta.insert(name, v);
                    }
                }
                continue;
            }
            "ARG" => {
                for (name, default) in arg_decls(i, &vars, escape)? {
                    let value = a.build_args.get(&name).cloned().or(default).or_else(|| meta.get(&name).cloned());
                    if let Some(v) = value {
                        args.insert(name, v);
                    }
                }
            }
            "FROM" => {
                in_stage = true;
                continue;
            }
            "ENV" => {
                let Args::Text(t) = &i.args else { unreachable!("ENV has no JSON form") };
                for (k, v) in name_values(t, &vars, escape, "ENV").with_context(|| format!("{}: line {}", a.name, i.line))? {
                    let item = format!("{k}={v}");
                    match env.iter_mut().find(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str())) {
                        Some(e) => *e = item,
                        None => env.push(item),
                    }
                }
                config.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let Args::Text(t) = &i.args else { unreachable!("LABEL has no JSON form") };
                let mut labels = config.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in name_values(t, &vars, escape, "LABEL").with_context(|| format!("{}: line {}", a.name, i.line))? {
                    labels.insert(k, json!(v));
                }
                config.insert("Labels".into(), Value::Object(labels));
            }
            "USER" => {
                let Args::Text(t) = &i.args else { unreachable!() };
                config.insert("User".into(), json!(expand_word(t.trim(), &vars, escape)?));
            }
            "EXPOSE" => {
                let Args::Text(t) = &i.args else { unreachable!() };
                let mut ports = config.get("ExposedPorts").and_then(Value::as_object).cloned().unwrap_or_default();
                for p in expand_words(t, &vars, escape)? {
                    for port in expose_ports(&p).with_context(|| format!("{}: line {}", a.name, i.line))? {
                        ports.insert(port, json!({}));
                    }
                }
                config.insert("ExposedPorts".into(), Value::Object(ports));
            }
            "WORKDIR" => {
                let Args::Text(t) = &i.args else { unreachable!() };
                let requested = expand_word(t.trim(), &vars, escape)?;
                let current = config.get("WorkingDir").and_then(Value::as_str).unwrap_or("").to_owned();
                let path = if requested.starts_with('/') { clean_abs(&requested) } else { clean_abs(&format!("{current}/{requested}")) };
                config.insert("WorkingDir".into(), json!(format!("/{path}")));
                // `docker build` creates the directory, owned by root, when the base lacks it.
                if !dirs.is_dir(&path) {
                    let e = Entry { data: EntryData::Dir, mode: 0o755, uid: 0, gid: 0 };
                    layer_entries = Some(BTreeMap::from([(path.clone(), e)]));
                }
            }
            "CMD" | "ENTRYPOINT" => {
                let value: Vec<String> = match &i.args {
                    Args::Json(v) => v.clone(),
                    Args::Text(t) => shell.iter().cloned().chain([t.clone()]).collect(),
                };
                if i.keyword == "CMD" {
                    config.insert("Cmd".into(), json!(value));
                    cmd_set = true;
                } else {
                    config.insert("Entrypoint".into(), json!(value));
                    if !cmd_set {
                        // As `docker build` does: a new entry point drops the inherited command.
                        config.insert("Cmd".into(), Value::Null);
                    }
                }
            }
            "COPY" | "ADD" => {
                layer_entries = Some(copy_entries(a, i, &vars, &config, &dirs)?);
            }
            other => return Err(unsupported(i.line, format!("{other} is not assembled"))),
        }
        let mut h = serde_json::Map::new();
        h.insert("created".into(), json!(CREATED));
        h.insert("created_by".into(), json!(format!("{} # xtask assemble", i.original)));
        match layer_entries {
            Some(mut entries) => {
                with_parents(&mut entries, &dirs);
                dirs.apply_entries(&entries);
                let written = layer::write_layer(a.store, &entries)?;
                diff_ids.push(written.diff_id.clone());
                layers.push(Descriptor {
                    media_type: if oci { store::OCI_LAYER_GZIP } else { store::DOCKER_LAYER_GZIP }.to_owned(),
                    digest: written.digest,
                    size: written.size,
                    other: BTreeMap::new(),
                });
            }
            None => {
                h.insert("empty_layer".into(), json!(true));
            }
        }
        history.push(Value::Object(h));
    }

    obj.insert("config".into(), Value::Object(config));
    obj.insert("history".into(), Value::Array(history));
    obj.insert("rootfs".into(), json!({ "type": "layers", "diff_ids": diff_ids }));
    let config_bytes = serde_json::to_vec(&image)?;
    let config_digest = a.store.put(&config_bytes)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(if oci { store::OCI_MANIFEST } else { store::DOCKER_MANIFEST }.to_owned()),
        config: Descriptor {
            media_type: if oci { store::OCI_CONFIG } else { store::DOCKER_CONFIG }.to_owned(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            other: BTreeMap::new(),
        },
        layers,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let image = a.store.put_image(&manifest_bytes, &config_bytes)?;
    save_dirs(a.store, &image.manifest.layers, &dirs)?;
    Ok(image)
}

/// Adds every parent directory of the entries: with the image's metadata where it has
/// the directory, else as `docker build` creates one (0755 root:root).
fn with_parents(entries: &mut BTreeMap<String, Entry>, dirs: &DirIndex) {
    let parents: BTreeSet<String> = entries.keys().flat_map(|p| ancestors_and_self(&parent_of(p))).collect();
    for p in parents {
        if entries.contains_key(&p) {
            continue;
        }
        let meta = dirs.dirs.get(&p).copied().unwrap_or(DirMeta::CREATED);
        entries.insert(p, Entry { data: EntryData::Dir, mode: meta.mode, uid: meta.uid, gid: meta.gid });
    }
}

/// `path` and each of its ancestors, shortest first (`a`, `a/b`, `a/b/c`).
fn ancestors_and_self(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

/// `8000`, `53/udp`, `8000-8002/tcp` as the config's `port/proto` keys.
fn expose_ports(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("EXPOSE {spec}: the protocol must be tcp, udp or sctp");
    }
    let bad = || anyhow::anyhow!("EXPOSE {spec}: not a port or a port range such as 8000-8002");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Whether a file starts like an archive `ADD` would unpack.
fn looks_like_archive(path: &Utf8PathBuf) -> Result<bool> {
    use std::io::Read as _;
    let mut head = [0u8; 262];
    let mut f = std::fs::File::open(path).with_context(|| format!("failed to open {path}"))?;
    let n = f.read(&mut head)?;
    let h = &head[..n];
    Ok(h.starts_with(&[0x1f, 0x8b]) || h.starts_with(b"BZh") || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) || (n >= 262 && &h[257..262] == b"ustar"))
}

/// The entries one COPY or ADD writes, placed as `docker build` places them.
fn copy_entries(
    a: &Assembly<'_>,
    i: &Instruction,
    vars: &Vars,
    config: &serde_json::Map<String, Value>,
    dirs: &DirIndex,
) -> Result<BTreeMap<String, Entry>> {
    let escape = a.dockerfile.escape;
    // Text that opens with `["` is JSON that did not parse (a glob such as `[a-z]*.py` has
    // no quote): Docker reads it as the shell form, whose first source is then `["file",`.
    if let Args::Text(t) = &i.args
        && t.strip_prefix('[').is_some_and(|rest| rest.trim_start().starts_with('"'))
    {
        bail!(
            "{}: line {}: `{t}` is not valid JSON; write the JSON form as [\"source\", ..., \"destination\"] (double quotes, closing ])",
            a.name,
            i.line
        );
    }
    let words: Vec<String> = match &i.args {
        Args::Json(v) => v.iter().map(|w| expand_word(w, vars, escape)).collect::<Result<_>>()?,
        Args::Text(t) => t.split_whitespace().map(|w| expand_word(w, vars, escape)).collect::<Result<_>>()?,
    };
    if words.len() < 2 {
        bail!("{}: line {}: {} needs at least one source and a destination", a.name, i.line, i.keyword);
    }
    let (dest_raw, sources) = words.split_last().expect("two words at least");
    let mut owner = (0u64, 0u64);
    let mut chown = false;
    let mut chmod = None;
    for (name, value) in &i.flags {
        match name.as_str() {
            "chown" => {
                owner = parse_chown(&expand_word(value, vars, escape)?, i.line)?;
                chown = true;
            }
            "chmod" => chmod = Some(parse_chmod(value, i.line)?),
            _ => {}
        }
    }
    let workdir = config.get("WorkingDir").and_then(Value::as_str).unwrap_or("");
    let dest_is_dir_form = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
    let dest = if dest_raw.starts_with('/') { clean_abs(dest_raw) } else { clean_abs(&format!("{workdir}/{dest_raw}")) };

    // Expand the sources into (context path, entry) pairs, as Docker's copier does.
    let mut infos: Vec<(String, ContextEntry)> = Vec::new();
    for src in sources {
        if src.starts_with("http://") || src.starts_with("https://") || src.starts_with("git@") {
            return Err(unsupported(i.line, format!("{} of a URL", i.keyword)));
        }
        let Some(clean) = clean_source(src) else {
            bail!("{}: line {}: source `{src}` is outside the build context", a.name, i.line);
        };
        if clean.contains(['*', '?', '[']) {
            let pattern = glob::Pattern::new(&clean).with_context(|| format!("{}: line {}: bad pattern `{src}`", a.name, i.line))?;
            let opts = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };
            let before = infos.len();
            for (path, e) in &a.context.entries {
                if pattern.matches_with(path, opts) {
                    infos.push((path.clone(), e.clone()));
                }
            }
            if infos.len() == before {
                bail!("{}: line {}: no file in the build context matches `{src}` (missing, or excluded by .dockerignore)", a.name, i.line);
            }
        } else if clean.is_empty() {
            infos.push((String::new(), ContextEntry::Dir));
        } else {
            match a.context.entries.get(&clean) {
                Some(e) => infos.push((clean, e.clone())),
                None => {
                    bail!("{}: line {}: `{src}` is not in the build context (missing, or excluded by .dockerignore)", a.name, i.line)
                }
            }
        }
    }
    if infos.len() > 1 && !dest_is_dir_form {
        bail!("{}: line {}: with more than one source, the destination must be a directory ending in / (`{dest_raw}`)", a.name, i.line);
    }

    let file_mode = |executable: bool| chmod.unwrap_or(if executable { 0o755 } else { 0o644 });
    let dir_mode = chmod.unwrap_or(0o755);
    let mut out = BTreeMap::new();
    // Directories the copy creates that `--chown` gives to the new owner (others are
    // created 0755 root:root by whoever unpacks the layer, as `docker build` creates them).
    let mut owned_dirs: BTreeSet<String> = BTreeSet::new();
    let join = |base: &str, rel: &str| if base.is_empty() { rel.to_owned() } else if rel.is_empty() { base.to_owned() } else { format!("{base}/{rel}") };
    for (path, entry) in infos {
        match entry {
            ContextEntry::Dir => {
                // The directory's contents go into the destination (not the directory itself).
                let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
                let mut any = false;
                for (p, e) in a.context.entries.range(prefix.clone()..) {
                    let Some(rel) = p.strip_prefix(&prefix) else { break };
                    if rel.is_empty() {
                        continue;
                    }
                    any = true;
                    let (data, mode) = match e {
                        ContextEntry::Dir => (EntryData::Dir, dir_mode),
                        ContextEntry::File { content, executable } => (EntryData::File(content.clone()), file_mode(*executable)),
                        ContextEntry::Symlink(t) => (EntryData::Symlink(t.clone()), 0o777),
                    };
                    out.insert(join(&dest, rel), Entry { data, mode, uid: owner.0, gid: owner.1 });
                }
                if !any && !dest.is_empty() {
                    out.insert(dest.clone(), Entry { data: EntryData::Dir, mode: 0o755, uid: owner.0, gid: owner.1 });
                }
                // Docker makes a missing destination as root, then gives it (only it) to the owner.
                if chown && !dirs.is_dir(&dest) {
                    owned_dirs.insert(dest.clone());
                }
            }
            ContextEntry::File { content, executable } => {
                if i.keyword == "ADD" {
                    let (Content::Context { path: src, .. } | Content::Output { path: src }) = &content;
                    if looks_like_archive(src)? {
                        return Err(unsupported(i.line, format!("ADD of the archive {path} (Docker unpacks it)")));
                    }
                }
                let base_name = path.rsplit('/').next().unwrap_or(&path).to_owned();
                let target = if dest_is_dir_form {
                    join(&dest, &base_name)
                } else {
                    // `COPY file /path`: into /path if the image has that directory, else as /path.
                    if dirs.is_dir(&dest) { join(&dest, &base_name) } else { dest.clone() }
                };
                // For a file, Docker gives every directory it creates to the owner.
                if chown {
                    owned_dirs.extend(ancestors_and_self(&parent_of(&target)).into_iter().filter(|d| !dirs.is_dir(d)));
                }
                out.insert(target, Entry { data: EntryData::File(content), mode: file_mode(executable), uid: owner.0, gid: owner.1 });
            }
            ContextEntry::Symlink(_) => {
                if let Some(chain) = link_loop(&a.context.entries, &path) {
                    bail!(
                        "{}: line {}: the source `{path}` is a loop of symbolic links ({}); point a link of it at a file, or remove it",
                        a.name,
                        i.line,
                        chain.join(" -> ")
                    );
                }
                return Err(unsupported(i.line, format!("the source {path} is a symbolic link (Docker follows it)")));
            }
        }
    }
    for d in owned_dirs {
        out.entry(d).or_insert(Entry { data: EntryData::Dir, mode: 0o755, uid: owner.0, gid: owner.1 });
    }
    Ok(out)
}

/// The links from `path` that lead back to one of themselves, when they do: Docker
/// follows a source that is a link, and says of a loop only "forbidden path outside the
/// build context".
fn link_loop(entries: &BTreeMap<String, ContextEntry>, path: &str) -> Option<Vec<String>> {
    let mut chain = vec![path.to_owned()];
    let mut at = path.to_owned();
    while let Some(ContextEntry::Symlink(target)) = entries.get(&at) {
        let from = if target.starts_with('/') { String::new() } else { parent_of(&at) };
        let next = clean_source(&format!("{from}/{target}"))?;
        let looped = chain.contains(&next);
        chain.push(next.clone());
        if looped {
            return Some(chain);
        }
        at = next;
    }
    None
}

fn parent_of(path: &str) -> String {
    path.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap_or_default()
}

/// Where the layers of an image can be read, to learn its directories.
pub type LayerReader<'a> = dyn Fn(&Descriptor) -> Result<Box<dyn std::io::Read + Send>> + 'a;

/// The directories of the image made of `layers`: from the store when known for this
/// layer chain, else from the longest known prefix of the chain plus the layers after
/// it, read through `read` (each once; they are not kept).
pub fn dir_index(store: &BlobStore, layers: &[Descriptor], read: &LayerReader<'_>) -> Result<DirIndex> {
    let mut known = 0;
    let mut idx = DirIndex::default();
    for k in (1..=layers.len()).rev() {
        if let Some(found) = load_dirs(store, &layers[..k]) {
            known = k;
            idx = found;
            break;
        }
    }
    if known == layers.len() {
        return Ok(idx);
    }
    for l in &layers[known..] {
        let mut reader = std::io::BufReader::new(read(l)?);
        let gz = {
            use std::io::BufRead as _;
            reader.fill_buf()?.starts_with(&[0x1f, 0x8b])
        };
        let result = if gz { idx.apply_layer(flate2::read::GzDecoder::new(reader)) } else { idx.apply_layer(reader) };
        result.with_context(|| format!("failed to read layer {}", l.digest))?;
    }
    save_dirs(store, layers, &idx)?;
    Ok(idx)
}

fn load_dirs(store: &BlobStore, layers: &[Descriptor]) -> Option<DirIndex> {
    let d = store.get_ref("dirs", &chain_key(layers))?;
    serde_json::from_slice(&store.read(&d).ok()?).ok()
}

fn save_dirs(store: &BlobStore, layers: &[Descriptor], dirs: &DirIndex) -> Result<()> {
    let d = store.put(&serde_json::to_vec(dirs)?)?;
    store.set_ref("dirs", &chain_key(layers), &d)
}

/// Reads layers from the store.
pub fn from_store(store: &BlobStore) -> impl Fn(&Descriptor) -> Result<Box<dyn std::io::Read + Send>> + '_ {
    |l: &Descriptor| -> Result<Box<dyn std::io::Read + Send>> { Ok(Box::new(store.open_blob(&l.digest)?)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_is_decided_from_the_text() {
        let ok = dockerfile::parse("ARG B=x\nFROM $B\nCOPY a /b/\nENV X=1\nCMD [\"h\"]\n").unwrap();
        assert_eq!(support(&ok), Support::Assemble);
        for (text, why) in [
            ("FROM x\nRUN true\n", "line 2: RUN"),
            ("FROM x AS a\nFROM y\nCOPY --from=a /x /y\n", "2 build stages"),
            ("FROM x\nCOPY --link a /b/\n", "COPY --link"),
            ("FROM scratch\nCOPY a /b\n", "FROM scratch"),
            ("FROM x\nHEALTHCHECK NONE\n", "HEALTHCHECK"),
        ] {
            match support(&dockerfile::parse(text).unwrap()) {
                Support::Docker(w) => assert!(w.contains(why), "{text}: {w}"),
                Support::Assemble => panic!("{text} should need docker"),
            }
        }
    }

    #[test]
    fn base_reference_applies_build_args_over_defaults() {
        let df = dockerfile::parse("ARG BASE=tradai/lambda-base:latest\nFROM ${BASE}\nCOPY a /b/\n").unwrap();
        assert_eq!(base_reference(&df, &BTreeMap::new()).unwrap(), "tradai/lambda-base:latest");
        let args = BTreeMap::from([("BASE".to_owned(), "sha256:abc".to_owned())]);
        assert_eq!(base_reference(&df, &args).unwrap(), "sha256:abc");
    }

    #[test]
    fn ports_and_paths() {
        assert_eq!(expose_ports("8000").unwrap(), ["8000/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expose_ports("7-9").unwrap(), ["7/tcp", "8/tcp", "9/tcp"]);
        assert!(expose_ports("9-7").is_err() && expose_ports("http").is_err() && expose_ports("80/icmp").is_err());
        assert_eq!(clean_abs("/var/task/../lang/./x/"), "var/lang/x");
        assert_eq!(clean_source("./a/../b"), Some("b".into()));
        assert_eq!(clean_source("../etc/passwd"), None);
        assert_eq!(ancestors_and_self("a/b/c"), ["a", "a/b", "a/b/c"]);
    }

    #[test]
    fn a_loop_of_links_is_found_and_a_chain_that_ends_is_not() {
        let link = |t: &str| ContextEntry::Symlink(t.to_owned());
        let entries = BTreeMap::from([
            ("a".to_owned(), link("d/b")),
            ("d".to_owned(), ContextEntry::Dir),
            ("d/b".to_owned(), link("/a")),
            ("ok".to_owned(), link("d")),
            ("self".to_owned(), link("./self")),
        ]);
        assert_eq!(link_loop(&entries, "a").unwrap(), ["a", "d/b", "a"]);
        assert_eq!(link_loop(&entries, "self").unwrap(), ["self", "self"]);
        assert_eq!(link_loop(&entries, "ok"), None);
    }
}
