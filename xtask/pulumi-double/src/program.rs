//! What a program declares (its `modules/*.py` files) and `preview`: the steps, the
//! `--json` digest and the text display.

use super::*;

impl Ctx {
    /// The resources the program declares: the stack itself and one per module file, with
    /// the protection its source (or a test control) gives it.
    pub(crate) fn desired(&self) -> Vec<Res> {
        let mut out = vec![Res { urn: self.stack_urn(), protect: false, retain: false }];
        let mut modules: Vec<(String, String)> = fs::read_dir(self.cwd.join("modules"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().strip_suffix(".py")?.to_owned();
                        (!name.starts_with("__")).then(|| (name, fs::read_to_string(e.path()).unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if modules.is_empty() {
            modules.push(("main".to_owned(), String::new()));
        }
        modules.sort();
        let controlled = |var: &str, module: &str| {
            env_list(var).iter().any(|t| t.split_once(':').is_some_and(|(s, m)| self.is_me(s) && (m == module || m == "*")))
        };
        for (m, source) in modules {
            let protect =
                source.contains("protect=True") || source.contains("data_resource_options(") || controlled("PULUMI_DOUBLE_PROTECT", &m);
            let retain = source.contains("retain_on_delete=True") || controlled("PULUMI_DOUBLE_RETAIN", &m);
            out.push(Res { urn: format!("urn:pulumi:{}::{}::tradai:index:Module::{m}", self.stack, self.project), protect, retain });
        }
        out
    }

    /// What running the program needs: every `stack_ref("<x>")` target deployed, and a
    /// valid image manifest where the program reads one. Failures are engine diagnostics.
    pub(crate) fn check_program(&self, previewing: bool) -> Result<Option<Value>, Fail> {
        let prefix = self.project.rsplit_once('-').map(|(p, _)| p).unwrap_or(&self.project).to_owned();
        let mut sources = Vec::new();
        let mut dirs = vec![self.cwd.clone()];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                if p.is_dir() {
                    if !(name.starts_with('.') || name == "tests" || name == "__pycache__") {
                        dirs.push(p);
                    }
                } else if name.ends_with(".py") {
                    sources.push((p.clone(), fs::read_to_string(&p).unwrap_or_default()));
                }
            }
        }
        sources.sort();
        let failed = if previewing { "preview failed" } else { "update failed" };
        for (_, text) in &sources {
            for part in text.split("stack_ref(").skip(1) {
                let lit = part.trim_start();
                let Some(q) = lit.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
                let Some(end) = lit[1..].find(q) else { continue };
                let upstream = format!("{prefix}-{}", &lit[1..1 + end]);
                let state: Value =
                    fs::read_to_string(self.state_path_of(&upstream)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                if state["updates"].as_u64().unwrap_or(0) == 0 {
                    let name = format!("{ORG}/{upstream}/{}", self.stack);
                    let reason = format!("unknown stack \"{name}\"");
                    let message = if previewing { format!("Preview failed: {reason}") } else { reason };
                    return Err(bail(vec![
                        Diag { urn: format!("urn:pulumi:{}::{}::pulumi:pulumi:StackReference::{name}", self.stack, self.project), message },
                        Diag { urn: self.stack_urn(), message: failed.to_owned() },
                    ]));
                }
            }
        }
        let program_failed = |why: String| {
            bail(vec![Diag {
                urn: self.stack_urn(),
                message: format!(
                    "Program failed with an unhandled exception:\nTraceback (most recent call last):\n  File \"{}/modules/image_manifest.py\", line 1, in <module>\nImageManifestError: {why}",
                    self.cwd.display()
                ),
            }])
        };
        let reads_manifest = sources.iter().any(|(_, t)| t.contains("TRADAI_IMAGE_MANIFEST"));
        match std::env::var("TRADAI_IMAGE_MANIFEST") {
            Ok(path) => {
                let text = fs::read_to_string(&path).map_err(|_| program_failed(format!("image manifest {path} does not exist")))?;
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| program_failed(format!("image manifest {path} is not valid JSON ({e})")))?;
                let ok = v["images"].as_object().is_some_and(|m| {
                    m.values().all(|d| {
                        d.as_str()
                            .and_then(|s| s.strip_prefix("sha256:"))
                            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    })
                });
                if !ok {
                    return Err(program_failed(format!("image manifest {path} has no valid \"images\" object")));
                }
                Ok(Some(v["images"].clone()))
            }
            Err(_) if reads_manifest => {
                Err(program_failed("no image manifest: set TRADAI_IMAGE_MANIFEST to the manifest the build tool writes".to_owned()))
            }
            Err(_) => Ok(None),
        }
    }

    /// The steps from the state to the program: (op, resource).
    pub(crate) fn preview_steps(&self, state: &Value) -> Vec<(String, Res)> {
        let current: Vec<String> = state["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["urn"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let desired = self.desired();
        let mut steps: Vec<(String, Res)> =
            desired.iter().map(|r| (if current.contains(&r.urn) { "same" } else { "create" }.to_owned(), r.clone())).collect();
        let urns: Vec<&String> = desired.iter().map(|r| &r.urn).collect();
        steps.extend(
            current
                .iter()
                .filter(|u| !urns.contains(u))
                .map(|u| ("delete".to_owned(), Res { urn: u.clone(), protect: false, retain: false })),
        );
        for t in env_list("PULUMI_DOUBLE_PREVIEW_OPS") {
            let (stack, op) = match t.split_once(':') {
                Some((s, op)) => (Some(s), op),
                None => (None, t.as_str()),
            };
            if stack.is_none_or(|s| self.is_me(s))
                && let Some(step) = steps.get_mut(1)
            {
                step.0 = op.to_owned();
            }
        }
        steps
    }

    /// A step as `display.PreviewStep` serialises it.
    pub(crate) fn step_json(op: &str, urn: &str) -> Value {
        let mut step = json!({"op": op, "urn": urn, "detailedDiff": null});
        match op {
            "update" => {
                step["diffReasons"] = json!(["tags"]);
                step["detailedDiff"] = json!({"tags.Owner": {"kind": "update", "inputDiff": true}});
            }
            "replace" => {
                step["diffReasons"] = json!(["name"]);
                step["replaceReasons"] = json!(["name"]);
                step["detailedDiff"] = json!({"name": {"kind": "update-replace", "inputDiff": true}});
            }
            _ => {}
        }
        step
    }

    pub(crate) fn digest(steps: &[Value], summary: BTreeMap<String, u64>, diags: &[Diag]) -> Value {
        let mut doc = json!({
            "config": {"aws:region": "eu-central-1"},
            "steps": steps,
            "duration": 1_000_000,
        });
        if !summary.is_empty() {
            doc["changeSummary"] = json!(summary);
        }
        if !diags.is_empty() {
            doc["diagnostics"] = Value::Array(
                diags.iter().map(|d| json!({"urn": d.urn, "message": format!("error: {}\n", d.message), "severity": "error"})).collect(),
            );
        }
        doc
    }

    /// Prints a preview's result: the digest (also on failure, diagnostics inside), or
    /// the display. A failure comes back with its diagnostics marked printed.
    pub(crate) fn show_preview(
        &self,
        cli: &Cli,
        steps: &[Value],
        summary: BTreeMap<String, u64>,
        result: Result<(), Fail>,
    ) -> Result<(), Fail> {
        if cli.json {
            let diags: &[Diag] = match &result {
                Err(f) => &f.diags,
                Ok(()) => &[],
            };
            println!("{}", serde_json::to_string_pretty(&Self::digest(steps, summary, diags)).unwrap_or_default());
            return result.map_err(|f| Fail { printed: true, ..f });
        }
        println!("Previewing update ({}):", self.stack);
        for s in steps {
            println!("    {:<8} {}", s["op"].as_str().unwrap_or(""), s["urn"].as_str().unwrap_or(""));
            if cli.diff
                && let Some(d) = s["detailedDiff"].as_object()
            {
                for k in d.keys() {
                    println!("        ~ {k}");
                }
            }
        }
        result
    }

    pub(crate) fn preview(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load_unlocked_secrets()?;
        catch_signals(true);
        let checked = self.check_program(true).map(|_| ()).and_then(|()| {
            if self.injected("PULUMI_DOUBLE_FAIL", "preview") {
                return Err(bail(vec![
                    Diag {
                        urn: format!("urn:pulumi:{}::{}::aws:s3/bucketV2:BucketV2::configs", self.stack, self.project),
                        message: format!("Preview failed: creating S3 Bucket (tradai-configs-{}): InvalidBucketName: The specified bucket is not valid (injected by PULUMI_DOUBLE_FAIL)", self.stack),
                    },
                    Diag { urn: self.stack_urn(), message: "preview failed".to_owned() },
                ]));
            }
            Ok(())
        });
        if let Err(f) = checked {
            return self.show_preview(cli, &[], BTreeMap::new(), Err(f));
        }
        let steps = self.preview_steps(&state);
        let changed = steps.iter().any(|(op, _)| op != "same");
        let mut summary: BTreeMap<String, u64> = BTreeMap::new();
        for (op, _) in &steps {
            *summary.entry(op.clone()).or_default() += 1;
        }
        let json_steps: Vec<Value> = steps.iter().map(|(op, r)| Self::step_json(op, &r.urn)).collect();
        self.show_preview(cli, &json_steps, summary, Ok(()))?;
        if cli.expect_no_changes && changed {
            return Err(fail(CHANGES, "no changes were expected for preview but changes were proposed"));
        }
        Ok(())
    }
}
