//! The facade against moto on loopback (the xtask tests' harness, shared by path):
//! ECR login token, batched lookups, retagging without pulls, repository presence, and
//! Lambda image updates.

#[path = "../../../xtask/tests/support/moto.rs"]
mod moto;

use moto::Moto;
use xtask_aws::{Aws, AwsSettings, ResourceKind};

/// Connects the facade to `m` through the standard chain (environment variables only).
fn connect(m: &Moto) -> Aws {
    for k in ["AWS_PROFILE", "AWS_SESSION_TOKEN"] {
        // SAFETY: nextest runs each test in its own process, and this test has no other
        // thread reading the environment while it is changed.
        unsafe { std::env::remove_var(k) };
    }
    for (k, v) in m.env() {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
    Aws::connect(&AwsSettings { env: Some("dev".into()), ..AwsSettings::default() }).expect("connects to moto")
}

const MANIFEST: &str = r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"}, "layers": []}"#;

#[test]
fn ecr_token_lookups_retags_and_presence() {
    let m = Moto::start();
    m.seed(&format!(
        "ecr = boto3.client('ecr')\necr.create_repository(repositoryName='tradai/lambda-a')\nm = {MANIFEST:?}\nfor t in ['inputs-0', 'inputs-120']:\n    ecr.put_image(repositoryName='tradai/lambda-a', imageManifest=m, imageTag=t)"
    ));
    let aws = connect(&m);

    let token = aws.authorization_token().unwrap();
    assert_eq!(token.registry, "123456789012.dkr.ecr.eu-central-1.amazonaws.com");
    assert_eq!(token.username, "AWS");
    assert!(!token.password.expose().is_empty());
    assert!(!format!("{token:?}").contains(token.password.expose()), "Debug hides the password");
    assert_eq!(aws.registry_host().unwrap(), token.registry);

    // 150 tags: two BatchGetImage calls (100 + 50), both hits found.
    let before = m.operations().len();
    let tags: Vec<String> = (0..150).map(|i| format!("inputs-{i}")).collect();
    let found = aws.batch_get_images("tradai/lambda-a", &tags).unwrap();
    let ops = m.operations();
    assert_eq!(&ops[before..], ["BatchGetImage", "BatchGetImage"]);
    let mut got: Vec<&str> = found.iter().map(|f| f.tag.as_str()).collect();
    got.sort();
    assert_eq!(got, ["inputs-0", "inputs-120"]);
    let digest = found[0].digest.clone();
    assert!(digest.starts_with("sha256:") && found.iter().all(|f| f.digest == digest && f.manifest.contains("schemaVersion")));

    // Retag without pulling: the manifest put again under a new tag keeps its digest;
    // doing it twice is not an error.
    let f = &found[0];
    for _ in 0..2 {
        let d = aws.put_image_tag("tradai/lambda-a", &f.manifest, f.media_type.as_deref(), "v1.2.3").unwrap();
        assert_eq!(d, digest);
    }
    let v = aws.batch_get_images("tradai/lambda-a", &["v1.2.3".into(), "latest".into()]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].tag.as_str(), v[0].digest.as_str()), ("v1.2.3", digest.as_str()));

    let presence = aws.describe_repositories(&["tradai/lambda-a".into(), "tradai/lambda-b".into()]).unwrap();
    assert!(presence.present.contains("tradai/lambda-a") && presence.missing.contains("tradai/lambda-b"));
    assert!(aws.repository_exists("tradai/lambda-a").unwrap() && !aws.repository_exists("tradai/lambda-b").unwrap());

    let e = aws.batch_get_images("tradai/lambda-b", &["latest".into()]).unwrap_err();
    assert!(e.is_not_found(ResourceKind::EcrRepository));
    assert_eq!(e.to_string(), "ECR repository tradai/lambda-b does not exist; it is created by the persistent stack: `cargo xtask infra-up persistent dev`");
}

#[test]
fn lambda_function_image_and_update() {
    let m = Moto::start();
    let uri = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/tradai/lambda-health-check:latest";
    m.seed(&format!(
        r#"
iam = boto3.client("iam")
role = iam.create_role(RoleName="lambda", AssumeRolePolicyDocument=json.dumps({{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": {{"Service": "lambda.amazonaws.com"}}, "Action": "sts:AssumeRole"}}]}}))["Role"]["Arn"]
boto3.client("lambda").create_function(FunctionName="tradai-health-check-dev", Role=role, PackageType="Image", Code={{"ImageUri": "{uri}"}})
"#
    ));
    let aws = connect(&m);
    let image = aws.function_image("tradai-health-check-dev").unwrap().expect("an image function");
    assert_eq!(image.image_uri, uri);
    assert!(image.digest.as_deref().is_some_and(|d| d.starts_with("sha256:")), "{image:?}");

    let pinned = format!("123456789012.dkr.ecr.eu-central-1.amazonaws.com/tradai/lambda-health-check@sha256:{}", "c".repeat(64));
    let wait = std::time::Duration::from_secs(30);
    let poll = std::time::Duration::from_millis(100);
    let update = aws.update_function_image("tradai-health-check-dev", &pinned, wait, poll).unwrap();
    assert_eq!(update.image.image_uri, pinned);
    assert_ne!(update.image.digest, image.digest);
    assert_eq!(aws.function_image("tradai-health-check-dev").unwrap().unwrap().image_uri, pinned);

    let e = aws.update_function_image("tradai-nope-dev", &pinned, wait, poll).unwrap_err();
    assert_eq!(e.to_string(), "Lambda function tradai-nope-dev does not exist; it is created by the compute stack: `cargo xtask infra-up compute dev`");
    assert!(aws.function_image("tradai-nope-dev").unwrap_err().is_not_found(ResourceKind::LambdaFunction));
}

/// Collects everything logged, for the test below.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logging_never_carries_the_registry_token() {
    let m = Moto::start();
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || sink.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    tracing::trace!("capturing");
    let aws = connect(&m);
    let token = aws.authorization_token().unwrap();
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(log.contains("capturing"), "the subscriber records");
    assert!(!log.contains(token.password.expose()), "the password is not logged");
    // The base64 form ECR sends (`AWS:<password>`) is not logged either.
    assert!(!log.contains("QVdTOj"), "the encoded token is not logged");
}
