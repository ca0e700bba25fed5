//! The project: where the root is, what `xtask.toml` says, the repository model
//! (`xtask-repo`'s [`Repository`], read once per run, on first use) and the build
//! targets it makes up.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::bases::{Bases, PythonBaseConfig};
use crate::target_dir::target_dir;
use xtask_engine::{FileCache, Program, StateStore, Target};
use xtask_image::pybase::PythonBaseBuilder;
use xtask_image::{ArgValue, Assembler, BuilderChoice, ContextFrom, DockerEngine, ImageBuilder, ImageSpec};
use xtask_repo::{Repository, ServiceSource};
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

/// `os/arch[/variant]` for an OS and architecture images are built for; anything else
/// would be handed to Docker and fail late, or build for nothing that runs.
fn check_platform(platform: &str) -> Result<(), String> {
    const ARCHES: &[&str] = &["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"];
    let mut parts = platform.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("linux"), Some(arch), _, None) if ARCHES.contains(&arch) => Ok(()),
        _ => Err(format!("`{platform}` is not a platform images can be built for; use linux/<arch> with arch one of {}", ARCHES.join(", "))),
    }
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
    /// Read on first use: commands that never look at the repository (`tools`, `doctor`)
    /// never read it, and one that does reads it once.
    repository: std::sync::OnceLock<Repository>,
}

/// The repository id of a Lambda image (the model's naming rule).
pub fn lambda_image(name: &str) -> String {
    xtask_repo::names().lambda_image(name)
}

/// The repository id of a service image (the model's naming rule).
pub fn service_image(name: &str) -> String {
    xtask_repo::names().service_image(name)
}

