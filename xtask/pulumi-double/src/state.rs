//! A stack's state and lock in the DIY backend's layout, and the commands that only read
//! or manage them: `stack init|ls|export|output` and `cancel`.

use super::*;

impl Ctx {
    pub(crate) fn new(cwd: &str, stack: &str) -> Result<Ctx, Fail> {
        let cwd = PathBuf::from(cwd);
        let project = read_project(&cwd)?;
        let url = std::env::var("PULUMI_BACKEND_URL")
            .map_err(|_| fail(AUTH, "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"))?;
        let Some(path) = url.strip_prefix("file://") else {
            return Err(fail(
                AUTH,
                format!("the pulumi double supports file:// backends only, not {}", url.split("://").next().unwrap_or("?")),
            ));
        };
        let backend = PathBuf::from(path.split('?').next().unwrap_or(path));
        Ok(Ctx { cwd, project, stack: stack.to_owned(), backend })
    }

    /// The stack's short name (`compute` for project `tradai-compute`).
    pub(crate) fn short(&self) -> &str {
        self.project.rsplit_once('-').map(|(_, s)| s).unwrap_or(&self.project)
    }

    pub(crate) fn id(&self) -> String {
        format!("{ORG}/{}/{}", self.project, self.stack)
    }

    pub(crate) fn stack_urn(&self) -> String {
        format!("urn:pulumi:{}::{}::pulumi:pulumi:Stack::{}-{}", self.stack, self.project, self.project, self.stack)
    }

    pub(crate) fn state_path_of(&self, project: &str) -> PathBuf {
        self.backend.join(".pulumi/stacks").join(project).join(format!("{}.json", self.stack))
    }

    pub(crate) fn lock_dir(&self) -> PathBuf {
        self.backend.join(".pulumi/locks").join(ORG).join(&self.project).join(&self.stack)
    }

    pub(crate) fn is_me(&self, name: &str) -> bool {
        name == self.short() || name == self.project
    }

    pub(crate) fn injected(&self, var: &str, command: &str) -> bool {
        env_list(var).iter().any(|t| {
            let (stack, cmd) = t.split_once(':').unwrap_or((t.as_str(), "up"));
            self.is_me(stack) && cmd == command
        })
    }

    /// The drift injected for this stack: `update`, `delete` or none.
    pub(crate) fn drift(&self) -> Option<String> {
        env_list("PULUMI_DOUBLE_DRIFT").iter().find_map(|t| {
            let (stack, kind) = t.split_once(':').unwrap_or((t.as_str(), "update"));
            self.is_me(stack).then(|| kind.to_owned())
        })
    }

    pub(crate) fn load(&self) -> Result<Value, Fail> {
        let text = fs::read_to_string(self.state_path_of(&self.project))
            .map_err(|_| fail(NOT_FOUND, format!("no stack named '{}' found", self.stack)))?;
        serde_json::from_str(&text).map_err(|e| fail(GENERIC, format!("could not deserialize deployment: {e}")))
    }

