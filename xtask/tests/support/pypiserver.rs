//! A real package index on loopback: `pypiserver` with an htpasswd file (uploads need
//! the password), no fallback to PyPI and no overwriting, on a free 127.0.0.1 port,
//! stopped on drop. It runs in the `test-servers` environment (see `moto::python`).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::moto::python;

pub const USER: &str = "publisher";
pub const PASSWORD: &str = "not-a-real-secret-7f3a";

pub struct PyPiServer {
    child: Child,
    pub url: String,
    pub packages: PathBuf,
    dir: tempfile::TempDir,
}

impl PyPiServer {
    pub fn start() -> PyPiServer {
        PyPiServer::start_with(USER, PASSWORD)
    }

    /// Starts it with uploads allowed to `user` with `password` only (CodeArtifact's
    /// user `aws` and a token, say).
    pub fn start_with(user: &str, password: &str) -> PyPiServer {
        python();
        let dir = tempfile::tempdir().unwrap();
        let packages = dir.path().join("packages");
        std::fs::create_dir_all(&packages).unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let made = Command::new(python())
            .args(["-c", "import sys; from passlib.apache import HtpasswdFile as H; h = H(sys.argv[1], new=True); h.set_password(sys.argv[2], sys.argv[3]); h.save()"])
            .arg(&htpasswd)
            .args([user, password])
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(python())
            .args(["-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", &port.to_string(), "-a", "update", "-P"])
            .arg(&htpasswd)
            .args(["--disable-fallback", "--hash-algo", "sha256"])
            .arg(&packages)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pypiserver starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pypiserver did not start: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PyPiServer { child, url: format!("http://127.0.0.1:{port}/"), packages, dir }
    }

    /// The files the index holds.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(&self.packages).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }
}

impl Drop for PyPiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
