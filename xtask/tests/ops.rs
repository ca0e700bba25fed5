//! The operations commands (ECS, Auto Scaling, Lambda image check, CodeArtifact login)
//! run as the real binary against moto on loopback, started and stopped by each test.

#[path = "support/moto.rs"]
mod moto;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use moto::Moto;
use support::repo_lambdas;

fn fixture() -> tempfile::TempDir {
    support::layout_repo()
}

fn xtask(root: &Path, moto: Option<&Moto>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).arg("--root").arg(root);
    match moto {
        Some(m) => {
            m.configure(&mut c);
        }
        None => {
            c.env_remove("AWS_PROFILE").env_remove("AWS_ENDPOINT_URL").env("AWS_EC2_METADATA_DISABLED", "true");
        }
    }
    c.output().expect("xtask runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `error:` line of a failed run, asserting it is the only one and a single line.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure, got success:\n{}", stderr(o));
    let text = stderr(o);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{text}");
    assert!(text.trim_end().ends_with(errors[0]), "the error is the last line:\n{text}");
    errors[0].to_owned()
}

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Cluster tradai-dev with the 4 API services (backend twice registered, so revision 2)
/// and the 2 trading services; `desired` is each service's desired count.
fn seed_ecs(m: &Moto, env: &str, services: &[(&str, i32)]) {
    let list: Vec<String> = services.iter().map(|(s, d)| format!("(\"{s}\", {d})")).collect();
    m.seed(&format!(
        r#"
ecs = boto3.client("ecs")
ecs.create_cluster(clusterName="tradai-{env}")
for svc, desired in [{list}]:
    name = f"tradai-{{svc}}-{env}"
    image = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/tradai/" + ("strategy-service" if "trading" in svc else svc.replace("-api", "")) + "@{DIGEST_A}"
    revisions = 2 if svc == "backend-api" else 1
    for _ in range(revisions):
        ecs.register_task_definition(family=name, containerDefinitions=[{{"name": svc, "image": image, "memory": 512}}])
    ecs.create_service(cluster="tradai-{env}", serviceName=name, taskDefinition=name, desiredCount=desired)
"#,
        list = list.join(", ")
    ));
}

/// Primary deployment id per service name.
fn primary_ids(m: &Moto, env: &str, names: &[&str]) -> serde_json::Value {
    let out = m.seed(&format!(
        r#"
ecs = boto3.client("ecs")
names = {names:?}
svcs = ecs.describe_services(cluster="tradai-{env}", services=[f"tradai-{{n}}-{env}" for n in names])["services"]
print(json.dumps({{s["serviceName"]: [d["id"] for d in s["deployments"] if d["status"] == "PRIMARY"][0] for s in svcs}}))
"#
    ));
    serde_json::from_str(out.trim()).unwrap()
}

const ALL_SERVICES: &[(&str, i32)] =
    &[("backend-api", 1), ("data-collection", 1), ("strategy-service", 1), ("mlflow", 1), ("dry-run-trading", 1), ("live-trading", 1)];

