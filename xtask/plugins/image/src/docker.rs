//! The Docker engine as the image plugin sees it: which images exist, and `docker build`
//! of a context sent as a tar stream on stdin.
//!
//! Builds use the classic builder with `--network=none`: nothing reaches the network
//! during a build, so every dependency must already be in the context.
//!
//! Which images exist is asked of the engine's API over its Unix socket, one
//! `GET /images/{id or reference}/json` per image asked about, whenever `DOCKER_HOST` and
//! the Docker context name a local socket; otherwise (tcp, ssh, a non-default context,
//! no socket) through one `docker image ls` per run. A no-op build asks about some 20
//! images: `docker image ls` costs a CLI process (about 25 ms of CPU) and makes the daemon
//! list every image it holds (50 ms at 145 images, 0.15 s at 674, so the no-op grew with
//! the engine), while one inspect answers in well under a millisecond whatever the engine
//! holds, and answers for the engine as it is now, not as it was at the run's start.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use xtask_engine::{Cmd, ProcessError};

/// A handle on the local Docker engine.
#[derive(Debug, Default)]
pub struct DockerEngine {
    /// The engine's Unix socket when lookups may go straight to it.
    socket: OnceLock<Option<PathBuf>>,
    /// Set when the socket failed to answer: the rest of the run asks the CLI.
    socket_failed: AtomicBool,
    /// Without the socket: the image list, read once per run.
    images: OnceLock<Result<ImageList, String>>,
}

/// What the engine's API said of one image.
enum Lookup {
    Found(String),
    Absent,
}

impl Lookup {
    fn id(self) -> Option<String> {
        match self {
            Lookup::Found(id) => Some(id),
            Lookup::Absent => None,
        }
    }
}

/// The engine's images: every id, every `repository:tag` and every `repository@digest`
/// (the digest a registry gave it) with its id.
#[derive(Debug, Default)]
struct ImageList {
    ids: HashSet<String>,
    refs: std::collections::HashMap<String, String>,
    digests: std::collections::HashMap<String, String>,
}

/// One `docker build`.
pub struct BuildRequest<'a> {
    pub purpose: String,
    pub dockerfile: &'a str,
    pub tags: &'a [String],
    pub build_args: &'a [(String, String)],
    pub platform: &'a str,
    pub context_tar: Vec<u8>,
}

/// The message for an engine that does not answer.
pub fn unreachable_message(detail: &str) -> String {
    let detail = detail.lines().find(|l| !l.trim().is_empty()).unwrap_or("no answer").trim();
    format!(
        "cannot reach the Docker engine ({detail}); start it (e.g. `sudo service docker start`) or set DOCKER_HOST, then run `cargo xtask doctor`"
    )
}

impl DockerEngine {
    pub fn new() -> Self {
        DockerEngine::default()
    }

