//! `rollback <tag>` as the real binary against a real OCI registry (Debian's
//! docker-registry) and moto on loopback: the dry run lists every step and changes
//! nothing; the real run re-points `latest`, the Lambda functions, the ECS services and
//! the consolidated group to the tag's digests.

#[path = "support/moto.rs"]
mod moto;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use moto::Moto;
use support::repo_lambdas;
use support::registry::TestRegistry;

const SERVICES: &[&str] = &["backend", "data-collection", "mlflow", "strategy-service"];

fn fixture() -> tempfile::TempDir {
    support::layout_repo()
}

fn repositories() -> Vec<String> {
    let mut r: Vec<String> = repo_lambdas().iter().map(|l| format!("tradai/lambda-{l}")).collect();
    r.extend(SERVICES.iter().map(|s| format!("tradai/{s}")));
    r
}

/// Puts a small image (one config blob, no layers) under `tag`; returns its digest.
fn put_image(reg: &TestRegistry, repo: &str, tag: &str, marker: &str) -> String {
    use sha2::Digest as _;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Labels\":{{\"marker\":\"{marker}\"}}}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}}}}");
    let config_digest = format!("sha256:{}", hex(&sha2::Sha256::digest(config.as_bytes())));
    let start = agent.post(&format!("http://{}/v2/{repo}/blobs/uploads/", reg.host)).send_empty().unwrap();
    assert_eq!(start.status().as_u16(), 202, "start upload to {repo}");
    let location = start.headers().get("Location").unwrap().to_str().unwrap().to_owned();
    let url = if location.starts_with("http") { location } else { format!("http://{}{location}", reg.host) };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = agent.put(&format!("{url}{sep}digest={config_digest}")).header("Content-Type", "application/octet-stream").send(config.as_bytes()).unwrap();
    assert_eq!(put.status().as_u16(), 201, "upload config to {repo}");
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":{},\"digest\":\"{config_digest}\"}},\"layers\":[]}}",
        config.len()
    );
    let resp = agent
        .put(&format!("http://{}/v2/{repo}/manifests/{tag}", reg.host))
        .header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
        .send(manifest.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "put manifest {repo}:{tag}");
    format!("sha256:{}", hex(&sha2::Sha256::digest(manifest.as_bytes())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Functions' image URIs, by name.
fn function_uris(m: &Moto) -> serde_json::Value {
    let out = m.seed(
        "l = boto3.client('lambda')\nprint(json.dumps({f['FunctionName']: l.get_function(FunctionName=f['FunctionName'])['Code']['ImageUri'] for f in l.list_functions()['Functions']}))",
    );
    serde_json::from_str(out.trim()).unwrap()
}

fn primary_ids(m: &Moto) -> serde_json::Value {
    let out = m.seed(
        "ecs = boto3.client('ecs')\nsvcs = ecs.describe_services(cluster='tradai-dev', services=['tradai-dry-run-trading-dev', 'tradai-live-trading-dev'])['services']\nprint(json.dumps({s['serviceName']: [d['id'] for d in s['deployments'] if d['status'] == 'PRIMARY'][0] for s in svcs}))",
    );
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn rollback_dry_run_lists_the_steps_and_a_real_run_repoints_everything() {
    let reg = TestRegistry::start();
    let m = Moto::start();
    let root = fixture();
    let mut v1 = std::collections::BTreeMap::new();
    let mut v2 = std::collections::BTreeMap::new();
    for repo in repositories() {
        v1.insert(repo.clone(), put_image(&reg, &repo, "v1.0.0", &format!("{repo} v1")));
        let d2 = put_image(&reg, &repo, "v2.0.0", &format!("{repo} v2"));
        assert_eq!(put_image(&reg, &repo, "latest", &format!("{repo} v2")), d2);
        v2.insert(repo.clone(), d2);
    }
    // dev as the stacks build it: Lambda functions on v2 by digest, the trading services
    // on ECS, the API services on the consolidated group.
    let functions: Vec<(String, String)> = repo_lambdas().iter().map(|l| (format!("tradai-{l}-dev"), format!("{}/tradai/lambda-{l}@{}", reg.host, v2[&format!("tradai/lambda-{l}")]))).collect();
    m.seed(&format!(
        r#"
iam = boto3.client("iam")
role = iam.create_role(RoleName="lambda", AssumeRolePolicyDocument=json.dumps({{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": {{"Service": "lambda.amazonaws.com"}}, "Action": "sts:AssumeRole"}}]}}))["Role"]["Arn"]
for name, uri in {functions:?}:
    boto3.client("lambda").create_function(FunctionName=name, Role=role, PackageType="Image", Code={{"ImageUri": uri}})
ecs = boto3.client("ecs")
ecs.create_cluster(clusterName="tradai-dev")
for svc in ["dry-run-trading", "live-trading"]:
    ecs.register_task_definition(family=f"tradai-{{svc}}-dev", containerDefinitions=[{{"name": svc, "image": "{host}/tradai/strategy-service:latest", "memory": 512}}])
    ecs.create_service(cluster="tradai-dev", serviceName=f"tradai-{{svc}}-dev", taskDefinition=f"tradai-{{svc}}-dev", desiredCount=1)
boto3.client("ec2").create_launch_template(LaunchTemplateName="tpl", LaunchTemplateData={{"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"}})
boto3.client("autoscaling").create_auto_scaling_group(AutoScalingGroupName="tradai-consolidated-dev", LaunchTemplate={{"LaunchTemplateName": "tpl", "Version": "1"}}, MinSize=1, MaxSize=2, DesiredCapacity=1, AvailabilityZones=["eu-central-1a"])
"#,
        host = reg.host
    ));
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(args).args(["--registry", &reg.host, "--poll-interval", "0.2", "--root"]).arg(root.path());
        m.configure(&mut c);
        c.output().unwrap()
    };

    let functions_before = function_uris(&m);
    let deployments_before = primary_ids(&m);
    let dry = run(&["rollback", "v1.0.0", "--dry-run"]);
    let text = stderr(&dry);
    assert!(dry.status.success(), "{text}");
    assert!(text.contains(&format!("rollback of dev to v1.0.0 (registry {}): 21 of 21 images found under v1.0.0", reg.host)), "{text}");
    let short = |d: &str| d[..19].to_owned();
    for repo in repositories() {
        assert!(text.contains(&format!("tag      {repo}:latest {} -> {}", short(&v2[&repo]), short(&v1[&repo]))), "{repo}:\n{text}");
    }
    for l in repo_lambdas() {
        let uri = format!("{}/tradai/lambda-{l}@{}", reg.host, v1[&format!("tradai/lambda-{l}")]);
        assert!(text.contains(&format!("update   tradai-{l}-dev {} -> {uri}", short(&v2[&format!("tradai/lambda-{l}")]))), "{l}:\n{text}");
    }
    for step in ["redeploy tradai-dry-run-trading-dev", "redeploy tradai-live-trading-dev", "refresh  tradai-consolidated-dev", "note: backend runs on the consolidated EC2 host in dev"] {
        assert!(text.contains(step), "{step}:\n{text}");
    }
    let steps = text.lines().filter(|l| l.trim_start().split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok())).count();
    assert_eq!(steps, 21 + 17 + 2 + 1, "every step numbered:\n{text}");
    // `--json` lists the same steps, the redeploys included, as the build commands do.
    let json = run(&["rollback", "v1.0.0", "--dry-run", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("stdout is one JSON object");
    let listed: Vec<(String, String)> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["action"].as_str().unwrap().to_owned(), s["target"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(listed.len(), steps, "{report}");
    assert_eq!(listed.iter().filter(|(a, _)| a == "tag").count(), 21, "{report}");
    assert_eq!(listed.iter().filter(|(a, _)| a == "update-function").count(), 17, "{report}");
    let redeploys: Vec<&str> = listed.iter().filter(|(a, _)| a == "redeploy").map(|(_, t)| t.as_str()).collect();
    assert_eq!(redeploys, ["tradai-dry-run-trading-dev", "tradai-live-trading-dev", "tradai-consolidated-dev"], "{report}");
    assert!(report["steps"].as_array().unwrap().iter().all(|s| s["reason"].as_str().is_some_and(|r| !r.is_empty())), "{report}");
    assert_eq!(report["notes"][0], "backend runs on the consolidated EC2 host in dev", "{report}");
    // Nothing changed.
    for repo in repositories() {
        assert_eq!(reg.digest(&repo, "latest").as_deref(), Some(v2[&repo].as_str()));
    }
    assert_eq!(function_uris(&m), functions_before);
    assert_eq!(primary_ids(&m), deployments_before);

    let real = run(&["rollback", "v1.0.0"]);
    let text = stderr(&real);
    assert!(real.status.success(), "{text}");
    for repo in repositories() {
        assert_eq!(reg.digest(&repo, "latest").as_deref(), Some(v1[&repo].as_str()), "{repo}:latest");
    }
    let uris = function_uris(&m);
    for l in repo_lambdas() {
        assert_eq!(uris[format!("tradai-{l}-dev")], format!("{}/tradai/lambda-{l}@{}", reg.host, v1[&format!("tradai/lambda-{l}")]));
    }
    let after = primary_ids(&m);
    for s in ["tradai-dry-run-trading-dev", "tradai-live-trading-dev"] {
        assert_ne!(after[s], deployments_before[s], "{s} redeployed");
    }
    assert!(text.contains("refreshed tradai-consolidated-dev: instance refresh") && text.contains("rolled back dev to v1.0.0"), "{text}");

    // Again: everything already points at v1.0.0, so nothing is retagged or updated.
    let again = run(&["rollback", "v1.0.0", "--no-wait"]);
    let text = stderr(&again);
    assert!(again.status.success(), "{text}");
    assert!(!text.contains("tagged   ") && !text.contains("updated  "), "{text}");
    assert_eq!(text.matches("keep     ").count(), 21 + 17, "{text}");
}

#[test]
fn a_tag_the_registry_lacks_and_git_does_not_know_is_one_line() {
    let reg = TestRegistry::start();
    let m = Moto::start();
    let root = fixture();
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["rollback", "v0.0.1", "--registry", &reg.host, "--root"]).arg(root.path());
    m.configure(&mut c);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("rebuild from the sources of v0.0.1 (git worktree) and push: tradai/lambda-"), "the plan names the rebuild:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("and v0.0.1 is not a v* git tag of this repository to rebuild them from"), "{}", errors[0]);
    // Nothing was touched: no latest tag exists afterwards.
    assert_eq!(reg.digest("tradai/backend", "latest"), None);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"]).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rollback_rebuilds_from_the_tag_only_what_the_registry_lacks() {
    let reg = TestRegistry::start();
    let m = Moto::start();
    let f = support::Fixture::new(&["alpha", "beta"]);
    std::fs::write(f.path().join(".gitignore"), "target/\n").unwrap();
    git(f.path(), &["init", "-q"]);
    git(f.path(), &["add", "-A"]);
    git(f.path(), &["commit", "-qm", "v1"]);
    git(f.path(), &["tag", "v1.0.0"]);
    let push = |what: &str| {
        let out = f.xtask(&["lambda-push-all", "--registry", &reg.host, "--json"]);
        assert!(out.status.success(), "{what}: {}", support::stderr(&out));
        support::parse_targets(&out.stdout)
    };
    push("v1.0.0");
    let alpha_v1 = reg.digest("tradai/lambda-alpha", "v1.0.0").expect("alpha v1.0.0 pushed");
    let beta_v1 = reg.digest("tradai/lambda-beta", "v1.0.0").expect("beta v1.0.0 pushed");

    // v2.0.0 changes alpha only; then alpha's v1.0.0 image disappears (a lifecycle policy).
    f.append("lambdas/alpha/handler.py", "# v2\n");
    git(f.path(), &["commit", "-qam", "v2"]);
    git(f.path(), &["tag", "v2.0.0"]);
    push("v2.0.0");
    assert_ne!(reg.digest("tradai/lambda-alpha", "latest").unwrap(), alpha_v1);
    reg.delete("tradai/lambda-alpha", &alpha_v1);
    assert_eq!(reg.digest("tradai/lambda-alpha", "v1.0.0"), None);

    // The dry run shows the rebuild's own steps, planned in a worktree of the tag.
    let mut c = f.command(&["rollback", "v1.0.0", "--registry", &reg.host, "--dry-run"]);
    m.configure(&mut c);
    let out = c.output().unwrap();
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    for step in ["would build the Lambda images of v1.0.0", "would-build tradai/lambda-alpha", "skipped     tradai/lambda-beta (found in registry", "would push     tradai/lambda-alpha:inputs-", "would tag      tradai/lambda-alpha:v1.0.0"] {
        assert!(text.contains(step), "`{step}` missing:\n{text}");
    }
    assert_eq!(reg.digest("tradai/lambda-alpha", "v1.0.0"), None, "a dry run pushes nothing");

    let mut c = f.command(&["rollback", "v1.0.0", "--registry", &reg.host, "--poll-interval", "0.2"]);
    m.configure(&mut c);
    let out = c.output().unwrap();
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 of 2 images found under v1.0.0") && text.contains("rebuild from the sources of v1.0.0 (git worktree) and push: tradai/lambda-alpha"), "{text}");
    let alpha_rebuilt = reg.digest("tradai/lambda-alpha", "v1.0.0").expect("alpha v1.0.0 rebuilt and pushed");
    assert_eq!(reg.digest("tradai/lambda-alpha", "latest").as_deref(), Some(alpha_rebuilt.as_str()));
    assert_eq!(reg.digest("tradai/lambda-beta", "latest").as_deref(), Some(beta_v1.as_str()), "beta's v1.0.0 image is reused as it is");
    assert!(text.contains("skipped  tradai/lambda-beta (found in registry") && text.contains("built    tradai/lambda-alpha"), "only alpha is rebuilt:\n{text}");
    assert!(text.contains("rolled back dev to v1.0.0"), "{text}");
    assert!(text.contains("note: Lambda function tradai-alpha-dev does not exist"), "{text}");
    let worktrees = Command::new("git").args(["worktree", "list"]).current_dir(f.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&worktrees.stdout).lines().count(), 1, "the worktree is removed");
}
