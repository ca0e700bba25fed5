//! Problems reported by the Python tools, parsed into file, line and message so that a
//! failure names its file and GitHub can annotate it.
//!
//! Each parser reads the machine-readable format the CI commands ask the tool for: ruff's
//! JSON (`ruff check` and `ruff format --check`), mypy's JSON lines, bandit's, actionlint's,
//! zizmor's and check-jsonschema's JSON, pytest's JUnit XML in the `xunit1` family (which
//! carries `file` and `line`, read with a real XML parser), and coverage.py's JSON report.

use std::sync::OnceLock;

use regex_lite::Regex;
use serde::Serialize;

/// One problem, with its location when the tool gave one. Paths are relative to the
/// repository root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: Option<String>,
    pub line: Option<u32>,
    pub col: Option<u32>,
    /// The tool and rule (`ruff F401`, `mypy [assignment]`).
    pub title: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(title: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { file: None, line: None, col: None, title: title.into(), message: message.into() }
    }

    pub fn at(mut self, file: impl Into<String>, line: Option<u32>, col: Option<u32>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self.col = col;
        self
    }

    /// `file:line:col: title: message`, for terminals and error messages.
    pub fn display(&self) -> String {
        let mut s = String::new();
        if let Some(f) = &self.file {
            s.push_str(f);
            if let Some(l) = self.line {
                s.push_str(&format!(":{l}"));
                if let Some(c) = self.col {
                    s.push_str(&format!(":{c}"));
                }
            }
            s.push_str(": ");
        }
        if !self.title.is_empty() {
            s.push_str(&self.title);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("the pattern is valid"))
}

/// `ruff check --output-format=json`: an array of findings with `code`, `message`,
/// `filename` (absolute; made relative to `root`) and `location {row, column}`.
pub fn ruff_check(json: &str, root: &str) -> Vec<Diagnostic> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json) else { return Vec::new() };
    items
        .iter()
        .map(|f| {
            let code = f["code"].as_str().unwrap_or("error");
            let file = f["filename"].as_str().unwrap_or_default();
            let file = file.strip_prefix(root).map(|r| r.trim_start_matches('/')).unwrap_or(file);
            let at = |k: &str| f["location"][k].as_u64().and_then(|n| u32::try_from(n).ok());
            Diagnostic::new(format!("ruff {code}"), f["message"].as_str().unwrap_or_default()).at(file, at("row"), at("column"))
        })
        .collect()
}

/// `ruff format --check --output-format=json`: the same array as `ruff check`'s (the
/// ruff uv.lock pins, 0.17, prints it without `--preview`). Each unformatted file is one
/// `unformatted` finding at its first changed line; a file ruff cannot parse is an
/// `invalid-syntax` finding with the reason.
pub fn ruff_format(json: &str, root: &str) -> Vec<Diagnostic> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json) else { return Vec::new() };
    items
        .iter()
        .map(|f| {
            let file = f["filename"].as_str().unwrap_or_default();
            let file = file.strip_prefix(root).map(|r| r.trim_start_matches('/')).unwrap_or(file);
            let at = |k: &str| f["location"][k].as_u64().and_then(|n| u32::try_from(n).ok());
            let d = match f["code"].as_str() {
                Some("unformatted") | None => Diagnostic::new("ruff format", "file is not formatted; run `uv run ruff format`"),
                Some(code) => Diagnostic::new(format!("ruff format {code}"), f["message"].as_str().unwrap_or_default()),
            };
            d.at(file, at("row"), at("column"))
        })
        .collect()
}

/// mypy with `-O json`: one JSON object a line, with `file`, `line`, `column` (0 or -1
/// when unknown), `message`, `code` and `severity`; only errors are kept.
pub fn mypy(json_lines: &str) -> Vec<Diagnostic> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["severity"] == "error")
        .map(|e| {
            let title = match e["code"].as_str() {
                Some(code) => format!("mypy [{code}]"),
                None => "mypy".to_owned(),
            };
            let n = |k: &str| e[k].as_i64().filter(|n| *n > 0).and_then(|n| u32::try_from(n).ok());
            Diagnostic::new(title, e["message"].as_str().unwrap_or_default()).at(
                e["file"].as_str().unwrap_or_default(),
                n("line"),
                n("column"),
            )
        })
        .collect()
}

