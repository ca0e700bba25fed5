//! Self-provisioning: every command obtains the programs it calls, at pinned versions,
//! into the tool's own folder (`<target>/xtask/tools/`), once per machine.
//!
//! - uv comes from PyPI into a private virtual environment (`python3 -m venv` + pip, so
//!   a company's pip index configuration is honoured).
//! - Python tools (the servers the tests start, the workflow linters) come from the uv
//!   workspace's locked dependency groups, each synced into its own environment.
//! - System packages that no language registry serves (debootstrap, docker-registry)
//!   are installed with apt-get only when running as root on Debian or Ubuntu; otherwise
//!   the command stops with the exact command to run.
//!
//! Each install prints one line. `--offline` (or `XTASK_OFFLINE=1`) never installs and
//! names what is missing. Installs run under an exclusive lock on `tools/.lock` and are
//! marked complete last, so two runs at once install once and a killed install is redone.
//!
//! The tools belong to the tool, not to the repository it builds: they live in the target
//! directory the running binary was built into, and the dependency groups are read from
//! the workspace that binary was built from. Test fixtures driven by the same binary share
//! them.

use std::fs::{self, File};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};
use xtask_engine::{Cmd, ProcessError};

use crate::target_dir::target_dir;

/// The uv release every command uses.
pub const UV_VERSION: &str = "0.13.9";

/// The cargo-fuzz release `cargo xtask fuzz` runs.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The cargo-nextest release `cargo xtask ci rust` runs when none is installed.
pub const CARGO_NEXTEST_VERSION: &str = "0.9.143";

/// What `cargo xtask docs-build` builds the site with: MkDocs and mkdocs-material and every
/// package they need, each pinned (the set `uv pip compile` resolved from `mkdocs==1.6.1`
/// and `mkdocs-material==9.8.2` for Python 3.11), so every machine builds the same site.
/// Changing a version here reinstalls the environment.
pub const DOCS_SITE_PINS: &[&str] = &[
    "mkdocs==1.6.1",
    "mkdocs-material==9.8.2",
    "babel==2.19.0",
    "backrefs==8.3.1",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "click==8.5.1",
    "colorama==0.4.6",
    "ghp-import==2.1.0",
    "idna==3.20",
    "jinja2==3.1.6",
    "markdown==3.11.3",
    "markupsafe==3.0.4",
    "mergedeep==1.3.4",
    "mkdocs-get-deps==0.2.2",
    "mkdocs-material-extensions==1.3.1",
    "packaging==26.4",
    "paginate==0.5.7",
    "pathspec==1.1.1",
    "platformdirs==4.14.9",
    "pygments==2.21.0",
    "pymdown-extensions==12.3",
    "python-dateutil==4.0.0",
    "pyyaml==6.0.4",
    "pyyaml-env-tag==1.1",
    "requests==2.34.2",
    "tzdata==2026.6",
    "urllib3==2.8.0",
    "watchdog==7.1.0",
];

static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Turns offline mode on for this process (`--offline`).
pub fn set_offline() {
    OFFLINE.store(true, Ordering::Relaxed);
}

/// Whether installing is forbidden: `--offline` or `XTASK_OFFLINE=1`.
pub fn offline() -> bool {
    OFFLINE.load(Ordering::Relaxed) || std::env::var("XTASK_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A Python environment made from one of the uv workspace's locked dependency groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// moto and pypiserver, the servers the integration tests start on loopback.
    TestServers,
    /// actionlint, zizmor and check-jsonschema, for `ci workflows`.
    WorkflowLint,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::TestServers, Group::WorkflowLint];

    pub fn name(self) -> &'static str {
        match self {
            Group::TestServers => "test-servers",
            Group::WorkflowLint => "workflow-lint",
        }
    }

    pub fn purpose(self) -> &'static str {
        match self {
            Group::TestServers => "the servers the tests start (moto, pypiserver)",
            Group::WorkflowLint => "the workflow linters (actionlint, zizmor, check-jsonschema)",
        }
    }
}

