//! Fuzzes the `infra/.env` reader (`xtask_pulumi::dotenv`): any text is read or gives a
//! `DotEnvError`, never a panic; an error never quotes a value (values may be secrets);
//! and a map written with the quoting the reader documents reads back as that map.
//!
//! Input: the `.env` text itself. Each line the reader accepts is also written back
//! double-quoted (every value the reader returns must survive that round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtask_pulumi::dotenv::{self, DotEnv};

/// A value written as the reader's documented double-quoted form: `\`, `"`, `$` and
/// `` ` `` escaped, newline and tab as `\n` and `\t`.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every key of `env` with its value, rendered one `KEY="value"` line each.
fn render(env: &DotEnv) -> String {
    env.keys().into_iter().map(|k| format!("{k}={}\n", quoted(env.get(k).unwrap_or_default()))).collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match dotenv::parse(&text) {
        Ok(env) => {
            // Reading is deterministic.
            assert_eq!(dotenv::parse(&text).as_ref(), Ok(&env));
            // The values read, written back quoted, read back the same.
            let written = render(&env);
            let back = dotenv::parse(&written).unwrap_or_else(|e| panic!("the rendered file {written:?} does not read back: {e}"));
            assert_eq!(back.keys(), env.keys(), "keys changed through {written:?}");
            for k in env.keys() {
                assert_eq!(back.get(k), env.get(k), "{k} changed through {written:?}");
            }
        }
        Err(e) => {
            // The error names a line of the file.
            let lines = text.lines().count();
            assert!(e.line >= 1 && e.line <= lines, "error line {} outside 1..={lines}", e.line);
            // It never quotes the value (the part after the first `=` of that line). Only
            // a value with a character no message or key is made of can be told apart
            // from the message's own words, so only such a value is looked for.
            let line = text.lines().nth(e.line - 1).unwrap_or_default();
            if let Some((_, value)) = line.split_once('=') {
                let value = value.trim();
                let distinctive = value.chars().any(|c| !(c.is_ascii_alphanumeric() || " =,_();#:".contains(c)));
                if value.len() >= 4 && distinctive {
                    assert!(!e.to_string().contains(value), "the error {e} quotes the value of line {}", e.line);
                }
            }
        }
    }
});
