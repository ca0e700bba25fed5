//! A reader for `infra/.env`: `KEY=VALUE` lines as the seeds' `set -a && source
//! infra/.env` reads them, without running a shell.
//!
//! Accepted: blank lines, `#` comments, an optional `export ` prefix, unquoted values (a
//! ` #` starts a trailing comment), single-quoted values (literal) and double-quoted values
//! (`\n`, `\t`, `\"`, `\\`, `\$` escapes). Not accepted: variable expansion, command
//! substitution and values spanning lines; those are errors rather than silent surprises.
//! Errors name the line and never the value, which may be a secret.

/// The variables of one `.env` file, in file order (a later line for the same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DotEnv {
    entries: Vec<(String, String)>,
}

/// A line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct DotEnvError {
    pub line: usize,
    pub problem: String,
}

impl DotEnv {
    /// The value of the last line that sets `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every key, once, in the order first seen.
    pub fn keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (k, _) in &self.entries {
            if !out.contains(&k.as_str()) {
                out.push(k);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses the text of a `.env` file.
pub fn parse(text: &str) -> Result<DotEnv, DotEnvError> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |problem: &str| DotEnvError { line: line_no, problem: problem.to_owned() };
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(err("expected KEY=VALUE"));
        };
        let key = key.trim_end();
        let valid_key = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(err("expected KEY=VALUE with KEY made of letters, digits and _ (no spaces around =)"));
        }
        let value = parse_value(rest.trim_start()).map_err(|p| err(&format!("{key}: {p}")))?;
        entries.push((key.to_owned(), value));
    }
    Ok(DotEnv { entries })
}

fn parse_value(rest: &str) -> Result<String, String> {
    let mut chars = rest.char_indices();
    let (value, after) = match chars.next() {
        None => return Ok(String::new()),
        Some((_, '\'')) => {
            let body = &rest[1..];
            let end = body.find('\'').ok_or("unterminated single quote; close it on the same line")?;
            (body[..end].to_owned(), &body[end + 1..])
        }
        Some((_, '"')) => {
            let mut out = String::new();
            let mut end = None;
            let mut it = rest[1..].char_indices();
            while let Some((i, c)) = it.next() {
                match c {
                    '"' => {
                        end = Some(i + 2);
                        break;
                    }
                    '\\' => match it.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, e @ ('"' | '\\' | '$' | '`'))) => out.push(e),
                        Some((_, other)) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => return Err("unterminated double quote; close it on the same line".into()),
                    },
                    '$' | '`' => {
                        return Err("variable expansion and command substitution are not supported; use single quotes for a literal value".into());
                    }
                    c => out.push(c),
                }
            }
            let end = end.ok_or("unterminated double quote; close it on the same line")?;
            (out, &rest[end..])
        }
        Some(_) => {
            // Unquoted: up to a comment that follows whitespace.
            let mut cut = rest.len();
            let bytes = rest.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
                    cut = i;
                    break;
                }
            }
            let v = rest[..cut].trim_end();
            if v.contains('$') || v.contains('`') {
                return Err("variable expansion and command substitution are not supported; use single quotes for a literal value".into());
            }
            if v.contains(char::is_whitespace) {
                return Err("unquoted value contains whitespace; quote it".into());
            }
            if v.contains('"') || v.contains('\'') {
                return Err("quote characters inside an unquoted value; quote the whole value".into());
            }
            return Ok(v.to_owned());
        }
    };
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return Err("text after the closing quote; remove it or start a comment with #".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_committed_template_shape() {
        let env = parse(
            "# comment\n\nS3_PULUMI_BACKEND_URL=\nPULUMI_CONFIG_PASSPHRASE=\nAWS_PROFILE=tradai\nAWS_REGION=eu-central-1\n# TRADAI_IMAGE_MANIFEST=\n",
        )
        .unwrap();
        assert_eq!(env.keys(), ["S3_PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_PROFILE", "AWS_REGION"]);
        assert_eq!(env.get("AWS_PROFILE"), Some("tradai"));
        assert_eq!(env.get("PULUMI_CONFIG_PASSPHRASE"), Some(""));
        assert_eq!(env.get("TRADAI_IMAGE_MANIFEST"), None);
    }

    #[test]
    fn quotes_escapes_comments_and_export() {
        let env = parse(concat!(
            "export A=plain # trailing comment\n",
            "B='single # not a comment $HOME'\n",
            "C=\"double \\\"q\\\" \\\\ \\$x line\\nnext\" # c\n",
            "D=url#fragment\n",
            "  E = spaced\n",
            "F=\"\"\n",
            "A=later\n",
        ))
        .unwrap();
        assert_eq!(env.get("A"), Some("later"));
        assert_eq!(env.get("B"), Some("single # not a comment $HOME"));
        assert_eq!(env.get("C"), Some("double \"q\" \\ $x line\nnext"));
        assert_eq!(env.get("D"), Some("url#fragment"));
        assert_eq!(env.get("E"), Some("spaced"));
        assert_eq!(env.get("F"), Some(""));
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let cases = [
            ("OK=1\nnot a pair\n", 2, "expected KEY=VALUE"),
            ("1BAD=x\n", 1, "letters, digits"),
            ("P=\"s3cr3t-value\n", 1, "unterminated double quote"),
            ("P='s3cr3t-value\n", 1, "unterminated single quote"),
            ("P=\"s3cr3t\"value\n", 1, "after the closing quote"),
            ("P=$OTHER\n", 1, "expansion"),
            ("P=\"a${OTHER}\"\n", 1, "expansion"),
            ("P=two words\n", 1, "whitespace"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }
}
