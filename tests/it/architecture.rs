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
