//! The settings every `pulumi` run gets: `infra/.env` merged with the process environment
//! (the process wins), the state backend, and the checks that say which variables are
//! missing before Pulumi is ever started.
//!
//! A variable set to the empty string counts as unset, in the file and in the process
//! environment alike (the committed template leaves the passphrase empty on purpose).
//!
//! The state backend is always explicit: `S3_PULUMI_BACKEND_URL` (or Pulumi's own
//! `PULUMI_BACKEND_URL`), or a folder on this machine when the command is given
//! `--local-state`. Nothing configured is an error that names the variable, in every
//! environment: a silent local default once let `infra-up` create a second copy of a
//! stack's resources beside the ones the shared state knows about.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};

use crate::dotenv::{self, DotEnv};

/// The project's name for the backend URL (the seeds' `infra/.env`).
pub const S3_BACKEND_VAR: &str = "S3_PULUMI_BACKEND_URL";
/// Pulumi's own name for it; what the child process receives.
pub const BACKEND_VAR: &str = "PULUMI_BACKEND_URL";
pub const PASSPHRASE_VAR: &str = "PULUMI_CONFIG_PASSPHRASE";
pub const PASSPHRASE_FILE_VAR: &str = "PULUMI_CONFIG_PASSPHRASE_FILE";
/// Pulumi's variables that hold a secret: they reach `pulumi` from the merged settings
/// even when only the process environment sets them (CI has no `infra/.env`), while the
/// tool withholds them from every other child.
const PULUMI_SECRET_VARS: &[&str] = &[PASSPHRASE_VAR, PASSPHRASE_FILE_VAR, "PULUMI_ACCESS_TOKEN"];

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub url: String,
    pub source: BackendSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendSource {
    /// `S3_PULUMI_BACKEND_URL` (from `infra/.env` or the environment).
    S3Var,
    /// `PULUMI_BACKEND_URL` (from `infra/.env` or the environment).
    PulumiVar,
    /// `--local-state`: a folder under the Cargo target directory of this machine.
    LocalState,
}

impl Backend {
    /// The folder of a `file://` backend.
    pub fn local_path(&self) -> Option<Utf8PathBuf> {
        self.url.strip_prefix("file://").map(|p| Utf8PathBuf::from(p.split('?').next().unwrap_or(p)))
    }

    /// The URL as it may be shown: credentials in it replaced by `***` (see [`redact_url`]).
    pub fn shown_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The one line every infra command prints before it runs Pulumi.
    pub fn describe(&self) -> String {
        let from = match self.source {
            BackendSource::S3Var => format!("from {S3_BACKEND_VAR}"),
            BackendSource::PulumiVar => format!("from {BACKEND_VAR}"),
            BackendSource::LocalState => "--local-state: on this machine only".to_owned(),
        };
        format!("{STATE_BACKEND_PREFIX}{} ({from})", self.shown_url())
    }
}

/// How the line of [`Backend::describe`] starts (tests and scripts find it by this).
pub const STATE_BACKEND_PREFIX: &str = "state backend: ";

/// `url` with anything that can be a credential replaced by `***`: the user information
/// (`postgres://user:password@host/db`, `https://token@host`) and the values of query
/// parameters whose name says they are secret (`access_key`, `secret`, `token`,
/// `password`, `sig`, ...). The bucket, host, path and region stay: they say which
/// backend it is.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let mut out = String::new();
    if let Some(s) = scheme {
        out.push_str(s);
        out.push_str("://");
    }
    out.push_str(&authority);
    out.push_str(path);
    if let Some(q) = query {
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_query_key(k) => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

fn is_secret_query_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "secret", "token", "password", "passphrase", "credential", "sig", "auth"].iter().any(|w| k.contains(w))
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path} cannot be read: {problem}; fix that line (format: KEY=VALUE, see infra/.env.example)")]
    BadDotEnv { path: Utf8PathBuf, problem: dotenv::DotEnvError },
    #[error("{path} cannot be read: {source}")]
    Unreadable { path: Utf8PathBuf, source: std::io::Error },
    #[error(
        "{S3_BACKEND_VAR} and {BACKEND_VAR} are both set and name different backends; keep one (in infra/.env or the environment) so the state cannot go to an unexpected place"
    )]
    ConflictingBackends,
    #[error("missing settings for pulumi: {}; set them in infra/.env (`cargo xtask infra-setup` creates it from infra/.env.example) or in the environment", .missing.join(", "))]
    Missing { missing: Vec<String> },
    #[error(
        "--local-state keeps state on this machine, and prod's state lives only in the shared backend; set {S3_BACKEND_VAR} in infra/.env or the environment and drop --local-state"
    )]
    ProdOnLocalState,
    #[error(
        "--local-state and {var} both name a state backend ({url}); drop --local-state to use {var}, or unset {var} to keep this stack's state on this machine"
    )]
    LocalStateConflict { var: &'static str, url: String },
    #[error("cannot create the local state backend folder {path}: {source}")]
    LocalBackend { path: Utf8PathBuf, source: std::io::Error },
}

