//! The JSON document `pulumi preview --json` and `pulumi refresh --preview-only --json`
//! print (Pulumi's `PreviewDigest`), reduced to what the tool reads: each step's `op` and
//! `urn`, and the change summary. Resource states are never kept, so no value, secret or
//! not, can reach a message.
//!
//! Also the preview summary the guide asks of a pull request: per stack, how many resources
//! a preview creates, updates, deletes and replaces ([`Counts`]), as a terminal table, a
//! Markdown table (the GitHub step summary) and a pull request comment ([`pr_comment`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::{Env, Stack};

/// One resource step of a preview.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Step {
    pub op: String,
    pub urn: String,
}

/// A preview: its steps and the count of each operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PreviewDigest {
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(rename = "changeSummary", default)]
    pub change_summary: BTreeMap<String, u64>,
}

/// Operations that leave a resource as it is.
const UNCHANGED: &[&str] = &["same", "refresh", "read"];

/// Operations that delete a resource or replace it with a new one (Pulumi's step ops,
/// including the split form `--show-replacement-steps` prints).
const DESTRUCTIVE: &[&str] = &[
    "delete",
    "replace",
    "create-replacement",
    "delete-replaced",
    "read-replacement",
    "discard",
    "discard-replaced",
    "import-replacement",
];

impl PreviewDigest {
    pub fn parse(json: &str) -> Result<PreviewDigest, serde_json::Error> {
        serde_json::from_str(json.trim())
    }

    /// Steps that change something, sorted by URN (Pulumi's step order varies between runs).
    pub fn changes(&self) -> Vec<&Step> {
        let mut out: Vec<&Step> = self.steps.iter().filter(|s| !UNCHANGED.contains(&s.op.as_str())).collect();
        out.sort_by(|a, b| a.urn.cmp(&b.urn).then(a.op.cmp(&b.op)));
        out
    }

    /// Steps that delete or replace a resource.
    pub fn destructive(&self) -> Vec<&Step> {
        self.changes().into_iter().filter(|s| DESTRUCTIVE.contains(&s.op.as_str())).collect()
    }

    pub fn has_changes(&self) -> bool {
        !self.changes().is_empty() || self.change_summary.iter().any(|(op, n)| *n > 0 && !UNCHANGED.contains(&op.as_str()))
    }

    /// The counts of each kind of change, from `changeSummary` (or the steps without one).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        if self.change_summary.is_empty() {
            for s in &self.steps {
                c.add(&s.op, 1);
            }
        } else {
            for (op, n) in &self.change_summary {
                c.add(op, *n);
            }
        }
        c
    }

    /// `2 to create, 1 to replace` or `no changes`.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for s in self.changes() {
            *counts.entry(s.op.as_str()).or_default() += 1;
        }
        if counts.is_empty() {
            for (op, n) in &self.change_summary {
                if *n > 0 && !UNCHANGED.contains(&op.as_str()) {
                    counts.insert(op, *n);
                }
            }
        }
        if counts.is_empty() {
            return "no changes".to_owned();
        }
        counts.iter().map(|(op, n)| format!("{n} to {op}")).collect::<Vec<_>>().join(", ")
    }
}

/// How many resources a preview creates, updates, deletes, replaces and leaves alone.
///
/// Read from Pulumi's `changeSummary`, which counts *logical* steps only: a replacement is
/// one `replace` there, its `create-replacement` and `delete-replaced` halves are not
/// counted (the engine's `Step.Logical()`). When a preview has no `changeSummary` (an
/// empty program prints `{}`), the steps are counted the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub replace: u64,
    pub same: u64,
    /// Other changes (`import`, `discard`, `remove-pending-replace`, ...).
    pub other: u64,
}

impl Counts {
    fn add(&mut self, op: &str, n: u64) {
        match op {
            "create" => self.create += n,
            "update" => self.update += n,
            "delete" => self.delete += n,
            "replace" => self.replace += n,
            op if UNCHANGED.contains(&op) => self.same += n,
            // The halves of a replacement, counted once as `replace`.
            "create-replacement" | "delete-replaced" | "read-replacement" | "discard-replaced" | "import-replacement" => {}
            _ => self.other += n,
        }
    }

