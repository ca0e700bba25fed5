//! `.dockerignore` matching with Docker's own semantics.
//!
//! This follows moby's `patternmatcher`: every line is a pattern cleaned like a path and
//! matched against the whole path relative to the context root (not against any suffix,
//! as `.gitignore` does); `*` and `?` never cross a `/`, `**` matches any number of path
//! segments, `!` re-includes, and the last pattern that matches a path decides. A
//! pattern that matches a directory also excludes everything beneath it, at any depth
//! (moby's `MatchesOrParentMatches`; its deprecated `Matches`, which tried only the one
//! parent with as many segments as the pattern, missed `a/b/build/x` under `**/build`).

use regex_lite::Regex;

/// Caches and tool droppings that never belong in a build context. They are placed
/// before the project's own rules, so a `.dockerignore` can still re-include them.
pub const BUILTIN_EXCLUDES: &[&str] = &[
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.venv",
];

/// One compiled rule of a `.dockerignore` file.
#[derive(Debug, Clone)]
struct Rule {
    /// Matches a path the pattern matches, or a path beneath one (see [`Rule::compile`]).
    regex: Regex,
    /// A `!` rule re-includes what earlier rules excluded.
    negated: bool,
}

impl Rule {
    /// Compiles a cleaned pattern into one regular expression that matches a path when
    /// the pattern matches the path itself or any of its parent directories: a parent is
    /// a prefix that ends before a `/`, so the pattern followed by an optional `/...`
    /// tries them all in one match.
    fn compile(cleaned: &str) -> Result<Regex, regex_lite::Error> {
        Regex::new(&format!("^(?:{})(?s:/.*)?$", pattern_to_regex(cleaned)))
    }
}

/// A compiled set of `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

/// A pattern that Docker would reject as well.
#[derive(Debug, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?} on line {line}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub line: usize,
    pub reason: String,
}

impl DockerIgnore {
    /// Builds a matcher from the built-in excludes followed by the given file's lines.
    pub fn with_builtins(dockerignore: Option<&str>) -> Result<Self, PatternError> {
        let mut matcher = DockerIgnore::default();
        for (i, pattern) in BUILTIN_EXCLUDES.iter().enumerate() {
            matcher.push(pattern, i + 1)?;
        }
        if let Some(text) = dockerignore {
            matcher.extend_from_str(text)?;
        }
        Ok(matcher)
    }

    /// Parses `.dockerignore` text: one pattern per line, `#` comments, blank lines skipped.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut matcher = DockerIgnore::default();
        matcher.extend_from_str(text)?;
        Ok(matcher)
    }

    fn extend_from_str(&mut self, text: &str) -> Result<(), PatternError> {
        for (i, line) in text.lines().enumerate() {
            // Docker only treats a `#` in the first column as a comment.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            self.push(line, i + 1)?;
        }
        Ok(())
    }

    fn push(&mut self, raw: &str, line: usize) -> Result<(), PatternError> {
        let (negated, body) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, raw),
        };
        let cleaned = clean_path(body);
        if cleaned.is_empty() {
            return Ok(());
        }
        let regex = Rule::compile(&cleaned).map_err(|e| PatternError { pattern: raw.to_string(), line, reason: e.to_string() })?;
        self.rules.push(Rule { regex, negated });
        Ok(())
    }

    /// True when any rule re-includes paths; then excluded directories must still be walked.
    pub fn has_negations(&self) -> bool {
        self.rules.iter().any(|r| r.negated)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded: the
    /// last rule that matches it or one of its parent directories decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.regex.is_match(path) {
                excluded = !rule.negated;
            }
        }
        excluded
    }
}