/// What an operation needs configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Reading state: the passphrase (secrets are decrypted to mask them).
    State,
    /// Running a program or touching cloud resources: the passphrase, a region and a
    /// source of AWS credentials.
    Cloud,
}

/// The merged environment of one repository.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every variable `infra/.env` sets, with the value the child gets (the process
    /// environment's when it sets the same name).
    forwarded: BTreeMap<String, String>,
    /// Lookup over the merged view (empty values removed).
    merged: BTreeMap<String, String>,
    /// `None` when nothing names a backend; [`Settings::missing`] then names the variable.
    pub backend: Option<Backend>,
    pub dotenv_path: Utf8PathBuf,
    pub dotenv_found: bool,
}

impl Settings {
    /// Reads `<root>/infra/.env` (absent is fine: CI sets everything in the environment)
    /// and merges it with the process environment. `local_state` is the folder of the
    /// file backend `--local-state` asks for, `None` without the flag.
    pub fn load(root: &Utf8Path, local_state: Option<&Utf8Path>) -> Result<Settings, SettingsError> {
        let path = root.join("infra/.env");
        let dotenv = match std::fs::read_to_string(&path) {
            Ok(text) => Some(dotenv::parse(&text).map_err(|problem| SettingsError::BadDotEnv { path: path.clone(), problem })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(SettingsError::Unreadable { path, source }),
        };
        Settings::from_parts(path, dotenv, std::env::vars(), local_state)
    }

    /// The merge itself, for any `.env` and process environment.
    pub fn from_parts(
        dotenv_path: Utf8PathBuf,
        dotenv: Option<DotEnv>,
        process: impl IntoIterator<Item = (String, String)>,
        local_state: Option<&Utf8Path>,
    ) -> Result<Settings, SettingsError> {
        let process: BTreeMap<String, String> = process.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let dotenv_found = dotenv.is_some();
        let dotenv = dotenv.unwrap_or_default();
        let mut forwarded = BTreeMap::new();
        let mut merged = process.clone();
        for key in dotenv.keys() {
            let value = process.get(key).cloned().or_else(|| dotenv.get(key).filter(|v| !v.is_empty()).map(str::to_owned));
            if let Some(v) = value {
                forwarded.insert(key.to_owned(), v.clone());
                merged.insert(key.to_owned(), v);
            }
        }
        let configured = match (merged.get(S3_BACKEND_VAR), merged.get(BACKEND_VAR)) {
            (Some(a), Some(b)) if a != b => return Err(SettingsError::ConflictingBackends),
            (Some(a), _) => Some(Backend { url: a.clone(), source: BackendSource::S3Var }),
            (None, Some(b)) => Some(Backend { url: b.clone(), source: BackendSource::PulumiVar }),
            (None, None) => None,
        };
        let backend = match (configured, local_state) {
            (Some(b), Some(_)) => {
                let var = if b.source == BackendSource::S3Var { S3_BACKEND_VAR } else { BACKEND_VAR };
                return Err(SettingsError::LocalStateConflict { var, url: b.shown_url() });
            }
            (Some(b), None) => Some(b),
            (None, Some(dir)) => Some(Backend { url: format!("file://{dir}"), source: BackendSource::LocalState }),
            (None, None) => None,
        };
        Ok(Settings { forwarded, merged, backend, dotenv_path, dotenv_found })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.merged.get(key).map(String::as_str)
    }

    /// Every missing variable an operation needs, at once.
    pub fn missing(&self, needs: Needs) -> Vec<String> {
        let mut missing = Vec::new();
        let has = |k: &str| self.merged.contains_key(k);
        if self.backend.is_none() {
            missing.push(format!(
                "{S3_BACKEND_VAR} (the shared state backend, such as s3://<bucket>?region=<region>; or pass --local-state to keep dev or staging state on this machine)"
            ));
        }
        if !has(PASSPHRASE_VAR) && !has(PASSPHRASE_FILE_VAR) {
            missing.push(format!("{PASSPHRASE_VAR} (or {PASSPHRASE_FILE_VAR})"));
        }
        if needs == Needs::Cloud {
            if !has("AWS_REGION") && !has("AWS_DEFAULT_REGION") {
                missing.push("AWS_REGION".to_owned());
            }
            let credentials = has("AWS_PROFILE")
                || (has("AWS_ACCESS_KEY_ID") && has("AWS_SECRET_ACCESS_KEY"))
                || has("AWS_WEB_IDENTITY_TOKEN_FILE")
                || has("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                || has("AWS_CONTAINER_CREDENTIALS_FULL_URI");
            if !credentials {
                missing.push("AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".to_owned());
            }
        }
        missing
    }

    /// Fails with every missing variable named.
    pub fn require(&self, needs: Needs) -> Result<(), SettingsError> {
        let missing = self.missing(needs);
        if missing.is_empty() { Ok(()) } else { Err(SettingsError::Missing { missing }) }
    }

    /// Production state never goes to a folder `--local-state` chose on this machine (a
    /// `file://` URL set explicitly in a variable is a deliberate choice and is accepted).
    pub fn require_shared_backend_for(&self, production: bool) -> Result<(), SettingsError> {
        if production && self.backend.as_ref().is_some_and(|b| b.source == BackendSource::LocalState) {
            return Err(SettingsError::ProdOnLocalState);
        }
        Ok(())
    }

    /// The backend's URL, or `""` before one is configured (every `pulumi` call is
    /// preceded by [`Settings::require`], which fails without one).
    pub fn backend_url(&self) -> &str {
        self.backend.as_ref().map_or("", |b| b.url.as_str())
    }

    /// Creates the folder of a local backend (Pulumi expects it to exist).
    pub fn prepare_backend(&self) -> Result<(), SettingsError> {
        if let Some(path) = self.backend.as_ref().and_then(Backend::local_path) {
            std::fs::create_dir_all(&path).map_err(|source| SettingsError::LocalBackend { path, source })?;
        }
        Ok(())
    }

    /// The variables a child process gets on top of the inherited environment: what
    /// `infra/.env` sets, Pulumi's secrets wherever they were set, and the backend under
    /// Pulumi's name.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.forwarded.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for name in PULUMI_SECRET_VARS {
            if let Some(v) = self.merged.get(*name)
                && !self.forwarded.contains_key(*name)
            {
                env.push(((*name).to_owned(), v.clone()));
            }
        }
        env.retain(|(k, _)| k != BACKEND_VAR);
        if let Some(b) = &self.backend {
            env.push((BACKEND_VAR.to_owned(), b.url.clone()));
        }
        env
    }

