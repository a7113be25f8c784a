//! `[eval]`: the eval suites a job runs on its checkpoints and when. Each checkpoint
//! report names the suites due for it ([`EvalConfig::due`]); the coordinator turns them
//! into evaluation jobs that `worker eval agent` processes run. The section does not
//! enter the config digest: adding a suite does not change what training computes.
//!
//! ```toml
//! [[eval.suites]]
//! name = "splice-heldout"        # unique; names results and the JSON file
//! every_steps = 300              # optional: checkpoints whose step is a multiple
//! final = true                   # default true: the checkpoint written at the end
//! [eval.suites.splice]           # zero-shot splice detection and localisation
//! patches_per_side = 25          # default 25
//! limit = 80                     # optional: the first N images (sorted by path)
//! [eval.suites.splice.dataset]   # a splice dataset (see eval::datasets)
//! kind = "generic"
//! path = "work/splice-bench"
//!
//! [[eval.suites]]
//! name = "retrieval-heldout"
//! [eval.suites.retrieval]        # zero-shot retrieval on a packed dataset
//! data = "work/holdout-packed"   # URL or path of packed shards
//! batch = 32                     # default 32
//! rounds = 4                     # default 4
//! ```

use serde::{Deserialize, Serialize};

use super::datasets::DatasetConfig;
use infra::FieldError;

/// `[eval]`: the eval suites.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// The suites, in file order.
    #[serde(default)]
    pub suites: Vec<EvalSuite>,
}

/// One eval suite: what it measures and on which checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSuite {
    /// Unique name.
    pub name: String,
    /// Runs on checkpoints whose step is a multiple of this.
    #[serde(default)]
    pub every_steps: Option<u64>,
    /// Runs on the checkpoint written when training ends (default true).
    #[serde(default = "yes", rename = "final")]
    pub on_final: bool,
    /// Zero-shot splice detection and localisation.
    #[serde(default)]
    pub splice: Option<SpliceSuite>,
    /// Zero-shot retrieval on packed held-out photos.
    #[serde(default)]
    pub retrieval: Option<RetrievalSuite>,
}

fn yes() -> bool {
    true
}

/// `[eval.suites.splice]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpliceSuite {
    /// The dataset.
    pub dataset: DatasetConfig,
    /// About this many patches along the longest side (default 25).
    #[serde(default = "default_per_side")]
    pub patches_per_side: u32,
    /// Only the first N images, sorted by path.
    #[serde(default)]
    pub limit: Option<usize>,
}

fn default_per_side() -> u32 {
    25
}

/// `[eval.suites.retrieval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSuite {
    /// URL or path of a packed dataset.
    pub data: String,
    /// Photos per batch (each query picks among this many), default 32.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Passes over the data with other crops, default 4.
    #[serde(default = "default_rounds")]
    pub rounds: u64,
    /// Seed of the order and crops, default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_batch() -> usize {
    32
}

fn default_rounds() -> u64 {
    4
}

fn default_seed() -> u64 {
    1
}

/// What a suite runs.
#[derive(Debug, Clone, Copy)]
pub enum SuiteKind<'a> {
    /// Splice detection and localisation.
    Splice(&'a SpliceSuite),
    /// Retrieval.
    Retrieval(&'a RetrievalSuite),
}

impl EvalSuite {
    /// What the suite runs (validation guarantees exactly one kind).
    pub fn kind(&self) -> Option<SuiteKind<'_>> {
        match (&self.splice, &self.retrieval) {
            (Some(s), None) => Some(SuiteKind::Splice(s)),
            (None, Some(r)) => Some(SuiteKind::Retrieval(r)),
            _ => None,
        }
    }

    /// Whether the suite runs on the checkpoint of `step` (`final_step`: written when
    /// training ended).
    pub fn is_due(&self, step: u64, final_step: bool) -> bool {
        (final_step && self.on_final) || self.every_steps.is_some_and(|n| step.is_multiple_of(n))
    }
}

