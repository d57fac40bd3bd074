//! Observation frames as one deflate stream: the guest compresses each observation and flushes
//! the stream to a byte boundary (a sync flush), so every frame holds whole blocks and the
//! host inflates them in order — a kernel that dies mid-run still leaves every frame before it
//! readable. Observations of one run repeat each other, so the stream is ~10× smaller than
//! the JSON, and a serial port under TCG carries about 400 KB/s.
//!
//! Owns: both ends of that stream. Must not: do I/O, or panic or grow without bound on any
//! input.

use std::io::Write;

/// The frame kind of a deflated observation.
pub const KIND: &str = "obz";

/// The most bytes one frame may inflate to.
const MAX_FRAME: usize = 64 << 20;

/// The guest's end.
pub struct Deflater(flate2::write::DeflateEncoder<Vec<u8>>);

impl Default for Deflater {
    fn default() -> Self {
        Deflater(flate2::write::DeflateEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ))
    }
}

impl Deflater {
    /// The deflated bytes of `payload`, flushed so that the host can inflate them now.
    pub fn chunk(&mut self, payload: &[u8]) -> Vec<u8> {
        // Writing to a Vec does not fail.
        let _ = self.0.write_all(payload);
        let _ = self.0.flush();
        std::mem::take(self.0.get_mut())
    }
}

/// A Vec that refuses to grow beyond [`MAX_FRAME`].
#[derive(Default)]
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + b.len() > MAX_FRAME {
            return Err(std::io::Error::other(format!(
                "a frame inflates beyond {MAX_FRAME} bytes"
            )));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The host's end: frames in the order the guest sent them.
pub struct Inflater(flate2::write::DeflateDecoder<Capped>);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(flate2::write::DeflateDecoder::new(Capped::default()))
    }
}

impl Inflater {
    /// What the next frame's bytes inflate to.
    pub fn chunk(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let r = self.0.write_all(bytes).and_then(|()| self.0.flush());
        let out = std::mem::take(&mut self.0.get_mut().0);
        r.map_err(|e| format!("a deflated observation does not inflate: {e}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_inflates_on_its_own_in_order() {
        let mut d = Deflater::default();
        let mut i = Inflater::default();
        let payloads: Vec<Vec<u8>> = (0..50)
            .map(|n| format!("{{\"id\":\"flags={n}/value=null\",\"load\":\"ok\"}}").into_bytes())
            .chain([Vec::new(), vec![0u8; 100_000]])
            .collect();
        let chunks: Vec<Vec<u8>> = payloads.iter().map(|p| d.chunk(p)).collect();
        let sent: usize = chunks.iter().map(Vec::len).sum();
        let raw: usize = payloads.iter().map(Vec::len).sum();
        assert!(sent * 5 < raw, "{sent} bytes for {raw}");
        for (p, c) in payloads.iter().zip(&chunks) {
            assert_eq!(&i.chunk(c).unwrap(), p);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut i = Inflater::default();
        let e = i.chunk(&[0xff; 64]).unwrap_err();
        assert!(e.contains("does not inflate"), "{e}");
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let mut d = Deflater::default();
        let big = d.chunk(&vec![b'a'; MAX_FRAME + 1]);
        let e = Inflater::default().chunk(&big).unwrap_err();
        assert!(e.contains("beyond"), "{e}");
    }
}
