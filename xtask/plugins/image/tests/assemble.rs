//! The assembler against `docker build`: every fixture Dockerfile is built both ways on
//! the same base, and the two images must have the same file tree (paths, types, modes,
//! owners, contents and link targets, read through `docker export`) and the same config
//! (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts). The base is made with
//! `docker import` from a few directories, so no registry is needed.
//!
//! Also here: the same inputs give the same digests whatever the files' mtimes and the
//! umask, and what the assembler leaves to Docker is said up front.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::Digest as _;
use xtask_engine::{BuildContext, DockerIgnore, FileCache};
use xtask_image::assemble::{self, Assembly, Context, archive, dockerfile, store::BlobStore};
use xtask_image::docker::{BuildRequest, DockerEngine};

fn run(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the images and containers a test made, pass or fail.
struct Cleanup(Vec<String>, Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.1 {
            let _ = std::process::Command::new("docker").args(["rm", "-f", c]).output();
        }
        for i in &self.0 {
            let _ = std::process::Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

/// A base image with a little tree (`/tmp` 1777, `/srv` 0700, `/etc/passwd`) and config.
fn make_base(dir: &Utf8Path, tag: &str) -> String {
    let tar_path = dir.join("base.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    let mut add = |path: &str, mode: u32, uid: u64, body: Option<&[u8]>| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_000_000_000);
        match body {
            Some(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, path, bytes).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty()).unwrap();
            }
        }
    };
    for (d, mode, uid) in [("etc", 0o755, 0), ("tmp", 0o1777, 0), ("var", 0o755, 0), ("var/task", 0o755, 0), ("srv", 0o700, 0), ("home", 0o755, 0), ("home/u", 0o750, 1000)] {
        add(d, mode, uid, None);
    }
    add("etc/passwd", 0o644, 0, Some(b"root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n"));
    add("var/task/existing.txt", 0o600, 0, Some(b"from the base\n"));
    b.into_inner().unwrap();
    run(&[
        "import",
        "--change",
        "ENV LAMBDA_TASK_ROOT=/var/task",
        "--change",
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "--change",
        "WORKDIR /var/task",
        "--change",
        "CMD [\"base-command\"]",
        "--change",
        "LABEL from.base=yes",
        tar_path.as_str(),
        tag,
    ])
}

/// The fixture context: files, an executable, a nested folder with a symbolic link, and
/// a file `.dockerignore` excludes.
fn make_context(root: &Utf8Path, umask_mode: u32) {
    fs::create_dir_all(root.join("src/sub")).unwrap();
    let files: &[(&str, &str, bool)] = &[
        ("handler.py", "def lambda_handler(event, context):\n    return {'ok': True}\n", false),
        ("run.sh", "#!/bin/sh\necho run\n", true),
        ("src/mod.py", "X = 1\n", false),
        ("src/sub/deep.py", "Y = 2\n", false),
        ("a.txt", "a\n", false),
        ("b.txt", "b\n", false),
        ("notes.md", "# notes\n", false),
        ("debug.log", "ignored\n", false),
        (".dockerignore", "*.log\n", false),
    ];
    for (path, body, exec) in files {
        let p = root.join(path);
        fs::write(&p, body).unwrap();
        let mode = if *exec { 0o777 } else { 0o666 } & !umask_mode;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("mod.py", root.join("src/link.py")).unwrap();
    for d in ["src", "src/sub"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o777 & !umask_mode)).unwrap();
    }
}

const EVERYTHING: &str = r#"# escape=\
ARG BASE
ARG GREETING=hello
FROM $BASE
ARG GREETING
ARG UNUSED
ENV APP_HOME=/srv/app \
    MODE="two words"
