//! moto in server mode on loopback, for tests of the AWS commands: started on a free
//! 127.0.0.1 port by the test, stopped on drop. `moto_server.py` beside this file is
//! moto plus the two instance-refresh calls it lacks (see that file).
//!
//! moto comes from the locked `test-servers` group that `cargo xtask test` provisions
//! (`XTASK_TEST_PYTHON`). Resources
//! are seeded through moto's own API with boto3 (`Moto::seed`), and the binary is pointed
//! at the server with the standard `AWS_ENDPOINT_URL` and dummy credentials.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "eu-central-1";

/// The Python that runs moto and pypiserver: `XTASK_TEST_PYTHON` (set by `cargo xtask
/// test` to the environment of the locked `test-servers` group), else `python3` when it
/// can import them.
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let py = std::env::var("XTASK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let importable = Command::new(&py).args(["-c", "import moto.server, flask, boto3, pypiserver, passlib"]).output().is_ok_and(|o| o.status.success());
        assert!(
            importable,
            "{py} cannot import moto and pypiserver; run the tests with `cargo xtask test`, which provisions them, or set XTASK_TEST_PYTHON to a Python that has them (`cargo xtask tools path test-servers`)"
        );
        py
    })
}

/// A running moto server.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    log: tempfile::NamedTempFile,
    /// moto's request recorder: every request the server answered, as JSON lines.
    recording: tempfile::NamedTempFile,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `moto_server.py`, found from the workspace root (this file is shared by path with
/// other crates' tests).
fn script() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.ancestors().find(|a| a.join("Cargo.lock").is_file()).unwrap_or(manifest);
    root.join("xtask/tests/support/moto_server.py")
}

impl Moto {
    /// Starts moto; ECS services report as many running tasks as `MOTO_ECS_SERVICE_RUNNING`
    /// says (1 here), so a service of desired count 1 has a completed rollout and one of
    /// 2 never finishes.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts moto with extra environment for the server (moto's own settings, such as
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes it check every request's
    /// credentials against its IAM).
    pub fn start_with(server_env: &[(&str, &str)]) -> Moto {
        let py = python();
        for _attempt in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let recording = tempfile::NamedTempFile::new().unwrap();
            let child = Command::new(py)
                .arg(script())
                .arg(port.to_string())
                .env("MOTO_ECS_SERVICE_RUNNING", "1")
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", recording.path())
                .envs(server_env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("moto starts");
            let mut moto = Moto { child, port, endpoint: format!("http://127.0.0.1:{port}"), log, recording };
            if moto.wait_ready() {
                return moto;
            }
            // The port was taken between picking and binding, or moto failed: retry.
        }
        panic!("moto did not start after 3 attempts");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                eprintln!("moto exited early:\n{}", self.log_text());
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto did not answer on port {} within 30s:\n{}", self.port, self.log_text());
    }

    /// The file of moto's request recorder (every request, as JSON lines).
    pub fn recording_path(&self) -> &std::path::Path {
        self.recording.path()
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// The JSON-protocol operations (ECR, ECS, Lambda...: `X-Amz-Target` names such as
    /// `BatchGetImage`) the server answered for clients other than boto3, i.e. the binary
    /// under test, in order.
    pub fn operations(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.recording.path()).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| !r["headers"]["User-Agent"].as_str().unwrap_or("").starts_with("Boto3"))
            .filter_map(|r| r["headers"]["X-Amz-Target"].as_str().and_then(|t| t.rsplit('.').next()).map(str::to_owned))
            .collect()
    }

    /// The environment that points the binary (or boto3) at this server, and nowhere
    /// else: no profile, no config files, no instance metadata.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials".into()),
        ]
    }

    /// Applies [`Moto::env`] to a command, removing what could point it elsewhere.
    pub fn configure<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for k in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "GITHUB_ACTIONS"] {
            cmd.env_remove(k);
        }
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a Python snippet with boto3 pointed at this server (`import boto3` is done);
    /// panics with its stderr if it fails; returns its stdout.
    pub fn seed(&self, snippet: &str) -> String {
        let code = format!("import boto3, json\n{snippet}");
        let mut cmd = Command::new(python());
        cmd.args(["-c", &code]);
        self.configure(&mut cmd);
        let out: Output = cmd.output().expect("python runs");
        assert!(
            out.status.success(),
            "seeding moto failed:\n{}\n--- moto log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
