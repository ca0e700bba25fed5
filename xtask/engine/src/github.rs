//! GitHub Actions output, the one place every command writes it: workflow commands
//! (`::group::`, `::error file=...::`), job outputs (`$GITHUB_OUTPUT`) and the step
//! summary (`$GITHUB_STEP_SUMMARY`).
//!
//! A group is written whole, under one lock on stderr ([`Github::group_block`]), so the
//! groups of builds running in parallel never interleave.
//!
//! Workflow commands are printed only under Actions (`GITHUB_ACTIONS=true`); outputs and
//! the summary are written whenever their variable names a file, so a local run with
//! `GITHUB_OUTPUT=/tmp/out` shows exactly what a workflow would receive.

use std::fs::OpenOptions;
use std::io::Write;

use anyhow::{Context as _, Result};
use camino::Utf8PathBuf;

/// Where GitHub-specific output goes, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Github {
    /// Running under GitHub Actions: print workflow commands.
    pub actions: bool,
    output: Option<Utf8PathBuf>,
    summary: Option<Utf8PathBuf>,
}

impl Github {
    pub fn detect() -> Self {
        let file = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
        Github {
            actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            output: file("GITHUB_OUTPUT"),
            summary: file("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Workflow commands only (no output or summary files), for the build log.
    pub fn commands_only() -> Self {
        Github { actions: true, output: None, summary: None }
    }

    /// Opens a collapsible group in the log (a plain heading elsewhere).
    pub fn group(&self, title: &str) {
        if self.actions {
            eprintln!("::group::{}", escape_data(title));
        } else {
            eprintln!("== {title}");
        }
    }

    pub fn end_group(&self) {
        if self.actions {
            eprintln!("::endgroup::");
        }
    }

    /// A whole group, opened, filled and closed in one write, so that groups of work
    /// running in parallel never interleave in the log. Elsewhere, just the lines.
    pub fn group_block(&self, title: &str, lines: &[String]) {
        let mut text = String::new();
        if self.actions {
            text.push_str(&format!("::group::{}\n", escape_data(title)));
        }
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        if self.actions {
            text.push_str("::endgroup::\n");
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// An `::error` annotation under Actions.
    pub fn error(&self, annotation: &Annotation<'_>) {
        if self.actions {
            eprintln!("{}", annotation.command());
        }
    }

    /// Sets a job output (`name=value`; a heredoc when the value spans lines).
    pub fn set_output(&self, name: &str, value: &str) -> Result<()> {
        let Some(path) = &self.output else { return Ok(()) };
        append(path, &output_line(name, value))
    }

    /// Appends Markdown to the step summary.
    pub fn summary(&self, markdown: &str) -> Result<()> {
        let Some(path) = &self.summary else { return Ok(()) };
        let mut text = markdown.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        append(path, &text)
    }
}

fn append(path: &Utf8PathBuf, text: &str) -> Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {path}"))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {path}"))
}

/// One `$GITHUB_OUTPUT` entry.
pub fn output_line(name: &str, value: &str) -> String {
    if value.contains('\n') {
        // A delimiter that cannot occur in the value.
        let mut delimiter = String::from("XTASK_EOF");
        while value.contains(&delimiter) {
            delimiter.push('_');
        }
        format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
    } else {
        format!("{name}={value}\n")
    }
}

/// An `::error` annotation: where, a title, the message.
#[derive(Debug, Clone, Default)]
pub struct Annotation<'a> {
    pub file: Option<&'a str>,
    pub line: Option<u32>,
    pub col: Option<u32>,
    pub title: &'a str,
    pub message: &'a str,
}

impl Annotation<'_> {
    /// `::error file=F,line=L,col=C,title=T::message`, with the properties GitHub knows.
    pub fn command(&self) -> String {
        let mut props = Vec::new();
        if let Some(file) = self.file {
            props.push(format!("file={}", escape_property(file)));
            if let Some(line) = self.line {
                props.push(format!("line={line}"));
                if let Some(col) = self.col {
                    props.push(format!("col={col}"));
                }
            }
        }
        if !self.title.is_empty() {
            props.push(format!("title={}", escape_property(self.title)));
        }
        let props = if props.is_empty() { String::new() } else { format!(" {}", props.join(",")) };
        format!("::error{props}::{}", escape_data(self.message))
    }
}

/// Escapes a workflow command's message.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// A Markdown table, cells escaped for `|`.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(headers.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_command_escapes_properties_and_message() {
        let a = Annotation { file: Some("libs/a,b.py"), line: Some(3), col: Some(7), title: "ruff F401", message: "50% unused\nsecond line" };
        assert_eq!(a.command(), "::error file=libs/a%2Cb.py,line=3,col=7,title=ruff F401::50%25 unused%0Asecond line");
        let bare = Annotation { message: "x: y", ..Annotation::default() };
        assert_eq!(bare.command(), "::error::x: y");
    }

    #[test]
    fn outputs_use_a_heredoc_for_multiline_values() {
        assert_eq!(output_line("any", "true"), "any=true\n");
        assert_eq!(output_line("list", "a\nb"), "list<<XTASK_EOF\na\nb\nXTASK_EOF\n");
        assert_eq!(output_line("odd", "XTASK_EOF\nx"), "odd<<XTASK_EOF_\nXTASK_EOF\nx\nXTASK_EOF_\n");
    }

    #[test]
    fn outputs_and_summary_append_to_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = Utf8PathBuf::from_path_buf(dir.path().join("out")).unwrap();
        let sum = Utf8PathBuf::from_path_buf(dir.path().join("sum")).unwrap();
        let gh = Github { actions: false, output: Some(out.clone()), summary: Some(sum.clone()) };
        gh.set_output("a", "1").unwrap();
        gh.set_output("b", "2").unwrap();
        gh.summary("### title").unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "a=1\nb=2\n");
        assert_eq!(std::fs::read_to_string(sum).unwrap(), "### title\n");
    }

    #[test]
    fn table_cells_are_escaped() {
        let t = markdown_table(&["job", "result"], &[vec!["lint".into(), "a|b".into()]]);
        assert_eq!(t, "| job | result |\n|---|---|\n| lint | a\\|b |\n");
    }
}
