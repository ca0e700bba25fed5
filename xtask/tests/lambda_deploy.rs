//! Publishing to ECR and Stage 5 (pointing Lambda functions at new images), against moto
//! (ECR and Lambda APIs) and a real registry on loopback.

mod support;
#[path = "support/moto.rs"]
mod moto;

use std::process::Output;

use moto::Moto;
use support::registry::TestRegistry;
use support::*;

fn run(f: &Fixture, m: &Moto, args: &[&str]) -> Output {
    let mut cmd = f.command(args);
    m.configure(&mut cmd);
    cmd.output().unwrap()
}

fn function_image(m: &Moto, function: &str) -> String {
    m.seed(&format!(
        "print(boto3.client('lambda').get_function(FunctionName='{function}')['Code']['ImageUri'])"
    ))
    .trim()
    .to_owned()
}

#[test]
fn update_functions_repoints_only_the_functions_whose_digest_changed() {
    let reg = TestRegistry::start();
    let m = Moto::start();
    let f = Fixture::new(&["alpha", "beta"]);
    m.seed(
        "iam = boto3.client('iam')\n\
         role = iam.create_role(RoleName='lambda', AssumeRolePolicyDocument='{}')['Role']['Arn']\n\
         lam = boto3.client('lambda')\n\
         for n in ['alpha', 'beta']:\n    \
             lam.create_function(FunctionName=f'tradai-{n}-dev', PackageType='Image', Role=role, Code={'ImageUri': 'old/tradai/lambda-' + n + ':v0'})\n",
    );

    let first = run(&f, &m, &["lambda-bootstrap", "--registry", &reg.host, "--update-functions", "--env", "dev", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let actions: Vec<(&str, &str)> = v["functions"].as_array().unwrap().iter().map(|f| (f["function"].as_str().unwrap(), f["action"].as_str().unwrap())).collect();
    assert_eq!(actions, [("tradai-alpha-dev", "updated"), ("tradai-beta-dev", "updated")]);
    for name in ["alpha", "beta"] {
        let digest = reg.digest(&format!("tradai/lambda-{name}"), "latest").unwrap();
        assert_eq!(function_image(&m, &format!("tradai-{name}-dev")), format!("{}/tradai/lambda-{name}@{digest}", reg.host), "pinned by digest");
    }

    f.append("lambdas/alpha/handler.py", "# v2\n");
    let second = run(&f, &m, &["lambda-bootstrap", "--registry", &reg.host, "--update-functions", "--env", "dev", "--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let actions: Vec<(&str, &str)> = v["functions"].as_array().unwrap().iter().map(|f| (f["function"].as_str().unwrap(), f["action"].as_str().unwrap())).collect();
    assert_eq!(actions, [("tradai-alpha-dev", "updated"), ("tradai-beta-dev", "unchanged")]);
    let alpha = reg.digest("tradai/lambda-alpha", "latest").unwrap();
    assert!(function_image(&m, "tradai-alpha-dev").ends_with(&alpha));

    // prod needs confirmation, before anything is built or changed.
    let prod = run(&f, &m, &["lambda-bootstrap", "--registry", &reg.host, "--update-functions", "--env", "prod"]);
    assert!(!prod.status.success());
    assert!(stderr(&prod).contains("pass --yes-prod"), "{}", stderr(&prod));
    // A missing function is named with its fix, and nothing else is touched.
    f.add_lambda("gamma");
    let missing = run(&f, &m, &["lambda-bootstrap", "--registry", &reg.host, "--update-functions", "--env", "dev", "--json"]);
    assert!(!missing.status.success());
    let err = stderr(&missing);
    assert!(err.contains("tradai-gamma-dev"), "{err}");
}

#[test]
fn a_fresh_machine_against_ecr_builds_nothing_and_only_adds_tags() {
    let m = Moto::start();
    let f = Fixture::new(&["alpha", "beta"]);
    // What the plan would build, with its input hashes, then an ECR that holds all of it.
    let dry = f.xtask(&["lambda-bootstrap", "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let targets = parse_targets(&dry.stdout);
    let mut seed = String::from("ecr = boto3.client('ecr')\nimport hashlib\n");
    for (id, _, t) in targets.iter().filter(|(_, _, t)| t["kind"] == "image") {
        let tag = format!("inputs-{}", &t["input_hash"].as_str().unwrap()[..32]);
        seed.push_str(&format!(
            "ecr.create_repository(repositoryName='{id}')\n\
             m = json.dumps({{'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json', 'config': {{'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': 1, 'digest': 'sha256:' + hashlib.sha256(b'{id}').hexdigest()}}, 'layers': []}})\n\
             ecr.put_image(repositoryName='{id}', imageManifest=m, imageTag='{tag}', imageManifestMediaType='application/vnd.docker.distribution.manifest.v2+json')\n"
        ));
    }
    m.seed(&seed);

    let out = run(&f, &m, &["lambda-bootstrap", "--registry", "ecr", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = parse_targets(&out.stdout);
    assert!(with_status(&t, "built").is_empty(), "{t:?}");
    for (id, _, v) in t.iter().filter(|(_, _, v)| v["kind"] == "image") {
        assert!(v["reason"].as_str().unwrap().starts_with("found in registry 123456789012.dkr.ecr.eu-central-1.amazonaws.com"), "{id}: {}", v["reason"]);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = v["version"].as_str().unwrap();
    assert!(v["published"].as_array().unwrap().iter().all(|p| p["action"] == "tagged"));
    let tags = m.seed(
        "ecr = boto3.client('ecr')\nfor r in ['tradai/lambda-base', 'tradai/lambda-alpha', 'tradai/lambda-beta']:\n    \
         print(r, sorted(t for i in ecr.list_images(repositoryName=r)['imageIds'] for t in [i.get('imageTag')] if t))",
    );
    for line in tags.lines() {
        assert!(line.contains(version) && line.contains("'latest'"), "version and latest tags added by PutImage: {line}");
    }
    // ECR lookups are batched: one BatchGetImage per repository, never one per tag.
    let ops = m.operations();
    let batch = ops.iter().filter(|o| *o == "BatchGetImage").count();
    assert_eq!(batch, 3, "one BatchGetImage per repository for the whole run: {ops:?}");
    assert!(ops.contains(&"PutImage".to_owned()));
    // No credential ever reaches the output.
    assert!(!stderr(&out).contains("testing") && !String::from_utf8_lossy(&out.stdout).contains("testing"));
}

#[test]
fn service_ecr_login_hands_the_token_to_docker_on_stdin_only() {
    let m = Moto::start();
    let f = Fixture::new(&["alpha"]);
    let password = m.seed(
        "import base64\nt = boto3.client('ecr').get_authorization_token()['authorizationData'][0]['authorizationToken']\nprint(base64.b64decode(t).decode().split(':', 1)[1])",
    );
    let password = password.trim();
    assert!(!password.is_empty());
    // The machine reaches no ECR host, so docker's login fails; what matters is what the
    // failure shows and what it does not.
    let out = run(&f, &m, &["service-ecr-login", "-vv"]);
    let err = stderr(&out);
    assert!(err.contains("log in to 123456789012.dkr.ecr.eu-central-1.amazonaws.com"), "{err}");
    assert!(err.contains("--password-stdin"), "the logged command line shows the token goes on stdin: {err}");
    assert!(!err.contains(password) && !String::from_utf8_lossy(&out.stdout).contains(password), "the token never appears");
}
