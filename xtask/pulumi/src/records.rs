//! Skipping stacks whose inputs did not change.
//!
//! Pulumi itself cannot tell that a stack is unchanged without running its program (a
//! no-change `pulumi up` costs 8.5 s or more, pulumi#3671), so the tool keeps, per stack,
//! the input hash of its last successful `up` against a backend, and skips the stack while
//! the hash is the same.
//!
//! A stack's inputs ([`stack_manifest`], an engine [`InputManifest`] hashed by the engine)
//! are what its program deploys from: every file of `infra/<stack>/` but its tests and the
//! other environments' `Pulumi.<env>.yaml`, every file of the shared package
//! `infra/shared/` but its tests, the Python dependencies (`infra/pyproject.toml`,
//! `infra/uv.lock`), a hash of each upstream stack's outputs (the stacks it reads through
//! `stack_ref`) and, for compute, the digest of every image it deploys.
//!
//! The records ([`Records`]) are the engine's [`StateStore`] under
//! `<target>/xtask/pulumi-stacks/`, keyed by backend URL, stack and environment: a
//! read-modify-write under an exclusive lock, replaced atomically, written only after a
//! successful `up`. A lost or unreadable record means the stack runs. Each record also
//! keeps a hash of the state that `up` left ([`StateProbe`]), so a stack is skipped only
//! while the backend still holds that state: an `up` from another machine, a hand-run
//! `pulumi` command or a refresh makes it run again. Changes made outside Pulumi (drift)
//! are not seen here; `infra-preview --expect-no-changes` is the check for them.

use std::collections::BTreeMap;
use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use xtask_engine::inputs::{Change, ChangeKind};
use xtask_engine::{BuildContext, DockerIgnore, FileCache, InputHash, InputManifest, Output, State, StateStore, TargetRecord};

use crate::error::StackId;
use crate::graph::Stack;

/// The `kind` of a stack's input manifest.
pub const KIND: &str = "pulumi-stack";

/// Why the inputs of a stack cannot be hashed or its record not written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot hash the inputs of {id}: {detail}")]
    Inputs { id: StackId, detail: String },
    #[error("cannot read the state of {id} exported by pulumi: {detail}")]
    Export { id: StackId, detail: String },
    #[error("cannot write the record of {id} in {path}: {detail}")]
    Write { id: StackId, path: Utf8PathBuf, detail: String },
    #[error("cannot read the records of stack deployments in {path}: {detail}")]
    Load { path: Utf8PathBuf, detail: String },
}

/// Everything a stack deploys from, as the engine's input manifest (`pulumi-stack`,
/// `<stack>/<env>`): its program and the shared package as file fingerprints (paths
/// relative to `infra/`), `upstream <stack>` parameters with the hash of each upstream's
/// outputs, and `image <repository>` parameters with each image digest.
pub fn stack_manifest(
    infra: &Utf8Path,
    id: StackId,
    upstream_outputs: &BTreeMap<Stack, InputHash>,
    images: &BTreeMap<String, String>,
) -> Result<InputManifest, RecordError> {
    let fail = |detail: String| RecordError::Inputs { id, detail };
    let files = FileCache::in_memory();
    let mut manifest = InputManifest::new(KIND, &id.to_string());
    // The program: every file but tests, hidden files (published image manifests among
    // them, hashed as digests instead) and the other environments' stack settings.
    let program = format!("tests\n.*\n**/.*\nPulumi.*.yaml\n!Pulumi.{}.yaml\n", id.env);
    let shared = "tests\n.*\n**/.*\n";
    for (dir, rules) in [(id.stack.name(), program.as_str()), ("shared", shared)] {
        let root = infra.join(dir);
        if dir == "shared" && !root.is_dir() {
            // A checkout without the shared package (the tool's own test fixtures).
            continue;
        }
        let ignore = DockerIgnore::with_builtins(Some(rules)).map_err(|e| fail(e.to_string()))?;
        let ctx = BuildContext::scan(&root, &ignore, &files).map_err(|e| fail(format!("{e:#}")))?;
        // Files and links only: a folder by itself changes nothing a program does.
        let entries = ctx.entries.iter().filter(|(_, e)| !matches!(e, xtask_engine::EntryKind::Dir));
        manifest.files.extend(entries.map(|(p, e)| (format!("{dir}/{p}"), e.fingerprint())));
    }
    // The one uv project of the four programs: Pulumi's SDK and provider versions.
    for name in ["pyproject.toml", "uv.lock"] {
        let path = infra.join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            let digest = files.digest(&path, &meta).map_err(|e| fail(format!("{e:#}")))?;
            manifest.files.insert(name.to_owned(), format!("file {digest}"));
        }
    }
    for (stack, hash) in upstream_outputs {
        manifest.params.insert(format!("upstream {stack}"), hash.to_string());
    }
    for (repository, digest) in images {
        manifest.params.insert(format!("image {repository}"), digest.clone());
    }
    Ok(manifest)
}

