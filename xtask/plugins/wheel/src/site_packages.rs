//! A wheel installed into a site-packages folder, without pip and without Python: the
//! tree an image copies into its interpreter's `site-packages` with a plain `COPY`, so
//! that no `RUN` is needed to install it.
//!
//! Installing a wheel whose files all belong to site-packages is unpacking it plus the
//! `.dist-info` bookkeeping of the packaging specifications ("Binary distribution format"
//! and "Recording installed projects"): every file is checked against the wheel's
//! `RECORD`, an `INSTALLER` file is added and `RECORD` is rewritten to list what was
//! installed. It is done here rather than with `uv pip install --target` because that
//! leaves bytes that differ from machine to machine (`direct_url.json` holds the wheel's
//! absolute path, `uv_cache.json` timestamps, a `.lock` file in the target) and needs an
//! interpreter; reading the wheel needs neither and gives the same bytes everywhere.
//!
//! The tree is normalised beyond its bytes as well: files are 0644 (0755 when the wheel
//! marks them executable), folders 0755, and every mtime is 1980-01-01, whatever the
//! umask and the clock. Compiled bytecode (`__pycache__/`, `*.pyc`) is never written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};
use xtask_engine::{BuildJob, Builder, FileCache, InputManifest, Output};

/// What `INSTALLER` says installed the tree.
pub const INSTALLER: &str = "xtask";

/// The mtime of every file and folder of the tree (1980-01-01, as in the build contexts'
/// tar streams).
const FIXED_MTIME: Duration = Duration::from_secs(315_532_800);

/// What this installer does, hashed into the tree's inputs: a change here rebuilds it.
const INSTALL_SCHEME: &str = "unpack v1: RECORD verified, INSTALLER=xtask, no bytecode, no direct_url.json";

/// [`Builder`] for the site-packages tree of one wheel target.
pub struct SitePackagesBuilder {
    /// The wheel target whose wheel is installed (a dependency of this target).
    pub wheel_target: String,
    /// Where trees are kept: `<out_root>/<first 16 hex of the input hash>/`.
    pub out_root: Utf8PathBuf,
}

impl Builder for SitePackagesBuilder {
    fn kind(&self) -> &'static str {
        "site-packages"
    }

    /// Nothing but the installer's scheme: the wheel comes in through the dependency's
    /// input hash, which the engine adds.
    fn inputs(&self, id: &str, _files: &FileCache) -> Result<InputManifest> {
        let mut m = InputManifest::new("site-packages", id);
        m.params.insert("installer".into(), INSTALL_SCHEME.into());
        m.params.insert("wheel-from".into(), self.wheel_target.clone());
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        Ok(Utf8PathBuf::from(&output.artifact).is_dir())
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        let (_, wheel_out) = job
            .deps
            .get(&self.wheel_target)
            .with_context(|| format!("{} is not a dependency of {}; add it to the target's deps", self.wheel_target, job.id))?;
        let wheel = Utf8PathBuf::from(&wheel_out.artifact);
        let short = &job.input_hash.as_str()[..16];
        let dest = self.out_root.join(short);
        let staging = self.out_root.join(format!(".staging-{short}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&self.out_root).with_context(|| format!("failed to create {}", self.out_root))?;
        let installed = install_wheel(&wheel, &staging);
        let installed = match installed {
            Ok(i) => i,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        // Publish the tree in one rename, so a killed build never leaves half a tree.
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&staging, &dest).with_context(|| format!("failed to move the site-packages tree to {dest}"))?;
        let mut out = Output { artifact: dest.to_string(), ..Output::default() };
        out.detail.insert("dist-info".into(), installed.dist_info);
        out.detail.insert("files".into(), installed.files.len().to_string());
        Ok(out)
    }
}

/// What [`install_wheel`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The `<name>-<version>.dist-info` folder.
    pub dist_info: String,
    /// Every file of the tree, relative and `/`-separated, sorted (`RECORD` included).
    pub files: Vec<String>,
}

