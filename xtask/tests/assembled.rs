//! Images assembled without a daemon, as the real machine builds them: the upstream base
//! lives in a registry (a loopback `docker-registry` plays public.ecr.aws here) and is
//! read from it by digest, never pulled into the engine; pushes mount the layers the
//! registry already holds and upload only the new ones; `--builder docker` and
//! `--explain` say which builder runs.

mod support;

use std::process::Command;

use support::registry::TestRegistry;
use support::*;

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker runs")
}

/// Puts the fixture base into `registry` as `lambda/python:3.11`; returns its pinned reference.
fn upstream_in(registry: &TestRegistry) -> String {
    ensure_fixture_base();
    let tagged = format!("{}/lambda/python:3.11", registry.host);
    assert!(docker(&["tag", FIXTURE_BASE, &tagged]).status.success());
    let push = docker(&["push", &tagged]);
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    // The engine keeps no copy under this name: the build must read the registry.
    assert!(docker(&["rmi", &tagged]).status.success());
    let digest = registry.digest("lambda/python", "3.11").expect("the registry holds the base");
    format!("{}/lambda/python:3.11@{digest}", registry.host)
}

#[test]
fn the_upstream_base_is_read_from_its_registry_and_its_layers_are_mounted_not_copied() {
    let registry = TestRegistry::start();
    let base = upstream_in(&registry);
    let f = Fixture::new(&["alpha", "beta"]);
    f.write("xtask.toml", &format!("[build]\ntag-latest = false\n\n[python-base]\nlambda = \"{base}\"\nservice = \"{base}\"\n"));

    let out = f.xtask(&["lambda-bootstrap", "--registry", &registry.host, "--json", "--explain"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let pinned = base.replace(":3.11@", "@");
    assert!(err.contains(&format!("read the upstream base {pinned} from its registry")), "{err}");
    assert!(!err.contains("pulling"), "nothing is pulled into the engine: {err}");
    assert!(err.contains("tradai/lambda-alpha will build: never built [assembled without Docker"), "{err}");

    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let published = json["published"].as_array().unwrap();
    let blobs = |id: &str| published.iter().find(|p| p["id"] == id).unwrap_or_else(|| panic!("{id} published")).clone()["blobs"].clone();
    // lambda-base: the base's one layer is mounted from lambda/python; its config and the
    // site-packages layer are uploaded.
    let lb = blobs("tradai/lambda-base");
    assert_eq!((lb["mounted"].as_u64(), lb["uploaded"].as_u64(), lb["present"].as_u64()), (Some(1), Some(2), Some(0)), "{lb}");
    // Each Lambda: the base layer and the site-packages layer mounted, its config and
    // handler layer uploaded: the shared layers go up once for all images.
    for id in ["tradai/lambda-alpha", "tradai/lambda-beta"] {
        let b = blobs(id);
        assert_eq!((b["mounted"].as_u64(), b["uploaded"].as_u64()), (Some(2), Some(2)), "{id}: {b}");
        assert!(b["uploaded_bytes"].as_u64().unwrap() < 4096, "only a config and a one-file layer: {b}");
    }

    // The digest is known before the push, and the registry serves exactly it, in a form
    // Lambda takes: one platform, Docker v2 schema 2, no index.
    let alpha = published.iter().find(|p| p["id"] == "tradai/lambda-alpha").unwrap();
    let served = registry.digest("tradai/lambda-alpha", "latest").unwrap();
    assert_eq!(alpha["digest"].as_str().unwrap(), served);
    let target = json["targets"].as_array().unwrap().iter().find(|t| t["id"] == "tradai/lambda-alpha").unwrap();
    assert_eq!(target["digest"].as_str().unwrap(), served, "--json reports the digest the build computed");
    let manifest = Command::new("curl")
        .args(["-s", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{}/v2/tradai/lambda-alpha/manifests/latest", registry.host))
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json", "{m}");
    assert_eq!(m["layers"].as_array().unwrap().len(), 3, "base, site-packages, handler: {m}");

    // Pulled back, the image runs as Docker built it: its files and its command.
    let pulled = format!("{}/tradai/lambda-alpha@{served}", registry.host);
    assert!(docker(&["pull", "-q", &pulled]).status.success());
    let cmd = docker(&["image", "inspect", "--format", "{{json .Config.Cmd}}", &pulled]);
    assert_eq!(String::from_utf8_lossy(&cmd.stdout).trim(), "[\"handler.lambda_handler\"]");
    let cid = String::from_utf8_lossy(&docker(&["create", &pulled, "x"]).stdout).trim().to_owned();
    let handler = docker(&["cp", &format!("{cid}:/var/task/handler.py"), "-"]);
    let _ = docker(&["rm", "-f", &cid]);
    let _ = docker(&["rmi", &pulled]);
    assert!(handler.status.success() && !handler.stdout.is_empty());

    // Again, with nothing changed: nothing built, nothing pushed.
    let out = f.xtask(&["lambda-bootstrap", "--registry", &registry.host, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["published"].as_array().unwrap().iter().all(|p| p["action"] == "tagged"), "{json}");
}

#[test]
fn builder_docker_forces_docker_build_and_explain_says_which_runs() {
    let f = Fixture::new(&["alpha"]);
    f.write("lambdas/gamma/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY handler.py /var/task/\nRUN true\n");
    f.write("lambdas/gamma/handler.py", "def lambda_handler(event, context):\n    return 1\n");

    let out = f.xtask(&["lambda-build-all", "--dry-run", "--explain"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("tradai/lambda-alpha will build: never built [assembled without Docker"), "{err}");
    assert!(err.contains("tradai/lambda-gamma will build: never built [docker build (line 4: RUN needs a container"), "{err}");

    let out = f.xtask(&["lambda-build-all", "--dry-run", "--explain", "--builder", "docker"]);
    let err = stderr(&out);
    assert!(err.contains("tradai/lambda-alpha will build: never built [docker build (--builder docker)]"), "{err}");

    // Built for the local engine (gamma's RUN needs a shell the fixture base lacks): one
    // `docker load` for every assembled image, and the
    // engine's id for each is the config digest the run reports.
    std::fs::remove_dir_all(f.path().join("lambdas/gamma")).unwrap();
    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("loaded 2 assembled image(s) into the Docker engine"), "lambda-base and alpha: {err}");
    let t = parse_targets(&out.stdout);
    let alpha = t.iter().find(|(id, _, _)| id == "tradai/lambda-alpha").unwrap();
    let id = alpha.2["artifact"].as_str().unwrap();
    let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", id]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), id);

    // Removed from the engine: the next run notices and puts it back (without Docker's builder).
    assert!(docker(&["rmi", "-f", id]).status.success());
    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("loaded 1 assembled image(s)"), "{err}");
    assert!(docker(&["image", "inspect", id]).status.success());
}

/// The same commit gives the same image digests in two clones, whatever the files' times
/// and the umask they were checked out with: the wheel, the site-packages tree, lambda-base
/// and every Lambda.
#[test]
fn two_clones_with_other_mtimes_and_umask_give_the_same_digests() {
    use std::os::unix::fs::PermissionsExt;
    let digests = |f: &Fixture| -> Vec<(String, String)> {
        let out = f.xtask(&["lambda-build-all", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut d: Vec<(String, String)> = parse_targets(&out.stdout)
            .into_iter()
            .filter_map(|(id, _, t)| t["digest"].as_str().map(|d| (id, d.to_owned())))
            .collect();
        d.sort();
        d
    };
    let a = Fixture::new(&["alpha", "beta"]);
    let b = Fixture::new(&["alpha", "beta"]);
    // Clone b as if checked out with umask 077, a year earlier.
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(365 * 24 * 3600);
    for entry in walkdir::WalkDir::new(b.path()) {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode();
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & !0o077)).unwrap();
        if meta.is_file() {
            std::fs::File::options().write(true).open(entry.path()).unwrap().set_modified(when).unwrap();
        }
    }
    let (da, db) = (digests(&a), digests(&b));
    assert_eq!(da.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["tradai/lambda-alpha", "tradai/lambda-base", "tradai/lambda-beta"]);
    assert_eq!(da, db);
}
