//! The Docker engine as the image plugin sees it: which images exist, and `docker build`
//! of a context sent as a tar stream on stdin.
//!
//! Builds use the classic builder with `--network=none`: nothing reaches the network
//! during a build, so every dependency must already be in the context.

use std::collections::HashSet;
use std::sync::OnceLock;

use anyhow::{Result, bail};
use xtask_engine::{Cmd, ProcessError};

/// A handle on the local Docker engine, remembering the image list for one run.
#[derive(Debug, Default)]
pub struct DockerEngine {
    images: OnceLock<Result<ImageList, String>>,
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

    /// Whether the engine still holds an image id.
    pub fn has_image(&self, id: &str) -> Result<bool> {
        Ok(self.list()?.ids.contains(id))
    }

    /// The id of a `repository:tag` the engine holds, from the run's image list.
    pub fn resolve(&self, reference: &str) -> Result<Option<String>> {
        let reference = if reference.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            reference.to_owned()
        } else {
            format!("{reference}:latest")
        };
        Ok(self.list()?.refs.get(&reference).cloned())
    }

    /// The id of the image the engine holds for `repository@sha256:…`, if any.
    pub fn resolve_digest(&self, repository: &str, digest: &str) -> Result<Option<String>> {
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
        let mut child = Command::new("docker")
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
        let iid = tempfile_path("iid")?;
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
        let _ = std::fs::remove_file(&iid);
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

fn tempfile_path(stem: &str) -> Result<camino::Utf8PathBuf> {
    let dir = std::env::temp_dir();
    let dir = camino::Utf8PathBuf::from_path_buf(dir).map_err(|_| anyhow::anyhow!("temporary directory path is not UTF-8"))?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!("xtask-{stem}-{}-{n}", std::process::id())))
}
