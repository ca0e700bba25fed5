//! `infra-setup`, `infra-preview`, `infra-pr-comment`, `infra-up`, `infra-bootstrap` and
//! `infra-outputs`.

use super::*;

impl SetupArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let project = Project::locate(root)?;
        let target = project.root.join("infra/.env");
        let template = project.root.join("infra/.env.example");
        if target.exists() {
            eprintln!("infra/.env already exists; left unchanged");
            return Ok(ExitCode::SUCCESS);
        }
        let text = std::fs::read_to_string(&template)
            .map_err(|_| anyhow::anyhow!("{template} is missing; restore it with `git checkout -- infra/.env.example`"))?;
        let parsed = xtask_pulumi::dotenv::parse(&text).map_err(|e| anyhow::anyhow!("{template} cannot be read: {e}; fix the template"))?;
        // Private from its first byte, whole or not at all, and never over a file that
        // appeared meanwhile.
        xtask_engine::atomic::create_private(&target, text.as_bytes()).with_context(|| format!("cannot create {target}"))?;
        let empty: Vec<&str> = parsed.keys().into_iter().filter(|k| parsed.get(k).is_some_and(str::is_empty)).collect();
        eprintln!("created infra/.env from infra/.env.example (readable by you only)");
        if !empty.is_empty() {
            eprintln!(
                "fill in: {} (every infra command stops while S3_PULUMI_BACKEND_URL is empty, unless given --local-state for a dev or staging state on this machine)",
                empty.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl PreviewArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let (stacks, env): (Vec<Stack>, Env) = match self.words.as_slice() {
            [env] => (graph::deployment_order(), env.parse()?),
            [stack, env] => (vec![stack.parse()?], env.parse()?),
            _ => bail!("expected `[STACK] ENV`; for example `cargo xtask infra-preview dev` or `cargo xtask infra-preview compute dev`"),
        };
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, env)?;
        // Prerequisites first, before any pulumi call.
        let mut failures: Vec<String> = Vec::new();
        let mut extra: BTreeMap<Stack, Vec<(String, String)>> = BTreeMap::new();
        let mut not_ready: BTreeMap<Stack, String> = BTreeMap::new();
        for stack in &stacks {
            match infra.image_preflight(Infra::id(*stack, env), &self.images) {
                Ok((e, _)) => {
                    extra.insert(*stack, e);
                }
                Err(e) => {
                    failures.push(format!("{}: {e:#}", Infra::id(*stack, env)));
                    not_ready.insert(*stack, "not previewed: its images are not ready".to_owned());
                }
            }
        }
        let mut drifted: Vec<String> = Vec::new();
        let mut results = Vec::new();
        let mut summaries: Vec<StackSummary> = Vec::new();
        for stack in &stacks {
            let id = Infra::id(*stack, env);
            let Some(env_vars) = extra.get(stack) else {
                summaries.push(StackSummary { stack: *stack, result: Err(not_ready.get(stack).cloned().unwrap_or_default()) });
                continue;
            };
            match infra.pulumi.preview(id, env_vars) {
                Ok(p) => {
                    print_preview(id, &p);
                    if p.has_changes() {
                        drifted.push(format!("{id} ({})", p.summary()));
                    }
                    let counts = p.counts();
                    summaries.push(StackSummary { stack: *stack, result: Ok(counts) });
                    results.push(serde_json::json!({
                        "stack": stack.name(), "env": env.name(), "summary": p.summary(), "counts": counts,
                        "changeSummary": p.change_summary, "changes": p.changes(),
                    }));
                }
                Err(e) => {
                    eprintln!("{id}: preview failed: {e}");
                    failures.push(format!("{id}: {e}"));
                    summaries.push(StackSummary { stack: *stack, result: Err("preview failed".to_owned()) });
                }
            }
        }
        // The summary: the terminal, the GitHub step summary and, when asked, the pull
        // request comment, all before any failure is reported, so a failed stack shows too.
        eprintln!("\n{}", xtask_pulumi::preview::text_table(&summaries).trim_end());
        xtask_engine::github::Github::detect().summary(&xtask_pulumi::preview::markdown(&format!("Pulumi preview: {env}"), &summaries))?;
        if let Some(path) = &self.pr_comment {
            let text = xtask_pulumi::preview::pr_comment(env, &summaries);
            xtask_engine::atomic::write_atomically(path, text.as_bytes())
                .with_context(|| format!("cannot write the pull request comment {path}"))?;
            eprintln!("pull request comment written to {path} (`cargo xtask infra-pr-comment {path} --pr <number>` posts it)");
        }
        if self.json {
            let doc = serde_json::json!({ "env": env.name(), "stacks": results, "failures": failures });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        if !failures.is_empty() {
            bail!("preview failed for {}", failures.join("; "));
        }
        if self.expect_no_changes && !drifted.is_empty() {
            bail!(
                "changes found where none were expected: {}; review them with `cargo xtask infra-preview <stack> {env}`",
                drifted.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl UpArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        let id = Infra::id(self.stack, self.env);
        if self.dry_run {
            println!("{id}: {}", dry_decision(&Ok(infra), id, &self.images, &self.skip, &[]));
            return Ok(ExitCode::SUCCESS);
        }
        infra.ready(Needs::Cloud, self.env)?;
        confirm_prod(self.env, &format!("deploy {} to prod", self.stack), &self.prod)?;
        let mut run = StackRun::new(&infra.project, &self.skip)?;
        let done = infra.deploy(id, self.allow_replace, &self.images, &mut run)?;
        report_deployment(self.env, &[done.summary(self.stack)])?;
        Ok(ExitCode::SUCCESS)
    }
}

impl PrCommentArgs {
    /// Posts the comment on the pull request with the GitHub CLI (`gh`, on every GitHub
    /// runner; `GH_TOKEN` in the environment), replacing the one an earlier run posted for
    /// the same environment (found by the marker on its first line) so that a pull request
    /// carries one current preview per environment.
    pub fn run(self) -> Result<ExitCode> {
        let file = self.file.clone();
        let body = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {file}; write it with `cargo xtask infra-preview <env> --pr-comment {}`", self.file))?;
        let marker = body.lines().next().filter(|l| l.starts_with("<!-- cargo-xtask infra-preview ")).map(str::to_owned);
        let Some(marker) = marker else {
            bail!(
                "{file} was not written by `cargo xtask infra-preview --pr-comment` (its first line is not the preview marker); write it with that command"
            );
        };
        let repo = match self.repo.clone().or_else(|| std::env::var("GITHUB_REPOSITORY").ok().filter(|r| !r.is_empty())) {
            Some(r) => r,
            None => bail!("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY"),
        };
        let pr = self.pr;
        let jq = format!(".[] | select(.user.type == \"Bot\") | select(.body | startswith({marker:?})) | .id");
        let found = xtask_engine::Cmd::new("gh", "find this environment's earlier preview comment")
            .args(["api", "--paginate", &format!("repos/{repo}/issues/{pr}/comments"), "--jq", &jq])
            .run()?;
        match found.stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) {
            Some(comment) => {
                let comment: u64 = comment.parse().with_context(|| format!("gh listed a comment id that is not a number: {comment:?}"))?;
                xtask_engine::Cmd::new("gh", "replace the preview comment")
                    .args(["api", "--method", "PATCH", &format!("repos/{repo}/issues/comments/{comment}"), "-F", &format!("body=@{file}")])
                    .run()?;
                eprintln!("replaced the preview comment {comment} on {repo}#{pr}");
            }
            None => {
                xtask_engine::Cmd::new("gh", "post the preview comment")
                    .args(["pr", "comment", &pr.to_string(), "--repo", &repo, "--body-file", file.as_str()])
                    .run()?;
                eprintln!("posted the preview comment on {repo}#{pr}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl BootstrapArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let layers = graph::layers_from(self.from);
        let env = self.env;
        if self.dry_run {
            let project = Project::locate(root)?;
            println!("infra-bootstrap {env}: {} step(s)", layers.len());
            let mut ahead: Vec<Stack> = Vec::new();
            let mut decisions: Vec<String> = Vec::new();
            let infra = Infra::open(root, &self.backend, self.debug.flags());
            for (i, layer) in layers.iter().enumerate() {
                let what = match layer {
                    Layer::Stack(s) => {
                        let mut w = String::new();
                        if !s.spec().images.is_empty() {
                            w.push_str("check the images in the registry, write the image manifest, ");
                        }
                        w.push_str(&format!("back up the state, pulumi preview, pulumi up ({} / {env})", s.project()));
                        if s.spec().guard_replacements {
                            w.push_str(", stop if the preview deletes or replaces a resource");
                        }
                        w
                    }
                    Layer::Images(set) => format!(
                        "build and publish them in this process, as `cargo xtask {} --registry {}` does",
                        set.publish_command(),
                        self.images.registry_name(&project)
                    ),
                };
                println!("  {}. {:<15} {what}", i + 1, layer.name());
                if let Layer::Stack(s) = layer {
                    decisions.push(format!(
                        "  {:<11} {}",
                        s.name(),
                        dry_decision(&infra, Infra::id(*s, env), &self.images, &self.skip, &ahead)
                    ));
                    ahead.push(*s);
                }
            }
            // Which stacks would be skipped, from the records alone (no pulumi call).
            eprintln!("\nthe stacks of {env}:");
            for d in &decisions {
                eprintln!("{d}");
            }
            // The image layers' own steps: builds, pushes and tags, planned and not run.
            for layer in &layers {
                if let Layer::Images(set) = layer {
                    eprintln!("\n{} of {env}:", layer.name());
                    if let Err(e) = publish_images(&project, *set, &self.images, true) {
                        eprintln!("  cannot plan the {} here: {e:#}", set.name());
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let infra = Infra::open(root, &self.backend, self.debug.flags())?;
        infra.ready(Needs::Cloud, env)?;
        confirm_prod(env, "deploy every layer to prod", &self.prod)?;
        let mut run = StackRun::new(&infra.project, &self.skip)?;
        let mut summaries: Vec<StackSummary> = Vec::new();
        let total = layers.len();
        for (i, layer) in layers.iter().enumerate() {
            eprintln!("==> [{}/{total}] {layer} ({env})", i + 1);
            github_group(&format!("infra-bootstrap {env}: {layer}"));
            let result = match layer {
                Layer::Stack(s) => {
                    infra.deploy(Infra::id(*s, env), self.allow_replace, &self.images, &mut run).map(|d| summaries.push(d.summary(*s)))
                }
                Layer::Images(set) => infra.publish_images(*set, &self.images),
            };
            github_endgroup();
            if let Err(e) = result {
                report_deployment(env, &summaries)?;
                bail!(
                    "infra-bootstrap {env} stopped at layer {layer}: {e:#}; fix it and resume with `cargo xtask infra-bootstrap {env} --from {layer}`"
                );
            }
        }
        report_deployment(env, &summaries)?;
        let skipped = summaries.iter().filter(|s| s.result.is_err()).count();
        eprintln!("infra-bootstrap {env}: all {total} layer(s) done ({skipped} stack(s) skipped as unchanged)");
        Ok(ExitCode::SUCCESS)
    }
}

impl OutputsArgs {
    pub fn run(self, root: Option<&Utf8Path>) -> Result<ExitCode> {
        let infra = Infra::open(root, &self.backend, DebugFlags::default())?;
        infra.ready(Needs::State, self.env)?;
        let outputs = infra.pulumi.outputs(Infra::id(self.stack, self.env), self.show_secrets)?;
        println!("{}", serde_json::to_string_pretty(&outputs)?);
        Ok(ExitCode::SUCCESS)
    }
}