/// The hashes a record keeps of what a stack's backend held after its `up`, read from
/// `pulumi stack export` (secrets stay encrypted; nothing is decrypted to hash them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProbe {
    /// The whole exported deployment: any later update, refresh or import changes it.
    pub state: InputHash,
    /// The stack's outputs (the root `pulumi:pulumi:Stack` resource's), what downstream
    /// stacks read. A secret output is hashed as its ciphertext: a changed secret always
    /// changes the hash.
    pub outputs: InputHash,
}

impl StateProbe {
    /// Hashes the JSON `pulumi stack export` printed.
    pub fn from_export(id: StackId, export: &str) -> Result<StateProbe, RecordError> {
        let doc: Value = serde_json::from_str(export.trim()).map_err(|e| RecordError::Export { id, detail: e.to_string() })?;
        let deployment = doc.get("deployment").ok_or_else(|| RecordError::Export { id, detail: "no \"deployment\" object".into() })?;
        let mut state = InputManifest::new("pulumi-state", &id.to_string());
        // serde_json's maps are sorted, so the text is canonical.
        state.params.insert("deployment".into(), deployment.to_string());
        let root = deployment["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["urn"].as_str().is_some_and(|u| u.contains("::pulumi:pulumi:Stack::"))));
        let outputs = root.map(|r| r["outputs"].clone()).unwrap_or(Value::Null);
        Ok(StateProbe { state: state.hash(), outputs: outputs_hash(id.stack, &outputs) })
    }
}

/// The hash of a stack's outputs: one parameter per output, its canonical JSON.
pub fn outputs_hash(stack: Stack, outputs: &Value) -> InputHash {
    let mut m = InputManifest::new("pulumi-outputs", stack.name());
    match outputs.as_object() {
        Some(map) => m.params.extend(map.iter().map(|(k, v)| (k.clone(), v.to_string()))),
        None => {
            m.params.insert(String::new(), outputs.to_string());
        }
    }
    m.hash()
}

/// The records of successful `up`s: `<target>/xtask/pulumi-stacks/state.json`.
#[derive(Debug, Clone)]
pub struct Records {
    store: StateStore,
}

const DETAIL_STATE: &str = "state";
const DETAIL_OUTPUTS: &str = "outputs";

impl Records {
    /// `state_dir` is the tool's state folder (`<target>/xtask`).
    pub fn new(state_dir: &Utf8Path) -> Records {
        Records { store: StateStore::new(&state_dir.join("pulumi-stacks")) }
    }

    pub fn path(&self) -> Utf8PathBuf {
        self.store.path()
    }

    /// The key of a stack's record: the stack, the environment and the backend. The same
    /// stack name in another backend is another deployment. The backend URL is kept as a
    /// hash: a URL may carry credentials, and records are plain files.
    pub fn key(backend: &str, id: StackId) -> String {
        let mut url = InputManifest::new("pulumi-backend", "");
        url.params.insert("url".into(), backend.to_owned());
        format!("{id} @ backend {}", &url.hash().as_str()[..16])
    }

    /// All records, read once per command. An unreadable file is set aside by the store
    /// (with the reason in `discarded`) and every stack runs.
    pub fn load(&self) -> Result<State, RecordError> {
        self.store.load().map_err(|e| RecordError::Load { path: self.path(), detail: format!("{e:#}") })
    }

