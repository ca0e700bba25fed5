//! The settings every `pulumi` run gets: `infra/.env` merged with the process environment
//! (the process wins), the state backend, and the checks that say which variables are
//! missing before Pulumi is ever started.
//!
//! A variable set to the empty string counts as unset, in the file and in the process
//! environment alike (the committed template leaves the passphrase empty on purpose).

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};

use crate::dotenv::{self, DotEnv};

/// The project's name for the backend URL (the seeds' `infra/.env`).
pub const S3_BACKEND_VAR: &str = "S3_PULUMI_BACKEND_URL";
/// Pulumi's own name for it; what the child process receives.
pub const BACKEND_VAR: &str = "PULUMI_BACKEND_URL";
pub const PASSPHRASE_VAR: &str = "PULUMI_CONFIG_PASSPHRASE";
pub const PASSPHRASE_FILE_VAR: &str = "PULUMI_CONFIG_PASSPHRASE_FILE";

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
    /// Nothing configured: the local file backend under `target/`.
    LocalDefault,
}

impl Backend {
    /// The folder of a `file://` backend.
    pub fn local_path(&self) -> Option<Utf8PathBuf> {
        self.url.strip_prefix("file://").map(|p| Utf8PathBuf::from(p.split('?').next().unwrap_or(p)))
    }
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
        "prod would use the local state backend ({url}); set {S3_BACKEND_VAR} in infra/.env or the environment to the shared backend (a local file:// URL given explicitly is accepted)"
    )]
    ProdOnLocalBackend { url: String },
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
    pub backend: Backend,
    pub dotenv_path: Utf8PathBuf,
    pub dotenv_found: bool,
}

