//! The deployment facts the Pulumi programs read too (`config.py` reads the same file
//! with `tomllib`): the project name, the environments, the trading services and which
//! environments run the API services on the consolidated EC2 host. One file, built into
//! the tool, so that no name format is written twice.

/// `infra/shared/tradai_infra_shared/deployment.toml`.
pub const FILE: &str = include_str!("../../infra/shared/tradai_infra_shared/deployment.toml");

/// The deployment facts the Pulumi programs read too, from their one file
/// (`infra/shared/tradai_infra_shared/deployment.toml`, built into the binary).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Deployment {
    pub project: String,
    pub trading_services: std::collections::BTreeMap<String, String>,
    pub consolidated_ec2: std::collections::BTreeMap<String, bool>,
}

/// The deployment facts (parsed once; a test checks the file parses and covers every
/// environment).
pub fn deployment() -> &'static Deployment {
    static FACTS: std::sync::OnceLock<Deployment> = std::sync::OnceLock::new();
    FACTS.get_or_init(|| toml::from_str(FILE).expect("deployment.toml is valid (checked by a test)"))
}

/// The project name every resource name starts with.
pub fn project_name() -> &'static str {
    &deployment().project
}
