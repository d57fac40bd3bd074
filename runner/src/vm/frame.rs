//! Framed records over a serial port: the guest writes `\n@@bpfcase <kind> <len>\n`, exactly
//! `len` payload bytes, then `\n@@end\n`; the host parses the captured file once the guest has
//! stopped, possibly mid-record, with console noise before and between frames.
//!
//! Owns: the wire format, both directions. Must not: interpret payloads (JSON is the caller's
//! business), do I/O, or panic on any input.

const MARKER: &[u8] = b"\n@@bpfcase ";
const TRAILER: &[u8] = b"\n@@end\n";
/// Longest accepted `kind`; kinds are `[A-Za-z0-9_-]+`.
const MAX_KIND: usize = 32;
/// `u64::MAX` has 20 decimal digits.
const MAX_LEN_DIGITS: usize = 20;

/// One complete, trailer-checked record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: String,
    pub payload: Vec<u8>,
}

fn is_kind_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'
}

/// The bytes of one frame.
///
/// # Panics
/// If `kind` is empty, longer than 32 bytes, or not `[A-Za-z0-9_-]+`.
pub fn encode(kind: &str, payload: &[u8]) -> Vec<u8> {
    let ok = !kind.is_empty() && kind.len() <= MAX_KIND && kind.bytes().all(|b| is_kind_byte(&b));
    assert!(ok, "bad frame kind {kind:?}");
    let header = format!("{kind} {}\n", payload.len());
    [MARKER, header.as_bytes(), payload, TRAILER].concat()
}

enum Bad {
    /// The stream ended inside a header that is well-formed so far.
    Incomplete,
    Malformed,
}

/// The length of a run of 1..=`max` `ok` bytes at the start of `s`, followed by `end`.
fn field(s: &[u8], max: usize, ok: fn(&u8) -> bool, end: u8) -> Result<usize, Bad> {
    let n = s.iter().take(max + 1).take_while(|b| ok(b)).count();
    match s.get(n) {
        _ if n > max => Err(Bad::Malformed),
        None => Err(Bad::Incomplete),
        Some(&b) if b == end && n > 0 => Ok(n),
        Some(_) => Err(Bad::Malformed),
    }
}

/// Parses `<kind> <len>\n` at the start of `s` (the bytes right after a marker) into the kind,
/// the length and the offset of the `\n`.
fn parse_header(s: &[u8]) -> Result<(&[u8], u64, usize), Bad> {
    let k = field(s, MAX_KIND, is_kind_byte, b' ')?;
    let n = field(&s[k + 1..], MAX_LEN_DIGITS, u8::is_ascii_digit, b'\n')?;
    let digits = std::str::from_utf8(&s[k + 1..k + 1 + n]).map_err(|_| Bad::Malformed)?;
    let len = digits.parse().map_err(|_| Bad::Malformed)?;
    Ok((&s[..k], len, k + 1 + n))
}

fn find_marker(hay: &[u8], from: usize) -> Option<usize> {
    let found = hay
        .get(from..)?
        .windows(MARKER.len())
        .position(|w| w == MARKER);
    found.map(|i| from + i)
}

