//! A real OCI registry on loopback for tests: Debian's `docker-registry` (the CNCF
//! distribution registry), on a free port, with deletes enabled, stopped on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    child: Child,
    pub host: String,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestRegistry {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = spawn(&config);
        let host = format!("127.0.0.1:{port}");
        wait_until_up(&host);
        TestRegistry { child, host, config, _dir: dir }
    }

    /// Kills the registry at once, as a crash or a network cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.config);
        wait_until_up(&self.host);
    }

    /// The repositories the registry lists.
    pub fn catalog(&self) -> Vec<String> {
        let out = Command::new("curl").args(["-s", "--max-time", "2"]).arg(format!("http://{}/v2/_catalog", self.host)).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["repositories"].as_array().map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// The digest the registry holds for `repo:tag`, if any.
    pub fn digest(&self, repo: &str, tag: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D", "-", "-H"])
            .arg("Accept: application/vnd.docker.distribution.manifest.v2+json")
            .arg(format!("http://{}/v2/{repo}/manifests/{tag}", self.host))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_string();
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        head.lines().find_map(|l| {
            l.strip_prefix("Docker-Content-Digest: ").or_else(|| l.strip_prefix("docker-content-digest: ")).map(|d| d.trim().to_owned())
        })
    }

    pub fn delete(&self, repo: &str, digest: &str) {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE"])
            .arg(format!("http://{}/v2/{repo}/manifests/{digest}", self.host))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "delete {repo}@{digest}");
    }
}

/// The registry program: `XTASK_TEST_REGISTRY` (set by `cargo xtask test`, which
/// provisions it), else `docker-registry` on PATH or in /usr/bin.
pub fn program() -> String {
    if let Ok(p) = std::env::var("XTASK_TEST_REGISTRY") {
        return p;
    }
    ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
        .expect("docker-registry is not installed; run the tests with `cargo xtask test`, which provisions it, or set XTASK_TEST_REGISTRY")
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(program()).arg("serve").arg(config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("registry starts")
}

fn wait_until_up(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(host).is_err() {
        assert!(Instant::now() < deadline, "registry did not start on {host}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
