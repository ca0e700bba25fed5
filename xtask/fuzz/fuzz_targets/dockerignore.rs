//! Fuzzes the `.dockerignore` matcher (`xtask_engine::DockerIgnore`): any text either
//! parses or gives a `PatternError`, never a panic, and every path question gets an
//! answer that is consistent with the matcher's own promises.
//!
//! Input: the `.dockerignore` text; after an optional NUL byte, the paths to ask about,
//! one per line. Every pattern line is also asked about as a path, as are a few fixed
//! paths, so a corpus of plain `.dockerignore` files exercises matching too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xtask_engine::DockerIgnore;

/// The built-in excludes alone, compiled once (compiling patterns is most of a run).
static BUILTINS: OnceLock<DockerIgnore> = OnceLock::new();

/// Paths every input is asked about: top level, nested, and what the built-ins exclude.
const FIXED_PATHS: &[&str] = &["a", "a/b", "a/b/c", "README.md", "src/handler.py", "__pycache__/m.cpython-311.pyc", "x/.venv/bin/python"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, extra) = match text.split_once('\0') {
        Some((patterns, paths)) => (patterns, paths),
        None => (&*text, ""),
    };

    let parsed = DockerIgnore::parse(patterns);
    let with_builtins = DockerIgnore::with_builtins(Some(patterns));
    // The built-ins are valid, so the file alone decides whether a file is rejected.
    assert_eq!(parsed.is_ok(), with_builtins.is_ok(), "parse and with_builtins disagree on {patterns:?}");
    let (Ok(first), Ok(with_builtins)) = (parsed, with_builtins) else { return };
    let again = DockerIgnore::parse(patterns).expect("a text that parsed once parses again");
    let builtins = BUILTINS.get_or_init(|| DockerIgnore::with_builtins(None).expect("the built-in excludes parse"));

    let from_patterns = patterns.lines().map(|l| l.trim().trim_start_matches('!').trim().trim_start_matches('/'));
    let paths = extra.lines().chain(from_patterns).chain(FIXED_PATHS.iter().copied()).take(64);
    for path in paths {
        let excluded = first.is_excluded(path);
        // Matching is a pure function of the pattern list.
        assert_eq!(excluded, again.is_excluded(path), "{path:?} answered differently by the same patterns parsed twice");
        // The built-ins come first, so the file's own rules decide whenever one matches.
        let with = with_builtins.is_excluded(path);
        if excluded {
            assert!(with, "{path:?} is excluded by the file but not once the built-ins are prepended");
        }
        if with && !excluded {
            assert!(builtins.is_excluded(path), "{path:?} is excluded only with the built-ins, yet no built-in excludes it");
        }
        // Docker excludes everything beneath an excluded directory unless a `!` rule
        // re-includes it (moby's MatchesOrParentMatches).
        if excluded && !first.has_negations() {
            let child = format!("{path}/child");
            assert!(first.is_excluded(&child), "{path:?} is excluded but {child:?} beneath it is not, with no `!` rule");
        }
    }
});
