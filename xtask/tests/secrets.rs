//! The standing secrets suite (issue 15): every command family run as the real binary
//! with recognisable fake secrets in its environment and files, and a check that none of
//! them appears where it must not.
//!
//! The secrets: AWS keys (access key id, secret key, session token), the Pulumi
//! passphrase (one in the process environment, another in `infra/.env`), the ECR login
//! token moto hands out (decoded and encoded), and a CodeArtifact token. Each is looked
//! for as it is, percent-encoded, and inside base64 at all three byte alignments (an HTTP
//! Basic header, a Docker `auth` entry).
//!
//! Where they are looked for: the stdout and stderr of every run (`-vv`, then
//! `XTASK_LOG=debug`, then `XTASK_LOG=trace`), every file of the fixture tree (its
//! `target/xtask/` state included, and the tool's temporary files: `TMPDIR` points into
//! it) except the files meant to hold one secret each, which are listed, and the
//! argument lists of every process the binary starts, read from `/proc/<pid>/cmdline`
//! while the run goes on. A `docker` wrapper and the Pulumi double record the names of
//! the environment variables they are started with, which shows the passphrase reaches
//! pulumi and never Docker.
//!
//! The real services: moto (ECR, Lambda) and a registry and pypiserver on loopback. moto
//! has no CodeArtifact, so a small loopback stand-in answers the two CodeArtifact calls
//! (`AWS_ENDPOINT_URL_CODEARTIFACT`), handing out the token and pypiserver's address; the
//! upload with that token succeeding shows the token went where it must.

#[path = "support/moto.rs"]
mod moto;
#[path = "support/pypiserver.rs"]
mod pypiserver;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moto::Moto;
use pypiserver::PyPiServer;
use support::Fixture;
use support::registry::TestRegistry;

// ---------------------------------------------------------------------------------------
// The secrets and how each may be spelled.
// ---------------------------------------------------------------------------------------

/// A secret the runs must not reveal.
struct Secret {
    name: &'static str,
    value: String,
}

