//! The stack graph, as data in one place: the four Pulumi stacks, the three environments,
//! which stacks each stack reads, which images it needs, and what may be done to it.
//!
//! Everything else derives from [`GRAPH`]: the deployment order, the layers of
//! `infra-bootstrap`, the rules of `infra-destroy` and `infra-up`, and the check that the
//! Pulumi programs' `stack_ref("<name>")` calls say the same thing ([`check_programs`]).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A Pulumi stack of the TradAI infrastructure (one Pulumi project under `infra/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stack {
    Persistent,
    Foundation,
    Compute,
    Edge,
}

/// A deployment environment: the Pulumi stack name inside every project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Env {
    Dev,
    Staging,
    Prod,
}

/// A set of container images a stack deploys by reference and so needs in ECR first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageSet {
    /// The 17 Lambda images (`tradai/lambda-<name>`), published by `lambda-bootstrap`.
    Lambda,
    /// The service images (`tradai/<service>`), published by `service-push-all`.
    Service,
}

/// Whether `infra-destroy` may remove a stack's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyPolicy {
    /// Data-bearing: never destroyed by the tool.
    Never,
    /// Rarely destroyed; allowed with confirmation.
    Rarely,
    /// Freely destroyed and redeployed; allowed with confirmation.
    Freely,
}

/// Everything the tool knows about one stack.
#[derive(Debug, Clone, Copy)]
pub struct StackSpec {
    pub stack: Stack,
    /// What the stack holds, for help and plans.
    pub summary: &'static str,
    /// Stacks whose outputs this stack reads through `stack_ref`; they deploy first.
    pub upstreams: &'static [Stack],
    /// Images that must be in ECR before this stack deploys.
    pub images: &'static [ImageSet],
    pub destroy: DestroyPolicy,
    /// A preview that would delete or replace a resource stops `infra-up` unless the
    /// user passes `--allow-replace`.
    pub guard_replacements: bool,
}

/// The graph. Order within the array is the seeds' deployment order; [`deployment_order`]
/// checks it against the dependencies rather than trusting it.
pub const GRAPH: [StackSpec; 4] = [
    StackSpec {
        stack: Stack::Persistent,
        summary: "S3, DynamoDB, ECR, Cognito, CodeArtifact, CloudTrail",
        upstreams: &[],
        images: &[],
        destroy: DestroyPolicy::Never,
        guard_replacements: true,
    },
    StackSpec {
        stack: Stack::Foundation,
        summary: "VPC, subnets, NAT, security groups, VPC endpoints, RDS, SQS, SNS",
        upstreams: &[Stack::Persistent],
        images: &[],
        destroy: DestroyPolicy::Rarely,
        guard_replacements: false,
    },
    StackSpec {
        stack: Stack::Compute,
        summary: "IAM roles, ALB, ECS, Lambda, Step Functions, consolidated EC2",
        upstreams: &[Stack::Persistent, Stack::Foundation],
        images: &[ImageSet::Lambda, ImageSet::Service],
        destroy: DestroyPolicy::Freely,
        guard_replacements: false,
    },
    StackSpec {
        stack: Stack::Edge,
        summary: "API Gateway, WAF, CloudWatch alarms and dashboard",
        upstreams: &[Stack::Persistent, Stack::Foundation, Stack::Compute],
        images: &[],
        destroy: DestroyPolicy::Freely,
        guard_replacements: false,
    },
];

/// A name that is not a stack, environment or layer; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{given}`; valid {kind}s: {valid}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub given: String,
    pub valid: String,
}

impl Stack {
    pub const ALL: [Stack; 4] = [Stack::Persistent, Stack::Foundation, Stack::Compute, Stack::Edge];

    pub fn name(self) -> &'static str {
        match self {
            Stack::Persistent => "persistent",
            Stack::Foundation => "foundation",
            Stack::Compute => "compute",
            Stack::Edge => "edge",
        }
    }

    pub fn spec(self) -> &'static StackSpec {
        // GRAPH holds one entry per stack, in `ALL` order (checked by a test).
        &GRAPH[self as usize]
    }

    /// The Pulumi project name (`name:` in `infra/<stack>/Pulumi.yaml`).
    pub fn project(self) -> String {
        format!("tradai-{}", self.name())
    }

    /// The stacks that read this one's outputs, directly or not.
    pub fn downstreams(self) -> Vec<Stack> {
        let mut out: Vec<Stack> = Vec::new();
        for s in deployment_order() {
            if s.spec().upstreams.iter().any(|u| *u == self || out.contains(u)) {
                out.push(s);
            }
        }
        out
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stack {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stack::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| UnknownName {
            kind: "stack",
            given: s.to_owned(),
            valid: Stack::ALL.map(Stack::name).join(", "),
        })
    }
}

