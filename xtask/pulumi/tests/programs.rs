//! The stack graph must agree with the Pulumi programs in this repository's `infra/`:
//! every `stack_ref("<name>")` a program makes is an upstream in the graph and the other
//! way round, so the two cannot drift apart silently.

use std::path::Path;

#[test]
fn stack_graph_matches_the_pulumi_programs() {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
    assert!(infra.is_dir(), "no infra/ folder at {}: the Pulumi programs are missing", infra.display());
    let problems = xtask_pulumi::graph::check_programs(&infra);
    assert!(problems.is_empty(), "the stack graph and the Pulumi programs disagree:\n  {}", problems.join("\n  "));
}