/// A program that only the system's package manager provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTool {
    Debootstrap,
    DockerRegistry,
}

impl SystemTool {
    pub fn program(self) -> &'static str {
        match self {
            SystemTool::Debootstrap => "debootstrap",
            SystemTool::DockerRegistry => "docker-registry",
        }
    }

    /// The Debian/Ubuntu package that carries it.
    pub fn package(self) -> &'static str {
        self.program()
    }
}

/// Where the tools live and where their pins are read from.
#[derive(Debug, Clone)]
pub struct Toolbox {
    /// `<target>/xtask/tools`.
    pub dir: Utf8PathBuf,
    /// The uv workspace whose dependency groups pin the Python tools.
    source: Utf8PathBuf,
}

/// What is known about one tool without installing anything.
#[derive(Debug, Clone)]
pub struct ToolState {
    pub name: String,
    /// Where it is (or will be) installed.
    pub path: Utf8PathBuf,
    pub installed: bool,
    /// Pinned version, or what pins it.
    pub pin: String,
}

impl Toolbox {
    /// The toolbox of the running binary: `XTASK_TOOLS_DIR` when set; else its target
    /// directory when it runs from one (as `cargo xtask` and the tests do); else the
    /// repository's. The groups are pinned by the workspace the binary was built from
    /// when it is still there, else by the repository's.
    pub fn current(root: &Utf8Path) -> Toolbox {
        let source = Some(Utf8Path::new(env!("CARGO_MANIFEST_DIR")))
            .and_then(Utf8Path::parent)
            .filter(|s| s.join("pyproject.toml").is_file() && s.join("uv.lock").is_file())
            .map(Utf8Path::to_owned);
        let exe_target = std::env::current_exe()
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
            .and_then(|exe| exe.parent()?.parent().map(Utf8Path::to_owned))
            .filter(|t| t.join("CACHEDIR.TAG").is_file());
        let dir = match std::env::var("XTASK_TOOLS_DIR").ok().filter(|d| !d.is_empty()) {
            Some(d) => Utf8PathBuf::from(d),
            None => match (&exe_target, &source) {
                (Some(target), Some(_)) => target.join("xtask/tools"),
                _ => target_dir(root).join("xtask/tools"),
            },
        };
        Toolbox { dir, source: source.unwrap_or_else(|| root.to_owned()) }
    }

    fn uv_dir(&self) -> Utf8PathBuf {
        self.dir.join(format!("uv-{UV_VERSION}"))
    }

    fn group_dir(&self, group: Group) -> Utf8PathBuf {
        self.dir.join(group.name())
    }

    /// The uv executable, installed from PyPI on first use.
    pub fn uv(&self) -> Result<Utf8PathBuf> {
        let dir = self.uv_dir();
        let uv = dir.join("bin/uv");
        self.provision(&format!("uv {UV_VERSION}"), &format!("uv=={UV_VERSION}"), &dir, |dir| {
            Cmd::new("python3", "create a private Python environment for uv").args(["-m", "venv", dir.as_str()]).run().map_err(
                |e| match e {
                    ProcessError::NotFound { .. } => {
                        anyhow::anyhow!("python3 is not on PATH; install Python 3.11 (pyenv install 3.11, or your distribution's python3)")
                    }
                    e => anyhow::anyhow!("{e}; on Debian or Ubuntu install the venv module: `sudo apt-get install python3-venv`"),
                },
            )?;
            Cmd::new(dir.join("bin/python").as_str(), format!("install uv {UV_VERSION} from PyPI"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &format!("uv=={UV_VERSION}")])
                .run()?;
            if !uv.is_file() {
                bail!("pip installed uv {UV_VERSION} but {uv} is missing");
            }
            Ok(())
        })?;
        Ok(uv)
    }

