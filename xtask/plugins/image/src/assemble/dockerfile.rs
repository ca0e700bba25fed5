//! The part of the Dockerfile language the assembler carries out itself: parsing into
//! instructions (parser directives, line continuations, comments, JSON and shell forms,
//! `--flag=value`), and the word expansion Docker applies to them (`$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR:+word}`, quotes and escapes).
//!
//! Written by hand because no Rust crate parses Dockerfiles with moby's rules (the
//! `dockerfile-parser` crate follows BuildKit's grammar loosely and does not expand
//! words); the rules here follow moby's `parser` and `shell/lex.go`, and the equivalence
//! tests build every Dockerfile both ways to hold them to it.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// One instruction, as written, after joining continuation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The keyword in upper case (`COPY`).
    pub keyword: String,
    /// `--name=value` flags in the order written.
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The instruction as written (continuations joined), for messages and history.
    pub original: String,
}

/// The arguments of an instruction: the JSON (exec) form or the plain text after the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Json(Vec<String>),
    Text(String),
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    /// The escape character (`\` unless a `# escape=` directive says otherwise).
    pub escape: char,
}

/// Instructions whose arguments may be written in JSON form.
const JSON_FORMS: &[&str] = &["ADD", "COPY", "CMD", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"];
/// Instructions that take `--flag=value` options.
const FLAGGED: &[&str] = &["ADD", "COPY", "FROM", "RUN", "HEALTHCHECK"];

/// Every instruction the Dockerfile reference defines.
const KNOWN: &[&str] = &[
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
];

/// Parses a Dockerfile. Errors name the line.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let mut escape = '\\';
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Parser directives: `# key=value` lines before anything else.
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(rest) = l.strip_prefix('#') else { break };
        let Some((key, value)) = rest.split_once('=') else { break };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        if key == "escape" {
            escape = match value.trim() {
                "\\" => '\\',
                "`" => '`',
                other => bail!("line {}: invalid escape directive `{other}`; use \\ or `", i + 1),
            };
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start();
        i += 1;
        if first.trim().is_empty() || first.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut current = first.to_owned();
        loop {
            let trimmed = current.trim_end();
            if let Some(body) = trimmed.strip_suffix(escape) {
                logical.push_str(body);
                // The next non-empty, non-comment line continues this one.
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let t = l.trim_start();
                    if t.trim().is_empty() || t.starts_with('#') {
                        continue;
                    }
                    next = Some(l.to_owned());
                    break;
                }
                match next {
                    Some(n) => current = n,
                    None => break,
                }
            } else {
                logical.push_str(&current);
                break;
            }
        }
        let logical = logical.trim().to_owned();
        let (word, rest) = match logical.find(char::is_whitespace) {
            Some(p) => (&logical[..p], logical[p..].trim_start()),
            None => (logical.as_str(), ""),
        };
        let keyword = word.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            bail!("line {}: unknown instruction `{word}`; see https://docs.docker.com/reference/dockerfile/", start + 1);
        }
        let mut rest = rest;
        let mut flags = Vec::new();
        if FLAGGED.contains(&keyword.as_str()) {
            while let Some(f) = rest.strip_prefix("--") {
                let end = f.find(char::is_whitespace).unwrap_or(f.len());
                let flag = &f[..end];
                let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
                flags.push((name.to_owned(), value.to_owned()));
                rest = f[end..].trim_start();
            }
        }
        let args = if JSON_FORMS.contains(&keyword.as_str()) && rest.starts_with('[') {
            match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => Args::Json(v),
                Err(_) => Args::Text(rest.to_owned()),
            }
        } else {
            Args::Text(rest.to_owned())
        };
        instructions.push(Instruction { line: start + 1, keyword, flags, args, original: logical.clone() });
    }
    if !instructions.iter().any(|i| i.keyword == "FROM") {
        bail!("no FROM instruction; a Dockerfile starts from a base image");
    }
    Ok(Dockerfile { instructions, escape })
}

/// Variables visible to word expansion, in the order Docker resolves them.
pub type Vars = BTreeMap<String, String>;

/// How deeply `${A:-${B:-...}}` may nest. Far beyond any real Dockerfile; each level
/// copies the text inside it, so without a bound a long enough line of nested defaults
/// took time and memory quadratic in its length (20,000 levels, 120 KB, ran out of 2 GB
/// when run through `cargo xtask fuzz dockerfile --input`).
const MAX_NESTING: usize = 64;

