//! The wheel plugin: a Python package's wheel, built with `uv build` from the files that
//! go into it (`pyproject.toml`, `src/`, `README.md`); tests and caches are not inputs,
//! so editing a test never rebuilds the images that carry the wheel. [`site_packages`]
//! installs a wheel into a site-packages tree an image copies in without running pip.

pub mod site_packages;

use std::fs;

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use xtask_engine::{BuildContext, BuildJob, Builder, Cmd, DockerIgnore, FileCache, InputManifest, Output, Program};

/// The files of a package that end up in its wheel, as `.dockerignore` rules.
pub const WHEEL_INPUTS: &str = "*\n!pyproject.toml\n!src\n!README.md\n!LICENSE*\n";

/// [`Builder`] for one package's wheel.
pub struct WheelBuilder {
    /// The package folder (holds `pyproject.toml`).
    pub package_dir: Utf8PathBuf,
    /// Where built wheels are kept: `<out_root>/<first 16 hex of the input hash>/`.
    pub out_root: Utf8PathBuf,
    /// uv, provisioned on first use.
    pub uv: Program,
}

impl WheelBuilder {
    fn filter() -> DockerIgnore {
        DockerIgnore::with_builtins(Some(WHEEL_INPUTS)).expect("built-in rules are valid")
    }
}

impl Builder for WheelBuilder {
    fn kind(&self) -> &'static str {
        "wheel"
    }

    fn inputs(&self, id: &str, files: &FileCache) -> Result<InputManifest> {
        if !self.package_dir.join("pyproject.toml").is_file() {
            bail!("{id}: no pyproject.toml in {}", self.package_dir);
        }
        let ctx = BuildContext::scan(&self.package_dir, &Self::filter(), files)?;
        let mut m = InputManifest::new("wheel", id).with_context(&ctx);
        m.params.insert("builder".into(), "uv build --wheel".into());
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        Ok(Utf8PathBuf::from(&output.artifact).is_file())
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        let dest = self.out_root.join(&job.input_hash.as_str()[..16]);
        let staging = self.out_root.join(format!(".staging-{}-{}", &job.input_hash.as_str()[..16], std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).with_context(|| format!("failed to create {staging}"))?;
        let built = self
            .uv
            .cmd(format!("build the {} wheel", job.id))?
            .args(["build", "--wheel", "--quiet", "--out-dir", staging.as_str(), self.package_dir.as_str()])
            .run();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging);
            return Err(e.into());
        }
        let wheel = fs::read_dir(&staging)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".whl"))
            .with_context(|| format!("uv build produced no wheel for {}", job.id))?;
        // Publish the folder in one rename, so a killed build never leaves a half wheel.
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&staging, &dest).with_context(|| format!("failed to move the wheel to {dest}"))?;
        let artifact = dest.join(&wheel);
        let mut out = Output { artifact: artifact.to_string(), ..Output::default() };
        out.detail.insert("file".into(), wheel);
        Ok(out)
    }
}

/// The wheels a service image installs from: its own, the workspace libraries it uses
/// and every third-party dependency, as locked in `uv.lock`, for the image's platform.
///
/// Inputs are the lock file, the workspace root `pyproject.toml` and the packaging inputs
/// of the workspace members given; with a plain `requirements.txt` (a service outside the
/// workspace) they are that file alone.
pub struct WheelhouseBuilder {
    pub workspace_root: Utf8PathBuf,
    /// How the service declares its dependencies.
    pub source: WheelhouseSource,
    pub out_root: Utf8PathBuf,
    /// uv, provisioned on first use.
    pub uv: Program,
}

/// Where a wheelhouse's requirement list comes from.
pub enum WheelhouseSource {
    /// A uv workspace member: `uv export --package <name>`; `members` are the folders of
    /// the workspace packages whose sources are inputs.
    Workspace { package: String, members: Vec<Utf8PathBuf> },
    /// A `requirements.txt` of pinned third-party packages.
    Requirements(Utf8PathBuf),
}