impl Settings {
    /// Reads `<root>/infra/.env` (absent is fine: CI sets everything in the environment)
    /// and merges it with the process environment.
    pub fn load(root: &Utf8Path) -> Result<Settings, SettingsError> {
        let path = root.join("infra/.env");
        let dotenv = match std::fs::read_to_string(&path) {
            Ok(text) => Some(dotenv::parse(&text).map_err(|problem| SettingsError::BadDotEnv { path: path.clone(), problem })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(SettingsError::Unreadable { path, source }),
        };
        Settings::from_parts(root, path, dotenv, std::env::vars())
    }

    /// The merge itself, for any `.env` and process environment.
    pub fn from_parts(
        root: &Utf8Path,
        dotenv_path: Utf8PathBuf,
        dotenv: Option<DotEnv>,
        process: impl IntoIterator<Item = (String, String)>,
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
        let backend = match (merged.get(S3_BACKEND_VAR), merged.get(BACKEND_VAR)) {
            (Some(a), Some(b)) if a != b => return Err(SettingsError::ConflictingBackends),
            (Some(a), _) => Backend { url: a.clone(), source: BackendSource::S3Var },
            (None, Some(b)) => Backend { url: b.clone(), source: BackendSource::PulumiVar },
            (None, None) => Backend { url: format!("file://{}", root.join("target/pulumi-state")), source: BackendSource::LocalDefault },
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

    /// Production state never goes to the implicit local backend.
    pub fn require_shared_backend_for(&self, production: bool) -> Result<(), SettingsError> {
        if production && self.backend.source == BackendSource::LocalDefault {
            return Err(SettingsError::ProdOnLocalBackend { url: self.backend.url.clone() });
        }
        Ok(())
    }

    /// Creates the folder of a local backend (Pulumi expects it to exist).
    pub fn prepare_backend(&self) -> Result<(), SettingsError> {
        if let Some(path) = self.backend.local_path() {
            std::fs::create_dir_all(&path).map_err(|source| SettingsError::LocalBackend { path, source })?;
        }
        Ok(())
    }

    /// The variables a child process gets on top of the inherited environment: what
    /// `infra/.env` sets and the backend under Pulumi's name.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.forwarded.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.retain(|(k, _)| k != BACKEND_VAR);
        env.push((BACKEND_VAR.to_owned(), self.backend.url.clone()));
        env
    }

    /// Values that must never be shown: the passphrase, AWS secrets, and any variable whose
    /// name says it is a secret.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .merged
            .iter()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.clone())
            .filter(|v| v.len() >= 4)
            .collect();
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

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
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
        let env = dotenv::parse(dotenv).unwrap();
        Settings::from_parts(
            Utf8Path::new("/repo"),
            "/repo/infra/.env".into(),
            Some(env),
            process.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn process_environment_wins_and_empty_counts_as_unset() {
        let s = settings("AWS_PROFILE=file\nAWS_REGION=eu-central-1\nPULUMI_CONFIG_PASSPHRASE=\n", &[("AWS_PROFILE", "proc"), ("AWS_REGION", "")]).unwrap();
        assert_eq!(s.get("AWS_PROFILE"), Some("proc"));
        assert_eq!(s.get("AWS_REGION"), Some("eu-central-1"));
        assert_eq!(s.get(PASSPHRASE_VAR), None);
        let env = s.child_env();
        assert!(env.contains(&("AWS_PROFILE".into(), "proc".into())));
        assert!(!env.iter().any(|(k, _)| k == PASSPHRASE_VAR));
    }

    #[test]
    fn backend_defaults_to_local_files_and_prefers_the_seed_variable() {
        let s = settings("", &[]).unwrap();
        assert_eq!(s.backend, Backend { url: "file:///repo/target/pulumi-state".into(), source: BackendSource::LocalDefault });
        assert_eq!(s.backend.local_path().unwrap(), "/repo/target/pulumi-state");
        assert!(matches!(s.require_shared_backend_for(true), Err(SettingsError::ProdOnLocalBackend { .. })));
        assert!(s.require_shared_backend_for(false).is_ok());

        let s = settings("S3_PULUMI_BACKEND_URL=s3://bucket?region=eu-central-1\n", &[]).unwrap();
        assert_eq!(s.backend.source, BackendSource::S3Var);
        assert!(s.child_env().contains(&(BACKEND_VAR.into(), "s3://bucket?region=eu-central-1".into())));
        assert_eq!(s.backend.local_path(), None);

        let s = settings("", &[(BACKEND_VAR, "file:///elsewhere")]).unwrap();
        assert_eq!(s.backend.source, BackendSource::PulumiVar);
        assert!(matches!(settings("S3_PULUMI_BACKEND_URL=s3://a\n", &[(BACKEND_VAR, "s3://b")]), Err(SettingsError::ConflictingBackends)));
        assert!(settings("S3_PULUMI_BACKEND_URL=s3://a\n", &[(BACKEND_VAR, "s3://a")]).is_ok());
    }

    #[test]
    fn missing_lists_everything_at_once() {
        let s = settings("PULUMI_CONFIG_PASSPHRASE=\nAWS_PROFILE=\n", &[]).unwrap();
        let e = s.require(Needs::Cloud).unwrap_err().to_string();
        assert_eq!(
            e,
            "missing settings for pulumi: PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE), AWS_REGION, AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); set them in infra/.env (`cargo xtask infra-setup` creates it from infra/.env.example) or in the environment"
        );
        assert_eq!(s.missing(Needs::State).len(), 1);
        let s = settings("", &[(PASSPHRASE_VAR, "pw"), ("AWS_DEFAULT_REGION", "x"), ("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]).unwrap();
        assert!(s.require(Needs::Cloud).is_ok());
    }

    #[test]
    fn redact_masks_every_secret_value() {
        let s = settings("PULUMI_CONFIG_PASSPHRASE=correct-horse\nAWS_PROFILE=tradai\n", &[("AWS_SECRET_ACCESS_KEY", "AKIAsecretvalue")]).unwrap();
        let text = "pass correct-horse key AKIAsecretvalue profile tradai";
        assert_eq!(s.redact(text), "pass *** key *** profile tradai");
    }
}
