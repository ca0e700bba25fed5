//! The JSON document `pulumi preview --json` and `pulumi refresh --preview-only --json`
//! print (Pulumi's `PreviewDigest`), reduced to what the tool reads: each step's `op` and
//! `urn`, and the change summary. Resource states are never kept, so no value, secret or
//! not, can reach a message.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    fn short_urn_keeps_type_and_name() {
        assert_eq!(short_urn("urn:pulumi:dev::tradai-persistent::aws:s3/bucketV2:BucketV2::configs"), "aws:s3/bucketV2:BucketV2::configs");
        assert_eq!(short_urn("plain"), "plain");
    }
}