/// The id of the image every Lambda is built on.
pub fn lambda_base_id() -> &'static str {
    xtask_repo::names().lambda_base_image()
}

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
            Ok(text) => toml::from_str::<Config>(&text)
                .map_err(|e| {
                    let line = e.span().map(|span| format!(" (line {})", 1 + text[..span.start.min(text.len())].matches('\n').count())).unwrap_or_default();
                    anyhow::anyhow!("{config_path} is not valid{line}: {}; fix the file (see docs/configuration.md)", e.message().trim_end())
                })
                .and_then(|config| {
                    check_platform(&config.build.platform).map_err(|why| anyhow::anyhow!("{config_path}: [build] platform {why}"))?;
                    Ok(config)
                })?,
            Err(_) => bail!("no xtask.toml at {root}; run from inside the TradAI repository or pass --root"),
        };
        Ok(Project {
            root,
            config,
            target_dir: std::sync::OnceLock::new(),
            tools: std::sync::OnceLock::new(),
            repository: std::sync::OnceLock::new(),
        })
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

    /// The repository model, read the first time a command asks (its warnings printed
    /// then, once). A folder that cannot be what it looks like is an error naming it.
    pub fn repository(&self) -> Result<&Repository> {
        if let Some(repo) = self.repository.get() {
            return Ok(repo);
        }
        let repo = Repository::load(&self.root).with_context(|| format!("cannot read the repository at {}", self.root))?;
        for warning in &repo.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(self.repository.get_or_init(|| repo))
    }

    /// Lambda names, sorted (from the repository model).
    pub fn lambdas(&self) -> Result<Vec<String>> {
        Ok(self.repository()?.lambda_names())
    }

    /// Service names, sorted (from the repository model).
    pub fn services(&self) -> Result<Vec<String>> {
        Ok(self.repository()?.service_names())
    }

    /// An image target built from its build context with the project's platform.
    fn image_target(
        &self,
        id: &str,
        deps: Vec<String>,
        context: &xtask_repo::BuildContext,
        build_args: BTreeMap<String, ArgValue>,
        context_from: Vec<ContextFrom>,
        builders: &ImageBuilders,
    ) -> Target {
        let spec = ImageSpec {
            repository: id.to_owned(),
            context_dir: self.root.join(&context.dir),
            dockerfile: self.root.join(&context.dockerfile),
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
        let repo = self.repository()?;
        let names = repo.names();
        let builders = ImageBuilders { engine: engine.clone(), assembler };
        let platform = self.config.build.platform.clone();
        let out = self.state_dir();
        let mut targets = Vec::new();

        // The shared library's wheel, installed into a site-packages tree that lambda-base
        // copies in.
        let wheel_id = names.wheel_target(xtask_repo::SHARED_LIB);
        let site_packages_id = names.site_packages_target(xtask_repo::SHARED_LIB);
        targets.push(Target {
            id: wheel_id.clone(),
            deps: vec![],
            builder: Arc::new(WheelBuilder {
                package_dir: repo.path(repo.shared_lib_dir()),
                out_root: out.join("wheels").join(xtask_repo::SHARED_LIB),
                uv: self.uv(),
            }),
        });
        targets.push(Target {
            id: site_packages_id.clone(),
            deps: vec![wheel_id.clone()],
            builder: Arc::new(SitePackagesBuilder {
                wheel_target: wheel_id,
                out_root: out.join("site-packages").join(xtask_repo::SHARED_LIB),
            }),
        });

        // The Python bases as resolved for this run: upstream (pinned by digest), or the
        // Debian-built stand-in, a local-only target.
        let lambda_python = bases.lambda.arg();
        let service_python = bases.service.arg();
        if bases.lambda.is_stand_in() || bases.service.is_stand_in() {
            targets.push(Target {
                id: names.python_base_image().to_owned(),
                deps: vec![],
                builder: Arc::new(PythonBaseBuilder {
                    repository: names.python_base_image().to_owned(),
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
        let lambda_base = names.lambda_base_image();
        let mut base_deps = vec![site_packages_id.clone()];
        base_deps.extend(python_dep(&lambda_python));
        targets.push(self.image_target(
            lambda_base,
            base_deps,
            &repo.lambda_base,
            BTreeMap::from([("PYTHON_BASE".to_owned(), lambda_python)]),
            vec![ContextFrom::new(&site_packages_id, "site-packages")],
            &builders,
        ));

        for lambda in &repo.lambdas {
            targets.push(self.image_target(
                &lambda.image,
                vec![lambda_base.to_owned()],
                &lambda.context,
                BTreeMap::from([("BASE_IMAGE".to_owned(), ArgValue::Target(lambda_base.to_owned()))]),
                vec![],
                &builders,
            ));
        }

        for service in &repo.services {
            let wheels_id = names.wheelhouse_target(&service.name);
            let source = match &service.source {
                Some(ServiceSource::Workspace { project, members }) => {
                    WheelhouseSource::Workspace { package: project.clone(), members: members.iter().map(|m| repo.path(m)).collect() }
                }
                Some(ServiceSource::Requirements(file)) => WheelhouseSource::Requirements(repo.path(file)),
                None => bail!(
                    "service {} has neither a pyproject.toml nor a requirements.txt; add one so its wheels can be gathered",
                    service.name
                ),
            };
            targets.push(Target {
                id: wheels_id.clone(),
                deps: vec![],
                builder: Arc::new(WheelhouseBuilder {
                    workspace_root: self.root.clone(),
                    source,
                    out_root: out.join("wheelhouses").join(&service.name),
                    uv: self.uv(),
                }),
            });
            let mut deps = vec![wheels_id.clone()];
            deps.extend(python_dep(&service_python));
            targets.push(self.image_target(
                &service.image,
                deps,
                &service.context,
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
    fn the_forwarded_names_are_the_models() {
        let names = xtask_repo::names();
        assert_eq!(lambda_base_id(), lambda_image("base"));
        assert_eq!(lambda_image("health-check"), names.lambda_image("health-check"));
        assert_eq!(service_image("backend"), format!("{}/backend", names.project()));
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
        write(root, "services/s/Dockerfile", "FROM x\n");
        let project = Project::locate(Some(root)).unwrap();
        let source = project.repository().unwrap().service("s").unwrap().source.clone();
        let Some(ServiceSource::Workspace { project: name, members }) = source else { panic!("{source:?}") };
        assert_eq!(name, "svc");
        assert_eq!(members, ["libs/a", "libs/b", "services/s"]);
    }

    #[test]
    fn the_target_graph_is_made_from_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        write(root, "xtask.toml", "");
        write(root, "lambdas/base/Dockerfile", "FROM x\n");
        write(root, "lambdas/alpha/Dockerfile", "FROM x\n");
        write(root, "services/web/Dockerfile", "FROM x\n");
        write(root, "services/web/requirements.txt", "x==1\n");
        let project = Project::locate(Some(root)).unwrap();
        let bases = Bases::pinned(&project.config.python_base).unwrap();
        let targets = project.targets_with(&Arc::new(DockerEngine::new()), &bases, None).unwrap();
        let graph: Vec<(&str, Vec<&str>)> = targets.iter().map(|t| (t.id.as_str(), t.deps.iter().map(String::as_str).collect())).collect();
        let names = xtask_repo::names();
        let (site, base) = (names.site_packages_target(xtask_repo::SHARED_LIB), names.lambda_base_image());
        let (alpha, web) = (names.lambda_image("alpha"), names.service_image("web"));
        assert_eq!(
            graph,
            [
                (xtask_repo::SHARED_LIB, vec![]),
                (site.as_str(), vec![xtask_repo::SHARED_LIB]),
                (base, vec![site.as_str()]),
                (alpha.as_str(), vec![base]),
                ("wheels:web", vec![]),
                (web.as_str(), vec!["wheels:web"]),
            ]
        );
        // A service that states no Python dependencies fails the graph, by name.
        fs::remove_file(root.join("services/web/requirements.txt")).unwrap();
        let project = Project::locate(Some(root)).unwrap();
        let e = project.targets_with(&Arc::new(DockerEngine::new()), &bases, None).err().unwrap().to_string();
        assert!(e.contains("service web has neither a pyproject.toml nor a requirements.txt"), "{e}");
    }
}
