//! The data pipeline of the EXIF-as-language model: from a folder of camera photos to
//! batches of 124x124 full-resolution patches and EXIF-text token ids, streamed out of
//! object storage.
//!
//! How the modules fit together:
//! - [`tagmap`] is the common currency: one photo's EXIF as `name -> description`.
//! - `exif` reads tag maps from JPEG files and YFCC100M metadata lines, renders them as
//!   training text, and computes tag frequencies over a corpus.
//! - `jpeg` decodes only the part of a JPEG that a crop needs.
//! - `synth` generates photos from simulated cameras when no real folder is given.
//! - `shard` writes and reads webdataset-style tar shards and their manifest in object
//!   storage (`infra::store`); `pack` and `inspect` are the commands on top.
//! - `order` fixes the global sample order of an epoch; `stream` reads this rank's part of
//!   it with bounded prefetch, decodes and tokenises on a thread pool, and yields batches;
//!   `tokenize` is the BERT uncased WordPiece tokenizer; `bench` measures the read path.
//! - `split` divides photos by camera model into training and held-out file lists.
//! - `yfcc` reads YFCC100M's metadata files (streamed, bzip2 or plain) and places its
//!   photos in the mirror's bucket layout, for `pack`.

pub mod tagmap;

pub use tagmap::TagMap;
pub mod bench;
pub mod exif;
pub mod jpeg;
pub mod order;
pub mod pack;
pub mod shard;
pub mod split;
pub mod stream;
pub mod synth;
pub mod tokenize;
pub mod yfcc;
