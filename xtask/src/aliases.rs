//! The seeds' recipe names that carry their first argument in the name (`just
//! infra-up-compute dev` is `cargo xtask infra-up compute dev`), and their expansion
//! before parsing. A module of its own, depending on nothing, so that the CLI and the
//! commands that check command lines (`ci workflows`, `docs-freshness`) share it.

/// Seed recipe names and what they stand for.
pub const ALIASES: &[(&str, &[&str])] = &[
    ("infra-up-persistent", &["infra-up", "persistent"]),
    ("infra-up-foundation", &["infra-up", "foundation"]),
    ("infra-up-compute", &["infra-up", "compute"]),
    ("infra-up-edge", &["infra-up", "edge"]),
    ("infra-preview-persistent", &["infra-preview", "persistent"]),
    ("infra-preview-foundation", &["infra-preview", "foundation"]),
    ("infra-preview-compute", &["infra-preview", "compute"]),
    ("infra-preview-edge", &["infra-preview", "edge"]),
];

/// Global options that take a value as the next argument.
const OPTIONS_WITH_VALUE: &[&str] = &["--root"];

/// Rewrites a seed recipe alias into the canonical command. The command is the first
/// argument that is neither an option nor the value of one (`--root DIR infra-up-edge`).
pub fn expand_aliases(mut args: Vec<String>) -> Vec<String> {
    let mut pos = None;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if OPTIONS_WITH_VALUE.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            pos = Some(i);
            break;
        }
        i += 1;
    }
    let Some(pos) = pos else { return args };
    if let Some((_, expansion)) = ALIASES.iter().find(|(alias, _)| *alias == args[pos]) {
        args.splice(pos..=pos, expansion.iter().map(|s| (*s).to_owned()));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(line: &str) -> String {
        expand_aliases(line.split_whitespace().map(str::to_owned).collect()).join(" ")
    }

    #[test]
    fn aliases_expand_wherever_the_command_is() {
        assert_eq!(expand("xtask infra-up-edge dev"), "xtask infra-up edge dev");
        assert_eq!(expand("xtask --root /repo infra-preview-compute dev"), "xtask --root /repo infra-preview compute dev");
        assert_eq!(expand("xtask -v --root=/repo infra-up-persistent prod"), "xtask -v --root=/repo infra-up persistent prod");
        assert_eq!(expand("xtask --root infra-up-edge"), "xtask --root infra-up-edge", "a value is never a command");
        assert_eq!(expand("xtask lambda-build-all"), "xtask lambda-build-all");
    }
}
