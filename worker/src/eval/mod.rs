//! Measuring a trained model. [`retrieval`]: zero-shot retrieval on held-out photos (a
//! patch against the EXIF texts of its batch, and against second crops of the batch's
//! photos). [`metrics`]: splice detection and localisation metrics (detection AP, p-mAP,
//! cIoU) as pure functions. [`datasets`]: the splice benchmarks' folder layouts read into
//! one list of (image, mask, label) entries, and their masks decoded to booleans.
//! [`splice`]: zero-shot splice detection and localisation of a checkpoint on a dataset.
//! [`compare`]: models side by side on the same benchmarks, with bootstrap intervals.
//! [`suite`]: one eval suite of the training config on one checkpoint, its result written
//! next to the checkpoint. [`agent`]: `worker eval agent`, which runs the evaluation jobs
//! the coordinator leases.

pub mod agent;
pub mod compare;
pub mod datasets;
pub mod metrics;
pub mod retrieval;
pub mod splice;
pub mod suite;
