//! Pushing and reading images through the OCI distribution API, with no Docker daemon:
//! what publishes the images the tool assembles itself (ko and jib do the same).
//!
//! A push goes as the OCI distribution spec lays out, blobs first and the manifest last:
//!
//! 1. For each blob (the config and every layer), `HEAD /v2/<repo>/blobs/<digest>`:
//!    `200` means the repository holds it already.
//! 2. Otherwise, when another repository of the same registry is known to hold it
//!    (learned earlier in this process, or named by the caller), ask for a mount:
//!    `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>`. `201` means mounted,
//!    nothing moves; `202` means the registry started an upload session instead (it
//!    cannot or will not mount), and the upload continues in that session.
//! 3. Otherwise upload: `POST /v2/<repo>/blobs/uploads/` answers `202` with a `Location`
//!    (absolute or relative, possibly with query parameters the registry needs); then
//!    `PUT <location>&digest=<digest>` with the whole blob (a monolithic upload) answers
//!    `201`. Blobs are checked and uploaded on a few threads at once.
//! 4. `PUT /v2/<repo>/manifests/<tag>` with the manifest bytes exactly as given and its
//!    media type as `Content-Type`, once per tag (by digest when there is no tag); the
//!    registry's `Docker-Content-Digest` must equal the manifest's digest.
//!
//! Reading: `GET /v2/<repo>/manifests/<reference>` accepting the four manifest types; an
//! image index (or Docker manifest list) is resolved to the entry for the wanted platform,
//! which is fetched by digest. `GET /v2/<repo>/blobs/<digest>` streams a blob. Every
//! manifest and blob read is checked against its sha256 digest.
//!
//! Authentication (Basic, and the Bearer token flow) is in `auth.rs`. Transport errors,
//! `429` and `5xx` answers are retried with exponential backoff and jitter; an upload is
//! retried from the first byte of the blob, in a new upload session.
//!
//! The push side is in `push.rs`, the read side in `pull.rs`; this module holds what both
//! use: digests, and sending a request with authentication and retries. Uploads are
//! monolithic on purpose: every registry must take them, and ECR mishandles chunked
//! `PATCH` uploads (aws/containers-roadmap#2831).

mod auth;
mod pull;
mod push;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use ureq::http::Response;
use ureq::{Body, RequestBuilder};

pub use auth::{Credentials, docker_config_file, docker_login};
pub(crate) use auth::{Auth, Scope};
pub use pull::Platform;
pub use push::{BlobRef, BlobSource, PushReport};

/// A manifest as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Media types a manifest lookup accepts.
pub(crate) const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// The media type assumed for a manifest that names none.
const DEFAULT_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Any registry speaking the OCI distribution API, addressed as `host[:port]`.
pub struct OciRegistry {
    pub(crate) host: String,
    pub(crate) base_url: String,
    pub(crate) agent: ureq::Agent,
    pub(crate) auth: Auth,
}