    /// cargo-fuzz, built from crates.io with its own lock file (`cargo install --locked`)
    /// on first use, by the Cargo that built this tool. Only `cargo xtask fuzz` needs it,
    /// so `tools` and `doctor`, which cover what builds and tests need, do not list it.
    pub fn cargo_fuzz(&self) -> Result<Utf8PathBuf> {
        self.cargo_install("cargo-fuzz", CARGO_FUZZ_VERSION, "about a minute of compiling")
    }

    /// A Cargo subcommand installed from crates.io into its own folder of the toolbox
    /// (`cargo install --locked --root`), once; returns its executable.
    fn cargo_install(&self, krate: &str, version: &str, cost: &str) -> Result<Utf8PathBuf> {
        let dir = self.dir.join(format!("{krate}-{version}"));
        let exe = dir.join("bin").join(krate);
        let what = format!("{krate} {version}");
        self.provision(&what, &format!("{krate}=={version}"), &dir, |dir| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            Cmd::new(cargo, format!("install {what} from crates.io ({cost})"))
                .args(["install", "--locked", "--quiet", "--root", dir.as_str(), "--version", version, krate])
                .run()?;
            if !exe.is_file() {
                bail!("cargo installed {what} but {exe} is missing");
            }
            Ok(())
        })?;
        Ok(exe)
    }

    /// The documentation site's Python environment (its `bin/mkdocs` builds the site), made
    /// by uv from [`DOCS_SITE_PINS`] on first use. Only `cargo xtask docs-build` needs it,
    /// so `tools` and `doctor`, which cover what builds and tests need, do not list it.
    pub fn docs_site(&self) -> Result<Utf8PathBuf> {
        let dir = self.dir.join("docs-site");
        let uv = self.uv()?;
        self.provision("MkDocs and mkdocs-material (pinned)", &DOCS_SITE_PINS.join(" "), &dir, |dir| {
            // The machine's Python, as for uv itself: a managed download is not needed.
            Cmd::new(uv.as_str(), "create the documentation site's Python environment")
                .args(["venv", "--quiet", "--python-preference", "only-system", dir.as_str()])
                .run()?;
            Cmd::new(uv.as_str(), "install MkDocs and mkdocs-material from PyPI")
                .args(["pip", "install", "--quiet", "--python", dir.join("bin/python").as_str()])
                .args(DOCS_SITE_PINS.iter().copied())
                .run()?;
            if !dir.join("bin/mkdocs").is_file() {
                bail!("uv installed MkDocs but {dir}/bin/mkdocs is missing");
            }
            Ok(())
        })?;
        Ok(dir)
    }

    /// cargo-nextest, built from crates.io with its own lock file on first use, as
    /// cargo-fuzz is; only `cargo xtask ci rust` needs it, and only where `cargo nextest`
    /// is not installed already (a fresh CI runner: its folder is cached between runs).
    pub fn cargo_nextest(&self) -> Result<Utf8PathBuf> {
        self.cargo_install("cargo-nextest", CARGO_NEXTEST_VERSION, "a few minutes of compiling, once")
    }

    /// The environment of a locked dependency group (its `bin/` holds the programs).
    pub fn group(&self, group: Group) -> Result<Utf8PathBuf> {
        let dir = self.group_dir(group);
        let pin = self.group_pin()?;
        let uv = self.uv()?;
        self.provision(group.name(), &pin, &dir, |dir| {
            Cmd::new(uv.as_str(), format!("install {} from the locked `{}` group", group.purpose(), group.name()))
                .args(["sync", "--frozen", "--quiet", "--no-install-workspace", "--only-group", group.name()])
                .env("UV_PROJECT_ENVIRONMENT", dir.as_str())
                .dir(&self.source)
                .run()?;
            Ok(())
        })?;
        Ok(dir)
    }

    /// What pins the groups: the digest of the workspace's pyproject.toml and uv.lock.
    fn group_pin(&self) -> Result<String> {
        let mut h = Sha256::new();
        for f in ["pyproject.toml", "uv.lock"] {
            let path = self.source.join(f);
            h.update(fs::read(&path).with_context(|| format!("failed to read {path}"))?);
        }
        Ok(format!("uv.lock sha256:{:x}", h.finalize()))
    }

    /// A system program: on PATH (or in /usr/sbin), else installed with apt-get when that
    /// is possible here, else an error naming the exact command.
    pub fn system(&self, tool: SystemTool) -> Result<Utf8PathBuf> {
        if let Some(p) = find_program(tool.program()) {
            return Ok(p);
        }
        let pkg = tool.package();
        let host = HostFacts::read();
        if offline() {
            bail!("{} is not installed and --offline forbids installing it; run `{}`", tool.program(), host.install_command(pkg));
        }
        // On a CI runner (GitHub's hosted ones run as a user with passwordless sudo) the
        // install goes through `sudo -n`; on anyone's own machine, never without asking.
        let sudo = !host.root && host.debian_like && ci_with_passwordless_sudo();
        if !((host.root || sudo) && host.debian_like) {
            bail!("{} is not installed; run `{}`", tool.program(), host.install_command(pkg));
        }
        let how = if sudo { "sudo -n apt-get, on a CI runner" } else { "apt-get, running as root" };
        eprintln!("installing the system package {pkg} with {how} on {}", host.distro);
        // `sudo` resets the environment: `env` carries DEBIAN_FRONTEND past it.
        let admin = |program: &str, purpose: String| {
            if sudo {
                Cmd::new("sudo", purpose).args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", program])
            } else {
                Cmd::new(program, purpose).env("DEBIAN_FRONTEND", "noninteractive")
            }
        };
        let install = || {
            admin("apt-get", format!("install {pkg}"))
                .args(["install", "-y", "-qq", "--no-install-recommends", pkg])
                .run()
                .map_err(Box::new)
        };
        if install().is_err() {
            admin("apt-get", "update the package lists".into()).args(["update", "-qq"]).run()?;
            install()?;
        }
        if tool == SystemTool::DockerRegistry {
            // The package starts a registry on :5000 as a service; the tool and its tests
            // start their own on free ports, so leave the machine as it was.
            let _ = admin("service", "stop the packaged docker-registry service".into()).args(["docker-registry", "stop"]).run();
        }
        find_program(tool.program()).with_context(|| format!("apt-get installed {pkg} but `{}` is still not found", tool.program()))
    }

    /// Installs everything that can be installed here (for `doctor --fix` and
    /// `cargo xtask test`); returns the errors of what could not be.
    pub fn install_all(&self, system: &[SystemTool]) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = self.uv() {
            errors.push(format!("uv: {e:#}"));
        }
        for g in Group::ALL {
            if let Err(e) = self.group(g) {
                errors.push(format!("{}: {e:#}", g.name()));
            }
        }
        for t in system {
            if let Err(e) = self.system(*t) {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }

    /// The provisioned tools and whether each is installed, without installing.
    pub fn states(&self) -> Vec<ToolState> {
        let mut out = vec![ToolState {
            name: "uv".into(),
            path: self.uv_dir().join("bin/uv"),
            installed: self.is_provisioned(&self.uv_dir(), &format!("uv=={UV_VERSION}")),
            pin: UV_VERSION.into(),
        }];
        let pin = self.group_pin().unwrap_or_default();
        for g in Group::ALL {
            let dir = self.group_dir(g);
            out.push(ToolState { name: g.name().into(), installed: self.is_provisioned(&dir, &pin), path: dir, pin: "uv.lock".into() });
        }
        out
    }

    fn is_provisioned(&self, dir: &Utf8Path, pin: &str) -> bool {
        fs::read_to_string(dir.join(MARKER)).is_ok_and(|t| t == pin)
    }

    /// Runs `install` into `dir` unless `dir` is already marked with `pin`.
    fn provision(&self, what: &str, pin: &str, dir: &Utf8Path, install: impl FnOnce(&Utf8Path) -> Result<()>) -> Result<()> {
        if self.is_provisioned(dir, pin) {
            return Ok(());
        }
        if offline() {
            bail!("{what} is not installed in {dir} and --offline forbids installing it; run once online, or `cargo xtask doctor --fix`");
        }
        fs::create_dir_all(&self.dir).with_context(|| format!("failed to create {}", self.dir))?;
        let lock_path = self.dir.join(".lock");
        let lock = File::create(&lock_path).with_context(|| format!("failed to open {lock_path}"))?;
        lock.lock().with_context(|| format!("failed to lock {lock_path}"))?;
        // Another run may have installed it while this one waited.
        if self.is_provisioned(dir, pin) {
            return Ok(());
        }
        eprintln!("installing {what} into {dir} (once per machine)");
        let _ = fs::remove_dir_all(dir);
        if let Err(e) = install(dir) {
            let _ = fs::remove_dir_all(dir);
            return Err(e.context(format!("failed to install {what}")));
        }
        xtask_engine::atomic::write_atomically(&dir.join(MARKER), pin.as_bytes())
    }
}