ENV LEGACY value with spaces
ARG SHADOWED=from-arg
ENV SHADOWED=from-env
LABEL org.example.name="fixture" greeting=${GREETING} shadow=$SHADOWED "quoted key"=x
WORKDIR $APP_HOME
COPY handler.py ./
COPY src/ lib/
COPY ["a.txt", "b.txt", "/data/"]
COPY *.txt /globbed/
COPY run.sh bin/tool
COPY handler.py /etc
COPY handler.py ${LAMBDA_TASK_ROOT}/
ADD notes.md /docs/
COPY --chown=1000:1000 src /owned/
COPY --chown=1000 handler.py /home/u/deep/er/
COPY . /whole/
USER 1000:1000
EXPOSE 8000 53/udp 9000-9001
ENTRYPOINT ["/srv/app/bin/tool"]
CMD ["--serve"]
WORKDIR sub
"#;

const LAMBDA: &str = "ARG BASE_IMAGE=tradai/lambda-base:latest\nFROM ${BASE_IMAGE}\nCOPY handler.py ${LAMBDA_TASK_ROOT}/\nCMD [\"handler.lambda_handler\"]\n";

const ENTRYPOINT_ONLY: &str = "ARG BASE\nFROM ${BASE}\nENTRYPOINT [\"/x\", \"y\"]\nLABEL only=entrypoint\n";

const SHELL_FORMS: &str = "ARG BASE\nFROM ${BASE}\nCMD echo \"$HOME\" && exit 1\nENTRYPOINT exec /bin/sh\nCOPY src /src\n";

/// `docker export` of a container of `image`, as path -> description.
fn tree(image: &str, cleanup: &mut Cleanup) -> BTreeMap<String, String> {
    let id = run(&["create", image, "ignored"]);
    cleanup.1.push(id.clone());
    let out = std::process::Command::new("docker").args(["export", &id]).output().unwrap();
    assert!(out.status.success());
    let mut map = BTreeMap::new();
    let mut ar = tar::Archive::new(&out.stdout[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
        let h = e.header().clone();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => "dir".to_owned(),
            tar::EntryType::Symlink => format!("link -> {}", h.link_name().unwrap().unwrap().display()),
            _ => format!("file {}", xtask_engine::filecache::hex(&sha2::Sha256::digest(&body))),
        };
        map.insert(path, format!("{kind} mode {:o} owner {}:{}", h.mode().unwrap() & 0o7777, h.uid().unwrap(), h.gid().unwrap()));
    }
    map
}

fn config(image: &str) -> serde_json::Value {
    let c: serde_json::Value = serde_json::from_str(&run(&["image", "inspect", "--format", "{{json .Config}}", image])).unwrap();
    let mut out = serde_json::Map::new();
    for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts"] {
        out.insert(k.into(), c.get(k).cloned().unwrap_or(serde_json::Value::Null));
    }
    serde_json::Value::Object(out)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    store: BlobStore,
    base_id: String,
    cleanup: Cleanup,
}

fn fixture(name: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let tag = format!("xtask-assemble-test/{name}-base:{}", std::process::id());
    let base_id = make_base(&root, &tag);
    let store = BlobStore::open(&root.join("store")).unwrap();
    Fixture { _dir: dir, root, store, base_id, cleanup: Cleanup(vec![tag], vec![]) }
}

/// Builds `dockerfile` both ways and compares.
fn equivalent(f: &mut Fixture, name: &str, text: &str, base_arg: &str) {
    let ctx_dir = f.root.join(format!("ctx-{name}"));
    make_context(&ctx_dir, 0o022);
    fs::write(ctx_dir.join("Dockerfile"), text).unwrap();
    equivalent_in(f, name, &ctx_dir, text, &[base_arg], &[]);
}