    pub(crate) fn save(&self, state: &Value) -> Result<(), Fail> {
        let path = self.state_path_of(&self.project);
        let io = |e: std::io::Error| fail(GENERIC, format!("writing {}: {e}", path.display()));
        fs::create_dir_all(path.parent().unwrap_or(&self.backend)).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(state).unwrap_or_default()).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)
    }

    /// Loads the stack and checks the passphrase against the one it was created with.
    pub(crate) fn load_unlocked_secrets(&self) -> Result<Value, Fail> {
        let state = self.load()?;
        let Some(p) = passphrase()? else {
            return Err(fail(
                CONFIG,
                "getting secrets manager: constructing secrets manager of type \"passphrase\": passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
            ));
        };
        let salt = state["salt"].as_str().unwrap_or_default();
        if state["passphraseCheck"].as_str() != Some(fnv(&format!("{salt}{p}")).as_str()) {
            return Err(fail(CONFIG, "getting secrets manager: constructing secrets manager of type \"passphrase\": incorrect passphrase"));
        }
        Ok(state)
    }

    pub(crate) fn init(&self) -> Result<(), Fail> {
        if self.state_path_of(&self.project).exists() {
            return Err(fail(GENERIC, format!("stack '{}' already exists", self.id())));
        }
        let Some(p) = passphrase()? else {
            return Err(fail(
                CONFIG,
                "could not create secrets manager for new stack: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables",
            ));
        };
        let salt = fnv(&format!("{}{}", now(), std::process::id()));
        let state = json!({
            "project": self.project, "stack": self.stack, "salt": salt,
            "passphraseCheck": fnv(&format!("{salt}{p}")),
            "resources": [], "outputs": {}, "secretOutputs": [], "updates": 0, "refreshes": 0,
        });
        self.save(&state)?;
        println!("Created stack '{}'", self.stack);
        Ok(())
    }

    pub(crate) fn list(&self) -> Result<(), Fail> {
        let dir = self.backend.join(".pulumi/stacks").join(&self.project);
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            let mut names: Vec<String> =
                rd.flatten().filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".json").map(str::to_owned)).collect();
            names.sort();
            for name in names {
                let state: Value = fs::read_to_string(dir.join(format!("{name}.json")))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                out.push(json!({"name": name, "current": false, "resourceCount": state["resources"].as_array().map_or(0, Vec::len)}));
            }
        }
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        Ok(())
    }

    pub(crate) fn export(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load()?;
        let secret: Vec<&str> = state["secretOutputs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        // Secrets leave the double encrypted, as they leave Pulumi.
        let mut outputs = serde_json::Map::new();
        for (k, v) in state["outputs"].as_object().cloned().unwrap_or_default() {
            let shown = if secret.contains(&k.as_str()) {
                json!({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": format!("v1:{}", fnv(&v.to_string()))})
            } else {
                v
            };
            outputs.insert(k, shown);
        }
        let mut resources: Vec<Value> = state["resources"].as_array().cloned().unwrap_or_default();
        if let Some(root) = resources.first_mut() {
            root["outputs"] = Value::Object(outputs);
        }
        let mut deployment = json!({
            "manifest": {"time": state["lastUpdate"], "magic": "", "version": VERSION},
            "secrets_providers": {"type": "passphrase", "state": {"salt": state["salt"]}},
            "resources": resources,
        });
        if let Some(pending) = state["pendingOperations"].as_array().filter(|a| !a.is_empty()) {
            deployment["pending_operations"] = Value::Array(pending.clone());
        }
        let doc = json!({"version": 3, "deployment": deployment});
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        match &cli.file {
            Some(path) => {
                // Truncate in place: an existing file keeps its permissions.
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|e| fail(GENERIC, format!("could not open file: {e}")))?;
                writeln!(f, "{text}").map_err(|e| fail(GENERIC, format!("could not write file: {e}")))?;
            }
            None => println!("{text}"),
        }
        Ok(())
    }

    pub(crate) fn output(&self, cli: &Cli) -> Result<(), Fail> {
        let state = self.load_unlocked_secrets()?;
        if self.injected("PULUMI_DOUBLE_FAIL", "output") {
            return Err(fail(GENERIC, "reading stack outputs failed (injected by PULUMI_DOUBLE_FAIL)"));
        }
        let secret: Vec<&str> = state["secretOutputs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut out = serde_json::Map::new();
        for (k, v) in state["outputs"].as_object().cloned().unwrap_or_default() {
            let hide = secret.contains(&k.as_str()) && !cli.show_secrets;
            out.insert(k, if hide { json!("[secret]") } else { v });
        }
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default());
        } else {
            println!("Current stack outputs ({}):", out.len());
            for (k, v) in &out {
                println!("    {k}  {v}");
            }
        }
        Ok(())
    }

    pub(crate) fn require_yes(&self, cli: &Cli) -> Result<(), Fail> {
        if cli.yes || cli.skip_preview {
            Ok(())
        } else {
            Err(fail(CONFIG, "--yes or --skip-preview must be passed in to proceed when running in non-interactive mode"))
        }
    }

    /// Takes the stack's lock, or fails with Pulumi's message naming the holder.
    pub(crate) fn lock(&self) -> Result<PathBuf, Fail> {
        let dir = self.lock_dir();
        let held: Vec<PathBuf> = fs::read_dir(&dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        if !held.is_empty() {
            let mut msg = format!(
                "the stack is currently locked by {} lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
                held.len()
            );
            for p in &held {
                let v: Value = fs::read_to_string(p).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                msg.push_str(&format!(
                    "\n  file://{}: created by {}@{} (pid {}) at {}",
                    p.display(),
                    v["username"].as_str().unwrap_or("?"),
                    v["hostname"].as_str().unwrap_or("?"),
                    v["pid"],
                    v["timestamp"].as_str().unwrap_or("?")
                ));
            }
            return Err(fail(GENERIC, msg));
        }
        fs::create_dir_all(&dir).map_err(|e| fail(GENERIC, format!("creating lock: {e}")))?;
        let path = dir.join(format!("{}.json", uuid()));
        let who = json!({
            "pid": std::process::id(),
            "username": std::env::var("USER").unwrap_or_else(|_| "user".into()),
            "hostname": fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into()),
            "timestamp": rfc3339_now(),
        });
        fs::write(&path, who.to_string()).map_err(|e| fail(GENERIC, format!("creating lock: {e}")))?;
        Ok(path)
    }

    pub(crate) fn cancel(&self) -> Result<(), Fail> {
        // Under --non-interactive, Pulumi asks for no confirmation (cancel.go).
        self.load()?;
        let dir = self.lock_dir();
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            fs::remove_file(e.path()).map_err(|err| fail(GENERIC, format!("removing lock: {err}")))?;
        }
        println!("The currently running update for '{}' has been canceled!", self.stack);
        Ok(())
    }
}
