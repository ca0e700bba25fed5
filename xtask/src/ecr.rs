//! Amazon ECR as a [`Registry`]: lookups and retags through the ECR API, pushes through
//! `docker push` after a `docker login` fed the authorization token on stdin.

use anyhow::{Result, bail};
use xtask_image::registry::{Manifest, Registry};

use crate::project::Project;

pub struct EcrRegistry;

impl EcrRegistry {
    pub fn connect(_project: &Project) -> Result<Self> {
        bail!("--registry ecr is not available in this build; use `local` or a host[:port] registry")
    }
}

impl Registry for EcrRegistry {
    fn name(&self) -> String {
        "ecr".into()
    }
    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{repository}:{tag}")
    }
    fn lookup(&self, _wanted: &[(String, String)]) -> Result<Vec<Option<Manifest>>> {
        bail!("ECR is not available in this build")
    }
    fn put_tag(&self, _repository: &str, _manifest: &Manifest, _tag: &str) -> Result<()> {
        bail!("ECR is not available in this build")
    }
}
