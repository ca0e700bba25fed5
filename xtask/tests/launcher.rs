//! The launcher `cargo xtask` runs (`xtask/launcher`), driven through the repository's
//! own alias in a small fixture workspace whose `xtask` binary prints what it was given:
//! it builds when the binary's sources changed and only then, passes arguments, the exit
//! code and the process itself through, shows a failed build, keeps its stamp whole when
//! two run at once, and puts everything where `CARGO_TARGET_DIR` or `build.target-dir`
//! say.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's `xtask/` folder: the launcher's sources and the alias come from here.
fn xtask_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const MAIN: &str = r#"
const DATA: &str = include_str!("../../data.txt");
const VERSION: &str = "v1";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("version={VERSION}");
    println!("data={}", DATA.trim());
    println!("pid={}", std::process::id());
    for a in &args {
        println!("arg={a:?}");
    }
    let code = args.iter().position(|a| a == "exit").and_then(|i| args.get(i + 1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    std::process::exit(code);
}
"#;

/// A workspace with the repository's alias and launcher, a tiny `xtask` that reads a file
/// outside `xtask/` with `include_str!`, and a crate `xtask` does not depend on. Its path
/// has a space, which Cargo's dep-info escapes.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// `CARGO_TARGET_DIR` for every run, when set.
    target: Option<PathBuf>,
}