/// Cleans a pattern like Go's `filepath.Clean` and drops a leading `/`.
fn clean_path(pattern: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

/// Translates a cleaned pattern into a regular expression, as moby does (unanchored:
/// [`Rule::compile`] anchors it).
fn pattern_to_regex(pattern: &str) -> String {
    let mut re = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match ch {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                // `**/` is treated as `**`, so the slash is consumed.
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    i += 1;
                    re.push('\\');
                    re.push(*next);
                } else {
                    re.push_str("\\\\");
                }
            }
            '.' | '$' | '+' | '(' | ')' | '|' | '{' | '}' | '^' => {
                re.push('\\');
                re.push(ch);
            }
            other => re.push(other),
        }
        i += 1;
    }
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid patterns")
    }

    #[test]
    fn star_does_not_cross_directories() {
        let ig = m("*.md");
        assert!(ig.is_excluded("README.md"));
        assert!(!ig.is_excluded("docs/README.md"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let ig = m("**/*.md");
        assert!(ig.is_excluded("README.md"));
        assert!(ig.is_excluded("a/b/c.md"));
        assert!(!ig.is_excluded("a/b/c.txt"));
        let ig = m("docs/**");
        assert!(ig.is_excluded("docs/a/b"));
        assert!(!ig.is_excluded("src/docs"));
    }

    #[test]
    fn later_rules_win_and_negation_reincludes() {
        let ig = m("*.md\n!README.md");
        assert!(!ig.is_excluded("README.md"));
        assert!(ig.is_excluded("CHANGES.md"));
        let ig = m("!README.md\n*.md");
        assert!(ig.is_excluded("README.md"), "a later exclusion overrides an earlier negation");
    }

    #[test]
    fn a_matching_directory_excludes_its_contents() {
        let ig = m("tests");
        assert!(ig.is_excluded("tests"));
        assert!(ig.is_excluded("tests/test_handler.py"));
        assert!(!ig.is_excluded("src/tests/x.py"), "anchored at the context root");
    }

    #[test]
    fn everything_beneath_a_matching_directory_is_excluded_at_any_depth() {
        // Found by `cargo xtask fuzz dockerignore`: only the parent with as many segments
        // as the pattern was tried, so these were sent in the context although Docker
        // leaves them out (with a `!` rule the walk descends into excluded folders and
        // asks about each file).
        let ig = m("**/build\n!keep.txt");
        assert!(ig.is_excluded("a/b/build"));
        assert!(ig.is_excluded("a/b/build/out.o"), "two levels deeper than the pattern's two segments");
        assert!(ig.is_excluded("build/x/y/z"));
        assert!(!ig.is_excluded("a/builder/x"), "a parent must match whole, up to a `/`");
        let ig = m("****/!");
        assert!(ig.is_excluded("x/y/!") && ig.is_excluded("x/y/!/child"));
        // A `!` rule re-includes beneath the directory it names, at any depth, too.
        let ig = m("vendor\n!vendor/**/keep");
        assert!(ig.is_excluded("vendor/a/drop"));
        assert!(!ig.is_excluded("vendor/a/b/keep/file"));
    }

    #[test]
    fn patterns_are_cleaned_like_paths() {
        let ig = m("/build/../dist/\n./notes.txt");
        assert!(ig.is_excluded("dist/x.whl"));
        assert!(ig.is_excluded("notes.txt"));
    }

    #[test]
    fn comments_blank_lines_and_question_marks() {
        let ig = m("# comment\n\n  a?c  \n");
        assert!(ig.is_excluded("abc"));
        assert!(!ig.is_excluded("a/c"));
        assert!(!ig.is_excluded("# comment"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let ig = m("a.b\n(x)");
        assert!(ig.is_excluded("a.b"));
        assert!(!ig.is_excluded("axb"));
        assert!(ig.is_excluded("(x)"));
    }

    #[test]
    fn builtins_exclude_caches_but_can_be_overridden() {
        let ig = DockerIgnore::with_builtins(None).unwrap();
        assert!(ig.is_excluded("__pycache__/x.cpython-311.pyc"));
        assert!(ig.is_excluded("pkg/mod.pyc"));
        assert!(ig.is_excluded("deep/.venv/bin/python"));
        assert!(!ig.is_excluded("handler.py"));
        let ig = DockerIgnore::with_builtins(Some("!keep.pyc")).unwrap();
        assert!(!ig.is_excluded("keep.pyc"));
    }

    #[test]
    fn character_classes_pass_through() {
        let ig = m("file[0-9].txt");
        assert!(ig.is_excluded("file3.txt"));
        assert!(!ig.is_excluded("filex.txt"));
    }

    #[test]
    fn invalid_pattern_is_reported_with_its_line() {
        let err = DockerIgnore::parse("ok\n[unclosed").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("[unclosed"));
    }
}