    /// The engine's images, listed once per run with a single `docker image ls`.
    fn list(&self) -> Result<&ImageList> {
        let result = self.images.get_or_init(|| {
            let out = Cmd::new("docker", "list the images in the Docker engine")
                .args([
                    "image",
                    "ls",
                    "--all",
                    "--no-trunc",
                    "--digests",
                    "--format",
                    "{{.ID}} {{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}",
                ])
                .run();
            match out {
                Ok(o) => {
                    let mut list = ImageList::default();
                    for line in o.stdout.lines() {
                        let mut parts = line.split_whitespace();
                        let (Some(id), reference, digest) = (parts.next(), parts.next(), parts.next()) else {
                            continue;
                        };
                        list.ids.insert(id.to_owned());
                        if let Some(r) = reference.filter(|r| !r.contains("<none>")) {
                            list.refs.insert(r.to_owned(), id.to_owned());
                        }
                        if let Some(d) = digest.filter(|d| !d.contains("<none>")) {
                            list.digests.insert(d.to_owned(), id.to_owned());
                        }
                    }
                    Ok(list)
                }
                Err(ProcessError::Failed { stderr, .. }) => Err(unreachable_message(&stderr)),
                Err(e) => Err(e.to_string()),
            }
        });
        result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The socket lookups go to, if they may (see the module's documentation) and it has
    /// not failed to answer in this run.
    fn socket(&self) -> Option<&PathBuf> {
        if self.socket_failed.load(Ordering::Relaxed) {
            return None;
        }
        self.socket.get_or_init(api::local_socket).as_ref()
    }

    /// The engine's answer for one image (an id or a reference), straight from its API;
    /// `None` when the socket cannot be used, for the caller to ask the CLI instead (which
    /// also words an unreachable engine the usual way).
    fn inspect(&self, name: &str) -> Result<Option<Lookup>> {
        let Some(socket) = self.socket() else { return Ok(None) };
        match api::image_id(socket, name) {
            Ok(Some(id)) => Ok(Some(Lookup::Found(id))),
            Ok(None) => Ok(Some(Lookup::Absent)),
            Err(api::Error::Connect(e)) => {
                tracing::debug!("the Docker socket {} does not answer ({e}); asking the docker CLI", socket.display());
                self.socket_failed.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(api::Error::Engine(e)) => bail!("the Docker engine failed to look up {name}: {e}"),
        }
    }

    /// Whether the engine still holds an image id.
    pub fn has_image(&self, id: &str) -> Result<bool> {
        // Only a whole id can be held (the engine lists nothing else as an id); the API
        // would also resolve a tag or an id prefix, which must not count as the image.
        if !id.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Ok(false);
        }
        if let Some(found) = self.inspect(id)? {
            return Ok(found.id().is_some());
        }
        Ok(self.list()?.ids.contains(id))
    }

    /// The id of a `repository:tag` the engine holds.
    pub fn resolve(&self, reference: &str) -> Result<Option<String>> {
        let reference = if reference.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            reference.to_owned()
        } else {
            format!("{reference}:latest")
        };
        if let Some(found) = self.inspect(&reference)? {
            return Ok(found.id());
        }
        Ok(self.list()?.refs.get(&reference).cloned())
    }

    /// The image this engine holds tagged with exactly `hash` (`<repository>:inputs-<hash>`,
    /// as every build here tags it), as a cache hit: after `cargo clean` or a lost state,
    /// the engine is a cache like a registry.
    pub fn hash_tagged(&self, repository: &str, hash: &xtask_engine::InputHash) -> Result<Option<xtask_engine::RemoteHit>> {
        let reference = format!("{repository}:{}", hash.tag());
        let Some(image_id) = self.resolve(&reference)? else { return Ok(None) };
        let mut detail = std::collections::BTreeMap::new();
        detail.insert("reference".into(), reference.clone());
        let output = xtask_engine::Output { artifact: image_id, detail, ..xtask_engine::Output::default() };
        Ok(Some(xtask_engine::RemoteHit { location: format!("the Docker engine as {reference}"), output }))
    }

    /// `docker tag <id> <reference>`: gives an image one more name.
    pub fn tag(&self, id: &str, reference: &str) -> Result<()> {
        Cmd::new("docker", format!("tag {id} as {reference}")).args(["tag", id, reference]).run()?;
        Ok(())
    }

    /// The id of the image the engine holds for `repository@sha256:…`, if any.
    pub fn resolve_digest(&self, repository: &str, digest: &str) -> Result<Option<String>> {
        if let Some(found) = self.inspect(&format!("{repository}@{digest}"))? {
            return Ok(found.id());
        }
        let list = self.list()?;
        let key = format!("{repository}@{digest}");
        // Docker lists images from Docker Hub's official library without `docker.io/library/`.
        let short = key.strip_prefix("docker.io/library/").or_else(|| key.strip_prefix("docker.io/"));
        Ok(list.digests.get(&key).or_else(|| short.and_then(|k| list.digests.get(k))).cloned())
    }

    /// `docker pull reference`. The registry must answer within `reach` (the pull prints
    /// its first line once the manifest is resolved); after that the download may take up
    /// to `limit`. A pull that cannot start in time is stopped and reported as such.
    pub fn pull(&self, reference: &str, reach: std::time::Duration, limit: std::time::Duration) -> Result<()> {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut command = Command::new("docker");
        // Pulumi's secrets stay with pulumi, as with every `Cmd`.
        for name in xtask_engine::process::withheld() {
            command.env_remove(name);
        }
        let mut child = command
            .args(["pull", reference])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run docker pull: {e}"))?;
        let started = std::time::Instant::now();
        let answered = std::sync::Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().map(|err| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    answered.store(true, Ordering::Relaxed);
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            })
        });
        let stdout = child.stdout.take().map(|out| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                for _ in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    answered.store(true, Ordering::Relaxed);
                }
            })
        });
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            let waited = started.elapsed();
            if (!answered.load(Ordering::Relaxed) && waited > reach) || waited > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let err_text = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        if let Some(h) = stdout {
            let _ = h.join();
        }
        match status {
            Some(s) if s.success() => Ok(()),
            Some(_) => {
                let line = err_text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("docker pull failed").trim();
                if line.contains("Cannot connect to the Docker daemon") {
                    bail!(unreachable_message(line));
                }
                bail!("{}", line.trim_start_matches("Error response from daemon: "))
            }
            None if started.elapsed() > limit => {
                bail!("the pull did not finish within {} s", limit.as_secs())
            }
            None => bail!("the registry did not answer within {} s", reach.as_secs()),
        }
    }

    /// The id of the image `reference` names, asked of the engine (not the run's list).
    pub fn image_id(&self, reference: &str) -> Result<Option<String>> {
        if let Some(found) = self.inspect(reference)? {
            return Ok(found.id());
        }
        match Cmd::new("docker", format!("read the id of {reference}")).args(["image", "inspect", "--format", "{{.Id}}", reference]).run() {
            Ok(o) => Ok(Some(o.stdout.trim().to_owned()).filter(|s| s.starts_with("sha256:"))),
            Err(ProcessError::Failed { stderr, .. }) if stderr.contains("No such image") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The digest a registry gave `reference` when it was pulled (`RepoDigests`).
    pub fn repo_digest(&self, reference: &str, repository: &str) -> Result<Option<String>> {
        let out = Cmd::new("docker", format!("read the registry digest of {reference}"))
            .args(["image", "inspect", "--format", "{{json .RepoDigests}}", reference])
            .run()?;
        let digests: Vec<String> = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
        let short = repository.strip_prefix("docker.io/library/").or_else(|| repository.strip_prefix("docker.io/")).unwrap_or(repository);
        Ok(digests.iter().find_map(|d| {
            let (name, digest) = d.split_once('@')?;
            (name == repository || name == short).then(|| digest.to_owned())
        }))
    }

    /// Runs `docker build` on a tar context; returns the new image id.
    pub fn build(&self, req: &BuildRequest<'_>) -> Result<String> {
        // A private folder of an unpredictable name (0700), removed when this returns:
        // nobody else can plant or read the id file.
        let iid_dir = tempfile::Builder::new().prefix("xtask-build-").tempdir().context("failed to create a temporary folder")?;
        let iid = camino::Utf8PathBuf::from_path_buf(iid_dir.path().join("iid"))
            .map_err(|_| anyhow::anyhow!("the temporary directory path is not UTF-8"))?;
        let mut cmd = Cmd::new("docker", req.purpose.clone()).env("DOCKER_BUILDKIT", "0").args([
            "build",
            "--network=none",
            "--platform",
            req.platform,
            "--file",
            req.dockerfile,
            "--iidfile",
            iid.as_str(),
        ]);
        for t in req.tags {
            cmd = cmd.args(["--tag", t.as_str()]);
        }
        for (k, v) in req.build_args {
            cmd = cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        let cmd = cmd.arg("-").stdin_bytes(req.context_tar.clone());
        let result = cmd.run();
        let id = std::fs::read_to_string(&iid).unwrap_or_default();
        drop(iid_dir);
        match result {
            Ok(_) => {}
            Err(ProcessError::Failed { stderr, stdout, purpose, command, status, .. }) => {
                if stderr.contains("Cannot connect to the Docker daemon") || stderr.contains("connection refused") {
                    bail!(unreachable_message(&stderr));
                }
                // The classic builder prints the failing step on stdout and the error on stderr.
                let joined = format!("{stdout}\n{stderr}");
                let lines: Vec<&str> = joined
                    .lines()
                    .filter(|l| {
                        !l.trim().is_empty()
                            && !l.contains("DEPRECATED")
                            && !l.contains("legacy builder")
                            && !l.contains("BuildKit is currently disabled")
                            && !l.contains("environment-variable")
                    })
                    .collect();
                let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
                bail!("failed to {purpose} (`{command}` exited with {status})\n    {tail}");
            }
            Err(e) => return Err(e.into()),
        }
        let id = id.trim().to_owned();
        if !id.starts_with("sha256:") {
            bail!("docker build reported no image id for {}", req.tags.first().map(String::as_str).unwrap_or("?"));
        }
        Ok(id)
    }
}

/// The engine's HTTP API over its Unix socket, for image lookups.
///
/// Written by hand: ureq, the HTTP client the plugin has, has no Unix-socket transport,
/// and the crates that do (hyperlocal, bollard) bring tokio and hyper for one GET. An
/// HTTP/1.0 request makes the daemon close the connection after the answer, so the body
/// is everything after the headers, with no chunked encoding to decode.
mod api {
    use std::io::{Read as _, Write as _};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// How long one lookup may take before it counts as a failure.
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// Why a lookup got no answer.
    pub enum Error {
        /// The socket cannot be reached or spoken to.
        Connect(String),
        /// The engine answered with an error.
        Engine(String),
    }

    /// The socket the Docker CLI would talk to, when it is a local Unix socket and nothing
    /// (a context, a tcp or ssh DOCKER_HOST) sends the CLI elsewhere.
    pub fn local_socket() -> Option<PathBuf> {
        if !cfg!(unix) || std::env::var_os("DOCKER_CONTEXT").is_some_and(|c| !c.is_empty() && c != "default") {
            return None;
        }
        match std::env::var_os("DOCKER_HOST") {
            Some(host) if !host.is_empty() => return host.to_str()?.strip_prefix("unix://").map(PathBuf::from),
            _ => {}
        }
        let config = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        if let Some(text) = config.and_then(|c| std::fs::read_to_string(c).ok()) {
            // A file the CLI reads but we cannot: let the CLI decide.
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            if value.get("currentContext").and_then(|c| c.as_str()).is_some_and(|c| !c.is_empty() && c != "default") {
                return None;
            }
        }
        Some(PathBuf::from("/var/run/docker.sock"))
    }

    /// The id of the image `name` (an id or a reference) names, or `None` for a 404.
    pub fn image_id(socket: &Path, name: &str) -> Result<Option<String>, Error> {
        let (status, body) = get(socket, &format!("/images/{}/json", escape(name)))?;
        match status {
            200 => {
                let value: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| Error::Engine(format!("unreadable answer: {e}")))?;
                let id = value.get("Id").and_then(|v| v.as_str()).filter(|id| id.starts_with("sha256:"));
                id.map(|id| Some(id.to_owned())).ok_or_else(|| Error::Engine("an answer without an image id".into()))
            }
            404 => Ok(None),
            _ => Err(Error::Engine(message(status, &body))),
        }
    }

    #[cfg(unix)]
    fn get(socket: &Path, path: &str) -> Result<(u16, Vec<u8>), Error> {
        let connect = |e: std::io::Error| Error::Connect(e.to_string());
        let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(connect)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(connect)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(connect)?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).map_err(connect)?;
        // An inspect answer is a few KiB: room for it up front makes it one or two reads.
        let mut answer = Vec::with_capacity(64 * 1024);
        stream.read_to_end(&mut answer).map_err(connect)?;
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| Error::Connect("not an HTTP answer".into()))?;
        let head = String::from_utf8_lossy(&answer[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Connect(format!("not an HTTP status line: {}", head.lines().next().unwrap_or(""))))?;
        Ok((status, answer[split + 4..].to_vec()))
    }

    #[cfg(not(unix))]
    fn get(_socket: &Path, _path: &str) -> Result<(u16, Vec<u8>), Error> {
        Err(Error::Connect("Unix sockets are not available here".into()))
    }

    /// The engine's error message (`{"message": ...}`), or the status.
    fn message(status: u16, body: &[u8]) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        format!("HTTP {status}: {text}")
    }

    /// `name` as one path segment: references keep their `/`, `:` and `@` (the API's
    /// route takes the rest of the path as the name); anything else is percent-encoded.
    fn escape(name: &str) -> String {
        let mut out = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_keep_their_separators_and_nothing_else_raw() {
            assert_eq!(escape("public.ecr.aws/lambda/python@sha256:ab12"), "public.ecr.aws/lambda/python@sha256:ab12");
            assert_eq!(escape("a b?c#d"), "a%20b%3Fc%23d");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;

    /// An engine that never uses the socket: the CLI's answers, to hold the API's to.
    fn through_cli() -> DockerEngine {
        DockerEngine { socket: OnceLock::from(None), ..DockerEngine::default() }
    }

    /// A one-file image made with `docker import` under a tag of this test's own.
    fn import(tag: &str) -> String {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "etc/lookup-test", &b"test\n"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut child = Command::new("docker").args(["import", "-", tag]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker import failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn the_socket_answers_as_the_cli_does_and_falls_back_to_it() {
        let tag = format!("xtask-lookup-test:{}", std::process::id());
        let id = import(&tag);
        let missing = format!("sha256:{}", "0".repeat(64));
        let engines = [
            ("socket", DockerEngine::new()),
            ("cli", through_cli()),
            (
                "dead socket, then cli",
                DockerEngine { socket: OnceLock::from(Some("/nonexistent/docker.sock".into())), ..DockerEngine::default() },
            ),
        ];
        for (how, engine) in &engines {
            assert!(engine.has_image(&id).unwrap(), "{how}: the image exists");
            assert!(!engine.has_image(&missing).unwrap(), "{how}: no such id");
            assert!(!engine.has_image(&tag).unwrap(), "{how}: a tag is not an id");
            assert!(!engine.has_image(&id[..20]).unwrap(), "{how}: nor is an id prefix");
            assert_eq!(engine.resolve(&tag).unwrap().as_deref(), Some(id.as_str()), "{how}");
            assert_eq!(engine.resolve("xtask-lookup-test-nope:1").unwrap(), None, "{how}");
            assert_eq!(engine.image_id(&tag).unwrap().as_deref(), Some(id.as_str()), "{how}");
        }
        assert!(DockerEngine::new().socket().is_some() || std::env::var_os("DOCKER_HOST").is_some(), "the default engine uses the socket");

        // The socket answers for the engine as it is now: an image removed mid-run is gone.
        let socket = DockerEngine::new();
        assert!(socket.has_image(&id).unwrap());
        let rmi = Command::new("docker").args(["rmi", "--force", &tag]).output().unwrap();
        assert!(rmi.status.success(), "{}", String::from_utf8_lossy(&rmi.stderr));
        assert!(!socket.has_image(&id).unwrap(), "the socket still reports a removed image");
        assert!(!through_cli().has_image(&id).unwrap());
    }
}
