//! The Debian-built Python base: when the upstream base image is not in the engine (it
//! cannot be pulled here), the pipeline builds the stand-in itself, says so, and builds
//! on it. As root this runs debootstrap for real (about two minutes); without root the
//! build stops with the one-line reason and what to do instead.

mod support;

use std::process::Command;

use support::*;

#[test]
fn a_missing_upstream_base_is_replaced_by_the_debian_built_one() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let f = Fixture::new(&["alpha"]);
    f.write(
        "xtask.toml",
        // Pinned to a registry where nothing listens: the pull fails at once.
        &format!("[build]\ntag-latest = false\n\n[python-base]\nlambda = \"{UNREACHABLE}\"\nservice = \"{UNREACHABLE}\"\nrecipe = \"docker/python-base\"\n"),
    );
    let recipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/python-base");
    std::fs::create_dir_all(f.path().join("docker")).unwrap();
    let status = Command::new("cp").arg("-r").arg(&recipe).arg(f.path().join("docker/python-base")).status().unwrap();
    assert!(status.success());

    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    if !root {
        assert!(!out.status.success());
        assert!(err.contains("building the Debian stand-in base needs root") && err.contains("cargo xtask base-images"), "{err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(err.contains("could not be pulled"), "it says why: {err}");
    let t = parse_targets(&out.stdout);
    let ids: Vec<&str> = t.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["tradai-common", "site-packages:tradai-common", "tradai/python-base", "tradai/lambda-base", "tradai/lambda-alpha"]);
    // The stand-in is built once per machine: a test that ran before may have built it
    // for the same recipe, and then the engine's copy (tagged with its hash) is used.
    let stand_in = &t[2].2;
    if stand_in["status"] == "built" {
        assert!(err.contains("building the Debian-based stand-in tradai/python-base"), "it says so: {err}");
        assert_eq!(with_status(&t, "built").len(), 5);
    } else {
        assert!(stand_in["reason"].as_str().unwrap().starts_with("found in the Docker engine as tradai/python-base:inputs-"), "{stand_in}");
        assert!(err.contains("building on the Debian-based stand-in tradai/python-base"), "it says so: {err}");
        assert_eq!(with_status(&t, "built").len(), 4);
    }

    // The stand-in has the upstream Lambda image's layout: `python3` on PATH is
    // /var/lang/bin/python3 (Python 3.11) whose packages, the runtime interface client and
    // boto3 included, live in /var/lang/lib/python3.11/site-packages; handlers go under
    // LAMBDA_TASK_ROOT.
    let base = t[2].2["artifact"].as_str().unwrap();
    let run = Command::new("docker")
        .args(["run", "--rm", "--network=none", "--entrypoint", "python3", base, "-c"])
        .arg(
            "import os, sys, awslambdaric, boto3; print(sys.version_info[:2], sys.executable, os.path.dirname(os.path.dirname(boto3.__file__)), \
             '/var/lang/lib/python3.11/site-packages' in sys.path, os.environ['LAMBDA_TASK_ROOT'], os.environ['LAMBDA_RUNTIME_DIR'], os.getcwd())",
        )
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "(3, 11) /var/lang/bin/python3 /var/lang/lib/python3.11/site-packages True /var/task /var/runtime /var/task"
    );

    // lambda-base copied the tradai-common tree into that folder, with no RUN: a Lambda
    // built on it imports the library and runs its handler.
    let alpha = t[4].2["artifact"].as_str().unwrap();
    let run = Command::new("docker")
        .args(["run", "--rm", "--network=none", "--entrypoint", "python3", alpha, "-c"])
        .arg("import handler, tradai_common; print(tradai_common.__file__, tradai_common.VERSION, handler.lambda_handler({}, None))")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "/var/lang/lib/python3.11/site-packages/tradai_common/__init__.py 1 {'name': 'alpha'}");

    // Nothing changed: up to date on the stand-in, without trying the pull again.
    let out = f.xtask(&["lambda-build-all", "--json"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(with_status(&parse_targets(&out.stdout), "skipped").len(), 5, "{err}");
    assert!(err.contains("up to date on the Debian stand-in base") && !err.contains("pulling"), "{err}");

    // A handler edit rebuilds that image; the upstream base is tried first, then the
    // stand-in is used again, with nothing else rebuilt.
    f.append("lambdas/alpha/handler.py", "# edited\n");
    let t = f.build_json(&["lambda-build-all"]);
    assert_eq!(with_status(&t, "built"), ["tradai/lambda-alpha"], "{t:?}");
}

const UNREACHABLE: &str = "127.0.0.1:9/upstream/python:3.11@sha256:0000000000000000000000000000000000000000000000000000000000000000";