    /// Values that must never be shown: the passphrase, AWS secrets, and any variable whose
    /// name says it is a secret.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.merged.iter().filter(|(k, _)| is_secret_name(k)).map(|(_, v)| v.clone()).filter(|v| v.len() >= 4).collect();
        if let Some(path) = self.merged.get(PASSPHRASE_FILE_VAR)
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let p = text.trim().to_owned();
            if p.len() >= 4 {
                out.push(p);
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        out.sort_by_key(|v| std::cmp::Reverse(v.len()));
        out
    }

    /// `text` with every secret value replaced by `***`, and the backend URL by its
    /// shown form (no credentials).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if let Some(b) = &self.backend
            && b.shown_url() != b.url
        {
            out = out.replace(&b.url, &b.shown_url());
        }
        for s in self.secret_values() {
            out = out.replace(&s, "***");
        }
        out
    }
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n != PASSPHRASE_FILE_VAR && ["PASSPHRASE", "SECRET", "TOKEN", "PASSWORD"].iter().any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dotenv: &str, process: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        settings_with(dotenv, process, None)
    }

    fn settings_with(dotenv: &str, process: &[(&str, &str)], local_state: Option<&str>) -> Result<Settings, SettingsError> {
        let env = dotenv::parse(dotenv).unwrap();
        Settings::from_parts(
            "/repo/infra/.env".into(),
            Some(env),
            process.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            local_state.map(Utf8Path::new),
        )
    }

    #[test]
    fn process_environment_wins_and_empty_counts_as_unset() {
        let s = settings(
            "AWS_PROFILE=file\nAWS_REGION=eu-central-1\nPULUMI_CONFIG_PASSPHRASE=\n",
            &[("AWS_PROFILE", "proc"), ("AWS_REGION", "")],
        )
        .unwrap();
        assert_eq!(s.get("AWS_PROFILE"), Some("proc"));
        assert_eq!(s.get("AWS_REGION"), Some("eu-central-1"));
        assert_eq!(s.get(PASSPHRASE_VAR), None);
        let env = s.child_env();
        assert!(env.contains(&("AWS_PROFILE".into(), "proc".into())));
        assert!(!env.iter().any(|(k, _)| k == PASSPHRASE_VAR));
    }

    #[test]
    fn no_backend_is_missing_in_every_environment_and_local_state_is_explicit() {
        let s = settings("PULUMI_CONFIG_PASSPHRASE=pw\n", &[]).unwrap();
        assert_eq!(s.backend, None);
        let missing = s.missing(Needs::State);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].starts_with("S3_PULUMI_BACKEND_URL (the shared state backend") && missing[0].contains("--local-state"));
        assert!(s.child_env().iter().all(|(k, _)| k != BACKEND_VAR), "no backend is handed to pulumi");

        let s = settings_with("PULUMI_CONFIG_PASSPHRASE=pw\n", &[], Some("/repo/target/pulumi-state")).unwrap();
        let b = s.backend.clone().unwrap();
        assert_eq!(b, Backend { url: "file:///repo/target/pulumi-state".into(), source: BackendSource::LocalState });
        assert_eq!(b.local_path().unwrap(), "/repo/target/pulumi-state");
        assert_eq!(b.describe(), "state backend: file:///repo/target/pulumi-state (--local-state: on this machine only)");
        assert!(s.missing(Needs::State).is_empty());
        assert!(matches!(s.require_shared_backend_for(true), Err(SettingsError::ProdOnLocalState)));
        assert!(s.require_shared_backend_for(false).is_ok());

        // --local-state never silently wins over (or loses to) a configured backend.
        let e = settings_with("S3_PULUMI_BACKEND_URL=s3://bucket\n", &[], Some("/x")).unwrap_err().to_string();
        assert!(e.starts_with("--local-state and S3_PULUMI_BACKEND_URL both name a state backend (s3://bucket)"), "{e}");
    }

    #[test]
    fn the_seed_variable_and_pulumis_own_name_each_select_the_backend() {
        let s = settings("S3_PULUMI_BACKEND_URL=s3://bucket?region=eu-central-1\n", &[]).unwrap();
        let b = s.backend.clone().unwrap();
        assert_eq!(b.source, BackendSource::S3Var);
        assert_eq!(b.describe(), "state backend: s3://bucket?region=eu-central-1 (from S3_PULUMI_BACKEND_URL)");
        assert!(s.child_env().contains(&(BACKEND_VAR.into(), "s3://bucket?region=eu-central-1".into())));
        assert_eq!(b.local_path(), None);
        // A file:// URL named explicitly is a deliberate choice, accepted for prod.
        let s = settings("", &[(BACKEND_VAR, "file:///elsewhere")]).unwrap();
        assert_eq!(s.backend.as_ref().unwrap().source, BackendSource::PulumiVar);
        assert!(s.require_shared_backend_for(true).is_ok());
        assert!(matches!(settings("S3_PULUMI_BACKEND_URL=s3://a\n", &[(BACKEND_VAR, "s3://b")]), Err(SettingsError::ConflictingBackends)));
        assert!(settings("S3_PULUMI_BACKEND_URL=s3://a\n", &[(BACKEND_VAR, "s3://a")]).is_ok());
    }

    #[test]
    fn backend_urls_are_shown_without_credentials() {
        assert_eq!(redact_url("s3://tradai-state?region=eu-central-1"), "s3://tradai-state?region=eu-central-1");
        assert_eq!(
            redact_url("postgres://deploy:hunter22@db.internal:5432/pulumi?sslmode=require"),
            "postgres://***@db.internal:5432/pulumi?sslmode=require"
        );
        assert_eq!(
            redact_url("s3://b?region=x&access_key=AKIAXYZ&secret_key=abc&endpoint=minio:9000"),
            "s3://b?region=x&access_key=***&secret_key=***&endpoint=minio:9000"
        );
        assert_eq!(redact_url("azblob://c?sig=abc"), "azblob://c?sig=***");
        assert_eq!(redact_url("file:///tmp/state"), "file:///tmp/state");
        let s = settings("S3_PULUMI_BACKEND_URL=https://tok3n@state.example/x\n", &[]).unwrap();
        assert_eq!(s.backend.as_ref().unwrap().describe(), "state backend: https://***@state.example/x (from S3_PULUMI_BACKEND_URL)");
        assert_eq!(s.redact("lock at https://tok3n@state.example/x/.pulumi"), "lock at https://***@state.example/x/.pulumi");
    }

    #[test]
    fn pulumis_secrets_reach_pulumi_when_only_the_process_environment_sets_them() {
        // CI: no infra/.env, everything in the environment.
        let env = [("PULUMI_CONFIG_PASSPHRASE", "from-ci"), ("S3_PULUMI_BACKEND_URL", "s3://b"), ("AWS_PROFILE", "x")];
        let s = Settings::from_parts("/repo/infra/.env".into(), None, env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())), None)
            .unwrap();
        let child = s.child_env();
        assert!(child.contains(&(PASSPHRASE_VAR.into(), "from-ci".into())), "{child:?}");
        assert!(!child.iter().any(|(k, _)| k == "AWS_PROFILE"), "other variables are inherited, not copied");
    }

    #[test]
    fn missing_lists_everything_at_once() {
        let s = settings("S3_PULUMI_BACKEND_URL=s3://b\nPULUMI_CONFIG_PASSPHRASE=\nAWS_PROFILE=\n", &[]).unwrap();
        let e = s.require(Needs::Cloud).unwrap_err().to_string();
        assert_eq!(
            e,
            "missing settings for pulumi: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE), AWS_REGION, AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); set them in infra/.env (`cargo xtask infra-setup` creates it from infra/.env.example) or in the environment"
        );
        assert_eq!(s.missing(Needs::State).len(), 1);
        let s = settings(
            "S3_PULUMI_BACKEND_URL=s3://b\n",
            &[(PASSPHRASE_VAR, "pw"), ("AWS_DEFAULT_REGION", "x"), ("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")],
        )
        .unwrap();
        assert!(s.require(Needs::Cloud).is_ok());
    }

    #[test]
    fn redact_masks_every_secret_value() {
        let s = settings("PULUMI_CONFIG_PASSPHRASE=correct-horse\nAWS_PROFILE=tradai\n", &[("AWS_SECRET_ACCESS_KEY", "AKIAsecretvalue")])
            .unwrap();
        let text = "pass correct-horse key AKIAsecretvalue profile tradai";
        assert_eq!(s.redact(text), "pass *** key *** profile tradai");
    }
}
