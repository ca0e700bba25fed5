//! What a run tells its user: a live line per target on a terminal, plain lines
//! otherwise, GitHub Actions groups under CI, and a summary table at the end.
//! Human output goes to stderr; stdout is reserved for `--json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::github::{Annotation, Github, markdown_table};
use crate::plan::{Status, TargetReport};

/// Where progress goes.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Under GitHub Actions: why each running build started, for its group's title.
    reasons: Mutex<HashMap<String, String>>,
    github: bool,
    quiet: bool,
}

impl Progress {
    /// Live spinners when stderr is a terminal, `::group::` lines under GitHub Actions.
    pub fn detect(quiet: bool) -> Self {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let live = std::io::stderr().is_terminal() && !github && !quiet;
        let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi, bars: Mutex::default(), reasons: Mutex::default(), github, quiet }
    }

    /// Plain lines only (tests, `--json` consumers that still want stderr).
    pub fn plain() -> Self {
        Progress { multi: None, bars: Mutex::default(), reasons: Mutex::default(), github: false, quiet: false }
    }

    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    pub fn started(&self, id: &str, reason: &str) {
        if self.github {
            // The group is written whole when the build ends (see `finished`), so the
            // groups of parallel builds never interleave; note the reason until then.
            self.reasons.lock().expect("progress lock").insert(id.to_owned(), reason.to_owned());
            return;
        }
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
                bar.set_message(format!("building {id} ({reason})"));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.lock().expect("progress lock").insert(id.to_owned(), bar);
            }
            None => self.line(&format!("building {id} ({reason})")),
        }
    }

    pub fn skipped(&self, r: &TargetReport) {
        if !self.github {
            self.line(&format!("skipped  {} ({})", r.id, r.reason));
        }
    }

    pub fn finished(&self, r: &TargetReport) {
        if let Some(bar) = self.bars.lock().expect("progress lock").remove(&r.id) {
            bar.finish_and_clear();
        }
        let secs = r.seconds.map(|s| format!(" in {s:.1}s")).unwrap_or_default();
        let line = match r.status {
            Status::Built => format!("built    {}{secs}", r.id),
            Status::Failed => format!("failed   {}{secs}: {}", r.id, r.error.as_deref().unwrap_or(&r.reason)),
            _ => return,
        };
        if !self.github {
            self.line(&line);
            return;
        }
        let reason = self.reasons.lock().expect("progress lock").remove(&r.id).unwrap_or_else(|| r.reason.clone());
        let gh = Github::commands_only();
        gh.group_block(&format!("build {} ({reason})", r.id), &[line]);
        if r.status == Status::Failed {
            let title = format!("build failed: {}", r.id);
            gh.error(&Annotation { title: &title, message: r.error.as_deref().unwrap_or(&r.reason), ..Annotation::default() });
        }
    }

    /// The closing table: target, status, time.
    pub fn summary(&self, reports: &[TargetReport]) {
        if reports.is_empty() {
            return;
        }
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|r| vec![r.id.clone(), r.status.to_string(), r.seconds.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())])
            .collect();
        let mut out = format!("\n{}", text_table(&["target", "status", "time"], &rows));
        let count = |s| reports.iter().filter(|r| r.status == s).count();
        out.push_str(&format!(
            "{} built, {} skipped, {} would build, {} failed",
            count(Status::Built),
            count(Status::Skipped),
            count(Status::WouldBuild),
            count(Status::Failed)
        ));
        self.line(&out);
    }
}

/// A plain-text table for the terminal: a header row and rows, every column but the last
/// padded to its widest cell. The one text-table helper of the tool (Markdown tables are
/// [`markdown_table`]).
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for row in rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    out
}

/// A Markdown table of a run, for `$GITHUB_STEP_SUMMARY`.
pub fn markdown_summary(title: &str, reports: &[TargetReport]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let time = r.seconds.map(|x| format!("{x:.1}s")).unwrap_or_else(|| "-".into());
            vec![format!("`{}`", r.id), r.status.to_string(), time, r.reason.clone()]
        })
        .collect();
    let mut text = format!("### {title}\n\n{}", markdown_table(&["target", "status", "time", "reason"], &rows));
    // The timeline, when anything ran (a run of skips is all in the table).
    if reports.iter().any(|r| r.started.is_some()) {
        text.push('\n');
        text.push_str(&crate::timeline::mermaid_gantt(title, reports));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_pad_every_column_but_the_last() {
        let t = text_table(&["a", "bb"], &[vec!["xxx".into(), "y".into()], vec!["é".into(), "z".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\né    z\n");
    }
}
