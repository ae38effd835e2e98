//! A bounds-checked big-endian reader over a byte slice.
//!
//! Every read checks the bytes remaining and returns [`Error::Truncated`] instead of panicking, and
//! every offset is tracked as an absolute position in the original input so errors can say where.

use crate::error::{Error, Result};

/// A cursor over `&[u8]` that never reads out of bounds.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the whole input, for error messages and results.
    base: u64,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Absolute position of the next byte.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn truncated(&self, needed: u64) -> Error {
        Error::Truncated {
            what: self.what,
            offset: self.position(),
            needed,
            available: self.remaining() as u64,
        }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated(n as u64));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes the next `n` bytes as a sub-reader positioned at the same absolute offset.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>> {
        let base = self.position();
        let bytes = self.bytes(n)?;
        Ok(Reader::new(bytes, base, what))
    }

    /// Takes everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u24(&mut self) -> Result<u32> {
        let b = self.bytes(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn fourcc(&mut self) -> Result<[u8; 4]> {
        let b = self.bytes(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// Checks that a declared count of fixed-size entries fits in the bytes remaining, before
    /// anything is allocated for it.
    pub fn check_count(&self, count: u64, entry_size: u64) -> Result<usize> {
        let needed = count
            .checked_mul(entry_size)
            .ok_or_else(|| Error::malformed(self.what, format!("entry count {count} overflows")))?;
        if needed > self.remaining() as u64 {
            return Err(Error::malformed(
                self.what,
                format!(
                    "declares {count} entries of {entry_size} bytes but only {} bytes are present",
                    self.remaining()
                ),
            ));
        }
        Ok(count as usize)
    }
}

/// A bit reader for exp-Golomb coded headers (H.264/H.265 SPS). Reads past the end yield an error.
#[derive(Debug)]
pub struct BitReader<'a> {
    buf: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, bit: 0 }
    }

    pub fn bit(&mut self) -> Result<u32> {
        let byte = self
            .buf
            .get(self.bit / 8)
            .ok_or_else(|| Error::malformed("bitstream", "read past the end"))?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(u32::from(v))
    }

    pub fn bits(&mut self, n: u32) -> Result<u32> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// Unsigned exp-Golomb.
    pub fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::malformed("bitstream", "exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed exp-Golomb.
    pub fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[1, 2, 3], 100, "test");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.position(), 102);
        let err = r.u32().unwrap_err();
        assert!(matches!(
            err,
            Error::Truncated {
                offset: 102,
                needed: 4,
                available: 1,
                ..
            }
        ));
    }

    #[test]
    fn declared_counts_are_checked_against_bytes() {
        let r = Reader::new(&[0; 16], 0, "stsz");
        assert_eq!(r.check_count(4, 4).unwrap(), 4);
        assert!(r.check_count(5, 4).is_err());
        assert!(r.check_count(u64::MAX, 8).is_err());
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let mut b = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(b.ue().unwrap(), 0);
        assert_eq!(b.ue().unwrap(), 1);
        assert_eq!(b.ue().unwrap(), 2);
        assert_eq!(b.ue().unwrap(), 3);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
    }
}
