//! The model read from fixture trees: what is found, what is refused, what is warned about.

use std::fs;

use camino::Utf8Path;

use super::*;

fn write(root: &Utf8Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A small TradAI-shaped tree: a workspace of a shared library, a library using it and a
/// service; two Lambdas; a requirements-only service; the suites' folders.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "pyproject.toml", "[tool.uv.workspace]\nmembers = [\"libs/*\", \"services/api\"]\n");
    write(root, "libs/tradai-common/pyproject.toml", "[project]\nname = \"tradai-common\"\n");
    write(root, "libs/tradai-common/src/tradai_common/__init__.py", "");
    write(root, "libs/tradai-common/src/tradai_common/aws.py", "from . import settings\n");
    write(root, "libs/tradai-common/src/tradai_common/settings.py", "");
    write(
        root,
        "libs/tradai-data/pyproject.toml",
        "[project]\nname = \"Tradai_Data\"\ndependencies = [\"tradai-common>=0.1\", \"boto3\"]\n",
    );
    write(root, "libs/tradai-data/src/tradai_data/__init__.py", "from tradai_common.aws import client\n");
    write(root, "libs/tradai-data/tests/test_x.py", "import tradai_common.settings\n");
    write(root, "services/api/pyproject.toml", "[project]\nname = \"tradai-api\"\ndependencies = [\"tradai-data\"]\n");
    write(root, "services/api/Dockerfile", "FROM x\n");
    write(root, "services/api/src/api/__init__.py", "import tradai_data\n");
    write(root, "services/mlflow/Dockerfile", "FROM x\n");
    write(root, "services/mlflow/requirements.txt", "mlflow==2\n");
    write(root, "lambdas/base/Dockerfile", "FROM x\n");
    for l in ["health-check", "dlq_redrive"] {
        write(root, &format!("lambdas/{l}/Dockerfile"), "FROM x\n");
        write(root, &format!("lambdas/{l}/handler.py"), "from tradai_common import aws\n");
    }
    write(root, "lambdas/__pycache__/x.pyc", "");
    write(root, "lambdas/.pytest_cache/x", "");
    write(root, "tests/integration/test_it.py", "import tradai_data\n");
    write(root, "tests/perf/test_p.py", "");
    write(root, "infra/pyproject.toml", "[project]\nname = \"infra\"\n");
    dir
}

fn load(dir: &tempfile::TempDir) -> Result<Repository, Error> {
    Repository::load(Utf8Path::from_path(dir.path()).unwrap())
}

#[test]
fn a_fixture_tree_is_read_whole() {
    let dir = fixture();
    let repo = load(&dir).unwrap();
    assert!(repo.warnings.is_empty(), "{:?}", repo.warnings);

    let members: Vec<(&str, &str, Option<&str>)> =
        repo.members.iter().map(|m| (m.name.as_str(), m.dir.as_str(), m.project.as_deref())).collect();
    assert_eq!(
        members,
        [
            ("common", "libs/tradai-common", Some("tradai-common")),
            ("data", "libs/tradai-data", Some("Tradai_Data")),
            ("api", "services/api", Some("tradai-api"))
        ]
    );
    assert_eq!(repo.member("data").unwrap().dependencies, ["tradai-common", "boto3"]);
    assert_eq!(repo.member("common").unwrap().modules, ["tradai_common"]);
    assert_eq!(repo.shared_lib_dir(), "libs/tradai-common");

    assert_eq!(repo.lambda_names(), ["dlq_redrive", "health-check"]);
    let hc = repo.lambda("health-check").unwrap();
    assert_eq!(hc.image, "tradai/lambda-health-check");
    assert_eq!((hc.context.dir.as_str(), hc.context.dockerfile.as_str()), ("lambdas/health-check", "lambdas/health-check/Dockerfile"));
    assert_eq!(repo.lambda_base.dockerfile, "lambdas/base/Dockerfile");

    assert_eq!(repo.service_names(), ["api", "mlflow"]);
    assert_eq!(repo.service("api").unwrap().image, "tradai/api");
    assert_eq!(
        repo.service("api").unwrap().source,
        Some(ServiceSource::Workspace {
            project: "tradai-api".into(),
            members: vec!["libs/tradai-common".into(), "libs/tradai-data".into(), "services/api".into()]
        }),
        "a service is built from exactly the members it depends on, transitively"
    );
    assert_eq!(repo.service("mlflow").unwrap().source, Some(ServiceSource::Requirements("services/mlflow/requirements.txt".into())));

    let suites: Vec<(&str, &str, Option<u8>)> = repo.suites.iter().map(|s| (s.name.as_str(), s.dir.as_str(), s.coverage)).collect();
    assert_eq!(
        suites,
        [
            ("common", "libs/tradai-common", Some(60)),
            ("data", "libs/tradai-data", Some(60)),
            ("api", "services/api", Some(60)),
            ("integration", "tests/integration", Some(0)),
            ("lambdas", "lambdas", Some(60)),
            ("perf", "tests/perf", None),
            ("infra", "infra", None),
        ],
        "no contract suite: tests/contract does not exist"
    );
    assert_eq!(repo.suite("infra").unwrap().uv_project.as_deref(), Some("infra"));
    let matrix: Vec<&str> = repo.matrix().map(|s| s.name.as_str()).collect();
    assert_eq!(matrix, ["common", "data", "api", "integration"]);
}

