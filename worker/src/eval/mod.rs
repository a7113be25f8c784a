//! Measuring a trained model. [`retrieval`]: zero-shot retrieval on held-out photos (a
//! patch against the EXIF texts of its batch, and against second crops of the batch's
//! photos).

pub mod retrieval;