    /// Whether anything changes.
    pub fn any(&self) -> bool {
        self.create + self.update + self.delete + self.replace + self.other > 0
    }
}

/// What the preview of one stack found, for the summaries.
#[derive(Debug, Clone)]
pub struct StackSummary {
    pub stack: Stack,
    /// The counts, or why there are none (the preview failed, the stack was skipped).
    pub result: Result<Counts, String>,
}

/// The columns of every summary table.
pub const COLUMNS: [&str; 6] = ["stack", "create", "update", "delete", "replace", "result"];

fn rows(summaries: &[StackSummary], code: bool) -> Vec<Vec<String>> {
    summaries
        .iter()
        .map(|s| {
            let name = if code { format!("`{}`", s.stack) } else { s.stack.to_string() };
            match &s.result {
                Ok(c) => {
                    let result = if c.any() { "changes".to_owned() } else { "no changes".to_owned() };
                    let result = if c.other > 0 { format!("{result} ({} other)", c.other) } else { result };
                    vec![name, c.create.to_string(), c.update.to_string(), c.delete.to_string(), c.replace.to_string(), result]
                }
                Err(why) => vec![name, "-".into(), "-".into(), "-".into(), "-".into(), why.clone()],
            }
        })
        .collect()
}

/// The table for the terminal.
pub fn text_table(summaries: &[StackSummary]) -> String {
    xtask_engine::report::text_table(&COLUMNS, &rows(summaries, false))
}

/// A Markdown section: a heading for the environment and one row per stack (the GitHub
/// step summary).
pub fn markdown(title: &str, summaries: &[StackSummary]) -> String {
    format!("### {title}\n\n{}", xtask_engine::github::markdown_table(&COLUMNS, &rows(summaries, true)))
}

/// The first line of every preview comment: it names the environment, so the comment of
/// each environment can be found and replaced on the next push instead of adding another.
pub fn comment_marker(env: Env) -> String {
    format!("<!-- cargo-xtask infra-preview {env} -->")
}

/// The pull request comment of one environment's preview: the marker, the table, and the
/// command that shows the details.
pub fn pr_comment(env: Env, summaries: &[StackSummary]) -> String {
    format!(
        "{}\n{}\nDetails: `cargo xtask infra-preview <stack> {env}`, or this run's log.\n",
        comment_marker(env),
        markdown(&format!("Pulumi preview: {env}"), summaries)
    )
}

