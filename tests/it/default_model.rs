//! The shipped default model (`models/default`): one complete model-only checkpoint that
//! loads without any config, under 25 MB, and a model card that describes exactly those
//! weights (their SHA-256 and step) and says how they were made.

use infra::store::StoreOptions;
use worker::checkpoint::{CheckpointStore, WEIGHTS_FILE};

fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/default")
}

#[test]
fn the_default_model_loads_alone_is_small_and_its_card_names_its_weights() {
    let dir = models_dir();
    let store = CheckpointStore::open(dir.to_str().unwrap(), &StoreOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let all = rt.block_on(store.list()).unwrap();
    assert_eq!(all.len(), 1, "exactly one checkpoint in {}", dir.display());
    let r = &all[0];
    let bytes: u64 = r.marker.files.iter().map(|f| f.size_bytes).sum();
    assert!(
        bytes < 25_000_000,
        "{bytes} bytes: the shipped model must stay under 25 MB"
    );
    let ck = rt.block_on(store.load(r)).unwrap();
    assert!(
        ck.optimizer.is_none(),
        "model-only: no optimiser state shipped"
    );
    assert!(ck.config.is_some(), "it carries its config");

    let loaded = worker::runtime::model::from_checkpoint(
        None,
        dir.to_str().unwrap(),
        Some(tch::Device::Cpu),
        &StoreOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.checkpoint.step, r.step);

    let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap();
    let weights = r
        .marker
        .files
        .iter()
        .find(|f| f.name == WEIGHTS_FILE)
        .unwrap();
    assert!(
        card.contains(&weights.sha256),
        "the card names the SHA-256 of the weights it describes ({})",
        weights.sha256
    );
    assert!(
        card.contains(&format!("step {}", r.step)),
        "the card names the step"
    );
    assert!(
        card.contains("worker export"),
        "the card says how the model was made"
    );
}
