//! Python import statements read from source text, without a Python interpreter.
//!
//! The reader tokenises just enough of Python to be right about imports: string literals
//! (including triple-quoted docstrings) and comments are skipped, bracketed and
//! backslash-continued lines are joined, `;` separates statements. Imports anywhere count,
//! including those inside functions and `if TYPE_CHECKING:` blocks: for change detection a
//! module that is imported at all is a module the code depends on. Dynamic imports
//! (`importlib.import_module("...")`) are not seen.

use std::collections::BTreeSet;

/// One `import` or `from ... import` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Leading dots of a relative import (`from ..x import y` has level 2); 0 when absolute.
    pub level: usize,
    /// The dotted module after `import` or between `from` and `import` (may be empty for
    /// `from . import x`).
    pub module: String,
    /// The names after `from ... import`; empty for a plain `import`.
    pub names: Vec<String>,
}

/// Every import statement in `source`, in order.
pub fn parse_imports(source: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for line in logical_lines(&source.replace("\r\n", "\n")) {
        for statement in line.split(';') {
            if let Some(import) = parse_statement(statement.trim()) {
                out.extend(import);
            }
        }
    }
    out
}

/// The dotted modules a file refers to, made absolute.
///
/// `current` is the dotted name of the file's own module (`pkg.sub.mod`, or `pkg.sub` for
/// `pkg/sub/__init__.py`) and `is_package` says whether the file is an `__init__.py`; both
/// are only needed for relative imports. Every parent package of an imported module is
/// listed too, since importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py`. For
/// `from m import n` the result holds `m.n` as well: the caller keeps it only when `m.n`
/// is a module.
pub fn referenced_modules(source: &str, current: Option<(&str, bool)>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for import in parse_imports(source) {
        let base = if import.level == 0 {
            import.module.clone()
        } else {
            let Some((current, is_package)) = current else { continue };
            let mut parts: Vec<&str> = current.split('.').collect();
            // A module's package is its parent; a package's is itself.
            if !is_package {
                parts.pop();
            }
            let up = import.level - 1;
            if up > parts.len() {
                continue;
            }
            parts.truncate(parts.len() - up);
            let mut base = parts.join(".");
            if !import.module.is_empty() {
                if !base.is_empty() {
                    base.push('.');
                }
                base.push_str(&import.module);
            }
            base
        };
        if base.is_empty() {
            continue;
        }
        add_with_parents(&mut out, &base);
        for name in &import.names {
            out.insert(format!("{base}.{name}"));
        }
    }
    out
}

fn add_with_parents(out: &mut BTreeSet<String>, dotted: &str) {
    let mut end = 0;
    for (i, ch) in dotted.char_indices() {
        if ch == '.' {
            out.insert(dotted[..i].to_owned());
        }
        end = i + ch.len_utf8();
    }
    out.insert(dotted[..end].to_owned());
}

/// Parses one statement; `None` when it is not an import.
fn parse_statement(statement: &str) -> Option<Vec<Import>> {
    if let Some(rest) = keyword(statement, "import") {
        let imports = rest
            .split(',')
            .filter_map(|part| {
                let module = first_word(part)?;
                is_dotted_name(module).then(|| Import { level: 0, module: module.to_owned(), names: Vec::new() })
            })
            .collect::<Vec<_>>();
        return (!imports.is_empty()).then_some(imports);
    }
    let rest = keyword(statement, "from")?;
    let (source, names) = split_keyword(rest, "import")?;
    let source = source.trim();
    let level = source.chars().take_while(|c| *c == '.').count();
    let module = source[level..].trim();
    if !module.is_empty() && !is_dotted_name(module) {
        return None;
    }
    if level == 0 && module.is_empty() {
        return None;
    }
    let names = names
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .filter_map(|part| first_word(part).map(str::to_owned))
        .filter(|n| n == "*" || is_dotted_name(n))
        .collect();
    Some(vec![Import { level, module: module.to_owned(), names }])
}

/// `text` after `word` when `text` starts with `word` followed by whitespace.
fn keyword<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(word)?;
    rest.starts_with(|c: char| c.is_whitespace()).then_some(rest)
}

/// Splits at the first whitespace-delimited `word`.
fn split_keyword<'a>(text: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut search = 0;
    while let Some(pos) = text[search..].find(word) {
        let at = search + pos;
        let before_ok = at == 0 || text[..at].ends_with(|c: char| c.is_whitespace());
        let after = &text[at + word.len()..];
        if before_ok && after.starts_with(|c: char| c.is_whitespace() || c == '(') {
            return Some((&text[..at], after));
        }
        search = at + word.len();
    }
    None
}