/// The last part of a URN, `<type>::<name>`, for short listings.
pub fn short_urn(urn: &str) -> &str {
    let mut parts = urn.rsplitn(3, "::");
    let name = parts.next().unwrap_or(urn);
    match parts.next() {
        Some(ty) => &urn[urn.len() - name.len() - 2 - ty.len()..],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "config": {"exp:token": "[secret]"},
        "steps": [
            {"op": "same", "urn": "urn:pulumi:prod::exp::pulumi:pulumi:Stack::exp-prod", "detailedDiff": null},
            {"op": "replace", "urn": "urn:pulumi:prod::exp::random:index/randomPet:RandomPet::pet", "diffReasons": ["prefix"], "replaceReasons": ["prefix"], "newState": {"outputs": {"x": "plain"}}},
            {"op": "update", "urn": "urn:pulumi:prod::exp::command:local:Command::cmd"},
            {"op": "create", "urn": "urn:pulumi:prod::exp::random:index/randomPet:RandomPet::newpet"},
            {"op": "delete", "urn": "urn:pulumi:prod::exp::random:index/randomString:RandomString::str"}
        ],
        "duration": 1234,
        "changeSummary": {"create": 1, "delete": 1, "replace": 1, "same": 1, "update": 1}
    }"#;

    #[test]
    fn reads_the_documented_shape_and_finds_destructive_steps() {
        let d = PreviewDigest::parse(SAMPLE).unwrap();
        assert_eq!(d.steps.len(), 5);
        assert!(d.has_changes());
        let destructive: Vec<&str> = d.destructive().iter().map(|s| s.op.as_str()).collect();
        assert_eq!(destructive, ["replace", "delete"]);
        assert_eq!(d.summary(), "1 to create, 1 to delete, 1 to replace, 1 to update");
    }

    #[test]
    fn unchanged_and_refresh_steps_are_not_changes() {
        let d = PreviewDigest::parse(r#"{"steps":[{"op":"same","urn":"a"},{"op":"refresh","urn":"b"}],"changeSummary":{"same":2}}"#).unwrap();
        assert!(!d.has_changes());
        assert_eq!(d.summary(), "no changes");
        assert!(d.destructive().is_empty());
        // An empty preview of an empty program prints `{}`.
        assert!(!PreviewDigest::parse("{}").unwrap().has_changes());
    }

    #[test]
    fn split_replacement_steps_count_as_destructive() {
        let d = PreviewDigest::parse(r#"{"steps":[{"op":"create-replacement","urn":"a"},{"op":"delete-replaced","urn":"a"}]}"#).unwrap();
        assert_eq!(d.destructive().len(), 2);
    }

    #[test]
    fn counts_come_from_the_change_summary_with_replacements_counted_once() {
        let d = PreviewDigest::parse(SAMPLE).unwrap();
        assert_eq!(d.counts(), Counts { create: 1, update: 1, delete: 1, replace: 1, same: 1, other: 0 });
        // A replacement split into its halves (`--show-replacement-steps`) is one replace in
        // Pulumi's own summary; without a summary its halves are not counted as changes.
        let split = r#"{"steps":[{"op":"replace","urn":"a"},{"op":"create-replacement","urn":"a"},{"op":"delete-replaced","urn":"a"},{"op":"import","urn":"b"}]}"#;
        assert_eq!(PreviewDigest::parse(split).unwrap().counts(), Counts { replace: 1, other: 1, ..Counts::default() });
        let summary_only = r#"{"changeSummary":{"create":4,"same":7,"update":2}}"#;
        let c = PreviewDigest::parse(summary_only).unwrap().counts();
        assert_eq!((c.create, c.update, c.same, c.any()), (4, 2, 7, true));
        assert!(!PreviewDigest::parse("{}").unwrap().counts().any());
    }

    #[test]
    fn summaries_render_as_text_markdown_and_a_marked_comment() {
        let summaries = vec![
            StackSummary { stack: Stack::Persistent, result: Ok(Counts { same: 3, ..Counts::default() }) },
            StackSummary { stack: Stack::Compute, result: Ok(Counts { create: 2, replace: 1, ..Counts::default() }) },
            StackSummary { stack: Stack::Edge, result: Err("preview failed: a|b".into()) },
        ];
        let text = text_table(&summaries);
        assert_eq!(text.lines().nth(2).unwrap().split_whitespace().collect::<Vec<_>>(), ["compute", "2", "0", "0", "1", "changes"]);
        let md = markdown("Pulumi preview: dev", &summaries);
        assert!(md.starts_with("### Pulumi preview: dev\n\n| stack | create | update | delete | replace | result |\n"), "{md}");
        assert!(md.contains("| `compute` | 2 | 0 | 0 | 1 | changes |"), "{md}");
        assert!(md.contains("| `edge` | - | - | - | - | preview failed: a\\|b |"), "{md}");
        let comment = pr_comment(Env::Staging, &summaries);
        assert_eq!(comment.lines().next(), Some("<!-- cargo-xtask infra-preview staging -->"));
        assert!(comment.contains("### Pulumi preview: staging") && comment.contains("| `persistent` | 0 | 0 | 0 | 0 | no changes |"), "{comment}");
    }

    #[test]
    fn short_urn_keeps_type_and_name() {
        assert_eq!(short_urn("urn:pulumi:dev::tradai-persistent::aws:s3/bucketV2:BucketV2::configs"), "aws:s3/bucketV2:BucketV2::configs");
        assert_eq!(short_urn("plain"), "plain");
    }
}
