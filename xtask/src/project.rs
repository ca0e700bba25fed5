//! The repository model: where the root is, what `xtask.toml` says, which Lambda
//! functions and services exist (discovered from their Dockerfiles, never listed by
//! hand), and the build targets they make up.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::bases::{Bases, PythonBaseConfig};
use crate::bases::PYTHON_BASE_ID;
use crate::target_dir::target_dir;
use xtask_ci::repo::{normalize, read_project};
use xtask_engine::{FileCache, Program, StateStore, Target};
use xtask_image::pybase::PythonBaseBuilder;
use xtask_image::{ArgValue, Assembler, BuilderChoice, ContextFrom, DockerEngine, ImageBuilder, ImageSpec};
use xtask_wheel::site_packages::SitePackagesBuilder;
use xtask_wheel::{WheelBuilder, WheelhouseBuilder, WheelhouseSource};

/// `xtask.toml`: the tool's configuration for this repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub build: BuildConfig,
    #[serde(default)]
    pub python_base: PythonBaseConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
}

/// Where images are published by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// `local`, `ecr` or `host[:port]`; `--registry` and `XTASK_REGISTRY` override it.
    pub default: Option<String>,
    /// `host[:port]`s reached over plain HTTP although they are not loopback (Docker's
    /// `insecure-registries`); every other registry gets HTTPS.
    #[serde(default)]
    pub insecure: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildConfig {
    /// Target platform of every image.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Also tag every locally built image `<repository>:latest`.
    #[serde(default = "default_true")]
    pub tag_latest: bool,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig { platform: default_platform(), tag_latest: true }
    }
}

fn default_true() -> bool {
    true
}

fn default_platform() -> String {
    "linux/amd64".into()
}

/// What every image target is built with: the engine, and the assembler when images may
/// be assembled without it.
struct ImageBuilders {
    engine: Arc<DockerEngine>,
    assembler: Option<Arc<Assembler>>,
}

/// The repository the tool works on.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: Utf8PathBuf,
    pub config: Config,
    /// Found once per run (it reads Cargo configuration files).
    target_dir: std::sync::OnceLock<Utf8PathBuf>,
    tools: std::sync::OnceLock<crate::tools::Toolbox>,
}

/// The repository id of a Lambda image.
pub fn lambda_image(name: &str) -> String {
    format!("{}/lambda-{name}", crate::deployment::project_name())
}

/// The repository id of a service image.
pub fn service_image(name: &str) -> String {
    format!("{}/{name}", crate::deployment::project_name())
}

pub const WHEEL_ID: &str = "tradai-common";
/// The tradai-common wheel installed into a site-packages tree, which lambda-base copies in.
pub const SITE_PACKAGES_ID: &str = "site-packages:tradai-common";
pub const LAMBDA_BASE_ID: &str = "tradai/lambda-base";

