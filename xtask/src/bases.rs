//! The Python base images: the upstream ones pinned by digest in `xtask.toml`, and the
//! Debian-built stand-in used only when an upstream base cannot be had.
//!
//! Resolution order for each base, as a build needs it:
//! 1. the local engine already holds the pinned digest: used as is;
//! 2. otherwise it is pulled, with a short timeout for the registry to answer;
//! 3. otherwise the Debian stand-in, with one line saying why.
//!
//! `use = "stand-in"` in `xtask.toml` selects the stand-in outright. The input hash of
//! every image built on an upstream base includes its pinned digest, so the hash is known
//! before anything is pulled: a run with nothing to build never pulls.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use camino::Utf8PathBuf;
use serde::Deserialize;
use xtask_image::ArgValue;
use xtask_image::DockerEngine;

/// The target id of the Debian-built stand-in (the repository model's naming rule).
pub fn python_base_id() -> &'static str {
    xtask_repo::names().python_base_image()
}

/// `[python-base]` of `xtask.toml`: which Python base images the Dockerfiles are built from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonBaseConfig {
    /// Upstream base of lambda-base, pinned: `name:tag@sha256:<digest>`.
    #[serde(default = "default_lambda_base")]
    pub lambda: String,
    /// Upstream base of the service images, pinned the same way.
    #[serde(default = "default_service_base")]
    pub service: String,
    /// `upstream` (the pinned images, the stand-in only when they cannot be had) or
    /// `stand-in` (always the Debian-built stand-in).
    #[serde(default, rename = "use")]
    pub source: BaseSource,
    /// Seconds the registry has to answer a pull of an upstream base.
    #[serde(default = "default_pull_timeout")]
    pub pull_timeout: u64,
    /// The recipe of the Debian-built stand-in.
    #[serde(default = "default_recipe")]
    pub recipe: Utf8PathBuf,
}

impl Default for PythonBaseConfig {
    fn default() -> Self {
        PythonBaseConfig {
            lambda: default_lambda_base(),
            service: default_service_base(),
            source: BaseSource::default(),
            pull_timeout: default_pull_timeout(),
            recipe: default_recipe(),
        }
    }
}

/// The pins shipped with the tool; `cargo xtask base-images --update` refreshes them.
pub const DEFAULT_LAMBDA_BASE: &str =
    "public.ecr.aws/lambda/python:3.11@sha256:d8a8324834a079dbdfc6551831325113512a147bf70003622412565f216e36e0";
pub const DEFAULT_SERVICE_BASE: &str = "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7";

fn default_lambda_base() -> String {
    DEFAULT_LAMBDA_BASE.into()
}
fn default_service_base() -> String {
    DEFAULT_SERVICE_BASE.into()
}
fn default_pull_timeout() -> u64 {
    20
}
fn default_recipe() -> Utf8PathBuf {
    "docker/python-base".into()
}

/// Which base the images are built on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSource {
    /// The pinned upstream images; the stand-in only when they cannot be had.
    #[default]
    Upstream,
    /// Always the Debian-built stand-in.
    StandIn,
}

/// A parsed image reference: `name[:tag][@sha256:digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// As written in `xtask.toml`.
    pub text: String,
    /// Registry and repository, e.g. `public.ecr.aws/lambda/python` or `python`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef> {
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    bail!("`{text}` has a malformed digest; expected @sha256: and 64 lowercase hex digits");
                }
                (r, Some(d.to_owned()))
            }
            None => (text, None),
        };
        // A colon after the last slash is a tag; one before it belongs to host:port.
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
            _ => (rest, None),
        };
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
        if name.is_empty() || !name.chars().all(valid) || tag.as_deref().is_some_and(str::is_empty) {
            bail!("`{text}` is not an image reference; write it as name:tag@sha256:<digest>");
        }
        Ok(ImageRef { text: text.to_owned(), name: name.to_owned(), tag, digest })
    }

    /// What `docker pull` and `docker build` are given: by digest when pinned.
    pub fn exact(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.name),
            (None, Some(t)) => format!("{}:{t}", self.name),
            (None, None) => format!("{}:latest", self.name),
        }
    }

    /// `name:tag`, the form `base-images --update` pulls to learn the current digest.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.name, self.tag.as_deref().unwrap_or("latest"))
    }

    /// The same name and tag pinned to `digest`.
    pub fn pinned_to(&self, digest: &str) -> String {
        format!("{}@{digest}", self.tagged())
    }
}

/// Which base one role (the Lambda images, the services) is built on.
#[derive(Debug, Clone)]
pub enum Base {
    /// The upstream image. `local` is the engine's image id when it holds it.
    Upstream { image: ImageRef, local: Option<String> },
    /// The Debian stand-in, and why.
    StandIn { reason: String },
}