/// Expands one word as moby's `ProcessWord` does: quotes removed, escapes resolved,
/// variables substituted. Unset variables expand to nothing.
pub fn expand_word(word: &str, vars: &Vars, escape: char) -> Result<String> {
    nested_word(word, vars, escape, 0)
}

/// [`expand_word`] of the word inside a `${NAME:-word}` nested `nesting` levels deep.
fn nested_word(word: &str, vars: &Vars, escape: char, nesting: usize) -> Result<String> {
    let words = lex(word, vars, escape, false, nesting)?;
    Ok(words.into_iter().next().unwrap_or_default())
}

/// Expands and splits on unquoted whitespace, as moby's `ProcessWords` does.
pub fn expand_words(text: &str, vars: &Vars, escape: char) -> Result<Vec<String>> {
    lex(text, vars, escape, true, 0)
}

fn lex(text: &str, vars: &Vars, escape: char, split: bool, nesting: usize) -> Result<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        if c == escape {
            if i + 1 < chars.len() {
                cur.push(chars[i + 1]);
                i += 2;
            } else {
                cur.push(c);
                i += 1;
            }
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                cur.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                bail!("unexpected end of text in `{text}`: a single quote is not closed");
            }
            i += 1;
        } else if c == '"' {
            i += 1;
            loop {
                if i >= chars.len() {
                    bail!("unexpected end of text in `{text}`: a double quote is not closed");
                }
                let d = chars[i];
                if d == '"' {
                    i += 1;
                    break;
                } else if d == escape && i + 1 < chars.len() && matches!(chars[i + 1], '"' | '$') || d == escape && i + 1 < chars.len() && chars[i + 1] == escape {
                    cur.push(chars[i + 1]);
                    i += 2;
                } else if d == '$' {
                    i = variable(&chars, i, vars, escape, &mut cur, nesting)?;
                } else {
                    cur.push(d);
                    i += 1;
                }
            }
        } else if c == '$' {
            i = variable(&chars, i, vars, escape, &mut cur, nesting)?;
        } else {
            cur.push(c);
            i += 1;
        }
    }
    if in_word || !split {
        words.push(cur);
    }
    Ok(words)
}

