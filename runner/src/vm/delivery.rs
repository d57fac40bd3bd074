//! The cases as a guest receives them after its boot (a warm start, see `warm`): one frame,
//! `cases`, whose payload holds a `file` frame per case file (`<path>\0<bytes>`) and last a
//! `config` frame (the guest's [`Config`]), deflated (a serial port carries about 100 KB/s
//! into a guest under TCG; case files shrink about 6×). The host writes it to the guest's
//! input port; the guest reads until the outer frame is whole.
//!
//! Owns: that format, both directions, and which paths a delivery may write. Must not: do I/O
//! or panic on any input.

use std::io::{Read, Write};

use super::frame;
use super::guest::Config;

/// The most bytes a delivery may inflate to.
const MAX_INFLATED: u64 = 256 << 20;

/// Where delivered case files go in the guest, as in the initramfs of a cold boot.
pub const CASES_DIR: &str = "bpfcase/cases/";

/// The guest's configuration and the case files it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub config: Config,
    /// (path relative to `/`, contents), in the order of `config.cases`.
    pub files: Vec<(String, Vec<u8>)>,
}

/// The bytes the host sends.
pub fn encode(d: &Delivery) -> Vec<u8> {
    let mut inner = Vec::new();
    for (path, bytes) in &d.files {
        inner.extend(frame::encode(
            "file",
            &[path.as_bytes(), b"\0", bytes].concat(),
        ));
    }
    // A Config of strings always serializes.
    let cfg = serde_json::to_vec(&d.config).unwrap_or_default();
    inner.extend(frame::encode("config", &cfg));
    frame::encode("cases", &deflate(&inner))
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec does not fail.
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the delivery does not inflate: {e}"))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(format!("the delivery inflates beyond {MAX_INFLATED} bytes"));
    }
    Ok(out)
}

/// How many bytes from the start of `stream` the whole delivery takes, once its header has
/// arrived (what comes before the header does not count: the port may carry noise).
pub fn expected_len(stream: &[u8]) -> Option<usize> {
    const MARKER: &[u8] = b"\n@@bpfcase cases ";
    let at = stream.windows(MARKER.len()).position(|w| w == MARKER)?;
    let rest = &stream[at + MARKER.len()..];
    let nl = rest.iter().take(21).position(|&b| b == b'\n')?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    (at + MARKER.len() + nl + 1)
        .checked_add(len)?
        .checked_add(b"\n@@end\n".len())
}

/// The delivery in `stream`: None while it is incomplete, an error when it is whole but wrong.
pub fn decode(stream: &[u8]) -> Result<Option<Delivery>, String> {
    match expected_len(stream) {
        Some(n) if stream.len() >= n => {}
        _ => return Ok(None),
    }
    let (frames, _) = frame::decode(stream);
    let outer = frames
        .into_iter()
        .find(|f| f.kind == "cases")
        .ok_or("the delivery frame is damaged (its trailer is missing)")?;
    let mut d = Delivery::default();
    let mut config = None;
    for f in frame::decode(&inflate(&outer.payload)?).0 {
        match f.kind.as_str() {
            "file" => {
                let nul = f.payload.iter().position(|&b| b == 0);
                let nul = nul.ok_or("a delivered file has no path")?;
                let path = std::str::from_utf8(&f.payload[..nul])
                    .map_err(|_| "a delivered file's path is not UTF-8")?;
                check_path(path)?;
                d.files
                    .push((path.to_string(), f.payload[nul + 1..].to_vec()));
            }
            "config" => {
                let c: Config = serde_json::from_slice(&f.payload)
                    .map_err(|e| format!("the delivered configuration: {e}"))?;
                config = Some(c);
            }
            other => return Err(format!("an unknown part `{other}` in the delivery")),
        }
    }
    d.config = config.ok_or("the delivery has no configuration")?;
    for c in &d.config.cases {
        if !d.files.iter().any(|(p, _)| p == c) {
            return Err(format!(
                "the configuration names {c}, which was not delivered"
            ));
        }
    }
    Ok(Some(d))
}

/// A delivered file may only land under [`CASES_DIR`], by a plain relative path.
pub fn check_path(p: &str) -> Result<(), String> {
    let plain = p.starts_with(CASES_DIR)
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && !p.contains('\0');
    if plain {
        Ok(())
    } else {
        Err(format!("a delivered file may not be written to {p:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Delivery {
        Delivery {
            config: Config {
                cases: vec![
                    "bpfcase/cases/0/a.json".into(),
                    "bpfcase/cases/1/b.json".into(),
                ],
                filters: vec!["a/*".into()],
            },
            files: vec![
                (
                    "bpfcase/cases/0/a.json".into(),
                    b"{\"x\":\n1}\0\n@@end\n".to_vec(),
                ),
                ("bpfcase/cases/1/b.json".into(), Vec::new()),
            ],
        }
    }

    #[test]
    fn round_trip_after_noise_and_at_every_cut() {
        let d = sample();
        let mut stream = b"\x00\xffnoise\n@@bpfcase cas".to_vec();
        stream.extend(encode(&d));
        assert_eq!(expected_len(&stream), Some(stream.len()));
        assert_eq!(decode(&stream), Ok(Some(d.clone())));
        for cut in 0..stream.len() {
            assert_eq!(decode(&stream[..cut]), Ok(None), "cut {cut}");
        }
        // Bytes after the delivery change nothing.
        stream.extend(b"more");
        assert_eq!(decode(&stream), Ok(Some(d)));
    }

    #[test]
    fn damaged_or_dangerous_deliveries_are_errors() {
        let mut d = sample();
        d.files[0].0 = "bpfcase/cases/../../etc/passwd".into();
        d.config.cases[0] = d.files[0].0.clone();
        assert!(decode(&encode(&d))
            .unwrap_err()
            .contains("may not be written"));
        let mut d = sample();
        d.files.pop();
        assert!(decode(&encode(&d)).unwrap_err().contains("not delivered"));
        let mut bytes = encode(&sample());
        let n = bytes.len();
        bytes[n - 2] = b'X';
        assert!(decode(&bytes).unwrap_err().contains("damaged"));
        let cases = |inner: &[u8]| frame::encode("cases", &deflate(inner));
        let junk = cases(&frame::encode("what", b""));
        assert!(decode(&junk).unwrap_err().contains("unknown part"));
        assert!(decode(&cases(b""))
            .unwrap_err()
            .contains("no configuration"));
        // Not deflated at all.
        let raw = frame::encode("cases", &frame::encode("config", b"{}"));
        assert!(decode(&raw).unwrap_err().contains("does not inflate"));
        for bad in [
            "/bpfcase/cases/a",
            "bpfcase/cases/",
            "bpfcase/cases//a",
            "tmp/a",
            "bpfcase/cases/./a",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("bpfcase/cases/0/get_flags.json").unwrap();
    }
}