impl Base {
    /// The `PYTHON_BASE` build argument for images built on this base.
    pub fn arg(&self) -> ArgValue {
        match self {
            Base::Upstream { image, local } => match (&image.digest, local) {
                (Some(d), _) => ArgValue::External { reference: image.exact(), pin: d.clone() },
                (None, Some(id)) => ArgValue::External { reference: image.exact(), pin: id.clone() },
                // Unpinned and absent: resolve() pulls it or falls back before planning.
                (None, None) => ArgValue::External { reference: image.exact(), pin: "unresolved".into() },
            },
            Base::StandIn { .. } => ArgValue::Target(python_base_id().into()),
        }
    }

    pub fn is_stand_in(&self) -> bool {
        matches!(self, Base::StandIn { .. })
    }
}

/// The two bases of a run.
#[derive(Debug, Clone)]
pub struct Bases {
    pub lambda: Base,
    pub service: Base,
}

/// The roles, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Lambda,
    Service,
}

impl Bases {
    /// Resolves both bases from the engine without pulling anything pinned. An unpinned
    /// base the engine lacks is pulled now (unless `dry_run`), since its content is only
    /// known once it is here.
    pub fn resolve(cfg: &PythonBaseConfig, engine: &DockerEngine, dry_run: bool) -> Result<Bases> {
        let one = |text: &str| -> Result<Base> {
            if cfg.source == BaseSource::StandIn {
                return Ok(Base::StandIn { reason: "xtask.toml selects it ([python-base] use = \"stand-in\")".into() });
            }
            let image = ImageRef::parse(text).context("in xtask.toml [python-base]")?;
            let local = match &image.digest {
                Some(d) => engine.resolve_digest(&image.name, d)?,
                None => engine.resolve(&image.exact())?,
            };
            if local.is_none() && image.digest.is_none() && !dry_run {
                return Ok(match pull(cfg, engine, &image) {
                    Ok(()) => Base::Upstream { local: engine.image_id(&image.exact())?, image },
                    Err(reason) => Base::StandIn { reason },
                });
            }
            Ok(Base::Upstream { image, local })
        };
        Ok(Bases { lambda: one(&cfg.lambda)?, service: one(&cfg.service)? })
    }

    /// The bases as configured, without asking the engine anything: what change
    /// detection hashes with (a pinned base counts by its digest).
    pub fn pinned(cfg: &PythonBaseConfig) -> Result<Bases> {
        let one = |text: &str| -> Result<Base> {
            Ok(match cfg.source {
                BaseSource::StandIn => Base::StandIn { reason: "xtask.toml selects it ([python-base] use = \"stand-in\")".into() },
                BaseSource::Upstream => {
                    Base::Upstream { image: ImageRef::parse(text).context("in xtask.toml [python-base]")?, local: None }
                }
            })
        };
        Ok(Bases { lambda: one(&cfg.lambda)?, service: one(&cfg.service)? })
    }

    pub fn get(&self, role: Role) -> &Base {
        match role {
            Role::Lambda => &self.lambda,
            Role::Service => &self.service,
        }
    }

    pub fn set(&mut self, role: Role, base: Base) {
        *self.get_mut(role) = base;
    }

    fn get_mut(&mut self, role: Role) -> &mut Base {
        match role {
            Role::Lambda => &mut self.lambda,
            Role::Service => &mut self.service,
        }
    }

    /// Whether either role is built on the stand-in.
    pub fn stand_in(&self) -> Option<&str> {
        [&self.lambda, &self.service].into_iter().find_map(|b| match b {
            Base::StandIn { reason } => Some(reason.as_str()),
            _ => None,
        })
    }

    /// The pinned upstream images of `roles` the engine lacks.
    pub fn missing(&self, roles: &[Role]) -> Vec<(Role, ImageRef)> {
        roles
            .iter()
            .filter_map(|r| match self.get(*r) {
                Base::Upstream { image, local: None } => Some((*r, image.clone())),
                _ => None,
            })
            .collect()
    }

    /// What a dry run says instead of pulling: each missing base is pulled if its registry
    /// answers, else the stand-in is used, exactly as a real run would decide. Returns
    /// whether anything fell back.
    /// For bases the assembler builds on: reads each missing one's manifest and config
    /// from its registry (`read`) instead of pulling it into the engine; one that cannot
    /// be read is replaced by the stand-in, with the reason.
    pub fn read_missing(&mut self, roles: &[Role], read: &dyn Fn(&str) -> anyhow::Result<()>, say: &dyn Fn(&str)) -> bool {
        let mut fell_back = false;
        for (role, image) in self.missing(roles) {
            match read(&image.exact()) {
                Ok(()) => say(&format!("read the upstream base {} from its registry", image.exact())),
                Err(e) => {
                    let reason = format!("{e:#}");
                    let first = reason.lines().next().unwrap_or("no answer");
                    *self.get_mut(role) = Base::StandIn { reason: format!("{} could not be pulled: {first}", image.exact()) };
                    fell_back = true;
                }
            }
        }
        fell_back
    }

