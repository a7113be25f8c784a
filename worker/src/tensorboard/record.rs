//! TensorBoard's event file format, written and read: a file is a sequence of records,
//! each `u64` length (little-endian), `u32` masked CRC-32C of those 8 bytes, the data, and
//! `u32` masked CRC-32C of the data (TensorFlow's `tensorflow/core/lib/io/record_writer`
//! and `tensorboard/summary/writer/record_writer.py`); the data is a serialised
//! `tensorflow.Event` protocol buffer (`tensorboard/compat/proto/event.proto`,
//! `summary.proto`), of which this writes the fields a scalar needs.

/// `tensorflow.Event`: fields 1 (wall_time), 2 (step), 3 (file_version) and 5 (summary).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the UNIX epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event holds.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// The event's content (`oneof what`).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// `brain.Event:2`, the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Values at the event's step.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`: field 1, the values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: field 1 (tag) and field 2 (`simple_value`, a member of the
/// `value` oneof: optional, so that 0.0 is still written and read as a scalar).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The series name, e.g. `train/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The CRC-32C of `data`, masked as TFRecord does (so that CRCs of CRCs stay unlikely).
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends `data` as one record to `out`.
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The records of `bytes`, in order, up to the first incomplete or corrupt one (a file
/// cut short by a crash ends there); returns them and whether all of `bytes` was read.
pub fn read_records(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 12) else {
            return (records, false);
        };
        let (len, crc) = header.split_at(8);
        if masked_crc(len).to_le_bytes() != crc {
            return (records, false);
        }
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let Some(data) = bytes.get(at + 12..(at + 12).saturating_add(n)) else {
            return (records, false);
        };
        let Some(crc) = bytes.get(at + 12 + n..at + 16 + n) else {
            return (records, false);
        };
        if masked_crc(data).to_le_bytes() != crc {
            return (records, false);
        }
        records.push(data);
        at += 16 + n;
    }
    (records, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The masked CRC of TensorFlow's own test vector (`crc32c` of "a" masked), and a
    /// record round trip that stops at a corrupt byte.
    #[test]
    fn records_round_trip_and_a_corrupt_tail_is_where_reading_stops() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let event = Event {
            wall_time: 1.5,
            step: 7,
            what: Some(What::Summary(Summary {
                value: vec![SummaryValue {
                    tag: "train/loss".into(),
                    simple_value: Some(0.0),
                }],
            })),
        };
        let mut file = Vec::new();
        write_record(&mut file, &event.encode_to_vec());
        write_record(&mut file, b"second");
        let (records, whole) = read_records(&file);
        assert!(whole);
        assert_eq!(Event::decode(records[0]).unwrap(), event);
        assert_eq!(records[1], b"second");
        let n = file.len();
        file[n - 6] ^= 1; // inside the second record's data
        let (records, whole) = read_records(&file);
        assert_eq!((records.len(), whole), (1, false));
    }
}