/// bandit with `-f json`: `results` with `filename`, `line_number`, `col_offset` (from
/// 0), `test_id`, `issue_severity`, `issue_confidence` and `issue_text`.
pub fn bandit(json: &str) -> Vec<Diagnostic> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let title = format!(
                "bandit {} [{}/{}]",
                r["test_id"].as_str().unwrap_or("?"),
                r["issue_severity"].as_str().unwrap_or("?"),
                r["issue_confidence"].as_str().unwrap_or("?")
            );
            let file = r["filename"].as_str().unwrap_or_default().trim_start_matches("./");
            let line = r["line_number"].as_u64().and_then(|n| u32::try_from(n).ok());
            let col = r["col_offset"].as_u64().and_then(|n| u32::try_from(n + 1).ok());
            Diagnostic::new(title, r["issue_text"].as_str().unwrap_or_default()).at(file, line, col)
        })
        .collect()
}

/// The `-format` actionlint is given for JSON output.
pub const ACTIONLINT_JSON: &str = "{{json .}}";

/// actionlint with `-format '{{json .}}'`: an array of errors with `message`, `filepath`,
/// `line`, `column` and `kind`.
pub fn actionlint(json: &str) -> Vec<Diagnostic> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json.trim()) else { return Vec::new() };
    items
        .iter()
        .map(|e| {
            let title = e["kind"].as_str().map_or_else(|| "actionlint".to_owned(), |k| format!("actionlint [{k}]"));
            let n = |k: &str| e[k].as_u64().and_then(|n| u32::try_from(n).ok());
            Diagnostic::new(title, e["message"].as_str().unwrap_or_default()).at(
                e["filepath"].as_str().unwrap_or_default(),
                n("line"),
                n("column"),
            )
        })
        .collect()
}

/// zizmor with `--format json`: an array of findings (`ident`, `desc`,
/// `determinations.severity`), each located at its `Primary` location (`symbolic.key`'s
/// local path, `concrete.location.start_point` counted from 0). The title carries the
/// level zizmor's own text output shows for the severity.
pub fn zizmor(json: &str) -> Vec<Diagnostic> {
    let Ok(serde_json::Value::Array(findings)) = serde_json::from_str(json.trim()) else { return Vec::new() };
    findings
        .iter()
        .map(|f| {
            let level = match f["determinations"]["severity"].as_str().unwrap_or_default() {
                "High" => "error",
                "Medium" => "warning",
                "Low" => "help",
                _ => "info",
            };
            let title = format!("zizmor {level} [{}]", f["ident"].as_str().unwrap_or("?"));
            let d = Diagnostic::new(title, f["desc"].as_str().unwrap_or_default());
            let locations = f["locations"].as_array().cloned().unwrap_or_default();
            let Some(at) = locations.iter().find(|l| l["symbolic"]["kind"] == "Primary").or(locations.first()) else { return d };
            let local = &at["symbolic"]["key"]["Local"];
            let path = local["verbatim_path"].as_str().or(local["given_path"].as_str()).unwrap_or_default();
            let point = &at["concrete"]["location"]["start_point"];
            let n = |k: &str| point[k].as_u64().and_then(|n| u32::try_from(n + 1).ok());
            d.at(path, n("row"), n("column"))
        })
        .collect()
}