    /// Records a successful `up` of `id` with these inputs, leaving this state.
    pub fn record(&self, backend: &str, id: StackId, inputs: InputManifest, probe: &StateProbe) -> Result<(), RecordError> {
        let mut output = Output::default();
        output.detail.insert(DETAIL_STATE.into(), probe.state.to_string());
        output.detail.insert(DETAIL_OUTPUTS.into(), probe.outputs.to_string());
        let record = TargetRecord { input_hash: inputs.hash(), inputs, output, recorded_at: xtask_engine::state::now_secs() };
        self.store.record(&Records::key(backend, id), record).map_err(|e| RecordError::Write {
            id,
            path: self.path(),
            detail: format!("{e:#}"),
        })
    }
}

/// The record of one stack, read from a [`State`].
pub fn find<'a>(state: &'a State, backend: &str, id: StackId) -> Option<&'a TargetRecord> {
    state.targets.get(&Records::key(backend, id)).filter(|r| r.inputs.kind == KIND)
}

/// The outputs hash a record kept.
pub fn recorded_outputs(record: &TargetRecord) -> Option<InputHash> {
    record.output.detail.get(DETAIL_OUTPUTS).and_then(|h| InputHash::parse(h))
}

/// What to do with a stack, decided from its inputs and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deploy it: why, and (for `--explain`) what changed since the last `up`.
    Run { reason: String, changes: Vec<String> },
    /// The inputs are those of the last successful `up` (at `recorded_at`, Unix seconds):
    /// skip it while the backend still holds the state that `up` left (`state`).
    Unchanged { recorded_at: u64, state: InputHash },
}

/// Compares a stack's inputs with its record.
pub fn verdict(record: Option<&TargetRecord>, inputs: &InputManifest, force: bool) -> Verdict {
    if force {
        return Verdict::Run { reason: "--force".into(), changes: Vec::new() };
    }
    let Some(record) = record else {
        return Verdict::Run { reason: "no record here of a successful up against this state backend".into(), changes: Vec::new() };
    };
    let changes: Vec<String> = inputs.changes(&record.inputs).iter().map(describe).collect();
    if record.input_hash != inputs.hash() {
        let when = when(record.recorded_at);
        let reason = match changes.as_slice() {
            [] => format!("its inputs changed since its last up ({when})"),
            [one] => format!("{one} since its last up ({when})"),
            [first, rest @ ..] => format!("{first} and {} more change(s) since its last up ({when})", rest.len()),
        };
        return Verdict::Run { reason, changes };
    }
    match record.output.detail.get(DETAIL_STATE).and_then(|h| InputHash::parse(h)) {
        Some(state) => Verdict::Unchanged { recorded_at: record.recorded_at, state },
        None => Verdict::Run { reason: "its record has no state hash".into(), changes: Vec::new() },
    }
}

/// One difference between two stack manifests, in the words of the stack.
pub fn describe(change: &Change) -> String {
    match change {
        Change::File { path, kind } => format!("infra/{path} {kind}"),
        Change::Param { name, kind } => match (name.split_once(' '), kind) {
            (Some(("upstream", s)), ChangeKind::Modified) => format!("the outputs of {s} changed"),
            (Some(("upstream", s)), k) => format!("upstream {s} {k}"),
            (Some(("image", r)), ChangeKind::Modified) => format!("image {r} has a new digest"),
            (Some(("image", r)), k) => format!("image {r} {k}"),
            _ => change.to_string(),
        },
        other => other.to_string(),
    }
}