impl Env {
    pub const ALL: [Env; 3] = [Env::Dev, Env::Staging, Env::Prod];

    pub fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Prod => "prod",
        }
    }

    /// Changes to production need an explicit confirmation.
    pub fn is_production(self) -> bool {
        self == Env::Prod
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Env {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Env::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| UnknownName {
            kind: "environment",
            given: s.to_owned(),
            valid: Env::ALL.map(Env::name).join(", "),
        })
    }
}

impl ImageSet {
    pub fn name(self) -> &'static str {
        match self {
            ImageSet::Lambda => "lambda-images",
            ImageSet::Service => "service-images",
        }
    }

    /// The `cargo xtask` command that builds and publishes the set (`--registry <name>`
    /// is added by the caller).
    pub fn publish_command(self) -> &'static str {
        match self {
            ImageSet::Lambda => "lambda-bootstrap",
            ImageSet::Service => "service-push-all",
        }
    }
}

/// The stacks in an order where every stack comes after its upstreams (Kahn's algorithm,
/// ties broken by the order of [`GRAPH`]).
pub fn deployment_order() -> Vec<Stack> {
    let mut done: Vec<Stack> = Vec::new();
    while done.len() < GRAPH.len() {
        let next = GRAPH
            .iter()
            .find(|s| !done.contains(&s.stack) && s.upstreams.iter().all(|u| done.contains(u)))
            .map(|s| s.stack);
        match next {
            Some(s) => done.push(s),
            // A cycle; `graph_is_acyclic` fails the build before this can ship.
            None => break,
        }
    }
    done
}