/// Whether this is a CI runner (`CI=true`, as GitHub Actions and most CI services set it)
/// whose user may run `sudo` without a password.
fn ci_with_passwordless_sudo() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") && Cmd::new("sudo", "check for passwordless sudo").args(["-n", "true"]).run().is_ok()
}

/// The file whose content marks a finished install.
const MARKER: &str = ".xtask-provisioned";

/// A program on PATH, or in the sbin folders a non-root PATH often lacks.
pub fn find_program(name: &str) -> Option<Utf8PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Utf8Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Utf8Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What decides how a system package can be installed here.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub root: bool,
    pub debian_like: bool,
    pub distro: String,
}

impl HostFacts {
    pub fn read() -> HostFacts {
        let release = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |k: &str| {
            release.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(|v| v.trim_matches('"').to_owned()).unwrap_or_default()
        };
        let ids = format!("{} {}", field("ID"), field("ID_LIKE"));
        let debian_like = ids.split_whitespace().any(|id| id == "debian" || id == "ubuntu");
        let distro = Some(field("PRETTY_NAME")).filter(|s| !s.is_empty()).unwrap_or_else(|| "this system".into());
        HostFacts { root: is_root(), debian_like, distro }
    }

    /// The command that installs `pkg` here.
    pub fn install_command(&self, pkg: &str) -> String {
        match (self.debian_like, self.root) {
            (true, true) => format!("apt-get install {pkg}"),
            (true, false) => format!("sudo apt-get install {pkg}"),
            (false, _) => format!("install the `{pkg}` package with your system's package manager"),
        }
    }
}