/// `2026-11-30 10:11:12 UTC`.
pub fn when(secs: u64) -> String {
    let s = xtask_engine::state::utc_stamp(secs);
    format!("{}-{}-{} {}:{}:{} UTC", &s[0..4], &s[4..6], &s[6..8], &s[8..10], &s[10..12], &s[12..14])
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Run { reason, .. } => write!(f, "runs: {reason}"),
            Verdict::Unchanged { recorded_at, .. } => write!(f, "unchanged since its last up ({})", when(*recorded_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Env;

    const DEV_COMPUTE: StackId = StackId { stack: Stack::Compute, env: Env::Dev };

    fn write(root: &Utf8Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn infra() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let infra = Utf8PathBuf::from_path_buf(tmp.path().join("infra")).unwrap();
        for (rel, text) in [
            ("compute/Pulumi.yaml", "name: tradai-compute\n"),
            ("compute/Pulumi.dev.yaml", "config: {}\n"),
            ("compute/Pulumi.prod.yaml", "config: {}\n"),
            ("compute/__main__.py", "import modules\n"),
            ("compute/modules/ecs.py", "ECS = 1\n"),
            ("compute/tests/test_ecs.py", "def test(): pass\n"),
            ("compute/.image-manifests/r.json", "{}\n"),
            ("shared/tradai_infra_shared/config.py", "X = 1\n"),
            ("shared/tests/test_config.py", "def test(): pass\n"),
            ("pyproject.toml", "[project]\n"),
            ("uv.lock", "version = 1\n"),
        ] {
            write(&infra, rel, text);
        }
        (tmp, infra)
    }

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn the_manifest_holds_the_program_the_shared_package_upstream_outputs_and_images() {
        let (_tmp, infra) = infra();
        let upstream: BTreeMap<Stack, InputHash> =
            [(Stack::Persistent, outputs_hash(Stack::Persistent, &serde_json::json!({"a": 1})))].into();
        let images: BTreeMap<String, String> = [("tradai/backend".to_owned(), digest(1))].into();
        let m = stack_manifest(&infra, DEV_COMPUTE, &upstream, &images).unwrap();
        let files: Vec<&str> = m.files.keys().map(String::as_str).collect();
        assert_eq!(
            files,
            [
                "compute/Pulumi.dev.yaml",
                "compute/Pulumi.yaml",
                "compute/__main__.py",
                "compute/modules/ecs.py",
                "pyproject.toml",
                "shared/tradai_infra_shared/config.py",
                "uv.lock"
            ]
        );
        assert_eq!(m.params.keys().collect::<Vec<_>>(), ["image tradai/backend", "upstream persistent"]);
        assert_eq!(m.kind, KIND);
        assert_eq!(m.id, "compute/dev");
    }

    #[test]
    fn what_changes_the_hash_and_what_does_not() {
        let (_tmp, infra) = infra();
        let (none, no_images) = (BTreeMap::<Stack, InputHash>::new(), BTreeMap::<String, String>::new());
        let base = stack_manifest(&infra, DEV_COMPUTE, &none, &no_images).unwrap();
        let hash = |infra: &Utf8Path| stack_manifest(infra, DEV_COMPUTE, &none, &no_images).unwrap().hash();
        // Tests, hidden files and another environment's settings are not inputs.
        write(&infra, "compute/tests/test_ecs.py", "def test(): assert 1\n");
        write(&infra, "compute/.image-manifests/r.json", "{\"images\": {}}\n");
        write(&infra, "compute/Pulumi.prod.yaml", "config: {x: 1}\n");
        write(&infra, "shared/tests/test_config.py", "x\n");
        assert_eq!(hash(&infra), base.hash());
        // The program, this environment's settings, the shared package and the lock are.
        for rel in ["compute/modules/ecs.py", "compute/Pulumi.dev.yaml", "shared/tradai_infra_shared/config.py", "uv.lock"] {
            let before = hash(&infra);
            write(&infra, rel, "changed\n");
            assert_ne!(hash(&infra), before, "{rel}");
        }
        // So are upstream outputs and image digests.
        let up: BTreeMap<Stack, InputHash> =
            [(Stack::Foundation, outputs_hash(Stack::Foundation, &serde_json::json!({"vpc": "a"})))].into();
        let up2: BTreeMap<Stack, InputHash> =
            [(Stack::Foundation, outputs_hash(Stack::Foundation, &serde_json::json!({"vpc": "b"})))].into();
        assert_ne!(
            stack_manifest(&infra, DEV_COMPUTE, &up, &no_images).unwrap().hash(),
            stack_manifest(&infra, DEV_COMPUTE, &up2, &no_images).unwrap().hash()
        );
        let i1: BTreeMap<String, String> = [("tradai/x".to_owned(), digest(1))].into();
        let i2: BTreeMap<String, String> = [("tradai/x".to_owned(), digest(2))].into();
        assert_ne!(
            stack_manifest(&infra, DEV_COMPUTE, &none, &i1).unwrap().hash(),
            stack_manifest(&infra, DEV_COMPUTE, &none, &i2).unwrap().hash()
        );
    }

    fn probe(text: &str) -> StateProbe {
        StateProbe::from_export(DEV_COMPUTE, text).unwrap()
    }

    #[test]
    fn state_probe_hashes_the_deployment_and_the_root_outputs() {
        let a = r#"{"version": 3, "deployment": {"manifest": {"time": "1"}, "resources": [
            {"urn": "urn:pulumi:dev::tradai-compute::pulumi:pulumi:Stack::tradai-compute-dev", "outputs": {"alb": "x", "pw": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:aa"}}},
            {"urn": "urn:pulumi:dev::tradai-compute::aws:lb/loadBalancer:LoadBalancer::alb"}]}}"#;
        // Another update with the same outputs: new state, same outputs.
        let b = a.replace("\"time\": \"1\"", "\"time\": \"2\"");
        // The secret output changed (its ciphertext did).
        let c = a.replace("v1:aa", "v1:bb");
        assert_ne!(probe(a).state, probe(&b).state);
        assert_eq!(probe(a).outputs, probe(&b).outputs);
        assert_ne!(probe(a).outputs, probe(&c).outputs);
        // Whitespace and key order do not matter.
        let reordered = r#"{"deployment":{"resources":[{"outputs":{"pw":{"ciphertext":"v1:aa","4dabf18193072939515e22adb298388d":"1b47061264138c4ac30d75fd1eb44270"},"alb":"x"},"urn":"urn:pulumi:dev::tradai-compute::pulumi:pulumi:Stack::tradai-compute-dev"},{"urn":"urn:pulumi:dev::tradai-compute::aws:lb/loadBalancer:LoadBalancer::alb"}],"manifest":{"time":"1"}},"version":3}"#;
        assert_eq!(probe(a), probe(reordered));
        assert!(StateProbe::from_export(DEV_COMPUTE, "not json").is_err());
    }

    #[test]
    fn records_decide_run_or_skip_per_backend_and_say_why() {
        let (tmp, infra) = infra();
        let (none, no_images) = (BTreeMap::<Stack, InputHash>::new(), BTreeMap::<String, String>::new());
        let records = Records::new(&Utf8PathBuf::from_path_buf(tmp.path().join("target/xtask")).unwrap());
        let inputs = stack_manifest(&infra, DEV_COMPUTE, &none, &no_images).unwrap();
        let state = records.load().unwrap();
        assert!(
            matches!(verdict(find(&state, "file:///a", DEV_COMPUTE), &inputs, false), Verdict::Run { reason, .. } if reason.contains("no record"))
        );

        let p = probe(r#"{"deployment": {"resources": []}}"#);
        records.record("file:///a", DEV_COMPUTE, inputs.clone(), &p).unwrap();
        let state = records.load().unwrap();
        match verdict(find(&state, "file:///a", DEV_COMPUTE), &inputs, false) {
            Verdict::Unchanged { state, .. } => assert_eq!(state, p.state),
            v => panic!("{v:?}"),
        }
        // Another backend, another environment, or --force: no skip.
        assert!(find(&state, "s3://b", DEV_COMPUTE).is_none());
        assert!(find(&state, "file:///a", StackId { stack: Stack::Compute, env: Env::Staging }).is_none());
        assert_eq!(
            verdict(find(&state, "file:///a", DEV_COMPUTE), &inputs, true),
            Verdict::Run { reason: "--force".into(), changes: vec![] }
        );
        // A program edit runs the stack, and says which file.
        write(&infra, "compute/modules/ecs.py", "ECS = 2\n");
        let edited = stack_manifest(&infra, DEV_COMPUTE, &none, &no_images).unwrap();
        match verdict(find(&state, "file:///a", DEV_COMPUTE), &edited, false) {
            Verdict::Run { reason, changes } => {
                assert!(reason.starts_with("infra/compute/modules/ecs.py modified since its last up ("), "{reason}");
                assert_eq!(changes, ["infra/compute/modules/ecs.py modified"]);
            }
            v => panic!("{v:?}"),
        }
        // A lost record (a corrupt file) means the stack runs.
        std::fs::write(records.path(), "{").unwrap();
        let state = records.load().unwrap();
        assert!(state.discarded.is_some());
        assert!(matches!(verdict(find(&state, "file:///a", DEV_COMPUTE), &inputs, false), Verdict::Run { .. }));
    }

    #[test]
    fn changes_are_told_in_the_stacks_words() {
        let m = |k: ChangeKind| Change::Param { name: "upstream foundation".into(), kind: k };
        assert_eq!(describe(&m(ChangeKind::Modified)), "the outputs of foundation changed");
        assert_eq!(
            describe(&Change::Param { name: "image tradai/backend".into(), kind: ChangeKind::Modified }),
            "image tradai/backend has a new digest"
        );
        assert_eq!(describe(&Change::File { path: "shared/x.py".into(), kind: ChangeKind::Added }), "infra/shared/x.py added");
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
    }
}
