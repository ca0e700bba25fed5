//! `publish-all-libs <env>`: builds the libraries other repositories install (the seeds
//! publish tradai-strategy, for the tradai-strategies repository) through the build
//! engine, so an unchanged library is not rebuilt, and uploads each wheel to the package
//! index with the upload API twine uses (a multipart POST, `:action=file_upload`).
//!
//! The index is the environment's CodeArtifact repository, or, when `TRADAI_PUBLISH_URL`
//! is set, that URL with `TRADAI_PUBLISH_USER` (default `aws`) and `TRADAI_PUBLISH_TOKEN`
//! (or `TRADAI_PUBLISH_PASSWORD`). A version already on the index is reported and left
//! alone: indexes refuse to replace a published file.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use camino::Utf8PathBuf;
use clap::Args;
use sha2::Digest as _;
use xtask_aws::Secret;
use xtask_engine::plan::{closure, make_plan};
use xtask_engine::{ExecOptions, Progress, Status, Target, execute};
use xtask_wheel::WheelBuilder;

use super::codeartifact::{PackageIndex, TOKEN_USER, codeartifact_index};
use super::{ChangeArgs, Env, confirm, connect, wheel_metadata};
use crate::project::Project;

/// The libraries published for use outside this repository (seeds: publish-libs.yml).
pub const PUBLISHED_LIBS: &[&str] = &["tradai-strategy"];

/// A token for one publish run needs minutes, not CodeArtifact's 12-hour maximum.
const PUBLISH_TOKEN_DURATION: Duration = Duration::from_secs(900);

#[derive(Debug, Args)]
pub struct PublishAllLibsArgs {
    /// The environment whose package index to publish to (dev, staging or prod)
    #[arg(value_name = "ENV")]
    pub env: Env,
    /// Change prod without asking (otherwise prod needs its name typed on a terminal)
    #[arg(long)]
    pub yes_prod: bool,
    /// Print one JSON object on stdout (human output goes to stderr)
    #[arg(long)]
    pub json: bool,
}

/// What happened to one library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub package: String,
    pub version: String,
    pub file: String,
    /// `built` or `skipped` (unchanged since the last build).
    pub build: String,
    /// `uploaded` or `already-published`.
    pub action: String,
}

impl PublishAllLibsArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let change = ChangeArgs { env: self.env, yes_prod: self.yes_prod };
        confirm(&change, "publish libraries to the prod package index")?;
        // The index first: missing credentials fail before anything is built.
        let index = resolve_index(project, self.env)?;
        let progress = Progress::detect(false);
        progress.line(&format!("publishing to {}", index.label));
        let wheels = build_wheels(project, &progress)?;
        let client = IndexClient::new(&index);
        let mut results = Vec::new();
        for (package, file, build) in wheels {
            let bytes = std::fs::read(&file).with_context(|| format!("failed to read {file}"))?;
            let meta = wheel_metadata::read(&bytes).with_context(|| format!("cannot read the metadata of {file}"))?;
            let (name, version) = (meta.name()?.to_owned(), meta.version()?.to_owned());
            let filename = file.file_name().unwrap_or(file.as_str()).to_owned();
            let sha256 = xtask_engine::filecache::hex(&sha2::Sha256::digest(&bytes));
            let action = match client.published_file(&name, &filename)? {
                Some(listed_sha) => {
                    report_already(&progress, &index, &package, &name, &version, listed_sha.as_deref() == Some(sha256.as_str()));
                    "already-published"
                }
                None => match client.upload(&meta, &filename, &bytes, &sha256)? {
                    Upload::Done => {
                        progress.line(&format!("uploaded {filename} ({} KiB) to {}", bytes.len().div_ceil(1024), index.url));
                        "uploaded"
                    }
                    Upload::Exists => {
                        report_already(&progress, &index, &package, &name, &version, false);
                        "already-published"
                    }
                },
            };
            results.push(Published { package, version, file: filename, build, action: action.to_owned() });
        }
        if self.json {
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &serde_json::json!({ "index": index.url, "published": results }))?;
            writeln!(stdout)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn report_already(progress: &Progress, index: &PackageIndex, package: &str, name: &str, version: &str, identical: bool) {
    let what = if identical { "the same file" } else { "a file of that name" };
    progress.line(&format!(
        "{name} {version} is already in {} ({what}); nothing uploaded; bump the version in libs/{package}/pyproject.toml to publish",
        index.url
    ));
}

