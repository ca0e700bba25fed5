//! `publish-all-libs` as the real binary against a real package index (pypiserver on
//! loopback, password-protected uploads), started and stopped by each test.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/pypiserver.rs"]
mod pypiserver;

use std::path::Path;
use std::process::{Command, Output};

use pypiserver::{PASSWORD, PyPiServer, USER};

/// A repository holding a copy of the real libs/tradai-strategy.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("xtask.toml"), "[build]\nplatform = \"linux/amd64\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("libs/tradai-strategy")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../libs/tradai-strategy");
    for part in ["pyproject.toml", "README.md", "src"] {
        let ok = Command::new("cp").arg("-r").arg(src.join(part)).arg(dir.path().join("libs/tradai-strategy")).status().unwrap();
        assert!(ok.success());
    }
    dir
}

fn publish(root: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["publish-all-libs", "dev", "--json", "--root"]).arg(root);
    for k in ["TRADAI_PUBLISH_URL", "TRADAI_PUBLISH_USER", "TRADAI_PUBLISH_TOKEN", "TRADAI_PUBLISH_PASSWORD", "GITHUB_ACTIONS"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn published(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(v["published"].as_array().unwrap().len(), 1, "{v}");
    v["published"][0].clone()
}

fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure:\n{}", stderr(o));
    let text = stderr(o);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    errors[0].to_owned()
}

#[test]
fn publish_all_libs_uploads_once_then_reports_the_published_version() {
    let server = PyPiServer::start();
    let root = fixture();
    let env = [("TRADAI_PUBLISH_URL", server.url.as_str()), ("TRADAI_PUBLISH_USER", USER), ("TRADAI_PUBLISH_TOKEN", PASSWORD)];

    let first = publish(root.path(), &env);
    assert!(first.status.success(), "{}", stderr(&first));
    let p = published(&first);
    assert_eq!((p["package"].as_str(), p["version"].as_str(), p["build"].as_str(), p["action"].as_str()), (Some("tradai-strategy"), Some("0.1.0"), Some("built"), Some("uploaded")));
    let wheel = "tradai_strategy-0.1.0-py3-none-any.whl";
    assert_eq!(server.files(), vec![wheel.to_owned()]);
    assert!(stderr(&first).contains(&format!("uploaded {wheel} (")), "{}", stderr(&first));
    let stored = std::fs::read(server.packages.join(wheel)).unwrap();
    let built = std::fs::read(root.path().join("target/xtask/wheels/tradai-strategy").read_dir().unwrap().next().unwrap().unwrap().path().join(wheel)).unwrap();
    assert_eq!(stored, built, "the index holds exactly the built wheel");

    // pip finds it on the index, as the tradai-strategies repository will.
    let dl = tempfile::tempdir().unwrap();
    let pip = Command::new(moto::python())
        .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--index-url"])
        .arg(format!("{}simple/", server.url))
        .args(["tradai-strategy==0.1.0", "--dest"])
        .arg(dl.path())
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    assert!(dl.path().join(wheel).is_file());

    // Nothing changed: nothing is built, nothing uploaded, and it says why; exit 0.
    let modified = std::fs::metadata(server.packages.join(wheel)).unwrap().modified().unwrap();
    let second = publish(root.path(), &env);
    assert!(second.status.success(), "{}", stderr(&second));
    let p = published(&second);
    assert_eq!((p["build"].as_str(), p["action"].as_str()), (Some("skipped"), Some("already-published")));
    assert!(
        stderr(&second).contains(&format!(
            "tradai-strategy 0.1.0 is already in {} (the same file); nothing uploaded; bump the version in libs/tradai-strategy/pyproject.toml to publish",
            server.url
        )),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::metadata(server.packages.join(wheel)).unwrap().modified().unwrap(), modified);

    // A new version is rebuilt and uploaded next to the old one.
    let pyproject = root.path().join("libs/tradai-strategy/pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap().replacen("version = \"0.1.0\"", "version = \"0.1.1\"", 1);
    std::fs::write(&pyproject, text).unwrap();
    let third = publish(root.path(), &env);
    assert!(third.status.success(), "{}", stderr(&third));
    let p = published(&third);
    assert_eq!((p["version"].as_str(), p["build"].as_str(), p["action"].as_str()), (Some("0.1.1"), Some("built"), Some("uploaded")));
    assert_eq!(server.files().len(), 2);

    for o in [&first, &second, &third] {
        let all = format!("{}{}", stderr(o), String::from_utf8_lossy(&o.stdout));
        assert!(!all.contains(PASSWORD), "the password never appears in output");
    }
}

#[test]
fn missing_or_refused_credentials_are_one_line_errors() {
    let server = PyPiServer::start();
    let root = fixture();

    let out = publish(root.path(), &[("TRADAI_PUBLISH_URL", server.url.as_str())]);
    assert_eq!(
        error_line(&out),
        "error: TRADAI_PUBLISH_URL is set but no credentials are: set TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_USER and TRADAI_PUBLISH_PASSWORD), or unset TRADAI_PUBLISH_URL to publish to CodeArtifact"
    );
    assert!(!root.path().join("target").exists(), "nothing is built before the index is known");

    let wrong = [("TRADAI_PUBLISH_URL", server.url.as_str()), ("TRADAI_PUBLISH_USER", USER), ("TRADAI_PUBLISH_PASSWORD", "expired-or-wrong")];
    let out = publish(root.path(), &wrong);
    let e = error_line(&out);
    assert!(e.starts_with(&format!("error: the package index refused the credentials to upload to {} (HTTP 40", server.url)), "{e}");
    assert!(e.ends_with("check TRADAI_PUBLISH_USER and TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_PASSWORD)"), "{e}");
    assert!(!stderr(&out).contains("expired-or-wrong"));
    assert!(server.files().is_empty());
}
