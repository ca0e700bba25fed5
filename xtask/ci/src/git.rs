//! The files a change touches, from git.

use camino::Utf8Path;
use xtask_engine::{Cmd, ProcessError};

use crate::Error;

/// The files that differ between `base` and `head`, relative to the root.
///
/// With a `head`, this is `git diff --name-only <base>...<head>`: what `head` changed
/// since it forked from `base`, as a pull request shows it. Without one, the comparison is
/// between that fork point and the working tree, untracked files included, so that a
/// local run sees uncommitted work. Renames count as a deletion and an addition, so both
/// the old and the new path are reported.
pub fn changed_files(root: &Utf8Path, base: &str, head: Option<&str>) -> Result<Vec<String>, Error> {
    let git = |purpose: &str| Cmd::new("git", purpose.to_owned()).dir(root.to_owned());
    let fail = |e: ProcessError, what: &str| {
        let stderr = e.stderr().trim().to_owned();
        if stderr.contains("not a git repository") {
            Error::Git(format!("{root} is not a git clone; run `ci changes` in a clone of the repository (or `git init` and commit first)"))
        } else if stderr.contains("unknown revision")
            || stderr.contains("bad revision")
            || stderr.contains("Not a valid object name")
            || stderr.contains("no merge base")
        {
            Error::Git(format!(
                "{what} is not a commit of this clone ({}); fetch it first (`git fetch origin <branch>`, or `fetch-depth: 0` in actions/checkout)",
                stderr.lines().next().unwrap_or_default()
            ))
        } else {
            Error::Git(e.to_string())
        }
    };
    let mut files = match head {
        Some(head) => {
            let out = git("list the files changed between the two refs")
                .args(["diff", "--name-only", "-z", "--no-renames", &format!("{base}...{head}"), "--"])
                .run()
                .map_err(|e| fail(e, &format!("`{base}` or `{head}`")))?;
            split_z(&out.stdout)
        }
        None => {
            let fork = git("find where HEAD forked from the base")
                .args(["merge-base", base, "HEAD"])
                .run()
                .map_err(|e| fail(e, &format!("`{base}`")))?;
            let fork = fork.stdout.trim().to_owned();
            let out = git("list the files changed since the fork point")
                .args(["diff", "--name-only", "-z", "--no-renames", &fork, "--"])
                .run()
                .map_err(|e| fail(e, "the fork point"))?;
            let mut files = split_z(&out.stdout);
            let untracked = git("list untracked files")
                .args(["ls-files", "-z", "--others", "--exclude-standard"])
                .run()
                .map_err(|e| Error::Git(e.to_string()))?;
            files.extend(split_z(&untracked.stdout));
            files
        }
    };
    files.sort();
    files.dedup();
    Ok(files)
}

fn split_z(text: &str) -> Vec<String> {
    text.split('\0').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