/// Builds the Dockerfile `text` in `ctx_dir` (plus `extra` files) both ways and compares.
fn equivalent_in(f: &mut Fixture, name: &str, ctx_dir: &Utf8Path, text: &str, base_args: &[&str], extra: &[xtask_engine::ExtraFile]) {
    let cache = FileCache::in_memory();
    let ignore_text = fs::read_to_string(ctx_dir.join(".dockerignore")).ok();
    let ignore = DockerIgnore::with_builtins(ignore_text.as_deref()).unwrap();
    let ctx = BuildContext::scan(ctx_dir, &ignore, &cache).unwrap();
    let args: BTreeMap<String, String> = base_args.iter().map(|a| ((*a).to_owned(), f.base_id.clone())).collect();

    // docker build.
    let docker_tag = format!("xtask-assemble-test/{name}-docker:{}", std::process::id());
    f.cleanup.0.push(docker_tag.clone());
    let engine = DockerEngine::new();
    let build_args: Vec<(String, String)> = args.clone().into_iter().collect();
    engine
        .build(&BuildRequest {
            purpose: format!("build fixture {name}"),
            dockerfile: "Dockerfile",
            tags: std::slice::from_ref(&docker_tag),
            build_args: &build_args,
            platform: "linux/amd64",
            context_tar: ctx.write_tar(Vec::new(), extra).unwrap(),
        })
        .unwrap();

    // The assembler, loaded with one `docker load`.
    let df = dockerfile::parse(text).unwrap();
    assert_eq!(assemble::support(&df), assemble::Support::Assemble, "{name}");
    let base = archive::import_from_engine(&f.store, &f.base_id).unwrap();
    let context = Context::new(&ctx, extra);
    let a = Assembly { dockerfile: &df, name, build_args: &args, context: &context, store: &f.store };
    let dirs = assemble::dir_index(&f.store, &base.manifest.layers, &assemble::from_store(&f.store)).unwrap();
    let image = assemble::assemble(&a, &base, &dirs).unwrap();
    let asm_tag = format!("xtask-assemble-test/{name}-assembled:{}", std::process::id());
    f.cleanup.0.push(asm_tag.clone());
    let present = base.manifest.layers.iter().map(|l| l.digest.clone()).collect();
    archive::load_into_engine(&f.store, &[archive::ToLoad { image: &image, tags: vec![asm_tag.clone()] }], &present).unwrap();
    assert_eq!(run(&["image", "inspect", "--format", "{{.Id}}", &asm_tag]), image.image_id(), "the engine's id is the config digest");

    let (want, got) = (tree(&docker_tag, &mut f.cleanup), tree(&asm_tag, &mut f.cleanup));
    let mut diffs = Vec::new();
    for (k, v) in &want {
        match got.get(k) {
            Some(g) if g == v => {}
            Some(g) => diffs.push(format!("{k}: docker {v}, assembled {g}")),
            None => diffs.push(format!("{k}: only in docker's image ({v})")),
        }
    }
    for (k, g) in &got {
        if !want.contains_key(k) {
            diffs.push(format!("{k}: only in the assembled image ({g})"));
        }
    }
    if !diffs.is_empty() && std::env::var_os("XTASK_DEBUG_LAYERS").is_some() {
        for l in &image.manifest.layers[base.manifest.layers.len()..] {
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f.store.open_blob(&l.digest).unwrap()));
            for e in ar.entries().unwrap() {
                let e = e.unwrap();
                eprintln!("{} {}: {:o} {}", l.digest, e.path().unwrap().display(), e.header().mode().unwrap(), e.header().uid().unwrap());
            }
        }
    }
    assert!(diffs.is_empty(), "{name}: the file trees differ:\n{}", diffs.join("\n"));
    assert_eq!(config(&asm_tag), config(&docker_tag), "{name}: the configs differ");
}

#[test]
fn every_supported_instruction_matches_docker_build() {
    let mut f = fixture("everything");
    equivalent(&mut f, "everything", EVERYTHING, "BASE");
}

#[test]
fn lambda_shaped_and_config_only_dockerfiles_match_docker_build() {
    let mut f = fixture("shapes");
    equivalent(&mut f, "lambda", LAMBDA, "BASE_IMAGE");
    equivalent(&mut f, "entrypoint-only", ENTRYPOINT_ONLY, "BASE");
    equivalent(&mut f, "shell-forms", SHELL_FORMS, "BASE");
}

