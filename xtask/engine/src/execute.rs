//! Runs a plan: builds in dependency order, independent targets in parallel, records each
//! success in the state store the moment its output exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use crate::inputs::InputHash;
use crate::plan::{BuildJob, Decision, Plan, PlanItem, Presence, RemoteCache, Status, Target, TargetReport, changes_of};
use crate::report::Progress;
use crate::state::{Output, StateStore, TargetRecord, now_secs};

/// How to run a plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Builds at once.
    pub jobs: usize,
    /// Stop starting new builds after the first failure.
    pub fail_fast: bool,
}

/// What runs after a target's output exists (a push and tags, say): given the plan item
/// and its output, on the same pool of `-j` workers as the builds. It runs right after
/// each build, so one image is pushed while another still builds, and as a job of its own
/// for every target that was already up to date. It reports its own results.
pub type After<'a> = &'a (dyn Fn(&PlanItem, &Output) + Sync);

/// Executes `plan`; returns one report per plan item, in plan order.
pub fn execute(plan: &Plan, targets: &[Target], store: &StateStore, opts: ExecOptions, progress: &Progress) -> Vec<TargetReport> {
    execute_then(plan, targets, store, opts, progress, None)
}

/// Builds one target under the lock of its input hash, unless another run made the
/// output while this one waited for the lock: then that output is used, with the skip
/// reason. Either way the output is recorded the moment it is known to exist.
type Built = (Output, Option<String>, Option<crate::buildlock::BuildLock>);

fn build_once(
    item: &PlanItem,
    target: &Target,
    job: &BuildJob<'_>,
    store: &StateStore,
    remote: Option<&(dyn RemoteCache + Sync)>,
) -> anyhow::Result<Built> {
    let lock = crate::buildlock::acquire(&item.input_hash)?;
    let meanwhile = match store.load()?.targets.remove(&item.id) {
        Some(rec) if rec.input_hash == item.input_hash && matches!(target.builder.presence(&rec.output)?, Presence::Present { .. }) => {
            Some((rec.output, "built by another run meanwhile".to_owned()))
        }
        _ => {
            let hit = match target.builder.adopt(&item.id, &item.input_hash)? {
                Some(hit) => Some(hit),
                None => match remote {
                    Some(r) => r.recheck(&item.id, item.kind, &item.input_hash)?,
                    None => None,
                },
            };
            hit.map(|hit| (hit.output, format!("found in {}, made by another run meanwhile", hit.location)))
        }
    };
    let (output, found) = match meanwhile {
        Some((output, why)) => (output, Some(why)),
        None => (target.builder.build(job)?, None),
    };
    let record = TargetRecord { input_hash: item.input_hash.clone(), inputs: item.inputs.clone(), output: output.clone(), recorded_at: now_secs() };
    store.record(&item.id, record)?;
    Ok((output, found, lock))
}

/// Records an adopted output and gives an output back the names it lacks.
fn adopt_and_restore(item: &PlanItem, target: &Target, store: &StateStore, output: &Output, record: bool, restore: &[String]) -> anyhow::Result<()> {
    if !restore.is_empty() {
        target.builder.restore_names(output, restore)?;
    }
    if record {
        let rec = TargetRecord { input_hash: item.input_hash.clone(), inputs: item.inputs.clone(), output: output.clone(), recorded_at: now_secs() };
        store.record(&item.id, rec)?;
    }
    Ok(())
}

/// [`execute`], running `after` for every target whose output exists at the end.
pub fn execute_then(
    plan: &Plan,
    targets: &[Target],
    store: &StateStore,
    opts: ExecOptions,
    progress: &Progress,
    after: Option<After<'_>>,
) -> Vec<TargetReport> {
    execute_with(plan, targets, store, opts, progress, after, None)
}

