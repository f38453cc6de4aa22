//! The layering of `src/` (ARCHITECTURE.md): each folder uses only the folders below it, `tch` is
//! named only in `uflow/`, egui, eframe and rfd only in `gui/`, clap only in `cli/`, and no file
//! imports another in a loop. This test reads the sources, resolves every path they name to the
//! file that defines it, and prints each broken rule with its file and line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The layers, lowest first. A file may name modules of its own layer and of lower ones.
const LAYERS: [&str; 6] = ["stats", "project", "uflow", "app", "gui", "cli"];

/// External crates that only one layer may name.
const CRATE_HOMES: [(&str, &str); 5] = [
    ("tch", "uflow"),
    ("egui", "gui"),
    ("eframe", "gui"),
    ("rfd", "gui"),
    ("clap", "cli"),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Sep, // ::
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Other,
}

/// Tokens with their line numbers; comments, strings and character literals are dropped, so
/// paths in documentation or text never count.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let (mut i, mut line) = (0, 1);
    let mut out = Vec::new();
    let count_lines = |s: &[u8]| s.iter().filter(|&&c| c == b'\n').count();
    while i < b.len() {
        let c = b[i];
        let rest = &b[i..];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += (b[i] == b'\n') as usize;
                    i += 1;
                }
            }
        } else if c == b'"' || ((c == b'r' || c == b'b') && raw_or_byte_string(rest).is_some()) {
            let end = i + string_len(rest);
            line += count_lines(&b[i..end]);
            i = end;
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if rest.len() > 2 && rest[1] == b'\\' {
                let mut j = 2;
                while j < rest.len() && rest[j] != b'\'' {
                    j += 1;
                }
                i += j + 1;
            } else if let Some(ch) = src[i + 1..].chars().next()
                && rest.get(1 + ch.len_utf8()) == Some(&b'\'')
            {
                i += 2 + ch.len_utf8();
            } else {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(src[s..i].to_string()), line));
        } else {
            let t = match c {
                b':' if rest.starts_with(b"::") => {
                    i += 1;
                    Tok::Sep
                }
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b';' => Tok::Semi,
                b',' => Tok::Comma,
                b'*' => Tok::Star,
                _ => Tok::Other,
            };
            i += 1;
            out.push((t, line));
        }
    }
    out
}

/// Whether `s` starts a raw or byte string (`r"`, `r#"`, `b"`, `br"`, `br#"`).
fn raw_or_byte_string(s: &[u8]) -> Option<()> {
    let mut j = 0;
    if s.first() == Some(&b'b') {
        j += 1;
    }
    if s.get(j) == Some(&b'r') {
        j += 1;
        while s.get(j) == Some(&b'#') {
            j += 1;
        }
    }
    (j > 0 && s.get(j) == Some(&b'"')).then_some(())
}