/// Installs `wheel` into `site`, a folder that must not exist yet (it is created). The
/// result depends on the wheel's file contents alone: see the module documentation.
pub fn install_wheel(wheel: &Utf8Path, site: &Utf8Path) -> Result<Installed> {
    let file = fs::File::open(wheel).with_context(|| format!("cannot open the wheel {wheel}"))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| format!("{wheel} is not a readable wheel (zip) file; rebuild it"))?;

    let names: Vec<String> = (0..archive.len())
        .map(|i| archive.by_index_raw(i).and_then(|f| f.name().map(|n| n.into_owned())))
        .collect::<zip::result::ZipResult<_>>()
        .with_context(|| format!("cannot list {wheel}"))?;
    let dist_info = dist_info_dir(wheel, &names)?;
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));

    let wheel_meta = read_member(&mut archive, &format!("{dist_info}/WHEEL")).with_context(|| format!("in {wheel}"))?;
    check_wheel_version(wheel, &String::from_utf8_lossy(&wheel_meta))?;
    let record_text = read_member(&mut archive, &format!("{dist_info}/RECORD")).with_context(|| format!("in {wheel}"))?;
    let record = parse_record(&String::from_utf8_lossy(&record_text))
        .with_context(|| format!("{wheel}: its RECORD is malformed; rebuild the wheel"))?;

    // Installed path -> (content, executable), read and verified before anything is written.
    let mut tree: BTreeMap<String, (Vec<u8>, bool)> = BTreeMap::new();
    let mut seen_in_record = 0usize;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).with_context(|| format!("cannot read entry {i} of {wheel}"))?;
        let name = entry.name().with_context(|| format!("{wheel}: an entry name is not valid"))?.into_owned();
        if entry.is_dir() {
            continue;
        }
        check_member_name(wheel, &name)?;
        if entry.is_symlink() {
            bail!("{wheel}: {name} is a symbolic link, which wheels cannot carry; rebuild the wheel");
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).with_context(|| format!("cannot unpack {name} from {wheel}"))?;
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        drop(entry);

        // RECORD is rewritten below; its signatures no longer match once it is.
        if name == format!("{dist_info}/RECORD") || name == format!("{dist_info}/RECORD.jws") || name == format!("{dist_info}/RECORD.p7s") {
            continue;
        }
        match record.get(&name) {
            Some(Some(expected)) => {
                let actual = record_hash(&bytes);
                if &actual != expected {
                    bail!("{wheel}: {name} does not match the hash its RECORD gives ({expected}, found {actual}); rebuild the wheel");
                }
                seen_in_record += 1;
            }
            Some(None) => bail!("{wheel}: its RECORD lists {name} without a hash; rebuild the wheel"),
            None => bail!("{wheel}: {name} is not listed in its RECORD; rebuild the wheel"),
        }
        if is_bytecode(&name) {
            continue;
        }
        let dest = match name.strip_prefix(&format!("{data_dir}/")) {
            None => name,
            Some(rest) => match rest.split_once('/') {
                Some(("purelib" | "platlib", path)) => path.to_owned(),
                _ => bail!(
                    "{wheel}: {name} belongs outside site-packages (scripts, headers or data), which a copied site-packages tree cannot install; keep the package to modules only"
                ),
            },
        };
        if tree.insert(dest.clone(), (bytes, executable)).is_some() {
            bail!("{wheel}: two entries install to {dest}; rebuild the wheel");
        }
    }
    let listed = record.keys().filter(|p| !p.ends_with("/RECORD") && !p.ends_with("/RECORD.jws") && !p.ends_with("/RECORD.p7s")).count();
    if listed != seen_in_record {
        bail!("{wheel}: its RECORD lists files the wheel does not hold; rebuild the wheel");
    }
    if let Some(scripts) = tree.get(&format!("{dist_info}/entry_points.txt"))
        && String::from_utf8_lossy(&scripts.0).lines().any(|l| matches!(l.trim(), "[console_scripts]" | "[gui_scripts]"))
    {
        bail!(
            "{wheel}: the package declares console scripts, which a copied site-packages tree does not provide; drop [project.scripts] or install it with pip in the image"
        );
    }

    tree.insert(format!("{dist_info}/INSTALLER"), (format!("{INSTALLER}\n").into_bytes(), false));
    let record_path = format!("{dist_info}/RECORD");
    let mut record_out = String::new();
    for (path, (bytes, _)) in &tree {
        record_out.push_str(&format!("{},{},{}\n", csv_field(path), record_hash(bytes), bytes.len()));
    }
    record_out.push_str(&format!("{},,\n", csv_field(&record_path)));
    tree.insert(record_path, (record_out.into_bytes(), false));

    fs::create_dir(site).with_context(|| format!("failed to create {site}; its parent must exist and it must not"))?;
    for (path, (bytes, executable)) in &tree {
        let abs = site.join(path);
        if let Some(parent) = abs.parent() {
            fs::create_dir_all(parent).with_context(|| format!("failed to create {parent}"))?;
        }
        fs::write(&abs, bytes).with_context(|| format!("failed to write {abs}"))?;
        fs::set_permissions(&abs, fs::Permissions::from_mode(if *executable { 0o755 } else { 0o644 }))
            .with_context(|| format!("failed to set the mode of {abs}"))?;
    }
    normalise_metadata(site)?;
    Ok(Installed { dist_info, files: tree.into_keys().collect() })
}

