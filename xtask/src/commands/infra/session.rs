//! What every infra command does with a stack: open the repository's Pulumi, check
//! and publish the images compute deploys, back up the state, decide from the records
//! of past `up`s whether a stack runs, and deploy it.

use super::*;

impl Infra {
    /// The project and its Pulumi settings; `backend` says whether `--local-state` was
    /// given, `debug` which of Pulumi's debugging flags every call passes.
    pub(super) fn open(root: Option<&Utf8Path>, backend: &BackendArgs, debug: DebugFlags) -> Result<Infra> {
        let project = Project::locate(root)?;
        let local = backend.local_state.then(|| project.target_dir().join("pulumi-state"));
        let settings = Settings::load(&project.root, local.as_deref())?;
        let pulumi = Pulumi::new(&project.root, &project.state_dir(), settings).with_debug(debug);
        Ok(Infra { project, pulumi })
    }

    /// Everything that can fail before Pulumi runs: the executable, the settings, the
    /// backend. Says every missing setting at once.
    pub(super) fn ready(&self, needs: Needs, env: Env) -> Result<()> {
        self.pulumi.ensure_installed()?;
        let settings = self.pulumi.settings();
        settings.require(needs)?;
        settings.require_shared_backend_for(env.is_production())?;
        settings.prepare_backend()?;
        // Always said, so that nobody deploys against a backend they did not mean.
        if let Some(backend) = &settings.backend {
            eprintln!("{}", backend.describe());
        }
        Ok(())
    }

    pub(super) fn id(stack: Stack, env: Env) -> StackId {
        StackId { stack, env }
    }

    /// The images a stack needs, checked in the registry; writes the manifest and returns
    /// the environment that hands it to the program, and the digests (inputs of the stack).
    pub(super) fn image_preflight(&self, id: StackId, args: &ImageArgs) -> Result<(ProgramEnv, BTreeMap<String, String>)> {
        let Some(digests) = self.image_digests(id, args)? else {
            return Ok((Vec::new(), BTreeMap::new()));
        };
        let path = self.project.state_dir().join(format!("pulumi/image-manifest-{}.json", id.env));
        images::write_manifest(&path, &digests)?;
        eprintln!(
            "{id}: all {} images present in {} (tag {}); digests handed over in {path}",
            digests.len(),
            args.registry_name(&self.project),
            args.image_tag
        );
        Ok((vec![(MANIFEST_VAR.to_owned(), path.to_string())], digests))
    }

