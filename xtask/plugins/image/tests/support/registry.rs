//! A real OCI registry on loopback for tests: Debian's `docker-registry` (the CNCF
//! distribution registry, from `XTASK_TEST_REGISTRY`), on a free port with its storage
//! in a temporary folder, optionally behind htpasswd Basic auth; stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub host: String,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

fn env_program(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set; run the tests with `cargo xtask test`, which provisions {what} and sets it (or export {var} as that command does)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestRegistry {
    /// An open registry.
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// A registry that asks for Basic auth and knows one user.
    pub fn with_basic_auth(user: &str, password: &str) -> Self {
        // docker-registry reads bcrypt htpasswd entries; passlib (in the test-servers
        // tool env) makes them, so no `htpasswd` binary is needed.
        let python = env_program("XTASK_TEST_PYTHON", "the test servers' Python");
        let out = Command::new(python)
            .args([
                "-c",
                "import sys; from passlib.hash import bcrypt; print(sys.argv[1] + ':' + bcrypt.using(rounds=4).hash(sys.argv[2]))",
                user,
                password,
            ])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "htpasswd entry: {}", String::from_utf8_lossy(&out.stderr));
        Self::start_with_auth(Some(String::from_utf8(out.stdout).unwrap()))
    }

    fn start_with_auth(htpasswd: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth = match htpasswd {
            Some(entry) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, entry).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", path.display())
            }
            None => String::new(),
        };
        let port = free_port();
        let storage = dir.path().join("data");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                storage.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env_program("XTASK_TEST_REGISTRY", "docker-registry"))
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited with {status} before listening; its config:\n{}", std::fs::read_to_string(&config).unwrap());
            }
            assert!(Instant::now() < deadline, "docker-registry did not start on {host}");
            std::thread::sleep(Duration::from_millis(50));
        }
        TestRegistry { child, host, storage, _dir: dir }
    }

    /// The file holding blob `digest` in the registry's storage (shared by every
    /// repository that holds the blob).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// The HTTP status and body of `GET /v2/<path>`, read without the client under test.
    pub fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut resp = agent.get(&format!("http://{}/v2/{path}", self.host)).header("Accept", accept).call().unwrap();
        let digest = resp.headers().get("docker-content-digest").map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), resp.body_mut().read_to_vec().unwrap(), digest)
    }

    /// Uploads a blob to `repository` with plain requests (POST, then PUT with the
    /// digest), so that this process's client does not know where it is.
    pub fn upload_raw(&self, repository: &str, bytes: &[u8], digest: &str) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let resp = agent.post(&format!("http://{}/v2/{repository}/blobs/uploads/", self.host)).send_empty().unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let location = resp.headers().get("location").unwrap().to_str().unwrap().to_owned();
        let location = if location.starts_with('/') { format!("http://{}{location}", self.host) } else { location };
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = agent.put(&format!("{location}{sep}digest={digest}")).send(bytes).unwrap();
        assert_eq!(resp.status().as_u16(), 201, "raw upload of {digest}");
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