    pub fn probe_missing(&mut self, cfg: &PythonBaseConfig, roles: &[Role], say: &dyn Fn(&str)) -> bool {
        let mut fell_back = false;
        let timeout = Duration::from_secs(cfg.pull_timeout.min(10));
        for (role, image) in self.missing(roles) {
            match probe_registry(&image, timeout) {
                Ok(()) => say(&format!("would pull the upstream base {} (not in the local Docker engine)", image.exact())),
                Err(reason) => {
                    *self.get_mut(role) = Base::StandIn { reason: format!("{} could not be pulled: {reason}", image.exact()) };
                    fell_back = true;
                }
            }
        }
        fell_back
    }

    /// Pulls the pinned upstream images of `roles` the engine lacks. A base that cannot
    /// be pulled falls back to the stand-in, with the reason kept for the caller to print
    /// once. Returns whether
    /// anything fell back (the targets must then be made again).
    pub fn pull_missing(&mut self, cfg: &PythonBaseConfig, engine: &DockerEngine, roles: &[Role], say: &dyn Fn(&str)) -> bool {
        let mut fell_back = false;
        let mut done: Vec<(String, Result<(), String>)> = Vec::new();
        for (role, image) in self.missing(roles) {
            let result = match done.iter().find(|(r, _)| *r == image.exact()) {
                Some((_, r)) => r.clone(),
                None => {
                    say(&format!("pulling the upstream base {} (not in the local Docker engine)", image.exact()));
                    let r = pull(cfg, engine, &image);
                    done.push((image.exact(), r.clone()));
                    r
                }
            };
            match result {
                Ok(()) => {
                    let local = engine.image_id(&image.exact()).ok().flatten();
                    *self.get_mut(role) = Base::Upstream { local, image };
                }
                Err(reason) => {
                    *self.get_mut(role) = Base::StandIn { reason: format!("{} could not be pulled: {reason}", image.exact()) };
                    fell_back = true;
                }
            }
        }
        fell_back
    }
}

impl ImageRef {
    /// The registry host serving it (`registry-1.docker.io` for Docker Hub names).
    pub fn registry_host(&self) -> &str {
        match self.name.split_once('/') {
            Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
            _ => "registry-1.docker.io",
        }
    }
}

/// Whether the registry serving `image` answers the distribution API within `timeout`
/// (any HTTP answer counts: a 401 is a registry asking for a token). This is what doctor
/// and `base-images` use to say whether a pull would work, without pulling.
pub fn probe_registry(image: &ImageRef, timeout: Duration) -> Result<(), String> {
    let host = image.registry_host();
    let scheme = if xtask_image::registry::is_loopback(host) { "http" } else { "https" };
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
    match agent.get(&format!("{scheme}://{host}/v2/")).call() {
        Ok(r) if r.status().as_u16() < 500 => Ok(()),
        Ok(r) => Err(format!("{host} answered {}", r.status())),
        Err(e) => Err(format!("{host} is not reachable: {e}")),
    }
}

/// Pulls one upstream base with the configured timeout for the registry to answer.
fn pull(cfg: &PythonBaseConfig, engine: &DockerEngine, image: &ImageRef) -> Result<(), String> {
    let reach = Duration::from_secs(cfg.pull_timeout);
    engine.pull(&image.exact(), reach, Duration::from_secs(30 * 60)).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_with_registry_ports_tags_and_digests() {
        let r = ImageRef::parse(&format!("public.ecr.aws/lambda/python:3.11@{D}")).unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("public.ecr.aws/lambda/python", Some("3.11"), Some(D)));
        assert_eq!(r.exact(), format!("public.ecr.aws/lambda/python@{D}"));
        assert_eq!(r.tagged(), "public.ecr.aws/lambda/python:3.11");
        let r = ImageRef::parse("127.0.0.1:5000/test/python").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_deref()), ("127.0.0.1:5000/test/python", None));
        assert_eq!(r.exact(), "127.0.0.1:5000/test/python:latest");
        let r = ImageRef::parse("python:3.11-slim").unwrap();
        assert_eq!(r.pinned_to(D), format!("python:3.11-slim@{D}"));
    }

    #[test]
    fn malformed_references_are_refused_with_the_expected_form() {
        for bad in ["python:3.11@sha256:abc", "Python:3.11", "python:", "", "python@md5:00"] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains("sha256") || e.contains("name:tag"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_pinned_base_hashes_by_digest_and_builds_from_it() {
        let image = ImageRef::parse(&format!("python:3.11-slim@{D}")).unwrap();
        let a = Base::Upstream { image: image.clone(), local: None }.arg();
        let b = Base::Upstream { image, local: Some("sha256:local".into()) }.arg();
        for arg in [a, b] {
            match arg {
                ArgValue::External { reference, pin } => {
                    assert_eq!(pin, D, "the pin does not depend on what the engine holds");
                    assert_eq!(reference, format!("python@{D}"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
