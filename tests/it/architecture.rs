//! ARCHITECTURE.md stays true: every path its tables name exists, every file of a crate's
//! `src/` (and its build script) is named in its crate's table (itself, or a folder
//! holding it), and every workspace member is in the crates table with a section of its
//! own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support;

/// One `## ` section of the document: the folder its table's paths are relative to (the
/// first backticked `name/` in its heading, else the repository root) and the backticked
/// paths of its tables' first column.
struct Section {
    heading: String,
    root: PathBuf,
    paths: Vec<String>,
}

fn sections(doc: &str, repo: &Path) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let root = backticked(heading)
                .into_iter()
                .find(|t| t.ends_with('/'))
                .map_or_else(|| repo.to_path_buf(), |t| repo.join(t));
            out.push(Section {
                heading: heading.to_string(),
                root,
                paths: Vec::new(),
            });
        } else if let (Some(row), Some(section)) = (line.strip_prefix("| "), out.last_mut()) {
            let first = row.split(" | ").next().unwrap_or_default();
            section.paths.extend(backticked(first));
        }
    }
    out
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every file under `root/dir`, as paths relative to `root`.
fn source_files(root: &Path, dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.unwrap();
        let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            files.extend(source_files(root, &rel));
        } else {
            files.push(rel);
        }
    }
    files
}

#[test]
fn every_path_architecture_md_names_exists_and_every_source_file_is_named() {
    let repo = support::repo_root();
    let doc = std::fs::read_to_string(repo.join("ARCHITECTURE.md")).unwrap();
    let sections = sections(&doc, &repo);
    assert!(sections.len() >= 8, "sections: {}", sections.len());
    let mut missing = Vec::new();
    let mut unnamed = Vec::new();
    for s in &sections {
        for p in &s.paths {
            if !s.root.join(p).exists() {
                missing.push(format!(
                    "{} (section {:?})",
                    s.root.join(p).display(),
                    s.heading
                ));
            }
        }
        if s.root == repo {
            continue;
        }
        // A file is named by its own path or by a folder (`src/jpeg/`) holding it.
        let named: BTreeSet<&str> = s.paths.iter().map(String::as_str).collect();
        let covered = |file: &str| {
            named
                .iter()
                .any(|p| *p == file || (p.ends_with('/') && file.starts_with(p)))
        };
        let mut files = source_files(&s.root, "src");
        if s.root.join("build.rs").exists() {
            files.push("build.rs".into());
        }
        for file in files {
            if !covered(&file) {
                unnamed.push(format!("{}", s.root.join(&file).display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:#?}"
    );
    assert!(
        unnamed.is_empty(),
        "source files or folders ARCHITECTURE.md does not name: {unnamed:#?}"
    );

    // Every workspace member has its row in the crates table, and its own section.
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    let members_line = manifest.lines().find(|l| l.starts_with("members")).unwrap();
    let crates = &sections
        .iter()
        .find(|s| s.heading == "Crates")
        .unwrap()
        .paths;
    for member in backticked(&members_line.replace('"', "`")) {
        assert!(
            crates.contains(&format!("{member}/")),
            "{member} is not in the crates table"
        );
        let own = member == "tests" || sections.iter().any(|s| s.root == repo.join(&member));
        assert!(own, "{member} has no section of its own");
    }
}

/// The code of a source file without its `#[cfg(test)]` part (tests may reach anywhere).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names that follow `prefix` (`crate::`, `super::`) in `code`: `crate::config::X`
/// gives `config`; `use crate::{a, b::C}` gives `a` and `b`.
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `foo_crate::` is not `crate::`
        }
        let rest = &code[i + prefix.len()..];
        let group = match rest.strip_prefix('{') {
            Some(inner) => inner.split('}').next().unwrap_or_default().to_string(),
            None => rest.to_string(),
        };
        for part in group.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            if rest.starts_with('{') {
                continue;
            }
            break;
        }
    }
    names
}

/// A circle in a graph of named nodes, if there is one.
fn find_circle(
    edges: &std::collections::BTreeMap<String, BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_circle_between_the_modules_of_a_crate_or_between_sibling_files() {
    let repo = support::repo_root();
    let mut circles = Vec::new();
    for krate in [
        "infra",
        "proto",
        "kernels",
        "dataloader",
        "coordinator",
        "worker",
        "torchenv",
    ] {
        let src = repo.join(krate).join("src");
        let files: Vec<String> = source_files(&repo.join(krate), "src")
            .into_iter()
            .filter(|f| f.ends_with(".rs") && !f.ends_with("/tests.rs") && !f.contains("/tests/"))
            .collect();
        // Top-level modules: what `crate::name` refers to, from every file below them.
        let top = |file: &str| -> Option<String> {
            let rel = file.strip_prefix("src/").unwrap();
            let first = rel.split('/').next().unwrap().trim_end_matches(".rs");
            (!matches!(first, "lib" | "main")).then(|| first.to_string())
        };
        let modules: BTreeSet<String> = files.iter().filter_map(|f| top(f)).collect();
        let mut module_edges = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
        // Sibling files of one folder: what `super::name` refers to from a file beside it.
        let mut sibling_edges = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
        for file in &files {
            let code = non_test_code(&repo.join(krate).join(file));
            if let Some(from) = top(file) {
                for name in names_after(&code, "crate::") {
                    if modules.contains(&name) && name != from {
                        module_edges.entry(from.clone()).or_default().insert(name);
                    }
                }
            }
            let path = Path::new(file);
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem == "mod" || stem == "lib" || stem == "main" {
                continue;
            }
            let folder = path.parent().unwrap();
            for name in names_after(&code, "super::") {
                let sibling = folder.join(&name);
                let is_module = src
                    .parent()
                    .unwrap()
                    .join(sibling.with_extension("rs"))
                    .exists()
                    || src.parent().unwrap().join(&sibling).is_dir();
                if is_module && name != stem {
                    sibling_edges
                        .entry(format!("{}", folder.join(&stem).display()))
                        .or_default()
                        .insert(format!("{}", sibling.display()));
                }
            }
        }
        if let Some(c) = find_circle(&module_edges) {
            circles.push(format!("{krate}: modules {}", c.join(" -> ")));
        }
        if let Some(c) = find_circle(&sibling_edges) {
            circles.push(format!("{krate}: files {}", c.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}