/// Whether `host[:port]` is a loopback address: an IP address in 127.0.0.0/8 or `::1`,
/// or `localhost`. These, and the hosts configured as insecure, are the only ones plain
/// HTTP is used for (Docker's own rule). A name is never trusted for its look:
/// `127.example.com` is a host like any other.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl OciRegistry {
    /// A registry at `host[:port]`: HTTP on loopback addresses, HTTPS everywhere else
    /// (see [`OciRegistry::allow_insecure`]). It logs in with the credentials `docker login`
    /// left for the host when the registry asks for them, unless given others with
    /// [`OciRegistry::with_credentials`]; registries that hand out tokens to anonymous
    /// clients (public Docker Hub, GHCR and ECR Public images) need none.
    pub fn new(host: &str) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            bail!("invalid registry `{host}`; use `local`, `ecr` or a host[:port] such as 127.0.0.1:5000");
        }
        let scheme = if is_loopback(host) { "http" } else { "https" };
        // Docker Hub's images are named `docker.io/...`, but its API is elsewhere.
        let api_host = match host {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        // No overall deadline, since a layer upload may take minutes; a connection that
        // stops moving for a minute is a failure (and is retried).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_per_write(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(OciRegistry { host: host.to_owned(), base_url: format!("{scheme}://{api_host}"), agent, auth: Auth::new(None, auth::docker_config_file()) })
    }

    /// Plain HTTP for this registry when `insecure` lists its `host[:port]` (the
    /// `insecure` list of `[registry]` in `xtask.toml`, like Docker's
    /// `insecure-registries`); unchanged otherwise.
    pub fn allow_insecure(mut self, insecure: &[String]) -> Self {
        if insecure.iter().any(|h| h.eq_ignore_ascii_case(&self.host))
            && let Some(rest) = self.base_url.strip_prefix("https://")
        {
            self.base_url = format!("http://{rest}");
        }
        self
    }

    /// Reads Docker's logins from `config_file` instead of Docker's own configuration.
    pub fn with_docker_config(mut self, config_file: std::path::PathBuf) -> Self {
        self.auth = Auth::new(self.auth.credentials().cloned(), Some(config_file));
        self
    }

    /// Whether requests go over plain HTTP.
    pub fn is_plain_http(&self) -> bool {
        self.base_url.starts_with("http://")
    }

    /// The same registry, logging in with `credentials`: Basic auth where the registry
    /// asks for it (ECR, htpasswd), and to obtain tokens where it asks for those.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.auth = Auth::new(Some(credentials), None);
        self
    }

    /// The credentials this client logs in with, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.auth.credentials()
    }

    pub(crate) fn manifest_url(&self, repository: &str, reference: &str) -> String {
        format!("{}/v2/{repository}/manifests/{reference}", self.base_url)
    }

    /// Checks that the registry answers the distribution API.
    pub fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base_url);
        self.retry(&format!("reach registry {}", self.host), || {
            // Any answer below 500 is a registry (a 401 is one asking for a login).
            let resp = self.agent.get(&url).call().map_err(Failure::transport)?;
            match resp.status().as_u16() {
                s if s >= 500 => Err(Failure::Fatal(anyhow::anyhow!("registry {} answered {s} at {url}", self.host))),
                _ => Ok(()),
            }
        })
    }

    /// The manifest `repository:reference` (tag or digest) as stored, `None` when absent.
    /// Its digest is checked: against the reference when that is a digest, and against
    /// the registry's `Docker-Content-Digest` otherwise.
    pub(crate) fn get_manifest(&self, repository: &str, reference: &str) -> Result<Option<Manifest>> {
        let url = self.manifest_url(repository, reference);
        let scope = Scope::pull(repository);
        self.retry(&format!("look up {repository}:{reference} in registry {}", self.host), || {
            let mut resp = self.send(&url, &scope, |auth| {
                let req = self.agent.get(&url).header("Accept", ACCEPT);
                let req = match auth {
                    Some(a) => req.header("Authorization", a),
                    None => req,
                };
                req.call().map_err(Failure::transport)
            })?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Ok(None),
                code => {
                    return Err(crate::distribution::status_failure(&mut resp, format!("look up {repository}:{reference} in registry {} ({code})", self.host)));
                }
            }
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let content_type = header("Content-Type").map(|t| t.split(';').next().unwrap_or("").trim().to_owned()).unwrap_or_default();
            let claimed = header("Docker-Content-Digest");
            let bytes = resp
                .body_mut()
                .read_to_vec()
                .map_err(|e| Failure::transport(anyhow::anyhow!("failed to read the manifest of {repository}:{reference}: {e}")))?;
            let digest = sha256_digest(&bytes);
            let expected = if check_digest(reference).is_ok() { Some(reference.to_owned()) } else { claimed.filter(|c| c.starts_with("sha256:")) };
            if let Some(expected) = expected
                && expected != digest
            {
                return Err(Failure::Fatal(anyhow::anyhow!(
                    "registry {} served {repository}:{reference} as {expected} but its bytes hash to {digest}; the registry's copy is corrupt",
                    self.host
                )));
            }
            let media_type = match content_type.as_str() {
                "" | "application/json" | "text/plain" => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.into()),
                t => t.to_owned(),
            };
            Ok(Some(Manifest { digest, media_type, bytes }))
        })
    }
}

/// Why one attempt at a registry operation failed, and whether another may succeed.
pub(crate) enum Failure {
    /// The network, or the registry saying "later" (429, 5xx): try again, after `wait`
    /// when the registry named one (`Retry-After`).
    Transient { error: anyhow::Error, wait: Option<Duration> },
    /// An answer that another attempt would not change (denied, invalid, corrupt).
    Fatal(anyhow::Error),
}

