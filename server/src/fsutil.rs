//! Durable small files: self-describing envelope (magic, version, length, CRC32C) written
//! tmp + fsync + rename + fsync(dir), and checked before decoding.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Envelope header: magic (4) + version (u16) + reserved (u16) + body length (u64) + CRC32C (u32).
pub const ENVELOPE_HEADER_LEN: usize = 4 + 2 + 2 + 8 + 4;

/// Wraps `body` in the envelope.
pub fn envelope(magic: &[u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks the envelope and returns the body and its version.
pub fn open_envelope<'a>(location: &Path, magic: &[u8; 4], max_version: u16, bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
    let loc = location.display().to_string();
    if bytes.len() < ENVELOPE_HEADER_LEN {
        return Err(Error::FileTooSmall { location: loc, expected: ENVELOPE_HEADER_LEN as u64, actual: bytes.len() as u64 });
    }
    if &bytes[0..4] != magic {
        return Err(Error::DataLoss { location: loc, detail: format!("bad magic {:?}, expected {:?}", &bytes[0..4], magic) });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 0 || version > max_version {
        return Err(Error::DataLoss {
            location: loc,
            detail: format!("unsupported format version {version} (this build reads up to {max_version})"),
        });
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let expected = ENVELOPE_HEADER_LEN as u64 + len;
    if (bytes.len() as u64) < expected {
        return Err(Error::FileTooSmall { location: loc, expected, actual: bytes.len() as u64 });
    }
    let stored = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let body = &bytes[ENVELOPE_HEADER_LEN..expected as usize];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(Error::CrcMismatch { location: loc, stored, computed });
    }
    Ok((version, body))
}

/// Replaces `path` atomically and durably: write tmp, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).at(tmp.display())?;
        f.write_all(bytes).at(tmp.display())?;
        f.sync_all().at(tmp.display())?;
    }
    std::fs::rename(&tmp, path).at(path.display())?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory so a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = OpenOptions::new().read(true).open(dir).at(dir.display())?;
    d.sync_all().at(dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_envelope_when_opened_should_return_body() {
        let bytes = envelope(b"TEST", 1, b"hello");
        let (v, body) = open_envelope(Path::new("x"), b"TEST", 1, &bytes).unwrap();
        assert_eq!((v, body), (1, &b"hello"[..]));
    }

    #[test]
    fn given_flipped_bit_when_opened_should_report_crc_mismatch() {
        let mut bytes = envelope(b"TEST", 1, b"hello");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(open_envelope(Path::new("x"), b"TEST", 1, &bytes), Err(Error::CrcMismatch { .. })));
    }

    #[test]
    fn given_truncated_file_when_opened_should_report_too_small() {
        let bytes = envelope(b"TEST", 1, b"hello");
        let err = open_envelope(Path::new("x"), b"TEST", 1, &bytes[..bytes.len() - 2]).unwrap_err();
        assert!(matches!(err, Error::FileTooSmall { expected: 25, actual: 23, .. }), "{err}");
    }

    #[test]
    fn given_atomic_write_when_replaced_should_hold_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!p.with_extension("tmp").exists());
    }
}
