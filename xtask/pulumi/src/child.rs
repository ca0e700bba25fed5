//! Runs one `pulumi` process so that it can be stopped the way Pulumi expects: Ctrl-C or
//! SIGTERM reaches it once, and the tool keeps reading its output until it has exited.
//!
//! Pulumi handles SIGINT and SIGTERM itself (`pkg/backend/cancellation_scope.go`, since
//! v3.136.0 for SIGTERM): the first one cancels (in-flight resource operations finish,
//! the state is written, the DIY lock is released, exit code 8 "update cancelled"), a
//! second one terminates at once. What leaves a lock behind is a Pulumi that dies: killed,
//! or writing into the pipe of a tool that has already exited (SIGPIPE).
//!
//! So the child runs in a process group of its own, where a Ctrl-C typed at the terminal
//! does not reach it directly (it would otherwise get the signal twice: once from the
//! terminal, once forwarded, and terminate instead of cancelling). While a child runs,
//! the tool's SIGINT and SIGTERM come here (a scope of `xtask_engine::interrupt`, the
//! process's one handler) and each is forwarded to it with
//! `shared_child` (which signals a child that has not been reaped yet, never a recycled
//! pid). The first signal is remembered ([`received`]), so the command exits 130 or 143
//! once Pulumi is done. A third signal stops the tool itself at once. Outside a Pulumi run
//! the signals keep their default effect.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared_child::SharedChild;
use shared_child::unix::SharedChildExt as _;
use signal_hook::consts::{SIGINT, SIGTERM};

/// How a child's output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// stdout and stderr kept apart (JSON on stdout); stderr also shown as it comes when
    /// `show_stderr` (Pulumi's own logs with `--logtostderr`).
    Capture { show_stderr: bool },
    /// stdout and stderr merged, shown on our stderr line by line as they come, and kept.
    Stream,
}

/// What a finished child printed, and whether it was asked to stop.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    /// Its stderr; in [`Mode::Stream`], everything it printed, in order.
    pub stderr: String,
    /// The first SIGINT or SIGTERM the tool received while this child ran.
    pub interrupted: Option<i32>,
}

/// The child being run, if any, and a signal that arrived before it was registered.
struct Slot {
    active: bool,
    child: Option<Arc<SharedChild>>,
    pending: Option<i32>,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot { active: false, child: None, pending: None });
/// The first SIGINT or SIGTERM received while a child ran (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Signals received while a child ran.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// The first SIGINT or SIGTERM the tool received while Pulumi ran, if any: the command
/// then exits `128 + signal` (130, 143) once Pulumi has finished.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT` or `SIGTERM`.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn lock_slot() -> std::sync::MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn on_signal(signal: i32) {
    let mut slot = lock_slot();
    if !slot.active {
        // No Pulumi running: the signal does what it would have done without the handler.
        drop(slot);
        default_action(signal);
        return;
    }
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let name = signal_name(signal);
    if n >= 3 {
        let pid = slot.child.as_ref().map(|c| c.id().to_string()).unwrap_or_else(|| "?".into());
        eprintln!("xtask: third {name}: stopping now without waiting for pulumi (pid {pid}), which may still hold the stack's lock");
        drop(slot);
        default_action(signal);
        return;
    }
    match slot.child.clone() {
        Some(child) => {
            if n == 1 {
                eprintln!(
                    "xtask: {name} received; passed on to pulumi, which finishes the resource operations in flight, saves the state and releases the lock; waiting for it (send {name} again to make pulumi terminate at once)"
                );
            } else {
                eprintln!("xtask: second {name} received; passed on to pulumi, which now terminates at once");
            }
            let _ = child.send_signal(signal);
        }
        None => slot.pending = Some(signal),
    }
}

/// Ends the process as `signal` would have without a handler.
fn default_action(signal: i32) {
    xtask_engine::interrupt::default_action(signal);
}

/// Clears the slot when the run ends, whatever way it ends.
struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        let mut slot = lock_slot();
        slot.active = false;
        slot.child = None;
        slot.pending = None;
    }
}

