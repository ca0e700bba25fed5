//! The description of everything a target is built from, and its input hash.
//!
//! An [`InputManifest`] is one explicit struct, every collection sorted, with a scheme
//! version inside and nothing machine-specific (no absolute paths, mtimes or hostnames).
//! Its SHA-256 is the target's [`InputHash`]. The manifest of the last build is kept in
//! the state store, so "why did this rebuild?" is a diff ([`InputManifest::changes`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::BuildContext;
use crate::filecache::hex;

/// Bump when the meaning of any manifest field changes: every target then rebuilds once.
pub const SCHEME_VERSION: u32 = 1;

/// A SHA-256 over a target's input manifest, as 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InputHash(String);

impl InputHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The short form used in image tags: `inputs-` and the first 32 hex digits.
    pub fn tag(&self) -> String {
        format!("inputs-{}", &self.0[..32])
    }
    /// Parses 64 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then(|| InputHash(s.to_owned()))
    }
}

impl fmt::Display for InputHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything one target's output depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputManifest {
    pub scheme: u32,
    pub kind: String,
    pub id: String,
    /// Build arguments, platform, Dockerfile digest, external base image digests, ...
    pub params: BTreeMap<String, String>,
    /// Context path to [`crate::context::EntryKind::fingerprint`].
    pub files: BTreeMap<String, String>,
    /// Target id to its input hash, for the targets this one is built from.
    pub deps: BTreeMap<String, InputHash>,
}

impl InputManifest {
    pub fn new(kind: &str, id: &str) -> Self {
        InputManifest {
            scheme: SCHEME_VERSION,
            kind: kind.to_owned(),
            id: id.to_owned(),
            params: BTreeMap::new(),
            files: BTreeMap::new(),
            deps: BTreeMap::new(),
        }
    }

    pub fn with_context(mut self, ctx: &BuildContext) -> Self {
        self.files = ctx.entries.iter().map(|(p, e)| (p.clone(), e.fingerprint())).collect();
        self
    }

    /// The input hash: SHA-256 of the manifest's canonical JSON (sorted maps, fixed
    /// field order).
    pub fn hash(&self) -> InputHash {
        let bytes = serde_json::to_vec(self).expect("manifest serialises");
        InputHash(hex(&Sha256::digest(&bytes)))
    }

    /// What differs between `previous` and this manifest, for `--explain`.
    pub fn changes(&self, previous: &InputManifest) -> Vec<Change> {
        let mut out = Vec::new();
        if previous.scheme != self.scheme {
            out.push(Change::Scheme { from: previous.scheme, to: self.scheme });
        }
        diff_maps(&previous.files, &self.files, &mut out, |path, kind| Change::File { path, kind });
        diff_maps(&previous.params, &self.params, &mut out, |name, kind| Change::Param { name, kind });
        let prev_deps: BTreeMap<String, String> = previous.deps.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        let deps: BTreeMap<String, String> = self.deps.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        diff_maps(&prev_deps, &deps, &mut out, |id, kind| Change::Dependency { id, kind });
        out
    }
}

fn diff_maps(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
    make: impl Fn(String, ChangeKind) -> Change,
) {
    for (k, v) in new {
        match old.get(k) {
            None => out.push(make(k.clone(), ChangeKind::Added)),
            Some(o) if o != v => out.push(make(k.clone(), ChangeKind::Modified)),
            Some(_) => {}
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push(make(k.clone(), ChangeKind::Removed));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
        })
    }
}

/// One difference between two manifests of the same target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "lowercase")]
pub enum Change {
    File { path: String, kind: ChangeKind },
    Param { name: String, kind: ChangeKind },
    Dependency { id: String, kind: ChangeKind },
    Scheme { from: u32, to: u32 },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::File { path, kind } => write!(f, "file {path} {kind}"),
            Change::Param { name, kind } => write!(f, "{name} {kind}"),
            Change::Dependency { id, kind: ChangeKind::Modified } => write!(f, "dependency {id} changed"),
            Change::Dependency { id, kind } => write!(f, "dependency {id} {kind}"),
            Change::Scheme { from, to } => write!(f, "hash scheme v{from} -> v{to}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> InputManifest {
        let mut m = InputManifest::new("image", "tradai/lambda-x");
        m.files.insert("handler.py".into(), "file aa".into());
        m.params.insert("platform".into(), "linux/amd64".into());
        m.deps.insert("tradai/lambda-base".into(), InputHash("0".repeat(64)));
        m
    }

    #[test]
    fn hash_is_64_hex_and_stable() {
        let h = manifest().hash();
        assert_eq!(h.as_str().len(), 64);
        assert_eq!(h, manifest().hash());
        assert!(InputHash::parse(h.as_str()).is_some());
        assert_eq!(h.tag().len(), "inputs-".len() + 32);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = manifest().hash();
        let mut m = manifest();
        m.files.insert("handler.py".into(), "exec aa".into());
        assert_ne!(m.hash(), base);
        let mut m = manifest();
        m.params.insert("build-arg:X".into(), "1".into());
        assert_ne!(m.hash(), base);
        let mut m = manifest();
        m.deps.insert("tradai/lambda-base".into(), InputHash("1".repeat(64)));
        assert_ne!(m.hash(), base);
        let mut m = manifest();
        m.id = "tradai/lambda-y".into();
        assert_ne!(m.hash(), base);
    }

    #[test]
    fn changes_name_files_params_and_dependencies() {
        let old = manifest();
        let mut new = manifest();
        new.files.insert("handler.py".into(), "file bb".into());
        new.files.insert("util.py".into(), "file cc".into());
        new.params.remove("platform");
        new.deps.insert("tradai/lambda-base".into(), InputHash("1".repeat(64)));
        let text: Vec<String> = new.changes(&old).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "file handler.py modified",
                "file util.py added",
                "platform removed",
                "dependency tradai/lambda-base changed"
            ]
        );
    }
}
