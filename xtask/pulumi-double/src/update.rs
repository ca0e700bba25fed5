//! The commands that change a stack: `up`, `destroy` and `refresh`.

use super::*;

impl Ctx {
    pub(crate) fn up(&self, cli: &Cli) -> Result<(), Fail> {
        self.require_yes(cli)?;
        let mut state = self.load_unlocked_secrets()?;
        // (Pulumi listens once the update starts, just after locking; the double listens
        // first, so that a test's signal can never find it between the two.)
        catch_signals(false);
        let lock = self.lock()?;
        let result = self.apply_update(&mut state, cli);
        if self.injected("PULUMI_DOUBLE_CRASH", "up") {
            // A killed process: the lock stays behind.
            return Err(fail(GENERIC, "update canceled: the pulumi process was interrupted (injected by PULUMI_DOUBLE_CRASH)"));
        }
        let _ = fs::remove_file(lock);
        result
    }

    pub(crate) fn apply_update(&self, state: &mut Value, cli: &Cli) -> Result<(), Fail> {
        println!("Updating ({}):", self.stack);
        let images = self.check_program(false)?;
        if self.injected("PULUMI_DOUBLE_FAIL", "up") {
            println!(" +  aws:lambda/function:Function health-check creating (0s) error: 1 error occurred:");
            return Err(bail(vec![
                Diag {
                    urn: format!("urn:pulumi:{}::{}::aws:lambda/function:Function::health-check", self.stack, self.project),
                    message: format!(
                        "creating Lambda Function (tradai-health-check-{}): operation error Lambda: CreateFunction, https response error StatusCode: 400, InvalidParameterValueException: Source image does not exist (injected by PULUMI_DOUBLE_FAIL)",
                        self.stack
                    ),
                },
                Diag { urn: self.stack_urn(), message: "update failed".to_owned() },
            ]));
        }
        let steps = self.preview_steps(state);
        let delay: u64 = std::env::var("PULUMI_DOUBLE_UP_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        for (op, res) in &steps {
            if signals() >= 1 {
                break;
            }
            if op == "same" {
                continue;
            }
            let verb = if op == "delete" { "deleting" } else { "creating" };
            println!(" {}  {} {verb}", if op == "delete" { "-" } else { "+" }, res.urn);
            let _ = std::io::stdout().flush();
            work(delay);
            if signals() >= 2 {
                // Terminated mid-operation: Pulumi records it as pending.
                state["pendingOperations"] = json!([{"resource": {"urn": res.urn}, "type": verb}]);
                break;
            }
            resources.retain(|r| r["urn"].as_str() != Some(&res.urn));
            if op != "delete" {
                let mut r = json!({"urn": res.urn, "custom": !res.urn.contains("pulumi:pulumi:Stack")});
                if res.protect {
                    r["protect"] = json!(true);
                }
                if res.retain {
                    r["retainOnDelete"] = json!(true);
                }
                resources.push(r);
            }
            if cli.diff && op == "update" {
                println!("      ~ tags.Owner");
            }
            println!(" {}  {} {}", if op == "delete" { "-" } else { "+" }, res.urn, if op == "delete" { "deleted" } else { "created" });
        }
        // Keep the stack resource first, as Pulumi's state does.
        resources.sort_by_key(|r| !r["urn"].as_str().unwrap_or("").contains("pulumi:pulumi:Stack"));
        state["resources"] = Value::Array(resources);
        if signals() >= 1 {
            self.save(state)?;
            return Err(fail(CANCELLED, "update cancelled"));
        }
        let desired = self.desired();
        state["outputs"] = json!({
            "stack_name": format!("{}-{}", self.project, self.stack),
            "resource_count": desired.len(),
            "connection_secret": format!("double-secret-{}-{}", self.project, self.stack),
        });
        state["secretOutputs"] = json!(["connection_secret"]);
        state["updates"] = json!(state["updates"].as_u64().unwrap_or(0) + 1);
        state["lastUpdate"] = json!(now().to_string());
        state["pendingOperations"] = json!([]);
        if let Some(images) = images {
            state["images"] = images;
        }
        self.save(state)?;
        println!("Resources:\n    {} unchanged or updated\n\nDuration: 0s", desired.len());
        Ok(())
    }