impl Project {
    /// Finds the root: `--root`, else the nearest folder above the current one holding
    /// `xtask.toml`, else the workspace this binary was built from.
    pub fn locate(explicit: Option<&Utf8Path>) -> Result<Self> {
        let root = match explicit {
            Some(r) => r.canonicalize_utf8().with_context(|| format!("--root {r} does not exist"))?,
            None => {
                let cwd = std::env::current_dir().ok().and_then(|p| Utf8PathBuf::from_path_buf(p).ok());
                let found = cwd.as_deref().and_then(|c| c.ancestors().find(|a| a.join("xtask.toml").is_file()).map(Utf8Path::to_owned));
                match found {
                    Some(r) => r,
                    None => Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned(),
                }
            }
        };
        let config_path = root.join("xtask.toml");
        let config = match fs::read_to_string(&config_path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                let msg = e.message().to_owned();
                anyhow::anyhow!("{config_path} is not valid: {msg}; fix the file (see docs/configuration.md)")
            })?,
            Err(_) => bail!("no xtask.toml at {root}; run from inside the TradAI repository or pass --root"),
        };
        Ok(Project { root, config, target_dir: std::sync::OnceLock::new(), tools: std::sync::OnceLock::new() })
    }

    /// The Cargo target directory of the repository (see [`target_dir`]).
    pub fn target_dir(&self) -> Utf8PathBuf {
        self.target_dir.get_or_init(|| target_dir(&self.root)).clone()
    }

    /// All of the tool's state: `<target>/xtask`.
    pub fn state_dir(&self) -> Utf8PathBuf {
        self.target_dir().join("xtask")
    }

    /// The tools the commands call, provisioned on first use.
    pub fn tools(&self) -> crate::tools::Toolbox {
        self.tools.get_or_init(|| crate::tools::Toolbox::current(&self.root)).clone()
    }

    /// uv for a builder: provisioned the first time a build needs it.
    pub fn uv(&self) -> Program {
        let tools = self.tools();
        Program::lazy("uv", move || Ok(tools.uv()?.into_string()))
    }

    /// A system program for a builder: installed (or its install command named) the first
    /// time a build needs it.
    pub fn system_program(&self, tool: crate::tools::SystemTool) -> Program {
        let tools = self.tools();
        Program::lazy(tool.program(), move || Ok(tools.system(tool)?.into_string()))
    }

    pub fn state_store(&self) -> StateStore {
        StateStore::new(&self.state_dir())
    }

    pub fn file_cache(&self) -> FileCache {
        FileCache::load(&self.state_dir().join("file-cache.json"))
    }

    /// Lambda names: every `lambdas/<name>/` with a Dockerfile, except `base`, sorted.
    /// A folder without a Dockerfile is an error, so a half-added Lambda is never
    /// silently left out.
    pub fn lambdas(&self) -> Result<Vec<String>> {
        let dir = self.root.join("lambdas");
        let mut names = Vec::new();
        let mut missing = Vec::new();
        for entry in dir.read_dir_utf8().with_context(|| format!("failed to list {dir}"))? {
            let entry = entry?;
            let name = entry.file_name();
            if !entry.file_type()?.is_dir() || name == "base" || name.starts_with('.') || name.starts_with("__") {
                continue;
            }
            if entry.path().join("Dockerfile").is_file() {
                names.push(name.to_owned());
            } else if entry.path().join("handler.py").is_file() {
                missing.push(name.to_owned());
            }
        }
        if !missing.is_empty() {
            missing.sort();
            bail!(
                "lambda folder(s) without a Dockerfile: {}; add lambdas/<name>/Dockerfile (FROM ${{BASE_IMAGE}}, see lambdas/README.md)",
                missing.join(", ")
            );
        }
        names.sort();
        Ok(names)
    }

    /// Service names: every `services/<name>/` with a Dockerfile, sorted.
    pub fn services(&self) -> Result<Vec<String>> {
        let dir = self.root.join("services");
        let mut names = Vec::new();
        if !dir.is_dir() {
            return Ok(names);
        }
        for entry in dir.read_dir_utf8().with_context(|| format!("failed to list {dir}"))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() && entry.path().join("Dockerfile").is_file() {
                names.push(entry.file_name().to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The workspace members a package is built from: itself and, transitively, every
    /// member its `[project] dependencies` name. A service's wheelhouse hashes only these,
    /// so a change to a library it does not use never rebuilds its image.
    fn member_closure(&self, package_dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
        // Each member's pyproject.toml read once: name -> (folder, dependencies).
        let mut by_name: BTreeMap<String, Utf8PathBuf> = BTreeMap::new();
        let mut deps_of: BTreeMap<Utf8PathBuf, Vec<String>> = BTreeMap::new();
        for dir in self.workspace_members()?.into_iter().chain([package_dir.to_owned()]) {
            let (name, deps) = read_project(&dir)?;
            if let Some(name) = name {
                by_name.insert(normalize(&name), dir.clone());
            }
            deps_of.insert(dir, deps.iter().map(|d| normalize(d)).collect());
        }
        let mut seen = vec![package_dir.to_owned()];
        let mut queue = vec![package_dir.to_owned()];
        while let Some(dir) = queue.pop() {
            for dep in deps_of.get(&dir).into_iter().flatten() {
                if let Some(member) = by_name.get(dep)
                    && !seen.contains(member)
                {
                    seen.push(member.clone());
                    queue.push(member.clone());
                }
            }
        }
        seen.sort();
        Ok(seen)
    }

    /// The uv workspace members, as the root `pyproject.toml` lists them: the one
    /// definition CI's test matrix uses too.
    fn workspace_members(&self) -> Result<Vec<Utf8PathBuf>> {
        Ok(xtask_ci::repo::workspace_members(&self.root)?.into_iter().map(|m| self.root.join(m)).collect())
    }

    /// An image target built from `dir/Dockerfile` with the project's platform.
    fn image_target(
        &self,
        id: &str,
        deps: Vec<String>,
        dir: &Utf8Path,
        build_args: BTreeMap<String, ArgValue>,
        context_from: Vec<ContextFrom>,
        builders: &ImageBuilders,
    ) -> Target {
        let spec = ImageSpec {
            repository: id.to_owned(),
            context_dir: dir.to_owned(),
            dockerfile: dir.join("Dockerfile"),
            build_args,
            platform: self.config.build.platform.clone(),
            context_from,
            tag_latest: self.config.build.tag_latest,
        };
        Target { id: id.to_owned(), deps, builder: Arc::new(ImageBuilder::new(spec, builders.engine.clone(), builders.assembler.clone())) }
    }

    /// Where assembled images and the bases they are built on are kept.
    pub fn image_store_dir(&self) -> Utf8PathBuf {
        self.state_dir().join("oci")
    }

    /// The assembler for a run: images go to the local engine unless `deliver_local` is off.
    pub fn assembler(&self, choice: BuilderChoice, deliver_local: bool) -> Result<Arc<Assembler>> {
        Ok(Arc::new(Assembler::new(&self.image_store_dir(), choice, deliver_local)?.with_insecure(&self.config.registry.insecure)))
    }

    /// Every build target of the repository, images assembled where they can be.
    pub fn targets(&self, engine: &Arc<DockerEngine>, bases: &Bases) -> Result<Vec<Target>> {
        self.targets_with(engine, bases, Some(self.assembler(BuilderChoice::Auto, true)?))
    }

    /// Every build target of the repository, with the given assembler (`None`: every image
    /// with `docker build`).
    pub fn targets_with(&self, engine: &Arc<DockerEngine>, bases: &Bases, assembler: Option<Arc<Assembler>>) -> Result<Vec<Target>> {
        let builders = ImageBuilders { engine: engine.clone(), assembler };
        let platform = self.config.build.platform.clone();
        let out = self.state_dir();
        let mut targets = Vec::new();

        targets.push(Target {
            id: WHEEL_ID.into(),
            deps: vec![],
            builder: Arc::new(WheelBuilder {
                package_dir: self.root.join("libs/tradai-common"),
                out_root: out.join("wheels/tradai-common"),
                uv: self.uv(),
            }),
        });
        targets.push(Target {
            id: SITE_PACKAGES_ID.into(),
            deps: vec![WHEEL_ID.to_owned()],
            builder: Arc::new(SitePackagesBuilder { wheel_target: WHEEL_ID.into(), out_root: out.join("site-packages/tradai-common") }),
        });

        // The Python bases as resolved for this run: upstream (pinned by digest), or the
        // Debian-built stand-in, a local-only target.
        let lambda_python = bases.lambda.arg();
        let service_python = bases.service.arg();
        if bases.lambda.is_stand_in() || bases.service.is_stand_in() {
            targets.push(Target {
                id: PYTHON_BASE_ID.into(),
                deps: vec![],
                builder: Arc::new(PythonBaseBuilder {
                    repository: PYTHON_BASE_ID.into(),
                    recipe_dir: self.root.join(&self.config.python_base.recipe),
                    work_dir: out.join("tmp"),
                    platform: platform.clone(),
                    engine: engine.clone(),
                    debootstrap: self.system_program(crate::tools::SystemTool::Debootstrap),
                }),
            });
        }
        let python_dep = |arg: &ArgValue| match arg {
            ArgValue::Target(t) => vec![t.clone()],
            _ => vec![],
        };

        // lambda-base copies the installed tree into the base's site-packages: no RUN.
        let mut base_deps = vec![SITE_PACKAGES_ID.to_owned()];
        base_deps.extend(python_dep(&lambda_python));
        targets.push(self.image_target(
            LAMBDA_BASE_ID,
            base_deps,
            &self.root.join("lambdas/base"),
            BTreeMap::from([("PYTHON_BASE".to_owned(), lambda_python)]),
            vec![ContextFrom::new(SITE_PACKAGES_ID, "site-packages")],
            &builders,
            ));

        for name in self.lambdas()? {
            targets.push(self.image_target(
                &lambda_image(&name),
                vec![LAMBDA_BASE_ID.to_owned()],
                &self.root.join("lambdas").join(&name),
                BTreeMap::from([("BASE_IMAGE".to_owned(), ArgValue::Target(LAMBDA_BASE_ID.into()))]),
                vec![],
                &builders,
            ));
        }

        for name in self.services()? {
            let dir = self.root.join("services").join(&name);
            let wheels_id = format!("wheels:{name}");
            let source = match read_project(&dir)?.0 {
                Some(package) => WheelhouseSource::Workspace { package, members: self.member_closure(&dir)? },
                None if dir.join("requirements.txt").is_file() => WheelhouseSource::Requirements(dir.join("requirements.txt")),
                None => bail!("service {name} has neither a pyproject.toml nor a requirements.txt; add one so its wheels can be gathered"),
            };
            targets.push(Target {
                id: wheels_id.clone(),
                deps: vec![],
                builder: Arc::new(WheelhouseBuilder {
                    workspace_root: self.root.clone(),
                    source,
                    out_root: out.join("wheelhouses").join(&name),
                    uv: self.uv(),
                }),
            });
            let mut deps = vec![wheels_id.clone()];
            deps.extend(python_dep(&service_python));
            targets.push(self.image_target(
                &service_image(&name),
                deps,
                &dir,
                BTreeMap::from([("PYTHON_BASE".to_owned(), service_python.clone())]),
                vec![ContextFrom::new(wheels_id, "wheels")],
                &builders,
            ));
        }
        Ok(targets)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Utf8Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn image_names_follow_the_project_name() {
        let project = crate::deployment::project_name();
        assert_eq!(LAMBDA_BASE_ID, lambda_image("base"));
        assert_eq!(PYTHON_BASE_ID, format!("{project}/python-base"));
        assert_eq!(service_image("backend"), format!("{project}/backend"));
    }

    #[test]
    fn a_service_is_built_from_exactly_the_workspace_members_it_depends_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        write(root, "xtask.toml", "");
        write(root, "pyproject.toml", "[tool.uv.workspace]\nmembers = [\"libs/*\", \"services/*\"]\n");
        write(root, "libs/a/pyproject.toml", "[project]\nname = \"Trad_A\"\ndependencies = [\"boto3>=1\"]\n");
        write(root, "libs/b/pyproject.toml", "[project]\nname = \"trad-b\"\ndependencies = [\"trad-a\", \"fastapi[all]>=0.1\"]\n");
        write(root, "libs/c/pyproject.toml", "[project]\nname = \"trad-c\"\n");
        write(root, "services/s/pyproject.toml", "[project]\nname = \"svc\"\ndependencies = [\"trad_b ; python_version >= '3.11'\"]\n");
        let project = Project::locate(Some(root)).unwrap();
        let closure = project.member_closure(&project.root.join("services/s")).unwrap();
        let rel: Vec<String> = closure.iter().map(|p| p.strip_prefix(&project.root).unwrap().to_string()).collect();
        assert_eq!(rel, ["libs/a", "libs/b", "services/s"]);
    }
}