/// check-jsonschema with `--output-format json`. The schema reports a JSON path, not a
/// line: the line is that of the path's last key in the file, found with `read`.
pub fn check_jsonschema_with(output: &str, read: impl Fn(&str) -> Option<String>) -> Vec<Diagnostic> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(output.trim()) else { return Vec::new() };
    let mut out = Vec::new();
    let str_of = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    for error in json.get("errors").and_then(|e| e.as_array()).into_iter().flatten() {
        let file = str_of(error, "filename").unwrap_or_default();
        let best = error.get("best_deep_match").or_else(|| error.get("best_match")).unwrap_or(error);
        let path = str_of(best, "path").or_else(|| str_of(error, "path")).unwrap_or_default();
        let message = str_of(best, "message").or_else(|| str_of(error, "message")).unwrap_or_default();
        let key = path
            .rsplit('.')
            .find(|seg| !seg.is_empty() && !seg.starts_with('$') && !seg.chars().all(|c| c.is_ascii_digit() || c == '[' || c == ']'));
        let line = key.and_then(|k| {
            let k = k.split('[').next().unwrap_or(k);
            read(&file)?.lines().position(|l| l.trim_start().trim_start_matches("- ").starts_with(&format!("{k}:"))).map(|i| i as u32 + 1)
        });
        out.push(Diagnostic::new("workflow schema", format!("{path}: {message}")).at(file, line, None));
    }
    for error in json.get("parse_errors").and_then(|e| e.as_array()).into_iter().flatten() {
        let file = str_of(error, "filename").unwrap_or_default();
        let message = str_of(error, "message").unwrap_or_else(|| error.to_string());
        out.push(Diagnostic::new("workflow schema", format!("cannot parse: {message}")).at(file, None, None));
    }
    out
}

/// [`check_jsonschema_with`], reading files from the current folder.
pub fn check_jsonschema(output: &str) -> Vec<Diagnostic> {
    check_jsonschema_with(output, |f| std::fs::read_to_string(f).ok())
}

/// The failed and erroring tests of a pytest JUnit XML report (`-o junit_family=xunit1`).
///
/// The line is where the failure was raised when that is in the test's own file,
/// otherwise the test function's line.
pub fn pytest_junit(xml: &str) -> Vec<Diagnostic> {
    static TRACE: OnceLock<Regex> = OnceLock::new();
    static FILE_LINE: OnceLock<Regex> = OnceLock::new();
    // The traceback is text; the report around it is XML, read with an XML parser.
    let trace = re(&TRACE, r"(?m)^([^\s:]+\.py):(\d+): ");
    let file_line = re(&FILE_LINE, r#"File "([^"]+\.py)", line (\d+)"#);
    let Ok(doc) = roxmltree::Document::parse(xml) else { return Vec::new() };
    let mut out = Vec::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let Some(p) = case.children().find(|n| n.has_tag_name("failure") || n.has_tag_name("error")) else { continue };
        let kind = p.tag_name().name();
        let name = case.attribute("name").unwrap_or_default();
        let classname = case.attribute("classname").unwrap_or_default();
        let message = p.attribute("message").unwrap_or(kind).lines().next().unwrap_or_default();
        let text = p.text().unwrap_or_default();
        let file = case.attribute("file");
        // The class of a test method is what the classname adds to the file's module.
        let class = match file {
            Some(f) => classname.strip_prefix(&f.trim_end_matches(".py").replace('/', ".")).unwrap_or(classname).trim_start_matches('.'),
            None => classname,
        };
        let test = if class.is_empty() { name.to_owned() } else { format!("{class}::{name}") };
        let mut d = Diagnostic::new(format!("pytest {}", if kind == "error" { "error" } else { "failure" }), format!("{test}: {message}"));
        match file {
            Some(file) => {
                let raised = trace.captures_iter(text).filter(|t| &t[1] == file).last().and_then(|t| t[2].parse().ok());
                let def_line = case.attribute("line").and_then(|l| l.parse::<u32>().ok()).map(|l| l + 1);
                d = d.at(file, raised.or(def_line), None);
            }
            None => {
                // A collection error: the location is in the traceback.
                if let Some(t) = file_line.captures_iter(text).last() {
                    d = d.at(&t[1], t[2].parse().ok(), None);
                } else if let Some(t) = trace.captures_iter(text).last() {
                    d = d.at(&t[1], t[2].parse().ok(), None);
                }
            }
        }
        out.push(d);
    }
    out
}