impl EvalConfig {
    /// The names of the suites due for the checkpoint of `step`.
    pub fn due(&self, step: u64, final_step: bool) -> Vec<String> {
        self.suites
            .iter()
            .filter(|s| s.is_due(step, final_step))
            .map(|s| s.name.clone())
            .collect()
    }

    /// The suite called `name`.
    pub fn suite(&self, name: &str) -> Option<&EvalSuite> {
        self.suites.iter().find(|s| s.name == name)
    }

    /// Every invalid field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, s) in self.suites.iter().enumerate() {
            let at = |field: &str| format!("eval.suites[{i}].{field}");
            let name_ok = !s.name.is_empty()
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                errors.push(FieldError::new(
                    at("name"),
                    format!(
                        "{:?} must be letters, digits, '-', '_' or '.' (it names a file)",
                        s.name
                    ),
                ));
            }
            if self.suites[..i].iter().any(|o| o.name == s.name) {
                errors.push(FieldError::new(
                    at("name"),
                    format!("{:?} is used twice", s.name),
                ));
            }
            if s.every_steps == Some(0) {
                errors.push(FieldError::new(at("every_steps"), "must be at least 1"));
            }
            if s.every_steps.is_none() && !s.on_final {
                errors.push(FieldError::new(
                    at("final"),
                    "the suite never runs: set every_steps or final = true",
                ));
            }
            match (&s.splice, &s.retrieval) {
                (Some(splice), None) => {
                    errors.extend(splice.dataset.validate(&at("splice.dataset")));
                    if !(2..=200).contains(&splice.patches_per_side) {
                        errors.push(FieldError::new(
                            at("splice.patches_per_side"),
                            format!("{} is outside 2..=200", splice.patches_per_side),
                        ));
                    }
                }
                (None, Some(r)) => {
                    if r.data.trim().is_empty() {
                        errors.push(FieldError::new(at("retrieval.data"), "must not be empty"));
                    }
                    if r.batch < 2 {
                        errors.push(FieldError::new(at("retrieval.batch"), "must be at least 2"));
                    }
                    if r.rounds == 0 {
                        errors.push(FieldError::new(
                            at("retrieval.rounds"),
                            "must be at least 1",
                        ));
                    }
                }
                _ => errors.push(FieldError::new(
                    at("name"),
                    "give exactly one of [eval.suites.splice] or [eval.suites.retrieval]",
                )),
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EvalConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn suites_are_due_every_n_steps_and_at_the_end() {
        let c = parse(
            r#"
            [[suites]]
            name = "a"
            every_steps = 100
            final = false
            [suites.retrieval]
            data = "x"
            [[suites]]
            name = "b"
            [suites.splice.dataset]
            kind = "generic"
            path = "bench"
            "#,
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.due(100, false), ["a"]);
        assert_eq!(c.due(150, false), Vec::<String>::new());
        assert_eq!(c.due(150, true), ["b"]);
        assert_eq!(c.due(200, true), ["a", "b"]);
        let b = c.suite("b").unwrap();
        assert!(matches!(b.kind(), Some(SuiteKind::Splice(s)) if s.patches_per_side == 25));
    }

    #[test]
    fn every_bad_suite_is_named() {
        let c = parse(
            r#"
            [[suites]]
            name = "x y"
            every_steps = 0
            [[suites]]
            name = "dup"
            final = false
            [suites.retrieval]
            data = ""
            batch = 1
            [[suites]]
            name = "dup"
            [suites.retrieval]
            data = "d"
            "#,
        );
        let fields: Vec<String> = c.validate().into_iter().map(|e| e.field).collect();
        for expected in [
            "eval.suites[0].name",
            "eval.suites[0].every_steps",
            "eval.suites[1].final",
            "eval.suites[1].retrieval.data",
            "eval.suites[1].retrieval.batch",
            "eval.suites[2].name",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} in {fields:?}"
            );
        }
        assert!(toml::from_str::<EvalConfig>("[[suites]]\nname = \"a\"\nevery = 3\n").is_err());
    }
}