/// Length of the string literal at the start of `s`.
fn string_len(s: &[u8]) -> usize {
    let mut j = 0;
    if s[j] == b'b' {
        j += 1;
    }
    if s[j] == b'r' {
        j += 1;
        let mut hashes = 0;
        while s[j] == b'#' {
            hashes += 1;
            j += 1;
        }
        j += 1; // opening quote
        loop {
            if j >= s.len() {
                return s.len();
            }
            if s[j] == b'"' && s[j + 1..].iter().take(hashes).all(|&c| c == b'#') {
                return j + 1 + hashes;
            }
            j += 1;
        }
    }
    j += 1; // opening quote
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// A path a file names: its segments (resolved against the crate root when they start with
/// `crate`, `super` or `self`) and its line.
#[derive(Debug, Clone)]
struct Named {
    segments: Vec<String>,
    line: usize,
}

/// Every path a file names, with `super`/`self`/`crate` resolved from `module` (the file's
/// module path), inline modules (`mod tests { .. }`) followed, and use-tree groups expanded.
fn named_paths(src: &str, module: &[String]) -> Vec<Named> {
    let toks = lex(src);
    let mut out = Vec::new();
    // Module path of each open brace: inline modules push a segment.
    let mut scopes: Vec<Vec<String>> = vec![module.to_vec()];
    let mut pending_mod: Option<String> = None;
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let mut i = 0;
    while i < toks.len() {
        let cur = scopes.last().cloned().unwrap_or_default();
        match &toks[i].0 {
            Tok::Open => {
                let mut s = cur.clone();
                if let Some(m) = pending_mod.take() {
                    s.push(m);
                }
                scopes.push(s);
                i += 1;
            }
            Tok::Close => {
                if scopes.len() > 1 {
                    scopes.pop();
                }
                i += 1;
            }
            Tok::Semi => {
                pending_mod = None;
                i += 1;
            }
            Tok::Ident(k) if k == "mod" => {
                if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                    pending_mod = Some(name.clone());
                }
                i += 2;
            }
            Tok::Ident(k) if k == "use" => {
                let mut paths = Vec::new();
                i = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for (p, line) in paths {
                    let resolved = resolve(&p, &cur, &aliases);
                    if let Some(last) = p.last()
                        && last != "*"
                        && last != "self"
                    {
                        aliases.insert(last.clone(), resolved.clone());
                    } else if p.last().map(String::as_str) == Some("self") && p.len() > 1 {
                        let mut r = resolved.clone();
                        r.pop();
                        aliases.insert(p[p.len() - 2].clone(), r);
                    }
                    out.push(Named {
                        segments: resolved,
                        line,
                    });
                }
            }
            Tok::Ident(first) => {
                // A path in code: IDENT (:: IDENT)*, when it goes somewhere (`a::b`).
                let line = toks[i].1;
                let mut p = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Sep) {
                    match toks.get(j + 1).map(|t| &t.0) {
                        Some(Tok::Ident(s)) => {
                            p.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if p.len() > 1 {
                    out.push(Named {
                        segments: resolve(&p, &cur, &aliases),
                        line,
                    });
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Expand a use tree starting at `i`; returns the index after it.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut p = prefix;
    loop {
        match toks.get(i) {
            Some((Tok::Ident(s), line)) => {
                p.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::Sep) {
                    i += 1;
                    continue;
                }
                // `as alias`: the path is what matters.
                if let Some((Tok::Ident(a), _)) = toks.get(i)
                    && a == "as"
                {
                    i += 2;
                }
                out.push((p, *line));
                return i;
            }
            Some((Tok::Star, line)) => {
                p.push("*".into());
                out.push((p, *line));
                return i + 1;
            }
            Some((Tok::Open, _)) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, p.clone(), out),
                    }
                }
            }
            _ => return i,
        }
    }
}

/// A path made absolute: `crate::a` -> [a], `super::a` -> parent + [a], `self::a` -> module +
/// [a]; a path that starts with an alias a `use` brought in is expanded. Others stay as they are
/// (external crates, or local items).
fn resolve(p: &[String], module: &[String], aliases: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut base: Vec<String>;
    let mut rest = p;
    match p.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &p[1..];
        }
        Some("self") => {
            base = module.to_vec();
            rest = &p[1..];
        }
        Some("super") => {
            base = module.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            if let Some(a) = aliases.get(first) {
                base = a.clone();
                rest = &p[1..];
            } else {
                // Relative to the module (a child module), or external: decided by the caller.
                base = module.to_vec();
                base.insert(0, "?".into());
            }
        }
        None => return Vec::new(),
    }
    base.extend(rest.iter().cloned());
    base
}

/// Module path of a source file under `src/`.
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(String::from).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod") | Some("lib") | Some("main")
    ) {
        parts.pop();
    }
    parts
}

#[derive(Debug)]
struct Violation {
    file: String,
    line: usize,
    rule: String,
}

/// Check a source tree given as (path under `src/`, contents).
fn check(files: &BTreeMap<String, String>) -> Vec<Violation> {
    let modules: BTreeMap<Vec<String>, String> = files
        .keys()
        .filter(|f| f.as_str() != "main.rs")
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let layer_of = |file: &str| {
        let top = file.split('/').next().unwrap_or("");
        LAYERS.iter().position(|l| *l == top)
    };
    let mut out = Vec::new();
    let mut edges: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (file, src) in files {
        let module = module_of(file);
        let home = file.split('/').next().unwrap_or("");
        for n in named_paths(src, &module) {
            let mut segs = n.segments.clone();
            if segs.first().map(String::as_str) == Some("?") {
                // Relative: a child module of the file's module, else an external name.
                let rel = segs[1 + module.len()..].to_vec();
                let mut child = module.clone();
                child.extend(rel.iter().take(1).cloned());
                if !rel.is_empty() && modules.contains_key(&child) {
                    segs = module.clone();
                    segs.extend(rel);
                } else {
                    let name = rel.first().cloned().unwrap_or_default();
                    for (krate, allowed) in CRATE_HOMES {
                        if name == krate && home != allowed && file != "main.rs" {
                            out.push(Violation {
                                file: file.clone(),
                                line: n.line,
                                rule: format!("`{krate}` is named outside {allowed}/"),
                            });
                        }
                    }
                    continue;
                }
            }
            // The longest prefix that is a module: the file that defines what is named.
            let target = (0..=segs.len())
                .rev()
                .find_map(|k| modules.get(&segs[..k]))
                .cloned();
            let Some(target) = target else { continue };
            if target == *file || target == "lib.rs" {
                continue;
            }
            if let (Some(from), Some(to)) = (layer_of(file), layer_of(&target))
                && to > from
            {
                out.push(Violation {
                    file: file.clone(),
                    line: n.line,
                    rule: format!(
                        "{} (layer {}) names {} of the higher layer {}",
                        file, LAYERS[from], target, LAYERS[to]
                    ),
                });
            }
            if home == "gui" && target.starts_with("uflow/") {
                out.push(Violation {
                    file: file.clone(),
                    line: n.line,
                    rule: format!(
                        "the window names {target}: it reaches libtorch only through app::background"
                    ),
                });
            }
            edges
                .entry(file.clone())
                .or_default()
                .entry(target)
                .or_insert(n.line);
        }
    }
    for cycle in cycles(&edges) {
        let first = &cycle[0];
        let line = edges[first][&cycle[1 % cycle.len()]];
        out.push(Violation {
            file: first.clone(),
            line,
            rule: format!("files import each other in a loop: {}", cycle.join(" -> ")),
        });
    }
    out
}