#[test]
fn ecs_force_deploy_backend_starts_a_new_deployment_and_reports_its_end() {
    let m = Moto::start();
    let root = fixture();
    seed_ecs(&m, "dev", ALL_SERVICES);
    let before = primary_ids(&m, "dev", &["backend-api", "mlflow"]);

    let out = xtask(root.path(), Some(&m), &["ecs-force-deploy", "backend", "--poll-interval", "0.2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let after = primary_ids(&m, "dev", &["backend-api", "mlflow"]);
    let new_id = after["tradai-backend-api-dev"].as_str().unwrap();
    assert_ne!(before["tradai-backend-api-dev"], after["tradai-backend-api-dev"], "a new deployment was started");
    assert_eq!(before["tradai-mlflow-dev"], after["tradai-mlflow-dev"], "other services are untouched");
    assert!(err.contains(&format!("started deployment {new_id} of tradai-backend-api-dev (task definition tradai-backend-api-dev:2)")), "{err}");
    assert!(err.contains(&format!("deployed tradai-backend-api-dev: deployment {new_id} completed")), "{err}");
    assert!(m.operations().contains(&"UpdateService".to_owned()));
}

#[test]
fn ecs_status_shows_every_service_with_revision_digest_and_state() {
    let m = Moto::start();
    let root = fixture();
    seed_ecs(&m, "prod", ALL_SERVICES);
    let out = xtask(root.path(), Some(&m), &["ecs-status", "--env", "prod", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ECS cluster tradai-prod (6 services"), "{err}");
    for (s, _) in ALL_SERVICES {
        let line = err.lines().find(|l| l.starts_with(&format!("tradai-{s}-prod "))).unwrap_or_else(|| panic!("no row for {s}:\n{err}"));
        assert!(line.contains("sha256:aaaaaaaaaaaa") && line.contains("COMPLETED"), "{line}");
    }
    assert!(err.lines().any(|l| l.starts_with("tradai-backend-api-prod ") && l.contains("tradai-backend-api-prod:2")), "{err}");
    assert!(!err.contains("not in the cluster"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 6);
    assert_eq!(v["services"][0]["images"][0]["digest"], DIGEST_A);
}

#[test]
fn ecs_force_deploy_all_redeploys_the_trading_services_and_skips_the_consolidated_ones() {
    let m = Moto::start();
    let root = fixture();
    // dev as the compute stack builds it: only the trading services are ECS services.
    seed_ecs(&m, "dev", &[("dry-run-trading", 1), ("live-trading", 1)]);
    let before = primary_ids(&m, "dev", &["dry-run-trading", "live-trading"]);
    let out = xtask(root.path(), Some(&m), &["ecs-force-deploy-all", "--poll-interval", "0.2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let after = primary_ids(&m, "dev", &["dry-run-trading", "live-trading"]);
    for n in ["tradai-dry-run-trading-dev", "tradai-live-trading-dev"] {
        assert_ne!(before[n], after[n], "{n} redeployed");
        assert!(err.contains(&format!("deployed {n}: deployment")), "{err}");
    }
    assert!(err.contains("skipped  tradai-strategy-service-dev: dev runs strategy-service on the consolidated EC2 host"), "{err}");

    // A single API service in dev says where it runs instead.
    let out = xtask(root.path(), Some(&m), &["ecs-force-deploy", "backend"]);
    let e = error_line(&out);
    assert!(e.contains("tradai-backend-api-dev is not an ECS service in dev") && e.contains("`cargo xtask asg-refresh --env dev`"), "{e}");

    // prod has no consolidated host: a missing trading service fails before anything starts.
    seed_ecs(&m, "prod", &[("strategy-service", 1), ("live-trading", 1)]);
    let before = primary_ids(&m, "prod", &["strategy-service", "live-trading"]);
    let out = xtask(root.path(), Some(&m), &["ecs-force-deploy-all", "--env", "prod", "--yes-prod"]);
    let e = error_line(&out);
    assert!(e.contains("tradai-dry-run-trading-prod do not exist in cluster tradai-prod") && e.contains("infra-up compute prod"), "{e}");
    assert_eq!(before, primary_ids(&m, "prod", &["strategy-service", "live-trading"]), "nothing was redeployed");
}

#[test]
fn a_deployment_that_does_not_settle_times_out_with_its_state() {
    let m = Moto::start();
    let root = fixture();
    // moto runs 1 task per service: a service that wants 2 never completes its rollout.
    seed_ecs(&m, "staging", &[("live-trading", 2)]);
    let started = std::time::Instant::now();
    let out = xtask(root.path(), Some(&m), &["ecs-force-deploy", "live-trading", "--env", "staging", "--timeout", "2", "--poll-interval", "0.3"]);
    let e = error_line(&out);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "bounded wait");
    assert!(e.contains("tradai-live-trading-staging did not settle within 2s") && e.contains("ecs-status --env staging"), "{e}");
    let err = stderr(&out);
    assert!(err.contains("timed out tradai-live-trading-staging: deployment") && err.contains("1/2 running"), "{err}");
}

#[test]
fn asg_refresh_starts_a_refresh_and_reports_it_and_asg_status_shows_it() {
    let m = Moto::start();
    let root = fixture();
    m.seed(
        r#"
ec2 = boto3.client("ec2")
ec2.create_launch_template(LaunchTemplateName="tradai-consolidated-dev", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"})
boto3.client("autoscaling").create_auto_scaling_group(AutoScalingGroupName="tradai-consolidated-dev",
    LaunchTemplate={"LaunchTemplateName": "tradai-consolidated-dev", "Version": "$Latest"},
    MinSize=1, MaxSize=2, DesiredCapacity=1, AvailabilityZones=["eu-central-1a"])
"#,
    );
    let out = xtask(root.path(), Some(&m), &["asg-refresh", "--poll-interval", "0.2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let id = err.lines().find_map(|l| l.strip_prefix("started instance refresh ")).and_then(|l| l.split(' ').next()).expect("refresh id").to_owned();
    assert!(err.contains("of tradai-consolidated-dev (1 instance(s); min healthy 100%, max healthy 200%)"), "{err}");
    assert!(err.contains("refreshing tradai-consolidated-dev: InProgress 50%"), "progress lines when not on a terminal:\n{err}");
    assert!(err.contains(&format!("refreshed tradai-consolidated-dev: instance refresh {id} Successful")), "{err}");
    let seen = m.seed(
        "r = boto3.client('autoscaling').describe_instance_refreshes(AutoScalingGroupName='tradai-consolidated-dev')['InstanceRefreshes']\nprint(r[0]['InstanceRefreshId'], r[0]['Preferences'])",
    );
    assert!(seen.starts_with(&id) && seen.contains("'MinHealthyPercentage': 100") && seen.contains("'MaxHealthyPercentage': 200"), "{seen}");

    let out = xtask(root.path(), Some(&m), &["asg-status"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Auto Scaling group tradai-consolidated-dev: desired 1 (min 1, max 2), launch template tradai-consolidated-dev:$Latest"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("i-") && l.contains("InService") && l.contains("Healthy")), "{err}");
    assert!(err.lines().any(|l| l.starts_with(&id) && l.contains("Successful") && l.contains("100%")), "{err}");
}

#[test]
fn a_failed_refresh_and_a_missing_group_are_one_line_errors() {
    let m = Moto::start();
    let root = fixture();
    m.seed(
        r#"
boto3.client("ec2").create_launch_template(LaunchTemplateName="tpl", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"})
boto3.client("autoscaling").create_auto_scaling_group(AutoScalingGroupName="tradai-consolidated-staging",
    LaunchTemplate={"LaunchTemplateName": "tpl", "Version": "1"}, MinSize=1, MaxSize=1, DesiredCapacity=1,
    AvailabilityZones=["eu-central-1a"], Tags=[{"Key": "xtask-test-refresh", "Value": "fail", "PropagateAtLaunch": False}])
"#,
    );
    let out = xtask(root.path(), Some(&m), &["asg-refresh", "--env", "staging", "--poll-interval", "0.1"]);
    let e = error_line(&out);
    assert!(e.contains("the instance refresh of tradai-consolidated-staging ended Failed: Instance failed to reach a healthy state"), "{e}");

    let out = xtask(root.path(), Some(&m), &["asg-refresh"]);
    assert_eq!(
        error_line(&out),
        "error: Auto Scaling group tradai-consolidated-dev does not exist; it is created by the compute stack: `cargo xtask infra-up compute dev`"
    );
    let out = xtask(root.path(), Some(&m), &["asg-status", "--env", "prod"]);
    assert!(error_line(&out).contains("prod has no consolidated EC2 group"));
}

/// A distinct manifest per repository, so each digest is its own.
fn seed_lambda_images(m: &Moto, present: &[String], without_image: &[String]) -> serde_json::Value {
    let out = m.seed(&format!(
        r#"
ecr = boto3.client("ecr")
digests = {{}}
for name in {present:?}:
    repo = "tradai/lambda-" + name
    ecr.create_repository(repositoryName=repo)
    manifest = json.dumps({{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:" + name.encode().hex().ljust(64, "0")[:64]}}, "layers": []}})
    digests[repo] = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="latest")["image"]["imageId"]["imageDigest"]
for name in {without_image:?}:
    ecr.create_repository(repositoryName="tradai/lambda-" + name)
print(json.dumps(digests))
"#
    ));
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn lambda_check_images_lists_every_lambda_with_one_call_per_repository() {
    let m = Moto::start();
    let root = fixture();
    let lambdas = repo_lambdas();
    assert_eq!(lambdas.len(), 17, "the seeds' 17 Lambda functions");
    let (missing, present) = (lambdas[3].clone(), [&lambdas[..3], &lambdas[4..]].concat());
    let digests = seed_lambda_images(&m, &present, std::slice::from_ref(&missing));

    let out = xtask(root.path(), Some(&m), &["lambda-check-images", "--json"]);
    let e = error_line(&out);
    assert_eq!(
        e,
        format!("error: 1 of 17 Lambda images are missing from ECR for tag latest: {missing}; build and push the images with `cargo xtask lambda-bootstrap --registry ecr`")
    );
    let err = stderr(&out);
    for name in &present {
        let repo = format!("tradai/lambda-{name}");
        let row = err.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no row for {name}:\n{err}"));
        assert!(row.contains(&repo) && row.contains("present") && row.contains(digests[&repo].as_str().unwrap()), "{row}");
    }
    assert!(err.lines().any(|l| l.starts_with(&format!("{missing} ")) && l.contains("missing")), "{err}");
    assert!(err.contains("16 of 17 present (17 BatchGetImage calls, one per repository)"), "{err}");
    let calls: Vec<String> = m.operations();
    assert_eq!(calls.iter().filter(|o| *o == "BatchGetImage").count(), 17, "{calls:?}");
    assert_eq!(calls.len(), 17, "nothing but the batched lookups: {calls:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["images"].as_object().unwrap().len(), 16);
    assert_eq!(v["manifest"]["images"][format!("tradai/lambda-{}", present[0])], digests[format!("tradai/lambda-{}", present[0])]);

    // Once the image is there, the check passes; a tag nobody pushed fails for all.
    m.seed(&format!(
        "ecr = boto3.client('ecr')\nm = json.dumps({{'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json', 'config': {{'mediaType': 'x', 'size': 1, 'digest': 'sha256:' + 'b'*64}}, 'layers': []}})\necr.put_image(repositoryName='tradai/lambda-{missing}', imageManifest=m, imageTag='latest')"
    ));
    let out = xtask(root.path(), Some(&m), &["lambda-check-images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("17 of 17 present"));
    let out = xtask(root.path(), Some(&m), &["lambda-check-images", "--tag", "v9.9.9"]);
    assert!(error_line(&out).contains("17 of 17 Lambda images are missing from ECR for tag v9.9.9"));
}

#[test]
fn missing_repositories_are_named_with_the_stack_that_creates_them() {
    let m = Moto::start();
    let root = fixture();
    let lambdas = repo_lambdas();
    seed_lambda_images(&m, &lambdas[1..], &[]);
    let out = xtask(root.path(), Some(&m), &["lambda-check-images", "--env", "staging"]);
    let e = error_line(&out);
    assert!(
        e.contains(&format!("the ECR repositories tradai/lambda-{} do not exist: create them with `cargo xtask infra-up persistent staging`, then", lambdas[0])),
        "{e}"
    );
}

#[test]
fn codeartifact_login_reports_an_endpoint_that_does_not_serve_codeartifact_in_one_line() {
    // moto has no CodeArtifact: this is the path of an endpoint that answers, but not as
    // CodeArtifact does. Nothing may be written.
    let m = Moto::start();
    let root = fixture();
    let config = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["codeartifact-login", "dev", "--root"]).arg(root.path()).env("XDG_CONFIG_HOME", config.path());
    m.configure(&mut c);
    let out = c.output().unwrap();
    let e = error_line(&out);
    assert!(e.starts_with("error: CodeArtifact GetAuthorizationToken failed (HTTP 500)"), "{e}");
    assert_eq!(std::fs::read_dir(config.path()).unwrap().count(), 0, "no file written");
}

#[test]
fn bad_input_and_missing_configuration_are_one_line_errors_with_the_fix() {
    let root = fixture();
    let r = root.path();
    let e = error_line(&xtask(r, None, &["ecs-force-deploy", "frontend"]));
    assert_eq!(e, "error: unknown service `frontend`; valid services: backend, data-collection, dry-run-trading, live-trading, mlflow, strategy-service");

    // prod without confirmation stops before any AWS or registry access (none is configured).
    for args in [&["ecs-force-deploy", "backend", "--env", "prod"][..], &["ecs-force-deploy-all", "--env", "prod"], &["asg-refresh", "--env", "prod"], &["publish-all-libs", "prod"], &["rollback", "v1.0.0", "--env", "prod"]] {
        let e = error_line(&xtask(r, None, args));
        assert!(e.contains("in prod without confirmation; pass --yes-prod"), "{args:?}: {e}");
    }

    let no_files = [("AWS_CONFIG_FILE", "/nonexistent/c"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/k")];
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(args).arg("--root").arg(r);
        for k in ["AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"] {
            c.env_remove(k);
        }
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in no_files.iter().chain(extra) {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let e = error_line(&run(&[], &["ecs-status"]));
    assert!(e.starts_with("error: no AWS region is configured; set AWS_REGION"), "{e}");
    let e = error_line(&run(&[("AWS_REGION", "eu-central-1")], &["asg-status"]));
    assert!(e.starts_with("error: no usable AWS credentials (") && e.contains("set AWS_PROFILE"), "{e}");

    // infra/.env supplies the region (only AWS_PROFILE and AWS_REGION are read from it).
    std::fs::create_dir_all(r.join("infra")).unwrap();
    std::fs::write(r.join("infra/.env"), "PULUMI_CONFIG_PASSPHRASE=do-not-print-me\nAWS_REGION=eu-central-1\n").unwrap();
    let out = run(&[], &["ecs-status"]);
    let e = error_line(&out);
    assert!(e.starts_with("error: no usable AWS credentials ("), "{e}");
    assert!(!stderr(&out).contains("do-not-print-me"));
    std::fs::remove_file(r.join("infra/.env")).unwrap();

    // A closed port: refused quickly, after the SDK's bounded retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let creds = [("AWS_REGION", "eu-central-1"), ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_ENDPOINT_URL", endpoint.as_str())];
    let started = std::time::Instant::now();
    let e = error_line(&run(&creds, &["lambda-check-images"]));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(e, format!("error: cannot reach the ECR API at {endpoint} (Connection refused (os error 111)); check the network and proxy, or AWS_ENDPOINT_URL if it is set"));
}

#[test]
fn credentials_aws_rejects_are_one_line_with_the_fix() {
    // moto checking every request against its IAM: the dummy keys are unknown to it, as
    // expired or revoked keys are to AWS.
    let m = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let root = fixture();
    let out = xtask(root.path(), Some(&m), &["ecs-status"]);
    let e = error_line(&out);
    assert!(e.starts_with("error: AWS rejected the credentials for ECS ListServices ("), "{e}");
    assert!(e.ends_with("refresh them (`aws sso login`, or new access keys) and retry"), "{e}");
    assert!(!stderr(&out).contains("testing"), "no key material in the output");
}
