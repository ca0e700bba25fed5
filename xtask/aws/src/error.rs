//! Typed errors of the AWS facade, each a single line naming the problem and the fix,
//! and the one place where SDK errors are sorted into them.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The kinds of resources the facade looks up; each knows which stack creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    EcrRepository,
    LambdaFunction,
    EcsCluster,
    EcsService,
    AutoScalingGroup,
    CodeArtifactDomain,
    CodeArtifactRepository,
}

impl ResourceKind {
    fn label(self) -> &'static str {
        match self {
            ResourceKind::EcrRepository => "ECR repository",
            ResourceKind::LambdaFunction => "Lambda function",
            ResourceKind::EcsCluster => "ECS cluster",
            ResourceKind::EcsService => "ECS service",
            ResourceKind::AutoScalingGroup => "Auto Scaling group",
            ResourceKind::CodeArtifactDomain => "CodeArtifact domain",
            ResourceKind::CodeArtifactRepository => "CodeArtifact repository",
        }
    }

    /// The Pulumi stack that creates resources of this kind (infra/<stack>).
    pub fn stack(self) -> &'static str {
        match self {
            ResourceKind::EcrRepository | ResourceKind::CodeArtifactDomain | ResourceKind::CodeArtifactRepository => "persistent",
            ResourceKind::LambdaFunction | ResourceKind::EcsCluster | ResourceKind::EcsService | ResourceKind::AutoScalingGroup => "compute",
        }
    }
}

/// Why an AWS call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region is configured; set AWS_REGION (the stacks use eu-central-1), add AWS_REGION to infra/.env, or set `region` in your AWS profile")]
    NoRegion,
    #[error(
        "no usable AWS credentials ({reason}); set AWS_PROFILE (after `aws sso login` or `aws configure`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put AWS_PROFILE in infra/.env"
    )]
    NoCredentials { reason: String },
    #[error("AWS rejected the credentials for {service} {operation} ({code}: {message}); refresh them (`aws sso login`, or new access keys) and retry")]
    BadCredentials { service: &'static str, operation: &'static str, code: String, message: String },
    #[error("AWS denied {service} {operation} ({message}); the credentials in use lack that permission: use a profile with deploy rights (AWS_PROFILE)")]
    AccessDenied { service: &'static str, operation: &'static str, message: String },
    #[error("cannot reach the {service} API at {endpoint} ({reason}); check the network and proxy, or AWS_ENDPOINT_URL if it is set")]
    Unreachable { service: &'static str, endpoint: String, reason: String },
    #[error("{service} {operation} timed out at {endpoint} after retries; check the network and retry")]
    TimedOut { service: &'static str, operation: &'static str, endpoint: String },
    #[error("{service} is throttling {operation} even after retries; wait a minute and retry")]
    Throttled { service: &'static str, operation: &'static str },
    #[error("{} {name} does not exist{}; it is created by the {} stack: `cargo xtask infra-up {} {}`", .kind.label(), .place, .kind.stack(), .kind.stack(), .env)]
    NotFound { kind: ResourceKind, name: String, place: String, env: String },
    #[error("{service} {operation} failed ({code}): {message}")]
    Api { service: &'static str, operation: &'static str, code: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl AwsError {
    /// Whether this error says a resource of `kind` is missing.
    pub fn is_not_found(&self, kind: ResourceKind) -> bool {
        matches!(self, AwsError::NotFound { kind: k, .. } if *k == kind)
    }
}

/// Error codes that mean the credentials themselves are bad or expired.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "AuthFailure",
];

const DENIED_CODES: &[&str] = &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"];

const THROTTLE_CODES: &[&str] = &["Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded"];

/// Where a call went, for messages about reaching it.
#[derive(Debug, Clone)]
pub(crate) struct CallSite {
    pub service: &'static str,
    pub operation: &'static str,
    pub endpoint: String,
}

/// The error code of a service error, if the call got that far.
pub(crate) fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// The message of a service error, if any.
pub(crate) fn message_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> String {
    match err {
        SdkError::ServiceError(e) => e.err().message().unwrap_or("").to_owned(),
        _ => String::new(),
    }
}

/// Sorts an SDK error into the facade's errors. Callers check for their own "not found"
/// codes first; everything else lands here.
pub(crate) fn classify<E>(site: &CallSite, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => {
            return AwsError::TimedOut { service: site.service, operation: site.operation, endpoint: site.endpoint.clone() };
        }
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                return AwsError::TimedOut { service: site.service, operation: site.operation, endpoint: site.endpoint.clone() };
            }
            let reason = one_line(&chain(&err));
            if reason.contains("credential") || reason.contains("identity") {
                return AwsError::NoCredentials { reason };
            }
            return AwsError::Unreachable { service: site.service, endpoint: site.endpoint.clone(), reason: short_reason(&reason) };
        }
        SdkError::ConstructionFailure(_) => {
            let reason = one_line(&chain(&err));
            if reason.contains("credential") || reason.contains("identity") {
                return AwsError::NoCredentials { reason };
            }
            return AwsError::Other(format!("{} {} could not be sent: {reason}", site.service, site.operation));
        }
        _ => {}
    }
    let mut code = code_of(&err).unwrap_or("").to_owned();
    let mut message = one_line(&message_of(&err));
    let raw = match &err {
        SdkError::ServiceError(e) => Some(e.raw()),
        SdkError::ResponseError(e) => Some(e.raw()),
        _ => None,
    };
    let status = raw.map(|r| r.status().as_u16());
    // An error body the SDK could not read for this protocol (a JSON service answered
    // in XML, as some proxies and moto's authentication layer do) still names the code.
    if code.is_empty()
        && let Some((c, m)) = raw.and_then(|r| r.body().bytes()).and_then(|b| code_from_body(&String::from_utf8_lossy(b)))
    {
        code = c;
        if message.is_empty() {
            message = one_line(&m);
        }
    }
    if CREDENTIAL_CODES.contains(&code.as_str()) {
        return AwsError::BadCredentials { service: site.service, operation: site.operation, code, message };
    }
    if DENIED_CODES.contains(&code.as_str()) || status == Some(403) {
        let message = match (message.is_empty(), code.is_empty()) {
            (false, _) => message,
            (true, false) => code,
            (true, true) => "HTTP 403".to_owned(),
        };
        return AwsError::AccessDenied { service: site.service, operation: site.operation, message };
    }
    if THROTTLE_CODES.contains(&code.as_str()) || status == Some(429) {
        return AwsError::Throttled { service: site.service, operation: site.operation };
    }
    let code = match (code.is_empty(), status) {
        (false, _) => code,
        (true, Some(s)) => format!("HTTP {s}"),
        (true, None) => "no response".to_owned(),
    };
    let message = if message.is_empty() {
        match &err {
            // An endpoint that answers with something other than the AWS API (a proxy
            // page, a mock that lacks the operation) leaves no service message.
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                format!("the endpoint {} did not answer as the {} API does", site.endpoint, site.service)
            }
            _ => short_reason(&one_line(&chain(&err))),
        }
    } else {
        message
    };
    AwsError::Api { service: site.service, operation: site.operation, code, message }
}