/// Every Dockerfile of the repository the assembler builds (the Lambdas and lambda-base)
/// gives the image `docker build` gives, on a base with the Lambda image's variables.
#[test]
fn every_runless_dockerfile_of_the_repository_matches_docker_build() {
    let repo = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut f = fixture("repository");
    // lambda-base's context receives the tradai-common tree from the site-packages target.
    let tree = f.root.join("site-packages");
    fs::create_dir_all(tree.join("tradai_common")).unwrap();
    fs::write(tree.join("tradai_common/__init__.py"), "VERSION = 1\n").unwrap();
    fs::create_dir_all(tree.join("tradai_common-0.1.0.dist-info")).unwrap();
    fs::write(tree.join("tradai_common-0.1.0.dist-info/RECORD"), "tradai_common/__init__.py,,\n").unwrap();
    let extra: Vec<xtask_engine::ExtraFile> = ["tradai_common/__init__.py", "tradai_common-0.1.0.dist-info/RECORD"]
        .iter()
        .map(|p| xtask_engine::ExtraFile { dest: format!("site-packages/{p}"), source: tree.join(p) })
        .collect();
    let mut assembled = Vec::new();
    for group in ["lambdas", "services"] {
        let mut dirs: Vec<Utf8PathBuf> = repo.join(group).read_dir_utf8().unwrap().map(|e| e.unwrap().path().to_owned()).collect();
        dirs.sort();
        for dir in dirs {
            let Ok(text) = fs::read_to_string(dir.join("Dockerfile")) else { continue };
            let df = dockerfile::parse(&text).unwrap();
            if assemble::support(&df) != assemble::Support::Assemble {
                continue;
            }
            let meta_args: Vec<&str> = text.lines().take_while(|l| !l.starts_with("FROM")).filter_map(|l| l.strip_prefix("ARG ")).map(|a| a.split('=').next().unwrap()).collect();
            let name = dir.file_name().unwrap().to_owned();
            let extra: &[xtask_engine::ExtraFile] = if name == "base" { &extra } else { &[] };
            equivalent_in(&mut f, &name, &dir, &text, &meta_args, extra);
            assembled.push(name);
        }
    }
    assert!(assembled.contains(&"base".to_owned()), "lambda-base is assembled: {assembled:?}");
    assert!(assembled.len() >= 18, "lambda-base and the 17 Lambdas: {assembled:?}");
}

/// A base made directly in the store: no Docker involved.
fn synthetic_base(store: &BlobStore) -> assemble::store::StoredImage {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": ["LAMBDA_TASK_ROOT=/var/task"], "Cmd": ["x"] },
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": assemble::store::DOCKER_MANIFEST,
        "config": { "mediaType": assemble::store::DOCKER_CONFIG, "digest": assemble::store::digest_of(&config_bytes), "size": config_bytes.len() },
        "layers": [],
    });
    store.put_image(&serde_json::to_vec(&manifest).unwrap(), &config_bytes).unwrap()
}

fn assemble_in(root: &Utf8Path, umask_mode: u32, mtime: u64) -> String {
    make_context(root, umask_mode);
    fs::write(root.join("Dockerfile"), LAMBDA).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            fs::File::options().write(true).open(entry.path()).unwrap().set_modified(when).unwrap();
        }
    }
    let store = BlobStore::open(&root.join(".store")).unwrap();
    let ignore = DockerIgnore::with_builtins(Some("*.log\n.store\n")).unwrap();
    let ctx = BuildContext::scan(root, &ignore, &FileCache::in_memory()).unwrap();
    let base = synthetic_base(&store);
    let df = dockerfile::parse(LAMBDA).unwrap();
    let args = BTreeMap::from([("BASE_IMAGE".to_owned(), "unused".to_owned())]);
    let context = Context::new(&ctx, &[]);
    let a = Assembly { dockerfile: &df, name: "lambda", build_args: &args, context: &context, store: &store };
    let image = assemble::assemble(&a, &base, &assemble::DirIndex::default()).unwrap();
    image.manifest_digest
}

