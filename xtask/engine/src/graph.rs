//! Pictures of the target graph (`cargo xtask graph`): a Mermaid flowchart, a Graphviz
//! DOT digraph, and a self-contained HTML page with the graph drawn as an inline SVG.
//! Targets a change affects are highlighted the same way in all three, and listed in a
//! legend.
//!
//! The SVG is laid out here by hand, the way layered graph drawings are made (Sugiyama):
//! a target's column is the longest path from a target built from nothing, edges that
//! skip columns get waypoints in the columns they cross, and the order within each
//! column is improved by moving every target towards the mean position of its
//! neighbours, sweeping both ways. The page must open offline and as a CI artifact, so
//! it can load no Mermaid or Graphviz script, and a layout crate would bring far more
//! than these ~150 lines for a graph of a few dozen targets.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// How a change touches a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Its input hash is the same.
    Unchanged,
    /// Its own inputs changed (files, parameters), or it is new.
    Changed,
    /// Only what it is built from changed.
    Affected,
}

/// One target: its id, kind, what it is built from, and how the change touches it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub kind: String,
    pub deps: Vec<String>,
    pub mark: Mark,
    /// Why it is marked, in a few words ("file handler.py modified").
    pub why: Option<String>,
}

/// The graph to draw.
#[derive(Debug, Clone)]
pub struct Graph {
    pub title: String,
    /// Dependencies first.
    pub nodes: Vec<Node>,
    /// What the change was measured against ("the last build recorded here"), when the
    /// picture shows a change; `None` draws the graph alone, with no legend.
    pub compared_with: Option<String>,
}

const CHANGED: (&str, &str) = ("#ffd8a8", "#d9480f");
const AFFECTED: (&str, &str) = ("#fff3bf", "#e6a700");
const PLAIN: (&str, &str) = ("#f1f3f5", "#868e96");

fn colors(mark: Mark) -> (&'static str, &'static str) {
    match mark {
        Mark::Changed => CHANGED,
        Mark::Affected => AFFECTED,
        Mark::Unchanged => PLAIN,
    }
}

impl Graph {
    fn marked(&self, mark: Mark) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.mark == mark).collect()
    }

    fn legend_lines(&self, mark: Mark) -> Vec<String> {
        self.marked(mark)
            .iter()
            .map(|n| match &n.why {
                Some(why) if mark == Mark::Changed => format!("{}: {why}", n.id),
                _ => n.id.clone(),
            })
            .collect()
    }

    fn edge_count(&self) -> usize {
        self.nodes.iter().map(|n| n.deps.len()).sum()
    }
}

/// Mermaid node ids: letters, digits and `_`, unique.
fn mermaid_ids(nodes: &[Node]) -> HashMap<&str, String> {
    let mut out = HashMap::new();
    let mut taken = std::collections::HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut id: String = n.id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        if !taken.insert(id.clone()) {
            id = format!("{id}_{i}");
            taken.insert(id.clone());
        }
        out.insert(n.id.as_str(), id);
    }
    out
}

/// Text inside a quoted Mermaid label: its entity codes for what would end or open markup.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// A Mermaid flowchart, left to right: each target points at what is built from it.
pub fn mermaid(graph: &Graph) -> String {
    let ids = mermaid_ids(&graph.nodes);
    let mut s = String::new();
    let _ = writeln!(s, "---\ntitle: {}\n---\nflowchart LR", mermaid_text(&graph.title).replace(':', " "));
    for n in &graph.nodes {
        let class = match (n.mark, &graph.compared_with) {
            (Mark::Changed, Some(_)) => ":::changed",
            (Mark::Affected, Some(_)) => ":::affected",
            _ => "",
        };
        let _ = writeln!(s, "    {}[\"{}<br/>{}\"]{class}", ids[n.id.as_str()], mermaid_text(&n.id), mermaid_text(&n.kind));
    }
    for n in &graph.nodes {
        for d in &n.deps {
            if let Some(from) = ids.get(d.as_str()) {
                let _ = writeln!(s, "    {from} --> {}", ids[n.id.as_str()]);
            }
        }
    }
    if let Some(against) = &graph.compared_with {
        let _ = writeln!(s, "    classDef changed fill:{},stroke:{},stroke-width:3px,color:#000", CHANGED.0, CHANGED.1);
        let _ = writeln!(s, "    classDef affected fill:{},stroke:{},stroke-width:2px,color:#000", AFFECTED.0, AFFECTED.1);
        let _ = writeln!(s, "    subgraph legend[\"Legend: compared with {}\"]", mermaid_text(against));
        s.push_str("        direction TB\n");
        for (mark, key, title) in [
            (Mark::Changed, "changed", "changed: its own inputs differ"),
            (Mark::Affected, "affected", "affected: built from a changed target"),
        ] {
            let lines = graph.legend_lines(mark);
            let body =
                if lines.is_empty() { "none".to_owned() } else { lines.iter().map(|l| mermaid_text(l)).collect::<Vec<_>>().join("<br/>") };
            let _ = writeln!(s, "        legend_{key}[\"{title} ({})<br/>{body}\"]:::{key}", lines.len());
        }
        s.push_str("        legend_unchanged[\"unchanged\"]\n    end\n");
    }
    s
}

