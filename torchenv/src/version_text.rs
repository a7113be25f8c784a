// Shared by the build script and the library (included, not a module of its own).

/// The files that say a libtorch folder's version: a torch package's `version.py`, a
/// libtorch archive's `build-version`.
const VERSION_FILES: [&str; 2] = ["version.py", "build-version"];

/// The version the first of [`VERSION_FILES`] in `dir` says.
fn version_of_dir(dir: &std::path::Path) -> Option<String> {
    VERSION_FILES
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .and_then(|text| version_in(&text))
}

/// The version in the text of a torch package's `version.py` (`__version__ = '2.11.0+cu130'`)
/// or a libtorch archive's `build-version` (`2.11.0+cu130`).
fn version_in(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("__version__"))
        .map(|l| l.split_once('=').map_or("", |(_, v)| v))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))?;
    let v = line.trim().trim_matches(|c| c == '\'' || c == '"').trim();
    let numeric = v.chars().next().is_some_and(|c| c.is_ascii_digit());
    (numeric && !v.contains(char::is_whitespace)).then(|| v.to_string())
}
