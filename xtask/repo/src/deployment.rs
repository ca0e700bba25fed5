//! The deployment facts and the naming rules: the project name, the environments, the
//! trading services and which environments run the API services on the consolidated EC2
//! host, read from `infra/shared/tradai_infra_shared/deployment.toml` (the Pulumi
//! programs' `config.py` reads the same file), and every name the tool derives from them:
//! image repositories, build target ids, AWS resource names.
//!
//! The file is built into the tool (`include_str!`), so the naming rules need no
//! repository at hand (a Docker base image id, an ECS cluster name) and every run, the
//! one in a worktree of an old release tag included, names things the same way. A change
//! to the file rebuilds the tool: the launcher follows the files Cargo's dep-info names,
//! and `include_str!` puts it there.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::Error;

/// Where the facts live, relative to the repository root (for messages).
pub const FILE_PATH: &str = "infra/shared/tradai_infra_shared/deployment.toml";

/// The file's text, as built into the tool.
pub const FILE: &str = include_str!("../../../infra/shared/tradai_infra_shared/deployment.toml");

/// The folder under `lambdas/` that holds the base every Lambda image is built on; its
/// image is named as a Lambda's would be (`<project>/lambda-base`).
pub const LAMBDA_BASE_DIR_NAME: &str = "base";

/// The longest name AWS Lambda accepts for a function given by name (not by ARN).
const LAMBDA_FUNCTION_NAME_MAX: usize = 64;

/// Services whose ECS service is named differently from their folder (config.py
/// `get_ecs_service_name`): folder name, deployed name.
const DEPLOYED_AS: &[(&str, &str)] = &[("backend", "backend-api")];

/// The deployment facts, as `deployment.toml` states them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deployment {
    /// Every resource and image name starts with it.
    pub project: String,
    /// The environments, each a Pulumi stack of every project, in order.
    pub environments: Vec<String>,
    /// The long-lived trading services (the strategy-service image run as ECS services),
    /// by name, with their trading mode.
    pub trading_services: BTreeMap<String, String>,
    /// Whether an environment runs the API services on the consolidated EC2 host.
    pub consolidated_ec2: BTreeMap<String, bool>,
    #[serde(skip)]
    names: Names,
}

impl Deployment {
    /// Parses and checks the facts: a valid project name, at least one environment, and a
    /// consolidated-ec2 entry for exactly the environments listed.
    pub fn parse(text: &str) -> Result<Deployment, Error> {
        let mut d: Deployment =
            toml::from_str(text).map_err(|e| Error::Toml { path: FILE_PATH.into(), message: e.message().to_owned() })?;
        let mut problems = Vec::new();
        if !is_valid_name(&d.project) {
            problems.push(format!("project `{}` {NAME_RULE}", d.project));
        }
        if d.environments.is_empty() {
            problems.push("no environments are listed".to_owned());
        }
        for env in &d.environments {
            if !is_valid_name(env) {
                problems.push(format!("environment `{env}` {NAME_RULE}"));
            }
            if !d.consolidated_ec2.contains_key(env) {
                problems.push(format!("[consolidated-ec2] has no entry for {env}"));
            }
        }
        for env in d.consolidated_ec2.keys().filter(|e| !d.environments.contains(e)) {
            problems.push(format!("[consolidated-ec2] names {env}, which is not in environments"));
        }
        if !problems.is_empty() {
            return Err(Error::Layout(format!("{FILE_PATH}: {}; fix the file", problems.join("; "))));
        }
        d.names = Names::new(&d.project);
        Ok(d)
    }

    /// The facts built into the tool, parsed and checked once; an invalid file is the
    /// error [`Deployment::parse`] gives, naming the fix. [`crate::Repository::load`]
    /// reads them through this, so a command that reads the repository reports it.
    pub fn load_builtin() -> Result<&'static Deployment, Error> {
        static FACTS: OnceLock<Result<Deployment, String>> = OnceLock::new();
        FACTS.get_or_init(|| Deployment::parse(FILE).map_err(|e| e.to_string())).as_ref().map_err(|e| Error::Layout(e.clone()))
    }

    /// The facts built into the tool, for the naming rules of code that has no
    /// repository at hand (a base image id, a cluster name). Panics if the built-in file
    /// is invalid: `the_built_in_facts_are_valid` checks it with every test run, and every
    /// command that reads the repository reports the problem first, as an error.
    pub fn builtin() -> &'static Deployment {
        match Deployment::load_builtin() {
            Ok(d) => d,
            Err(e) => panic!("the deployment facts built into the tool are invalid: {e}"),
        }
    }

    /// The naming rules of this project.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Whether `env` runs the API services on the consolidated EC2 host instead of ECS.
    pub fn consolidated(&self, env: &str) -> bool {
        self.consolidated_ec2.get(env).copied().unwrap_or(false)
    }

    /// The trading services, sorted.
    pub fn trading_services(&self) -> Vec<String> {
        self.trading_services.keys().cloned().collect()
    }
}