impl Builder for WheelhouseBuilder {
    fn kind(&self) -> &'static str {
        "wheelhouse"
    }

    fn inputs(&self, id: &str, files: &FileCache) -> Result<InputManifest> {
        let mut m = InputManifest::new("wheelhouse", id);
        m.params.insert("platform".into(), "manylinux2014_x86_64 cp311".into());
        m.params.insert("output".into(), "wheel files only".into());
        let add_file = |m: &mut InputManifest, path: &Utf8PathBuf| -> Result<()> {
            let meta = fs::metadata(path).with_context(|| format!("{id}: cannot read {path}"))?;
            let rel = path.strip_prefix(&self.workspace_root).unwrap_or(path);
            m.files.insert(rel.to_string(), format!("file {}", files.digest(path, &meta)?));
            Ok(())
        };
        match &self.source {
            WheelhouseSource::Workspace { package, members } => {
                m.params.insert("package".into(), package.clone());
                add_file(&mut m, &self.workspace_root.join("uv.lock"))?;
                add_file(&mut m, &self.workspace_root.join("pyproject.toml"))?;
                for dir in members {
                    let ctx = BuildContext::scan(dir, &WheelBuilder::filter(), files)?;
                    let rel = dir.strip_prefix(&self.workspace_root).unwrap_or(dir);
                    for (p, e) in &ctx.entries {
                        m.files.insert(format!("{rel}/{p}"), e.fingerprint());
                    }
                }
            }
            WheelhouseSource::Requirements(path) => add_file(&mut m, path)?,
        }
        Ok(m)
    }

    fn output_exists(&self, output: &Output) -> Result<bool> {
        Ok(Utf8PathBuf::from(&output.artifact).is_dir())
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<Output> {
        let dest = self.out_root.join(&job.input_hash.as_str()[..16]);
        let staging = self.out_root.join(format!(".staging-{}-{}", &job.input_hash.as_str()[..16], std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).with_context(|| format!("failed to create {staging}"))?;
        let mut scratch: Vec<Utf8PathBuf> = Vec::new();
        let result = (|| -> Result<()> {
            let requirements = match &self.source {
                WheelhouseSource::Workspace { package, .. } => {
                    let exported = self
                        .uv
                        .cmd(format!("export the locked dependencies of {package}"))?
                        .args([
                            "export",
                            "--frozen",
                            "--no-dev",
                            "--no-hashes",
                            "--no-header",
                            "--no-annotate",
                            "--package",
                            package.as_str(),
                        ])
                        .dir(&self.workspace_root)
                        .run()?;
                    let mut third_party = String::new();
                    for line in exported.stdout.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                        match line.strip_prefix("-e ").unwrap_or(line).strip_prefix("./") {
                            Some(member) => {
                                self.uv
                                    .cmd(format!("build the {member} wheel"))?
                                    .args(["build", "--wheel", "--quiet", "--out-dir", staging.as_str(), member])
                                    .dir(&self.workspace_root)
                                    .run()?;
                            }
                            None => {
                                third_party.push_str(line);
                                third_party.push('\n');
                            }
                        }
                    }
                    // Beside the output, not in it: the wheelhouse holds wheel files only.
                    let req = self.out_root.join(format!(".requirements-{}-{}.txt", &job.input_hash.as_str()[..16], std::process::id()));
                    fs::write(&req, third_party)?;
                    scratch.push(req.clone());
                    req
                }
                WheelhouseSource::Requirements(path) => path.clone(),
            };
            // An exported lock lists every transitive dependency pinned; a plain
            // requirements file lists only the top level, so pip resolves the rest.
            let locked = matches!(self.source, WheelhouseSource::Workspace { .. });
            let mut download = Cmd::new("python3", format!("download the wheels for {}", job.id)).args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--dest",
                staging.as_str(),
                "--requirement",
                requirements.as_str(),
            ]);
            if locked {
                download = download.arg("--no-deps");
            }
            download.run()?;
            // An image copies the whole folder into its build context: leave nothing in it
            // but the wheels (uv build may add a `.gitignore`).
            for entry in staging.read_dir_utf8().with_context(|| format!("failed to list {staging}"))? {
                let entry = entry?;
                if entry.path().extension() != Some("whl") {
                    fs::remove_file(entry.path()).with_context(|| format!("failed to remove {}", entry.path()))?;
                }
            }
            Ok(())
        })();
        for file in scratch {
            let _ = fs::remove_file(file);
        }
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&staging, &dest).with_context(|| format!("failed to move the wheels to {dest}"))?;
        Ok(Output { artifact: dest.to_string(), ..Output::default() })
    }
}
