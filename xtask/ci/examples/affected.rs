//! Prints what the given files would affect in a repository: `cargo run -p xtask-ci
//! --example affected -- <root> <file>...` (a debugging aid for the change rules).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((root, files)) = args.split_first() else {
        eprintln!("usage: affected <root> <file>...");
        std::process::exit(2);
    };
    match xtask_ci::Repo::discover(camino::Utf8Path::new(root), vec!["xtask.toml".into()]) {
        Ok(repo) => {
            let a = xtask_ci::analyze(&repo, files);
            println!(
                "packages: {:?}\nlambda_tests: {}\nlambdas: {:?}\nservices: {:?}\nwheel: {} base: {}",
                a.packages, a.lambda_tests, a.lambdas, a.services, a.wheel, a.lambda_base
            );
            for (k, v) in &a.reasons {
                println!("  {k}: {}", v.join("; "));
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
