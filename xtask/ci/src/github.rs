//! GitHub Actions output for CI's diagnostics, on top of the engine's one GitHub module
//! ([`xtask_engine::github`]), which every command uses.

pub use xtask_engine::github::{Annotation, Github, escape_data, escape_property, markdown_table, output_line};

use crate::diagnostics::Diagnostic;

/// The `::error` annotation of a diagnostic.
pub fn annotation(d: &Diagnostic) -> Annotation<'_> {
    Annotation { file: d.file.as_deref(), line: d.line, col: d.col, title: &d.title, message: &d.message }
}

/// Prints an `::error` annotation for each diagnostic under Actions.
pub fn annotate(github: &Github, diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        github.error(&annotation(d));
    }
}