#[test]
fn the_same_inputs_give_the_same_digest_whatever_the_mtimes_and_umask() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let da = assemble_in(Utf8Path::from_path(a.path()).unwrap(), 0o022, 1_600_000_000);
    let db = assemble_in(Utf8Path::from_path(b.path()).unwrap(), 0o002, 1_700_000_000);
    assert_eq!(da, db);
    // And a content change gives another digest.
    fs::write(b.path().join("handler.py"), "changed = True\n").unwrap();
    let store = BlobStore::open(&Utf8Path::from_path(b.path()).unwrap().join(".store")).unwrap();
    let ignore = DockerIgnore::with_builtins(Some("*.log\n.store\n")).unwrap();
    let ctx = BuildContext::scan(Utf8Path::from_path(b.path()).unwrap(), &ignore, &FileCache::in_memory()).unwrap();
    let base = synthetic_base(&store);
    let df = dockerfile::parse(LAMBDA).unwrap();
    let args = BTreeMap::new();
    let context = Context::new(&ctx, &[]);
    let asm = Assembly { dockerfile: &df, name: "lambda", build_args: &args, context: &context, store: &store };
    let changed = assemble::assemble(&asm, &base, &assemble::DirIndex::default()).unwrap();
    assert_ne!(changed.manifest_digest, da);
}

#[test]
fn what_needs_a_container_is_left_to_docker_with_the_reason() {
    for (text, why) in [
        ("FROM x\nRUN pip install y\n", "line 2: RUN needs a container"),
        ("FROM x\nHEALTHCHECK CMD true\n", "HEALTHCHECK"),
        ("FROM x\nSHELL [\"/bin/bash\", \"-c\"]\n", "SHELL"),
        ("FROM x AS a\nFROM x\nCOPY --from=a /a /b\n", "2 build stages"),
    ] {
        let df = dockerfile::parse(text).unwrap();
        match assemble::support(&df) {
            assemble::Support::Docker(w) => assert!(w.contains(why), "{w}"),
            assemble::Support::Assemble => panic!("{text}"),
        }
    }
}

/// `--chmod` sets the mode of every file and directory the copy writes (BuildKit's
/// meaning; Docker 20.10's classic builder rejects the flag, so this is not compared with
/// Docker here), and `--chown` their owner.
#[test]
fn chmod_and_chown_set_the_mode_and_owner_of_what_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    make_context(root, 0o022);
    let text = "ARG BASE\nFROM $BASE\nCOPY --chmod=750 --chown=7:8 run.sh src /app/\n";
    let store = BlobStore::open(&root.join(".store")).unwrap();
    let ignore = DockerIgnore::with_builtins(Some("*.log\n.store\n")).unwrap();
    let ctx = BuildContext::scan(root, &ignore, &FileCache::in_memory()).unwrap();
    let base = synthetic_base(&store);
    let df = dockerfile::parse(text).unwrap();
    let args = BTreeMap::new();
    let context = Context::new(&ctx, &[]);
    let a = Assembly { dockerfile: &df, name: "chmod", build_args: &args, context: &context, store: &store };
    let image = assemble::assemble(&a, &base, &assemble::DirIndex::default()).unwrap();
    let layer = image.manifest.layers.last().unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(store.open_blob(&layer.digest).unwrap()));
    let mut seen = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        seen.insert(e.path().unwrap().display().to_string(), (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()));
    }
    assert_eq!(seen["app/run.sh"], (0o750, 7, 8));
    assert_eq!(seen["app/mod.py"], (0o750, 7, 8));
    assert_eq!(seen["app/sub/"], (0o750, 7, 8));
    assert_eq!(seen["app/link.py"], (0o777, 7, 8), "a link's own mode is not changed");
    assert_eq!(seen["app/"], (0o755, 7, 8), "the destination the copy creates belongs to the new owner");
}