#[test]
fn imports_are_read_on_first_use() {
    let dir = fixture();
    let repo = load(&dir).unwrap();
    let imports = repo.imports().unwrap();
    let deps = |n: &str| imports.packages[n].deps.iter().cloned().collect::<Vec<_>>();
    assert_eq!(deps("data"), ["common"], "declared and imported");
    assert_eq!(deps("api"), ["data"], "the normalised declaration names tradai-data");
    assert_eq!(deps("integration"), ["data"], "imported only");
    assert_eq!(imports.transitive_deps("api").into_iter().collect::<Vec<_>>(), ["common", "data"]);
    let shared = imports.shared.as_ref().unwrap();
    assert_eq!(shared.import_name, "tradai_common");
    assert_eq!(shared.module_of("src/tradai_common/aws.py"), Some("tradai_common.aws"));
    assert!(imports.packages["data"].shared_src.contains("tradai_common.aws"));
    assert!(!imports.packages["data"].shared_src.contains("tradai_common.settings"), "only its tests import settings");
    assert!(imports.shared_watch("api").contains("tradai_common.aws"), "through the source of tradai-data");
    assert!(imports.lambda_shared_imports.contains("tradai_common.aws"));
    assert!(std::ptr::eq(imports, repo.imports().unwrap()), "computed once");
}

#[test]
fn a_folder_whose_name_cannot_be_an_image_is_an_error_naming_it() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "lambdas/Bad Name/Dockerfile", "FROM x\n");
    write(root, "services/Api.v2/Dockerfile", "FROM x\n");
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("lambdas/Bad Name: `Bad Name` is not a valid name"), "{e}");
    assert!(e.contains("services/Api.v2: `Api.v2` is not a valid name"), "every offender at once: {e}");
    assert!(e.contains("rename the folder"), "{e}");
}

#[test]
fn a_lambda_with_a_handler_and_no_dockerfile_is_an_error() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "lambdas/half-added/handler.py", "");
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("without a Dockerfile: half-added") && e.contains("add lambdas/<name>/Dockerfile"), "{e}");
}

#[test]
fn two_folders_that_would_publish_one_image_are_an_error() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "services/lambda-health-check/Dockerfile", "FROM x\n");
    write(root, "services/python-base/Dockerfile", "FROM x\n");
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("lambdas/health-check and services/lambda-health-check would all be the image tradai/lambda-health-check"), "{e}");
    assert!(e.contains("the Debian stand-in base and services/python-base would all be the image tradai/python-base"), "{e}");
}

#[test]
fn a_lambda_name_too_long_for_its_function_is_an_error() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let long = "a".repeat(60);
    write(root, &format!("lambdas/{long}/Dockerfile"), "FROM x\n");
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains(&format!("tradai-{long}-staging")) && e.contains("shorter name"), "{e}");
}

#[test]
fn folders_that_are_no_image_are_warned_about() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "lambdas/shared/util.py", "");
    write(root, "services/notes/README.md", "");
    let repo = load(&dir).unwrap();
    assert_eq!(repo.lambda_names(), ["dlq_redrive", "health-check"]);
    assert_eq!(
        repo.warnings,
        [
            "lambdas/shared/ has no Dockerfile and no handler.py: it is not a Lambda function and is not built",
            "services/notes/ has no Dockerfile: it is not a service image and is not built"
        ]
    );
}

#[test]
fn a_service_with_no_python_source_loads_and_says_so() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "services/web/Dockerfile", "FROM x\n");
    let repo = load(&dir).unwrap();
    assert_eq!(repo.service("web").unwrap().source, None);
}

#[test]
fn names_come_from_the_deployment_facts() {
    let dir = fixture();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    write(root, "libs/acme-x/pyproject.toml", "[project]\nname = \"acme-x\"\n");
    write(root, "pyproject.toml", "[tool.uv.workspace]\nmembers = [\"libs/*\"]\n");
    let facts =
        Deployment::parse("project = \"acme\"\nenvironments = [\"dev\"]\n[trading-services]\n[consolidated-ec2]\ndev = false\n").unwrap();
    let facts: &'static Deployment = Box::leak(Box::new(facts));
    let repo = Repository::load_with(root, facts).unwrap();
    assert_eq!(repo.lambda("health-check").unwrap().image, "acme/lambda-health-check");
    assert_eq!(repo.service("api").unwrap().image, "acme/api");
    assert_eq!(repo.names().lambda_base_image(), "acme/lambda-base");
    let members: Vec<&str> = repo.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, ["x", "tradai-common", "tradai-data"], "the matrix name drops this project's prefix only");
}

#[test]
fn a_repository_without_lambdas_or_services_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let repo = load(&dir).unwrap();
    assert!(repo.lambdas.is_empty() && repo.services.is_empty() && repo.members.is_empty() && repo.suites.is_empty());
    assert_eq!(repo.shared_lib_dir(), "libs/tradai-common");
}