/// One step of `infra-bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Stack(Stack),
    Images(ImageSet),
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Stack(s) => s.name(),
            Layer::Images(i) => i.name(),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = UnknownName;
    /// Layer names, plus the seed command names of the image layers as synonyms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let synonym = match s {
            "lambda-bootstrap" | "lambdas" => Some(Layer::Images(ImageSet::Lambda)),
            "service-push-all" | "services" => Some(Layer::Images(ImageSet::Service)),
            _ => None,
        };
        let layers = bootstrap_layers();
        synonym.or_else(|| layers.iter().copied().find(|l| l.name() == s)).ok_or_else(|| UnknownName {
            kind: "layer",
            given: s.to_owned(),
            valid: layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// The layers of a full bootstrap: the stacks in deployment order, each preceded by the
/// image sets it needs that no earlier layer published (persistent -> foundation ->
/// Lambda images -> service images -> compute -> edge, as the seeds order it).
pub fn bootstrap_layers() -> Vec<Layer> {
    let mut layers = Vec::new();
    for stack in deployment_order() {
        for set in stack.spec().images {
            if !layers.contains(&Layer::Images(*set)) {
                layers.push(Layer::Images(*set));
            }
        }
        layers.push(Layer::Stack(stack));
    }
    layers
}

/// The layers from `from` (inclusive) to the end.
pub fn layers_from(from: Option<Layer>) -> Vec<Layer> {
    let all = bootstrap_layers();
    match from {
        None => all,
        Some(f) => all.iter().position(|l| *l == f).map(|i| all[i..].to_vec()).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// The check against the Pulumi programs.
// ---------------------------------------------------------------------------------------

/// Upstream names passed as string literals to `stack_ref(...)` anywhere in a stack's
/// program (`infra/<stack>/**/*.py`, skipping virtualenvs, caches and tests: tests may
/// reference anything on purpose).
pub fn stack_ref_literals(stack_dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let call = regex_lite::Regex::new(r#"stack_ref\(\s*["']([A-Za-z0-9_-]+)["']\s*\)"#).map_err(std::io::Error::other)?;
    let mut found = BTreeSet::new();
    let mut dirs = vec![stack_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                if !(name.starts_with('.') || name == "__pycache__" || name == "tests" || name == "node_modules") {
                    dirs.push(path);
                }
            } else if name.ends_with(".py") {
                let text = std::fs::read_to_string(&path)?;
                found.extend(call.captures_iter(&text).map(|c| c[1].to_owned()));
            }
        }
    }
    Ok(found)
}

/// The `name:` of a `Pulumi.yaml`.
fn project_name(pulumi_yaml: &str) -> Option<String> {
    pulumi_yaml.lines().find_map(|l| {
        let rest = l.strip_prefix("name:")?;
        let v = rest.split('#').next()?.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// What is wrong with `infra/<stack>/Pulumi.yaml` under `infra_dir`, if anything: it is
/// missing, names another project, or names no runtime (Pulumi's own words for these
/// name neither the file nor the fix).
pub fn project_file_problem(infra_dir: &Path, stack: Stack) -> Option<String> {
    let shown = format!("infra/{stack}/Pulumi.yaml");
    let Ok(text) = std::fs::read_to_string(infra_dir.join(stack.name()).join("Pulumi.yaml")) else {
        return Some(format!("{shown} is missing"));
    };
    match project_name(&text) {
        Some(n) if n == stack.project() => {
            (!text.lines().any(|l| l.starts_with("runtime:"))).then(|| format!("{shown} names no `runtime:` (python)"))
        }
        other => Some(format!("{shown} names project {:?}, expected {}", other.unwrap_or_default(), stack.project())),
    }
}

/// Every way the programs under `infra_dir` disagree with [`GRAPH`]: a missing program,
/// a wrong project name, a missing `Pulumi.<env>.yaml`, or `stack_ref` calls that differ
/// from the stack's upstreams. Empty when they agree.
pub fn check_programs(infra_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for spec in &GRAPH {
        let stack = spec.stack;
        let dir = infra_dir.join(stack.name());
        let shown = format!("infra/{stack}");
        if !dir.is_dir() {
            problems.push(format!("{shown} does not exist: the Pulumi program of stack {stack} is missing (the graph says it reads {})", names(spec.upstreams)));
            continue;
        }
        problems.extend(project_file_problem(infra_dir, stack));
        for env in Env::ALL {
            if !dir.join(format!("Pulumi.{env}.yaml")).is_file() {
                problems.push(format!("{shown}/Pulumi.{env}.yaml is missing (every stack has dev, staging and prod)"));
            }
        }
        let refs = match stack_ref_literals(&dir) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("cannot read {shown}: {e}"));
                continue;
            }
        };
        let expected: BTreeSet<String> = spec.upstreams.iter().map(|s| s.name().to_owned()).collect();
        let unknown: Vec<&String> = refs.iter().filter(|r| r.parse::<Stack>().is_err()).collect();
        if !unknown.is_empty() {
            problems.push(format!("{shown} calls stack_ref with unknown stack(s) {unknown:?}"));
        }
        if refs != expected {
            let extra: Vec<&String> = refs.difference(&expected).collect();
            let missing: Vec<&String> = expected.difference(&refs).collect();
            problems.push(format!(
                "{shown} reads stacks {refs:?} through stack_ref but the graph (xtask/pulumi/src/graph.rs) says {expected:?}: not in the graph {extra:?}, never read {missing:?}; change the graph or the program so they agree"
            ));
        }
    }
    problems
}

fn names(stacks: &[Stack]) -> String {
    if stacks.is_empty() {
        return "no other stack".into();
    }
    stacks.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_holds_one_entry_per_stack_in_declared_order() {
        for (i, stack) in Stack::ALL.into_iter().enumerate() {
            assert_eq!(GRAPH[i].stack, stack);
            assert_eq!(stack.spec().stack, stack);
        }
    }

    #[test]
    fn graph_is_acyclic_and_upstreams_deploy_first() {
        let order = deployment_order();
        assert_eq!(order.len(), GRAPH.len(), "the stack graph has a cycle");
        for (i, s) in order.iter().enumerate() {
            for u in s.spec().upstreams {
                assert!(order[..i].contains(u), "{s} deploys before its upstream {u}");
            }
        }
        assert_eq!(order, vec![Stack::Persistent, Stack::Foundation, Stack::Compute, Stack::Edge]);
    }

    #[test]
    fn bootstrap_layers_follow_the_seed_order() {
        let names: Vec<&str> = bootstrap_layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["persistent", "foundation", "lambda-images", "service-images", "compute", "edge"]);
    }

    #[test]
    fn layers_from_resumes_at_the_named_layer() {
        let names: Vec<&str> = layers_from(Some("compute".parse().unwrap())).iter().map(|l| l.name()).collect();
        assert_eq!(names, ["compute", "edge"]);
        let names: Vec<&str> = layers_from(Some("lambda-bootstrap".parse().unwrap())).iter().map(|l| l.name()).collect();
        assert_eq!(names, ["lambda-images", "service-images", "compute", "edge"]);
        assert_eq!(layers_from(None).len(), 6);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let e = "network".parse::<Stack>().unwrap_err();
        assert_eq!(e.to_string(), "unknown stack `network`; valid stacks: persistent, foundation, compute, edge");
        let e = "qa".parse::<Env>().unwrap_err();
        assert_eq!(e.to_string(), "unknown environment `qa`; valid environments: dev, staging, prod");
        let e = "images".parse::<Layer>().unwrap_err();
        assert!(e.to_string().contains("persistent, foundation, lambda-images, service-images, compute, edge"), "{e}");
    }

    #[test]
    fn only_persistent_is_never_destroyed_and_guarded() {
        assert_eq!(Stack::Persistent.spec().destroy, DestroyPolicy::Never);
        assert!(Stack::Persistent.spec().guard_replacements);
        for s in [Stack::Foundation, Stack::Compute, Stack::Edge] {
            assert_ne!(s.spec().destroy, DestroyPolicy::Never);
        }
    }

    #[test]
    fn downstreams_are_transitive() {
        assert_eq!(Stack::Foundation.downstreams(), vec![Stack::Compute, Stack::Edge]);
        assert_eq!(Stack::Edge.downstreams(), Vec::<Stack>::new());
        assert_eq!(Stack::Persistent.downstreams(), vec![Stack::Foundation, Stack::Compute, Stack::Edge]);
    }

    fn write_program(infra: &Path, stack: Stack, refs: &[&str]) {
        let dir = infra.join(stack.name());
        std::fs::create_dir_all(dir.join("modules")).unwrap();
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::write(dir.join("Pulumi.yaml"), format!("name: {}\nruntime: python\n", stack.project())).unwrap();
        for env in Env::ALL {
            std::fs::write(dir.join(format!("Pulumi.{env}.yaml")), "config: {}\n").unwrap();
        }
        let body: String = refs.iter().map(|r| format!("{r} = stack_ref( \"{r}\" )\n")).collect();
        std::fs::write(dir.join("__main__.py"), body).unwrap();
        // A test may reference anything; it is not part of the program.
        std::fs::write(dir.join("tests/test_refs.py"), "stack_ref('network')\n").unwrap();
    }

    fn agreeing_programs(infra: &Path) {
        for spec in &GRAPH {
            let refs: Vec<&str> = spec.upstreams.iter().map(|s| s.name()).collect();
            write_program(infra, spec.stack, &refs);
        }
    }

    #[test]
    fn programs_that_match_the_graph_pass() {
        let tmp = tempfile::tempdir().unwrap();
        agreeing_programs(tmp.path());
        assert_eq!(check_programs(tmp.path()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_program_fails_rather_than_passing_vacuously() {
        let tmp = tempfile::tempdir().unwrap();
        agreeing_programs(tmp.path());
        std::fs::remove_dir_all(tmp.path().join("edge")).unwrap();
        let problems = check_programs(tmp.path());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("infra/edge does not exist"), "{problems:?}");
    }

    #[test]
    fn an_extra_or_missing_stack_ref_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        agreeing_programs(tmp.path());
        write_program(tmp.path(), Stack::Foundation, &["persistent", "compute"]);
        write_program(tmp.path(), Stack::Edge, &["compute"]);
        let problems = check_programs(tmp.path());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("infra/foundation") && problems[0].contains("not in the graph [\"compute\"]"), "{problems:?}");
        assert!(problems[1].contains("infra/edge") && problems[1].contains("never read [\"foundation\", \"persistent\"]"), "{problems:?}");
    }

    #[test]
    fn wrong_project_name_and_missing_env_file_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        agreeing_programs(tmp.path());
        std::fs::write(tmp.path().join("compute/Pulumi.yaml"), "name: compute\n").unwrap();
        std::fs::remove_file(tmp.path().join("compute/Pulumi.staging.yaml")).unwrap();
        let problems = check_programs(tmp.path());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("expected tradai-compute"));
        assert!(problems[1].contains("Pulumi.staging.yaml is missing"));
    }

    #[test]
    fn single_quotes_and_modules_count_as_references() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("modules")).unwrap();
        std::fs::write(tmp.path().join("modules/refs.py"), "x = stack_ref('persistent')\ny = stack_ref(name)\n").unwrap();
        std::fs::write(tmp.path().join("__main__.py"), "# stack_ref(\"foundation\")\nstack_ref(\"foundation\")\n").unwrap();
        let refs = stack_ref_literals(tmp.path()).unwrap();
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["foundation", "persistent"]);
    }
}
