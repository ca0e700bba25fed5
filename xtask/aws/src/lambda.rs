//! Lambda: which image a function runs, and pointing it at a new one, waiting until the
//! update is applied.

use std::time::Duration;

use aws_sdk_lambda::types::LastUpdateStatus;

use crate::error::{classify, code_of};
use crate::{Aws, AwsError, ResourceKind, Result, poll_until};

/// The image a container-image function runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionImage {
    /// As configured (`<repo>:<tag>` or `<repo>@sha256:...`).
    pub image_uri: String,
    /// The digest Lambda resolved the image to (`sha256:<hex>`), when it says.
    pub digest: Option<String>,
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUpdate {
    pub function: String,
    pub image: FunctionImage,
}

impl Aws {
    /// The image `function` runs; `None` for a function packaged as a zip. A missing
    /// function is [`AwsError::NotFound`].
    pub fn function_image(&self, function: &str) -> Result<Option<FunctionImage>> {
        let site = self.site("Lambda", "GetFunction", "lambda");
        let out = match self.block(self.lambda.get_function().function_name(function).send()) {
            Ok(o) => o,
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {
                return Err(self.not_found(ResourceKind::LambdaFunction, function, String::new()));
            }
            Err(e) => return Err(classify(&site, e)),
        };
        let Some(code) = out.code() else { return Ok(None) };
        let Some(uri) = code.image_uri() else { return Ok(None) };
        Ok(Some(FunctionImage { image_uri: uri.to_owned(), digest: code.resolved_image_uri().and_then(digest_of) }))
    }

    /// Points `function` at `image_uri` (UpdateFunctionCode) and waits, at most
    /// `timeout`, until Lambda reports the update Successful. A Failed update is an error
    /// with Lambda's reason. An update already in progress (someone else's) is waited
    /// out first, once.
    pub fn update_function_image(&self, function: &str, image_uri: &str, timeout: Duration, poll: Duration) -> Result<FunctionUpdate> {
        let site = self.site("Lambda", "UpdateFunctionCode", "lambda");
        // Boxed: the SDK's error type is large, and it is only ever inspected.
        let send = || self.block(self.lambda.update_function_code().function_name(function).image_uri(image_uri).send()).map_err(Box::new);
        match send() {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {
                return Err(self.not_found(ResourceKind::LambdaFunction, function, String::new()));
            }
            Err(e) if code_of(&e) == Some("ResourceConflictException") => {
                self.wait_for_update(function, timeout, poll)?;
                send().map_err(|e| classify(&site, *e))?;
            }
            Err(e) => return Err(classify(&site, *e)),
        }
        self.wait_for_update(function, timeout, poll)?;
        let image = self.function_image(function)?.ok_or_else(|| AwsError::Other(format!("Lambda function {function} is not a container-image function")))?;
        Ok(FunctionUpdate { function: function.to_owned(), image })
    }

    /// Waits until the function's last update is no longer in progress.
    fn wait_for_update(&self, function: &str, timeout: Duration, poll: Duration) -> Result<()> {
        let site = self.site("Lambda", "GetFunctionConfiguration", "lambda");
        let outcome = poll_until(timeout, poll, || {
            let out = self.block(self.lambda.get_function_configuration().function_name(function).send()).map_err(|e| classify(&site, e))?;
            Ok(match out.last_update_status() {
                Some(LastUpdateStatus::InProgress) => None,
                Some(LastUpdateStatus::Failed) => {
                    let reason = out.last_update_status_reason().unwrap_or("no reason given");
                    Some(Err(AwsError::Other(format!(
                        "the update of Lambda function {function} failed: {reason}; fix the image (see the function's logs) and update it again"
                    ))))
                }
                _ => Some(Ok(())),
            })
        })?;
        match outcome {
            Some(r) => r,
            None => Err(AwsError::Other(format!(
                "Lambda function {function} was still updating after {}s; check it in the Lambda console and retry",
                timeout.as_secs()
            ))),
        }
    }
}

/// `<repo>@sha256:<hex>` -> `sha256:<hex>`.
fn digest_of(resolved: &str) -> Option<String> {
    resolved.rsplit_once('@').map(|(_, d)| d.to_owned()).filter(|d| d.starts_with("sha256:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_taken_from_the_resolved_uri() {
        assert_eq!(digest_of("1.dkr.ecr.x.amazonaws.com/tradai/lambda-a@sha256:ab"), Some("sha256:ab".into()));
        assert_eq!(digest_of("1.dkr.ecr.x.amazonaws.com/tradai/lambda-a:latest"), None);
    }
}