impl Fixture {
    fn new(with_target_dir: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo dir");
        let target = with_target_dir.then(|| dir.path().join("shared target"));
        let f = Fixture { _dir: dir, root, target };
        f.write("Cargo.toml", "[workspace]\nresolver = \"3\"\nmembers = [\"xtask\", \"other\"]\n");
        f.write(".cargo/config.toml", &fs::read_to_string(xtask_dir().join("../.cargo/config.toml")).unwrap());
        f.write("data.txt", "one\n");
        f.write("xtask/Cargo.toml", "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        f.write("xtask/src/main.rs", MAIN);
        for file in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
            f.write(&format!("xtask/launcher/{file}"), &fs::read_to_string(xtask_dir().join("launcher").join(file)).unwrap());
        }
        f.write("other/Cargo.toml", "[package]\nname = \"other\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        f.write("other/src/lib.rs", "pub fn other() {}\n");
        // A committed lock, as in the repository: otherwise the first build writes one,
        // which is itself a change the next run must rebuild for.
        let out = f.cargo().args(["generate-lockfile", "--offline"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        f
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = fs::read_to_string(self.root.join(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replace(from, to));
    }

    /// Cargo as the tests' own Cargo, in the fixture, with the fixture's target folder.
    fn cargo(&self) -> Command {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.current_dir(&self.root).env("XTASK_LAUNCHER_VERBOSE", "1").env_remove("CARGO_BUILD_TARGET_DIR");
        match &self.target {
            Some(t) => c.env("CARGO_TARGET_DIR", t),
            None => c.env_remove("CARGO_TARGET_DIR"),
        };
        c
    }

    /// `cargo xtask <args>`, as typed.
    fn xtask(&self, args: &[&str]) -> Run {
        let child = self.cargo().arg("xtask").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        Run { pid, out: child.wait_with_output().unwrap() }
    }

    /// Where the binaries go: the target folder's `debug/`.
    fn bin_dir(&self) -> PathBuf {
        self.target.clone().unwrap_or_else(|| self.root.join("out")).join("debug")
    }

    fn stamp(&self) -> String {
        fs::read_to_string(self.bin_dir().join("xtask.stamp")).unwrap()
    }

    fn binary_mtime(&self) -> std::time::SystemTime {
        fs::metadata(self.bin_dir().join("xtask")).unwrap().modified().unwrap()
    }
}

struct Run {
    /// The process `cargo xtask` was started as.
    pid: u32,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn ok(self) -> Run {
        assert!(self.out.status.success(), "cargo xtask failed:\n{}{}", self.stdout(), self.stderr());
        self
    }

    fn built(&self) -> bool {
        let err = self.stderr();
        match (err.contains("xtask-launcher: building xtask"), err.contains("is up to date")) {
            (true, false) => true,
            (false, true) => false,
            _ => panic!("the launcher did not say what it decided:\n{err}"),
        }
    }
}

#[test]
fn the_binary_is_rebuilt_when_its_sources_change_and_only_then() {
    let f = Fixture::new(true);

    // The first run builds both crates into CARGO_TARGET_DIR and passes every argument.
    let r = f.xtask(&["show", "two words", "--flag=x", "", "ünï"]).ok();
    assert!(r.built(), "{}", r.stderr());
    assert!(r.stderr().contains("no stamp from an earlier build"), "{}", r.stderr());
    let lines: Vec<String> = r.stdout().lines().filter(|l| l.starts_with("arg=")).map(str::to_owned).collect();
    assert_eq!(lines, ["arg=\"show\"", "arg=\"two words\"", "arg=\"--flag=x\"", "arg=\"\"", "arg=\"ünï\""]);
    assert!(r.stdout().contains("version=v1\ndata=one\n"), "{}", r.stdout());
    assert!(f.bin_dir().join("xtask").is_file() && f.bin_dir().join("xtask-launcher").is_file());
    for elsewhere in ["target", "xtask/launcher/target"] {
        assert!(!f.root.join(elsewhere).exists(), "CARGO_TARGET_DIR is set, yet {elsewhere} was created");
    }
    let (stamp, mtime) = (f.stamp(), f.binary_mtime());

    // Nothing changed: no build; the exit code comes through, and so does the process
    // itself (Cargo and the launcher both exec, so the tool runs as the process started).
    let r = f.xtask(&["exit", "7"]);
    assert!(!r.built(), "{}", r.stderr());
    assert_eq!(r.out.status.code(), Some(7), "{}", r.stderr());
    if cfg!(unix) {
        assert!(r.stdout().contains(&format!("pid={}\n", r.pid)), "the tool is not the process `cargo xtask` started:\n{}", r.stdout());
    }

    // A crate xtask does not depend on changes: still no build.
    f.edit("other/src/lib.rs", "pub fn other() {}", "pub fn other() -> u8 { 1 }");
    let r = f.xtask(&[]).ok();
    assert!(!r.built(), "{}", r.stderr());
    assert_eq!((f.stamp(), f.binary_mtime()), (stamp, mtime), "nothing was rebuilt or restamped");

    // A source of xtask changes: built, and the new binary runs.
    f.edit("xtask/src/main.rs", "\"v1\"", "\"v2\"");
    let r = f.xtask(&[]).ok();
    assert!(r.built() && r.stderr().contains("main.rs changed"), "{}", r.stderr());
    assert!(r.stdout().contains("version=v2"), "{}", r.stdout());

    // A file outside xtask/ that the binary includes (Cargo's dep-info names it) changes.
    f.write("data.txt", "two\n");
    let r = f.xtask(&[]).ok();
    assert!(r.built() && r.stderr().contains("data.txt changed"), "{}", r.stderr());
    assert!(r.stdout().contains("data=two"), "{}", r.stdout());

    // A new file in xtask/ that nothing includes yet still counts: the folder changed.
    f.write("xtask/src/later.rs", "");
    let r = f.xtask(&[]).ok();
    assert!(r.built(), "{}", r.stderr());
    assert!(!f.xtask(&[]).ok().built(), "settled after one build");

    // A build that fails: Cargo's diagnostics are shown, the old binary is not run, and
    // the command fails; the next run tries again.
    f.edit("xtask/src/main.rs", "fn main() {", "fn main() { let x: u8 = \"not a number\";");
    let r = f.xtask(&[]);
    assert!(!r.out.status.success());
    assert!(r.stderr().contains("mismatched types") && r.stderr().contains("building xtask failed"), "{}", r.stderr());
    assert!(r.stdout().is_empty(), "the old binary ran: {}", r.stdout());
    f.edit("xtask/src/main.rs", "fn main() { let x: u8 = \"not a number\";", "fn main() {");
    f.edit("xtask/src/main.rs", "\"v2\"", "\"v3\"");

    // Two launchers at once after a change: both run the new binary, and the stamp they
    // leave is whole (the next run trusts it) with no temporary file left behind.
    let runs: Vec<std::process::Child> =
        (0..2).map(|_| f.cargo().args(["xtask", "again"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("version=v3"));
    }
    assert!(!f.xtask(&[]).ok().built(), "the stamp two launchers wrote at once is trusted");
    let leftovers: Vec<_> =
        fs::read_dir(f.bin_dir()).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn build_target_dir_in_the_cargo_config_is_where_both_binaries_go() {
    let f = Fixture::new(false);
    let alias = fs::read_to_string(f.root.join(".cargo/config.toml")).unwrap();
    f.write(".cargo/config.toml", &format!("{alias}\n[build]\ntarget-dir = \"out\"\n"));
    let r = f.xtask(&["hello"]).ok();
    assert!(r.built() && r.stdout().contains("arg=\"hello\""), "{}{}", r.stdout(), r.stderr());
    assert!(f.bin_dir().join("xtask").is_file() && f.bin_dir().join("xtask-launcher").is_file(), "both in out/debug");
    assert!(!f.root.join("target").exists() && !f.root.join("xtask/launcher/target").exists());
    assert!(f.stamp().contains(&format!("binary {}", f.bin_dir().join("xtask").display())), "{}", f.stamp());
    assert!(!f.xtask(&["hello"]).ok().built());

    // Moving the target folder in the configuration is a change: the binary is rebuilt
    // where the configuration now says.
    f.write(".cargo/config.toml", &format!("{alias}\n[build]\ntarget-dir = \"elsewhere\"\n"));
    let r = f.xtask(&["hello"]).ok();
    assert!(r.built(), "{}", r.stderr());
    assert!(f.root.join("elsewhere/debug/xtask").is_file());
}