/// Expands the variable reference starting at `chars[i] == '$'`; returns the index after it.
fn variable(chars: &[char], i: usize, vars: &Vars, escape: char, out: &mut String, nesting: usize) -> Result<usize> {
    let mut j = i + 1;
    if j < chars.len() && chars[j] == '{' {
        j += 1;
        let start = j;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let name: String = chars[start..j].iter().collect();
        if name.is_empty() {
            bail!("bad substitution: `${{` with no variable name");
        }
        if j < chars.len() && chars[j] == '}' {
            out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
            return Ok(j + 1);
        }
        if j + 1 < chars.len() && chars[j] == ':' && matches!(chars[j + 1], '-' | '+') {
            let op = chars[j + 1];
            let mut k = j + 2;
            let mut depth = 1;
            let wstart = k;
            while k < chars.len() {
                match chars[k] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            if k >= chars.len() {
                bail!("bad substitution: `${{{name}` is not closed");
            }
            if nesting >= MAX_NESTING {
                bail!("bad substitution: `${{{name}:{op}...}}` nests more than {MAX_NESTING} substitutions; set an ARG in steps instead");
            }
            let word: String = chars[wstart..k].iter().collect();
            let word = nested_word(&word, vars, escape, nesting + 1)?;
            let value = vars.get(&name).filter(|v| !v.is_empty());
            match (op, value) {
                ('-', Some(v)) => out.push_str(v),
                ('-', None) => out.push_str(&word),
                ('+', Some(_)) => out.push_str(&word),
                _ => {}
            }
            return Ok(k + 1);
        }
        bail!("unsupported substitution in `${{{name}...}}`; use ${{NAME}}, ${{NAME:-default}} or ${{NAME:+alternative}}");
    }
    let start = j;
    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    if j == start {
        out.push('$');
        return Ok(j);
    }
    let name: String = chars[start..j].iter().collect();
    out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    Ok(j)
}

/// Splits `key=value key2="value 2"` (or the legacy `key value` form) into pairs, with
/// values expanded, as ENV and LABEL read them.
pub fn name_values(text: &str, vars: &Vars, escape: char, keyword: &str) -> Result<Vec<(String, String)>> {
    let raw = raw_words(text, escape);
    let Some(first) = raw.first() else {
        bail!("{keyword} needs at least one argument");
    };
    if !first.contains('=') {
        // Legacy form: the first word is the name, the rest of the text its value.
        let rest = text.trim_start()[first.len()..].trim();
        if rest.is_empty() {
            bail!("{keyword} {first} has no value; write {keyword} {first}=value");
        }
        return Ok(vec![(expand_word(first, vars, escape)?, expand_word(rest, vars, escape)?)]);
    }
    let mut out = Vec::new();
    for w in raw {
        let Some((k, v)) = w.split_once('=') else {
            bail!("{keyword}: `{w}` is not name=value; quote values that contain spaces");
        };
        out.push((expand_word(k, vars, escape)?, expand_word(v, vars, escape)?));
    }
    Ok(out)
}

/// Splits on unquoted whitespace, keeping quotes and escapes (moby's `parseWords`).
fn raw_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            _ if c == escape => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn continuations_comments_and_forms() {
        let df = parse(
            "# escape=\\\nARG BASE=x\nFROM ${BASE}\n# a comment\nCOPY --chown=1:2 \\\n  # inside\n  a b /dst/\nCMD [\"run\", \"it\"]\nCMD run it\nentrypoint [broken\n",
        )
        .unwrap();
        let k: Vec<&str> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["ARG", "FROM", "COPY", "CMD", "CMD", "ENTRYPOINT"]);
        let copy = &df.instructions[2];
        assert_eq!(copy.line, 5);
        assert_eq!(copy.flags, vec![("chown".to_owned(), "1:2".to_owned())]);
        assert_eq!(copy.args, Args::Text("a b /dst/".into()));
        assert_eq!(df.instructions[3].args, Args::Json(vec!["run".into(), "it".into()]));
        assert_eq!(df.instructions[4].args, Args::Text("run it".into()));
        assert_eq!(df.instructions[5].args, Args::Text("[broken".into()), "invalid JSON falls back to the shell form");
    }

    #[test]
    fn backtick_escape_directive() {
        let df = parse("# escape=`\nFROM x\nCOPY a `\n  /b/\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, Args::Text("a   /b/".into()), "leading space of a continuation is kept, as moby does");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM x\nCOPPY a b\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("COPPY"), "{e}");
        assert!(parse("COPY a b\n").unwrap_err().to_string().contains("no FROM"));
    }

    #[test]
    fn word_expansion_follows_the_shell_rules() {
        let v = vars(&[("A", "one"), ("E", "")]);
        let x = |s: &str| expand_word(s, &v, '\\').unwrap();
        assert_eq!(x("$A/${A}x"), "one/onex");
        assert_eq!(x("${E:-dflt} ${A:-dflt} ${A:+alt} ${E:+alt}"), "dflt one alt ");
        assert_eq!(x("'$A' \"$A\" \\$A"), "$A one $A");
        assert_eq!(x("${MISSING}end"), "end");
        assert_eq!(x("cost $ 5"), "cost $ 5");
        assert_eq!(expand_words("a \"b c\" $A", &v, '\\').unwrap(), ["a", "b c", "one"]);
        assert!(expand_word("'open", &v, '\\').is_err());
        assert!(expand_word("${A%%x}", &v, '\\').is_err());
    }

    #[test]
    fn nested_defaults_are_expanded_up_to_a_bound() {
        let v = vars(&[("A", "one")]);
        let nest = |n: usize, inner: &str| format!("{}{inner}{}", "${E:-".repeat(n), "}".repeat(n));
        assert_eq!(expand_word(&nest(MAX_NESTING, "$A"), &v, '\\').unwrap(), "one");
        // One level more is an error naming the problem, reached before the copies add
        // up: 20,000 levels ran out of memory before the bound.
        let e = expand_word(&nest(MAX_NESTING + 1, "x"), &v, '\\').unwrap_err().to_string();
        assert!(e.contains("nests more than 64"), "{e}");
        let started = std::time::Instant::now();
        assert!(expand_words(&nest(20_000, "x"), &v, '\\').is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn env_and_label_pairs() {
        let v = vars(&[("A", "one")]);
        let p = name_values("X=1 Y=\"two words\" Z=$A", &v, '\\', "ENV").unwrap();
        assert_eq!(p, [("X".into(), "1".into()), ("Y".into(), "two words".into()), ("Z".into(), "one".into())]);
        let legacy = name_values("NAME some value $A", &v, '\\', "ENV").unwrap();
        assert_eq!(legacy, [("NAME".into(), "some value one".into())]);
        assert!(name_values("X=1 bare", &v, '\\', "LABEL").is_err());
    }
}