/// The index from the environment (tests, other indexes) or CodeArtifact.
fn resolve_index(project: &Project, env: Env) -> Result<PackageIndex> {
    if let Some(url) = std::env::var("TRADAI_PUBLISH_URL").ok().filter(|u| !u.trim().is_empty()) {
        let password =
            std::env::var("TRADAI_PUBLISH_TOKEN").or_else(|_| std::env::var("TRADAI_PUBLISH_PASSWORD")).ok().filter(|p| !p.is_empty());
        if password.is_none() {
            bail!(
                "TRADAI_PUBLISH_URL is set but no credentials are: set TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_USER and TRADAI_PUBLISH_PASSWORD), or unset TRADAI_PUBLISH_URL to publish to CodeArtifact"
            );
        }
        let username = std::env::var("TRADAI_PUBLISH_USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| TOKEN_USER.to_owned());
        let url = url.trim().to_owned();
        return Ok(PackageIndex {
            label: format!("{url} (from TRADAI_PUBLISH_URL)"),
            url,
            username,
            password: password.map(Secret::new),
            expires_at: None,
        });
    }
    let aws = connect(project, env)?;
    codeartifact_index(&aws, env, None, PUBLISH_TOKEN_DURATION)
}

/// Builds every published library's wheel through the engine (skipped when its inputs
/// are unchanged and the wheel still exists); returns (package, wheel path, build).
fn build_wheels(project: &Project, progress: &Progress) -> Result<Vec<(String, Utf8PathBuf, String)>> {
    let out = project.state_dir();
    let targets: Vec<Target> = PUBLISHED_LIBS
        .iter()
        .map(|lib| Target {
            id: (*lib).to_owned(),
            deps: vec![],
            builder: Arc::new(WheelBuilder {
                package_dir: project.root.join("libs").join(lib),
                out_root: out.join("wheels").join(lib),
                uv: project.uv(),
            }),
        })
        .collect();
    let selected: Vec<String> = PUBLISHED_LIBS.iter().map(|s| (*s).to_owned()).collect();
    let order = closure(&targets, &selected)?;
    let store = project.state_store();
    let state = store.load()?;
    let files = project.file_cache();
    let plan = make_plan(&order, &selected, &state, &files, None)?;
    files.save()?;
    let reports = execute(&plan, &targets, &store, ExecOptions { jobs: 1, fail_fast: true }, progress);
    let mut wheels = Vec::new();
    for r in reports {
        match (r.status, &r.artifact) {
            (Status::Built | Status::Skipped, Some(artifact)) => {
                wheels.push((r.id.clone(), Utf8PathBuf::from(artifact), r.status.to_string()))
            }
            _ => bail!("building the {} wheel failed: {}", r.id, r.error.as_deref().unwrap_or(&r.reason)),
        }
    }
    Ok(wheels)
}

/// What an upload came to.
enum Upload {
    Done,
    /// The index already has a file of that name.
    Exists,
}

/// The two calls publishing needs: the simple index page of a project, and the upload.
struct IndexClient<'a> {
    index: &'a PackageIndex,
    agent: ureq::Agent,
}

impl<'a> IndexClient<'a> {
    fn new(index: &'a PackageIndex) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        IndexClient { index, agent }
    }

    fn authorization(&self) -> Option<String> {
        let password = self.index.password.as_ref()?;
        let raw = format!("{}:{}", self.index.username, password.expose());
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
    }

    /// Whether the index lists `filename` for project `name`; `Some(sha256)` when it
    /// does (the digest from the link, if the index gives one).
    fn published_file(&self, name: &str, filename: &str) -> Result<Option<Option<String>>> {
        let url = format!("{}{}/", self.index.simple_url(), xtask_ci::repo::normalize(name));
        let (status, body) = with_retries(&format!("read {url}"), || {
            let mut req = self.agent.get(&url);
            if let Some(auth) = self.authorization() {
                req = req.header("Authorization", auth);
            }
            let mut resp = req.call()?;
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            Ok((status, body))
        })?;
        match status {
            200 => Ok(find_link(&body, filename)),
            404 => Ok(None),
            401 | 403 => bail!("{}", refused(self.index, status, "read")),
            s => bail!("the package index answered HTTP {s} for {url}; check TRADAI_PUBLISH_URL or the CodeArtifact repository"),
        }
    }