/// Folder modes and every mtime, children before their folder (writing into a folder
/// moves its mtime).
fn normalise_metadata(site: &Utf8Path) -> Result<()> {
    let when = SystemTime::UNIX_EPOCH + FIXED_MTIME;
    for entry in walkdir::WalkDir::new(site).contents_first(true) {
        let entry = entry.with_context(|| format!("cannot walk {site}"))?;
        let path = entry.path();
        if entry.file_type().is_dir() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("failed to set the mode of {}", path.display()))?;
        }
        let handle = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        handle.set_modified(when).with_context(|| format!("failed to set the mtime of {}", path.display()))?;
    }
    Ok(())
}

/// The one top-level `*.dist-info` folder holding a `WHEEL` file.
fn dist_info_dir(wheel: &Utf8Path, names: &[String]) -> Result<String> {
    let mut found: Vec<&str> =
        names.iter().filter_map(|n| n.strip_suffix("/WHEEL")).filter(|d| d.ends_with(".dist-info") && !d.contains('/')).collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!("{wheel} has no <name>-<version>.dist-info/WHEEL; it is not a wheel, rebuild it"),
        many => bail!("{wheel} has several .dist-info folders ({}); rebuild it", many.join(", ")),
    }
}

/// Wheel-Version 1.x is the format this installer knows.
fn check_wheel_version(wheel: &Utf8Path, wheel_meta: &str) -> Result<()> {
    let version = wheel_meta.lines().find_map(|l| l.strip_prefix("Wheel-Version:")).map(str::trim);
    match version {
        Some(v) if v.split('.').next() == Some("1") => Ok(()),
        Some(v) => bail!("{wheel} has Wheel-Version {v}; only 1.x can be installed, build it with a current uv or hatchling"),
        None => bail!("{wheel}: its WHEEL file has no Wheel-Version; rebuild the wheel"),
    }
}

/// An archive member's name must stay inside the tree: relative, no `.` or `..`, no
/// backslash or NUL.
fn check_member_name(wheel: &Utf8Path, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        bail!("{wheel}: the entry `{name}` would be written outside the tree; rebuild the wheel");
    }
    Ok(())
}

fn is_bytecode(path: &str) -> bool {
    path.ends_with(".pyc") || path.ends_with(".pyo") || path.split('/').any(|p| p == "__pycache__")
}

fn read_member(archive: &mut zip::ZipArchive<fs::File>, name: &str) -> Result<Vec<u8>> {
    let mut entry = archive.by_name(name).with_context(|| format!("{name} is missing"))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).with_context(|| format!("cannot read {name}"))?;
    Ok(bytes)
}

