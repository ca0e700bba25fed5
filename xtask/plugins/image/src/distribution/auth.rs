//! Registry authentication: the `WWW-Authenticate` challenge a registry answers 401 with,
//! Basic credentials (ECR, htpasswd registries), and the Docker token flow (Docker Hub,
//! GHCR, public.ecr.aws), with tokens cached per scope.
//!
//! The token flow (distribution's "Token Authentication Specification"): the registry
//! answers `401` with `WWW-Authenticate: Bearer realm="<url>",service="<name>",scope="<scope>"`;
//! the client asks `GET <realm>?service=<name>&scope=<scope>&scope=...` (with Basic
//! credentials when it has them, anonymously otherwise) and receives
//! `{"token": ..., "access_token": ..., "expires_in": <s, default 60>}`; it then sends
//! `Authorization: Bearer <token>` to the registry. A token covers the scopes it was
//! issued for, so tokens are cached by the exact scope set asked for.
//!
//! Credentials are the caller's (ECR's login token) or else the ones `docker login` left in
//! Docker's configuration (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `auths` entries and credential helpers (`credsStore`, `credHelpers`). Those are read
//! only when the registry first answers 401, so an anonymous registry never costs a
//! credential helper's process.
//!
//! Credentials never appear in messages or logs: [`Credentials`] prints its user name only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use base64::Engine as _;
use serde::Deserialize;

use super::{Failure, error_summary, status_failure};
use super::is_loopback;

/// A user name and password for a registry (Basic auth, or to obtain tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { username: username.into(), password: password.into() }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// The `Authorization` header value (RFC 7617): `Basic base64(user:password)`.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

/// The access a request needs, as token scopes: `repository:<name>:<actions>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope(BTreeSet<String>);

impl Scope {
    /// Reading `repository`.
    pub(crate) fn pull(repository: &str) -> Self {
        Scope([format!("repository:{repository}:pull")].into())
    }

    /// Writing `repository`, and reading each of `mount_from` to mount blobs from it.
    pub(crate) fn push<'a>(repository: &str, mount_from: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set: BTreeSet<String> = [format!("repository:{repository}:pull,push")].into();
        set.extend(mount_from.into_iter().filter(|r| *r != repository).map(|r| format!("repository:{r}:pull")));
        Scope(set)
    }

    /// The cache key of tokens issued for this scope.
    fn key(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// One challenge of a `WWW-Authenticate` header: the scheme (lowercase) and its
/// parameters (names lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `WWW-Authenticate` values (RFC 9110 §11.6.1): each holds one or more challenges,
/// `scheme param=value, param="quoted, value", other-scheme ...`.
///
/// Hand-written because the crates that parse this header (`www-authenticate`) target
/// the old `hyper` 0.x header types; the grammar is small.
pub(crate) fn parse_challenges(values: &[&str]) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for value in values {
        let chars: Vec<char> = value.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                i += 1;
            }
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' && chars[i] != '=' {
                i += 1;
            }
            if start == i {
                // A stray `=` (token68 padding): skip it.
                i += 1;
                continue;
            }
            let token: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '=' {
                // `name=value`: a parameter of the current challenge.
                i = j + 1;
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                let mut val = String::new();
                if i < chars.len() && chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        val.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                        val.push(chars[i]);
                        i += 1;
                    }
                }
                if let Some(c) = out.last_mut() {
                    c.params.insert(token.to_ascii_lowercase(), val);
                }
            } else {
                out.push(Challenge { scheme: token.to_ascii_lowercase(), params: BTreeMap::new() });
            }
        }
    }
    out
}

/// How a registry wants to be authenticated, learned from its first challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    /// Not asked yet: send Basic credentials when configured, else nothing.
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct Token {
    value: String,
    expires: Instant,
}

/// Where Docker keeps its client configuration: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (the Docker CLI's own rule).
pub fn docker_config_file() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// The login `docker login <host>` stored for `host`, if any. `docker login` files
/// entries under the host as typed (`ghcr.io`, `127.0.0.1:5000`), older clients under
/// `https://<host>`, and Docker Hub under its index URL; each is tried in turn.
/// Problems are warnings, not errors: the registry's 401 then says what is missing.
pub fn docker_login(config_file: &std::path::Path, host: &str) -> Option<Credentials> {
    let bytes = std::fs::read(config_file).ok()?;
    let mut keys = Vec::new();
    if matches!(host, "registry-1.docker.io" | "docker.io" | "index.docker.io") {
        keys.push("https://index.docker.io/v1/".to_owned());
    }
    keys.extend([host.to_owned(), format!("https://{host}"), format!("http://{host}")]);
    for key in &keys {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        match docker_credential::get_credential_from_reader(bytes.as_slice(), key) {
            Ok(DockerCredential::UsernamePassword(user, secret)) => return Some(Credentials::new(user, secret)),
            Ok(DockerCredential::IdentityToken(_)) => {
                tracing::warn!(
                    registry = host,
                    "the Docker login for this registry is an identity token (an OAuth refresh token), which this tool does not use; log in with a user name and password or access token"
                );
                return None;
            }
            // No entry under this key (a credential store answers "not found" as a failure).
            Err(E::NoCredentialConfigured | E::HelperFailure { .. }) => continue,
            Err(E::ConfigReadError | E::ConfigNotFound) => {
                tracing::warn!(file = %config_file.display(), "Docker's configuration is not valid JSON; its registry logins are ignored");
                return None;
            }
            // The helper's output is not echoed: it is the one place a secret could be.
            Err(e @ (E::HelperCommunicationError | E::MalformedHelperResponse | E::CredentialDecodingError | E::CredentialMismatchError)) => {
                tracing::warn!(registry = host, problem = %e, "the Docker login for this registry cannot be read");
                return None;
            }
        }
    }
    None
}