/// The loops of a file graph (strongly connected components of two or more files), each as a
/// path through its files.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, usize>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct S<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, usize>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(ws) = s.edges.get(v) {
            for w in ws.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.reverse();
                comp.push(comp[0].clone());
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_source_tree_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&root);
    for layer in LAYERS {
        assert!(
            files.keys().any(|f| f.starts_with(&format!("{layer}/"))),
            "no folder src/{layer}/"
        );
    }
    let broken = check(&files);
    let report: Vec<String> = broken
        .iter()
        .map(|v| format!("src/{}:{}: {}", v.file, v.line, v.rule))
        .collect();
    assert!(report.is_empty(), "\n{}\n", report.join("\n"));
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

#[test]
fn the_checker_catches_each_kind_of_violation() {
    let base = [
        (
            "lib.rs",
            "pub mod stats; pub mod project; pub mod uflow; pub mod gui;",
        ),
        ("stats/mod.rs", "pub mod nfa;"),
        (
            "project/mod.rs",
            "pub mod labels; pub mod storage;\npub struct Project;",
        ),
        ("uflow/mod.rs", "pub mod model;"),
        ("gui/mod.rs", "mod detection;"),
    ];
    let ok = tree(&[
        base[0],
        base[1],
        base[2],
        base[3],
        base[4],
        (
            "stats/nfa.rs",
            "// crate::project::Project in a comment\nfn f() { let s = \"crate::uflow::model\"; }",
        ),
        (
            "project/labels.rs",
            "use super::storage::write;\nuse crate::stats::nfa;",
        ),
        ("project/storage.rs", "pub fn write() {}"),
        (
            "uflow/model.rs",
            "use tch::Tensor;\nuse crate::project::Project;",
        ),
        (
            "gui/detection.rs",
            "use super::*;\nfn f(ui: &mut egui::Ui) {}",
        ),
    ]);
    assert!(check(&ok).is_empty(), "{:?}", check(&ok));

    // An upward import, written three ways.
    for src in [
        "use crate::uflow::model::Model;",
        "fn f() { crate::uflow::model::run(); }",
        "use crate::{uflow::{model}};",
    ] {
        let mut t = ok.clone();
        t.insert("project/storage.rs".into(), src.into());
        let v = check(&t);
        assert_eq!(v.len(), 1, "{src}: {v:?}");
        assert!(v[0].rule.contains("higher layer uflow"), "{:?}", v[0]);
        assert_eq!((v[0].file.as_str(), v[0].line), ("project/storage.rs", 1));
    }
    // tch outside uflow/, egui outside gui/.
    let mut t = ok.clone();
    t.insert(
        "stats/nfa.rs".into(),
        "fn f() {}\nfn g(x: tch::Tensor) {}".into(),
    );
    t.insert("project/storage.rs".into(), "use egui::Color32;".into());
    let v = check(&t);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().any(|v| v.rule.contains("`tch`") && v.line == 2));
    assert!(v.iter().any(|v| v.rule.contains("`egui`")));
    // The window naming the model directly.
    let mut t = ok.clone();
    t.insert(
        "gui/detection.rs".into(),
        "use crate::uflow::model::Model;".into(),
    );
    let v = check(&t);
    assert!(
        v.iter()
            .any(|v| v.rule.contains("only through app::background")),
        "{v:?}"
    );
    // A loop between two files of one layer (through an alias and a child module).
    let mut t = ok.clone();
    t.insert(
        "project/storage.rs".into(),
        "use crate::project::labels;\nfn f() { labels::g(); }".into(),
    );
    let v = check(&t);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].rule.contains("loop"), "{:?}", v[0]);
    assert!(v[0].rule.contains("project/labels.rs") && v[0].rule.contains("project/storage.rs"));
    // A mod.rs that uses its child while the child uses it.
    let mut t = ok.clone();
    t.insert(
        "gui/mod.rs".into(),
        "mod detection;\nuse detection::Bar;".into(),
    );
    let v = check(&t);
    assert!(v.iter().any(|v| v.rule.contains("loop")), "{v:?}");
}

#[test]
fn the_lexer_skips_literals_and_keeps_lines() {
    let src =
        "let a = 'x';\nlet s = r#\"crate::uflow\"#;\nfn f<'a>(x: &'a str) { crate::uflow::m(); }";
    let n = named_paths(src, &[]);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        (n[0].segments.join("::"), n[0].line),
        ("uflow::m".to_string(), 3)
    );
}