/// The error code and message of an XML (`<Code>`, `<Message>`) or JSON (`__type`,
/// `message`) error body.
fn code_from_body(body: &str) -> Option<(String, String)> {
    let between = |open: &str, close: &str| -> Option<String> {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].trim().to_owned())
    };
    if let Some(code) = between("<Code>", "</Code>") {
        return Some((code, between("<Message>", "</Message>").unwrap_or_default()));
    }
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let code = field("__type").or_else(|| field("code"))?;
    // `__type` may carry a namespace: `com.amazon.coral.service#UnrecognizedClientException`.
    let code = code.rsplit('#').next().unwrap_or(&code).to_owned();
    Some((code, field("message").or_else(|| field("Message")).unwrap_or_default()))
}

/// The whole source chain of an error, joined with ": ".
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Collapses whitespace so an error never spans lines.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The part of a dispatch failure chain that says what happened (the innermost cause).
fn short_reason(chain: &str) -> String {
    let last = chain.rsplit(": ").find(|p| !p.trim().is_empty()).unwrap_or(chain).trim();
    if last.len() < 8 { chain.to_owned() } else { last.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_stack_and_the_command() {
        let e = AwsError::NotFound { kind: ResourceKind::EcrRepository, name: "tradai/lambda-foo".into(), place: String::new(), env: "dev".into() };
        assert_eq!(
            e.to_string(),
            "ECR repository tradai/lambda-foo does not exist; it is created by the persistent stack: `cargo xtask infra-up persistent dev`"
        );
        let e = AwsError::NotFound { kind: ResourceKind::EcsService, name: "tradai-x-dev".into(), place: " in cluster tradai-dev".into(), env: "dev".into() };
        assert!(e.to_string().contains("in cluster tradai-dev; it is created by the compute stack: `cargo xtask infra-up compute dev`"));
        assert!(e.is_not_found(ResourceKind::EcsService) && !e.is_not_found(ResourceKind::EcsCluster));
    }

    #[test]
    fn every_message_is_one_line() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        for e in [
            AwsError::NoRegion,
            AwsError::NoCredentials { reason: "x".into() },
            AwsError::Unreachable { service: "ECR", endpoint: "http://127.0.0.1:1".into(), reason: "Connection refused".into() },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn error_codes_are_read_from_xml_and_json_bodies() {
        let xml = "<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>";
        assert_eq!(code_from_body(xml), Some(("InvalidClientTokenId".into(), "The security token included in the request is invalid.".into())));
        let json = r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token \"x\" is invalid.","n":3}"#;
        assert_eq!(code_from_body(json), Some(("UnrecognizedClientException".into(), "The security token \"x\" is invalid.".into())));
        assert_eq!(code_from_body("<html>proxy</html>"), None);
    }

    #[test]
    fn short_reason_keeps_the_innermost_cause() {
        assert_eq!(short_reason("dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111)"), "Connection refused (os error 111)");
    }
}
