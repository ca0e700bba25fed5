//! Fuzzes the Dockerfile reader of the daemonless assembler
//! (`xtask_image::assemble::dockerfile`): parsing, word expansion, `ENV`/`LABEL` pairs,
//! and the two questions the tool asks of a parsed Dockerfile (can it be assembled
//! without Docker, and what is its base). Bad input is an `Err`, never a panic.
//!
//! Input: the Dockerfile text. Every instruction's arguments and flag values are then
//! expanded as the assembler would, with a few variables set and the Dockerfile's own
//! `ARG` defaults added.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use xtask_image::assemble::dockerfile::{self, Args, Dockerfile, Vars, expand_word, expand_words, name_values};
use xtask_image::assemble::{base_reference, support};

/// Characters that make word expansion do something other than split on whitespace.
fn is_plain(text: &str, escape: char) -> bool {
    !text.chars().any(|c| c == '$' || c == '\'' || c == '"' || c == escape)
}

/// The instructions written back one per line: the logical lines the parser joined.
fn render(df: &Dockerfile) -> String {
    let mut out = String::new();
    if df.escape != '\\' {
        out.push_str(&format!("# escape={}\n", df.escape));
    }
    for i in &df.instructions {
        out.push_str(&i.original);
        out.push('\n');
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(df) = dockerfile::parse(&text) else { return };

    // Lines are 1-based, in order, and inside the file; keywords are upper case.
    let lines = text.lines().count();
    let mut previous = 0;
    for i in &df.instructions {
        assert!(i.line > previous && i.line <= lines, "instruction line {} after {previous}, file has {lines}", i.line);
        previous = i.line;
        assert_eq!(i.keyword, i.keyword.to_ascii_uppercase());
    }

    // Writing the joined instructions back one per line reads back the same
    // instructions, unless an instruction ends with the escape character (written
    // back, that would join it with the next line).
    if !df.instructions.iter().any(|i| i.original.ends_with(df.escape)) {
        let again = dockerfile::parse(&render(&df)).expect("the instructions of a parsed Dockerfile parse again");
        let key = |d: &Dockerfile| d.instructions.iter().map(|i| (i.keyword.clone(), i.flags.clone(), i.args.clone())).collect::<Vec<_>>();
        assert_eq!(key(&again), key(&df), "the instructions changed when written back one per line");
    }

    let mut vars: Vars = [("A", "one"), ("E", ""), ("SPACED", "two words"), ("LAMBDA_TASK_ROOT", "/var/task")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for i in df.instructions.iter().filter(|i| i.keyword == "ARG") {
        if let Args::Text(t) = &i.args {
            for decl in t.split_whitespace() {
                if let Some((k, v)) = decl.split_once('=') {
                    vars.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }

    for i in &df.instructions {
        for (_, value) in &i.flags {
            let _ = expand_word(value, &vars, df.escape);
        }
        match &i.args {
            Args::Json(words) => {
                for w in words {
                    let _ = expand_word(w, &vars, df.escape);
                }
            }
            Args::Text(t) => {
                let words = expand_words(t, &vars, df.escape);
                let word = expand_word(t, &vars, df.escape);
                // Text with no variable, quote or escape expands to itself, split on
                // whitespace.
                if is_plain(t, df.escape) {
                    assert_eq!(words.ok(), Some(t.split_whitespace().map(str::to_owned).collect::<Vec<_>>()), "{t:?}");
                    assert_eq!(word.ok().as_deref(), Some(t.as_str()), "{t:?}");
                }
                if matches!(i.keyword.as_str(), "ENV" | "LABEL") {
                    let _ = name_values(t, &vars, df.escape, &i.keyword);
                }
            }
        }
    }

    let _ = support(&df);
    let build_args: BTreeMap<String, String> = [("BASE_IMAGE".to_owned(), "sha256:0123".to_owned())].into();
    let _ = base_reference(&df, &build_args);
});
