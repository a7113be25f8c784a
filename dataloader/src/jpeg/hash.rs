//! A small, fast, non-cryptographic 64-bit hash, used to tie a scan index to its JPEG and
//! to detect damaged index bytes. Stable across platforms and releases (it is stored).

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Incremental hasher: eight bytes per step, little-endian words, length folded in.
pub(crate) struct Hasher64 {
    state: u64,
    len: u64,
}

impl Hasher64 {
    /// A hasher with the fixed initial state.
    pub fn new() -> Self {
        Self {
            state: 0x243F_6A88_85A3_08D3,
            len: 0,
        }
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(K).rotate_left(29) ^ (self.state >> 17);
    }

    /// Feeds bytes; `write(a); write(b)` may differ from `write(a ++ b)` (chunks are
    /// padded), which is fine for a hash always fed the same way.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 59));
        }
        self.len = self.len.wrapping_add(bytes.len() as u64);
    }

    /// Feeds one integer.
    pub fn write_u64(&mut self, v: u64) {
        self.mix(v);
        self.len = self.len.wrapping_add(8);
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        let mut h = self.state ^ self.len.wrapping_mul(K);
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h
    }
}

/// Hash of one byte slice.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h = Hasher64::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_bit_flip_changes_the_hash() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 % 251) as u8).collect();
        let base = hash(&data);
        for i in 0..data.len() * 8 {
            let mut d = data.clone();
            d[i / 8] ^= 1 << (i % 8);
            assert_ne!(hash(&d), base, "bit {i}");
        }
        assert_ne!(hash(&data[..99]), base);
        assert_ne!(hash(&[0]), hash(&[]));
    }
}