/// The naming rules of the tool built into this binary (see [`Deployment::builtin`]).
pub fn names() -> &'static Names {
    Deployment::builtin().names()
}

/// Every name the tool derives from the project name: the one place each format is
/// written. config.py writes the same rules for the Pulumi programs in Python.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    project: String,
    lambda_base: String,
    python_base: String,
}

impl Names {
    pub fn new(project: &str) -> Names {
        let mut names = Names { project: project.to_owned(), lambda_base: String::new(), python_base: String::new() };
        names.lambda_base = names.lambda_image(LAMBDA_BASE_DIR_NAME);
        names.python_base = names.image("python-base");
        names
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// An image repository: `<project>/<name>` (ECR, and the path in any registry).
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.project)
    }

    /// A Lambda function's image: `<project>/lambda-<name>`.
    pub fn lambda_image(&self, lambda: &str) -> String {
        self.image(&format!("lambda-{lambda}"))
    }

    /// A service's image: `<project>/<name>`.
    pub fn service_image(&self, service: &str) -> String {
        self.image(service)
    }

    /// The image every Lambda is built on (`lambdas/base`): `<project>/lambda-base`.
    pub fn lambda_base_image(&self) -> &str {
        &self.lambda_base
    }

    /// The Debian-built stand-in for the upstream Python bases: `<project>/python-base`.
    pub fn python_base_image(&self) -> &str {
        &self.python_base
    }

    /// The build target of a library's wheel: the library's project name.
    pub fn wheel_target(&self, library: &str) -> String {
        library.to_owned()
    }

    /// The build target of a wheel installed into a site-packages tree.
    pub fn site_packages_target(&self, library: &str) -> String {
        format!("site-packages:{library}")
    }

    /// The build target of a service's wheelhouse.
    pub fn wheelhouse_target(&self, service: &str) -> String {
        format!("wheels:{service}")
    }

    /// The standard resource name, `<project>-<name>-<env>` (config.py
    /// `get_resource_name`): Lambda functions, ECS services, the consolidated group.
    pub fn resource(&self, name: &str, env: &str) -> String {
        format!("{}-{name}-{env}", self.project)
    }

    /// A Lambda function: `<project>-<name>-<env>`.
    pub fn lambda_function(&self, lambda: &str, env: &str) -> String {
        self.resource(lambda, env)
    }

    /// An ECS service: `<project>-<service>-<env>`, with `backend` deployed as
    /// `backend-api` (config.py `get_ecs_service_name`).
    pub fn ecs_service(&self, service: &str, env: &str) -> String {
        let deployed = DEPLOYED_AS.iter().find(|(s, _)| *s == service).map_or(service, |(_, d)| *d);
        self.resource(deployed, env)
    }

    /// The service a deployed ECS name stands for (`backend-api` is `backend`).
    pub fn service_of_deployed<'a>(&self, name: &'a str) -> &'a str {
        DEPLOYED_AS.iter().find(|(_, d)| *d == name).map_or(name, |(s, _)| *s)
    }

    /// An environment's ECS cluster: `<project>-<env>`.
    pub fn cluster(&self, env: &str) -> String {
        format!("{}-{env}", self.project)
    }

    /// An environment's CodeArtifact domain (the persistent stack's): `<project>-<env>`.
    pub fn codeartifact_domain(&self, env: &str) -> String {
        self.cluster(env)
    }

    /// The Python repository in every CodeArtifact domain (config.py
    /// `CODEARTIFACT_REPOSITORY`): `<project>-python`.
    pub fn codeartifact_repository(&self) -> String {
        format!("{}-python", self.project)
    }

    /// The consolidated EC2 group of an environment: `<project>-consolidated-<env>`.
    pub fn consolidated_group(&self, env: &str) -> String {
        self.resource("consolidated", env)
    }

    /// A test-matrix name: a member folder's name without the `<project>-` prefix
    /// (`libs/tradai-common` is `common`).
    pub fn matrix_name(&self, dir: &str) -> String {
        let last = dir.rsplit('/').next().unwrap_or(dir);
        last.strip_prefix(&format!("{}-", self.project)).unwrap_or(last).to_owned()
    }

    /// Why a Lambda's name cannot be deployed in `environments`, if it cannot: its
    /// function name would be longer than AWS Lambda allows.
    pub fn lambda_name_problem(&self, lambda: &str, environments: &[String]) -> Option<String> {
        let longest = environments.iter().map(|env| self.lambda_function(lambda, env)).max_by_key(String::len)?;
        (longest.len() > LAMBDA_FUNCTION_NAME_MAX)
            .then(|| format!("its function name {longest} is {} characters, over Lambda's {LAMBDA_FUNCTION_NAME_MAX}", longest.len()))
    }
}

