//! A blocking facade over the AWS SDK: ECR, Lambda, ECS, Auto Scaling and CodeArtifact,
//! with typed results and one-line errors.
//!
//! This is the only crate of the tool with tokio and the SDK. [`Aws`] owns a
//! current-thread runtime and blocks on each call, so commands stay synchronous and the
//! engine compiles without any of it. Configuration follows the SDK's standard chain
//! (environment, profile, SSO, web identity, container and instance metadata), and the
//! SDK honours `AWS_ENDPOINT_URL` by itself, which is how the tests point it at moto.
//!
//! Secrets (registry and CodeArtifact tokens) come back as [`Secret`], which neither
//! `Debug` nor `Display` reveals; callers hand them to a child's stdin or to the file a
//! command is asked to write, and nowhere else.

mod autoscaling;
mod codeartifact;
mod ecr;
mod ecs;
mod error;
mod lambda;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ecr::config::ProvideCredentials as _;
use aws_smithy_http_client::tls;

pub use autoscaling::{AsgInstance, AutoScalingGroup, InstanceRefresh, RefreshOutcome, RefreshPreferences};
pub use codeartifact::CodeArtifactToken;
pub use ecr::{EcrToken, Found, RepositoryPresence};
pub use ecs::{DeploymentOutcome, DeploymentState, EcsDeployment, EcsEvent, EcsService, EcsServices, TaskImage};
pub use error::{AwsError, ResourceKind};
pub use lambda::{FunctionImage, FunctionUpdate};

pub type Result<T, E = AwsError> = std::result::Result<T, E>;

/// What to connect with, beyond the standard chain.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// A profile to use when `AWS_PROFILE` is not set (the tool reads it from infra/.env).
    pub profile: Option<String>,
    /// A region to use when the chain has none (`AWS_REGION`, the profile's `region`).
    pub region: Option<String>,
    /// The environment the resources belong to, for the fixes that errors suggest.
    pub env: Option<String>,
}

/// A secret string: shown as `***` by `Debug`, with no `Display` at all.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place it is meant to go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A connection to one AWS account and region.
pub struct Aws {
    rt: tokio::runtime::Runtime,
    region: String,
    endpoint: Option<String>,
    env: String,
    ecr: aws_sdk_ecr::Client,
    lambda: aws_sdk_lambda::Client,
    ecs: aws_sdk_ecs::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    codeartifact: aws_sdk_codeartifact::Client,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws").field("region", &self.region).field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// Retries for throttling, 5xx answers and dropped connections: 4 attempts with
/// exponential backoff from 0.5s, the SDK's standard mode.
fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(500))
}

/// Bounds every call: a refused connection fails fast; a hung one is cut after 20s per
/// attempt and 60s in all.
fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

impl Aws {
    /// Loads the configuration through the standard chain, checks that a region and
    /// credentials exist, and builds the service clients. Fails with the fix when either
    /// is missing, before any command does anything.
    pub fn connect(settings: &AwsSettings) -> Result<Aws> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AwsError::Other(format!("cannot start the AWS client runtime: {e}")))?;
        // ring, not aws-lc: no C toolchain and a much shorter build.
        let http = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
        let loader = || {
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone()).retry_config(retry_config()).timeout_config(timeout_config());
            if std::env::var_os("AWS_PROFILE").is_none()
                && let Some(p) = &settings.profile
            {
                loader = loader.profile_name(p);
            }
            loader
        };
        // The chain's region (AWS_REGION, the profile) wins. The fallback is applied by
        // loading again with it, so that every provider built at load time (assume-role,
        // SSO, web identity) sees the same region.
        let mut config = quiet(|| rt.block_on(loader().load()));
        if config.region().is_none()
            && let Some(r) = &settings.region
        {
            config = quiet(|| rt.block_on(loader().region(aws_config::Region::new(r.clone())).load()));
        }
        let Some(region) = config.region().map(ToString::to_string) else { return Err(AwsError::NoRegion) };
        let Some(provider) = config.credentials_provider() else {
            return Err(AwsError::NoCredentials { reason: "no credentials provider is configured".into() });
        };
        if let Err(e) = quiet(|| rt.block_on(provider.provide_credentials())) {
            return Err(AwsError::NoCredentials { reason: error::one_line(&error::chain(&e)) });
        }
        let endpoint = config.endpoint_url().map(str::to_owned);
        tracing::debug!(%region, endpoint = endpoint.as_deref().unwrap_or("default"), "connected to AWS");
        Ok(Aws {
            ecr: aws_sdk_ecr::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            codeartifact: aws_sdk_codeartifact::Client::new(&config),
            rt,
            region,
            endpoint,
            env: settings.env.clone().unwrap_or_else(|| "<env>".to_owned()),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint override (`AWS_ENDPOINT_URL`), if any.
    pub fn endpoint_override(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    fn site(&self, service: &'static str, operation: &'static str, host_prefix: &str) -> error::CallSite {
        let endpoint = match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://{host_prefix}.{}.amazonaws.com", self.region),
        };
        error::CallSite { service, operation, endpoint }
    }

    fn not_found(&self, kind: ResourceKind, name: &str, place: String) -> AwsError {
        AwsError::NotFound { kind, name: name.to_owned(), place, env: self.env.clone() }
    }

    /// Runs one SDK call to completion. At trace level the SDK logs signed requests and
    /// whole responses (registry and CodeArtifact tokens among them), so its log lines
    /// are dropped then; at debug level (`-vv`) and below they pass as configured.
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::TRACE {
            return tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || self.rt.block_on(f));
        }
        self.rt.block_on(f)
    }
}

/// Runs `f` without the SDK's own log lines, unless the level is debug (`-vv`): while
/// the configuration loads, the SDK warns about every source it finds empty (a missing
/// profile file, no instance metadata), and the one-line error made from the outcome
/// already says what is missing; at trace level it would log what it read, secrets
/// included. The runtime is current-thread, so everything `f` drives runs on this
/// thread and sees the scoped dispatcher.
fn quiet<T>(f: impl FnOnce() -> T) -> T {
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::DEBUG {
        return f();
    }
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
}

/// Polls `step` until it returns `Some`, at most until `deadline`; `None` on timeout.
/// Sleeping happens outside the runtime: nothing runs in the background between polls.
pub(crate) fn poll_until<T>(timeout: Duration, interval: Duration, mut step: impl FnMut() -> Result<Option<T>>) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(done) = step()? {
            return Ok(Some(done));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// Seconds since the Unix epoch of an SDK timestamp.
pub(crate) fn unix(dt: &aws_smithy_types::DateTime) -> Option<u64> {
    u64::try_from(dt.secs()).ok()
}

/// Now, in seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn poll_until_stops_at_the_deadline() {
        let started = Instant::now();
        let mut calls = 0;
        let r: Option<()> = poll_until(Duration::from_millis(150), Duration::from_millis(40), || {
            calls += 1;
            Ok(None)
        })
        .unwrap();
        assert!(r.is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!((3..=6).contains(&calls), "{calls} polls");
        let r = poll_until(Duration::from_secs(5), Duration::from_millis(1), || Ok(Some(7))).unwrap();
        assert_eq!(r, Some(7));
    }
}
