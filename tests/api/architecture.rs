//! The layering of `docs/architecture.md`, checked on the source: no import cycle between the
//! modules of the library, diesel only in `db/`, actix-web only in `routes/` and `startup.rs`,
//! and `routes` imported by `startup` alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::repo_path;

/// The top-level module a source file belongs to (`src/db/members.rs` → `db`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Every library source file (not `main.rs`, not `lib.rs`, not test files), with its code
/// before any `#[cfg(test)]` and without comments.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = repo_path("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).expect("under src").to_path_buf();
            let name = relative.to_string_lossy();
            if name == "main.rs" || name == "lib.rs" || name.ends_with("/tests.rs") {
                return None;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            Some((module_of(&relative), code))
        })
        .collect()
}

/// The modules each module names through `crate::…` (single paths and `{…}` groups).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in sources() {
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let graph = imports();
    // Depth-first search for a back edge; the cycle is reported as the path that closes it.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let cycle = visit(module, &graph, &mut done, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" → ")
        );
    }
    assert!(graph.len() > 10, "the walk found the modules: {graph:?}");
}

#[test]
fn only_db_knows_diesel_and_only_the_web_layer_knows_actix() {
    for (module, code) in sources() {
        if code.contains("diesel") {
            assert_eq!(module, "db", "{module} uses diesel");
        }
        if code.contains("actix_web") {
            assert!(
                module == "routes" || module == "startup",
                "{module} uses actix-web"
            );
        }
    }
}

#[test]
fn only_startup_imports_the_routes() {
    for (module, uses) in imports() {
        if uses.contains("routes") {
            assert_eq!(module, "startup", "{module} imports routes");
        }
    }
}