pub use xtask_engine::process::is_root;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_commands_name_sudo_only_when_not_root() {
        let h = HostFacts { root: false, debian_like: true, distro: "Debian".into() };
        assert_eq!(h.install_command("debootstrap"), "sudo apt-get install debootstrap");
        let h = HostFacts { root: true, ..h };
        assert_eq!(h.install_command("debootstrap"), "apt-get install debootstrap");
        let h = HostFacts { debian_like: false, ..h };
        assert!(h.install_command("debootstrap").contains("your system's package manager"));
    }

    #[test]
    fn an_unfinished_install_is_not_provisioned_and_a_finished_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let tb = Toolbox { dir: root.join("tools"), source: root.to_owned() };
        let env = root.join("tools/thing");
        let r = tb.provision("thing", "v1", &env, |d| {
            fs::create_dir_all(d)?;
            bail!("network down")
        });
        assert!(r.is_err());
        assert!(!env.exists(), "a failed install leaves nothing behind");
        tb.provision("thing", "v1", &env, |d| Ok(fs::create_dir_all(d)?)).unwrap();
        assert!(tb.is_provisioned(&env, "v1"));
        assert!(!tb.is_provisioned(&env, "v2"), "a new pin reinstalls");
        // Provisioned: the installer is not run again.
        tb.provision("thing", "v1", &env, |_| panic!("installed twice")).unwrap();
    }
}