    /// The digests of the images a stack deploys, checked in the registry at `--image-tag`
    /// (one error naming every missing image); `None` for a stack that deploys none.
    pub(super) fn image_digests(&self, id: StackId, args: &ImageArgs) -> Result<Option<BTreeMap<String, String>>> {
        let sets = id.stack.spec().images;
        if sets.is_empty() {
            return Ok(None);
        }
        let mut required = Vec::new();
        for set in sets {
            let repositories = match set {
                ImageSet::Lambda => self.project.lambdas()?.iter().map(|n| lambda_image(n)).collect(),
                ImageSet::Service => self.project.services()?.iter().map(|s| crate::project::service_image(s)).collect(),
            };
            required.push(Required { set: *set, repositories });
        }
        let name = args.registry_name(&self.project);
        let lookup: Box<dyn ImageRegistry + '_> = if name == "ecr" {
            // ECR: the operations' Lambda image check (`lambda-check-images`), same calls.
            let aws = ops::connect(&self.project, id.env).with_context(|| format!("cannot check the images {id} deploys in ECR"))?;
            Box::new(EcrImages { project: &self.project, aws, tag: args.image_tag.clone() })
        } else {
            match publish::choose(&self.project, Some(&name)).with_context(|| format!("cannot check the images {id} deploys"))? {
                RegistryChoice::Local => {
                    bail!("{id} deploys images from a registry, and `local` is not one; pass --registry ecr (or host[:port])")
                }
                RegistryChoice::Remote(registry) => Box::new(RegistryImages { registry, tag: args.image_tag.clone() }),
            }
        };
        Ok(Some(images::check_images(lookup.as_ref(), &name, id.env, &required)?))
    }

    /// Backs up the state; a stack that does not exist yet is created first when `create`.
    pub(super) fn backup(&self, id: StackId, reason: &str, create: bool) -> Result<Utf8PathBuf> {
        match self.pulumi.backup(id, reason) {
            Ok(p) => Ok(p),
            Err(PulumiError::StackNotFound { .. }) if create => {
                eprintln!("{id}: stack {} does not exist yet; creating it", id.stack.project());
                self.pulumi.init(id)?;
                Ok(self.pulumi.backup(id, reason)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `infra-up` for one stack, prerequisites checked: images, lock, then whether its
    /// inputs changed since its last successful `up` here (unchanged, with the state that
    /// `up` left: skipped), backup, preview (and the persistent guard), `pulumi up`, and
    /// the record of that `up`.
    pub(super) fn deploy(&self, id: StackId, allow_replace: bool, images: &ImageArgs, run: &mut StackRun) -> Result<Deployed> {
        let (extra_env, digests) = self.image_preflight(id, images)?;
        if let Some(holder) = self.pulumi.local_lock_holder(id) {
            return Err(PulumiError::Locked { id, holder }.into());
        }
        let upstream = self.upstream_outputs(id, run)?;
        let inputs = records::stack_manifest(&self.project.root.join("infra"), id, &upstream, &digests)?;
        let backend = self.pulumi.settings().backend_url().to_owned();
        let mut verdict = records::verdict(records::find(&run.records, &backend, id), &inputs, run.skip.force);
        if let Verdict::Unchanged { recorded_at, state } = &verdict {
            let when = records::when(*recorded_at);
            verdict = match self.probe(id) {
                Ok(p) if p.state == *state => {
                    eprintln!("{id}: skipped: its inputs and its state are those of its last up here ({when}); --force deploys it anyway");
                    if run.skip.explain {
                        eprintln!(
                            "    inputs {} (program, shared package, settings, upstream outputs, image digests)",
                            &inputs.hash().as_str()[..12]
                        );
                    }
                    run.outputs.insert(id.stack, p.outputs);
                    return Ok(Deployed::Skipped { why: format!("unchanged since {when}") });
                }
                Ok(_) => Verdict::Run {
                    reason: format!(
                        "its inputs are unchanged, but its state is not the one its last up here left ({when}): an up from elsewhere, a pulumi command run by hand or a refresh wrote it since"
                    ),
                    changes: Vec::new(),
                },
                Err(PulumiError::StackNotFound { .. }) => {
                    Verdict::Run { reason: "it no longer exists in the state backend".into(), changes: Vec::new() }
                }
                Err(e) => return Err(e.into()),
            };
        }
        if let Verdict::Run { reason, changes } = &verdict {
            eprintln!("{id}: deploying: {reason}");
            if run.skip.explain {
                for c in changes {
                    eprintln!("    {c}");
                }
            }
        }
        let backup = self.backup(id, "up", true)?;
        eprintln!("{id}: state backed up to {backup}");
        let preview = self.pulumi.preview(id, &extra_env)?;
        print_preview(id, &preview);
        let destructive = preview.destructive();
        if id.stack.spec().guard_replacements && !destructive.is_empty() && !allow_replace {
            let list: Vec<String> = destructive.iter().map(|s| format!("{} {}", s.op, xtask_pulumi::preview::short_urn(&s.urn))).collect();
            bail!(
                "stopped before deploying {id}: its preview would {} ({}); {} holds data and is never replaced silently; review with `cargo xtask infra-preview {} {}` and rerun with --allow-replace if this is intended",
                preview.summary(),
                list.join(", "),
                id.stack,
                id.stack,
                id.env
            );
        }
        self.pulumi.up(id, &extra_env)?;
        eprintln!("{id}: deployed");
        // The record: what it was deployed from and the state it left. Without it the
        // next run simply deploys again, so a failure here is a warning.
        match self.probe(id) {
            Ok(p) => {
                run.outputs.insert(id.stack, p.outputs.clone());
                if let Err(e) = run.store.record(&backend, id, inputs, &p) {
                    eprintln!("warning: {e}; the next infra-up of {id} deploys it again");
                }
            }
            Err(e) => eprintln!(
                "warning: {id} is deployed, but its state could not be read to record the deployment ({e}); the next infra-up deploys it again"
            ),
        }
        Ok(Deployed::Ran { counts: preview.counts() })
    }

    /// `pulumi stack export` (captured, never written to a file) reduced to the hashes a
    /// record keeps: the whole state, and the outputs downstream stacks read.
    pub(super) fn probe(&self, id: StackId) -> Result<StateProbe, PulumiError> {
        let purpose = "read the state";
        let out = self.pulumi.run_captured(id, purpose, self.pulumi.command(id, purpose, &["stack", "export"]))?;
        StateProbe::from_export(id, &out.stdout).map_err(|e| PulumiError::BadOutput {
            id,
            command: "pulumi stack export".into(),
            problem: e.to_string(),
        })
    }

    /// The hash of each upstream's outputs: known from this run when the upstream was
    /// deployed or probed in it, else read from its state now (never from an older
    /// record, which another machine's `up` may have made stale).
    pub(super) fn upstream_outputs(&self, id: StackId, run: &mut StackRun) -> Result<BTreeMap<Stack, InputHash>> {
        let mut out = BTreeMap::new();
        for up in id.stack.spec().upstreams {
            let hash = match run.outputs.get(up) {
                Some(h) => h.clone(),
                None => {
                    let p = self.probe(Infra::id(*up, id.env)).with_context(|| format!("{id} reads the outputs of {up}"))?;
                    run.outputs.insert(*up, p.outputs.clone());
                    p.outputs
                }
            };
            out.insert(*up, hash);
        }
        Ok(out)
    }

    /// What `infra-up` would do with a stack, decided without running `pulumi`: its inputs
    /// against its record, upstream outputs as their records have them, images as the
    /// registry holds them now. `ahead` lists the stacks that would deploy before it.
    pub(super) fn dry_verdict(&self, id: StackId, images: &ImageArgs, run: &StackRun, ahead: &[Stack]) -> Result<String> {
        if self.pulumi.settings().backend.is_none() {
            bail!("no state backend is configured, so no record applies; set S3_PULUMI_BACKEND_URL (or pass --local-state)");
        }
        let backend = self.pulumi.settings().backend_url().to_owned();
        let mut upstream = BTreeMap::new();
        for up in id.stack.spec().upstreams {
            match records::find(&run.records, &backend, Infra::id(*up, id.env)).and_then(records::recorded_outputs) {
                Some(h) => {
                    upstream.insert(*up, h);
                }
                None => return Ok(format!("would deploy: no record here of {up}'s outputs (it has not been deployed from here)")),
            }
        }
        let digests = self.image_digests(id, images)?.unwrap_or_default();
        let inputs = records::stack_manifest(&self.project.root.join("infra"), id, &upstream, &digests)?;
        Ok(match records::verdict(records::find(&run.records, &backend, id), &inputs, run.skip.force) {
            Verdict::Run { reason, changes } => {
                let mut s = format!("would deploy: {reason}");
                if run.skip.explain {
                    for c in changes {
                        s.push_str(&format!("\n      {c}"));
                    }
                }
                s
            }
            Verdict::Unchanged { recorded_at, .. } => {
                let mut s = format!("would be skipped: its inputs are those of its last up here ({})", records::when(recorded_at));
                s.push_str(", if the state is still the one that up left");
                let before: Vec<&str> = id.stack.spec().upstreams.iter().filter(|u| ahead.contains(u)).map(|u| u.name()).collect();
                if !before.is_empty() {
                    s.push_str(&format!(" and the outputs of {} do not change when it deploys", before.join(", ")));
                }
                s
            }
        })
    }

    /// Builds and publishes one image set in this process: the same run as
    /// `lambda-bootstrap` or `service-push-all`, with the layer's registry.
    pub(super) fn publish_images(&self, set: ImageSet, images: &ImageArgs) -> Result<()> {
        publish_images(&self.project, set, images, false)
    }
}
