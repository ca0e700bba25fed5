//! ECR: the registry login token, batched image lookups by tag, retagging an existing
//! manifest without pulling it, and repository presence.

use std::collections::BTreeSet;

use aws_sdk_ecr::types::ImageIdentifier;

use crate::error::{classify, code_of};
use crate::{Aws, AwsError, ResourceKind, Result, Secret};

/// BatchGetImage takes at most 100 image ids per call.
const BATCH_LIMIT: usize = 100;

/// Manifest kinds asked for, so ECR returns each manifest as stored (a multi-platform
/// index stays an index) and a retag keeps the digest.
const ACCEPTED_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Credentials for `docker login`: hand [`EcrToken::password`] to it on stdin.
#[derive(Debug, Clone)]
pub struct EcrToken {
    /// `<account>.dkr.ecr.<region>.amazonaws.com`
    pub registry: String,
    pub username: String,
    pub password: Secret,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// An image found under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub tag: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub manifest: String,
    pub media_type: Option<String>,
}

/// Which of the asked repositories exist.
#[derive(Debug, Clone, Default)]
pub struct RepositoryPresence {
    pub present: BTreeSet<String>,
    pub missing: BTreeSet<String>,
}

impl Aws {
    /// A registry login token (GetAuthorizationToken), valid for 12 hours.
    pub fn authorization_token(&self) -> Result<EcrToken> {
        let site = self.site("ECR", "GetAuthorizationToken", "api.ecr");
        let out = self.block(self.ecr.get_authorization_token().send()).map_err(|e| classify(&site, e))?;
        let data = out.authorization_data().first().ok_or_else(|| AwsError::Other("ECR returned no authorization data".into()))?;
        let encoded = data.authorization_token().ok_or_else(|| AwsError::Other("ECR returned an empty authorization token".into()))?;
        let decoded = aws_smithy_types::base64::decode(encoded).map_err(|_| AwsError::Other("ECR returned an authorization token that is not base64".into()))?;
        let decoded = String::from_utf8(decoded).map_err(|_| AwsError::Other("ECR returned an authorization token that is not text".into()))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| AwsError::Other("ECR returned an authorization token without a user name".into()))?;
        let registry = match data.proxy_endpoint() {
            Some(p) => host_of(p),
            None => return Err(AwsError::Other("ECR returned no registry endpoint".into())),
        };
        Ok(EcrToken {
            registry,
            username: username.to_owned(),
            password: Secret::new(password),
            expires_at: data.expires_at().and_then(crate::unix),
        })
    }

    /// The registry host, `<account>.dkr.ecr.<region>.amazonaws.com`, from the login
    /// token's proxy endpoint (no STS call needed).
    pub fn registry_host(&self) -> Result<String> {
        Ok(self.authorization_token()?.registry)
    }

    /// The images of `repository` tagged with any of `tags`: one BatchGetImage call per
    /// 100 tags. Tags the repository lacks are simply absent from the result; a missing
    /// repository is [`AwsError::NotFound`].
    pub fn batch_get_images(&self, repository: &str, tags: &[String]) -> Result<Vec<Found>> {
        let mut found = Vec::new();
        for chunk in tags.chunks(BATCH_LIMIT) {
            let site = self.site("ECR", "BatchGetImage", "api.ecr");
            let mut req = self.ecr.batch_get_image().repository_name(repository);
            for tag in chunk {
                req = req.image_ids(ImageIdentifier::builder().image_tag(tag).build());
            }
            for m in ACCEPTED_MEDIA_TYPES {
                req = req.accepted_media_types(*m);
            }
            let out = match self.block(req.send()) {
                Ok(o) => o,
                Err(e) if code_of(&e) == Some("RepositoryNotFoundException") => {
                    return Err(self.not_found(ResourceKind::EcrRepository, repository, String::new()));
                }
                Err(e) => return Err(classify(&site, e)),
            };
            let mut failed = BTreeSet::new();
            for failure in out.failures() {
                let code = failure.failure_code().map(|c| c.as_str().to_owned()).unwrap_or_default();
                if code != "ImageNotFound" && code != "ImageTagDoesNotMatchDigest" {
                    tracing::debug!(repository, code, reason = failure.failure_reason().unwrap_or(""), "image lookup failure");
                }
                if let Some(tag) = failure.image_id().and_then(|id| id.image_tag()) {
                    failed.insert(tag.to_owned());
                }
            }
            // ECR answers each tag asked for with an image whose id carries that tag. An
            // image listed under another of its tags (moto does this for images with
            // several tags) is paired with the next tag asked for that neither failed nor
            // was answered yet: answers come in the order asked.
            let mut unanswered: Vec<&String> = chunk.iter().filter(|t| !failed.contains(t.as_str())).collect();
            for image in out.images() {
                let Some(id) = image.image_id() else { continue };
                let Some(digest) = id.image_digest() else { continue };
                let tag = match id.image_tag().and_then(|t| unanswered.iter().position(|u| u.as_str() == t)) {
                    Some(i) => unanswered.remove(i),
                    None if !unanswered.is_empty() => unanswered.remove(0),
                    None => continue,
                };
                found.push(Found {
                    tag: tag.clone(),
                    digest: digest.to_owned(),
                    manifest: image.image_manifest().unwrap_or_default().to_owned(),
                    media_type: image.image_manifest_media_type().map(str::to_owned),
                });
            }
        }
        Ok(found)
    }

    /// Adds `tag` to an image already in `repository` by putting its manifest again
    /// (PutImage): nothing is pulled or uploaded. Returns the image digest. A tag that
    /// already points at this manifest is not an error.
    pub fn put_image_tag(&self, repository: &str, manifest: &str, media_type: Option<&str>, tag: &str) -> Result<String> {
        let site = self.site("ECR", "PutImage", "api.ecr");
        let mut req = self.ecr.put_image().repository_name(repository).image_manifest(manifest).image_tag(tag);
        if let Some(m) = media_type {
            req = req.image_manifest_media_type(m);
        }
        match self.block(req.send()) {
            Ok(out) => Ok(out.image().and_then(|i| i.image_id()).and_then(|id| id.image_digest()).unwrap_or_default().to_owned()),
            Err(e) if code_of(&e) == Some("ImageAlreadyExistsException") => {
                let found = self.batch_get_images(repository, &[tag.to_owned()])?;
                Ok(found.into_iter().next().map(|f| f.digest).unwrap_or_default())
            }
            Err(e) if code_of(&e) == Some("RepositoryNotFoundException") => Err(self.not_found(ResourceKind::EcrRepository, repository, String::new())),
            Err(e) => Err(classify(&site, e)),
        }
    }

    /// Whether `repository` exists.
    pub fn repository_exists(&self, repository: &str) -> Result<bool> {
        Ok(self.describe_repositories(&[repository.to_owned()])?.missing.is_empty())
    }

    /// Which of `names` exist. DescribeRepositories fails as a whole on the first
    /// missing name, so this lists the account's repositories (1000 a page) and compares:
    /// every missing one is named at once.
    pub fn describe_repositories(&self, names: &[String]) -> Result<RepositoryPresence> {
        let site = self.site("ECR", "DescribeRepositories", "api.ecr");
        let mut existing = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .block(self.ecr.describe_repositories().max_results(1000).set_next_token(token.take()).send())
                .map_err(|e| classify(&site, e))?;
            existing.extend(out.repositories().iter().filter_map(|r| r.repository_name().map(str::to_owned)));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        let mut presence = RepositoryPresence::default();
        for n in names {
            if existing.contains(n) {
                presence.present.insert(n.clone());
            } else {
                presence.missing.insert(n.clone());
            }
        }
        Ok(presence)
    }
}

/// `https://host/...` -> `host`.
fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map(|(_, r)| r).unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_scheme_and_path() {
        assert_eq!(host_of("https://123456789012.dkr.ecr.eu-central-1.amazonaws.com"), "123456789012.dkr.ecr.eu-central-1.amazonaws.com");
        assert_eq!(host_of("https://a.b/c"), "a.b");
        assert_eq!(host_of("a.b"), "a.b");
    }
}
