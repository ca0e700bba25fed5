//! CodeArtifact: an authorization token for a domain, and a repository's PyPI endpoint.

use std::time::Duration;

use aws_sdk_codeartifact::types::PackageFormat;

use crate::error::{classify, code_of, message_of};
use crate::{Aws, AwsError, ResourceKind, Result, Secret};

/// A CodeArtifact token: the password for user `aws` on the repository endpoint.
#[derive(Debug, Clone)]
pub struct CodeArtifactToken {
    pub token: Secret,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

impl Aws {
    /// A token for `domain` (GetAuthorizationToken), valid for `duration` (15 minutes to
    /// 12 hours).
    pub fn codeartifact_token(&self, domain: &str, owner: Option<&str>, duration: Duration) -> Result<CodeArtifactToken> {
        let site = self.site("CodeArtifact", "GetAuthorizationToken", "codeartifact");
        let seconds = i64::try_from(duration.as_secs()).unwrap_or(43_200).clamp(900, 43_200);
        let req = self.codeartifact.get_authorization_token().domain(domain).set_domain_owner(owner.map(str::to_owned)).duration_seconds(seconds);
        let out = match self.block(req.send()) {
            Ok(o) => o,
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => return Err(self.not_found(ResourceKind::CodeArtifactDomain, domain, String::new())),
            Err(e) => return Err(classify(&site, e)),
        };
        let token = out.authorization_token().filter(|t| !t.is_empty()).ok_or_else(|| AwsError::Other("CodeArtifact returned an empty token".into()))?;
        Ok(CodeArtifactToken { token: Secret::new(token), expires_at: out.expiration().and_then(crate::unix) })
    }

    /// The PyPI endpoint of `repository` in `domain`
    /// (`https://<domain>-<owner>.d.codeartifact.<region>.amazonaws.com/pypi/<repository>/`).
    pub fn codeartifact_pypi_endpoint(&self, domain: &str, owner: Option<&str>, repository: &str) -> Result<String> {
        let site = self.site("CodeArtifact", "GetRepositoryEndpoint", "codeartifact");
        let req = self
            .codeartifact
            .get_repository_endpoint()
            .domain(domain)
            .set_domain_owner(owner.map(str::to_owned))
            .repository(repository)
            .format(PackageFormat::Pypi);
        let out = match self.block(req.send()) {
            Ok(o) => o,
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {
                // The message says which of the two is missing.
                let kind = if message_of(&e).to_lowercase().contains("domain") { ResourceKind::CodeArtifactDomain } else { ResourceKind::CodeArtifactRepository };
                let name = if kind == ResourceKind::CodeArtifactDomain { domain.to_owned() } else { format!("{domain}/{repository}") };
                return Err(self.not_found(kind, &name, String::new()));
            }
            Err(e) => return Err(classify(&site, e)),
        };
        out.repository_endpoint().map(str::to_owned).ok_or_else(|| AwsError::Other(format!("CodeArtifact returned no endpoint for {domain}/{repository}")))
    }
}
