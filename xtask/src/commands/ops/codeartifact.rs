//! `codeartifact-login <env>`: a CodeArtifact token for the environment's Python
//! repository, written where pip (`pip.conf`) and uv (`uv.toml`) read their index, in
//! files only the user can read. The token is never printed.

use std::fs;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Args;
use xtask_aws::{Aws, Secret};

use super::{Env, Watch, connect, duration_text, utc_time};
use crate::project::Project;

/// The user name CodeArtifact expects with a token.
pub const TOKEN_USER: &str = "aws";
/// The longest token CodeArtifact issues, as the seeds' login (12h).
const LOGIN_DURATION: Duration = Duration::from_secs(12 * 3600);
/// Marks the block of uv.toml this command owns.
const UV_BEGIN: &str = "# >>> cargo xtask codeartifact-login >>>";
const UV_END: &str = "# <<< cargo xtask codeartifact-login <<<";

#[derive(Debug, Args)]
pub struct CodeartifactLoginArgs {
    /// The environment whose CodeArtifact domain to use (dev, staging or prod)
    #[arg(value_name = "ENV")]
    pub env: Env,
    /// The AWS account that owns the domain (default: the caller's)
    #[arg(long, value_name = "ACCOUNT")]
    pub domain_owner: Option<String>,
    /// pip configuration file to write (default: $XDG_CONFIG_HOME/pip/pip.conf)
    #[arg(long, value_name = "FILE")]
    pub pip_conf: Option<Utf8PathBuf>,
    /// uv configuration file to write (default: $XDG_CONFIG_HOME/uv/uv.toml)
    #[arg(long, value_name = "FILE")]
    pub uv_config: Option<Utf8PathBuf>,
}

/// The CodeArtifact domain of an environment (the persistent stack's `<project>-<env>`).
pub fn domain(env: Env) -> String {
    super::names().codeartifact_domain(env.name())
}

/// A package index with credentials: where to upload, where its simple index is.
pub struct PackageIndex {
    /// The upload endpoint (the repository root; twine's `--repository-url`).
    pub url: String,
    pub username: String,
    pub password: Option<Secret>,
    /// When the token expires (Unix seconds), if known.
    pub expires_at: Option<u64>,
    /// How the index is named in output (never with credentials).
    pub label: String,
}

impl PackageIndex {
    /// `<url>/simple/`, the PEP 503 index pip and uv read.
    pub fn simple_url(&self) -> String {
        format!("{}/simple/", self.url.trim_end_matches('/'))
    }

    /// The simple index URL with the credentials in it, as pip.conf and uv.toml take it.
    fn simple_url_with_credentials(&self) -> String {
        let simple = self.simple_url();
        let Some(password) = &self.password else { return simple };
        let (scheme, rest) = simple.split_once("://").unwrap_or(("https", &simple));
        format!("{scheme}://{}:{}@{rest}", percent_encode(&self.username), percent_encode(password.expose()))
    }
}

/// The environment's CodeArtifact repository, with a fresh token.
pub fn codeartifact_index(aws: &Aws, env: Env, owner: Option<&str>, duration: Duration) -> Result<PackageIndex> {
    let domain = domain(env);
    let token = aws.codeartifact_token(&domain, owner, duration)?;
    // The Python repository in every environment's domain (config.py `CODEARTIFACT_REPOSITORY`).
    let repository = super::names().codeartifact_repository();
    let url = aws.codeartifact_pypi_endpoint(&domain, owner, &repository)?;
    Ok(PackageIndex {
        label: format!("CodeArtifact {domain}/{repository} ({url})"),
        url,
        username: TOKEN_USER.to_owned(),
        password: Some(token.token),
        expires_at: token.expires_at,
    })
}