/// One spelling of a secret: as it is, percent-encoded (in a URL), or the part of its
/// base64 that does not depend on what surrounds it (at each of the 3 byte alignments).
struct Needle {
    secret: &'static str,
    form: String,
    bytes: Vec<u8>,
}

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn percent_encode(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn needles(secrets: &[Secret]) -> Vec<Needle> {
    let mut all = Vec::new();
    for s in secrets {
        let mut forms: BTreeMap<String, String> = BTreeMap::new();
        forms.insert("as is".into(), s.value.clone());
        forms.insert("percent-encoded".into(), percent_encode(&s.value, true));
        forms.insert("percent-encoded (lower case)".into(), percent_encode(&s.value, false));
        for (alphabet, name) in [(STANDARD, "base64"), (URL_SAFE, "base64url")] {
            for offset in 0..3usize {
                let mut data = vec![b'#'; offset];
                data.extend_from_slice(s.value.as_bytes());
                let encoded = base64(&data, alphabet);
                // Characters fully made of the secret's bits: skip those holding bits of
                // the prefix, stop before those holding bits of what follows.
                let start = (offset * 8).div_ceil(6);
                let end = data.len() * 8 / 6;
                if end > start + 8 {
                    forms.insert(format!("{name} at offset {offset}"), encoded[start..end].to_owned());
                }
            }
        }
        let mut distinct = BTreeSet::new();
        for (form, text) in forms {
            if distinct.insert(text.clone()) {
                all.push(Needle { secret: s.name, form, bytes: text.into_bytes() });
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secrets (by name) `bytes` holds, each with the spelling found.
fn found_in(needles: &[Needle], bytes: &[u8]) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for n in needles {
        if contains(bytes, &n.bytes) && !found.iter().any(|(s, _)| *s == n.secret) {
            found.push((n.secret, n.form.clone()));
        }
    }
    found
}

/// A value no other run of this suite uses, so a match is this run's secret.
fn unique() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!("{:012x}", (nanos ^ (u64::from(std::process::id()) << 20)) & 0xffff_ffff_ffff)
}

// ---------------------------------------------------------------------------------------
// The argument lists of every process a run starts, read while it runs.
// ---------------------------------------------------------------------------------------

/// What a watch saw: every descendant process (pid, start time), every distinct command
/// line, and the secrets found in them.
#[derive(Default)]
struct Seen {
    processes: BTreeSet<(u32, u64)>,
    cmdlines: BTreeSet<(u32, u64, Vec<u8>)>,
    leaks: Vec<String>,
    /// (program, secret, name of the environment variable holding it, command line):
    /// which secrets each child was started with, read from `/proc/<pid>/environ`
    /// (values are only searched, never kept).
    env: BTreeSet<(String, &'static str, String, String)>,
}

/// The program a command line runs: its first argument's file name, or the script's
/// when a shell runs one (the `docker` wrapper).
fn program_of(cmdline: &[u8]) -> String {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let name = |a: &[u8]| String::from_utf8_lossy(a).rsplit('/').next().unwrap_or("").to_owned();
    let first = name(args[0]);
    match args.get(1) {
        Some(script) if matches!(first.as_str(), "sh" | "bash" | "dash") && !script.is_empty() && !script.starts_with(b"-") => name(script),
        _ => first,
    }
}

struct ProcWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Seen>,
}

/// `(ppid, start time)` of a process, from `/proc/<pid>/stat` (fields 4 and 22; the
/// command name in parentheses may hold spaces, so fields are counted after the last `)`).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Polls `/proc` every 2 ms until stopped: every process whose parent chain leads to
/// `root` has its command line read and searched, and its environment too. A process's
/// parent is remembered from when it was first seen, so an orphan outliving its parent
/// is still followed. `root_cmdline` is the binary's own command line (NUL-terminated
/// arguments): a child showing it is a fork that has not yet run its program, and still
/// has the binary's environment.
fn watch(root: u32, root_cmdline: Vec<u8>, needles: Arc<Vec<Needle>>) -> ProcWatch {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut known: HashMap<u32, (u32, u64)> = HashMap::new();
        loop {
            // Read once more after the stop request: the last children may still run.
            let last = stopping.load(Ordering::SeqCst);
            let mut alive = HashSet::new();
            for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                alive.insert(pid);
                if let std::collections::hash_map::Entry::Vacant(v) = known.entry(pid)
                    && let Some(s) = stat(pid)
                {
                    v.insert(s);
                }
            }
            known.retain(|pid, _| alive.contains(pid));
            let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
            for (pid, (ppid, _)) in &known {
                children.entry(*ppid).or_default().push(*pid);
            }
            let mut queue = vec![root];
            while let Some(parent) = queue.pop() {
                for &pid in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
                    queue.push(pid);
                    let start = known[&pid].1;
                    seen.processes.insert((pid, start));
                    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
                    if cmdline.is_empty() || !seen.cmdlines.insert((pid, start, cmdline.clone())) {
                        continue;
                    }
                    for (secret, form) in found_in(&needles, &cmdline) {
                        let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                        seen.leaks.push(format!("{secret} ({form}) in the arguments of process {pid}: {shown}"));
                    }
                    if cmdline == root_cmdline {
                        continue;
                    }
                    let program = program_of(&cmdline);
                    let shown: String = String::from_utf8_lossy(&cmdline).replace('\0', " ").chars().take(160).collect();
                    for var in fs::read(format!("/proc/{pid}/environ")).unwrap_or_default().split(|b| *b == 0) {
                        let Some(eq) = var.iter().position(|b| *b == b'=') else { continue };
                        for (secret, _) in found_in(&needles, &var[eq + 1..]) {
                            let name = String::from_utf8_lossy(&var[..eq]).into_owned();
                            seen.env.insert((program.clone(), secret, name, shown.clone()));
                        }
                    }
                }
            }
            if last {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    ProcWatch { stop, handle }
}

impl ProcWatch {
    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the /proc watch thread")
    }
}

// ---------------------------------------------------------------------------------------
// A CodeArtifact stand-in: moto has none.
// ---------------------------------------------------------------------------------------

/// Answers CodeArtifact's GetAuthorizationToken (`POST /v1/authorization-token`) with the
/// token and GetRepositoryEndpoint (`GET /v1/repository/endpoint`) with the package
/// index's address, as the REST-JSON protocol the SDK speaks; records each request line.
struct FakeCodeArtifact {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeCodeArtifact {
    fn start(token: &str, repository_endpoint: &str) -> FakeCodeArtifact {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (token, repository_endpoint, recorded) = (token.to_owned(), repository_endpoint.to_owned(), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (token, repository_endpoint, recorded) = (token.clone(), repository_endpoint.clone(), Arc::clone(&recorded));
                std::thread::spawn(move || serve_codeartifact(stream, &token, &repository_endpoint, &recorded));
            }
        });
        FakeCodeArtifact { endpoint, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_codeartifact(stream: TcpStream, token: &str, repository_endpoint: &str, recorded: &Mutex<Vec<String>>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
        recorded.lock().unwrap().push(request_line.trim().to_owned());
        let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 12 * 3600;
        let (status, json, error) = if path.starts_with("/v1/authorization-token") {
            ("200 OK", serde_json::json!({ "authorizationToken": token, "expiration": expires }), None)
        } else if path.starts_with("/v1/repository/endpoint") {
            ("200 OK", serde_json::json!({ "repositoryEndpoint": repository_endpoint }), None)
        } else {
            ("404 Not Found", serde_json::json!({ "message": format!("no such operation: {path}") }), Some("ResourceNotFoundException"))
        };
        let body = json.to_string();
        let error = error.map(|e| format!("x-amzn-errortype: {e}\r\n")).unwrap_or_default();
        let response =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{error}Content-Length: {}\r\n\r\n{body}", body.len());
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The suite: one fixture, the services, every run recorded.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Success,
    Failure,
}

/// How a run logs: `-vv`, or `XTASK_LOG` set to a level.
#[derive(Clone, Copy)]
enum Logging {
    Vv,
    XtaskLog(&'static str),
}

struct Suite {
    fixture: Fixture,
    /// Outside the fixture: the `docker` wrapper and `pulumi` double (`bin/`), and their logs.
    aux: tempfile::TempDir,
    moto: Moto,
    registry: TestRegistry,
    pypi: PyPiServer,
    codeartifact: FakeCodeArtifact,
    secrets: Vec<Secret>,
    needles: Arc<Vec<Needle>>,
    /// The process-environment passphrase (the one in `infra/.env` is another).
    passphrase_env: String,
    codeartifact_token: String,
    runs: usize,
    processes: usize,
    cmdlines: usize,
    leaks: Vec<String>,
    /// (run, child processes seen) of each run.
    children: Vec<(String, usize)>,
    /// (run, program, secret, environment variable, command line): every secret a child
    /// was started with.
    child_env: Vec<(String, String, &'static str, String, String)>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds the Pulumi double once; returns its executable.
fn double_exe() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo).args(["build", "-q", "-p", "xtask-pulumi-double"]).current_dir(repo_root()).output().unwrap();
    assert!(out.status.success(), "building the pulumi double failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let exe = support::bin().parent().unwrap().join("pulumi");
    assert!(exe.is_file(), "no double at {}", exe.display());
    exe
}

/// Copies a Pulumi program (its `Pulumi*.yaml`, `*.py` and `modules/`).
fn copy_program(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name == "modules" {
                copy_program(&path, &to.join(&name));
            }
        } else if name.starts_with("Pulumi") || name.ends_with(".py") {
            fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=secrets-test", "-c", "user.email=secrets-test@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Suite {
    fn start() -> Suite {
        let id = unique();
        let passphrase_env = format!("xt-passphrase-env-{id}");
        let passphrase_dotenv = format!("xt-passphrase-dotenv-{id}");
        let codeartifact_token = format!("eyJ2ZXIiOjF9.xtCodeArtifactToken{id}.c2lnbmF0dXJl-{id}");

        let moto = Moto::start();
        // The ECR login token moto hands out, as the binary will receive it.
        let ecr = moto.seed(
            "import base64\nt = boto3.client('ecr').get_authorization_token()['authorizationData'][0]['authorizationToken']\nprint(t)\nprint(base64.b64decode(t).decode().split(':', 1)[1])",
        );
        let mut ecr = ecr.lines();
        let (ecr_encoded, ecr_password) = (ecr.next().unwrap().trim().to_owned(), ecr.next().unwrap().trim().to_owned());
        assert!(ecr_password.len() > 10, "moto's ECR password: {ecr_password:?}");

        let secrets = vec![
            Secret { name: "AWS_ACCESS_KEY_ID", value: format!("AKIAXT{}", id.to_uppercase()) },
            Secret { name: "AWS_SECRET_ACCESS_KEY", value: format!("xtSecretKey/{id}+Zq9/secret") },
            Secret { name: "AWS_SESSION_TOKEN", value: format!("xtSessionToken//{id}+FwoGZXIvYXdzEBY=") },
            Secret { name: "PULUMI_CONFIG_PASSPHRASE (environment)", value: passphrase_env.clone() },
            Secret { name: "PULUMI_CONFIG_PASSPHRASE (infra/.env)", value: passphrase_dotenv.clone() },
            Secret { name: "ECR password", value: ecr_password },
            Secret { name: "ECR token", value: ecr_encoded },
            Secret { name: "CodeArtifact token", value: codeartifact_token.clone() },
        ];
        let needles = Arc::new(needles(&secrets));

        let registry = TestRegistry::start();
        let pypi = PyPiServer::start_with("aws", &codeartifact_token);
        let codeartifact = FakeCodeArtifact::start(&codeartifact_token, &pypi.url);

        let fixture = Fixture::new(&["alpha"]);
        // STOPSIGNAL is not assembled: the service is built by `docker build`, so docker
        // runs in the processes that hold the passphrase.
        fixture
            .write("services/backend/Dockerfile", "ARG PYTHON_BASE\nFROM ${PYTHON_BASE}\nCOPY wheels/ /opt/wheels/\nSTOPSIGNAL SIGTERM\n");
        fixture.write("services/backend/requirements.txt", "six==1.16.0\n");
        // A file of the service's own, so that its image is this suite's (the engine, a
        // cache shared by every test, would otherwise hand over one built before).
        fixture.write("services/backend/.fixture-id", &format!("{id}\n"));
        let strategy = repo_root().join("libs/tradai-strategy");
        fs::create_dir_all(fixture.path().join("libs/tradai-strategy")).unwrap();
        for part in ["pyproject.toml", "README.md", "src"] {
            let ok =
                Command::new("cp").arg("-r").arg(strategy.join(part)).arg(fixture.path().join("libs/tradai-strategy")).status().unwrap();
            assert!(ok.success());
        }
        for stack in ["persistent", "foundation", "compute", "edge"] {
            copy_program(&repo_root().join("infra").join(stack), &fixture.path().join("infra").join(stack));
        }
        // State on this machine (`--local-state`), credentials from the environment.
        fixture.write(
            "infra/.env",
            &format!("# test settings\nPULUMI_CONFIG_PASSPHRASE='{passphrase_dotenv}'\nAWS_REGION={}\n", moto::REGION),
        );
        fixture.write(".gitignore", "target/\ninfra/.env\n.xdg/\n.xdg-login/\n.tmp/\n.gh/\n");
        fs::create_dir_all(fixture.path().join(".tmp")).unwrap();
        git(fixture.path(), &["init", "-q", "-b", "main"]);
        git(fixture.path(), &["add", "-A"]);
        git(fixture.path(), &["commit", "-q", "-m", "fixture"]);

        let aux = tempfile::tempdir().unwrap();
        let bin = aux.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(double_exe(), bin.join("pulumi")).unwrap();
        let real_docker = String::from_utf8(Command::new("sh").args(["-c", "command -v docker"]).output().unwrap().stdout).unwrap();
        // Records the names (never the values) of docker's environment, one line per call.
        fs::write(
            bin.join("docker"),
            format!(
                "#!/bin/sh\n{{ printf '%s\\t' \"$1\"; env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' | tr '\\n' ' '; echo; }} >> '{}'\nexec '{}' \"$@\"\n",
                aux.path().join("docker.log").display(),
                real_docker.trim()
            ),
        )
        .unwrap();
        fs::set_permissions(bin.join("docker"), fs::Permissions::from_mode(0o755)).unwrap();

        Suite {
            fixture,
            aux,
            moto,
            registry,
            pypi,
            codeartifact,
            secrets,
            needles,
            passphrase_env,
            codeartifact_token,
            runs: 0,
            processes: 0,
            cmdlines: 0,
            leaks: Vec::new(),
            children: Vec::new(),
            child_env: Vec::new(),
        }
    }

    fn secret(&self, name: &str) -> &str {
        &self.secrets.iter().find(|s| s.name == name).unwrap().value
    }

    /// The binary with every secret in its environment, pointed at the services and the
    /// doubles, and nothing from this machine that would change what it reads.
    fn command(&self, root: &Path, args: &[&str], logging: Logging) -> Command {
        let mut c = Command::new(support::bin());
        for (k, _) in std::env::vars() {
            let drop = ["PULUMI_", "AWS_", "XTASK_", "GITHUB_", "TRADAI_", "UV_PUBLISH_"].iter().any(|p| k.starts_with(p));
            if drop || ["S3_PULUMI_BACKEND_URL", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"].contains(&k.as_str()) {
                c.env_remove(k);
            }
        }
        for (k, v) in self.moto.env() {
            c.env(k, v);
        }
        c.env("AWS_ACCESS_KEY_ID", self.secret("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", self.secret("AWS_SECRET_ACCESS_KEY"))
            .env("AWS_SESSION_TOKEN", self.secret("AWS_SESSION_TOKEN"))
            .env("AWS_ENDPOINT_URL_CODEARTIFACT", &self.codeartifact.endpoint)
            .env("PULUMI_CONFIG_PASSPHRASE", &self.passphrase_env)
            .env("PULUMI_DOUBLE_LOG", self.aux.path().join("pulumi.log"))
            .env("PATH", format!("{}:{}", self.aux.path().join("bin").display(), std::env::var("PATH").unwrap_or_default()))
            .env("XDG_CONFIG_HOME", self.fixture.path().join(".xdg"))
            .env("TMPDIR", self.fixture.path().join(".tmp"))
            .current_dir(root);
        c.args(args).arg("--root").arg(root);
        match logging {
            Logging::Vv => {
                c.arg("-vv");
            }
            Logging::XtaskLog(level) => {
                c.env("XTASK_LOG", level);
            }
        }
        c
    }

    /// Runs one command with the /proc watch on; checks its output; returns stdout and
    /// stderr.
    fn run(&mut self, args: &[&str], logging: Logging, expect: Expect, tweak: impl FnOnce(&mut Command)) -> (String, String) {
        let root = self.fixture.path().to_path_buf();
        self.run_at(&root, args, logging, expect, tweak)
    }

    /// [`Suite::run`] in another repository.
    fn run_at(
        &mut self,
        root: &Path,
        args: &[&str],
        logging: Logging,
        expect: Expect,
        tweak: impl FnOnce(&mut Command),
    ) -> (String, String) {
        let label = match logging {
            Logging::Vv => format!("{} -vv", args.join(" ")),
            Logging::XtaskLog(l) => format!("XTASK_LOG={l} {}", args.join(" ")),
        };
        let mut c = self.command(root, args, logging);
        tweak(&mut c);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut expected = Vec::new();
        for arg in std::iter::once(c.get_program()).chain(c.get_args()) {
            expected.extend_from_slice(arg.as_encoded_bytes());
            expected.push(0);
        }
        let mut child = c.spawn().expect("xtask starts");
        let watch = watch(child.id(), expected, Arc::clone(&self.needles));
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).unwrap();
            v
        });
        let mut stderr = Vec::new();
        err.read_to_end(&mut stderr).unwrap();
        let stdout = reader.join().unwrap();
        let status = child.wait().unwrap();
        let seen = watch.finish();

        self.runs += 1;
        self.processes += seen.processes.len();
        self.cmdlines += seen.cmdlines.len();
        self.children.push((label.clone(), seen.processes.len()));
        self.leaks.extend(seen.leaks.into_iter().map(|l| format!("{label}: {l}")));
        for (program, secret, var, shown) in seen.env {
            self.child_env.push((label.clone(), program, secret, var, shown));
        }
        for (stream, bytes) in [("stdout", &stdout), ("stderr", &stderr)] {
            for (secret, form) in found_in(&self.needles, bytes) {
                self.leaks.push(format!("{label}: {secret} ({form}) on {stream}"));
            }
        }
        let text = String::from_utf8_lossy(&stderr);
        match expect {
            Expect::Success => assert!(status.success(), "{label} failed ({status}):\n{text}"),
            Expect::Failure => assert!(!status.success(), "{label} succeeded, a failure was expected:\n{text}"),
        }
        (String::from_utf8_lossy(&stdout).into_owned(), text.into_owned())
    }

    /// The docker calls recorded so far: (first argument, environment names).
    fn docker_calls(&self) -> Vec<(String, BTreeSet<String>)> {
        fs::read_to_string(self.aux.path().join("docker.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (first, names) = l.split_once('\t').unwrap_or((l, ""));
                (first.to_owned(), names.split_whitespace().map(str::to_owned).collect())
            })
            .collect()
    }

    /// The pulumi calls recorded so far: (argv, environment names).
    fn pulumi_calls(&self) -> Vec<(Vec<String>, BTreeSet<String>)> {
        fs::read_to_string(self.aux.path().join("pulumi.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["argv"].is_array())
            .map(|e| {
                let strings = |v: &serde_json::Value| -> Vec<String> {
                    v.as_array().unwrap().iter().map(|a| a.as_str().unwrap_or("").to_owned()).collect()
                };
                (strings(&e["argv"]), strings(&e["env"]).into_iter().collect())
            })
            .collect()
    }
}

/// A second repository whose upstream base only the loopback registry holds (pushed,
/// then removed from the engine), pinned by digest: `base-images --pull` pulls it with
/// `docker pull`. Returns it and the pinned reference.
fn pull_fixture(reg: &TestRegistry) -> (Fixture, String) {
    let f = Fixture::new(&["alpha"]);
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("root/etc")).unwrap();
    fs::write(dir.path().join("root/etc/upstream-base"), format!("secrets suite {}\n", unique())).unwrap();
    let tar = dir.path().join("root.tar");
    assert!(Command::new("tar").arg("-C").arg(dir.path().join("root")).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
    let tagged = format!("{}/secrets/python:3.11", reg.host);
    for args in [vec!["import".to_owned(), tar.display().to_string(), tagged.clone()], vec!["push".into(), tagged.clone()]] {
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let digest = reg.digest("secrets/python", "3.11").expect("the registry holds the base");
    let reference = format!("{tagged}@{digest}");
    for r in [&tagged, &format!("{}/secrets/python@{digest}", reg.host)] {
        let _ = Command::new("docker").args(["rmi", "--force", r]).output();
    }
    let recipe = repo_root().join("docker/python-base");
    for file in ["Dockerfile", "requirements.txt", "lambda-entrypoint.sh"] {
        f.write(&format!("docker/python-base/{file}"), &fs::read_to_string(recipe.join(file)).unwrap());
    }
    f.write(
        "xtask.toml",
        &format!("[build]\ntag-latest = false\n\n[python-base]\nlambda = \"{reference}\"\nservice = \"{reference}\"\npull-timeout = 5\n"),
    );
    (f, reference)
}

/// Whether a child process may be started with a secret in its environment: the AWS
/// keys go to every child (the standard chain: pulumi, Docker's credential helpers);
/// the passphrase only to pulumi; the CodeArtifact token only to uv, which uploads with
/// it; the ECR token to none (docker gets it on stdin).
fn may_hold(program: &str, secret: &str) -> bool {
    match secret {
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" => true,
        "PULUMI_CONFIG_PASSPHRASE (environment)" | "PULUMI_CONFIG_PASSPHRASE (infra/.env)" => program == "pulumi",
        "CodeArtifact token" => program == "uv",
        _ => false,
    }
}

/// Every regular file under `dir`, symlinks not followed.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_secret_reaches_output_logs_state_files_or_child_arguments() {
    let mut s = Suite::start();
    let reg = s.registry.host.clone();
    let ok = Expect::Success;
    let none = |_: &mut Command| {};

    // Setup: what this machine has.
    s.run(&["doctor"], Logging::Vv, ok, none);
    s.run(&["doctor", "--format", "json"], Logging::Vv, ok, none);
    // A pull: the base a second repository pins is only in the registry.
    let (pulled, pulled_base) = pull_fixture(&s.registry);
    let docker_before = s.docker_calls().len();
    s.run_at(pulled.path(), &["base-images", "--pull"], Logging::Vv, ok, none);
    let _ = Command::new("docker").args(["rmi", "--force", &pulled_base]).output();
    assert!(s.docker_calls()[docker_before..].iter().any(|(first, _)| first == "pull"), "base-images --pull ran docker pull");

    // Build: the wheel, lambda-base and the Lambda into the engine; the service by
    // `docker build`, with the passphrase in the process environment.
    s.run(&["lambda-build-all"], Logging::Vv, ok, none);
    let docker_before = s.docker_calls().len();
    s.run(&["docker-build"], Logging::Vv, ok, none);
    assert!(s.docker_calls().len() > docker_before, "docker-build ran docker");

    // Publish to a loopback registry, and point the Lambda function (moto) at the image.
    s.moto.seed(
        "iam = boto3.client('iam')\n\
         role = iam.create_role(RoleName='lambda', AssumeRolePolicyDocument='{}')['Role']['Arn']\n\
         boto3.client('lambda').create_function(FunctionName='tradai-alpha-dev', PackageType='Image', Role=role, Code={'ImageUri': 'old/tradai/lambda-alpha:v0'})\n",
    );
    let (out, _) = s.run(&["lambda-bootstrap", "--registry", &reg, "--update-functions", "--env", "dev", "--json"], Logging::Vv, ok, none);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["functions"][0]["action"], "updated", "{v}");
    s.run(&["service-push-all", "--registry", &reg], Logging::Vv, ok, none);
    assert!(s.registry.digest("tradai/backend", "latest").is_some());

    // Publish to ECR through moto: ECR already holds every image under its input hash,
    // so the run logs in (the token), looks up and adds tags.
    let (dry, _) = s.run(&["lambda-bootstrap", "--dry-run", "--json"], Logging::Vv, ok, none);
    let mut seed = String::from("ecr = boto3.client('ecr')\nimport hashlib\n");
    for (id, _, t) in support::parse_targets(dry.as_bytes()).iter().filter(|(_, _, t)| t["kind"] == "image") {
        let tag = format!("inputs-{}", &t["input_hash"].as_str().unwrap()[..32]);
        seed.push_str(&format!(
            "ecr.create_repository(repositoryName='{id}')\n\
             m = json.dumps({{'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json', 'config': {{'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': 1, 'digest': 'sha256:' + hashlib.sha256(b'{id}').hexdigest()}}, 'layers': []}})\n\
             ecr.put_image(repositoryName='{id}', imageManifest=m, imageTag='{tag}', imageManifestMediaType='application/vnd.docker.distribution.manifest.v2+json')\n"
        ));
    }
    s.moto.seed(&seed);
    let (out, _) = s.run(&["lambda-bootstrap", "--registry", "ecr", "--json"], Logging::Vv, ok, none);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["published"].as_array().unwrap().iter().all(|p| p["action"] == "tagged"), "{v}");

    // Operations: the ECR token handed to `docker login` (which cannot reach ECR here), a
    // check of the images through the ECR API.
    let docker_before = s.docker_calls().len();
    s.run(&["service-ecr-login"], Logging::Vv, Expect::Failure, none);
    assert!(s.docker_calls()[docker_before..].iter().any(|(first, _)| first == "login"), "docker login ran");
    s.run(&["lambda-check-images", "--env", "dev"], Logging::Vv, ok, none);

    // CodeArtifact: the token written where pip and uv read it, then a publish through
    // it, and a publish with a token given in the environment (already there: skipped).
    // The login writes into a configuration folder of its own: in the shared one, uv
    // would then read only the package index, which does not proxy PyPI as CodeArtifact
    // does.
    let login_home = s.fixture.path().join(".xdg-login");
    let login_config = |c: &mut Command| {
        c.env("XDG_CONFIG_HOME", &login_home);
    };
    s.run(&["codeartifact-login", "dev"], Logging::Vv, ok, login_config);
    let (out, _) = s.run(&["publish-all-libs", "dev", "--json"], Logging::Vv, ok, none);
    assert!(out.contains("\"uploaded\""), "{out}");
    assert_eq!(s.pypi.files().len(), 1, "the upload with the CodeArtifact token went through");
    let calls = s.codeartifact.requests();
    assert!(calls.iter().filter(|r| r.starts_with("POST /v1/authorization-token")).count() >= 2, "{calls:?}");
    let (url, token) = (s.pypi.url.clone(), s.codeartifact_token.clone());
    s.run(&["publish-all-libs", "dev", "--json"], Logging::Vv, ok, |c| {
        c.env("TRADAI_PUBLISH_URL", &url).env("TRADAI_PUBLISH_TOKEN", &token);
    });

    // Infrastructure through the Pulumi double, the passphrase from infra/.env only. A
    // service change first, so the image layer of infra-bootstrap runs `docker build` in
    // the process that holds the passphrase.
    s.fixture.append("services/backend/.fixture-id", "rev 2\n");
    let no_env_passphrase = |c: &mut Command| {
        c.env_remove("PULUMI_CONFIG_PASSPHRASE");
    };
    let docker_before = s.docker_calls().len();
    let (_, err) = s.run(&["infra-bootstrap", "dev", "--registry", &reg, "--local-state"], Logging::Vv, ok, no_env_passphrase);
    assert!(s.docker_calls().len() > docker_before, "infra-bootstrap ran docker:\n{err}");
    s.run(&["infra-preview", "dev", "--registry", &reg, "--local-state", "--pulumi-verbose", "9"], Logging::Vv, ok, no_env_passphrase);
    s.run(&["infra-up", "edge", "dev", "--local-state", "--force"], Logging::Vv, ok, no_env_passphrase);
    s.run(&["infra-up", "compute", "dev", "--registry", &reg, "--local-state"], Logging::Vv, ok, no_env_passphrase);
    s.run(&["infra-outputs", "persistent", "dev", "--local-state"], Logging::Vv, ok, no_env_passphrase);
    s.run(&["infra-outputs", "persistent", "dev", "--local-state", "--show-secrets"], Logging::Vv, ok, no_env_passphrase);
    // The environment's passphrase wins over the file's, and is not the stack's: the
    // error must name neither.
    s.run(&["infra-outputs", "persistent", "dev", "--local-state"], Logging::Vv, Expect::Failure, none);

    // CI: what the working tree's change affects, with the GitHub Actions outputs written.
    let gh = s.fixture.path().join(".gh");
    fs::create_dir_all(&gh).unwrap();
    let (output, summary) = (gh.join("output"), gh.join("summary"));
    s.run(&["ci", "changes", "--base", "HEAD"], Logging::Vv, ok, |c| {
        c.env("GITHUB_OUTPUT", &output).env("GITHUB_STEP_SUMMARY", &summary);
    });
    s.run(&["ci", "changes", "--all"], Logging::Vv, ok, none);

    // Again at the other log settings: the commands that change nothing more now.
    for logging in [Logging::XtaskLog("debug"), Logging::XtaskLog("trace")] {
        s.run(&["doctor"], logging, ok, none);
        s.run(&["lambda-build-all"], logging, ok, none);
        s.run(&["lambda-bootstrap", "--registry", &reg, "--update-functions", "--env", "dev"], logging, ok, none);
        s.run(&["lambda-bootstrap", "--registry", "ecr"], logging, ok, none);
        s.run(&["service-ecr-login"], logging, Expect::Failure, none);
        s.run(&["codeartifact-login", "dev"], logging, ok, login_config);
        s.run(&["publish-all-libs", "dev"], logging, ok, none);
        s.run(&["infra-preview", "dev", "--registry", &reg, "--local-state"], logging, ok, no_env_passphrase);
        s.run(&["infra-outputs", "persistent", "dev", "--local-state", "--show-secrets"], logging, ok, no_env_passphrase);
        s.run(&["ci", "changes", "--base", "HEAD"], logging, ok, none);
    }

    // Where the secrets went: the passphrase to every pulumi call on a stack (from
    // infra/.env) and never to docker; docker ran in runs that held it in both ways.
    let pulumi = s.pulumi_calls();
    assert!(pulumi.len() > 10, "the runs reached pulumi: {} calls", pulumi.len());
    // (`pulumi version`, doctor's probe, needs none.)
    for (argv, env) in pulumi.iter().filter(|(argv, _)| argv.iter().any(|a| a == "--stack")) {
        assert!(env.contains("PULUMI_CONFIG_PASSPHRASE"), "pulumi {argv:?} ran without the passphrase: {env:?}");
        assert!(env.contains("AWS_ACCESS_KEY_ID") && env.contains("AWS_SECRET_ACCESS_KEY"), "pulumi {argv:?} ran without the AWS keys");
    }
    let docker = s.docker_calls();
    assert!(!docker.is_empty());
    for (first, env) in &docker {
        for name in ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN"] {
            if env.contains(name) {
                s.leaks.push(format!("docker {first} was started with {name}"));
            }
        }
    }
    // The same from /proc/<pid>/environ, for every child: each secret only where it must
    // go. pulumi with the passphrase and uv with the token show the read works.
    let held = |program: &str, secret: &str| s.child_env.iter().any(|(_, p, sec, _, _)| p == program && *sec == secret);
    assert!(held("pulumi", "PULUMI_CONFIG_PASSPHRASE (infra/.env)"), "no pulumi process seen with the passphrase: {:?}", s.child_env);
    assert!(held("uv", "CodeArtifact token"), "no uv process seen with the token: {:?}", s.child_env);
    let misplaced: Vec<String> = s
        .child_env
        .iter()
        .filter(|(_, program, secret, _, _)| !may_hold(program, secret))
        .map(|(run, program, secret, var, shown)| format!("{run}: {program} was started with {secret} in {var} ({shown})"))
        .collect();
    s.leaks.extend(misplaced);

    // Every file of the fixture tree (the state under target/xtask/, the tool's temporary
    // files, the GitHub outputs), the doubles' logs, and Docker's own configuration.
    // Only these hold a secret, each only its own, and each must hold it (so the scan
    // is shown to find one).
    let root = s.fixture.path().to_path_buf();
    let allowed: BTreeMap<PathBuf, &str> = [
        (root.join("infra/.env"), "PULUMI_CONFIG_PASSPHRASE (infra/.env)"),
        (root.join(".xdg-login/pip/pip.conf"), "CodeArtifact token"),
        (root.join(".xdg-login/uv/uv.toml"), "CodeArtifact token"),
    ]
    .into_iter()
    .collect();
    let mut files = files_under(&root);
    files.extend(files_under(s.aux.path()));
    files.extend(files_under(pulled.path()));
    let docker_config = std::env::var("HOME").map(|h| Path::new(&h).join(".docker/config.json")).ok().filter(|p| p.is_file());
    files.extend(docker_config);
    let (mut scanned, mut state_files) = (0usize, 0usize);
    for file in &files {
        let Ok(bytes) = fs::read(file) else { continue };
        scanned += 1;
        if file.starts_with(root.join("target/xtask")) {
            state_files += 1;
        }
        let found = found_in(&s.needles, &bytes);
        match allowed.get(file) {
            Some(own) => {
                assert!(found.iter().any(|(secret, _)| secret == own), "{} does not hold {own}", file.display());
                for (secret, form) in found.iter().filter(|(secret, _)| secret != own) {
                    s.leaks.push(format!("{secret} ({form}) in {}", file.display()));
                }
            }
            None => {
                for (secret, form) in found {
                    s.leaks.push(format!("{secret} ({form}) in {}", file.display()));
                }
            }
        }
    }

    let quiet: Vec<&str> = s.children.iter().filter(|(_, n)| *n == 0).map(|(l, _)| l.as_str()).collect();
    eprintln!(
        "secrets suite: {} commands run, {} child processes inspected ({} command lines read), {} files scanned ({} under target/xtask), {} secrets found",
        s.runs,
        s.processes,
        s.cmdlines,
        scanned,
        state_files,
        s.leaks.len()
    );
    eprintln!("runs in which no child process was seen: {quiet:?}");
    assert!(s.processes >= 50, "the /proc watch saw only {} child processes: it is not watching", s.processes);
    assert!(state_files > 10, "only {state_files} state files under target/xtask");
    assert!(s.leaks.is_empty(), "secrets found:\n{}", s.leaks.join("\n"));
}

#[test]
fn every_spelling_of_a_secret_is_found_and_nothing_else() {
    // The Basic credentials ECR's token decodes to, as `ecr.rs` checks them.
    assert_eq!(base64(b"AWS:s3cret", STANDARD), "QVdTOnMzY3JldA==");
    let secret = "tok/en+with=odd~chars-0123";
    let n = needles(&[Secret { name: "token", value: secret.to_owned() }]);
    for prefix in ["", "a", "ab", "AWS:", "aws:"] {
        for alphabet in [STANDARD, URL_SAFE] {
            let header = format!("Authorization: Basic {}", base64(format!("{prefix}{secret}").as_bytes(), alphabet));
            assert_eq!(found_in(&n, header.as_bytes()).len(), 1, "{header}");
        }
    }
    for url in [format!("https://aws:{}@host/simple/", percent_encode(secret, true)), format!("x={}", percent_encode(secret, false))] {
        assert_eq!(found_in(&n, url.as_bytes()).len(), 1, "{url}");
    }
    assert!(found_in(&n, &secret.as_bytes()[..secret.len() - 1]).is_empty(), "a part of it is not it");
    assert!(found_in(&n, base64(b"another value altogether", STANDARD).as_bytes()).is_empty());
}