/// Text inside a DOT string, with `"` and `\` escaped.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A DOT string: quoted and escaped.
fn dot_string(text: &str) -> String {
    format!("\"{}\"", dot_text(text))
}

/// A Graphviz digraph, left to right; highlighted targets carry `class` (for SVG output)
/// and their colours.
pub fn dot(graph: &Graph) -> String {
    let mut s = String::from("digraph targets {\n");
    let _ = writeln!(s, "    label={};\n    labelloc=t;\n    rankdir=LR;", dot_string(&graph.title));
    let _ = writeln!(
        s,
        "    node [shape=box, style=\"rounded,filled\", fillcolor=\"{}\", color=\"{}\", fontname=\"Helvetica\", fontsize=11];\n    edge [color=\"#868e96\"];",
        PLAIN.0, PLAIN.1
    );
    let styled = |mark: Mark| match mark {
        Mark::Unchanged => String::new(),
        Mark::Changed => format!(", class=\"changed\", fillcolor=\"{}\", color=\"{}\", penwidth=3", CHANGED.0, CHANGED.1),
        Mark::Affected => format!(", class=\"affected\", fillcolor=\"{}\", color=\"{}\", penwidth=2", AFFECTED.0, AFFECTED.1),
    };
    for n in &graph.nodes {
        let style = if graph.compared_with.is_some() { styled(n.mark) } else { String::new() };
        let tooltip = n.why.as_deref().map(|w| format!(", tooltip={}", dot_string(w))).unwrap_or_default();
        // Two lines: the id, and its kind under it (`\n` is DOT's line break).
        let label = format!("\"{}\\n{}\"", dot_text(&n.id), dot_text(&n.kind));
        let _ = writeln!(s, "    {} [label={label}{style}{tooltip}];", dot_string(&n.id));
    }
    for n in &graph.nodes {
        for d in &n.deps {
            let _ = writeln!(s, "    {} -> {};", dot_string(d), dot_string(&n.id));
        }
    }
    if let Some(against) = &graph.compared_with {
        s.push_str("    subgraph cluster_legend {\n");
        let _ = writeln!(s, "        label={};\n        style=dashed;", dot_string(&format!("Legend: compared with {against}")));
        for (mark, key, title) in [
            (Mark::Changed, "changed", "changed: its own inputs differ"),
            (Mark::Affected, "affected", "affected: built from a changed target"),
        ] {
            let lines = graph.legend_lines(mark);
            let mut label = format!("{title} ({})\\l", lines.len());
            for l in &lines {
                label.push_str(&dot_text(l));
                label.push_str("\\l");
            }
            let _ = writeln!(s, "        \"legend:{key}\" [label=\"{label}\"{}];", styled(mark));
        }
        s.push_str("        \"legend:unchanged\" [label=\"unchanged\"];\n    }\n");
    }
    s.push_str("}\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Where the layout puts things, in pixels.
const NODE_H: f64 = 34.0;
const GAP_Y: f64 = 8.0;
const GAP_X: f64 = 110.0;
const MARGIN: f64 = 16.0;
const ID_FONT: f64 = 13.0;
/// A generous average advance of the sans-serif faces at 13 px (their widest lowercase
/// ids run at about 7 px a character): boxes are sized from it, since the page cannot
/// measure text without a script.
const CHAR_W: f64 = 7.6;

/// One slot of a column: a target, or a waypoint of an edge crossing the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Node(usize),
    /// Edge (from, to), the waypoint in this column.
    Via(usize, usize),
}

/// The layered layout: the slots of each column, in order, and their centres.
struct Layout {
    columns: Vec<Vec<Slot>>,
    x: Vec<f64>,
    widths: Vec<f64>,
    /// The vertical centre of each slot, by column.
    y: HashMap<(usize, Slot), f64>,
    width: f64,
    height: f64,
}

fn layout(graph: &Graph) -> Layout {
    let index: HashMap<&str, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let deps: Vec<Vec<usize>> =
        graph.nodes.iter().map(|n| n.deps.iter().filter_map(|d| index.get(d.as_str()).copied()).collect()).collect();
    // Column: the longest path from a target built from nothing (nodes come dependencies
    // first; the loop settles any other order too, the graph being acyclic).
    let mut rank = vec![0usize; graph.nodes.len()];
    for _ in 0..graph.nodes.len() {
        let mut moved = false;
        for i in 0..graph.nodes.len() {
            let r = deps[i].iter().map(|&d| rank[d] + 1).max().unwrap_or(0);
            if r != rank[i] {
                rank[i] = r;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let ranks = rank.iter().max().map_or(0, |r| r + 1);
    let mut columns: Vec<Vec<Slot>> = vec![Vec::new(); ranks];
    for (i, r) in rank.iter().enumerate() {
        columns[*r].push(Slot::Node(i));
    }
    // Edges that skip columns get a waypoint in each column they cross.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (to, ds) in deps.iter().enumerate() {
        for &from in ds {
            edges.push((from, to));
            for col in columns.iter_mut().take(rank[to]).skip(rank[from] + 1) {
                col.push(Slot::Via(from, to));
            }
        }
    }
    // Neighbours of a slot of column `c` in the column before and after it.
    let left = |c: usize, slot: Slot| -> Vec<Slot> {
        match slot {
            Slot::Node(i) => deps[i].iter().map(|&d| if rank[i] - rank[d] > 1 { Slot::Via(d, i) } else { Slot::Node(d) }).collect(),
            Slot::Via(from, _) if c - 1 == rank[from] => vec![Slot::Node(from)],
            via => vec![via],
        }
    };
    let right = |c: usize, slot: Slot| -> Vec<Slot> {
        match slot {
            Slot::Node(i) => edges
                .iter()
                .filter(|(f, _)| *f == i)
                .map(|&(f, t)| if rank[t] - rank[f] > 1 { Slot::Via(f, t) } else { Slot::Node(t) })
                .collect(),
            Slot::Via(_, to) if c + 1 == rank[to] => vec![Slot::Node(to)],
            via => vec![via],
        }
    };
    // Order within columns: each slot towards the mean position of its neighbours,
    // sweeping right then left, a few times (positions centred, so columns of different
    // lengths compare).
    let position =
        |col: &[Slot], s: Slot| -> Option<f64> { col.iter().position(|x| *x == s).map(|p| p as f64 - (col.len() as f64 - 1.0) / 2.0) };
    for _ in 0..4 {
        for c in 1..columns.len() {
            let (before, rest) = columns.split_at_mut(c);
            reorder(&mut rest[0], |s| mean(left(c, s).iter().filter_map(|n| position(&before[c - 1], *n))));
        }
        for c in (0..columns.len().saturating_sub(1)).rev() {
            let (here, after) = columns.split_at_mut(c + 1);
            reorder(&mut here[c], |s| mean(right(c, s).iter().filter_map(|n| position(&after[0], *n))));
        }
    }
    // Widths from the longest label of each column; x the column's left edge.
    let label_w = |i: usize| (graph.nodes[i].id.chars().count().max(graph.nodes[i].kind.chars().count()) as f64) * CHAR_W + 24.0;
    let widths: Vec<f64> = columns
        .iter()
        .map(|col| col.iter().filter_map(|s| if let Slot::Node(i) = s { Some(label_w(*i)) } else { None }).fold(40.0, f64::max))
        .collect();
    let mut x = Vec::new();
    let mut at = MARGIN;
    for w in &widths {
        x.push(at);
        at += w + GAP_X;
    }
    let width = (at - GAP_X + MARGIN).max(2.0 * MARGIN);
    // Heights: targets take a row, waypoints a thin one; every column centred.
    let slot_h = |s: &Slot| if matches!(s, Slot::Node(_)) { NODE_H } else { 8.0 };
    let col_h = |col: &Vec<Slot>| col.iter().map(|s| slot_h(s) + GAP_Y).sum::<f64>() - GAP_Y;
    let tallest = columns.iter().map(col_h).fold(0.0, f64::max);
    let mut y = HashMap::new();
    for (c, col) in columns.iter().enumerate() {
        let mut top = MARGIN + (tallest - col_h(col)) / 2.0;
        for s in col {
            y.insert((c, *s), top + slot_h(s) / 2.0);
            top += slot_h(s) + GAP_Y;
        }
    }
    Layout { columns, x, widths, y, width, height: tallest.max(0.0) + 2.0 * MARGIN }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Sorts a column by `key`, keeping slots without one where they are relative to the rest.
fn reorder(col: &mut [Slot], key: impl Fn(Slot) -> Option<f64>) {
    let mut keyed: Vec<(f64, usize, Slot)> =
        col.iter().enumerate().map(|(i, s)| (key(*s).unwrap_or(i as f64 - (col.len() as f64 - 1.0) / 2.0), i, *s)).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (slot, (_, _, s)) in col.iter_mut().zip(keyed) {
        *slot = s;
    }
}

/// A self-contained HTML page: the graph as an inline SVG (no script, nothing fetched),
/// the legend, and the list of what the change touches.
pub fn html_page(graph: &Graph) -> String {
    let l = layout(graph);
    let index: HashMap<&str, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let column_of: HashMap<usize, usize> = l
        .columns
        .iter()
        .enumerate()
        .flat_map(|(c, col)| col.iter().filter_map(move |s| if let Slot::Node(i) = s { Some((*i, c)) } else { None }))
        .collect();
    let highlight = graph.compared_with.is_some();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#868e96"/></marker><marker id="arrow-hot" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{hot}"/></marker></defs>"##,
        w = l.width.ceil(),
        h = l.height.ceil(),
        hot = CHANGED.1,
    );
    // Edges first, under the boxes: from the right edge of a target to the left edge of
    // what is built from it, through the waypoints of the columns in between.
    for (to, n) in graph.nodes.iter().enumerate() {
        for d in &n.deps {
            let Some(&from) = index.get(d.as_str()) else { continue };
            let (cf, ct) = (column_of[&from], column_of[&to]);
            let mut points = vec![(l.x[cf] + l.widths[cf], l.y[&(cf, Slot::Node(from))])];
            for c in cf + 1..ct {
                let y = l.y[&(c, Slot::Via(from, to))];
                points.push((l.x[c], y));
                points.push((l.x[c] + l.widths[c], y));
            }
            points.push((l.x[ct] - 2.0, l.y[&(ct, Slot::Node(to))]));
            let mut path = format!("M{:.1},{:.1}", points[0].0, points[0].1);
            for pair in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                if (y1 - y0).abs() < 0.5 {
                    let _ = write!(path, " L{x1:.1},{y1:.1}");
                } else {
                    let mid = (x0 + x1) / 2.0;
                    let _ = write!(path, " C{mid:.1},{y0:.1} {mid:.1},{y1:.1} {x1:.1},{y1:.1}");
                }
            }
            let hot = highlight && n.mark != Mark::Unchanged && graph.nodes[from].mark != Mark::Unchanged;
            let (stroke, marker, wide) = if hot { (CHANGED.1, "arrow-hot", 1.8) } else { ("#adb5bd", "arrow", 1.2) };
            let _ = write!(svg, r#"<path d="{path}" fill="none" stroke="{stroke}" stroke-width="{wide}" marker-end="url(#{marker})"/>"#);
        }
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        let c = column_of[&i];
        let (x, w, cy) = (l.x[c], l.widths[c], l.y[&(c, Slot::Node(i))]);
        let (fill, stroke) = colors(if highlight { n.mark } else { Mark::Unchanged });
        let width = match (highlight, n.mark) {
            (true, Mark::Changed) => 3.0,
            (true, Mark::Affected) => 2.0,
            _ => 1.0,
        };
        let tip = match &n.why {
            Some(why) => format!("{} ({}): {why}", n.id, n.kind),
            None => format!("{} ({})", n.id, n.kind),
        };
        let _ = write!(
            svg,
            r##"<g><title>{tip}</title><rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{ID_FONT}" fill="#212529">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10.5" fill="#495057">{}</text></g>"##,
            cy - NODE_H / 2.0,
            x + w / 2.0,
            cy - 1.0,
            escape(&n.id),
            x + w / 2.0,
            cy + 12.0,
            escape(&n.kind),
            tip = escape(&tip),
        );
    }
    svg.push_str("</svg>");

    let mut legend = String::new();
    let mut lists = String::new();
    if let Some(against) = &graph.compared_with {
        let swatch = |mark: Mark, text: &str, count: Option<usize>| {
            let (fill, stroke) = colors(mark);
            let count = count.map(|c| format!(" ({c})")).unwrap_or_default();
            format!(r#"<span class="key"><span class="swatch" style="background:{fill};border-color:{stroke}"></span>{text}{count}</span>"#)
        };
        let (changed, affected) = (graph.marked(Mark::Changed), graph.marked(Mark::Affected));
        let _ = write!(
            legend,
            r#"<p class="legend">Compared with {}: {}{}{}</p>"#,
            escape(against),
            swatch(Mark::Changed, "changed: its own inputs differ", Some(changed.len())),
            swatch(Mark::Affected, "affected: built from a changed target", Some(affected.len())),
            swatch(Mark::Unchanged, "unchanged", None),
        );
        if changed.is_empty() && affected.is_empty() {
            lists.push_str("<p>Nothing changed: every target's input hash is the same.</p>");
        }
        for (title, nodes) in [("Changed", changed), ("Affected", affected)] {
            if nodes.is_empty() {
                continue;
            }
            let _ = write!(lists, "<h2>{title}</h2><ul>");
            for n in nodes {
                let why = n.why.as_deref().map(|w| format!(": {}", escape(w))).unwrap_or_default();
                let _ = write!(lists, "<li><code>{}</code>{why}</li>", escape(&n.id));
            }
            lists.push_str("</ul>");
        }
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:20px 24px;color:#212529}}h1{{font-size:18px;margin:0 0 4px}}h2{{font-size:15px;margin:16px 0 4px}}p{{margin:4px 0;font-size:13px}}ul{{margin:0;padding-left:20px;font-size:13px}}.legend{{display:flex;gap:18px;align-items:center;flex-wrap:wrap}}.key{{display:inline-flex;align-items:center;gap:6px}}.swatch{{display:inline-block;width:18px;height:12px;border:2px solid;border-radius:3px}}svg{{display:block;margin-top:8px}}</style>
</head><body>
<h1>{title}</h1>
<p>{nodes} targets, {edges} edges; each arrow points from a target to what is built from it.</p>
{legend}
{svg}
{lists}
</body></html>
"#,
        title = escape(&graph.title),
        nodes = graph.nodes.len(),
        edges = graph.edge_count(),
    )
}

/// The layout's boxes, for tests: id to (left, top, right, bottom).
pub fn boxes(graph: &Graph) -> BTreeMap<String, (f64, f64, f64, f64)> {
    let l = layout(graph);
    let mut out = BTreeMap::new();
    for (c, col) in l.columns.iter().enumerate() {
        for s in col {
            if let Slot::Node(i) = s {
                let cy = l.y[&(c, *s)];
                out.insert(graph.nodes[*i].id.clone(), (l.x[c], cy - NODE_H / 2.0, l.x[c] + l.widths[c], cy + NODE_H / 2.0));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, kind: &str, deps: &[&str], mark: Mark) -> Node {
        let why = match mark {
            Mark::Changed => Some("file handler.py modified".to_owned()),
            Mark::Affected => Some("dependency tradai/lambda-base changed".to_owned()),
            Mark::Unchanged => None,
        };
        Node { id: id.into(), kind: kind.into(), deps: deps.iter().map(|d| (*d).to_owned()).collect(), mark, why }
    }

    fn graph(compared: bool) -> Graph {
        let mut nodes = vec![
            node("tradai-common", "wheel", &[], Mark::Unchanged),
            node("python-base", "local-image", &[], Mark::Unchanged),
            node("site-packages:tradai-common", "site-packages", &["tradai-common"], Mark::Unchanged),
            node("tradai/lambda-base", "image", &["site-packages:tradai-common", "python-base"], Mark::Changed),
        ];
        for n in ["a", "b", "c"] {
            nodes.push(node(&format!("tradai/lambda-{n}"), "image", &["tradai/lambda-base"], Mark::Affected));
        }
        nodes.push(node("wheels:web", "wheelhouse", &[], Mark::Unchanged));
        nodes.push(node("tradai/web", "image", &["wheels:web", "python-base"], Mark::Unchanged));
        Graph { title: "Target graph <x>".into(), nodes, compared_with: compared.then(|| "the last build recorded here".into()) }
    }

    #[test]
    fn mermaid_has_every_node_edge_and_highlight() {
        let m = mermaid(&graph(true));
        assert!(m.contains("flowchart LR\n"), "{m}");
        assert!(m.contains("    tradai_lambda_base[\"tradai/lambda-base<br/>image\"]:::changed\n"), "{m}");
        assert!(m.contains("    tradai_lambda_a[\"tradai/lambda-a<br/>image\"]:::affected\n"), "{m}");
        assert!(m.contains("    tradai_common[\"tradai-common<br/>wheel\"]\n"), "unchanged targets carry no class: {m}");
        assert!(m.contains("    site_packages_tradai_common --> tradai_lambda_base\n"));
        assert_eq!(m.matches(" --> ").count(), 8);
        assert!(m.contains("classDef changed fill:#ffd8a8"));
        assert!(
            m.contains("legend_changed[\"changed: its own inputs differ (1)<br/>tradai/lambda-base: file handler.py modified\"]:::changed"),
            "{m}"
        );
        assert!(m.contains("legend_affected[\"affected: built from a changed target (3)<br/>tradai/lambda-a<br/>tradai/lambda-b<br/>tradai/lambda-c\"]:::affected"), "{m}");
        assert!(m.contains("title: Target graph #lt;x#gt;"), "{m}");
        // Without a comparison: no class, no legend.
        let plain = mermaid(&graph(false));
        assert!(!plain.contains(":::") && !plain.contains("classDef") && !plain.contains("legend"), "{plain}");
    }

    #[test]
    fn dot_has_every_node_edge_and_highlight() {
        let d = dot(&graph(true));
        assert!(d.starts_with("digraph targets {\n") && d.ends_with("}\n"), "{d}");
        assert!(
            d.contains("\"tradai/lambda-base\" [label=\"tradai/lambda-base\\nimage\", class=\"changed\", fillcolor=\"#ffd8a8\""),
            "{d}"
        );
        assert!(d.contains("\"tradai/lambda-b\" [label=\"tradai/lambda-b\\nimage\", class=\"affected\""), "{d}");
        assert!(d.contains("\"python-base\" -> \"tradai/web\";"));
        assert_eq!(d.matches(" -> ").count(), 8);
        assert!(
            d.contains("subgraph cluster_legend")
                && d.contains("changed: its own inputs differ (1)\\ltradai/lambda-base: file handler.py modified\\l"),
            "{d}"
        );
        let plain = dot(&graph(false));
        assert!(!plain.contains("class=") && !plain.contains("legend"), "{plain}");
    }

    #[test]
    fn the_layout_puts_targets_in_columns_by_longest_path_with_no_overlap() {
        let g = graph(true);
        let b = boxes(&g);
        let left = |id: &str| b[id].0;
        assert!(left("tradai-common") < left("site-packages:tradai-common"));
        assert!(left("site-packages:tradai-common") < left("tradai/lambda-base"));
        assert_eq!(left("python-base"), left("tradai-common"), "built from nothing: first column");
        assert_eq!(left("tradai/lambda-a"), left("tradai/lambda-c"));
        let all: Vec<&(f64, f64, f64, f64)> = b.values().collect();
        for (i, p) in all.iter().enumerate() {
            for q in &all[i + 1..] {
                let apart = p.2 <= q.0 || q.2 <= p.0 || p.3 <= q.1 || q.3 <= p.1;
                assert!(apart, "boxes overlap: {p:?} {q:?}");
            }
        }
        // A box is wide enough for its id at the assumed advance.
        let (l, _, r, _) = b["site-packages:tradai-common"];
        assert!(r - l >= "site-packages:tradai-common".len() as f64 * 7.0);
    }

    #[test]
    fn the_page_is_self_contained_escaped_and_lists_the_change() {
        let page = html_page(&graph(true));
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("http").count(), page.matches("http://www.w3.org/2000/svg").count(), "nothing fetched");
        assert!(page.contains("<h1>Target graph &lt;x&gt;</h1>"));
        assert_eq!(page.matches("<rect ").count(), 9, "one box per target");
        assert_eq!(page.matches("<path d=\"M").count() - 2, 8, "one line per edge (and the two arrowheads)");
        assert!(page.contains("<li><code>tradai/lambda-base</code>: file handler.py modified</li>"), "{page}");
        assert!(page.contains("affected: built from a changed target (3)"));
        assert_eq!(
            page.matches("stroke=\"#d9480f\" stroke-width=\"1.8\"").count(),
            3,
            "the edges from changed to affected targets are hot"
        );
        let plain = html_page(&graph(false));
        assert!(!plain.contains("Compared with") && !plain.contains("#ffd8a8"), "no highlight without a comparison");
    }
}