/// What a name of an image, a Lambda or a service must look like, for messages.
pub const NAME_RULE: &str = "is not a valid name: use lower-case letters and digits, with single `-` or `_` between them";

/// Whether `name` can be part of every name derived from it: an image repository path
/// component (Docker, OCI and ECR: lower-case alphanumerics with separators between), a
/// Lambda function and an ECS service name (no `.`). So: `[a-z0-9]+([-_][a-z0-9]+)*`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split(['-', '_']).all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_facts_are_valid() {
        let d = Deployment::parse(FILE).expect("deployment.toml is valid");
        assert_eq!(d.project, "tradai");
        assert_eq!(d.environments, ["dev", "staging", "prod"]);
        assert_eq!(d.trading_services(), ["dry-run-trading", "live-trading"]);
        assert!(d.consolidated("dev") && d.consolidated("staging") && !d.consolidated("prod"));
        assert_eq!(Deployment::builtin(), &d);
    }

    #[test]
    fn naming_rules_follow_the_project_name() {
        let n = Names::new("acme");
        assert_eq!(n.lambda_image("health-check"), "acme/lambda-health-check");
        assert_eq!(n.service_image("backend"), "acme/backend");
        assert_eq!(n.lambda_base_image(), "acme/lambda-base");
        assert_eq!(n.python_base_image(), "acme/python-base");
        assert_eq!(n.lambda_function("health-check", "dev"), "acme-health-check-dev");
        assert_eq!(n.ecs_service("backend", "prod"), "acme-backend-api-prod");
        assert_eq!(n.ecs_service("mlflow", "prod"), "acme-mlflow-prod");
        assert_eq!(n.service_of_deployed("backend-api"), "backend");
        assert_eq!(n.cluster("staging"), "acme-staging");
        assert_eq!(n.codeartifact_domain("dev"), "acme-dev");
        assert_eq!(n.codeartifact_repository(), "acme-python");
        assert_eq!(n.consolidated_group("dev"), "acme-consolidated-dev");
        assert_eq!(n.site_packages_target("acme-common"), "site-packages:acme-common");
        assert_eq!(n.wheelhouse_target("backend"), "wheels:backend");
        assert_eq!(n.matrix_name("libs/acme-common"), "common");
        assert_eq!(n.matrix_name("services/data-collection"), "data-collection");
        assert_eq!(names().lambda_base_image(), "tradai/lambda-base", "the built-in project");
    }

    #[test]
    fn names_valid_everywhere_they_are_used() {
        for ok in ["health-check", "a", "v2", "dlq_redrive"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["Bad Name", "", "-x", "x-", "a--b", "a.b", "UPPER", "a/b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_lambda_name_too_long_for_a_function_name_is_explained() {
        let n = Names::new("tradai");
        let envs = vec!["dev".to_owned(), "staging".to_owned()];
        assert_eq!(n.lambda_name_problem("health-check", &envs), None);
        let long = "x".repeat(50);
        let why = n.lambda_name_problem(&long, &envs).expect("too long");
        assert!(why.contains(&format!("tradai-{long}-staging")) && why.contains("65 characters"), "{why}");
    }

    #[test]
    fn invalid_facts_are_named_with_the_fix() {
        let e = Deployment::parse(
            "project = \"Trad AI\"\nenvironments = [\"dev\", \"prod\"]\n[trading-services]\n[consolidated-ec2]\ndev = true\nqa = false\n",
        )
        .unwrap_err()
        .to_string();
        for part in ["project `Trad AI`", "no entry for prod", "names qa", "fix the file"] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let e = Deployment::parse("project = \"x\"\nenvironments = []\nextra = 1\n").unwrap_err().to_string();
        assert!(e.contains("not valid TOML") && e.contains("extra"), "{e}");
    }
}