impl CodeartifactLoginArgs {
    pub fn run(&self, project: &Project) -> Result<ExitCode> {
        let pip_conf = match &self.pip_conf {
            Some(p) => p.clone(),
            None => config_dir()?.join("pip/pip.conf"),
        };
        let uv_config = match &self.uv_config {
            Some(p) => p.clone(),
            None => config_dir()?.join("uv/uv.toml"),
        };
        let aws = connect(project, self.env)?;
        let index = codeartifact_index(&aws, self.env, self.domain_owner.as_deref(), LOGIN_DURATION)?;
        write_logins(&index, &pip_conf, &uv_config)?;
        let mut watch = Watch::new();
        watch.line(&format!("logged in to {}", index.label));
        watch.line(&format!("wrote the index with its token to {pip_conf} (pip) and {uv_config} (uv), readable by you only"));
        match index.expires_at {
            Some(at) => watch.line(&format!(
                "the token expires {} (in {}); run `cargo xtask codeartifact-login {}` again then",
                utc_time(at),
                duration_text(at.saturating_sub(xtask_aws::now_unix())),
                self.env
            )),
            None => watch.line("CodeArtifact did not say when the token expires"),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes the index into both files.
pub fn write_logins(index: &PackageIndex, pip_conf: &Utf8Path, uv_config: &Utf8Path) -> Result<()> {
    let url = index.simple_url_with_credentials();
    let pip_text = read_or_empty(pip_conf)?;
    write_private(pip_conf, &set_ini_value(&pip_text, "global", "index-url", &url))?;
    let uv_text = read_or_empty(uv_config)?;
    let uv_new = set_uv_index(&uv_text, &url);
    if let Err(e) = toml::from_str::<toml::Table>(&uv_new) {
        bail!(
            "cannot add the index to {uv_config}: the result would not be valid TOML ({}); fix the file or pass --uv-config <another file>",
            e.message()
        );
    }
    write_private(uv_config, &uv_new)
}

fn read_or_empty(path: &Utf8Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("failed to read {path}")),
    }
}

/// The user's configuration folder: `$XDG_CONFIG_HOME`, else `~/.config` (where pip and
/// uv look on Linux, and on macOS when their Library folder is not in use).
fn config_dir() -> Result<Utf8PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Utf8PathBuf::from_path_buf(x.into()).map_err(|p| anyhow::anyhow!("XDG_CONFIG_HOME is not UTF-8: {}", p.display()));
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => Ok(Utf8PathBuf::from(h).join(".config")),
        _ => bail!("neither XDG_CONFIG_HOME nor HOME is set; pass --pip-conf and --uv-config"),
    }
}

/// Replaces `path` with `text`, mode 0600 from the first byte (the engine's atomic write:
/// a private temporary file of a unique name, renamed over the old one).
pub fn write_private(path: &Utf8Path, text: &str) -> Result<()> {
    xtask_engine::atomic::write_private(path, text.as_bytes())
}