/// Runs `cmd` to completion in its own process group, stdin closed, forwarding SIGINT
/// and SIGTERM to it. `redact` is applied to every line shown as it comes.
pub fn run(mut cmd: Command, mode: Mode, redact: &(dyn Fn(&str) -> String + Sync)) -> std::io::Result<Finished> {
    // The tool's signals come here while Pulumi runs (the engine's one handler).
    let _scope = xtask_engine::interrupt::scope(on_signal)?;
    // A signal after this point is for the child, even before it exists.
    {
        let mut slot = lock_slot();
        slot.active = true;
        slot.child = None;
        slot.pending = None;
    }
    let _active = Active;
    cmd.stdin(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let (child, merged) = match mode {
        Mode::Capture { .. } => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            (SharedChild::spawn(&mut cmd)?, None)
        }
        Mode::Stream => {
            let (reader, writer) = std::io::pipe()?;
            cmd.stdout(writer.try_clone()?).stderr(writer);
            let child = SharedChild::spawn(&mut cmd)?;
            // The write ends live in `cmd`; dropped here, so the reader sees the end of the
            // output when the child (and anything it started with the same pipe) exits.
            drop(cmd);
            (child, Some(reader))
        }
    };
    let child = Arc::new(child);
    {
        let mut slot = lock_slot();
        slot.child = Some(child.clone());
        if let Some(signal) = slot.pending.take() {
            let _ = child.send_signal(signal);
        }
    }
    let (stdout, stderr) = match (mode, merged) {
        (Mode::Stream, Some(reader)) => (String::new(), copy_lines(reader, Some(redact))),
        (Mode::Capture { show_stderr }, _) => {
            let out = child.take_stdout();
            let err = child.take_stderr();
            std::thread::scope(|scope| {
                let err_thread = scope.spawn(move || match err {
                    Some(e) => copy_lines(e, if show_stderr { Some(redact) } else { None }),
                    None => String::new(),
                });
                let stdout = match out {
                    Some(mut o) => {
                        let mut buf = Vec::new();
                        let _ = o.read_to_end(&mut buf);
                        String::from_utf8_lossy(&buf).into_owned()
                    }
                    None => String::new(),
                };
                (stdout, err_thread.join().unwrap_or_default())
            })
        }
        (Mode::Stream, None) => (String::new(), String::new()),
    };
    let status = child.wait()?;
    Ok(Finished { status, stdout, stderr, interrupted: received() })
}

/// Reads `from` to its end, line by line; with `show`, each line (redacted) is written to
/// our stderr as it arrives. Returns everything read, unredacted (the caller redacts it
/// before it is shown again).
fn copy_lines(from: impl Read, show: Option<&(dyn Fn(&str) -> String + Sync)>) -> String {
    let mut reader = BufReader::new(from);
    let mut all = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(redact) = show {
                    let text = redact(&String::from_utf8_lossy(&line));
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(text.as_bytes());
                    let _ = err.flush();
                }
                all.extend_from_slice(&line);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn capture_keeps_stdout_and_stderr_apart() {
        let f = run(sh("echo out; echo err >&2; exit 3"), Mode::Capture { show_stderr: false }, &|s| s.to_owned()).unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.stdout, "out\n");
        assert_eq!(f.stderr, "err\n");
        assert_eq!(f.interrupted, None);
    }

    #[test]
    fn stream_merges_in_order_and_keeps_a_copy() {
        let f = run(sh("echo one; echo two >&2; echo three"), Mode::Stream, &|s| s.replace("two", "***")).unwrap();
        assert!(f.status.success());
        assert_eq!(f.stderr, "one\ntwo\nthree\n", "the copy is unredacted; what was shown was redacted");
    }

    #[test]
    fn the_child_runs_in_its_own_process_group() {
        // Field 5 of /proc/<pid>/stat is the process group.
        let f =
            run(sh("cut -d' ' -f5 /proc/$$/stat; cut -d' ' -f5 /proc/$PPID/stat"), Mode::Capture { show_stderr: false }, &|s| s.to_owned())
                .unwrap();
        let groups: Vec<&str> = f.stdout.split_whitespace().collect();
        assert_eq!(groups.len(), 2, "{}", f.stdout);
        assert_ne!(groups[0], groups[1], "a Ctrl-C typed at the terminal must not reach pulumi directly");
    }
}