    pub(crate) fn destroy(&self, cli: &Cli) -> Result<(), Fail> {
        self.require_yes(cli)?;
        let mut state = self.load_unlocked_secrets()?;
        let resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        let protected = resources.iter().filter(|r| r["protect"].as_bool() == Some(true)).count();
        if cli.exclude_protected && protected > 0 && protected == resources.len() {
            println!(
                "There were no unprotected resources to destroy. There are still {protected} protected resources associated with this stack."
            );
            return Ok(());
        }
        catch_signals(false);
        let lock = self.lock()?;
        let result = (|| {
            println!("Destroying ({}):", self.stack);
            if self.injected("PULUMI_DOUBLE_FAIL", "destroy") {
                return Err(bail(vec![Diag {
                    urn: format!("urn:pulumi:{}::{}::aws:ec2/securityGroup:SecurityGroup::alb", self.stack, self.project),
                    message:
                        "deleting EC2 Security Group: DependencyViolation: resource has a dependent object (injected by PULUMI_DOUBLE_FAIL)"
                            .to_owned(),
                }]));
            }
            if !cli.exclude_protected
                && let Some(r) = resources.iter().find(|r| r["protect"].as_bool() == Some(true))
            {
                let urn = r["urn"].as_str().unwrap_or("");
                return Err(bail(vec![Diag {
                    urn: urn.to_owned(),
                    message: format!(
                        "resource \"{urn}\" cannot be deleted\nbecause it is protected. To unprotect the resource, either remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, or use the command:\n`pulumi state unprotect '{urn}'`"
                    ),
                }]));
            }
            let mut kept = Vec::new();
            let mut deleted = 0;
            for r in &resources {
                let urn = r["urn"].as_str().unwrap_or("");
                if r["protect"].as_bool() == Some(true) {
                    kept.push(r.clone());
                } else if r["retainOnDelete"].as_bool() == Some(true) {
                    println!(" -  {urn} retained");
                } else {
                    println!(" -  {urn} deleted");
                    deleted += 1;
                }
            }
            state["resources"] = Value::Array(kept);
            state["outputs"] = json!({});
            state["updates"] = json!(0);
            self.save(&state)?;
            println!("Resources:\n    - {deleted} deleted");
            if protected > 0 {
                println!(
                    "All unprotected resources were destroyed. There are still {protected} protected resources associated with this stack."
                );
            }
            Ok(())
        })();
        let _ = fs::remove_file(lock);
        result
    }

    pub(crate) fn refresh(&self, cli: &Cli) -> Result<(), Fail> {
        if !cli.preview_only {
            self.require_yes(cli)?;
        }
        let mut state = self.load_unlocked_secrets()?;
        let drift = self.drift();
        let urns: Vec<String> = state["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["urn"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // Each resource is read; the first custom one differs when drift is injected.
        let mut steps: Vec<Value> = Vec::new();
        let mut summary: BTreeMap<String, u64> = BTreeMap::new();
        let mut drifted: Option<(String, String)> = None;
        for (i, urn) in urns.iter().enumerate() {
            let result = match (&drift, i) {
                (Some(kind), 1) if kind == "delete" => "delete",
                (Some(_), 1) => "update",
                _ => "same",
            };
            *summary.entry(result.to_owned()).or_default() += 1;
            if result == "same" {
                steps.push(json!({"op": "refresh", "urn": urn, "detailedDiff": null}));
            } else {
                drifted = Some((result.to_owned(), urn.clone()));
                steps.push(Self::step_json(result, urn));
            }
        }
        if cli.preview_only {
            // A preview-only refresh takes no lock on a DIY backend.
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&Self::digest(&steps, summary, &[])).unwrap_or_default());
            } else {
                println!("Previewing refresh ({}):", self.stack);
                for s in &steps {
                    println!("    {:<8} {}", s["op"].as_str().unwrap_or(""), s["urn"].as_str().unwrap_or(""));
                }
            }
            if cli.expect_no_changes && drifted.is_some() {
                return Err(fail(CHANGES, "no changes were expected for refresh but changes were proposed"));
            }
            return Ok(());
        }
        let lock = self.lock()?;
        if let Some((op, urn)) = &drifted
            && op == "delete"
            && let Some(resources) = state["resources"].as_array_mut()
        {
            resources.retain(|r| r["urn"].as_str() != Some(urn));
        }
        state["refreshes"] = json!(state["refreshes"].as_u64().unwrap_or(0) + 1);
        let saved = self.save(&state);
        let _ = fs::remove_file(lock);
        saved?;
        println!("Refreshing ({}):\nResources:\n    {} unchanged", self.stack, urns.len() - usize::from(drifted.is_some()));
        Ok(())
    }
}