/// The total line coverage in coverage.py's JSON report.
pub fn coverage_percent(json: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get("totals")?.get("percent_covered")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruff_json_findings_are_made_relative() {
        // As ruff 0.x prints them (`ruff check --output-format=json`), abridged.
        let out = r#"[{"cell":null,"code":"F401","filename":"/repo/libs/a/src/x.py","location":{"column":8,"row":1},"message":"`os` imported but unused","name":"unused-import"},
            {"cell":null,"code":"invalid-syntax","filename":"/repo/libs/a/src/y.py","location":{"column":1,"row":3},"message":"unexpected EOF while parsing"}]"#;
        let d = ruff_check(out, "/repo");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0], Diagnostic::new("ruff F401", "`os` imported but unused").at("libs/a/src/x.py", Some(1), Some(8)));
        assert_eq!(d[1].title, "ruff invalid-syntax");
        assert!(ruff_check("not json", "/repo").is_empty());
    }

    #[test]
    fn ruff_format_json_findings() {
        // As ruff 0.17 prints them (`ruff format --check --output-format=json`), abridged.
        let out = r#"[
          {"code": "invalid-syntax", "filename": "/repo/libs/a/src/broken.py", "location": {"column": 5, "row": 1}, "message": "Expected an identifier", "name": "invalid-syntax"},
          {"code": "unformatted", "filename": "/repo/libs/a/src/x.py", "location": {"column": 3, "row": 2}, "message": "File would be reformatted", "name": "unformatted"}
        ]"#;
        let d = ruff_format(out, "/repo");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].display(), "libs/a/src/broken.py:1:5: ruff format invalid-syntax: Expected an identifier");
        assert_eq!(d[1].display(), "libs/a/src/x.py:2:3: ruff format: file is not formatted; run `uv run ruff format`");
        assert!(ruff_format("[]", "/repo").is_empty());
        assert!(ruff_format("1 file would be reformatted", "/repo").is_empty(), "text is not read");
    }

    #[test]
    fn mypy_json_lines_with_and_without_columns() {
        // As mypy 2.x prints them with `-O json`.
        let out = concat!(
            r#"{"file": "libs/a/src/x.py", "line": 2, "column": 9, "end_line": 2, "end_column": 12, "message": "Incompatible types in assignment", "hint": null, "code": "assignment", "severity": "error"}"#,
            "\n",
            r#"{"file": "libs/a/src/x.py", "line": 7, "column": -1, "message": "See docs", "hint": null, "code": null, "severity": "note"}"#,
            "\n",
            r#"{"file": "libs/a/src/z.py", "line": -1, "column": -1, "message": "Duplicate module named \"z\"", "hint": null, "code": null, "severity": "error"}"#,
            "\n"
        );
        let d = mypy(out);
        assert_eq!(d.len(), 2, "notes are left out: {d:?}");
        assert_eq!(d[0].title, "mypy [assignment]");
        assert_eq!((d[0].line, d[0].col), (Some(2), Some(9)));
        assert_eq!((d[1].title.as_str(), d[1].line, d[1].file.as_deref()), ("mypy", None, Some("libs/a/src/z.py")));
    }

    #[test]
    fn bandit_json_results() {
        let out = r#"{"errors": [], "results": [{"code": "4 x = 'a'\n", "col_offset": 0, "filename": "./libs/a/src/x.py", "issue_confidence": "MEDIUM", "issue_severity": "LOW", "issue_text": "Possible hardcoded password: 'x'", "line_number": 4, "test_id": "B105"}]}"#;
        assert_eq!(
            bandit(out),
            vec![Diagnostic::new("bandit B105 [LOW/MEDIUM]", "Possible hardcoded password: 'x'").at("libs/a/src/x.py", Some(4), Some(1))]
        );
    }

    #[test]
    fn junit_failures_point_at_the_raising_line() {
        let xml = r#"<testsuites><testsuite><testcase classname="pkg.tests.test_a" name="test_ok" file="pkg/tests/test_a.py" line="0" time="0.001" /><testcase classname="pkg.tests.test_a" name="test_bad" file="pkg/tests/test_a.py" line="4" time="0.001"><failure message="AssertionError: nope&#10;assert 1 == 2">def test_bad():
&gt;       assert 1 == 2, "nope"

pkg/tests/test_a.py:6: AssertionError</failure></testcase><testcase classname="pkg.tests.test_a.TestC" name="test_m" file="pkg/tests/test_a.py" line="8"><error message="failed on setup with &quot;x&quot;">lib/x.py:3: ValueError</error></testcase></testsuite></testsuites>"#;
        let d = pytest_junit(xml);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].file.as_deref(), Some("pkg/tests/test_a.py"));
        assert_eq!(d[0].line, Some(6));
        assert_eq!(d[0].message, "test_bad: AssertionError: nope");
        assert_eq!(d[1].title, "pytest error");
        assert_eq!(d[1].line, Some(9), "falls back to the test's own line");
        assert!(d[1].message.starts_with("TestC::test_m: failed on setup with \"x\""), "{}", d[1].message);
    }

    #[test]
    fn junit_collection_errors_use_the_traceback() {
        let xml = r#"<testcase classname="" name="pkg.tests.test_b" time="0"><error message="collection failure">E     File "pkg/tests/test_b.py", line 3
E       def (:
E           ^
E   SyntaxError: invalid syntax</error></testcase>"#;
        let d = pytest_junit(xml);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].file.as_deref(), d[0].line), (Some("pkg/tests/test_b.py"), Some(3)));
    }

    #[test]
    fn actionlint_json() {
        let out = r#"[{"message":"unexpected key \"bogus-key\" for \"job\" section","filepath":".github/workflows/docs.yml","line":26,"column":5,"kind":"syntax-check","snippet":"    bogus-key: 1","end_column":13}]"#;
        assert_eq!(
            actionlint(out),
            vec![Diagnostic::new("actionlint [syntax-check]", "unexpected key \"bogus-key\" for \"job\" section").at(
                ".github/workflows/docs.yml",
                Some(26),
                Some(5)
            )]
        );
    }

    #[test]
    fn zizmor_json_findings_at_their_primary_location() {
        // As zizmor 1.x prints them with `--format json`, abridged.
        let out = r#"[{"ident":"template-injection","desc":"code injection via template expansion","determinations":{"confidence":"High","severity":"High","persona":"Regular"},"locations":[
            {"symbolic":{"key":{"Local":{"verbatim_path":".github/workflows/docs.yml"}},"kind":"Hidden"},"concrete":{"location":{"start_point":{"row":30,"column":8}}}},
            {"symbolic":{"key":{"Local":{"verbatim_path":".github/workflows/docs.yml"}},"kind":"Primary"},"concrete":{"location":{"start_point":{"row":36,"column":44}}}}]},
            {"ident":"self-repository","desc":"use GitHub's dedicated self-repository syntax","determinations":{"severity":"Low"},"locations":[
            {"symbolic":{"key":{"Local":{"given_path":".github/workflows/ci.yml"}},"kind":"Primary"},"concrete":{"location":{"start_point":{"row":58,"column":10}}}}]}]"#;
        let d = zizmor(out);
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].display(),
            ".github/workflows/docs.yml:37:45: zizmor error [template-injection]: code injection via template expansion"
        );
        assert_eq!(d[1].title, "zizmor help [self-repository]");
        assert_eq!((d[1].file.as_deref(), d[1].line), (Some(".github/workflows/ci.yml"), Some(59)));
        assert!(zizmor("[]").is_empty());
    }

    #[test]
    fn schema_errors_find_the_line_of_their_key() {
        let out = r#"{"status": "fail", "errors": [{"filename": "w.yml", "path": "$.jobs.docs", "message": "long", "best_match": {"path": "$.jobs.docs", "message": "Additional properties are not allowed ('bogus-key' was unexpected)"}}], "parse_errors": []}"#;
        let d = check_jsonschema_with(out, |_| Some("name: x\njobs:\n  docs:\n    bogus-key: 1\n".into()));
        assert_eq!(
            d[0].display(),
            "w.yml:3: workflow schema: $.jobs.docs: Additional properties are not allowed ('bogus-key' was unexpected)"
        );
    }

    #[test]
    fn coverage_total() {
        assert_eq!(coverage_percent(r#"{"totals": {"percent_covered": 91.5}}"#), Some(91.5));
        assert_eq!(coverage_percent("{}"), None);
    }
}
