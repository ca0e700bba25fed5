//! Pictures of a run: one bar per target on a time axis, built and failed targets where
//! and for how long they ran, up-to-date targets as a short mark at the start.
//!
//! Two forms of the same picture: a Mermaid gantt chart for the GitHub step summary
//! (GitHub renders Mermaid in Markdown), and a self-contained HTML page with an inline
//! SVG for `--timeline FILE.html` (no script and nothing fetched: it opens offline, and
//! as a CI artifact). The SVG is drawn here by hand because it is a few rectangles and
//! labels; a plotting crate would bring far more than it would save.

use std::fmt::Write as _;

use crate::plan::{Status, TargetReport};

/// Where a target's bar starts and ends, in milliseconds after the run started.
fn span(r: &TargetReport) -> (u64, u64) {
    let start = (r.started.unwrap_or(0.0) * 1000.0).round() as u64;
    let length = (r.seconds.unwrap_or(0.0) * 1000.0).round() as u64;
    (start, start + length.max(1))
}

fn label(status: Status) -> &'static str {
    match status {
        Status::Built => "built",
        Status::Skipped => "skipped",
        Status::WouldBuild => "would build",
        Status::Failed => "failed",
    }
}

/// A Mermaid gantt chart of the run, as a fenced block for Markdown.
pub fn mermaid_gantt(title: &str, reports: &[TargetReport]) -> String {
    let mut s = String::from("```mermaid\ngantt\n");
    // `x`: dates are milliseconds; the axis shows seconds since the start.
    let _ = writeln!(s, "    title {}", title.replace(['\n', ':', '#', ';'], " "));
    s.push_str("    dateFormat x\n    axisFormat %M:%S\n");
    for (section, status) in [("built", Status::Built), ("failed", Status::Failed), ("up to date", Status::Skipped)] {
        let rows: Vec<&TargetReport> = reports.iter().filter(|r| r.status == status).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "    section {section}");
        for r in rows {
            let (start, end) = span(r);
            let tag = match status {
                Status::Failed => "crit, ",
                Status::Skipped => "done, ",
                _ => "active, ",
            };
            // Mermaid reads `:` and `#` in a task name as syntax.
            let _ = writeln!(s, "    {} :{tag}{start}, {end}", r.id.replace([':', '#', ';'], " "));
        }
    }
    s.push_str("```\n");
    s
}

/// `12 ms` under a second, `2.5 s` above.
fn duration(seconds: f64) -> String {
    if seconds < 1.0 { format!("{} ms", (seconds * 1000.0).round()) } else { format!("{seconds:.1} s") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained HTML page with the run's timeline as an SVG, and its table.
pub fn html_page(title: &str, reports: &[TargetReport]) -> String {
    const ROW: u64 = 26;
    const LABEL: u64 = 300;
    const WIDTH: u64 = 1000;
    const TOP: u64 = 40;
    let last = reports.iter().filter(|r| r.started.is_some()).map(|r| span(r).1).max().unwrap_or(0);
    // The axis spans the run, and at least a second so that short runs stay readable.
    let end = last.max(1000);
    // A round step for the axis: 1, 2, 5, 10, ... seconds, about eight ticks.
    let step = [1u64, 2, 5, 10, 15, 30, 60, 120, 300, 600].into_iter().find(|s| end / (s * 1000) <= 8).unwrap_or(1200) * 1000;
    let scale = |ms: u64| LABEL + ms * (WIDTH - LABEL - 20) / end;
    let height = TOP + ROW * reports.len() as u64 + 30;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, sans-serif" font-size="13">"#
    );
    let mut t = 0;
    while t <= end {
        let x = scale(t);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{} s</text>"##,
            TOP - 8,
            height - 24,
            TOP - 14,
            t / 1000
        );
        t += step;
    }
    for (i, r) in reports.iter().enumerate() {
        let y = TOP + ROW * i as u64;
        let (start, stop) = span(r);
        let (fill, what) = match r.status {
            Status::Built => ("#2e7d32", format!("built in {}", duration(r.seconds.unwrap_or(0.0)))),
            Status::Failed => ("#c62828", "failed".to_owned()),
            Status::Skipped => ("#9e9e9e", "up to date".to_owned()),
            Status::WouldBuild => ("#1565c0", "would build".to_owned()),
        };
        let (x0, x1) = (scale(start), scale(stop).max(scale(start) + 4));
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#222">{}</text><rect x="{x0}" y="{}" width="{}" height="{}" rx="3" fill="{fill}"><title>{} — {}: {}</title></rect><text x="{}" y="{}" fill="#444">{}</text>"##,
            LABEL - 10,
            y + 17,
            escape(&r.id),
            y + 5,
            x1 - x0,
            ROW - 8,
            escape(&r.id),
            escape(&what),
            escape(&r.reason),
            x1 + 6,
            y + 17,
            escape(&what),
        );
    }
    let _ = write!(svg, r##"<text x="{LABEL}" y="{}" fill="#555">seconds since the run started</text></svg>"##, height - 6);

    let mut rows = String::new();
    for r in reports {
        let time = r.seconds.map(|x| format!("{x:.1} s")).unwrap_or_default();
        let _ = write!(rows, "<tr><td><code>{}</code></td><td>{}</td><td>{time}</td><td>{}</td></tr>", escape(&r.id), label(r.status), escape(&r.reason));
    }
    let built = reports.iter().filter(|r| r.status == Status::Built).count();
    let skipped = reports.iter().filter(|r| r.status == Status::Skipped).count();
    let failed = reports.iter().filter(|r| r.status == Status::Failed).count();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin-top:16px}}td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;font-size:13px}}</style>
