//! The one confirmation every command that changes something risky asks for: a flag in
//! CI, or a word typed on a terminal. Without either it refuses before doing anything.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, Result, bail};

/// Passes when `flag` was given, or when the user types `word` on a terminal.
pub fn typed(word: &str, action: &str, flag: bool, flag_name: &str) -> Result<()> {
    if flag {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !(stdin.is_terminal() && std::io::stderr().is_terminal()) {
        bail!("refusing to {action} without confirmation; pass {flag_name}, or run it on a terminal and type `{word}` when asked");
    }
    eprint!("About to {action}. Type `{word}` to continue: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the confirmation")?;
    if line.trim() != word {
        bail!("not confirmed (expected `{word}`); nothing was changed");
    }
    Ok(())
}
