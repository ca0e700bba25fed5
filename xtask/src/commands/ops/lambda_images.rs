//! `lambda-check-images`: which Lambda images ECR holds for a tag.
//!
//! [`check_lambda_images`] is the reusable check: one row per `lambdas/<name>/Dockerfile`
//! (not `base`), from ECR's BatchGetImage. ECR has no call that spans repositories, so it
//! makes one call per repository (each call covers up to 100 tags), back to back. Its
//! [`ImageCheck`] says what is present with which digest and what is missing;
//! [`ImageCheck::ensure_complete`] is the fail-fast error with the fix, and
//! [`ImageCheck::digests`] is the `{repository: digest}` map the compute program pins
//! Lambda functions to (infra/compute/modules/image_manifest.py).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use xtask_aws::{Aws, ResourceKind};

use super::{Env, EnvArg, connect, table};
use crate::project::Project;

#[derive(Debug, Args)]
pub struct LambdaCheckImagesArgs {
    #[command(flatten)]
    pub env: EnvArg,
    /// The tag to look for (a version such as v1.2.3, or latest)
    #[arg(long, default_value = "latest")]
    pub tag: String,
    /// Print one JSON object on stdout (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
}

/// Whether one Lambda image is in ECR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ImageState {
    Present {
        digest: String,
    },
    Missing,
    /// The ECR repository itself does not exist.
    NoRepository,
}

#[derive(Debug, Clone, Serialize)]
pub struct LambdaImage {
    /// The folder under lambdas/.
    pub name: String,
    /// `tradai/lambda-<name>`.
    pub repository: String,
    #[serde(flatten)]
    pub state: ImageState,
}

/// The result of checking every Lambda image for one tag.
#[derive(Debug, Clone, Serialize)]
pub struct ImageCheck {
    pub tag: String,
    pub images: Vec<LambdaImage>,
    /// BatchGetImage calls made (one per repository).
    pub api_calls: usize,
}

impl ImageCheck {
    pub fn missing(&self) -> Vec<&LambdaImage> {
        self.images.iter().filter(|i| !matches!(i.state, ImageState::Present { .. })).collect()
    }

    /// Repository -> digest of every present image, for the compute stack's image
    /// manifest (`{"images": {...}}`).
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.images
            .iter()
            .filter_map(|i| match &i.state {
                ImageState::Present { digest } => Some((i.repository.clone(), digest.clone())),
                _ => None,
            })
            .collect()
    }

    /// Ok when every image is present; otherwise one line naming every missing image
    /// and the command that fixes it (repositories first, if some do not exist).
    pub fn ensure_complete(&self, env: Env) -> Result<()> {
        let missing = self.missing();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|i| i.name.as_str()).collect();
        let no_repo: Vec<&str> = missing.iter().filter(|i| i.state == ImageState::NoRepository).map(|i| i.repository.as_str()).collect();
        let mut fix = String::new();
        if !no_repo.is_empty() {
            fix.push_str(&format!(
                "the ECR repositories {} do not exist: create them with `cargo xtask infra-up persistent {env}`, then ",
                no_repo.join(", ")
            ));
        }
        fix.push_str("build and push the images with `cargo xtask lambda-bootstrap --registry ecr`");
        bail!(
            "{} of {} Lambda images are missing from ECR for tag {}: {}; {fix}",
            missing.len(),
            self.images.len(),
            self.tag,
            names.join(", ")
        )
    }
}

/// Checks every Lambda image of `project` for `tag` in the ECR registry `aws` points at.
pub fn check_lambda_images(project: &Project, aws: &Aws, tag: &str) -> Result<ImageCheck> {
    let tags = [tag.to_owned()];
    let mut images = Vec::new();
    let mut api_calls = 0;
    for lambda in &project.repository()?.lambdas {
        let (name, repository) = (lambda.name.clone(), lambda.image.clone());
        api_calls += 1;
        let state = match aws.batch_get_images(&repository, &tags) {
            Ok(found) => match found.into_iter().find(|f| f.tag == tag) {
                Some(f) => ImageState::Present { digest: f.digest },
                None => ImageState::Missing,
            },
            Err(e) if e.is_not_found(ResourceKind::EcrRepository) => ImageState::NoRepository,
            Err(e) => return Err(e.into()),
        };
        images.push(LambdaImage { name, repository, state });
    }
    Ok(ImageCheck { tag: tag.to_owned(), images, api_calls })
}

impl LambdaCheckImagesArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let env = self.env.env;
        let aws = connect(project, env)?;
        let check = check_lambda_images(project, &aws, &self.tag)?;
        let rows: Vec<Vec<String>> = check
            .images
            .iter()
            .map(|i| {
                let (state, digest) = match &i.state {
                    ImageState::Present { digest } => ("present", digest.clone()),
                    ImageState::Missing => ("missing", "-".to_owned()),
                    ImageState::NoRepository => ("no repository", "-".to_owned()),
                };
                vec![i.name.clone(), i.repository.clone(), self.tag.clone(), state.to_owned(), digest]
            })
            .collect();
        let present = check.images.len() - check.missing().len();
        eprint!("{}", table(&["lambda", "repository", "tag", "status", "digest"], &rows));
        eprintln!("{present} of {} present ({} BatchGetImage calls, one per repository)", check.images.len(), check.api_calls);
        if self.json {
            let mut stdout = std::io::stdout().lock();
            // `manifest` is the image manifest the compute stack reads (TRADAI_IMAGE_MANIFEST).
            let v = serde_json::json!({
                "tag": check.tag,
                "images": check.images,
                "api_calls": check.api_calls,
                "manifest": { "images": check.digests() },
            });
            serde_json::to_writer_pretty(&mut stdout, &v)?;
            writeln!(stdout)?;
        }
        check.ensure_complete(env)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, state: ImageState) -> LambdaImage {
        LambdaImage { name: name.into(), repository: crate::project::lambda_image(name), state }
    }

    #[test]
    fn complete_check_passes_and_lists_digests() {
        let c =
            ImageCheck { tag: "latest".into(), images: vec![image("a", ImageState::Present { digest: "sha256:1".into() })], api_calls: 1 };
        assert!(c.ensure_complete(Env::Dev).is_ok());
        assert_eq!(c.digests(), BTreeMap::from([("tradai/lambda-a".to_owned(), "sha256:1".to_owned())]));
    }

    #[test]
    fn missing_images_and_repositories_name_their_fixes() {
        let c = ImageCheck {
            tag: "v1.2.3".into(),
            images: vec![
                image("a", ImageState::Present { digest: "sha256:1".into() }),
                image("b", ImageState::Missing),
                image("c", ImageState::NoRepository),
            ],
            api_calls: 3,
        };
        let e = c.ensure_complete(Env::Staging).unwrap_err().to_string();
        assert_eq!(
            e,
            "2 of 3 Lambda images are missing from ECR for tag v1.2.3: b, c; the ECR repositories tradai/lambda-c do not exist: create them with `cargo xtask infra-up persistent staging`, then build and push the images with `cargo xtask lambda-bootstrap --registry ecr`"
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["images"][0]["state"], "present");
        assert_eq!(json["images"][2]["state"], "no-repository");
    }
}