/// Sets `key = value` in `[section]` of an INI text (pip.conf), keeping every other
/// line; `index_url` and `index-url` are the same key to pip.
fn set_ini_value(text: &str, section: &str, key: &str, value: &str) -> String {
    let same_key = |line: &str| {
        let name = line.split(['=', ':']).next().unwrap_or("").trim().replace('_', "-");
        name.eq_ignore_ascii_case(key)
    };
    let mut out: Vec<String> = Vec::new();
    let mut in_section = false;
    let mut section_seen = false;
    let mut written = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            if in_section && !written {
                out.push(format!("{key} = {value}"));
                written = true;
            }
            in_section = trimmed[1..trimmed.len() - 1].trim().eq_ignore_ascii_case(section);
            section_seen |= in_section;
            out.push(line.to_owned());
            if in_section && !written {
                out.push(format!("{key} = {value}"));
                written = true;
            }
            continue;
        }
        if in_section && !trimmed.starts_with('#') && !trimmed.starts_with(';') && same_key(trimmed) {
            continue; // replaced by the line written under the header
        }
        out.push(line.to_owned());
    }
    if !section_seen {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(format!("[{section}]"));
        out.push(format!("{key} = {value}"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Puts the index into uv.toml as the default index, inside the block this command
/// owns (replaced on every login); the rest of the file is kept as it is.
fn set_uv_index(text: &str, url: &str) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim() == UV_BEGIN {
            inside = true;
            continue;
        }
        if line.trim() == UV_END {
            inside = false;
            continue;
        }
        if !inside {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let kept = kept.trim_end();
    let mut out = String::from(kept);
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "{UV_BEGIN}\n[[index]]\nname = {}\nurl = {}\ndefault = true\n{UV_END}\n",
        toml_string(&format!("{}-codeartifact", super::names().project())),
        toml_string(url)
    ));
    out
}

/// A TOML basic string, escaped by the `toml` crate (quotes, backslashes and control
/// characters alike).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL userinfo).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
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

    fn index() -> PackageIndex {
        PackageIndex {
            url: "https://tradai-dev-123.d.codeartifact.eu-central-1.amazonaws.com/pypi/tradai-python/".into(),
            username: "aws".into(),
            password: Some(Secret::new("t0k/en+=")),
            expires_at: None,
            label: "x".into(),
        }
    }

    #[test]
    fn credentials_go_into_the_simple_url_encoded() {
        assert_eq!(
            index().simple_url_with_credentials(),
            "https://aws:t0k%2Fen%2B%3D@tradai-dev-123.d.codeartifact.eu-central-1.amazonaws.com/pypi/tradai-python/simple/"
        );
    }

    #[test]
    fn pip_conf_keeps_other_settings_and_replaces_the_index() {
        assert_eq!(set_ini_value("", "global", "index-url", "U"), "[global]\nindex-url = U\n");
        let before = "[install]\nuser = true\n\n[global]\ntimeout = 60\nindex_url = https://old/simple/\n";
        let after = set_ini_value(before, "global", "index-url", "U");
        assert_eq!(after, "[install]\nuser = true\n\n[global]\nindex-url = U\ntimeout = 60\n");
        assert_eq!(set_ini_value(&after, "global", "index-url", "V"), after.replace("= U", "= V"));
        assert_eq!(
            set_ini_value("[install]\nuser = true\n", "global", "index-url", "U"),
            "[install]\nuser = true\n\n[global]\nindex-url = U\n"
        );
    }

    #[test]
    fn toml_strings_round_trip_through_the_toml_crate() {
        for raw in ["https://u:p@host/simple/", "a\"b\\c", "tab\there\nnewline"] {
            let doc: toml::Table = toml::from_str(&format!("url = {}", toml_string(raw))).unwrap();
            assert_eq!(doc["url"].as_str(), Some(raw));
        }
    }

    #[test]
    fn uv_block_is_replaced_not_repeated_and_parses() {
        let user = "native-tls = true\n\n[pip]\nsystem = false\n";
        let once = set_uv_index(user, "https://a:b@h/simple/");
        let twice = set_uv_index(&once, "https://a:c@h/simple/");
        assert_eq!(twice.matches(UV_BEGIN).count(), 1);
        assert!(twice.starts_with(user.trim_end()) && twice.contains("url = \"https://a:c@h/simple/\"") && !twice.contains("a:b@"));
        let v: toml::Table = toml::from_str(&twice).unwrap();
        assert_eq!(v["index"].as_array().unwrap()[0]["default"].as_bool(), Some(true));
        assert_eq!(v["native-tls"].as_bool(), Some(true));
    }

    #[test]
    fn private_files_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(dir.path().join("pip/pip.conf")).unwrap();
        let pip = p.clone();
        let uv = Utf8PathBuf::from_path_buf(dir.path().join("uv/uv.toml")).unwrap();
        write_logins(&index(), &pip, &uv).unwrap();
        for f in [&pip, &uv] {
            assert_eq!(fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
            assert!(fs::read_to_string(f).unwrap().contains("t0k%2Fen%2B%3D"));
        }
        // An existing world-readable file becomes private too.
        fs::write(&pip, "[global]\ntimeout = 5\n").unwrap();
        fs::set_permissions(&pip, fs::Permissions::from_mode(0o644)).unwrap();
        write_logins(&index(), &pip, &uv).unwrap();
        assert_eq!(fs::metadata(&pip).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(fs::read_to_string(&pip).unwrap().contains("timeout = 5"));
    }
}