</head><body>
<h1 style="font-size:18px">{title}</h1>
<p>{built} built, {skipped} up to date, {failed} failed; {total} of building. Green: built, grey: up to date, red: failed.</p>
{svg}
<table><tr><th>target</th><th>status</th><th>time</th><th>reason</th></tr>{rows}</table>
</body></html>
"#,
        title = escape(title),
        total = duration(last as f64 / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, status: Status, started: f64, seconds: f64) -> TargetReport {
        TargetReport {
            id: id.into(),
            kind: "image".into(),
            status,
            input_hash: String::new(),
            reason: "file handler.py modified <&>".into(),
            changes: Vec::new(),
            artifact: None,
            digest: None,
            seconds: (status != Status::Skipped).then_some(seconds),
            started: (status != Status::Skipped).then_some(started),
            error: None,
        }
    }

    fn run() -> Vec<TargetReport> {
        vec![
            report("tradai-common", Status::Skipped, 0.0, 0.0),
            report("tradai/lambda-base", Status::Built, 0.0, 2.5),
            report("tradai/lambda-a", Status::Built, 2.5, 1.0),
            report("tradai/lambda-b", Status::Failed, 2.6, 0.4),
        ]
    }

    #[test]
    fn the_gantt_has_a_bar_per_target_in_its_section_with_its_times() {
        let g = mermaid_gantt("lambda-build-all", &run());
        assert!(g.starts_with("```mermaid\ngantt\n") && g.ends_with("```\n"), "{g}");
        assert!(g.contains("    section built\n    tradai/lambda-base :active, 0, 2500\n    tradai/lambda-a :active, 2500, 3500\n"), "{g}");
        assert!(g.contains("    section failed\n    tradai/lambda-b :crit, 2600, 3000\n"), "{g}");
        assert!(g.contains("    section up to date\n    tradai-common :done, 0, 1\n"), "{g}");
    }

    #[test]
    fn the_page_is_self_contained_escaped_and_scaled_to_the_run() {
        let page = html_page("lambda-build-all <run>", &run());
        assert!(!page.contains("<script"), "no script");
        assert_eq!(page.matches("http").count(), page.matches("http://www.w3.org/2000/svg").count(), "nothing fetched: the only URL is the SVG namespace");
        assert!(page.contains("lambda-build-all &lt;run&gt;") && page.contains("modified &lt;&amp;&gt;"));
        assert_eq!(page.matches("<rect ").count(), 4, "one bar per target");
        assert!(page.contains("2 built, 1 up to date, 1 failed; 3.5 s of building"), "{page}");
        assert!(page.contains("built in 2.5 s") && page.contains(">built in 1.0 s<"), "{page}");
        assert!(page.contains(">3 s</text>"), "the axis reaches the end of the run");
    }
}