fn first_word(part: &str) -> Option<&str> {
    part.split_whitespace().next().filter(|w| !w.is_empty())
}

fn is_dotted_name(name: &str) -> bool {
    !name.is_empty() && name.split('.').all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// Python's logical lines, with string literals emptied and comments removed.
fn logical_lines(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
                let quote_len = if triple { 3 } else { 1 };
                i += quote_len;
                while i < chars.len() {
                    if chars[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if !triple && chars[i] == '\n' {
                        // An unterminated single-quoted string ends at the line end.
                        break;
                    }
                    if chars[i] == c && (!triple || (chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c))) {
                        i += quote_len;
                        break;
                    }
                    i += 1;
                }
                current.push_str("\"\"");
                continue;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                current.push(' ');
                i += 2;
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => {
                if depth == 0 {
                    lines.push(std::mem::take(&mut current));
                } else {
                    current.push(' ');
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        current.push(c);
        i += 1;
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines.into_iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(source: &str) -> Vec<String> {
        referenced_modules(source, None).into_iter().collect()
    }

    #[test]
    fn plain_and_aliased_imports_with_parents() {
        let m = modules("import os\nimport tradai_common.aws as aws, json\n");
        assert_eq!(m, ["json", "os", "tradai_common", "tradai_common.aws"]);
    }

    #[test]
    fn from_imports_name_their_candidates() {
        let m = modules("from tradai_common import aws, logs as l\nfrom tradai_common.models import BacktestJob\n");
        assert_eq!(
            m,
            ["tradai_common", "tradai_common.aws", "tradai_common.logs", "tradai_common.models", "tradai_common.models.BacktestJob"]
        );
    }

    #[test]
    fn parenthesised_and_continued_imports_are_joined() {
        let src = "from tradai_common.health import (\n    run_checks,  # a comment\n    dynamodb_table_check,\n)\nfrom tradai_common.state \\\n    import WorkflowStore\n";
        let m = modules(src);
        assert!(m.contains(&"tradai_common.health.run_checks".to_owned()));
        assert!(m.contains(&"tradai_common.health.dynamodb_table_check".to_owned()));
        assert!(m.contains(&"tradai_common.state".to_owned()));
    }

    #[test]
    fn imports_inside_strings_and_comments_are_ignored() {
        let src =
            "\"\"\"Docs.\n\nfrom tradai_common import settings\n\"\"\"\n# import tradai_common.logs\nx = 'import tradai_common.models'\n";
        assert!(modules(src).is_empty(), "{:?}", modules(src));
    }

    #[test]
    fn indented_and_semicolon_separated_imports_count() {
        let src = "def f():\n    import tradai_common.state\n    x = 1; import tradai_common.logs\n";
        let m = modules(src);
        assert!(m.contains(&"tradai_common.state".to_owned()));
        assert!(m.contains(&"tradai_common.logs".to_owned()));
    }

    #[test]
    fn relative_imports_resolve_against_the_current_module() {
        let m: Vec<String> =
            referenced_modules("from .models import X\nfrom . import aws\nfrom ..other import y\n", Some(("pkg.sub.mod", false)))
                .into_iter()
                .collect();
        assert!(m.contains(&"pkg.sub.models".to_owned()), "{m:?}");
        assert!(m.contains(&"pkg.sub.aws".to_owned()), "{m:?}");
        assert!(m.contains(&"pkg.other".to_owned()), "{m:?}");
        let m: Vec<String> = referenced_modules("from .models import X\n", Some(("pkg", true))).into_iter().collect();
        assert!(m.contains(&"pkg.models".to_owned()), "{m:?}");
    }

    #[test]
    fn non_imports_that_look_alike_are_not_imports() {
        assert!(modules("important = 1\nfromage = 2\nprint('from x import y')\n").is_empty());
        assert!(parse_imports("from __future__ import annotations").iter().all(|i| i.module == "__future__"));
    }

    #[test]
    fn star_import_is_kept_for_the_caller() {
        let imports = parse_imports("from tradai_common import *");
        assert_eq!(imports, vec![Import { level: 0, module: "tradai_common".into(), names: vec!["*".into()] }]);
    }
}
