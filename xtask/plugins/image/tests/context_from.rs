//! How an image's build context receives its dependencies' outputs
//! ([`ImageBuilder::dependency_files`]): a file artifact lands as `<dest>/<name>`, a
//! folder artifact is copied recursively under `<dest>/`, and each placement is hashed
//! into the image's inputs. No Docker call is made.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use xtask_engine::{BuildJob, Builder, FileCache, InputHash, InputManifest, Output};
use xtask_image::{ContextFrom, DockerEngine, ImageBuilder, ImageSpec};

fn write(root: &Utf8Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn builder(root: &Utf8Path, context_from: Vec<ContextFrom>) -> ImageBuilder {
    write(root, "ctx/Dockerfile", "FROM scratch\n");
    let spec = ImageSpec {
        repository: "test/image".into(),
        context_dir: root.join("ctx"),
        dockerfile: root.join("ctx/Dockerfile"),
        build_args: BTreeMap::new(),
        platform: "linux/amd64".into(),
        context_from,
        tag_latest: false,
    };
    ImageBuilder::new(spec, Arc::new(DockerEngine::new()), None)
}

fn dep(artifact: &Utf8Path) -> (InputHash, Output) {
    (InputManifest::new("x", "x").hash(), Output { artifact: artifact.to_string(), ..Output::default() })
}

fn placed(builder: &ImageBuilder, deps: &BTreeMap<String, (InputHash, Output)>) -> anyhow::Result<Vec<(String, Utf8PathBuf)>> {
    let inputs = InputManifest::new("image", "test/image");
    let hash = inputs.hash();
    let job = BuildJob { id: "test/image", input_hash: &hash, inputs: &inputs, deps };
    Ok(builder.dependency_files(&job)?.into_iter().map(|f| (f.dest, f.source)).collect())
}

#[test]
fn a_file_lands_by_name_and_a_folder_is_copied_recursively() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "out/wheel/pkg-1.0-py3-none-any.whl", "wheel");
    write(root, "out/tree/pkg/__init__.py", "init");
    write(root, "out/tree/pkg/sub/mod.py", "mod");
    write(root, "out/tree/pkg-1.0.dist-info/RECORD", "record");
    let b = builder(root, vec![ContextFrom::new("wheel", "wheels"), ContextFrom::new("tree", "site-packages/")]);
    let deps = BTreeMap::from([
        ("wheel".to_owned(), dep(&root.join("out/wheel/pkg-1.0-py3-none-any.whl"))),
        ("tree".to_owned(), dep(&root.join("out/tree"))),
    ]);
    let files = placed(&b, &deps).unwrap();
    let expected: Vec<(String, Utf8PathBuf)> = [
        ("wheels/pkg-1.0-py3-none-any.whl", "out/wheel/pkg-1.0-py3-none-any.whl"),
        ("site-packages/pkg-1.0.dist-info/RECORD", "out/tree/pkg-1.0.dist-info/RECORD"),
        ("site-packages/pkg/__init__.py", "out/tree/pkg/__init__.py"),
        ("site-packages/pkg/sub/mod.py", "out/tree/pkg/sub/mod.py"),
    ]
    .into_iter()
    .map(|(dest, source)| (dest.to_owned(), root.join(source)))
    .collect();
    assert_eq!(files, expected, "each dependency in turn, its files sorted");

    // Each placement is an input of the image, by target and folder.
    let m = b.inputs("test/image", &FileCache::in_memory()).unwrap();
    assert_eq!(m.params.get("context-from:wheel").map(String::as_str), Some("wheels/"));
    assert_eq!(m.params.get("context-from:tree").map(String::as_str), Some("site-packages/"));
    let moved = builder(root, vec![ContextFrom::new("wheel", "wheels"), ContextFrom::new("tree", "lib")]);
    assert_ne!(moved.inputs("test/image", &FileCache::in_memory()).unwrap().hash(), m.hash(), "the folder is hashed");
}

#[test]
fn a_missing_dependency_a_collision_a_link_or_an_escaping_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "out/a/x.whl", "a");
    write(root, "out/b/x.whl", "b");

    let b = builder(root, vec![ContextFrom::new("a", "wheels")]);
    let err = placed(&b, &BTreeMap::new()).unwrap_err().to_string();
    assert!(err.contains("a is not a dependency of test/image"), "{err}");

    let b = builder(root, vec![ContextFrom::new("a", "wheels"), ContextFrom::new("b", "wheels")]);
    let deps = BTreeMap::from([("a".to_owned(), dep(&root.join("out/a/x.whl"))), ("b".to_owned(), dep(&root.join("out/b/x.whl")))]);
    let err = placed(&b, &deps).unwrap_err().to_string();
    assert!(err.contains("two dependencies place wheels/x.whl"), "{err}");

    std::os::unix::fs::symlink("/etc/passwd", root.join("out/a/link")).unwrap();
    let b = builder(root, vec![ContextFrom::new("a", "wheels")]);
    let err = placed(&b, &BTreeMap::from([("a".to_owned(), dep(&root.join("out/a")))])).unwrap_err().to_string();
    assert!(err.contains("regular files only"), "{err}");

    for bad in ["../up", "/abs", ""] {
        let b = builder(root, vec![ContextFrom::new("a", bad)]);
        let err = b.inputs("test/image", &FileCache::in_memory()).unwrap_err().to_string();
        assert!(err.contains("not a folder inside the build context"), "{bad}: {err}");
    }
}