impl Failure {
    pub(crate) fn transport(error: impl Into<anyhow::Error>) -> Self {
        Failure::Transient { error: error.into(), wait: None }
    }
}

/// Attempts per operation (the first and three retries).
const ATTEMPTS: u32 = 4;
/// The first backoff; it doubles with each retry (0.5 s, 1 s, 2 s before jitter).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` obeyed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", xtask_engine::filecache::hex(&Sha256::digest(bytes)))
}

pub(crate) fn hasher_digest(hasher: Sha256) -> String {
    format!("sha256:{}", xtask_engine::filecache::hex(&hasher.finalize()))
}

/// Checks that `digest` is `sha256:<64 lowercase hex>`, the only algorithm this client
/// verifies.
pub fn check_digest(digest: &str) -> Result<()> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(()),
        _ => bail!("invalid digest `{digest}`; expected sha256:<64 lowercase hex digits>"),
    }
}

/// Backoff before retry number `attempt` (1-based): exponential, with "equal jitter"
/// (half fixed, half random) so that parallel uploads failing together do not retry in
/// lockstep. The randomness is the clock's nanoseconds: enough to spread a few threads,
/// and no `rand` dependency for it.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6));
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let half = base / 2;
    half + half.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

/// A short account of an error answer: the distribution API's `{"errors": [{code, message}]}`,
/// else the start of the body.
pub(crate) fn error_summary(resp: &mut Response<Body>) -> String {
    let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(&text)
        && !e.errors.is_empty()
    {
        return e.errors.iter().map(|e| format!("{} {}", e.code, e.message).trim().to_owned()).collect::<Vec<_>>().join("; ");
    }
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// The failure for an answer `what` did not expect: 429 and 5xx are transient (with the
/// registry's `Retry-After`), anything else is fatal.
pub(crate) fn status_failure(resp: &mut Response<Body>, what: String) -> Failure {
    let status = resp.status().as_u16();
    let wait =
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    let summary = error_summary(resp);
    let error = if summary.is_empty() {
        anyhow!("failed to {what}: answered {status}")
    } else {
        anyhow!("failed to {what}: answered {status}: {summary}")
    };
    if status == 429 || status >= 500 { Failure::Transient { error, wait } } else { Failure::Fatal(error) }
}

/// Adds the `Authorization` header when there is one.
pub(crate) fn authorize<B>(req: RequestBuilder<B>, auth: Option<&str>) -> RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

impl OciRegistry {
    /// Whether `url` is on this registry (credentials go nowhere else: an upload
    /// `Location` or a blob redirect may point at storage elsewhere).
    fn owns(&self, url: &str) -> bool {
        url.strip_prefix(self.base_url.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }

    /// One request, authenticated. `request` builds and sends it given the
    /// `Authorization` value; it may be called twice, since a 401 is answered by
    /// authenticating as the challenge asks and sending again. 429 and 5xx answers come
    /// back as transient failures; every other answer is the caller's to read.
    pub(crate) fn send(
        &self,
        url: &str,
        scope: &Scope,
        mut request: impl FnMut(Option<&str>) -> Result<Response<Body>, Failure>,
    ) -> Result<Response<Body>, Failure> {
        let ours = self.owns(url);
        let mut challenged = false;
        loop {
            let auth = if ours { self.auth.header(&self.agent, &self.host, scope)? } else { None };
            let mut resp = request(auth.as_deref())?;
            let status = resp.status().as_u16();
            if status == 401 && ours && !challenged {
                let challenges: Vec<&str> = resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
                self.auth.authenticate(&self.agent, &self.host, &challenges, scope, auth.as_deref())?;
                challenged = true;
                continue;
            }
            if status == 401 || status == 403 {
                let who = self.auth.credentials().map(|c| format!(" as user `{}`", c.username())).unwrap_or_default();
                return Err(Failure::Fatal(anyhow!(
                    "registry {} refused access{who} ({status}: {}); check the credentials and that they may use this repository",
                    self.host,
                    error_summary(&mut resp)
                )));
            }
            if status == 429 || status >= 500 {
                return Err(status_failure(&mut resp, format!("reach registry {}", self.host)));
            }
            return Ok(resp);
        }
    }

    /// Runs `op` until it succeeds, fails for good, or has failed transiently
    /// [`ATTEMPTS`] times, backing off in between.
    pub(crate) fn retry<T>(&self, what: &str, mut op: impl FnMut() -> Result<T, Failure>) -> Result<T> {
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient { error, wait }) if attempt < ATTEMPTS => {
                    let delay = backoff(attempt).max(wait.unwrap_or_default().min(MAX_RETRY_AFTER));
                    tracing::info!(%what, attempt, error = %format!("{error:#}"), delay_ms = delay.as_millis() as u64, "retrying");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(Failure::Transient { error, .. }) => {
                    bail!("failed to {what} after {attempt} attempts: {error:#}; check that the registry is running and reachable")
                }
            }
        }
    }

    /// The failure for an unexpected answer, naming the registry.
    pub(crate) fn unexpected(&self, resp: &mut Response<Body>, what: &str) -> Failure {
        status_failure(resp, format!("{what} in registry {}", self.host))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::registry::Registry as _;
    use base64::Engine as _;

    #[test]
    fn digests_are_checked_for_form() {
        assert!(check_digest(&sha256_digest(b"x")).is_ok());
        for bad in ["sha256:abc", "sha512:00", "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789", "x"] {
            let err = check_digest(bad).unwrap_err().to_string();
            assert!(err.contains("expected sha256:<64 lowercase hex digits>"), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        for attempt in 1..=3 {
            let base = FIRST_BACKOFF * 2u32.pow(attempt - 1);
            let d = backoff(attempt);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }

    /// A request as the fake server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        authorization: Option<String>,
    }

    type Handler = dyn Fn(&Seen) -> (u16, Vec<(String, String)>, String) + Send + Sync;

    /// A loopback HTTP/1.1 server answering each request with `handler` (one request per
    /// connection), recording what it saw. For the auth and retry paths, which the test
    /// docker-registry cannot show (it has no token server).
    fn fake_server(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve_one(stream, &handler, &log);
            }
        });
        (host, seen)
    }

    fn serve_one(mut stream: TcpStream, handler: &Arc<Handler>, log: &Arc<Mutex<Vec<Seen>>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let (mut authorization, mut length) = (None, 0usize);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let seen = Seen { method, target, authorization };
        log.lock().unwrap().push(seen.clone());
        let (status, headers, body) = handler(&seen);
        let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        stream.write_all(out.as_bytes()).unwrap();
    }

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

    fn manifest_answer(manifest: &str) -> (u16, Vec<(String, String)>, String) {
        (
            200,
            vec![
                ("Content-Type".into(), "application/vnd.oci.image.manifest.v1+json".into()),
                ("Docker-Content-Digest".into(), sha256_digest(manifest.as_bytes())),
            ],
            manifest.into(),
        )
    }

    #[test]
    fn bearer_challenges_get_an_anonymous_token_cached_per_scope() {
        let realm: Arc<Mutex<String>> = Arc::default();
        let r = realm.clone();
        let handler: Arc<Handler> = Arc::new(move |s: &Seen| {
            if s.target.starts_with("/token") {
                return (200, vec![], r#"{"token":"t-1","expires_in":300}"#.into());
            }
            match s.authorization.as_deref() {
                Some("Bearer t-1") => manifest_answer(MANIFEST),
                _ => {
                    let challenge = format!(r#"Bearer realm="{}",service="fake",scope="repository:lib/x:pull""#, r.lock().unwrap());
                    (401, vec![("WWW-Authenticate".into(), challenge)], r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into())
                }
            }
        });
        let (host, seen) = fake_server(handler);
        *realm.lock().unwrap() = format!("http://{host}/token");
        let reg = OciRegistry::new(&host).unwrap();
        for _ in 0..2 {
            let m = reg.fetch_manifest("lib/x", "1.0", "linux/amd64").unwrap();
            assert_eq!(m.bytes, MANIFEST.as_bytes());
        }
        let seen = seen.lock().unwrap().clone();
        let tokens: Vec<&Seen> = seen.iter().filter(|s| s.target.starts_with("/token")).collect();
        assert_eq!(tokens.len(), 1, "one token for both fetches: {seen:?}");
        assert_eq!(tokens[0].target, "/token?service=fake&scope=repository%3Alib%2Fx%3Apull");
        assert_eq!((tokens[0].method.as_str(), tokens[0].authorization.as_deref()), ("GET", None), "anonymous: no credentials configured");
        // 401, token, retry with the token, then the cached token at once.
        let registry_calls: Vec<Option<&str>> =
            seen.iter().filter(|s| s.target.starts_with("/v2/")).map(|s| s.authorization.as_deref()).collect();
        assert_eq!(registry_calls, [None, Some("Bearer t-1"), Some("Bearer t-1")]);
    }

    #[test]
    fn token_servers_get_basic_credentials_and_refusals_name_the_user() {
        let realm: Arc<Mutex<String>> = Arc::default();
        let r = realm.clone();
        let handler: Arc<Handler> = Arc::new(move |s: &Seen| {
            if s.target.starts_with("/token") {
                return match s.authorization.as_deref() {
                    Some(a) if a == Credentials::new("ci", "good").basic_header() => (200, vec![], r#"{"access_token":"t-2"}"#.into()),
                    _ => (401, vec![], r#"{"details":"incorrect username or password"}"#.into()),
                };
            }
            match s.authorization.as_deref() {
                Some("Bearer t-2") => manifest_answer(MANIFEST),
                _ => (
                    401,
                    vec![("WWW-Authenticate".into(), format!(r#"Bearer realm="{}",service="fake""#, r.lock().unwrap()))],
                    String::new(),
                ),
            }
        });
        let (host, _seen) = fake_server(handler);
        *realm.lock().unwrap() = format!("http://{host}/token");
        let good = OciRegistry::new(&host).unwrap().with_credentials(Credentials::new("ci", "good"));
        assert_eq!(good.fetch_manifest("x", "1", "linux/amd64").unwrap().bytes, MANIFEST.as_bytes());
        let bad = OciRegistry::new(&host).unwrap().with_credentials(Credentials::new("ci", "wrong"));
        let err = format!("{:#}", bad.fetch_manifest("x", "1", "linux/amd64").unwrap_err());
        assert!(err.contains("refused user `ci`") && err.contains("check the credentials"), "{err}");
        assert!(!err.contains("wrong"), "the password leaked into: {err}");
    }

    #[test]
    fn server_errors_and_429_are_retried_then_reported() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let handler: Arc<Handler> = Arc::new(move |_s: &Seen| match c.fetch_add(1, Ordering::SeqCst) {
            0 => (503, vec![], "busy".into()),
            1 => (429, vec![("Retry-After".into(), "0".into())], String::new()),
            _ => manifest_answer(MANIFEST),
        });
        let (host, _) = fake_server(handler);
        let reg = OciRegistry::new(&host).unwrap();
        assert!(reg.lookup(&[("x".into(), "1".into())]).unwrap()[0].is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let handler: Arc<Handler> = Arc::new(|_s: &Seen| (500, vec![], r#"{"errors":[{"code":"UNKNOWN","message":"disk full"}]}"#.into()));
        let (host, seen) = fake_server(handler);
        let err = OciRegistry::new(&host).unwrap().lookup(&[("x".into(), "1".into())]).unwrap_err().to_string();
        assert!(err.contains("after 4 attempts") && err.contains("UNKNOWN disk full"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    /// A fake registry that wants `Basic` for `user:secret` on every request.
    fn basic_only_registry() -> (String, Arc<Mutex<Vec<Seen>>>) {
        let handler: Arc<Handler> = Arc::new(|s: &Seen| {
            if s.authorization.as_deref() == Some(Credentials::new("user", "s3cr3t-from-docker").basic_header().as_str()) {
                manifest_answer(MANIFEST)
            } else {
                (401, vec![("WWW-Authenticate".into(), r#"Basic realm="fake""#.into())], String::new())
            }
        });
        fake_server(handler)
    }

    fn docker_config(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, json).unwrap();
        (dir, file)
    }

    #[test]
    fn docker_login_entries_are_used_when_the_registry_asks() {
        let (host, seen) = basic_only_registry();
        let auth = base64::engine::general_purpose::STANDARD.encode("user:s3cr3t-from-docker");
        // `docker login` files the entry under the host as typed; older clients under https://host.
        for key in [host.clone(), format!("https://{host}")] {
            let (_dir, file) = docker_config(&format!(r#"{{"auths": {{"{key}": {{"auth": "{auth}"}}}}}}"#));
            let reg = OciRegistry::new(&host).unwrap().with_docker_config(file);
            assert_eq!(reg.fetch_manifest("x", "1", "linux/amd64").unwrap().bytes, MANIFEST.as_bytes(), "entry under {key}");
            assert_eq!(reg.credentials().map(Credentials::username), Some("user"));
        }
        // The first request of each client goes out without credentials (none are looked up
        // until the registry asks), the answer to the challenge with them.
        let auths: Vec<bool> = seen.lock().unwrap().iter().map(|s| s.authorization.is_some()).collect();
        assert_eq!(auths, [false, true, false, true]);

        // No login for this host: the error says how to make one.
        let (_dir, file) = docker_config(r#"{"auths": {"other.example.com": {"auth": "dTpw"}}}"#);
        let err = format!("{:#}", OciRegistry::new(&host).unwrap().with_docker_config(file).fetch_manifest("x", "1", "linux/amd64").unwrap_err());
        assert!(err.contains(&format!("run `docker login {host}`")), "{err}");
    }

    #[test]
    fn credential_helpers_are_asked_only_when_the_registry_asks() {
        use std::os::unix::fs::PermissionsExt as _;
        let (host, _seen) = basic_only_registry();
        let bin = tempfile::tempdir().unwrap();
        let asked = bin.path().join("asked");
        // The helper protocol: `get` with the server on stdin, JSON on stdout.
        let helper = bin.path().join("docker-credential-xtasktest");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nread server\necho \"$server\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"user\",\"Secret\":\"s3cr3t-from-docker\"}}' \"$server\"\n",
                asked.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
        // SAFETY: nextest runs every test in a process of its own; only PATH gains a folder.
        unsafe { std::env::set_var("PATH", path) };

        let (_dir, file) = docker_config(&format!(r#"{{"credHelpers": {{"{host}": "xtasktest"}}}}"#));
        let reg = OciRegistry::new(&host).unwrap().with_docker_config(file.clone());
        assert_eq!(reg.fetch_manifest("x", "1", "linux/amd64").unwrap().bytes, MANIFEST.as_bytes());
        assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), host, "the helper is asked for the host once");

        // A registry that never asks for a login never starts the helper.
        std::fs::remove_file(&asked).unwrap();
        let open: Arc<Handler> = Arc::new(|_s: &Seen| manifest_answer(MANIFEST));
        let (open_host, _) = fake_server(open);
        let (_dir2, file2) = docker_config(r#"{"credsStore": "xtasktest"}"#);
        let reg = OciRegistry::new(&open_host).unwrap().with_docker_config(file2);
        reg.fetch_manifest("x", "1", "linux/amd64").unwrap();
        assert!(!asked.exists(), "the credential store was asked although the registry wanted no login");
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        assert!(OciRegistry::new("127.0.0.1:5000").unwrap().is_plain_http());
        assert!(!OciRegistry::new("127.evil.com:5000").unwrap().is_plain_http());
        let listed = vec!["harbor.internal:8080".to_owned()];
        assert!(OciRegistry::new("harbor.internal:8080").unwrap().allow_insecure(&listed).is_plain_http());
        assert!(!OciRegistry::new("harbor.internal:8443").unwrap().allow_insecure(&listed).is_plain_http());
    }

    #[test]
    fn credentials_stay_on_the_registry_host() {
        let handler: Arc<Handler> = Arc::new(|_s: &Seen| (200, vec![], String::new()));
        let (host, seen) = fake_server(handler);
        // The client is for another host; a Location pointing here must not get its password.
        let reg = OciRegistry::new("127.0.0.1:9").unwrap().with_credentials(Credentials::new("u", "p"));
        let url = format!("http://{host}/upload");
        let resp = reg.send(&url, &Scope::pull("x"), |auth| authorize(reg.agent.get(&url), auth).call().map_err(Failure::transport));
        assert!(resp.is_ok());
        assert_eq!(seen.lock().unwrap()[0].authorization, None);
        assert!(reg.owns("http://127.0.0.1:9/v2/x") && !reg.owns("http://127.0.0.1:90/v2/x"));
    }
}