/// Complete frames in order, and whether the stream ended inside a frame (truncated).
///
/// A malformed header is skipped by resyncing at the next marker. A frame whose trailer is wrong
/// is dropped and scanning resumes at its header's newline. A frame that runs past the end of the
/// stream sets `truncated`; scanning still resumes after its header (the declared length may be
/// garbage), and a complete frame found later clears `truncated` again.
pub fn decode(stream: &[u8]) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let mut truncated = false;
    let mut pos = 0;
    while let Some(start) = find_marker(stream, pos) {
        let header_at = start + MARKER.len();
        let (kind, len, newline) = match parse_header(&stream[header_at..]) {
            Ok((kind, len, newline)) => (kind, len, header_at + newline),
            Err(Bad::Incomplete) => return (frames, true),
            Err(Bad::Malformed) => {
                pos = start + 1;
                continue;
            }
        };
        // Resuming at the header's own `\n` lets it begin the next marker.
        pos = newline;
        let body = newline + 1;
        let end = usize::try_from(len).ok().and_then(|l| body.checked_add(l));
        let Some(end) = end.filter(|&e| e <= stream.len()) else {
            truncated = true;
            continue;
        };
        let tail = &stream[end..stream.len().min(end + TRAILER.len())];
        if !TRAILER.starts_with(tail) {
            continue; // wrong trailer: dropped
        }
        if tail.len() < TRAILER.len() {
            truncated = true;
            continue;
        }
        frames.push(Frame {
            kind: String::from_utf8_lossy(kind).into_owned(),
            payload: stream[body..end].to_vec(),
        });
        truncated = false;
        pos = end + TRAILER.len();
    }
    (frames, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: &str, payload: &[u8]) -> Frame {
        Frame {
            kind: kind.into(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn round_trip_with_garbage_and_tricky_payloads() {
        let want = vec![
            frame("hello", br#"{"kernel":"6.8"}"#),
            frame("obs", b""),
            frame("log", b"line\n\n@@bpfcase obs 3\nabc\n@@end\n@@bpfcase x"),
            frame("obs", b"\n@@end\n"),
            frame("done", "{\"ok\":true,\"\u{e9}\":1}".as_bytes()),
        ];
        let mut stream =
            b"[    0.000000] Linux version\r\n@@bpfcase\n@@bpfcase bad!kind 1\n".to_vec();
        for (i, f) in want.iter().enumerate() {
            stream.extend(encode(&f.kind, &f.payload));
            stream.extend(format!("noise {i}\n@@end\n@@bpfcase obs 99x\n").as_bytes());
        }
        assert_eq!(decode(&stream), (want.clone(), false));
        let bare = want.iter().flat_map(|f| encode(&f.kind, &f.payload));
        let bare: Vec<u8> = bare.collect();
        assert_eq!(decode(&bare), (want, false));
        assert_eq!(decode(b""), (vec![], false));
    }

    #[test]
    fn truncation_at_every_offset() {
        let (a, b) = (encode("hello", b"{\"x\":1}"), encode("obs", b"[1,2]\n"));
        let stream = [a.clone(), b.clone()].concat();
        let (all, _) = decode(&stream);
        assert_eq!(all.len(), 2);
        for cut in 0..=stream.len() {
            let (frames, truncated) = decode(&stream[..cut]);
            let complete = usize::from(cut >= a.len()) + usize::from(cut == stream.len());
            assert_eq!(frames, all[..complete], "cut {cut}");
            let in_a = (MARKER.len()..a.len()).contains(&cut);
            let in_b = (a.len() + MARKER.len()..stream.len()).contains(&cut);
            assert_eq!(truncated, in_a || in_b, "cut {cut}");
        }
    }

    #[test]
    fn wrong_trailer_and_huge_length() {
        let good = encode("obs", b"ok");
        let bad = b"\n@@bpfcase obs 2\nxx\n@@END\n";
        let huge = b"\n@@bpfcase obs 18446744073709551615\n";
        let overflow = b"\n@@bpfcase obs 99999999999999999999\n";
        let stream = [&bad[..], huge, overflow, &good].concat();
        let ok = || vec![frame("obs", b"ok")];
        assert_eq!(decode(&stream), (ok(), false));
        let after_good = |tail: &[u8]| decode(&[&good[..], tail].concat());
        assert_eq!(after_good(huge), (ok(), true));
        assert_eq!(after_good(b"\n@@bpfcase obs 9000\nabc"), (ok(), true));
        assert_eq!(after_good(b"\n@@bpfcase obs 0\n\n@@e"), (ok(), true));
        assert_eq!(after_good(b"\n@@bpfcase obs 0\n\n@@x"), (ok(), false));
        assert_eq!(after_good(b"\n@@bpfcase obs 1"), (ok(), true));
    }

    /// xorshift64*: deterministic, dependency-free.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Fewer than `max` random bytes.
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            (0..self.below(max)).map(|_| self.next() as u8).collect()
        }
    }

    /// Random bytes and broken framing fragments, built not to complete a frame (barring
    /// coincidences far too rare for the fixed seed to hit).
    fn noise(rng: &mut Rng, out: &mut Vec<u8>) {
        let pieces = "\n@@bpf|\n@@end\n|\n@@bpfcase |\n@@bpfcase obs 12|\n@@bpfcase obs x1\n|\n\
            @@bpfcase  3\n|\n@@bpfcase obs 3 4\n|\n@@bpfcase obs 99999999\n|\n|@@bpfcase obs 3\n";
        let pieces: Vec<&str> = pieces.split('|').collect();
        for _ in 0..rng.below(4) {
            if rng.below(2) == 0 {
                out.extend(pieces[rng.below(pieces.len())].as_bytes());
            } else {
                out.extend(rng.bytes(40));
            }
        }
        if rng.below(4) == 0 {
            // A well-formed header whose trailer is wrong.
            let body = rng.bytes(8);
            out.extend(format!("\n@@bpfcase log {}\n", body.len()).as_bytes());
            out.extend(body);
            out.extend(b"\n@@enX\n");
        }
    }

    /// `want` appears in `got` in order, possibly among other frames.
    fn assert_recovered<'a>(got: &[Frame], want: impl IntoIterator<Item = &'a Frame>, ctx: &str) {
        let mut rest = got.iter();
        for f in want {
            assert!(rest.any(|g| g == f), "{ctx}: lost {f:?}");
        }
    }

    #[test]
    fn fuzz_never_panics_and_recovers_embedded_frames() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let kinds = ["hello", "obs", "done", "log"];
        let (mut joined, mut joined_frames) = (Vec::new(), Vec::new());
        for round in 0..3000 {
            let (mut stream, mut embedded) = (Vec::new(), Vec::new());
            noise(&mut rng, &mut stream);
            for _ in 0..rng.below(5) {
                let mut payload = rng.bytes(30);
                if rng.below(3) == 0 {
                    payload.extend(encode("obs", b"inner"));
                }
                let f = frame(kinds[rng.below(kinds.len())], &payload);
                stream.extend(encode(&f.kind, &f.payload));
                embedded.push((stream.len(), f));
                noise(&mut rng, &mut stream);
            }
            // Every frame wholly inside the stream, or a prefix of it, is recovered in order.
            for cut in [stream.len(), rng.below(stream.len() + 1)] {
                let within = embedded.iter().filter(|(end, _)| *end <= cut);
                let ctx = format!("round {round} cut {cut}");
                assert_recovered(&decode(&stream[..cut]).0, within.map(|(_, f)| f), &ctx);
            }
            // Random mutations and pure garbage must merely not panic.
            let mut mutated = stream.clone();
            for _ in 0..rng.below(4) {
                if !mutated.is_empty() {
                    let i = rng.below(mutated.len());
                    mutated[i] = rng.next() as u8;
                }
            }
            decode(&mutated);
            decode(&rng.bytes(200));
            // Concatenated streams: everything still recovered; a random half must not panic.
            joined.extend(stream);
            joined_frames.extend(embedded.into_iter().map(|(_, f)| f));
            if round % 50 == 49 {
                assert_recovered(
                    &decode(&joined).0,
                    &joined_frames,
                    &format!("round {round}"),
                );
                decode(&joined[..rng.below(joined.len() + 1)]);
                (joined, joined_frames) = (Vec::new(), Vec::new());
            }
        }
    }
}
