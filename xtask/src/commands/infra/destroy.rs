//! `infra-destroy`: what stays (protected, retained) is listed before anything goes.

use super::*;

impl DestroyArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let id = Infra::id(self.stack, self.env);
        let spec = self.stack.spec();
        if spec.destroy == DestroyPolicy::Never {
            bail!(
                "refusing to destroy {id}: {} holds the data ({}) and is never destroyed; destroy compute or edge instead",
                self.stack,
                spec.summary
            );
        }
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, self.env)?;
        let downstream = self.stack.downstreams();
        if !downstream.is_empty() {
            let names: Vec<&str> = downstream.iter().map(|s| s.name()).collect();
            eprintln!("note: {} read {}'s outputs; destroy them first or they break", names.join(", "), self.stack);
        }
        let action = format!("destroy every resource of {id}");
        let (flag, flag_name) = if self.env.is_production() { (self.prod.yes_prod, "--yes-prod") } else { (self.yes, "--yes") };
        // Without the flag and without a terminal to ask on, refuse before any pulumi call.
        let can_ask = std::io::IsTerminal::is_terminal(&std::io::stdin()) && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !flag && !can_ask {
            confirm(self.env, &action, false, flag_name)?;
        }
        // The backup is also what says which resources outlive the destroy, shown before
        // the confirmation is asked for.
        let backup = infra.backup(id, "destroy", false)?;
        eprintln!("{id}: state backed up to {backup}");
        let export = std::fs::read_to_string(&backup).with_context(|| format!("cannot read the state backup {backup}"))?;
        let kept = xtask_pulumi::export::kept_on_destroy(&export).unwrap_or_default();
        let protected = kept.iter().any(|k| k.why == xtask_pulumi::export::Why::Protected);
        if !kept.is_empty() {
            eprintln!("{id}: {} resource(s) stay after the destroy:", kept.len());
            for k in &kept {
                eprintln!("    {:<60} {}", xtask_pulumi::preview::short_urn(&k.urn), k.why.explain());
            }
            if protected {
                eprintln!(
                    "{id}: pulumi destroy runs with --exclude-protected: it deletes the rest and keeps the protected resources and what they depend on"
                );
            }
        }
        confirm(self.env, &action, flag, flag_name)?;
        infra.pulumi.destroy(id, protected)?;
        if kept.is_empty() {
            eprintln!("{id}: destroyed");
        } else {
            eprintln!("{id}: destroyed, except the {} resource(s) listed above", kept.len());
        }
        Ok(ExitCode::SUCCESS)
    }
}
