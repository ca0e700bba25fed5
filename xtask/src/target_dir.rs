//! Where the tool keeps everything it writes: the Cargo target directory of the
//! repository, found the way Cargo finds it.

use std::fs;

use camino::{Utf8Path, Utf8PathBuf};

/// The Cargo target directory of the workspace at `root`, resolved as Cargo resolves it
/// when run there:
/// `CARGO_TARGET_DIR`, then `CARGO_BUILD_TARGET_DIR`, then `build.target-dir` from the
/// nearest `.cargo/config.toml` at or above `root` and then `$CARGO_HOME/config.toml`
/// (a relative value is relative to the folder holding `.cargo/`), else `<root>/target`.
///
/// Written by hand rather than asking `cargo metadata`: that costs a Cargo process (about
/// 100 ms), more than the whole no-op build, and this runs on every command. A test
/// checks the answer against `cargo metadata` in each of these cases.
pub fn target_dir(root: &Utf8Path) -> Utf8PathBuf {
    let cwd = std::env::current_dir().ok().and_then(|p| Utf8PathBuf::from_path_buf(p).ok()).unwrap_or_else(|| root.to_owned());
    target_dir_with(root, &cwd, &|k| std::env::var(k).ok())
}

/// [`target_dir`] with the working folder and the environment given.
pub(crate) fn target_dir_with(root: &Utf8Path, cwd: &Utf8Path, env: &dyn Fn(&str) -> Option<String>) -> Utf8PathBuf {
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            return cwd.join(v);
        }
    }
    let home = env("CARGO_HOME").map(Utf8PathBuf::from).or_else(|| env("HOME").map(|h| Utf8PathBuf::from(h).join(".cargo")));
    let from_config = |dot_cargo: &Utf8Path| -> Option<Utf8PathBuf> {
        ["config.toml", "config"].iter().find_map(|name| {
            let text = fs::read_to_string(dot_cargo.join(name)).ok()?;
            let value: toml::Value = toml::from_str(&text).ok()?;
            let dir = value.get("build")?.get("target-dir")?.as_str()?;
            Some(dot_cargo.parent().unwrap_or(dot_cargo).join(dir))
        })
    };
    root.ancestors()
        .map(|a| a.join(".cargo"))
        .filter(|d| Some(d) != home.as_ref())
        .chain(home.clone())
        .find_map(|d| from_config(&d))
        .unwrap_or_else(|| root.join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Utf8Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// What Cargo itself says, for the same folder and environment.
    fn cargo_says(root: &Utf8Path, cwd: &Utf8Path, env: &[(&str, &str)]) -> Utf8PathBuf {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["metadata", "--no-deps", "--format-version", "1", "--offline", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .current_dir(cwd);
        for k in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Utf8PathBuf::from(v["target_directory"].as_str().unwrap())
    }

    #[test]
    fn the_target_directory_is_where_cargo_puts_it() {
        let dir = tempfile::tempdir().unwrap();
        let top = Utf8Path::from_path(dir.path()).unwrap().canonicalize_utf8().unwrap();
        let root = top.join("repo");
        write(&root, "Cargo.toml", "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        write(&root, "src/lib.rs", "");
        let home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
        let check = |env: &[(&str, &str)], why: &str| {
            let lookup = |k: &str| {
                env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()).or_else(|| (k == "CARGO_HOME").then(|| home.clone()))
            };
            let ours = target_dir_with(&root, &root, &lookup);
            assert_eq!(ours, cargo_says(&root, &root, env), "{why}");
        };
        check(&[], "the default");
        check(&[("CARGO_TARGET_DIR", "elsewhere")], "CARGO_TARGET_DIR, relative to the working folder");
        check(&[("CARGO_BUILD_TARGET_DIR", "/tmp/abs-target")], "CARGO_BUILD_TARGET_DIR, absolute");
        write(&top, ".cargo/config.toml", "[build]\ntarget-dir = \"shared-target\"\n");
        check(&[], "build.target-dir of an enclosing folder, relative to it");
        write(&root, ".cargo/config.toml", "[build]\ntarget-dir = \"out\"\n");
        check(&[], "the nearest config wins");
        check(&[("CARGO_TARGET_DIR", "/tmp/env-wins")], "the environment beats config files");
    }

}
