//! The process's one handler of SIGINT and SIGTERM.
//!
//! Without a handler, Ctrl-C kills the tool at once: builds started by the run go on as
//! orphans, nothing says so, and a Pulumi update writing into a dead pipe dies holding its
//! lock. So work that must end cleanly opens a [`scope`] with what a signal should do
//! while it runs (a build run stops starting new builds; a Pulumi run forwards the signal
//! to Pulumi). The innermost scope gets the signal; with no scope open, the signal does
//! what it does by default. The first signal received in a scope is kept ([`received`]),
//! and the command then exits `128 + signal` (130 for SIGINT, 143 for SIGTERM).
//!
//! The signals are received by signal-hook's iterator on a thread of its own, so the
//! handlers run as ordinary code, not inside a signal handler.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use signal_hook::consts::{SIGINT, SIGTERM};

type Handler = Arc<dyn Fn(i32) + Send + Sync>;

static HANDLERS: Mutex<Vec<(u64, Handler)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The first SIGINT or SIGTERM received while a scope was open (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// An open scope; closing it (drop) gives the signals back to the scope around it.
#[must_use = "the scope closes when dropped"]
pub struct Scope {
    id: u64,
}

impl Drop for Scope {
    fn drop(&mut self) {
        handlers().retain(|(id, _)| *id != self.id);
    }
}

fn handlers() -> std::sync::MutexGuard<'static, Vec<(u64, Handler)>> {
    HANDLERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens a scope in which `handler` receives SIGINT and SIGTERM.
pub fn scope(handler: impl Fn(i32) + Send + Sync + 'static) -> std::io::Result<Scope> {
    install()?;
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    handlers().push((id, Arc::new(handler)));
    Ok(Scope { id })
}

/// The first SIGINT or SIGTERM received while a scope was open, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code of a command stopped by `signal`: `128 + signal`, as a shell reports it.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(255)
}

/// `SIGINT` or `SIGTERM`.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Ends the process as `signal` would have without a handler.
pub fn default_action(signal: i32) {
    if signal_hook::low_level::emulate_default_handler(signal).is_err() {
        std::process::exit(128 + signal);
    }
}

fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
                for signal in signals.forever() {
                    dispatch(signal);
                }
            });
            if let Err(e) = spawned {
                result = Err(e);
            }
        }
        Err(e) => result = Err(e),
    });
    result
}

fn dispatch(signal: i32) {
    let top = handlers().last().map(|(_, h)| h.clone());
    match top {
        Some(handler) => {
            let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
            handler(signal);
        }
        None => default_action(signal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_innermost_scope_gets_the_signal_and_the_first_is_kept() {
        let outer = Arc::new(AtomicUsize::new(0));
        let inner = Arc::new(AtomicUsize::new(0));
        let o = outer.clone();
        let _outer = scope(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        {
            let i = inner.clone();
            let _inner = scope(move |_| {
                i.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            dispatch(SIGTERM);
        }
        dispatch(SIGINT);
        assert_eq!((outer.load(Ordering::SeqCst), inner.load(Ordering::SeqCst)), (1, 1));
        assert_eq!(received(), Some(SIGTERM));
        assert_eq!((exit_code(SIGINT), exit_code(SIGTERM)), (130, 143));
    }
}