/// Authentication state of one registry client.
pub(crate) struct Auth {
    /// The caller's credentials (ECR's login token); they win over Docker's.
    credentials: Option<Credentials>,
    /// Docker's configuration file, read on the first 401 when there are no credentials.
    docker_config: Option<PathBuf>,
    from_docker: OnceLock<Option<Credentials>>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, Token>>,
}

impl Auth {
    pub(crate) fn new(credentials: Option<Credentials>, docker_config: Option<PathBuf>) -> Self {
        Auth {
            credentials,
            docker_config,
            from_docker: OnceLock::new(),
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::default(),
        }
    }

    /// The credentials in use: the caller's, else Docker's once they have been looked up.
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref().or_else(|| self.from_docker.get().and_then(Option::as_ref))
    }

    /// The credentials to answer a challenge with, looking Docker's up the first time.
    fn login(&self, host: &str) -> Option<&Credentials> {
        self.credentials.as_ref().or_else(|| {
            self.from_docker.get_or_init(|| self.docker_config.as_deref().and_then(|file| docker_login(file, host))).as_ref()
        })
    }

    fn scheme(&self) -> Scheme {
        self.scheme.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `Authorization` value for a request needing `scope`, fetching a token first
    /// when the registry is known to use tokens and none is cached for this scope.
    pub(crate) fn header(&self, agent: &ureq::Agent, host: &str, scope: &Scope) -> Result<Option<String>, Failure> {
        match self.scheme() {
            // Before any challenge only the caller's credentials go out (ECR expects them);
            // Docker's are looked up when the registry asks.
            Scheme::Unknown => Ok(self.credentials.as_ref().map(Credentials::basic_header)),
            Scheme::Basic => Ok(self.login(host).map(Credentials::basic_header)),
            Scheme::Bearer { realm, service } => {
                let key = scope.key();
                if let Some(t) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
                    && t.expires > Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self.fetch_token(agent, host, &realm, service.as_deref(), &scope.0)?;
                let header = format!("Bearer {}", token.value);
                self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// Answers a 401 to a request that carried `sent` (its `Authorization`, if any):
    /// learns the scheme from the challenges and, for tokens, fetches a fresh one
    /// covering `scope` and whatever the challenge asked for.
    pub(crate) fn authenticate(
        &self,
        agent: &ureq::Agent,
        host: &str,
        challenges: &[&str],
        scope: &Scope,
        sent: Option<&str>,
    ) -> Result<(), Failure> {
        let parsed = parse_challenges(challenges);
        if let Some(bearer) = parsed.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer.params.get("realm").cloned().ok_or_else(|| {
                Failure::Fatal(anyhow!(
                    "registry {host} asked for a token without saying where to get one (no realm in `{}`)",
                    challenges.join("; ")
                ))
            })?;
            let service = bearer.params.get("service").cloned();
            let mut scopes = scope.0.clone();
            if let Some(asked) = bearer.params.get("scope") {
                scopes.extend(asked.split_whitespace().map(str::to_owned));
            }
            let token = self.fetch_token(agent, host, &realm, service.as_deref(), &scopes)?;
            *self.scheme.lock().unwrap_or_else(|e| e.into_inner()) = Scheme::Bearer { realm, service };
            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(scope.key(), token);
            return Ok(());
        }
        if parsed.iter().any(|c| c.scheme == "basic") {
            let Some(creds) = self.login(host) else {
                return Err(Failure::Fatal(anyhow!(
                    "registry {host} asks for a user name and password and none is configured; run `docker login {host}` (for ECR the AWS login provides them)"
                )));
            };
            let mut scheme = self.scheme.lock().unwrap_or_else(|e| e.into_inner());
            // A refusal only when the password went out: requests started on other
            // threads before the first challenge was answered went without one.
            if *scheme == Scheme::Basic && sent.is_some() {
                return Err(Failure::Fatal(anyhow!(
                    "registry {host} refused the password of user `{}`; check the credentials (an ECR login token lasts 12 hours)",
                    creds.username
                )));
            }
            *scheme = Scheme::Basic;
            return Ok(());
        }
        Err(Failure::Fatal(anyhow!(
            "registry {host} answered 401 without a challenge this client understands (`{}`); only Basic and Bearer token auth are supported",
            challenges.join("; ")
        )))
    }

    /// `GET <realm>?service=..&scope=..`, with Basic credentials when configured and the
    /// realm is HTTPS (or loopback); anonymous otherwise.
    fn fetch_token(
        &self,
        agent: &ureq::Agent,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
    ) -> Result<Token, Failure> {
        let secure =
            realm.starts_with("https://") || realm.strip_prefix("http://").is_some_and(|r| is_loopback(r.split('/').next().unwrap_or(r)));
        if !secure && !realm.starts_with("http://") {
            return Err(Failure::Fatal(anyhow!("registry {host} named a token server that is not an http(s) URL: `{realm}`")));
        }
        let mut req = agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scopes {
            req = req.query("scope", s);
        }
        // Credentials go to the token server only over TLS (or to a loopback test server).
        let creds = self.login(host).filter(|_| secure);
        if let Some(c) = creds {
            req = req.header("Authorization", c.basic_header());
        }
        let mut resp = req.call().map_err(|e| Failure::transport(anyhow!("token server {realm} of registry {host}: {e}")))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let who = creds.map(|c| format!("user `{}`", c.username)).unwrap_or_else(|| "anonymous access".into());
            return Err(Failure::Fatal(anyhow!(
                "the token server of registry {host} refused {who} to {} ({status}: {}); check the credentials",
                scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                error_summary(&mut resp)
            )));
        }
        if status != 200 {
            return Err(status_failure(&mut resp, format!("get a token for registry {host} from {realm}")));
        }
        #[derive(Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let text =
            resp.body_mut().read_to_string().map_err(|e| Failure::transport(anyhow!("token server {realm} of registry {host}: {e}")))?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| Failure::Fatal(anyhow!("the token server of registry {host} answered something that is not a token: {e}")))?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::Fatal(anyhow!("the token server of registry {host} answered without a token")))?;
        // The spec's default lifetime is 60 s; renew a little early so that a request
        // never leaves with a token about to lapse.
        let life = Duration::from_secs(answer.expires_in.unwrap_or(60).saturating_sub(10).max(5));
        Ok(Token { value, expires: Instant::now() + life })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn docker_hub_challenge_keeps_commas_inside_quotes() {
        let c = parse_challenges(&[
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:samalba/my-app:pull,push"),
                ("service", "registry.docker.io")
            ]
        );
    }

    #[test]
    fn ghcr_and_ecr_public_challenges() {
        let c = parse_challenges(&[r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#]);
        assert_eq!(c[0].params["realm"], "https://ghcr.io/token");
        assert_eq!(c[0].params["service"], "ghcr.io");
        let c = parse_challenges(&[r#"Bearer realm="https://public.ecr.aws/token/",service="public.ecr.aws",scope="aws""#]);
        assert_eq!(c[0].params["realm"], "https://public.ecr.aws/token/");
        assert_eq!(c[0].params["scope"], "aws");
    }

    #[test]
    fn ecr_basic_challenge_and_several_challenges_in_one_header() {
        let c =
            parse_challenges(&[r#"Basic realm="https://123456789012.dkr.ecr.eu-central-1.amazonaws.com/",service="ecr.amazonaws.com""#]);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["service"], "ecr.amazonaws.com");

        let c = parse_challenges(&[r#"Basic realm="x", BEARER Realm = "https://t/\"q\"", error=invalid_token"#, "Negotiate abc=="]);
        let schemes: Vec<&str> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
        assert_eq!(params(&c[0]), [("realm", "x")]);
        assert_eq!(params(&c[1]), [("error", "invalid_token"), ("realm", "https://t/\"q\"")]);
    }

    #[test]
    fn basic_header_is_rfc7617_and_debug_hides_the_password() {
        // The example of RFC 7617 §2.
        let c = Credentials::new("Aladdin", "open sesame");
        assert_eq!(c.basic_header(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let shown = format!("{c:?}");
        assert!(shown.contains("Aladdin") && !shown.contains("sesame"), "{shown}");
    }

    #[test]
    fn push_scope_reads_mount_sources_and_not_itself() {
        let s = Scope::push("b", ["a", "b", "c/d"]);
        assert_eq!(s.key(), "repository:a:pull repository:b:pull,push repository:c/d:pull");
        assert_eq!(Scope::pull("x").key(), "repository:x:pull");
    }
}