/// `sha256=<urlsafe base64, unpadded>`, as RECORD writes a hash.
fn record_hash(bytes: &[u8]) -> String {
    format!("sha256={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
}

/// RECORD rows: path -> hash (`None` where the row leaves it empty).
///
/// RECORD is CSV with three columns; the hash (`algo=value`) and the size never hold a
/// comma or a quote, so the path is everything before the last two commas, unquoted when
/// quoted. That is exact for every RECORD, so no CSV crate is pulled in for it.
fn parse_record(text: &str) -> Result<BTreeMap<String, Option<String>>> {
    let mut rows = BTreeMap::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        let mut parts = line.rsplitn(3, ',');
        let (_size, hash, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(size), Some(hash), Some(path)) => (size, hash, path),
            _ => bail!("the row `{line}` does not have three columns"),
        };
        let path = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => path.to_owned(),
        };
        let hash = match hash {
            "" => None,
            h if h.starts_with("sha256=") => Some(h.to_owned()),
            h => bail!("the row for {path} uses the hash `{h}`; only sha256 is supported"),
        };
        rows.insert(path, hash);
    }
    Ok(rows)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    use zip::write::SimpleFileOptions;

    const PKG: &[(&str, &str)] = &[
        ("demo_pkg/__init__.py", "VERSION = '1.0'\n"),
        ("demo_pkg/sub/mod.py", "def f():\n    return 1\n"),
        ("demo_pkg/py.typed", ""),
        ("demo_pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.4\nName: demo-pkg\nVersion: 1.0\n"),
        ("demo_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ];

    /// A wheel of `files` (plus its RECORD), with every entry dated `year` and the
    /// file's own mtime set to `mtime_secs`.
    fn make_wheel(dir: &Utf8Path, files: &[(&str, &str)], year: u16, mtime_secs: u64) -> Utf8PathBuf {
        let path = dir.join("demo_pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let date = zip::DateTime::from_date_and_time(year, 3, 4, 5, 6, 8).unwrap();
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).last_modified_time(date);
        let mut record = String::new();
        for (name, text) in files {
            zip.start_file(*name, opts.unix_permissions(0o600)).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
            record.push_str(&format!("{name},{},{}\n", record_hash(text.as_bytes()), text.len()));
        }
        record.push_str("demo_pkg-1.0.dist-info/RECORD,,\n");
        zip.start_file("demo_pkg-1.0.dist-info/RECORD", opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs))
            .unwrap();
        path
    }

    /// Every path of a tree with its mode, mtime and content.
    fn snapshot(root: &Utf8Path) -> BTreeMap<String, (u32, i64, Vec<u8>)> {
        walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| {
                let meta = e.metadata().unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let bytes = if meta.is_file() { fs::read(e.path()).unwrap() } else { Vec::new() };
                (rel, (meta.mode() & 0o7777, meta.mtime(), bytes))
            })
            .collect()
    }

    fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        (dir, path)
    }

    fn umask(mask: u32) -> u32 {
        // SAFETY: umask only swaps the process's file mode creation mask.
        unsafe { libc::umask(mask as libc::mode_t) as u32 }
    }

    #[test]
    fn the_tree_is_the_same_bytes_whatever_the_folder_umask_and_mtimes() {
        let (_a, dir_a) = tempdir();
        let (_b, dir_b) = tempdir();
        let wheel_a = make_wheel(&dir_a, PKG, 1999, 1_000_000_000);
        let wheel_b = make_wheel(&dir_b, PKG, 2024, 1_700_000_000);
        let old = umask(0o022);
        let one = install_wheel(&wheel_a, &dir_a.join("site-packages"));
        umask(0o077);
        let two = install_wheel(&wheel_b, &dir_b.join("site-packages"));
        umask(old);
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(one, two);
        let (snap_a, snap_b) = (snapshot(&dir_a.join("site-packages")), snapshot(&dir_b.join("site-packages")));
        assert_eq!(snap_a, snap_b, "modes, mtimes and contents must not depend on where or how the tree was made");
        assert_eq!(snap_a["demo_pkg/sub/mod.py"].0, 0o644, "the 0600 of the wheel and the 077 umask are normalised");
        assert_eq!(snap_a["demo_pkg/sub"].0, 0o755);
        assert!(snap_a.values().all(|(_, mtime, _)| *mtime == FIXED_MTIME.as_secs() as i64));
    }

    #[test]
    fn the_tree_holds_the_modules_and_a_record_of_exactly_what_was_installed() {
        let (_d, dir) = tempdir();
        let wheel = make_wheel(&dir, PKG, 2020, 1);
        let site = dir.join("site");
        let installed = install_wheel(&wheel, &site).unwrap();
        assert_eq!(installed.dist_info, "demo_pkg-1.0.dist-info");
        assert_eq!(fs::read_to_string(site.join("demo_pkg/sub/mod.py")).unwrap(), "def f():\n    return 1\n");
        assert_eq!(fs::read_to_string(site.join("demo_pkg-1.0.dist-info/INSTALLER")).unwrap(), "xtask\n");
        let record = fs::read_to_string(site.join("demo_pkg-1.0.dist-info/RECORD")).unwrap();
        let rows = parse_record(&record).unwrap();
        let mut on_disk: Vec<String> = walkdir::WalkDir::new(&site)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&site).unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<String> = rows.keys().cloned().collect();
        assert_eq!(listed, on_disk, "RECORD lists every file and nothing else");
        assert_eq!(listed, installed.files);
        for (path, hash) in &rows {
            match hash {
                Some(h) => assert_eq!(h, &record_hash(&fs::read(site.join(path)).unwrap()), "{path}"),
                None => assert_eq!(path, "demo_pkg-1.0.dist-info/RECORD"),
            }
        }
    }

    #[test]
    fn no_bytecode_and_no_absolute_path_reach_the_tree() {
        let (_d, dir) = tempdir();
        let mut files = PKG.to_vec();
        files.push(("demo_pkg/__pycache__/__init__.cpython-311.pyc", "bytecode"));
        files.push(("demo_pkg/stale.pyc", "bytecode"));
        let wheel = make_wheel(&dir, &files, 2020, 1);
        let site = dir.join("site");
        install_wheel(&wheel, &site).unwrap();
        let snap = snapshot(&site);
        assert!(snap.keys().all(|p| !p.ends_with(".pyc") && !p.contains("__pycache__")), "{:?}", snap.keys());
        assert!(!snap.keys().any(|p| p.ends_with("direct_url.json")));
        for (path, (_, _, bytes)) in &snap {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(dir.as_str()) && !text.contains("file:/"), "{path} names a path of this machine:\n{text}");
        }
        let record = fs::read_to_string(site.join("demo_pkg-1.0.dist-info/RECORD")).unwrap();
        assert!(!record.contains(".pyc"), "{record}");
    }

    #[test]
    fn a_file_that_does_not_match_its_record_is_refused() {
        let (_d, dir) = tempdir();
        let wheel = dir.join("bad-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        let opts = SimpleFileOptions::default();
        for (name, text) in [
            ("bad/__init__.py", "tampered\n"),
            ("bad-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"),
            (
                "bad-1.0.dist-info/RECORD",
                "bad/__init__.py,sha256=AAAA,9\nbad-1.0.dist-info/WHEEL,sha256=BBBB,40\nbad-1.0.dist-info/RECORD,,\n",
            ),
        ] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let err = install_wheel(&wheel, &dir.join("site")).unwrap_err().to_string();
        assert!(err.contains("does not match the hash its RECORD gives") && err.contains("rebuild the wheel"), "{err}");
        assert!(!dir.join("site").exists(), "nothing is written before the wheel is verified");
    }

    #[test]
    fn scripts_and_escaping_names_are_refused_with_the_fix() {
        let (_d, dir) = tempdir();
        let mut files = PKG.to_vec();
        files.push(("demo_pkg-1.0.data/scripts/tool", "#!python\n"));
        let err = install_wheel(&make_wheel(&dir, &files, 2020, 1), &dir.join("s1")).unwrap_err().to_string();
        assert!(err.contains("outside site-packages") && err.contains("modules only"), "{err}");

        let mut files = PKG.to_vec();
        files.push(("demo_pkg-1.0.data/purelib/extra_mod.py", "X = 1\n"));
        let installed = install_wheel(&make_wheel(&dir, &files, 2020, 1), &dir.join("s2")).unwrap();
        assert!(installed.files.contains(&"extra_mod.py".to_owned()), "purelib data lands at the root: {:?}", installed.files);

        let mut files = PKG.to_vec();
        files.push(("demo_pkg/../../escape.py", "X = 1\n"));
        let err = install_wheel(&make_wheel(&dir, &files, 2020, 1), &dir.join("s3")).unwrap_err().to_string();
        assert!(err.contains("outside the tree"), "{err}");
    }

    #[test]
    fn the_builder_publishes_the_tree_under_its_input_hash() {
        let (_d, dir) = tempdir();
        let wheel = make_wheel(&dir, PKG, 2020, 1);
        let builder = SitePackagesBuilder { wheel_target: "demo".into(), out_root: dir.join("state/site-packages/demo") };
        let mut inputs = builder.inputs("site-packages:demo", &FileCache::in_memory()).unwrap();
        let wheel_hash = InputManifest::new("wheel", "demo").hash();
        inputs.deps.insert("demo".into(), wheel_hash.clone());
        let hash = inputs.hash();
        let mut deps = BTreeMap::new();
        let job = BuildJob { id: "site-packages:demo", input_hash: &hash, inputs: &inputs, deps: &deps };
        let err = builder.build(&job).unwrap_err().to_string();
        assert!(err.contains("demo is not a dependency"), "{err}");

        deps.insert("demo".into(), (wheel_hash, Output { artifact: wheel.to_string(), ..Output::default() }));
        let job = BuildJob { id: "site-packages:demo", input_hash: &hash, inputs: &inputs, deps: &deps };
        let out = builder.build(&job).unwrap();
        let tree = Utf8PathBuf::from(&out.artifact);
        assert_eq!(tree, dir.join("state/site-packages/demo").join(&hash.as_str()[..16]));
        assert!(tree.join("demo_pkg/__init__.py").is_file());
        assert!(builder.output_exists(&out).unwrap());
        let left: Vec<_> = fs::read_dir(dir.join("state/site-packages/demo")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no staging folder is left behind: {left:?}");
        fs::remove_dir_all(&tree).unwrap();
        assert!(!builder.output_exists(&out).unwrap());
    }

    #[test]
    fn record_paths_with_commas_round_trip() {
        let rows = parse_record("\"a,b.py\",sha256=x,1\nplain.py,sha256=y,2\nd/RECORD,,\n").unwrap();
        assert_eq!(rows["a,b.py"].as_deref(), Some("sha256=x"));
        assert_eq!(rows["d/RECORD"], None);
        assert_eq!(csv_field("a,b.py"), "\"a,b.py\"");
        assert!(parse_record("only-one-column\n").is_err());
    }
}
