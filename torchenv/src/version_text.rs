// Shared by the build script and the library (included, not a module of its own).

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
