//! `infra-recover`: a stack's lock (owner, age) and drift; `--cancel` releases a stale
//! lock, `--write` records the drift, `--instructions` prints the recovery steps.

use super::*;

impl RecoverArgs {
    /// Shows the stack's lock (owner, age) and how the cloud differs from the state.
    /// Nothing is released unless `--cancel` says so, and not a lock younger than
    /// `--min-lock-age` (or of unknown age) without `--force`: `pulumi cancel` deletes the
    /// lock of an update that may still be running on a colleague's machine.
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        if self.instructions {
            return print_recovery_instructions(self.stack, self.env);
        }
        let RecoverTarget::One(stack) = self.stack else {
            bail!(
                "infra-recover works on one stack; name it (persistent, foundation, compute or edge), or pass --instructions for the procedure"
            );
        };
        let env = self.env;
        let id = Infra::id(stack, env);
        let infra = Infra::open(root, &self.backend, DebugFlags::default())?;
        infra.ready(Needs::Cloud, env)?;
        if self.cancel || self.write {
            confirm_prod(env, &format!("release the lock of {stack} in prod or write its refreshed state"), &self.prod)?;
        }
        let Some(backend) = infra.pulumi.settings().backend.clone() else {
            bail!("no state backend is configured");
        };
        let by_hand = format!("PULUMI_BACKEND_URL='{}' pulumi cancel --yes --stack {env} --cwd infra/{stack}", backend.shown_url());
        let locks = infra.pulumi.local_locks(id);
        let now = xtask_pulumi::lock::now();
        match &locks {
            Some(locks) if locks.is_empty() => eprintln!("{id}: not locked"),
            Some(locks) => {
                for l in locks {
                    eprintln!("{id}: locked by {} ({})", l.describe_at(now), l.path);
                }
            }
            None => {
                let folder = xtask_pulumi::lock::lock_folder(&backend, &stack.project(), env.name());
                let look = if backend.url.starts_with("s3://") {
                    format!("; list it with `aws s3 ls {folder}` and read its owner and time with `aws s3 cp {folder}<file>.json -`")
                } else {
                    String::new()
                };
                eprintln!("{id}: the tool cannot read locks on {}; a lock, if any, is a file in {folder}{look}", backend.shown_url());
            }
        }
        let locked = !matches!(&locks, Some(l) if l.is_empty());
        if self.cancel {
            match &locks {
                Some(l) if l.is_empty() => eprintln!("{id}: no lock to release"),
                known => {
                    if !self.force {
                        let ages: Option<Vec<std::time::Duration>> = known.as_ref().and_then(|l| l.iter().map(|x| x.age_at(now)).collect());
                        match ages.and_then(|a| a.into_iter().min()) {
                            None => bail!(
                                "refusing to release the lock of {id}: its age cannot be read here, so an update may still be running; check that none is (ask whoever deploys {env}), then rerun with --force"
                            ),
                            Some(age) if age < self.min_lock_age => bail!(
                                "refusing to release the lock of {id}: it is {} old, younger than --min-lock-age {}, so its update may still be running; wait for it, ask its owner, or rerun with --force",
                                xtask_pulumi::lock::format_age(age),
                                xtask_pulumi::lock::format_age(self.min_lock_age)
                            ),
                            Some(_) => {}
                        }
                    }
                    infra.pulumi.cancel(id)?;
                    eprintln!("{id}: lock released (`pulumi cancel`)");
                }
            }
        } else if locks.is_none() {
            eprintln!(
                "{id}: if it is locked and no update is running, release it with `cargo xtask infra-recover {stack} {env} --cancel --force` (by hand: `{by_hand}`)"
            );
        } else if locked {
            eprintln!(
                "{id}: once no update is running, release it with `cargo xtask infra-recover {stack} {env} --cancel` (by hand: `{by_hand}`)"
            );
        }
        let drift = infra.pulumi.refresh_preview(id)?;
        if drift.has_changes() {
            eprintln!("{id}: the cloud differs from the state: {}", drift.summary());
            for s in drift.changes() {
                eprintln!("    {:<10} {}", s.op, xtask_pulumi::preview::short_urn(&s.urn));
            }
        } else {
            eprintln!("{id}: the state matches the cloud (no drift)");
        }
        if self.write {
            let backup = infra.backup(id, "refresh", false)?;
            eprintln!("{id}: state backed up to {backup}");
            infra.pulumi.refresh(id)?;
            eprintln!("{id}: state refreshed from the cloud");
        } else if drift.has_changes() {
            eprintln!(
                "{id}: nothing was written; `cargo xtask infra-recover {stack} {env} --write` records the drift in the state (after a backup)"
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The recovery procedure after a failed deployment, as the seed's workflow printed it:
/// on stderr and, under GitHub Actions, in the step summary with an error annotation. It
/// runs nothing: whether a lock may be released is for a person to decide.
fn print_recovery_instructions(target: RecoverTarget, env: Env) -> Result<ExitCode> {
    let stack = match target {
        RecoverTarget::One(s) => s.name().to_owned(),
        RecoverTarget::All => "<stack>".to_owned(),
    };
    let mut steps = [
        format!(
            "See who holds the stack's lock and since when, and how the cloud differs from the state (writes nothing): `cargo xtask infra-recover {stack} {env}`"
        ),
        format!(
            "Only once no update is running (ask whoever deploys {env}), release the lock: `cargo xtask infra-recover {stack} {env} --cancel`; a lock younger than 15 minutes (`--min-lock-age`), or of unknown age (S3), also needs `--force`"
        ),
        format!("To write the drift into the state, after a backup: `cargo xtask infra-recover {stack} {env} --write`"),
        format!(
            "Deploy again: `cargo xtask infra-up {stack} {env}`, or `cargo xtask infra-bootstrap {env} --from <layer>` to resume a bootstrap"
        ),
    ];
    if env.is_production() {
        steps.iter_mut().skip(1).take(2).for_each(|s| s.push_str(" (prod: add `--yes-prod`)"));
    }
    let heading = match target {
        RecoverTarget::One(s) => format!("Deployment of {s} to {env} failed"),
        RecoverTarget::All => {
            format!("Deployment to {env} failed; `<stack>` is the stack the error names (infra-bootstrap: \"stopped at layer <stack>\")")
        }
    };
    eprintln!("{heading}. Nothing was released: a lock may belong to an update still running elsewhere.");
    for (i, step) in steps.iter().enumerate() {
        eprintln!("  {}. {step}", i + 1);
    }
    let github = xtask_engine::github::Github::detect();
    let mut md = format!("### {heading}\n\nNothing was released: a lock may belong to an update still running elsewhere.\n\n");
    for (i, step) in steps.iter().enumerate() {
        md.push_str(&format!("{}. {step}\n", i + 1));
    }
    github.summary(&md)?;
    github.error(&xtask_engine::github::Annotation {
        title: "Infrastructure deployment failed",
        message: &format!("no lock was released; recover with `cargo xtask infra-recover {stack} {env}` (steps in the job summary)"),
        ..Default::default()
    });
    Ok(ExitCode::SUCCESS)
}