/// [`execute_then`], asking `remote` again right before each build whether another run
/// has put the output there meanwhile (see [`crate::buildlock`]).
pub fn execute_with(
    plan: &Plan,
    targets: &[Target],
    store: &StateStore,
    opts: ExecOptions,
    progress: &Progress,
    after: Option<After<'_>>,
    remote: Option<&(dyn RemoteCache + Sync)>,
) -> Vec<TargetReport> {
    let by_id: HashMap<&str, &Target> = targets.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut outputs: BTreeMap<String, (InputHash, Output)> = BTreeMap::new();
    let mut reports: HashMap<String, TargetReport> = HashMap::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut failed: HashSet<String> = HashSet::new();
    // Up-to-date targets whose `after` step still has to run.
    let mut followups: Vec<usize> = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        match &item.decision {
            Decision::Skip { output, record, restore, .. } => {
                let mut r = item.dry_report();
                r.status = Status::Skipped;
                // An adopted output is recorded, and missing names restored, before
                // anything builds on it; a failure fails only this target.
                let adopted = match by_id.get(item.id.as_str()) {
                    Some(target) if *record || !restore.is_empty() => adopt_and_restore(item, target, store, output, *record, restore),
                    _ => Ok(()),
                };
                if let Err(e) = adopted {
                    r.status = Status::Failed;
                    r.error = Some(format!("{e:#}"));
                    progress.finished(&r);
                    failed.insert(item.id.clone());
                    reports.insert(item.id.clone(), r);
                    continue;
                }
                if after.is_some() && !output.artifact.is_empty() {
                    followups.push(i);
                }
                outputs.insert(item.id.clone(), (item.input_hash.clone(), output.clone()));
                progress.skipped(&r);
                reports.insert(item.id.clone(), r);
            }
            Decision::Build(_) => pending.push(i),
        }
    }

    let jobs = opts.jobs.max(1);
    let run_started = Instant::now();
    let mut stop = false;
    let mut interrupt_stop = false;
    // Ctrl-C or SIGTERM: no new build starts; those running finish (a `docker build`
    // gets the terminal's Ctrl-C itself and stops); a second signal stops at once.
    let interrupted = Arc::new(AtomicUsize::new(0));
    let running_now = Arc::new(AtomicUsize::new(0));
    let _signals = {
        let (interrupted, running_now) = (interrupted.clone(), running_now.clone());
        crate::interrupt::scope(move |signal| {
            let name = crate::interrupt::signal_name(signal);
            if interrupted.fetch_add(1, Ordering::SeqCst) == 0 {
                eprintln!(
                    "{name} received: no new build starts; waiting for the {} running to finish or stop (send {name} again to stop at once)",
                    running_now.load(Ordering::SeqCst)
                );
            } else {
                eprintln!("second {name}: stopping now; builds still running are not recorded");
                crate::interrupt::default_action(signal);
            }
        })
        .ok()
    };
    std::thread::scope(|scope| {
        // `None` as the result: an `after` job of an up-to-date target finished.
        let (tx, rx) = mpsc::channel::<(usize, Option<anyhow::Result<(Output, Option<String>)>>, f64, f64)>();
        let mut running = 0usize;
        loop {
            while running < jobs && !stop {
                let Some(idx) = followups.pop() else { break };
                let item = &plan.items[idx];
                let Decision::Skip { output, .. } = &item.decision else { continue };
                let (tx, after) = (tx.clone(), after.expect("follow-ups exist only with an after step"));
                running += 1;
                running_now.store(running, Ordering::SeqCst);
                scope.spawn(move || {
                    after(item, output);
                    let _ = tx.send((idx, None, 0.0, 0.0));
                });
            }
            // Settle everything that can no longer run, then start what is ready.
            let mut i = 0;
            while i < pending.len() {
                let item = &plan.items[pending[i]];
                let blocked_by = item.deps.iter().find(|d| failed.contains(*d)).cloned();
                if !stop && interrupted.load(Ordering::SeqCst) > 0 {
                    stop = true;
                    interrupt_stop = true;
                }
                if blocked_by.is_some() || stop {
                    let reason = match blocked_by {
                        _ if interrupt_stop => "not started: the run was interrupted".to_owned(),
                        Some(d) => format!("not built: dependency {d} failed"),
                        None => "not started: an earlier target failed and --fail-fast is set".to_owned(),
                    };
                    let mut r = item.dry_report();
                    r.status = Status::Failed;
                    r.error = Some(reason.clone());
                    r.reason = reason;
                    progress.finished(&r);
                    failed.insert(item.id.clone());
                    reports.insert(item.id.clone(), r);
                    pending.remove(i);
                    continue;
                }
                let ready = item.deps.iter().all(|d| outputs.contains_key(d));
                if ready && running < jobs {
                    let idx = pending.remove(i);
                    let item = &plan.items[idx];
                    let target = by_id[item.id.as_str()];
                    let deps: BTreeMap<String, (InputHash, Output)> =
                        item.deps.iter().map(|d| (d.clone(), outputs[d].clone())).collect();
                    if let Decision::Build(reason) = &item.decision {
                        progress.started(&item.id, &reason.to_string());
                    }
                    let tx = tx.clone();
                    running += 1;
                    running_now.store(running, Ordering::SeqCst);
                running_now.store(running, Ordering::SeqCst);
                    scope.spawn(move || {
                        let started = Instant::now();
                        let job = BuildJob { id: &item.id, input_hash: &item.input_hash, inputs: &item.inputs, deps: &deps };
                        let result = build_once(item, target, &job, store, remote);
                        let seconds = started.elapsed().as_secs_f64();
                        let started = started.duration_since(run_started).as_secs_f64();
                        // The lock is held through the follow-up step (the push), so that a
                        // run waiting for it finds the output where it looks.
                        let result = result.map(|(output, found, lock)| {
                            if let Some(after) = after {
                                after(item, &output);
                            }
                            drop(lock);
                            (output, found)
                        });
                        let _ = tx.send((idx, Some(result), seconds, started));
                    });
                    continue;
                }
                i += 1;
            }
            if running == 0 && (followups.is_empty() || stop) {
                break;
            }
            let Ok((idx, result, seconds, started)) = rx.recv() else { break };
            running -= 1;
            running_now.store(running, Ordering::SeqCst);
            let Some(result) = result else { continue };
            let item = &plan.items[idx];
            let mut r = item.dry_report();
            r.seconds = Some(seconds);
            r.started = Some(started);
            if let Decision::Build(reason) = &item.decision {
                r.changes = changes_of(reason);
            }
            match result {
                Ok((output, Some(found))) => {
                    r.status = Status::Skipped;
                    r.reason = found;
                    r.changes.clear();
                    r.artifact = Some(output.artifact.clone());
                    r.digest = output.detail.get("digest").cloned();
                    outputs.insert(item.id.clone(), (item.input_hash.clone(), output));
                }
                Ok((output, None)) => {
                    r.status = Status::Built;
                    r.artifact = Some(output.artifact.clone());
                    r.digest = output.detail.get("digest").cloned();
                    outputs.insert(item.id.clone(), (item.input_hash.clone(), output));
                }
                Err(e) => {
                    r.status = Status::Failed;
                    r.error = Some(format!("{e:#}"));
                    failed.insert(item.id.clone());
                    if opts.fail_fast {
                        stop = true;
                    }
                }
            }
            progress.finished(&r);
            reports.insert(item.id.clone(), r);
        }
    });
    plan.items.iter().map(|i| reports.remove(&i.id).expect("every item is reported")).collect()
}