    /// Uploads one wheel (twine's form: metadata fields, digest, the file as `content`).
    fn upload(&self, meta: &wheel_metadata::WheelMetadata, filename: &str, bytes: &[u8], sha256: &str) -> Result<Upload> {
        let mut fields: Vec<(String, String)> = vec![(":action".into(), "file_upload".into()), ("protocol_version".into(), "1".into())];
        fields.extend(meta.form_fields());
        fields.push(("filetype".into(), "bdist_wheel".into()));
        fields.push(("pyversion".into(), python_tag(filename)));
        fields.push(("sha256_digest".into(), sha256.to_owned()));
        let boundary = format!("xtask-{}", &sha256[..24]);
        let body = multipart(&boundary, &fields, filename, bytes);
        let url = self.index.url.clone();
        let (status, text) = with_retries(&format!("upload {filename} to {url}"), || {
            let mut req = self.agent.post(&url).header("Content-Type", format!("multipart/form-data; boundary={boundary}"));
            if let Some(auth) = self.authorization() {
                req = req.header("Authorization", auth);
            }
            let mut resp = req.send(&body[..])?;
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            Ok((status, text))
        })?;
        let lower = text.to_lowercase();
        match status {
            200..=299 => Ok(Upload::Done),
            409 => Ok(Upload::Exists),
            400 if lower.contains("already exist") || lower.contains("file exists") => Ok(Upload::Exists),
            401 | 403 => bail!("{}", refused(self.index, status, "upload to")),
            s => {
                let detail: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
                bail!("the package index refused {filename} (HTTP {s}): {detail}; check the wheel and the index")
            }
        }
    }
}

/// The one-line error for a refused token, with the fix for where it came from.
fn refused(index: &PackageIndex, status: u16, what: &str) -> String {
    let fix = if index.label.contains("TRADAI_PUBLISH_URL") {
        "check TRADAI_PUBLISH_USER and TRADAI_PUBLISH_TOKEN (or TRADAI_PUBLISH_PASSWORD)"
    } else {
        "the token is fetched fresh on every run, so the AWS credentials in use lack codeartifact:PublishPackageVersion or ReadFromRepository: use a profile with publish rights (AWS_PROFILE)"
    };
    format!("the package index refused the credentials to {what} {} (HTTP {status}); {fix}", index.url)
}

/// Retries transport failures and 5xx answers with backoff (0.5 s, 1 s, 2 s).
fn with_retries<T>(what: &str, mut call: impl FnMut() -> Result<(u16, T), ureq::Error>) -> Result<(u16, T)> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=4 {
        match call() {
            Ok((status, v)) if status < 500 || attempt == 4 => return Ok((status, v)),
            Ok((status, _)) => tracing::info!(%what, attempt, status, "retrying"),
            Err(e) if attempt == 4 => bail!("failed to {what} after {attempt} attempts: {e}; check that the package index is reachable"),
            Err(e) => tracing::info!(%what, attempt, error = %e, "retrying"),
        }
        std::thread::sleep(delay);
        delay *= 2;
    }
    unreachable!("the last attempt returns")
}


/// Finds `filename` among the links of a simple index page; returns the `#sha256=`
/// fragment of its link, if any.
fn find_link(page: &str, filename: &str) -> Option<Option<String>> {
    for part in page.split("href=").skip(1) {
        let quote = part.chars().next()?;
        let href = if quote == '"' || quote == '\'' {
            part[1..].split(quote).next().unwrap_or("")
        } else {
            part.split([' ', '>']).next().unwrap_or("")
        };
        let (path, fragment) = href.split_once('#').unwrap_or((href, ""));
        if path.rsplit('/').next() == Some(filename) {
            return Some(fragment.strip_prefix("sha256=").map(str::to_owned));
        }
    }
    None
}

/// The Python tag of a wheel file name (`name-version-py3-none-any.whl` -> `py3`).
fn python_tag(filename: &str) -> String {
    let stem = filename.strip_suffix(".whl").unwrap_or(filename);
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() >= 5 { parts[parts.len() - 3].to_owned() } else { "py3".to_owned() }
}

/// A multipart/form-data body: the fields, then the file as `content`.
fn multipart(boundary: &str, fields: &[(String, String)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(file.len() + 4096);
    for (k, v) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_with_their_digest() {
        let page = "<a href=\"../../packages/tradai_strategy-0.1.0-py3-none-any.whl#sha256=abc\">tradai_strategy-0.1.0-py3-none-any.whl</a>\n<a href='/p/tradai_strategy-0.2.0.tar.gz'>x</a>";
        assert_eq!(find_link(page, "tradai_strategy-0.1.0-py3-none-any.whl"), Some(Some("abc".into())));
        assert_eq!(find_link(page, "tradai_strategy-0.2.0.tar.gz"), Some(None));
        assert_eq!(find_link(page, "tradai_strategy-0.3.0-py3-none-any.whl"), None);
    }

    #[test]
    fn wheel_python_tag() {
        assert_eq!(python_tag("tradai_strategy-0.1.0-py3-none-any.whl"), "py3");
        assert_eq!(python_tag("x-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl"), "cp311");
    }

    #[test]
    fn multipart_body_has_fields_file_and_closing_boundary() {
        let body = multipart("B", &[(":action".into(), "file_upload".into())], "f.whl", b"PK");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("--B\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\nfile_upload\r\n"));
        assert!(text.contains("name=\"content\"; filename=\"f.whl\"\r\nContent-Type: application/octet-stream\r\n\r\nPK\r\n--B--\r\n"));
    }
}
