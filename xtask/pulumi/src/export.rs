//! What a stack's state export (`pulumi stack export`, `apitype.UntypedDeployment` version
//! 3) says about the resources that outlive a `pulumi destroy`: each resource's
//! `protect` and `retainOnDelete` flags (`apitype.ResourceV3`, both omitted when false).
//!
//! Pulumi's behaviour, read from its source (v3.259.0): `destroy` fails on a protected
//! resource ("cannot be deleted because it is protected", `deploy/step.go`) unless
//! `--exclude-protected` is given, which leaves every protected resource and everything
//! it depends on (`getProtectedExcludes` in `operations/destroy.go`); a resource with
//! `retainOnDelete` is removed from the state but left in the cloud (`DeleteStep.Apply`).
//! Only the flags and URNs are read: never a resource's inputs or outputs.

use serde_json::Value;

/// A resource that a destroy leaves in the cloud, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub urn: String,
    pub why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `protect: true`: Pulumi keeps it (and the tool passes `--exclude-protected`).
    Protected,
    /// `retainOnDelete: true`: Pulumi forgets it but does not delete it.
    Retained,
}

impl Why {
    pub fn explain(self) -> &'static str {
        match self {
            Why::Protected => "protected: not deleted, and stays in the state",
            Why::Retained => "retain-on-delete: removed from the state, left in the cloud",
        }
    }
}

/// The resources of an export that a destroy leaves in place, protected first, each
/// sorted by URN. `None` when the text is not an export.
pub fn kept_on_destroy(export: &str) -> Option<Vec<Kept>> {
    let v: Value = serde_json::from_str(export).ok()?;
    let resources = v["deployment"]["resources"].as_array()?;
    let mut kept: Vec<Kept> = resources
        .iter()
        .filter_map(|r| {
            let urn = r["urn"].as_str()?.to_owned();
            if r["protect"].as_bool() == Some(true) {
                Some(Kept { urn, why: Why::Protected })
            } else if r["retainOnDelete"].as_bool() == Some(true) {
                Some(Kept { urn, why: Why::Retained })
            } else {
                None
            }
        })
        .collect();
    kept.sort_by(|a, b| (a.why != Why::Protected, &a.urn).cmp(&(b.why != Why::Protected, &b.urn)));
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_and_retained_resources_are_found_by_their_flags() {
        let export = r#"{"version": 3, "deployment": {"manifest": {}, "resources": [
            {"urn": "urn:pulumi:dev::tradai-persistent::pulumi:pulumi:Stack::tradai-persistent-dev", "custom": false},
            {"urn": "urn:pulumi:dev::tradai-persistent::aws:dynamodb/table:Table::trading-state", "custom": true, "protect": true, "retainOnDelete": true},
            {"urn": "urn:pulumi:dev::tradai-persistent::aws:ecr/repository:Repository::backend", "custom": true, "retainOnDelete": true},
            {"urn": "urn:pulumi:dev::tradai-persistent::aws:cloudtrail/trail:Trail::audit", "custom": true, "protect": false}
        ]}}"#;
        let kept = kept_on_destroy(export).unwrap();
        assert_eq!(
            kept,
            [
                Kept { urn: "urn:pulumi:dev::tradai-persistent::aws:dynamodb/table:Table::trading-state".into(), why: Why::Protected },
                Kept { urn: "urn:pulumi:dev::tradai-persistent::aws:ecr/repository:Repository::backend".into(), why: Why::Retained },
            ]
        );
        assert_eq!(kept_on_destroy(r#"{"version": 3, "deployment": {"resources": []}}"#), Some(Vec::new()));
        assert_eq!(kept_on_destroy("not json"), None);
    }
}
