//! The domain's layering, checked: which top-level modules import which, read from the
//! `crate::` paths in their source. A module and its own children are one node. The test fails
//! when any import closes a cycle, so the modules can always be read from the ground up in the
//! order ARCHITECTURE.md gives.

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        path::Path,
    };

    /// Names the crate root re-exports, and the module each comes from.
    const ROOT_NAMES: &[(&str, &str)] = &[
        ("AccessError", "access"),
        ("Actor", "access"),
        ("Database", "db"),
        ("Limits", "limits"),
        ("InvalidInput", "text"),
    ];

    fn top_level_modules(src: &Path) -> BTreeSet<String> {
        std::fs::read_dir(src)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let name = path.file_stem()?.to_str()?.to_owned();
                (name != "lib" && (path.is_dir() || path.extension()? == "rs")).then_some(name)
            })
            .collect()
    }

    fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                rust_files(&entry.path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_owned());
        }
    }

    /// The crate modules (or root names) a source text names through `crate::`, tests left out.
    fn named(text: &str) -> BTreeSet<String> {
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        // Comments name modules without importing them.
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = BTreeSet::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::{c, d}, E}`: the names at the group's first level.
                let mut depth = 0;
                let mut current = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.insert(std::mem::take(&mut current));
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        current.push(c);
                    }
                }
                names.insert(current);
            } else {
                names.insert(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
        names
            .into_iter()
            .map(|n| {
                n.trim()
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .filter(|n| !n.is_empty())
            .collect()
    }

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules = top_level_modules(&src);
        let mut graph = BTreeMap::new();
        for module in &modules {
            let mut files = Vec::new();
            rust_files(&src.join(module), &mut files);
            rust_files(&src.join(format!("{module}.rs")), &mut files);
            let mut edges = BTreeSet::new();
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                for name in named(&text) {
                    let target = ROOT_NAMES
                        .iter()
                        .find(|(root, _)| *root == name)
                        .map_or(name.as_str(), |(_, module)| module);
                    if target != module && modules.contains(target) {
                        edges.insert(target.to_owned());
                    }
                }
            }
            graph.insert(module.clone(), edges);
        }
        graph
    }

    /// Edges `a -> b` where `b` reaches `a` again: the imports that make up cycles.
    fn cyclic_edges(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
        let reaches = |from: &str, to: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from.to_owned()];
            while let Some(at) = stack.pop() {
                if at == to {
                    return true;
                }
                if seen.insert(at.clone()) {
                    stack.extend(graph.get(&at).into_iter().flatten().cloned());
                }
            }
            false
        };
        graph
            .iter()
            .flat_map(|(from, tos)| tos.iter().map(move |to| (from.clone(), to.clone())))
            .filter(|(from, to)| reaches(to, from))
            .collect()
    }

    #[test]
    fn the_parser_reads_use_groups_paths_and_root_names() {
        let text = "use crate::{\n    AccessError, Database,\n    entities::{a, b},\n    gatherings::{self, X},\n};\n/// See `crate::mail`.\nfn f() { crate::time::after(x); }\n#[cfg(test)]\nuse crate::people;";
        let found: Vec<_> = named(text).into_iter().collect();
        assert_eq!(
            found,
            ["AccessError", "Database", "entities", "gatherings", "time"]
        );
    }

    #[test]
    fn the_cycle_finder_finds_a_cycle_and_nothing_else() {
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a", "d"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        let found: Vec<_> = cyclic_edges(&graph).into_iter().collect();
        let expected: Vec<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn no_import_closes_a_cycle_between_domain_modules() {
        let cyclic = cyclic_edges(&graph());
        if std::env::var_os("PRINT_CYCLES").is_some() {
            for (a, b) in &cyclic {
                println!("{a} -> {b}");
            }
        }
        assert!(
            cyclic.is_empty(),
            "these imports make a cycle between domain modules (see ARCHITECTURE.md for the \
             order they are read in): {cyclic:?}"
        );
    }
}
